//! What a forward costs: matmul FLOPs of a forward, and the accounting of a layered
//! (dLLM-Cache) forward whose layers recompute different rows.

use super::output::Stats;
use crate::model::ModelInfo;

/// Matmul FLOPs of one sequence's forward: `rows` recomputed rows attending over `t` keys,
/// `logit_rows` rows through the LM head.
pub fn forward_flops(info: &ModelInfo, rows: usize, t: usize, logit_rows: usize) -> f64 {
    let (d, f, l) = (info.d_model as f64, info.mlp_hidden as f64, info.n_layers as f64);
    let kv = (info.d_model / info.n_heads * info.kv_heads) as f64;
    // q and o are d x d, k and v d x kv_dim, three d x f FFN matrices; scores and the
    // weighted sum over t keys.
    let per_row = 2.0 * (2.0 * d * d + 2.0 * d * kv + 3.0 * d * f) + 4.0 * t as f64 * d;
    l * rows as f64 * per_row + 2.0 * logit_rows as f64 * d * info.logits_width as f64
}

/// The size of one step's forward: sequences, canvas rows each (prompt + answer), answer
/// length, and rows whose logits were asked for.
#[derive(Debug, Clone, Copy)]
pub struct StepShape {
    pub seqs: usize,
    pub canvas: usize,
    pub gen: usize,
    pub logit_rows: usize,
}

/// Add one layered forward's rows and FLOPs to `stats`: each layer's share of a forward over
/// its recomputed rows, plus the value projection of every canvas row where a layer ranks
/// rows by value drift (`adaptive`), plus the LM head.
pub fn account_layered(stats: &mut Stats, adaptive: bool, info: &ModelInfo, layer_rows: &[Vec<Vec<usize>>], shape: StepShape) {
    let StepShape { seqs, canvas: t, gen: g, logit_rows } = shape;
    for (l, rows) in layer_rows.iter().enumerate() {
        let n = rows.first().map_or(0, |r| r.len());
        stats.layer_rows += n * seqs;
        stats.layer_slots += t * seqs;
        let drift = if adaptive && l > 0 && n < t { 2.0 * (g * info.d_model * info.d_model) as f64 } else { 0.0 };
        stats.flops += seqs as f64 * (forward_flops(info, n, t, 0) / info.n_layers as f64 + drift);
    }
    stats.flops += seqs as f64 * forward_flops(info, 0, t, logit_rows);
}

//! Per-layer refresh (the `layers` section, dLLM-Cache): which rows each layer recomputes at
//! a forward, and what that costs.

use super::exec::{forward_flops, Stats};
use crate::model::{LayerRows, ModelInfo, ResponseRows};
use crate::plan::{Layers, Plan, Val};

/// The rows each layer recomputes at forward `step` (dLLM-Cache's schedule: the counter is
/// the global forward index).
pub fn layer_spec(l: &Layers, step: usize, n_layers: usize, g: usize) -> Vec<LayerRows> {
    let every = |v: &Val| v.as_usize().unwrap_or(1).max(1);
    let (pe, re) = (every(&l.prompt_every), every(&l.response_every));
    let ratio = l.adaptive_ratio.as_f64().unwrap_or(0.0);
    let first_full = l.first_layer_full.as_bool().unwrap_or(true);
    // Python's int(G * rou).
    let k = (g as f64 * ratio) as usize;
    (0..n_layers)
        .map(|i| {
            let forced = first_full && i == 0;
            let response = if step.is_multiple_of(re) || forced {
                ResponseRows::All
            } else if ratio > 0.0 {
                ResponseRows::LeastSimilarValues(k)
            } else {
                ResponseRows::None
            };
            LayerRows { prompt: step.is_multiple_of(pe) || forced, response }
        })
        .collect()
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
/// rows by value drift, plus the LM head.
pub fn account_layered(stats: &mut Stats, plan: &Plan, info: &ModelInfo, layer_rows: &[Vec<Vec<usize>>], shape: StepShape) {
    let StepShape { seqs, canvas: t, gen: g, logit_rows } = shape;
    let adaptive = plan.layers.as_ref().is_some_and(|lp| lp.adaptive_ratio.as_f64().unwrap_or(0.0) > 0.0);
    for (l, rows) in layer_rows.iter().enumerate() {
        let n = rows.first().map_or(0, |r| r.len());
        stats.layer_rows += n * seqs;
        stats.layer_slots += t * seqs;
        let drift = if adaptive && l > 0 && n < t { 2.0 * (g * info.d_model * info.d_model) as f64 } else { 0.0 };
        stats.flops += seqs as f64 * (forward_flops(info, n, t, 0) / info.n_layers as f64 + drift);
    }
    stats.flops += seqs as f64 * forward_flops(info, 0, t, logit_rows);
}

//! `d2c bench --layer-timing`: forward time per layer at 384, 64 and 16 query rows (over a
//! 384-row K/V store) for each weight type, and what that means for a model of the same
//! width with `--extrapolate-layers` layers (LLaDA-8B: 32) at prompt 128 / gen 256: seconds
//! per step and tokens/s for no-cache (every step 384 rows) and d²Cache (one full step, then
//! about 64 rows a step), logits for the block's 32 rows.

use super::Dtype;
use d2c::engine::Engine;
use d2c::model::DiffusionModel;
use std::path::Path;

pub fn run(dir: &Path, dtypes: &[Dtype], layers: usize, reps: usize, markdown: bool) -> Result<(), String> {
    const T: usize = 384;
    let header = [
        "dtype",
        "weights",
        "layer @384 rows",
        "@64",
        "@16",
        "head @32",
        "est. s/step no-cache",
        "est. s/step d2cache",
        "est. tokens/s no-cache",
        "est. tokens/s d2cache",
    ];
    let mut lines = Vec::new();
    let mut shape = String::new();
    for &dt in dtypes {
        eprintln!("loading {} as {} ...", dir.display(), dt.name());
        let m = Engine::load(Some(dir), dt.weight_type()).map_err(|e| e.to_string())?.model;
        let info = m.info().clone();
        shape = format!(
            "d_model {}, {} heads ({} K/V), mlp {}, vocab {}; measured on {} layers, extrapolated to {layers}",
            info.d_model, info.n_heads, info.kv_heads, info.mlp_hidden, info.logits_width, info.n_layers
        );
        let mut t = Vec::new();
        for rows in [T, 64, 16] {
            let (layer, _) = m.profile(rows, T, 1, reps).map_err(|e| e.to_string())?;
            t.push(layer);
        }
        let (_, head) = m.profile(1, T, 32, reps).map_err(|e| e.to_string())?;
        let vanilla = layers as f64 * t[0] + head;
        let cached = layers as f64 * t[1] + head;
        let d2 = (vanilla + 255.0 * cached) / 256.0;
        let ms = |s: f64| format!("{:.1} ms", 1e3 * s);
        lines.push(vec![
            dt.name().to_string(),
            d2c::model::linear::fmt_bytes(m.weight_bytes() as u64),
            ms(t[0]),
            ms(t[1]),
            ms(t[2]),
            ms(head),
            format!("{vanilla:.2}"),
            format!("{d2:.2}"),
            format!("{:.3}", 1.0 / vanilla),
            format!("{:.3}", 1.0 / d2),
        ]);
    }
    println!("{shape}");
    super::print_table(&header, &lines, markdown);
    Ok(())
}

/// `d2c bench --profile`: where a layer's time goes, per op kind, at 32, 64 and 384 query rows
/// over a 384-row K/V store (the rows of a dual-cache step, a d²Cache step, a full forward).
pub fn profile(dir: &Path, dtype: Dtype, reps: usize, markdown: bool) -> Result<(), String> {
    const T: usize = 384;
    let m = Engine::load(Some(dir), dtype.weight_type()).map_err(|e| e.to_string())?.model;
    let info = m.info().clone();
    let runs: Vec<Vec<(&'static str, f64)>> =
        [32, 64, T].iter().map(|&r| m.profile_ops(r, T, reps)).collect::<d2c::error::Result<_>>().map_err(|e| e.to_string())?;
    let total = |k: usize| runs[k].iter().map(|x| x.1).sum::<f64>();
    let mut lines: Vec<Vec<String>> = Vec::new();
    for (op, _) in &runs[2] {
        let at = |k: usize| runs[k].iter().find(|x| x.0 == *op).map_or(0.0, |x| x.1);
        lines.push(vec![
            op.to_string(),
            format!("{:.2}", 1e3 * at(0)),
            format!("{:.2}", 1e3 * at(1)),
            format!("{:.2}", 1e3 * at(2)),
            format!("{:.1}%", 100.0 * at(1) / total(1).max(1e-12)),
        ]);
    }
    lines.push(vec![
        "total per layer".into(),
        format!("{:.2}", 1e3 * total(0)),
        format!("{:.2}", 1e3 * total(1)),
        format!("{:.2}", 1e3 * total(2)),
        "100%".into(),
    ]);
    // Matmul FLOPs of the projections per layer and the rate they ran at.
    let (d, f, kvd) = (info.d_model as f64, info.mlp_hidden as f64, (info.d_model / info.n_heads * info.kv_heads) as f64);
    let flops = |rows: f64| 2.0 * rows * (2.0 * d * d + 2.0 * d * kvd + 3.0 * d * f);
    let mm = |k: usize| runs[k].iter().filter(|x| x.0.ends_with("matmul")).map(|x| x.1).sum::<f64>();
    println!(
        "{} layers, d_model {}, {} heads ({} K/V), mlp {}; {}; ms per layer, mean of {reps} passes",
        info.n_layers,
        info.d_model,
        info.n_heads,
        info.kv_heads,
        info.mlp_hidden,
        dtype.name()
    );
    super::print_table(&["op", "@32 rows", "@64 rows", "@384 rows", "share @64"], &lines, markdown);
    println!(
        "projection matmuls: {:.0} GFLOP/s at 32 rows, {:.0} at 64, {:.0} at 384",
        flops(32.0) / mm(0).max(1e-12) / 1e9,
        flops(64.0) / mm(1).max(1e-12) / 1e9,
        flops(384.0) / mm(2).max(1e-12) / 1e9
    );
    Ok(())
}

//! `d2c bench --layer-timing`: forward time per layer at 384, 64 and 16 query rows (over a
//! 384-row K/V store) for each weight type, and what that means for a model of the same
//! width with `--extrapolate-layers` layers (LLaDA-8B: 32) at prompt 128 / gen 256: seconds
//! per step and tokens/s for no-cache (every step 384 rows) and d²Cache (one full step, then
//! about 64 rows a step), logits for the block's 32 rows.

use super::{load_model, Dtype};
use crate::model::DiffusionModel;
use std::path::Path;

pub fn run(dir: &Path, dtypes: &[Dtype], layers: usize, reps: usize, markdown: bool) -> Result<(), String> {
    const T: usize = 384;
    let header = ["dtype", "weights", "layer @384 rows", "@64", "@16", "head @32", "est. s/step no-cache", "est. s/step d2cache", "est. tokens/s no-cache", "est. tokens/s d2cache"];
    let mut lines = Vec::new();
    let mut shape = String::new();
    for &dt in dtypes {
        eprintln!("loading {} as {} ...", dir.display(), dt.name());
        let (m, _) = load_model(dir, dt)?;
        let info = m.info().clone();
        shape = format!("d_model {}, {} heads ({} K/V), mlp {}, vocab {}; measured on {} layers, extrapolated to {layers}", info.d_model, info.n_heads, info.kv_heads, info.mlp_hidden, info.logits_width, info.n_layers);
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
            crate::model::linear::fmt_bytes(m.weight_bytes() as u64),
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

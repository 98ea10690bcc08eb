//! `d2c bench --concurrent N`: what step-level batching buys. N requests of different prompt
//! lengths decode one after another, then together as one [`Batch`] (one forward per step for
//! all, as `d2c serve` runs them), per policy, in one process; the batch must reproduce every
//! request's tokens exactly.

use super::output::reported;
use super::{CliError, ErrorFormat};
use d2c::engine::{Engine, Prepared};
use d2c::runtime::{Batch, RunOptions, RunOutput};
use std::time::Instant;

/// Per policy: sequential vs batched tokens/s for `prompts`, as table lines.
pub fn compare(engine: &Engine, specs: &[String], shared: &[String], prompts: &[Vec<u32>]) -> Result<Vec<Vec<String>>, CliError> {
    let mut lines = Vec::new();
    for spec in specs {
        let (src, sets) = super::policy_spec(spec, shared)?;
        let prepared = reported(engine.prepare(&src, &sets)?, |p: &Prepared| &p.compiled.warnings, &src, ErrorFormat::Human)?;
        let plan = &prepared.compiled.plan;
        eprintln!("running {spec}: {} requests one after another, then as one batch ...", prompts.len());
        let t = Instant::now();
        let alone =
            prompts.iter().map(|p| engine.generate(&prepared, std::slice::from_ref(p), RunOptions::default())).collect::<Result<Vec<RunOutput>, _>>()?;
        let seq_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut batch = Batch::new(&engine.model);
        let ids = prompts.iter().map(|p| batch.join(plan, vec![p.clone()], RunOptions::default())).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
        let mut outs = std::collections::HashMap::new();
        let mut steps = 0usize;
        while !batch.is_empty() {
            for (id, r) in batch.step() {
                outs.insert(id, r.map_err(|e| e.to_string())?);
            }
            steps += 1;
        }
        let batch_s = t.elapsed().as_secs_f64();
        let same = ids.iter().zip(&alone).filter(|(id, a)| outs.get(id).is_some_and(|b| b.generated == a.generated)).count();
        let tokens: usize = alone.iter().map(|o| o.stats.generated_tokens).sum();
        let rows: f64 = alone.iter().map(|o| o.stats.mean_rows_per_step()).sum::<f64>() / alone.len().max(1) as f64;
        lines.push(vec![
            spec.trim_start_matches("policies/").to_string(),
            format!("{:.1}", rows),
            format!("{:.2}", tokens as f64 / seq_s),
            format!("{:.2}", tokens as f64 / batch_s),
            format!("{:.2}x", seq_s / batch_s),
            steps.to_string(),
            format!("{same}/{}", prompts.len()),
        ]);
    }
    Ok(lines)
}

pub const HEADER: [&str; 7] = ["policy", "rows/step", "tokens/s one by one", "tokens/s batched", "ratio", "batch steps", "same tokens"];

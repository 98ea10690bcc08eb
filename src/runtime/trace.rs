//! The `--trace FILE.json` format: one record per step, in the oracle's coordinates
//! (query positions absolute, committed positions relative to the canvas).

use super::output::RunOutput;
use serde_json::{json, Value};

fn score_json(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else if x > 0.0 {
        json!("inf")
    } else {
        json!("-inf")
    }
}

/// The trace of `out`; `block_length` lets pictures mark the blocks.
pub fn to_json(out: &RunOutput, policy: &str, block_length: Option<usize>) -> Value {
    let steps: Vec<Value> = out
        .steps
        .iter()
        .map(|r| {
            let mut step = json!({
                "step": r.step,
                "query_positions": match &r.query_positions { None => json!("all"), Some(q) => json!(q) },
                "committed": r.committed.iter().map(|c| c.iter().map(|(i, t)| json!([i, t])).collect::<Vec<_>>()).collect::<Vec<_>>(),
                "committed_conf": r.committed_conf,
            });
            if r.select_scores.iter().any(|s| !s.is_empty()) {
                step["select_scores"] = json!(r.select_scores.iter().map(|s| s.iter().map(|&x| score_json(x)).collect::<Vec<_>>()).collect::<Vec<_>>());
            }
            if r.importance.iter().any(|s| !s.is_empty()) {
                step["global_importance"] = json!(r.importance);
            }
            if r.layer_rows.iter().any(|s| !s.is_empty()) {
                // dLLM-Cache: per sequence, per layer, the absolute rows recomputed.
                step["layer_rows"] = json!(r.layer_rows);
            }
            if r.next_query_positions.iter().any(|s| !s.is_empty()) {
                step["next_query_positions"] = json!(r.next_query_positions);
            }
            step
        })
        .collect();
    let s = &out.stats;
    json!({
        "format": "d2c-trace",
        "version": crate::picture::TRACE_VERSION,
        "block_length": block_length,
        "policy": policy,
        "prompt_ids": out.prompts,
        "final_generated_ids": out.generated,
        "num_steps": s.steps,
        "num_forwards": s.forwards,
        "total_query_tokens": s.query_rows,
        "steps": steps,
    })
}

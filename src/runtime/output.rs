//! What a decode returns: the generated tokens, the per-step record and the counters.

use std::time::Duration;

/// One step of the decode, per sequence where it says so.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepRecord {
    pub step: usize,
    /// None: all rows (a full forward).
    pub query_positions: Option<Vec<Vec<usize>>>,
    /// (canvas position, token), best first.
    pub committed: Vec<Vec<(usize, u32)>>,
    /// The committed positions' score kind (confidence, margin or negative entropy: what the
    /// commit score is built from), before any prior.
    pub committed_conf: Vec<Vec<f64>>,
    /// Commit scores over the canvas, -inf for non-candidates (only with `record_details`).
    pub select_scores: Vec<Vec<f64>>,
    pub importance: Vec<Vec<f64>>,
    pub next_query_positions: Vec<Vec<usize>>,
    /// Layered (dLLM-Cache) forwards: per sequence, per layer, the rows recomputed.
    pub layer_rows: Vec<Vec<Vec<usize>>>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub steps: usize,
    pub forwards: usize,
    pub full_forwards: usize,
    /// Rows pushed through the model, summed over forwards and sequences.
    pub query_rows: usize,
    /// Rows a no-cache decode of the same steps would push.
    pub full_rows: usize,
    pub generated_tokens: usize,
    /// Approximate model FLOPs (matmuls only), for the ideal speedup of a cache.
    pub flops: f64,
    /// Layered forwards: rows recomputed summed over layers, and layers x rows available.
    pub layer_rows: usize,
    pub layer_slots: usize,
    /// Copies between host and model device (uploads of ids, angles and indices; downloads of
    /// logits and attention), summed over forwards: on a GPU each one synchronises.
    pub host_copies: usize,
    pub model_time: Duration,
    pub policy_time: Duration,
    pub wall_time: Duration,
}

impl Stats {
    /// Rows recomputed per forward; for layered forwards, the layer-averaged count.
    pub fn mean_rows_per_step(&self) -> f64 {
        self.full_rows as f64 * self.recompute_fraction() / self.forwards.max(1) as f64
    }
    pub fn recompute_fraction(&self) -> f64 {
        if self.layer_slots > 0 {
            return self.layer_rows as f64 / self.layer_slots as f64;
        }
        self.query_rows as f64 / self.full_rows.max(1) as f64
    }
    /// Add another run's counts and times to these (totals over several decodes).
    pub fn absorb(&mut self, s: &Stats) {
        self.steps += s.steps;
        self.forwards += s.forwards;
        self.full_forwards += s.full_forwards;
        self.query_rows += s.query_rows;
        self.full_rows += s.full_rows;
        self.generated_tokens += s.generated_tokens;
        self.flops += s.flops;
        self.layer_rows += s.layer_rows;
        self.layer_slots += s.layer_slots;
        self.host_copies += s.host_copies;
        self.model_time += s.model_time;
        self.policy_time += s.policy_time;
        self.wall_time += s.wall_time;
    }
    pub fn tokens_per_s(&self) -> f64 {
        self.generated_tokens as f64 / self.wall_time.as_secs_f64().max(1e-9)
    }
}

pub struct RunOutput {
    pub prompts: Vec<Vec<u32>>,
    pub generated: Vec<Vec<u32>>,
    pub steps: Vec<StepRecord>,
    pub stats: Stats,
}

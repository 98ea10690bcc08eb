//! The decode loop: semi-autoregressive blocks, one forward per step over the rows the plan
//! selects, a commit rule over the block's masked positions, then the refresh rules choose
//! the next step's rows. The state and the phases of a step live in [`super::decoder`], the
//! stepping of one or several decodes in [`super::batch`].

use super::batch::Batch;
use super::sampling::Sampling;
use super::select::CommitCount;
use crate::error::{Error, Result};
use crate::model::DiffusionModel;
use crate::plan::{CommitRule, Plan, Val};
use std::time::Duration;

/// A callback run after every step with what the decode has done so far.
pub type OnStep = Box<dyn FnMut(&Progress)>;

#[derive(Default)]
pub struct RunOptions {
    /// Keep per-step details (scores, importance) for parity checks and traces.
    pub record_details: bool,
    /// Called after every step.
    pub on_step: Option<OnStep>,
    /// Ids that end an answer (for `stop_at_eos`); empty = the model's EOS.
    pub stop_ids: Vec<u32>,
    /// Checked before every step: when set, the decode stops with [`Error::Cancelled`]
    /// (a server's client went away or its request timed out).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Where a decode stands after a step, for progress bars and live output.
pub struct Progress<'a> {
    pub steps: usize,
    pub committed: usize,
    pub canvas_size: usize,
    /// Per sequence, the canvas as it stands (masked positions hold `mask_id`).
    pub canvas: &'a [Vec<u32>],
    pub mask_id: u32,
    /// Prompt length: canvas position j is absolute position `prompt_len + j`.
    pub prompt_len: usize,
    /// The positions recomputed by this step's forward (None: all).
    pub recomputed: Option<&'a [Vec<usize>]>,
}

/// One step of the decode, per sequence where it says so.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepRecord {
    pub step: usize,
    /// None: all rows (a full forward).
    pub query_positions: Option<Vec<Vec<usize>>>,
    /// (canvas position, token), best first.
    pub committed: Vec<Vec<(usize, u32)>>,
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

fn need(v: &Val, what: &str) -> Result<f64> {
    v.as_f64().ok_or_else(|| Error::Other(format!("plan value `{what}` is not folded to a number ({v:?})")))
}

pub(super) struct Setup {
    pub(super) gen: usize,
    pub(super) block: usize,
    pub(super) per_step: usize,
    pub(super) stop_eos: bool,
    pub(super) sampling: Sampling,
    pub(super) seed: u64,
    pub(super) rule: CommitCount,
    pub(super) frozen: bool,
    pub(super) stale_candidates: bool,
}

pub(super) fn setup(plan: &Plan) -> Result<Setup> {
    let s = &plan.schedule;
    let gen = need(&s.gen_length, "gen_length")? as usize;
    let block = need(&s.block_length, "block_length")? as usize;
    if gen == 0 || block == 0 || !gen.is_multiple_of(block) {
        return Err(Error::input(format!("gen_length {gen} must be a positive multiple of block_length {block}")));
    }
    let rule = match &plan.commit.rule {
        CommitRule::TopN { n } => CommitCount::TopN(need(n, "n")? as usize),
        CommitRule::Threshold { threshold, min } => CommitCount::Threshold { threshold: need(threshold, "threshold")?, min: need(min, "min")? as usize },
        CommitRule::Factor { factor, min } => CommitCount::Factor { factor: need(factor, "factor")?, min: need(min, "min")? as usize },
    };
    Ok(Setup {
        gen,
        block,
        per_step: need(&s.tokens_per_step, "tokens_per_step")? as usize,
        stop_eos: s.stop_at_eos.as_bool().unwrap_or(false),
        sampling: Sampling {
            temperature: need(&s.temperature, "temperature")?,
            top_k: need(&s.top_k, "top_k")? as usize,
            top_p: need(&s.top_p, "top_p")?,
            never: None,
        },
        seed: need(&s.seed, "seed")? as u64,
        rule,
        frozen: plan.quirks.frozen_confidence_cache.as_bool().unwrap_or(false),
        stale_candidates: plan.quirks.stale_rows_are_candidates.as_bool().unwrap_or(false),
    })
}

/// Decode `prompts` (one per sequence, equal lengths) with `plan` on `model`.
///
/// The reference's `vanilla_generate`: the canvas is decoded in semi-autoregressive blocks;
/// each step of a block
/// 1. chooses the rows to push through the model (all of them, or the rows the previous
///    step's refresh rules chose),
/// 2. runs one forward over them (logits only where a rule reads them),
/// 3. commits positions of the block by the decode rule,
/// 4. chooses the next step's rows by the refresh rules,
///
/// until no masked position of the block is left. This is a [`Batch`] of one member: the
/// server's batches of independent requests run the same steps.
pub fn generate<M: DiffusionModel + ?Sized>(model: &M, plan: &Plan, prompts: &[Vec<u32>], opts: RunOptions) -> Result<RunOutput> {
    let mut batch = Batch::new(model);
    batch.join(plan, prompts.to_vec(), opts)?;
    loop {
        if let Some((_, result)) = batch.step().pop() {
            return result;
        }
    }
}

/// Matmul FLOPs of one sequence's forward: `rows` recomputed rows attending over `t` keys,
/// `logit_rows` rows through the LM head.
pub fn forward_flops(info: &crate::model::ModelInfo, rows: usize, t: usize, logit_rows: usize) -> f64 {
    let (d, f, l) = (info.d_model as f64, info.mlp_hidden as f64, info.n_layers as f64);
    let kv = (info.d_model / info.n_heads * info.kv_heads) as f64;
    // q and o are d x d, k and v d x kv_dim, three d x f FFN matrices; scores and the
    // weighted sum over t keys.
    let per_row = 2.0 * (2.0 * d * d + 2.0 * d * kv + 3.0 * d * f) + 4.0 * t as f64 * d;
    l * rows as f64 * per_row + 2.0 * logit_rows as f64 * d * info.logits_width as f64
}

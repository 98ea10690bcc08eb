//! Executing a compiled plan on a model: the decode loop, step-level batching of independent
//! decodes ([`Batch`]), selection kernels, rollout, the confidence cache and the step trace.
//! Nothing policy-specific lives here: d²Cache is just the plan compiled from
//! `policies/d2cache.pol`.
//!
//! Files in dependency order: `options`, `output`, `cost`, `kernels`, `commit`, `sampling`,
//! `settings` (the plan, typed and checked once), `scores`, `refresh`, `layers`, `rollout`,
//! `decoder` (the state and phases of a step), `batch` (stepping one or several decodes),
//! `trace`; each file imports only files before it.

pub mod batch;
pub mod commit;
pub mod cost;
mod decoder;
pub mod history;
pub mod kernels;
pub mod layers;
pub mod options;
pub mod output;
pub mod refresh;
pub mod rollout;
pub mod sampling;
pub mod scores;
pub mod settings;
pub mod token_freq;
pub mod trace;

pub use batch::{Batch, MemberId};
pub use cost::forward_flops;
pub use options::{OnStep, Progress, RunOptions};
pub use output::{RunOutput, Stats, StepRecord};
pub use settings::DecodeSettings;

use crate::error::Result;
use crate::model::DiffusionModel;
use crate::plan::Plan;

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

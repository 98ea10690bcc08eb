//! Executing a compiled plan on a model: the decode loop, step-level batching of independent
//! decodes ([`Batch`]), selection kernels, rollout, the confidence cache and the step trace.
//! Nothing policy-specific lives here: d²Cache is just the plan compiled from
//! `policies/d2cache.pol`.

pub mod batch;
mod decoder;
pub mod exec;
pub mod layers;
pub mod rollout;
pub mod rows;
pub mod sampling;
pub mod scores;
pub mod select;
pub mod trace;

pub use batch::{Batch, MemberId};
pub use exec::{generate, Progress, RunOptions, RunOutput, Stats, StepRecord};

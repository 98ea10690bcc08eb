//! d2c: declarative cache and decoding policies for diffusion language models.
//!
//! Pipeline: [`syntax`] (pest parse to an AST with spans) -> [`check`] (all diagnostics at once)
//! -> [`plan`] (closed-enum ops, optimisation passes) -> [`runtime`] (executor, selection
//! kernels, K/V store, trace) -> [`model`] (LLaDA; knows nothing about policies).

pub mod chat;
pub mod check;
pub mod compile;
pub mod diag;
pub mod engine;
pub mod error;
pub mod eval;
pub mod generation_config;
pub mod model;
pub mod picture;
pub mod plan;
pub mod runtime;
pub mod serve;
pub mod snapshot;
pub mod source;
pub mod syntax;
pub mod train;

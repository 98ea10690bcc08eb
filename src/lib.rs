//! d2c: declarative cache and decoding policies for diffusion language models.
//!
//! Pipeline: [`syntax`] (pest parse to an AST with spans) -> [`check`] (all diagnostics at once)
//! -> [`plan`] (closed-enum ops, optimisation passes) -> [`runtime`] (executor, selection
//! kernels, K/V store, trace) -> [`model`] (LLaDA; knows nothing about policies).

pub mod diag;
pub mod error;
pub mod model;
pub mod plan;
pub mod runtime;
pub mod syntax;
pub mod chat;
pub mod check;
pub mod generation_config;
pub mod cli;
pub mod compile;
pub mod engine;
pub mod picture;
pub mod serve;
pub mod snapshot;
pub mod eval;
pub mod train;

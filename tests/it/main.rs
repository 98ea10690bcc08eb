//! The integration suite, one binary (one link of candle, tokenizers and axum instead of one
//! per file). `support` holds what several files share; each other module is one area.

mod support;

mod batching;
mod behaviour;
mod chat;
mod cli;
mod diagnostics;
mod docs;
mod eval;
mod forward;
mod parity;
mod plans;
mod quantized;
mod serve;
mod train;

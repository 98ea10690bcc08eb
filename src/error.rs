//! Errors of the non-policy parts of d2c (model loading, tokenizing, decoding, I/O).
//!
//! Policy problems are not errors in this sense: they are collected as diagnostics by
//! [`crate::check`]. Every variant names the file, tensor or value at fault so that the CLI
//! can print one line and exit non-zero.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: invalid config: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}")]
    TensorShape { name: String, expected: Vec<usize>, got: Vec<usize> },
    #[error("tensor `{name}` has unsupported dtype {dtype} (supported: f32, bf16, f16)")]
    TensorDtype { name: String, dtype: String },
    #[error("invalid input: {0}")]
    Input(String),
    /// A prompt plus the answer canvas does not fit the model.
    #[error("the prompt is {prompt} tokens; with gen_length {gen} that is {} > the model's maximum sequence length {max}", prompt + gen)]
    PromptTooLong { prompt: usize, gen: usize, max: usize },
    /// A prompt id the model's vocabulary does not have.
    #[error("token id {id} is outside the vocabulary (0..{width})")]
    TokenOutOfRange { id: u32, width: usize },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Other(String),
    #[error("decode cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        Error::Io { path: path.into(), message: err.to_string() }
    }
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }
}

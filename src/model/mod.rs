//! Diffusion language models, knowing nothing about policies.
//!
//! The one primitive every cache policy needs is [`DiffusionModel::forward`]: push an arbitrary
//! subset of token rows (ids + absolute positions) through the network, write their fresh K/V
//! into a caller-owned [`KvStore`], attend over all cached rows, and return logits only for the
//! rows asked for (plus, on request, per-layer head-mean attention rows for rollout).
//! A full forward is the special case "all rows".

pub mod config;
pub mod kv;
pub mod llada;
pub mod load;
pub mod tokenizer;

pub use config::LladaConfig;
pub use kv::KvStore;
pub use llada::Llada;

use crate::error::Result;
use candle_core::Tensor;

/// What a decoder needs to know about a model, independent of its architecture.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub arch: String,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub mlp_hidden: usize,
    /// Width of the logits (embedding rows, may exceed the tokenizer's vocabulary).
    pub logits_width: usize,
    pub mask_id: u32,
    pub eos_id: u32,
    pub max_seq_len: usize,
    /// Dream-style models: position i-1 predicts token i.
    pub logits_shifted: bool,
}

/// One forward over a subset of rows, for every sequence of a batch.
///
/// `positions[b]` are absolute positions (ascending) of the rows recomputed for sequence `b`;
/// all sequences push the same number of rows. `ids[b][i]` is the token at `positions[b][i]`.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    pub ids: Vec<Vec<u32>>,
    pub positions: Vec<Vec<usize>>,
    /// Row indices (into `positions[b]`) whose logits are wanted; every sequence the same count.
    pub logit_rows: Vec<Vec<usize>>,
    /// Return head-mean attention probabilities of the query rows at every layer.
    pub want_attention: bool,
}

impl ForwardRequest {
    /// All `len` rows of every sequence, logits for positions `>= logits_from`.
    pub fn full(tokens: &[Vec<u32>], logits_from: usize, want_attention: bool) -> Self {
        let len = tokens.first().map_or(0, |t| t.len());
        let positions: Vec<Vec<usize>> = tokens.iter().map(|_| (0..len).collect()).collect();
        let logit_rows = tokens.iter().map(|_| (logits_from..len).collect()).collect();
        ForwardRequest { ids: tokens.to_vec(), positions, logit_rows, want_attention }
    }
}

pub struct ForwardOutput {
    /// (B, n_logit_rows, logits_width), f32.
    pub logits: Tensor,
    /// Per layer, (B, n_query_rows, T) head-mean attention, f32; empty unless asked for.
    pub attention: Vec<Tensor>,
}

/// Which response rows one layer recomputes in a [`LayeredRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseRows {
    None,
    All,
    /// The `k` response rows whose fresh value vectors have the lowest cosine similarity to
    /// the cached ones; the fresh values of *all* response rows are written to the cache.
    LeastSimilarValues(usize),
}

/// The rows one layer recomputes: the prompt (all or none) and some response rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerRows {
    pub prompt: bool,
    pub response: ResponseRows,
}

/// A forward in which every row's hidden state flows through every layer, but each layer
/// recomputes attention and FFN only for its own rows; the other rows add their cached layer
/// outputs (dLLM-Cache, Liu et al. 2025).
#[derive(Debug, Clone)]
pub struct LayeredRequest {
    /// All rows of every sequence (prompt then canvas), equal lengths.
    pub ids: Vec<Vec<u32>>,
    pub prompt_len: usize,
    /// One entry per layer.
    pub layers: Vec<LayerRows>,
}

pub struct LayeredOutput {
    /// (B, T - prompt_len, logits_width): logits of every canvas row.
    pub logits: Tensor,
    /// Per layer, per sequence: the absolute positions recomputed, in query order.
    pub refreshed: Vec<Vec<Vec<usize>>>,
}

pub trait DiffusionModel {
    fn info(&self) -> &ModelInfo;
    /// A zeroed K/V store for `batch` sequences of `len` positions.
    fn new_kv_store(&self, batch: usize, len: usize) -> Result<KvStore>;
    fn forward(&self, req: &ForwardRequest, kv: &mut KvStore) -> Result<ForwardOutput>;
    /// Zeroed per-layer attention/FFN output caches for [`DiffusionModel::forward_layered`].
    fn new_layer_cache(&self, _batch: usize, _len: usize) -> Result<LayerCache> {
        Err(crate::error::Error::Other(format!("{} does not support per-layer caches", self.info().arch)))
    }
    fn forward_layered(&self, _req: &LayeredRequest, _kv: &mut KvStore, _cache: &mut LayerCache) -> Result<LayeredOutput> {
        Err(crate::error::Error::Other(format!("{} does not support per-layer caches", self.info().arch)))
    }
}

/// Per-layer outputs of the attention and FFN sub-blocks for every row, (B, T, d_model) each;
/// owned by the decoder like the [`KvStore`].
pub struct LayerCache {
    pub(crate) attn: Vec<Tensor>,
    pub(crate) ffn: Vec<Tensor>,
}

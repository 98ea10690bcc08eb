//! Diffusion language models, knowing nothing about policies.
//!
//! Two families share one network ([`transformer::Transformer`]): LLaDA (`llada.rs`) and
//! Dream (`dream.rs`, Qwen2 layout, logits shifted by one), each a description behind the
//! [`family::Family`] trait. [`load`] picks the family from `config.json` or the GGUF
//! architecture; nothing outside this module asks which family it has, only what the model
//! says in its [`ModelInfo`].
//!
//! The one primitive every cache policy needs is [`DiffusionModel::forward`]: push an arbitrary
//! subset of token rows (ids + absolute positions) through the network, write their fresh K/V
//! into a caller-owned [`KvStore`], attend over all cached rows, and return logits only for the
//! rows asked for (plus, on request, per-layer head-mean attention rows for rollout).
//! A full forward is the special case "all rows".

pub mod dream;
pub mod family;
pub mod gemm;
pub mod gguf;
pub mod kv;
pub mod linear;
pub mod llada;
pub mod random;
pub mod registry;
pub mod safetensors;
pub mod simd;
pub mod softmax;
pub mod tokenizer;
pub mod transformer;

pub use dream::DreamConfig;
pub use family::Family;
pub use kv::KvStore;
pub use llada::LladaConfig;
pub use registry::FAMILIES;
pub use transformer::Transformer;

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// Load the checkpoint folder `dir` (config.json + safetensors) of either family.
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Transformer> {
    load_as(dir, linear::WeightType::Dense(dtype), device)
}

/// Load `dir` with its linear weights stored as `ty` (dense or quantized at load), or a
/// `.gguf` file (quantized tensors stay as stored; float ones become `ty`).
pub fn load_as(dir: &Path, ty: linear::WeightType, device: &Device) -> Result<Transformer> {
    if dir.extension().is_some_and(|e| e == "gguf") {
        return gguf::load(dir, ty, device).map(|(m, _)| m);
    }
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(Error::io(&config, "no config.json (expected a Hugging Face model folder)"));
    }
    safetensors::load(registry::of_config(&config)?, dir, ty, device)
}

/// Parameters of a network of shape `s`.
pub fn param_count(s: &transformer::Spec) -> usize {
    let (d, kv, f) = (s.d_model, s.kv_dim(), s.mlp_hidden);
    2 * s.emb_rows * d + s.n_layers * (2 * d * d + 2 * d * kv + 3 * d * f + 2 * d) + d
}

/// Refuse up front a load that cannot fit in the memory available, instead of being killed
/// by the OOM killer half-way.
pub fn check_fits(s: &transformer::Spec, ty: linear::WeightType) -> Result<()> {
    let need = param_count(s) as f64 * ty.bytes_per_weight();
    match linear::available_memory_bytes() {
        Some(avail) if need > avail as f64 => Err(Error::Other(format!(
            "the weights need {:.1} GB as {} but only {:.1} GB of memory is available; use --dtype bf16, q8_0 or q4_k",
            need / 1e9,
            ty.name(),
            avail as f64 / 1e9
        ))),
        _ => Ok(()),
    }
}

/// What a decoder needs to know about a model, independent of its architecture.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub arch: String,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    /// K/V heads (fewer than `n_heads` with grouped-query attention).
    pub kv_heads: usize,
    pub mlp_hidden: usize,
    /// Width of the logits (embedding rows, may exceed the tokenizer's vocabulary).
    pub logits_width: usize,
    pub mask_id: u32,
    pub eos_id: u32,
    pub max_seq_len: usize,
    /// Logits for position `i` come from row `i - logits_shift`: 0 for LLaDA, 1 for models
    /// adapted from an autoregressive LM (Dream), whose row `i - 1` predicts token `i`.
    pub logits_shift: usize,
}

impl ModelInfo {
    /// What a network of shape `s` tells the decoder; `logits_shift` is 1 for models whose
    /// row `i - 1` predicts token `i`.
    pub fn of(arch: &str, s: &transformer::Spec, mask_id: u32, eos_id: u32, logits_shift: usize) -> Self {
        ModelInfo {
            arch: arch.into(),
            n_layers: s.n_layers,
            d_model: s.d_model,
            n_heads: s.n_heads,
            kv_heads: s.kv_heads,
            mlp_hidden: s.mlp_hidden,
            logits_width: s.emb_rows,
            mask_id,
            eos_id,
            max_seq_len: s.max_len,
            logits_shift,
        }
    }
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
    /// Host-to-device copies this forward made.
    pub uploads: usize,
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
    /// Logits are returned for rows `logits_from..T`.
    pub logits_from: usize,
    /// One entry per layer.
    pub layers: Vec<LayerRows>,
}

pub struct LayeredOutput {
    /// (B, T - logits_from, logits_width): logits of every row from `logits_from` on.
    pub logits: Tensor,
    /// Per layer, per sequence: the absolute positions recomputed, in query order.
    pub refreshed: Vec<Vec<Vec<usize>>>,
    /// Host-to-device copies this forward made.
    pub uploads: usize,
}

pub trait DiffusionModel {
    fn info(&self) -> &ModelInfo;
    /// A zeroed K/V store for `batch` sequences of `len` positions.
    fn new_kv_store(&self, batch: usize, len: usize) -> Result<KvStore>;
    fn forward(&self, req: &ForwardRequest, kv: &mut KvStore) -> Result<ForwardOutput>;
    /// Several independent forwards in one step (requests of different lengths, each with its
    /// own K/V store), each output exactly what [`DiffusionModel::forward`] gives it alone. A
    /// model may share work between them (the weights streamed once); this default runs them
    /// one after another.
    fn forward_many(&self, parts: &mut [(&ForwardRequest, &mut KvStore)]) -> Result<Vec<ForwardOutput>> {
        parts.iter_mut().map(|(req, kv)| self.forward(req, kv)).collect()
    }
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

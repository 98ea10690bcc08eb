//! Model families as data: what tells a family's checkpoint apart (its `config.json` and GGUF
//! architecture), where its tensors are, and the few ways its network differs from the shared
//! [`super::transformer::Transformer`] (logits shift, q/k/v bias, GGUF's RoPE row order).
//!
//! Every place that needs to know a family reads it from here: the safetensors loader
//! ([`super::safetensors::load`]), the GGUF reader and writer, `d2c make-model` and training.
//! A new family is one file implementing [`Family`] plus one line in
//! [`super::registry::FAMILIES`] (docs/architecture.md has the recipe).

use super::transformer::Spec;
use crate::error::Result;
use std::path::Path;

/// The parts of a block, in the order [`TensorNames::parts`] lists their checkpoint names:
/// the two norms, q, k, v, attention output, gate, up, down.
pub const BLOCK_PARTS: [&str; 9] = ["attn_norm", "ffn_norm", "q", "k", "v", "o", "gate", "up", "down"];

/// Where a family's checkpoint keeps each tensor, without the `.weight` / `.bias` suffix.
#[derive(Debug)]
pub struct TensorNames {
    pub embed: &'static str,
    pub head: &'static str,
    pub final_norm: &'static str,
    /// Block `i`'s prefix, with `{i}` standing for the index.
    pub block: &'static str,
    /// Each block part's name under the block prefix, in [`BLOCK_PARTS`] order.
    pub parts: [&'static str; 9],
}

impl TensorNames {
    /// Block `i`'s part `k` ([`BLOCK_PARTS`] order), e.g. `model.layers.3.self_attn.q_proj`.
    pub fn block_part(&self, i: usize, k: usize) -> String {
        format!("{}.{}", self.block.replace("{i}", &i.to_string()), self.parts[k])
    }
}

/// What a checkpoint's `config.json` says that the network and the decoder need.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub spec: Spec,
    pub mask_id: u32,
    pub eos_id: u32,
    /// The LM head shares the embedding matrix.
    pub tied_head: bool,
}

/// A real checkpoint's shape and ids, for `d2c make-model --preset NAME`.
pub struct Preset {
    pub name: &'static str,
    pub about: &'static str,
    pub config: ModelConfig,
}

/// One model family. Implementations hold no state: they are descriptions.
pub trait Family: Sync {
    /// The family's name: `ModelInfo::arch`, GGUF `general.architecture`, `make-model --family`.
    fn arch(&self) -> &'static str;
    /// `config.json`'s `model_type` (compared ignoring case) and the prefix of its
    /// `architectures[0]` that name this family.
    fn config_names(&self) -> (&'static str, &'static str);
    fn names(&self) -> &'static TensorNames;
    /// Logits for position `i` come from row `i - logits_shift` (1 for models adapted from an
    /// autoregressive LM).
    fn logits_shift(&self) -> usize;
    /// q, k and v projections carry a bias.
    fn qkv_bias(&self) -> bool;
    /// llama.cpp's converter permutes the rows of q and k for GGML's interleaved RoPE.
    fn gguf_permutes_qk(&self) -> bool;
    /// Read and validate `config.json`.
    fn read_config(&self, path: &Path) -> Result<ModelConfig>;
    /// A `config.json` for `c` with the keys the family's own code expects (`make-model`).
    fn write_config(&self, c: &ModelConfig, note: &str) -> serde_json::Value;
    /// RoPE base, RMSNorm epsilon and K/V heads (given the query heads) of a small model
    /// made without a preset.
    fn small_defaults(&self, heads: usize) -> (f64, f64, usize);
    fn presets(&self) -> Vec<Preset>;
}

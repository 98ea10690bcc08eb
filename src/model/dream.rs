//! Dream (Ye et al. 2025): Qwen2.5 turned into a masked diffusion model. The network is
//! Qwen2's (q/k/v bias, grouped-query attention, RoPE θ from the config, untied head); what
//! sets it apart for decoding is that it keeps its autoregressive heritage: the logits that
//! decide position `i` come from row `i - 1` (`ModelInfo::logits_shift = 1`).
//!
//! [`DreamConfig`] mirrors the `config.json` that Dream-v0-Instruct-7B ships; tensor names are
//! the checkpoint's (`model.layers.N.self_attn.{q,k,v,o}_proj`, `mlp.{gate,up,down}_proj`).

use super::linear::{Embed, Proj, WeightType};
use super::load::Weights;
use super::transformer::{Block, BlockWeights, Parts, Spec, Transformer};
use super::ModelInfo;
use crate::error::{Error, Result};
use candle_core::{DType, Device};
use serde::Deserialize;
use std::path::Path;

/// Dream's `config.json` (the `DreamConfig` keys d2c reads). Every key of the shape is
/// required: unlike LLaDA there is no single canonical size to fall back on.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct DreamConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub vocab_size: usize,
    #[serde(default = "d_theta")]
    pub rope_theta: f64,
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "d_max_pos")]
    pub max_position_embeddings: usize,
    pub mask_token_id: u32,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    pub eos_token_id: u32,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub use_sliding_window: bool,
}

fn d_theta() -> f64 {
    1e6
}
fn d_eps() -> f64 {
    1e-6
}
fn d_max_pos() -> usize {
    131072
}
fn d_act() -> String {
    "silu".into()
}

impl DreamConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: DreamConfig = serde_json::from_str(&text).map_err(|e| Error::Config { path: path.into(), message: e.to_string() })?;
        cfg.validate().map_err(|message| Error::Config { path: path.into(), message })?;
        Ok(cfg)
    }

    /// Shape and feature checks; the message names the offending keys.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("vocab_size", self.vocab_size),
            ("num_key_value_heads", self.num_key_value_heads),
        ] {
            if v == 0 {
                return Err(format!("{key} must be positive"));
            }
        }
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!("hidden_size {} is not divisible by num_attention_heads {}", self.hidden_size, self.num_attention_heads));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return Err(format!("num_attention_heads {} is not a multiple of num_key_value_heads {}", self.num_attention_heads, self.num_key_value_heads));
        }
        if !(self.hidden_size / self.num_attention_heads).is_multiple_of(2) {
            return Err(format!("head size {} must be even for RoPE", self.hidden_size / self.num_attention_heads));
        }
        if self.hidden_act != "silu" {
            return Err(format!("hidden_act `{}` is not supported (Dream uses `silu`)", self.hidden_act));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err("rope_scaling is not supported (Dream-v0 ships `null`)".into());
        }
        if self.use_sliding_window {
            return Err("use_sliding_window = true is not supported (a diffusion model attends to every position)".into());
        }
        if self.mask_token_id as usize >= self.vocab_size {
            return Err(format!("mask_token_id {} is outside the vocabulary (vocab_size {})", self.mask_token_id, self.vocab_size));
        }
        Ok(())
    }

    pub fn spec(&self) -> Spec {
        Spec {
            n_layers: self.num_hidden_layers,
            d_model: self.hidden_size,
            n_heads: self.num_attention_heads,
            kv_heads: self.num_key_value_heads,
            mlp_hidden: self.intermediate_size,
            emb_rows: self.vocab_size,
            rms_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            max_len: self.max_position_embeddings,
        }
    }
}

/// Load a Dream checkpoint folder (config.json + safetensors) in `dtype` on `device`.
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Transformer> {
    load_as(dir, WeightType::Dense(dtype), device)
}

/// Load with the linear weights stored as `ty` (quantized tensor by tensor as they are read).
pub fn load_as(dir: &Path, ty: WeightType, device: &Device) -> Result<Transformer> {
    let cfg = DreamConfig::from_file(&dir.join("config.json"))?;
    let s = cfg.spec();
    super::check_fits(&s, ty)?;
    let w = Weights::open(dir, ty.load_dtype(), device)?;
    let (d, kvd, ff, rows) = (s.d_model, s.kv_dim(), s.mlp_hidden, s.emb_rows);
    let embed_w = w.get("model.embed_tokens.weight", &[rows, d])?;
    let mut blocks = Vec::with_capacity(s.n_layers);
    for i in 0..s.n_layers {
        let t = |name: &str, shape: &[usize]| w.get(&format!("model.layers.{i}.{name}"), shape);
        let bw = BlockWeights {
            attn_norm: t("input_layernorm.weight", &[d])?,
            ffn_norm: t("post_attention_layernorm.weight", &[d])?,
            q: t("self_attn.q_proj.weight", &[d, d])?,
            k: t("self_attn.k_proj.weight", &[kvd, d])?,
            v: t("self_attn.v_proj.weight", &[kvd, d])?,
            qkv_bias: Some((t("self_attn.q_proj.bias", &[d])?, t("self_attn.k_proj.bias", &[kvd])?, t("self_attn.v_proj.bias", &[kvd])?)),
            o: t("self_attn.o_proj.weight", &[d, d])?,
            gate: t("mlp.gate_proj.weight", &[ff, d])?,
            up: t("mlp.up_proj.weight", &[ff, d])?,
            down: t("mlp.down_proj.weight", &[d, ff])?,
            names: ["self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj"].map(|n| format!("model.layers.{i}.{n}.weight")),
        };
        blocks.push(Block::new(bw, ty)?);
    }
    let final_norm = w.get("model.norm.weight", &[d])?;
    let head_w = if cfg.tie_word_embeddings { embed_w.clone() } else { w.get("lm_head.weight", &[rows, d])? };
    let head = Proj::new("lm_head.weight", head_w, None, ty.for_head())?;
    let embed = Embed::new("model.embed_tokens.weight", embed_w, ty)?;
    let info = ModelInfo::of("dream", &s, cfg.mask_token_id, cfg.eos_token_id, 1);
    Transformer::new(Parts { spec: s, info, embed, blocks, final_norm, head }, ty.activations(device), device)
}

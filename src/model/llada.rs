//! LLaDA (Nie et al. 2025): a LLaMA-style encoder with bidirectional attention, RoPE,
//! RMSNorm, SwiGLU and an untied head, loaded from the real checkpoints' tensor names
//! (`model.transformer.blocks.N.{q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out}`).
//!
//! [`LladaConfig`] mirrors `config.json` field for field. Keys missing from the file take the
//! values of LLaDA-8B's shipped config, so a partial config (as some conversions write) still
//! loads as the real model would.

use super::family::{Family, ModelConfig, Preset, TensorNames};
use super::transformer::Spec;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The LLaDA family.
pub struct Llada;

/// LLaDA's tensor names. `ff_proj` is the gated branch: ff_out(silu(ff_proj(h)) * up_proj(h)).
pub static NAMES: TensorNames = TensorNames {
    embed: "model.transformer.wte",
    head: "model.transformer.ff_out",
    final_norm: "model.transformer.ln_f",
    block: "model.transformer.blocks.{i}",
    parts: ["attn_norm", "ff_norm", "q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"],
};

impl Family for Llada {
    fn arch(&self) -> &'static str {
        "llada"
    }
    fn config_names(&self) -> (&'static str, &'static str) {
        ("llada", "LLaDA")
    }
    fn names(&self) -> &'static TensorNames {
        &NAMES
    }
    fn logits_shift(&self) -> usize {
        0
    }
    fn qkv_bias(&self) -> bool {
        false
    }
    fn gguf_permutes_qk(&self) -> bool {
        true
    }
    fn read_config(&self, path: &Path) -> Result<ModelConfig> {
        let c = LladaConfig::from_file(path)?;
        Ok(ModelConfig { spec: c.spec(), mask_id: c.mask_token_id, eos_id: c.eos_token_id, tied_head: c.weight_tying })
    }
    fn write_config(&self, c: &ModelConfig, note: &str) -> serde_json::Value {
        let s = &c.spec;
        serde_json::json!({
            "model_type": "llada", "architectures": ["LLaDAModelLM"], "d_model": s.d_model, "n_heads": s.n_heads, "n_kv_heads": s.kv_heads,
            "n_layers": s.n_layers, "mlp_hidden_size": s.mlp_hidden, "vocab_size": s.emb_rows, "embedding_size": s.emb_rows, "max_sequence_length": s.max_len,
            "rope_theta": s.rope_theta, "rms_norm_eps": s.rms_eps, "mask_token_id": c.mask_id, "eos_token_id": c.eos_id, "pad_token_id": c.eos_id,
            "weight_tying": c.tied_head, "include_bias": false, "block_type": "llama", "activation_type": "silu", "torch_dtype": "float32",
            // The keys LLaDA's own modelling code needs beyond those d2c reads (its defaults
            // differ: no RoPE, a learned position table), so the authors' reference loads this
            // folder as it is (scripts/bench-reference.sh).
            "rope": true, "rope_full_precision": true, "alibi": false, "flash_attention": false, "include_qkv_bias": false,
            "layer_norm_type": "rms", "layer_norm_with_affine": true, "bias_for_layer_norm": false, "attention_layer_norm": false,
            "block_group_size": 1, "scale_logits": false, "input_emb_norm": false, "mlp_ratio": 4,
            "attention_dropout": 0.0, "residual_dropout": 0.0, "embedding_dropout": 0.0, "init_device": "cpu", "use_cache": false,
            "d2c_note": note,
        })
    }
    fn small_defaults(&self, heads: usize) -> (f64, f64, usize) {
        (500000.0, 1e-5, heads)
    }
    fn presets(&self) -> Vec<Preset> {
        let spec = Spec {
            n_layers: 32,
            d_model: 4096,
            n_heads: 32,
            kv_heads: 32,
            mlp_hidden: 12288,
            emb_rows: 126464,
            rms_eps: 1e-5,
            rope_theta: 500000.0,
            max_len: 4096,
        };
        let about = "LLaDA-8B: d_model 4096, 32 layers, 32 heads, SwiGLU 12288, vocab 126464";
        vec![Preset { name: "llada-8b", about, config: ModelConfig { spec, mask_id: 126336, eos_id: 126081, tied_head: false } }]
    }
}

fn d_d_model() -> usize {
    4096
}
fn d_n_heads() -> usize {
    32
}
fn d_n_layers() -> usize {
    32
}
fn d_mlp_hidden() -> Option<usize> {
    Some(12288)
}
fn d_mlp_ratio() -> usize {
    4
}
fn d_vocab() -> usize {
    126464
}
fn d_eps() -> f64 {
    1e-5
}
fn d_theta() -> f64 {
    500000.0
}
fn d_max_seq() -> usize {
    4096
}
fn d_mask() -> u32 {
    126336
}
fn d_eos() -> u32 {
    126081
}
fn d_true() -> bool {
    true
}
fn d_block_type() -> String {
    "llama".into()
}
fn d_activation() -> String {
    "silu".into()
}
fn d_norm() -> String {
    "rms".into()
}
fn d_dtype() -> String {
    "bfloat16".into()
}

/// LLaDA's `config.json` (the `LLaDAConfig` / OLMo-style `ModelConfig` keys d2c reads).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct LladaConfig {
    #[serde(default = "d_d_model")]
    pub d_model: usize,
    #[serde(default = "d_n_heads")]
    pub n_heads: usize,
    #[serde(default)]
    pub n_kv_heads: Option<usize>,
    #[serde(default = "d_n_layers")]
    pub n_layers: usize,
    #[serde(default = "d_mlp_hidden")]
    pub mlp_hidden_size: Option<usize>,
    #[serde(default = "d_mlp_ratio")]
    pub mlp_ratio: usize,
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default)]
    pub embedding_size: Option<usize>,
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "d_theta")]
    pub rope_theta: f64,
    #[serde(default = "d_max_seq")]
    pub max_sequence_length: usize,
    #[serde(default = "d_mask")]
    pub mask_token_id: u32,
    #[serde(default = "d_eos")]
    pub eos_token_id: u32,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub weight_tying: bool,
    #[serde(default)]
    pub include_bias: bool,
    #[serde(default)]
    pub include_qkv_bias: bool,
    #[serde(default = "d_true")]
    pub rope: bool,
    #[serde(default)]
    pub alibi: bool,
    #[serde(default = "d_block_type")]
    pub block_type: String,
    #[serde(default = "d_activation")]
    pub activation_type: String,
    #[serde(default = "d_norm")]
    pub layer_norm_type: String,
    #[serde(default = "d_dtype")]
    pub torch_dtype: String,
}

impl LladaConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: LladaConfig = serde_json::from_str(&text).map_err(|e| Error::Config { path: path.into(), message: e.to_string() })?;
        cfg.validate().map_err(|message| Error::Config { path: path.into(), message })?;
        Ok(cfg)
    }

    pub fn kv_heads(&self) -> usize {
        self.n_kv_heads.unwrap_or(self.n_heads)
    }
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }
    pub fn mlp_hidden(&self) -> usize {
        self.mlp_hidden_size.unwrap_or(self.mlp_ratio * self.d_model)
    }
    /// Rows of the embedding and LM head (may exceed `vocab_size`, padded for speed).
    pub fn emb_rows(&self) -> usize {
        self.embedding_size.unwrap_or(self.vocab_size)
    }

    /// Shape and feature checks; the message names the offending keys.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, v) in [("d_model", self.d_model), ("n_layers", self.n_layers), ("mlp_hidden_size", self.mlp_hidden()), ("vocab_size", self.emb_rows())] {
            if v == 0 {
                return Err(format!("{key} must be positive"));
            }
        }
        if self.n_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            return Err(format!("d_model {} is not divisible by n_heads {}", self.d_model, self.n_heads));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!("head dim {} must be even for RoPE", self.head_dim()));
        }
        if !self.n_heads.is_multiple_of(self.kv_heads()) {
            return Err(format!("n_heads {} is not a multiple of n_kv_heads {}", self.n_heads, self.kv_heads()));
        }
        if self.block_type != "llama" {
            return Err(format!("block_type `{}` is not supported (only `llama`)", self.block_type));
        }
        if self.activation_type != "silu" {
            return Err(format!("activation_type `{}` is not supported with block_type llama (LLaDA uses `silu`)", self.activation_type));
        }
        if self.layer_norm_type != "rms" {
            return Err(format!("layer_norm_type `{}` is not supported (only `rms`)", self.layer_norm_type));
        }
        if !self.rope || self.alibi {
            return Err("only RoPE position encoding is supported (rope=true, alibi=false)".into());
        }
        if self.include_bias || self.include_qkv_bias {
            return Err("linear biases (include_bias / include_qkv_bias) are not supported for LLaDA".into());
        }
        if (self.mask_token_id as usize) >= self.emb_rows() {
            return Err(format!("mask_token_id {} is outside the embedding ({} rows)", self.mask_token_id, self.emb_rows()));
        }
        Ok(())
    }

    /// The network's shape.
    pub fn spec(&self) -> Spec {
        Spec {
            n_layers: self.n_layers,
            d_model: self.d_model,
            n_heads: self.n_heads,
            kv_heads: self.kv_heads(),
            mlp_hidden: self.mlp_hidden(),
            emb_rows: self.emb_rows(),
            rms_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            max_len: self.max_sequence_length,
        }
    }
}

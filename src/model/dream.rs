//! Dream (Ye et al. 2025): Qwen2.5 turned into a masked diffusion model. The network is
//! Qwen2's (q/k/v bias, grouped-query attention, RoPE θ from the config, untied head); what
//! sets it apart for decoding is that it keeps its autoregressive heritage: the logits that
//! decide position `i` come from row `i - 1` (`ModelInfo::logits_shift = 1`).
//!
//! [`DreamConfig`] mirrors the `config.json` that Dream-v0-Instruct-7B ships; tensor names are
//! the checkpoint's (`model.layers.N.self_attn.{q,k,v,o}_proj`, `mlp.{gate,up,down}_proj`).

use super::family::{Family, ModelConfig, Preset, TensorNames};
use super::transformer::Spec;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The Dream family.
pub struct Dream;

pub static NAMES: TensorNames = TensorNames {
    embed: "model.embed_tokens",
    head: "lm_head",
    final_norm: "model.norm",
    block: "model.layers.{i}",
    parts: [
        "input_layernorm",
        "post_attention_layernorm",
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    ],
};

impl Family for Dream {
    fn arch(&self) -> &'static str {
        "dream"
    }
    fn config_names(&self) -> (&'static str, &'static str) {
        ("Dream", "Dream")
    }
    fn names(&self) -> &'static TensorNames {
        &NAMES
    }
    fn logits_shift(&self) -> usize {
        1
    }
    fn qkv_bias(&self) -> bool {
        true
    }
    fn gguf_permutes_qk(&self) -> bool {
        false
    }
    fn read_config(&self, path: &Path) -> Result<ModelConfig> {
        let c = DreamConfig::from_file(path)?;
        Ok(ModelConfig { spec: c.spec(), mask_id: c.mask_token_id, eos_id: c.eos_token_id, tied_head: c.tie_word_embeddings })
    }
    fn write_config(&self, c: &ModelConfig, note: &str) -> serde_json::Value {
        let s = &c.spec;
        // The key set of Dream-v0-Instruct-7B's config.json, at this size.
        serde_json::json!({
            "architectures": ["DreamModel"], "model_type": "Dream", "attention_dropout": 0.0,
            "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
            "hidden_act": "silu", "hidden_size": s.d_model, "intermediate_size": s.mlp_hidden, "num_hidden_layers": s.n_layers,
            "num_attention_heads": s.n_heads, "num_key_value_heads": s.kv_heads, "vocab_size": s.emb_rows, "max_position_embeddings": s.max_len,
            "max_window_layers": s.n_layers, "rms_norm_eps": s.rms_eps, "rope_scaling": null, "rope_theta": s.rope_theta,
            "sliding_window": null, "use_sliding_window": false, "tie_word_embeddings": c.tied_head, "torch_dtype": "float32",
            "initializer_range": 0.02, "use_cache": false,
            "mask_token_id": c.mask_id, "bos_token_id": c.eos_id, "eos_token_id": c.eos_id, "pad_token_id": c.eos_id,
            "d2c_note": note,
        })
    }
    fn small_defaults(&self, _heads: usize) -> (f64, f64, usize) {
        (1e6, 1e-6, 4)
    }
    fn presets(&self) -> Vec<Preset> {
        let spec = Spec {
            n_layers: 28,
            d_model: 3584,
            n_heads: 28,
            kv_heads: 4,
            mlp_hidden: 18944,
            emb_rows: 152064,
            rms_eps: 1e-6,
            rope_theta: 1e6,
            max_len: 131072,
        };
        let about = "Dream-v0-7B: hidden 3584, 28 layers, 28 q / 4 kv heads, SwiGLU 18944, vocab 152064";
        vec![Preset { name: "dream-7b", about, config: ModelConfig { spec, mask_id: 151666, eos_id: 151643, tied_head: false } }]
    }
}

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

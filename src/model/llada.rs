//! LLaDA (Nie et al. 2025): a LLaMA-style encoder with bidirectional attention, RoPE,
//! RMSNorm, SwiGLU and an untied head, loaded from the real checkpoints' tensor names
//! (`model.transformer.blocks.N.{q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out}`).

use super::config::LladaConfig;
use super::linear::{Embed, Proj, WeightType};
use super::load::Weights;
use super::transformer::{Block, BlockWeights, Parts, Spec, Transformer};
use super::ModelInfo;
use crate::error::Result;
use candle_core::{DType, Device};
use std::path::Path;

/// Load a LLaDA checkpoint folder (config.json + safetensors) in `dtype` on `device`.
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Transformer> {
    load_as(dir, WeightType::Dense(dtype), device)
}

/// Load with the linear weights stored as `ty` (quantized tensor by tensor as they are read).
pub fn load_as(dir: &Path, ty: WeightType, device: &Device) -> Result<Transformer> {
    let cfg = LladaConfig::from_file(&dir.join("config.json"))?;
    super::check_fits(&spec(&cfg), ty)?;
    let w = Weights::open(dir, ty.load_dtype(), device)?;
    from_weights(&cfg, &w, ty, device)
}

pub fn spec(cfg: &LladaConfig) -> Spec {
    Spec {
        n_layers: cfg.n_layers,
        d_model: cfg.d_model,
        n_heads: cfg.n_heads,
        kv_heads: cfg.kv_heads(),
        mlp_hidden: cfg.mlp_hidden(),
        emb_rows: cfg.emb_rows(),
        rms_eps: cfg.rms_norm_eps,
        rope_theta: cfg.rope_theta,
        max_len: cfg.max_sequence_length,
    }
}

fn from_weights(cfg: &LladaConfig, w: &Weights, ty: WeightType, device: &Device) -> Result<Transformer> {
    let s = spec(cfg);
    let (d, kvd, ff, rows) = (s.d_model, s.kv_dim(), s.mlp_hidden, s.emb_rows);
    let p = "model.transformer";
    let wte = w.get(&format!("{p}.wte.weight"), &[rows, d])?;
    let mut blocks = Vec::with_capacity(s.n_layers);
    for i in 0..s.n_layers {
        let b = format!("{p}.blocks.{i}");
        let t = |name: &str, shape: &[usize]| w.get(&format!("{b}.{name}.weight"), shape);
        let bw = BlockWeights {
            attn_norm: t("attn_norm", &[d])?,
            ffn_norm: t("ff_norm", &[d])?,
            q: t("q_proj", &[d, d])?,
            k: t("k_proj", &[kvd, d])?,
            v: t("v_proj", &[kvd, d])?,
            qkv_bias: None,
            o: t("attn_out", &[d, d])?,
            // `ff_proj` is the gated branch: ff_out(silu(ff_proj(h)) * up_proj(h)).
            gate: t("ff_proj", &[ff, d])?,
            up: t("up_proj", &[ff, d])?,
            down: t("ff_out", &[d, ff])?,
            names: ["q_proj", "attn_out", "ff_proj", "ff_out"].map(|n| format!("{b}.{n}.weight")),
        };
        blocks.push(Block::new(bw, ty)?);
    }
    let final_norm = w.get(&format!("{p}.ln_f.weight"), &[d])?;
    let head_w = if cfg.weight_tying { wte.clone() } else { w.get(&format!("{p}.ff_out.weight"), &[rows, d])? };
    let head = Proj::new(&format!("{p}.ff_out.weight"), head_w, None, ty.for_head())?;
    let embed = Embed::new(&format!("{p}.wte.weight"), wte, ty)?;
    let info = ModelInfo::of("llada", &s, cfg.mask_token_id, cfg.eos_token_id, 0);
    Transformer::new(Parts { spec: s, info, embed, blocks, final_norm, head }, ty.activations(device), device)
}

//! `d2c make-model`: a randomly initialised checkpoint folder of either family (config.json +
//! model.safetensors with the real tensor names and config keys), for speed benchmarks where
//! only the shapes matter.

use super::{EXIT_ERROR, EXIT_OK};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum, PartialEq)]
pub enum MakeFamily {
    Llada,
    Dream,
}

#[derive(clap::Args)]
pub struct MakeModelArgs {
    #[arg(long)]
    out: PathBuf,
    /// `llada` (LLaDA tensor names and config) or `dream` (Qwen2 layout: q/k/v bias, GQA).
    #[arg(long, value_enum, default_value_t = MakeFamily::Llada)]
    family: MakeFamily,
    #[arg(long, default_value_t = 1024)]
    d_model: usize,
    #[arg(long, default_value_t = 8)]
    layers: usize,
    #[arg(long, default_value_t = 16)]
    heads: usize,
    /// K/V heads (grouped-query attention). Default: `heads` for LLaDA, 4 for Dream.
    #[arg(long)]
    kv_heads: Option<usize>,
    #[arg(long, default_value_t = 2816)]
    mlp_hidden: usize,
    #[arg(long, default_value_t = 32768)]
    vocab: usize,
    #[arg(long, default_value_t = 1024)]
    max_seq: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: MakeModelArgs) -> i32 {
    match make(&a) {
        Ok(()) => {
            println!("wrote {}", a.out.display());
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_ERROR
        }
    }
}

/// N(0, 0.02) weights from a seeded StdRng (candle's CPU generator cannot be seeded).
struct Init {
    rng: rand::rngs::StdRng,
}

impl Init {
    fn normal(&mut self, shape: &[usize]) -> Result<Tensor, String> {
        let n = shape.iter().product();
        Tensor::from_vec(crate::train::net::seeded_normal(&mut self.rng, n, 0.02), shape, &Device::Cpu).map_err(|e| e.to_string())
    }
    fn ones(&self, n: usize) -> Result<Tensor, String> {
        Tensor::ones(n, DType::F32, &Device::Cpu).map_err(|e| e.to_string())
    }
}

fn make(a: &MakeModelArgs) -> Result<(), String> {
    let kvh = a.kv_heads.unwrap_or(if a.family == MakeFamily::Dream { 4 } else { a.heads });
    if a.heads == 0 || a.d_model % a.heads != 0 || kvh == 0 || a.heads % kvh != 0 {
        return Err(format!("--d-model {} / --heads {} / --kv-heads {kvh}: d_model must divide into heads, heads into kv heads", a.d_model, a.heads));
    }
    if a.vocab < 4 {
        return Err("--vocab must be at least 4 (mask and eos ids are taken from its end)".into());
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut init = Init { rng: <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(a.seed) };
    let (tensors, cfg) = match a.family {
        MakeFamily::Llada => llada(a, kvh, &mut init)?,
        MakeFamily::Dream => dream(a, kvh, &mut init)?,
    };
    candle_core::safetensors::save(&tensors, a.out.join("model.safetensors")).map_err(|e| e.to_string())?;
    std::fs::write(a.out.join("config.json"), serde_json::to_string_pretty(&cfg).unwrap_or_default()).map_err(|e| e.to_string())?;
    Ok(())
}

type Made = (HashMap<String, Tensor>, serde_json::Value);

fn llada(a: &MakeModelArgs, kvh: usize, init: &mut Init) -> Result<Made, String> {
    let (d, f, v, kvd) = (a.d_model, a.mlp_hidden, a.vocab, kvh * (a.d_model / a.heads));
    let mut t = HashMap::new();
    let p = "model.transformer";
    t.insert(format!("{p}.wte.weight"), init.normal(&[v, d])?);
    t.insert(format!("{p}.ff_out.weight"), init.normal(&[v, d])?);
    t.insert(format!("{p}.ln_f.weight"), init.ones(d)?);
    for i in 0..a.layers {
        let b = format!("{p}.blocks.{i}");
        t.insert(format!("{b}.attn_norm.weight"), init.ones(d)?);
        t.insert(format!("{b}.ff_norm.weight"), init.ones(d)?);
        for (n, rows) in [("q_proj", d), ("k_proj", kvd), ("v_proj", kvd), ("attn_out", d), ("ff_proj", f), ("up_proj", f)] {
            t.insert(format!("{b}.{n}.weight"), init.normal(&[rows, d])?);
        }
        t.insert(format!("{b}.ff_out.weight"), init.normal(&[d, f])?);
    }
    let cfg = serde_json::json!({
        "model_type": "llada", "architectures": ["LLaDAModelLM"], "d_model": d, "n_heads": a.heads, "n_kv_heads": kvh,
        "n_layers": a.layers, "mlp_hidden_size": f, "vocab_size": v, "embedding_size": v, "max_sequence_length": a.max_seq,
        "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "mask_token_id": v - 2, "eos_token_id": v - 3, "pad_token_id": v - 3,
        "weight_tying": false, "include_bias": false, "block_type": "llama", "activation_type": "silu", "torch_dtype": "float32",
        "d2c_note": format!("random weights (seed {}) written by `d2c make-model`; for speed measurements only", a.seed),
    });
    Ok((t, cfg))
}

fn dream(a: &MakeModelArgs, kvh: usize, init: &mut Init) -> Result<Made, String> {
    let (d, f, v, kvd) = (a.d_model, a.mlp_hidden, a.vocab, kvh * (a.d_model / a.heads));
    let mut t = HashMap::new();
    t.insert("model.embed_tokens.weight".into(), init.normal(&[v, d])?);
    t.insert("lm_head.weight".into(), init.normal(&[v, d])?);
    t.insert("model.norm.weight".into(), init.ones(d)?);
    for i in 0..a.layers {
        let b = format!("model.layers.{i}");
        t.insert(format!("{b}.input_layernorm.weight"), init.ones(d)?);
        t.insert(format!("{b}.post_attention_layernorm.weight"), init.ones(d)?);
        for (n, rows) in [("q_proj", d), ("k_proj", kvd), ("v_proj", kvd)] {
            t.insert(format!("{b}.self_attn.{n}.weight"), init.normal(&[rows, d])?);
            t.insert(format!("{b}.self_attn.{n}.bias"), init.normal(&[rows])?);
        }
        t.insert(format!("{b}.self_attn.o_proj.weight"), init.normal(&[d, d])?);
        t.insert(format!("{b}.mlp.gate_proj.weight"), init.normal(&[f, d])?);
        t.insert(format!("{b}.mlp.up_proj.weight"), init.normal(&[f, d])?);
        t.insert(format!("{b}.mlp.down_proj.weight"), init.normal(&[d, f])?);
    }
    // The key set of Dream-v0-Instruct-7B's config.json, at this size.
    let cfg = serde_json::json!({
        "architectures": ["DreamModel"], "model_type": "Dream", "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "hidden_act": "silu", "hidden_size": d, "intermediate_size": f, "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads, "num_key_value_heads": kvh, "vocab_size": v, "max_position_embeddings": a.max_seq,
        "max_window_layers": a.layers, "rms_norm_eps": 1e-6, "rope_scaling": null, "rope_theta": 1000000.0,
        "sliding_window": null, "use_sliding_window": false, "tie_word_embeddings": false, "torch_dtype": "float32",
        "initializer_range": 0.02, "use_cache": false,
        "mask_token_id": v - 2, "bos_token_id": v - 3, "eos_token_id": v - 3, "pad_token_id": v - 3,
        "d2c_note": format!("random weights (seed {}) written by `d2c make-model --family dream`; for speed measurements only", a.seed),
    });
    Ok((t, cfg))
}

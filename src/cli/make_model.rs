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

/// The real checkpoints' shapes and ids.
#[derive(Clone, Copy, clap::ValueEnum, PartialEq)]
pub enum Preset {
    /// LLaDA-8B: d_model 4096, 32 layers, 32 heads, SwiGLU 12288, vocab 126464.
    #[value(name = "llada-8b")]
    Llada8b,
    /// Dream-v0-7B: hidden 3584, 28 layers, 28 q / 4 kv heads, SwiGLU 18944, vocab 152064.
    #[value(name = "dream-7b")]
    Dream7b,
}

#[derive(clap::Args)]
pub struct MakeModelArgs {
    /// Output folder (safetensors), or a `.gguf` file with --gguf.
    #[arg(long)]
    out: PathBuf,
    /// Shape, ids and config keys of a real checkpoint (other size flags are ignored, except --layers).
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Write one GGUF file with every linear weight directly in this type (never the whole
    /// model in f32): how an 8B-shaped model is made on a 24 GiB machine.
    #[arg(long, value_enum)]
    gguf: Option<super::Dtype>,
    /// `llada` (LLaDA tensor names and config) or `dream` (Qwen2 layout: q/k/v bias, GQA).
    #[arg(long, value_enum, default_value_t = MakeFamily::Llada)]
    family: MakeFamily,
    #[arg(long, default_value_t = 1024)]
    d_model: usize,
    /// Default 8 (with --preset: the real model's count).
    #[arg(long)]
    layers: Option<usize>,
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
    /// Store the safetensors weights in bf16 (half the file; what a GPU run loads with
    /// `--dtype bf16`). The random values are drawn in f32 either way.
    #[arg(long)]
    bf16: bool,
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

/// The model to make: the flags, or a preset's shape.
struct Shape {
    family: MakeFamily,
    d_model: usize,
    layers: usize,
    heads: usize,
    mlp_hidden: usize,
    vocab: usize,
    max_seq: usize,
    mask: usize,
    eos: usize,
    theta: f64,
}

fn shape(a: &MakeModelArgs) -> Shape {
    match a.preset {
        Some(Preset::Llada8b) => Shape {
            family: MakeFamily::Llada,
            d_model: 4096,
            layers: a.layers.unwrap_or(32),
            heads: 32,
            mlp_hidden: 12288,
            vocab: 126464,
            max_seq: 4096,
            mask: 126336,
            eos: 126081,
            theta: 500000.0,
        },
        Some(Preset::Dream7b) => Shape {
            family: MakeFamily::Dream,
            d_model: 3584,
            layers: a.layers.unwrap_or(28),
            heads: 28,
            mlp_hidden: 18944,
            vocab: 152064,
            max_seq: 131072,
            mask: 151666,
            eos: 151643,
            theta: 1e6,
        },
        None => Shape {
            family: a.family,
            d_model: a.d_model,
            layers: a.layers.unwrap_or(8),
            heads: a.heads,
            mlp_hidden: a.mlp_hidden,
            vocab: a.vocab,
            max_seq: a.max_seq,
            mask: a.vocab.saturating_sub(2),
            eos: a.vocab.saturating_sub(3),
            theta: if a.family == MakeFamily::Dream { 1e6 } else { 500000.0 },
        },
    }
}

fn make(a: &MakeModelArgs) -> Result<(), String> {
    let s = shape(a);
    let kvh = match a.preset {
        Some(Preset::Dream7b) => 4,
        Some(Preset::Llada8b) => 32,
        None => a.kv_heads.unwrap_or(if s.family == MakeFamily::Dream { 4 } else { s.heads }),
    };
    let a = &MakeModelArgs {
        out: a.out.clone(),
        preset: a.preset,
        gguf: a.gguf,
        family: s.family,
        d_model: s.d_model,
        layers: Some(s.layers),
        heads: s.heads,
        kv_heads: Some(kvh),
        mlp_hidden: s.mlp_hidden,
        vocab: s.vocab,
        max_seq: s.max_seq,
        seed: a.seed,
        bf16: a.bf16,
    };
    if let Some(dt) = a.gguf {
        let spec = crate::model::transformer::Spec {
            n_layers: s.layers,
            d_model: s.d_model,
            n_heads: s.heads,
            kv_heads: kvh,
            mlp_hidden: s.mlp_hidden,
            emb_rows: s.vocab,
            rms_eps: if s.family == MakeFamily::Dream { 1e-6 } else { 1e-5 },
            rope_theta: s.theta,
            max_len: s.max_seq,
        };
        let (family, arch) = if s.family == MakeFamily::Dream { (crate::model::Family::Dream, "dream") } else { (crate::model::Family::Llada, "llada") };
        let h = crate::model::gguf::Header {
            family,
            arch,
            spec,
            mask: s.mask as u32,
            eos: s.eos as u32,
            name: format!("random {arch} (d2c make-model, seed {})", a.seed),
        };
        crate::model::gguf::write_random(&h, &a.out, dt.weight_type(), a.seed).map_err(|e| e.to_string())?;
        return Ok(());
    }
    if a.heads == 0 || !a.d_model.is_multiple_of(a.heads) || kvh == 0 || !a.heads.is_multiple_of(kvh) {
        return Err(format!("--d-model {} / --heads {} / --kv-heads {kvh}: d_model must divide into heads, heads into kv heads", a.d_model, a.heads));
    }
    if a.vocab < 4 {
        return Err("--vocab must be at least 4 (mask and eos ids are taken from its end)".into());
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut init = Init { rng: <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(a.seed) };
    let (mut tensors, mut cfg) = match a.family {
        MakeFamily::Llada => llada(a, kvh, &mut init)?,
        MakeFamily::Dream => dream(a, kvh, &mut init)?,
    };
    if a.preset.is_some() {
        // The real checkpoint's special ids and RoPE base.
        cfg["mask_token_id"] = serde_json::json!(s.mask);
        cfg["eos_token_id"] = serde_json::json!(s.eos);
        cfg["pad_token_id"] = serde_json::json!(s.eos);
        cfg["rope_theta"] = serde_json::json!(s.theta);
    }
    if a.bf16 {
        for t in tensors.values_mut() {
            *t = t.to_dtype(DType::BF16).map_err(|e| e.to_string())?;
        }
        cfg["torch_dtype"] = serde_json::json!("bfloat16");
    }
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
    for i in 0..a.layers.unwrap_or(8) {
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
        "n_layers": a.layers.unwrap_or(8), "mlp_hidden_size": f, "vocab_size": v, "embedding_size": v, "max_sequence_length": a.max_seq,
        "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "mask_token_id": v - 2, "eos_token_id": v - 3, "pad_token_id": v - 3,
        "weight_tying": false, "include_bias": false, "block_type": "llama", "activation_type": "silu", "torch_dtype": "float32",
        // The keys LLaDA's own modelling code needs beyond those d2c reads (its defaults
        // differ: no RoPE, a learned position table), so the authors' reference loads this
        // folder as it is (scripts/bench-reference.sh).
        "rope": true, "rope_full_precision": true, "alibi": false, "flash_attention": false, "include_qkv_bias": false,
        "layer_norm_type": "rms", "layer_norm_with_affine": true, "bias_for_layer_norm": false, "attention_layer_norm": false,
        "block_group_size": 1, "scale_logits": false, "input_emb_norm": false, "mlp_ratio": 4,
        "attention_dropout": 0.0, "residual_dropout": 0.0, "embedding_dropout": 0.0, "init_device": "cpu", "use_cache": false,
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
    for i in 0..a.layers.unwrap_or(8) {
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
        "hidden_act": "silu", "hidden_size": d, "intermediate_size": f, "num_hidden_layers": a.layers.unwrap_or(8),
        "num_attention_heads": a.heads, "num_key_value_heads": kvh, "vocab_size": v, "max_position_embeddings": a.max_seq,
        "max_window_layers": a.layers.unwrap_or(8), "rms_norm_eps": 1e-6, "rope_scaling": null, "rope_theta": 1000000.0,
        "sliding_window": null, "use_sliding_window": false, "tie_word_embeddings": false, "torch_dtype": "float32",
        "initializer_range": 0.02, "use_cache": false,
        "mask_token_id": v - 2, "bos_token_id": v - 3, "eos_token_id": v - 3, "pad_token_id": v - 3,
        "d2c_note": format!("random weights (seed {}) written by `d2c make-model --family dream`; for speed measurements only", a.seed),
    });
    Ok((t, cfg))
}

//! `d2c make-model`: a randomly initialised LLaDA-shaped checkpoint folder (config.json +
//! model.safetensors with the real tensor names), for speed benchmarks where only the shapes
//! matter.

use super::{EXIT_ERROR, EXIT_OK};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct MakeModelArgs {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1024)]
    d_model: usize,
    #[arg(long, default_value_t = 8)]
    layers: usize,
    #[arg(long, default_value_t = 16)]
    heads: usize,
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

fn make(a: &MakeModelArgs) -> Result<(), String> {
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let dev = Device::Cpu;
    let (d, f, v) = (a.d_model, a.mlp_hidden, a.vocab);
    // candle's CPU generator cannot be seeded, so draw N(0, 0.02) with a seeded StdRng.
    let rng = std::cell::RefCell::new(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(a.seed));
    let rnd = |r: usize, c: usize| -> Result<Tensor, String> {
        let data = crate::train::net::seeded_normal(&mut *rng.borrow_mut(), r * c, 0.02);
        Tensor::from_vec(data, (r, c), &dev).map_err(|e| e.to_string())
    };
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let p = "model.transformer";
    t.insert(format!("{p}.wte.weight"), rnd(v, d)?);
    t.insert(format!("{p}.ff_out.weight"), rnd(v, d)?);
    t.insert(format!("{p}.ln_f.weight"), Tensor::ones(d, candle_core::DType::F32, &dev).map_err(|e| e.to_string())?);
    for i in 0..a.layers {
        let b = format!("{p}.blocks.{i}");
        for n in ["attn_norm", "ff_norm"] {
            t.insert(format!("{b}.{n}.weight"), Tensor::ones(d, candle_core::DType::F32, &dev).map_err(|e| e.to_string())?);
        }
        for n in ["q_proj", "k_proj", "v_proj", "attn_out"] {
            t.insert(format!("{b}.{n}.weight"), rnd(d, d)?);
        }
        t.insert(format!("{b}.ff_proj.weight"), rnd(f, d)?);
        t.insert(format!("{b}.up_proj.weight"), rnd(f, d)?);
        t.insert(format!("{b}.ff_out.weight"), rnd(d, f)?);
    }
    candle_core::safetensors::save(&t, a.out.join("model.safetensors")).map_err(|e| e.to_string())?;
    let cfg = serde_json::json!({
        "model_type": "llada", "architectures": ["LLaDAModelLM"], "d_model": d, "n_heads": a.heads, "n_kv_heads": a.heads,
        "n_layers": a.layers, "mlp_hidden_size": f, "vocab_size": v, "embedding_size": v, "max_sequence_length": a.max_seq,
        "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "mask_token_id": v - 2, "eos_token_id": v - 3, "pad_token_id": v - 3,
        "weight_tying": false, "include_bias": false, "block_type": "llama", "activation_type": "silu", "torch_dtype": "float32",
        "d2c_note": format!("random weights (seed {}) written by `d2c make-model`; for speed measurements only", a.seed),
    });
    std::fs::write(a.out.join("config.json"), serde_json::to_string_pretty(&cfg).unwrap_or_default()).map_err(|e| e.to_string())?;
    Ok(())
}

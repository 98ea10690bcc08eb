//! `d2c make-model`: a randomly initialised checkpoint folder of either family (config.json +
//! model.safetensors with the real tensor names and config keys), for speed benchmarks where
//! only the shapes matter.

use super::CliResult;
use candle_core::DType;
use d2c::model::family::{Family, ModelConfig};
use d2c::model::random::RandomWeights;
use d2c::model::registry::{arch_names, by_arch, presets};
use d2c::model::transformer::Spec;
use d2c::model::FAMILIES;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct MakeModelArgs {
    /// Output folder (safetensors), or a `.gguf` file with --gguf.
    #[arg(long)]
    out: PathBuf,
    /// Shape, ids and config keys of a real checkpoint (other size flags are ignored, except --layers).
    #[arg(long, value_parser = preset_names())]
    preset: Option<String>,
    /// Write one GGUF file with every linear weight directly in this type (never the whole
    /// model in f32): how an 8B-shaped model is made on a 24 GiB machine.
    #[arg(long, value_enum)]
    gguf: Option<super::Dtype>,
    /// `llada` (LLaDA tensor names and config) or `dream` (Qwen2 layout: q/k/v bias, GQA).
    #[arg(long, default_value = "llada", value_parser = family_names())]
    family: String,
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

fn preset_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(presets().into_iter().map(|(_, p)| clap::builder::PossibleValue::new(p.name).help(p.about)))
}

fn family_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(FAMILIES.iter().map(|f| f.arch()))
}

pub fn run(a: MakeModelArgs) -> CliResult {
    make(&a)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

/// The family and config to make: a preset's (with `--layers`), or the size flags'.
fn resolve(a: &MakeModelArgs) -> Result<(&'static dyn Family, ModelConfig), String> {
    if let Some(name) = &a.preset {
        let (fam, p) = presets().into_iter().find(|(_, p)| p.name == name).ok_or_else(|| format!("--preset {name}: no such preset"))?;
        let mut config = p.config;
        config.spec.n_layers = a.layers.unwrap_or(config.spec.n_layers);
        return Ok((fam, config));
    }
    let fam = by_arch(&a.family).ok_or_else(|| format!("--family {}: no such family ({})", a.family, arch_names()))?;
    let (rope_theta, rms_eps, kv) = fam.small_defaults(a.heads);
    let kv_heads = a.kv_heads.unwrap_or(kv);
    if a.heads == 0 || !a.d_model.is_multiple_of(a.heads) || kv_heads == 0 || !a.heads.is_multiple_of(kv_heads) {
        return Err(format!("--d-model {} / --heads {} / --kv-heads {kv_heads}: d_model must divide into heads, heads into kv heads", a.d_model, a.heads));
    }
    if a.vocab < 4 {
        return Err("--vocab must be at least 4 (mask and eos ids are taken from its end)".into());
    }
    let spec = Spec {
        n_layers: a.layers.unwrap_or(8),
        d_model: a.d_model,
        n_heads: a.heads,
        kv_heads,
        mlp_hidden: a.mlp_hidden,
        emb_rows: a.vocab,
        rms_eps,
        rope_theta,
        max_len: a.max_seq,
    };
    Ok((fam, ModelConfig { spec, mask_id: a.vocab as u32 - 2, eos_id: a.vocab as u32 - 3, tied_head: false }))
}

fn make(a: &MakeModelArgs) -> Result<(), String> {
    let (fam, config) = resolve(a)?;
    if let Some(dt) = a.gguf {
        let name = format!("random {} (d2c make-model, seed {})", fam.arch(), a.seed);
        let h = d2c::model::gguf::Header { family: fam, config, name };
        d2c::model::gguf::write_random(&h, &a.out, dt.weight_type(), a.seed).map_err(|e| e.to_string())?;
        return Ok(());
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut tensors = RandomWeights::new(a.seed).checkpoint(fam, &config).map_err(|e| e.to_string())?;
    let note = format!("random weights (seed {}) written by `d2c make-model --family {}`; for speed measurements only", a.seed, fam.arch());
    let mut cfg = fam.write_config(&config, &note);
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

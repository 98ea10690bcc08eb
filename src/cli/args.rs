//! Flag groups shared by several subcommands, declared once and flattened into each
//! (`#[command(flatten)]`), and the value types they parse to.

use candle_core::DType;
use clap::ValueEnum;
use std::path::PathBuf;

/// `--model` and `--dtype`: what every subcommand that decodes loads.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Hugging Face LLaDA or Dream folder (config.json, safetensors, tokenizer) or a `.gguf`
    /// file. Default: the tiny model embedded in the binary.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// How the linear weights are held: dense, or quantized at load (GGML block types).
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
}

/// `--set name=value`: policy parameters (repeatable; the last one of a name wins).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SetArgs {
    /// Set a policy parameter, `name=value` (repeatable; with several policies, for each one
    /// that declares it).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
}

/// `--error-format`: how policy diagnostics are printed.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct DiagnosticArgs {
    #[arg(long, value_enum, default_value_t = ErrorFormat::Human)]
    pub error_format: ErrorFormat,
}

#[derive(Clone, Copy, ValueEnum, Default, Debug)]
pub enum ErrorFormat {
    #[default]
    Human,
    Json,
}

/// How the linear weights are held: dense, or quantized at load (GGML block types).
#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Debug)]
pub enum Dtype {
    #[default]
    F32,
    Bf16,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_k")]
    Q4K,
}

impl Dtype {
    pub fn weight_type(self) -> d2c::model::linear::WeightType {
        use candle_core::quantized::GgmlDType;
        use d2c::model::linear::WeightType;
        match self {
            Dtype::F32 => WeightType::Dense(DType::F32),
            Dtype::Bf16 => WeightType::Dense(DType::BF16),
            Dtype::F16 => WeightType::Dense(DType::F16),
            Dtype::Q8_0 => WeightType::Quant(GgmlDType::Q8_0),
            Dtype::Q4_0 => WeightType::Quant(GgmlDType::Q4_0),
            Dtype::Q4K => WeightType::Quant(GgmlDType::Q4K),
        }
    }
    pub fn name(self) -> &'static str {
        self.weight_type().name()
    }
}

/// `1,2,3` as token ids.
pub fn parse_ids(s: &str) -> Result<Vec<u32>, String> {
    s.split(',').map(|x| x.trim()).filter(|x| !x.is_empty()).map(|x| x.parse::<u32>().map_err(|_| format!("--prompt-ids: `{x}` is not a token id"))).collect()
}

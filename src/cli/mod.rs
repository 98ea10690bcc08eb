//! `d2c` subcommands, one file each; this module holds the argument types and the helpers
//! they share (loading a model, compiling a policy and printing its diagnostics).

mod bench;
mod bench_layers;
mod check;
mod compile;
mod eval;
mod make_model;
mod quantize;
mod run;
mod tasks;
mod train;

use crate::compile::{compile as compile_policy, Compiled, Source};
use crate::diag::{render, to_json, Diagnostic};
use crate::generation_config::{GenerationConfig, Suggested};
use crate::model::tokenizer::TextTokenizer;
use crate::model::Transformer;
use candle_core::{DType, Device};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

pub const EXIT_OK: i32 = 0;
pub const EXIT_POLICY: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

/// The default policy and model, compiled into the binary so `d2c run` works anywhere.
pub const DEFAULT_POLICY: (&str, &str) = ("policies/vanilla.pol", include_str!("../../policies/vanilla.pol"));
/// The trained tiny model (`d2c train`, see README), so a first run needs no download.
const EMBEDDED_MODEL: [(&str, &[u8]); 4] = [
    ("config.json", include_bytes!("../../models/tiny-tasks/config.json")),
    ("generation_config.json", include_bytes!("../../models/tiny-tasks/generation_config.json")),
    ("model.safetensors", include_bytes!("../../models/tiny-tasks/model.safetensors")),
    ("tokenizer.json", include_bytes!("../../models/tiny-tasks/tokenizer.json")),
];

#[derive(Parser)]
#[command(name = "d2c", version, about = "Declarative cache and decoding policies for diffusion language models")]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Decode prompts with a policy on a model.
    Run(run::RunArgs),
    /// Check policy files and print every diagnostic.
    Check(check::CheckArgs),
    /// Compile a policy and print its optimised execution plan.
    Compile(compile::CompileArgs),
    /// Run several policies on one model and prompt, in one process, and print a table.
    Bench(bench::BenchArgs),
    /// Write a randomly initialised LLaDA- or Dream-shaped checkpoint (for benchmarks).
    MakeModel(make_model::MakeModelArgs),
    /// Write a checkpoint folder as one GGUF file (llama.cpp's names), quantized or not.
    Quantize(quantize::QuantizeArgs),
    /// Train the tiny masked-diffusion model on the synthetic task language.
    Train(train::TrainArgs),
    /// Exact-match accuracy, tokens/s and forwards of policies on a tasks file.
    Eval(eval::EvalArgs),
    /// Write examples of the synthetic task language as JSON lines.
    Tasks(tasks::TasksArgs),
}

#[derive(Clone, Copy, ValueEnum, Default)]
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
    pub fn weight_type(self) -> crate::model::linear::WeightType {
        use crate::model::linear::WeightType;
        use candle_core::quantized::GgmlDType;
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

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
        }
    };
    match cli.cmd {
        Cmd::Run(a) => run::run(a),
        Cmd::Check(a) => check::run(a),
        Cmd::Compile(a) => compile::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::MakeModel(a) => make_model::run(a),
        Cmd::Quantize(a) => quantize::run(a),
        Cmd::Train(a) => train::run(a),
        Cmd::Eval(a) => eval::run(a),
        Cmd::Tasks(a) => tasks::run(a),
    }
}

pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}

/// The model folder: `--model DIR`, or the embedded tiny model written to a temp folder.
pub fn model_dir(arg: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = arg {
        return Ok(p.to_path_buf());
    }
    // Keyed by a hash of the contents, so a rebuilt binary never reuses another model's files.
    let hash = EMBEDDED_MODEL.iter().flat_map(|(_, b)| b.iter()).fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3));
    let dir = std::env::temp_dir().join(format!("d2c-embedded-{hash:016x}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, bytes) in EMBEDDED_MODEL {
        let p = dir.join(name);
        if std::fs::metadata(&p).map(|m| m.len() as usize != bytes.len()).unwrap_or(true) {
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    Ok(dir)
}

/// Load a LLaDA or Dream folder (the family comes from its config.json) or a `.gguf` file,
/// and its tokenizer (for a GGUF file: a tokenizer beside it, else the one embedded in it).
pub fn load_model(dir: &Path, dtype: Dtype) -> Result<(Transformer, Option<TextTokenizer>), String> {
    if is_gguf(dir) {
        let (model, content) = crate::model::gguf::load(dir, dtype.weight_type(), &device()).map_err(|e| e.to_string())?;
        let tok = match TextTokenizer::from_dir(&folder_of(dir)).map_err(|e| e.to_string())? {
            Some(t) => Some(t),
            None => TextTokenizer::from_gguf(&content.metadata).map_err(|e| e.to_string())?,
        };
        return Ok((model, tok));
    }
    let model = crate::model::load_as(dir, dtype.weight_type(), &device()).map_err(|e| e.to_string())?;
    let tok = TextTokenizer::from_dir(dir).map_err(|e| e.to_string())?;
    Ok((model, tok))
}

pub fn is_gguf(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gguf")
}

/// The folder holding a model's side files (generation_config.json, tokenizer_config.json):
/// the model folder itself, or the folder a `.gguf` file sits in.
pub fn folder_of(model: &Path) -> PathBuf {
    if is_gguf(model) {
        model.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }).unwrap_or(Path::new(".")).to_path_buf()
    } else {
        model.to_path_buf()
    }
}

pub fn default_policy() -> Source {
    Source { path: DEFAULT_POLICY.0.into(), text: DEFAULT_POLICY.1.into() }
}

/// Decode settings a model folder suggests in `generation_config.json`, as `name=value`
/// for the parameters `src` declares; they come before the user's `sets`, which win. A
/// malformed file is an error. Returns the settings, what was applied from where, and notes
/// on what could not apply.
pub fn model_defaults(dir: &Path, src: &Source, user_sets: &[String]) -> Result<(Vec<String>, Vec<Suggested>, Vec<String>), String> {
    let gc = GenerationConfig::from_dir(&folder_of(dir)).map_err(|e| e.to_string())?;
    let declared = declared_params(src);
    let user = |name: &str| user_sets.iter().rev().find_map(|s| s.split_once('=').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim().to_string()));
    // `steps` turns into tokens_per_step against the gen_length the decode will use.
    let gen = user("gen_length").and_then(|g| g.parse().ok()).or(gc.max_new_tokens).or_else(|| {
        compile_policy(src, &[], &mut |_, _| {}).ok().and_then(|c| c.plan.schedule.gen_length.as_usize())
    });
    let (suggested, notes) = gc.suggestions(&declared, gen);
    let applied: Vec<Suggested> = suggested.into_iter().filter(|s| user(&s.param).is_none()).collect();
    Ok((applied.iter().map(|s| format!("{}={}", s.param, s.value)).collect(), applied, notes))
}

/// The parameters a policy declares (none if it does not parse; compiling reports why).
fn declared_params(src: &Source) -> Vec<String> {
    crate::syntax::parse(&src.text).map(|f| f.params.iter().map(|p| p.name.name.clone()).collect()).unwrap_or_default()
}

/// A `FILE[:name=value,...]` policy spec of bench and eval: the policy, and its settings:
/// `shared` (kept only where the policy declares the parameter, since one list serves every
/// policy), then the spec's own, which must all apply.
pub fn policy_spec(spec: &str, shared: &[String]) -> Result<(Source, Vec<String>), String> {
    let (file, own) = spec.split_once(':').unwrap_or((spec, ""));
    let src = Source::read(file).map_err(|e| format!("{file}: {e}"))?;
    let names = declared_params(&src);
    let mut sets: Vec<String> = shared.iter().filter(|s| s.split_once('=').is_some_and(|(k, _)| names.iter().any(|d| d == k.trim()))).cloned().collect();
    sets.extend(own.split(',').filter(|s| !s.is_empty()).map(String::from));
    Ok((src, sets))
}

pub fn read_policy(path: Option<&Path>) -> Result<Source, String> {
    match path {
        None => Ok(default_policy()),
        Some(p) => Source::read(&p.to_string_lossy()).map_err(|e| format!("{}: {e}", p.display())),
    }
}

pub fn print_diagnostics(ds: &[Diagnostic], src: &Source, format: ErrorFormat) {
    use std::io::IsTerminal;
    match format {
        ErrorFormat::Human => {
            let color = std::io::stderr().is_terminal();
            for d in ds {
                if d.span.line == 0 {
                    eprintln!("{}: {}: {}{}", if d.is_error() { "error" } else { "warning" }, d.code, d.message, d.help.as_ref().map(|h| format!("\n  help: {h}")).unwrap_or_default());
                } else {
                    eprint!("{}", render(d, &src.path, &src.text, color));
                }
            }
        }
        ErrorFormat::Json => {
            for d in ds {
                eprintln!("{}", to_json(d, &src.path));
            }
        }
    }
}

/// Compile or print diagnostics; `Err(exit code)` when the policy is invalid.
pub fn compile_or_report(src: &Source, sets: &[String], format: ErrorFormat) -> Result<Compiled, i32> {
    match compile_policy(src, sets, &mut |_, _| {}) {
        Ok(c) => {
            print_diagnostics(&c.warnings, src, format);
            Ok(c)
        }
        Err(f) => {
            print_diagnostics(&f.diagnostics, src, format);
            let n = f.diagnostics.iter().filter(|d| d.is_error()).count();
            eprintln!("error: {}: policy is invalid ({n} error{})", src.path, if n == 1 { "" } else { "s" });
            Err(EXIT_POLICY)
        }
    }
}

pub fn parse_ids(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(|x| x.trim())
        .filter(|x| !x.is_empty())
        .map(|x| x.parse::<u32>().map_err(|_| format!("--prompt-ids: `{x}` is not a token id")))
        .collect()
}

/// Print `lines` under `header` as a Markdown table or as right-aligned columns.
pub fn print_table(header: &[&str], lines: &[Vec<String>], markdown: bool) {
    if markdown {
        println!("| {} |", header.join(" | "));
        println!("|{}|", header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
        for l in lines {
            println!("| {} |", l.join(" | "));
        }
        return;
    }
    let widths: Vec<usize> = (0..header.len()).map(|i| lines.iter().map(|l| l.get(i).map_or(0, |c| c.len())).chain([header[i].len()]).max().unwrap_or(0)).collect();
    let fmt = |cells: Vec<&str>| cells.iter().enumerate().map(|(i, c)| format!("{:>w$}", c, w = widths.get(i).copied().unwrap_or(0))).collect::<Vec<_>>().join("  ");
    println!("{}", fmt(header.to_vec()));
    for l in lines {
        println!("{}", fmt(l.iter().map(|s| s.as_str()).collect()));
    }
}

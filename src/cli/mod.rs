//! `d2c` subcommands, one file each; this module holds the argument types and the helpers
//! they share (loading a model, compiling a policy and printing its diagnostics).

mod bench;
mod bench_batch;
mod bench_kernels;
mod bench_layers;
mod check;
mod compile;
mod eval;
mod make_model;
mod quantize;
mod run;
mod serve;
mod snapshot;
mod tasks;
mod trace;
mod train;
mod visual;

use crate::compile::{compile as compile_policy, Compiled, Source};
use crate::diag::{render, to_json, Diagnostic};
use crate::model::tokenizer::TextTokenizer;
use crate::model::Transformer;
use candle_core::DType;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

pub const EXIT_OK: i32 = 0;
pub const EXIT_POLICY: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

/// The default policy and model, compiled into the binary so `d2c run` works anywhere.
pub const DEFAULT_POLICY: (&str, &str) = ("policies/vanilla.pol", include_str!("../../policies/vanilla.pol"));
#[derive(Parser)]
#[command(name = "d2c", version, about = "Declarative cache and decoding policies for diffusion language models")]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Where models run: cpu, cuda, cuda:N, or auto (the first GPU when built with the
    /// `cuda` feature and one is present).
    #[arg(long, global = true, default_value = "auto")]
    device: crate::engine::DeviceChoice,
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
    /// A policy's behaviour as stable text, or check a folder of policies against snapshots.
    Snapshot(snapshot::SnapshotArgs),
    /// Pictures of `--trace` files.
    Trace(trace::TraceArgs),
    /// An OpenAI-compatible HTTP server with a cache policy per request.
    Serve(serve::ServeArgs),
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
    use clap::{CommandFactory, FromArgMatches};
    // `--version` also names the instruction set the kernels use on this machine.
    let version = format!("{} (cpu kernels: {})", env!("CARGO_PKG_VERSION"), crate::model::simd::describe());
    let version: &'static str = Box::leak(version.into_boxed_str());
    let parsed = Cli::command().version(version).try_get_matches().and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
        }
    };
    if let Err(e) = crate::model::simd::check_env() {
        eprintln!("error: {e}");
        return EXIT_ERROR;
    }
    if let Err(e) = crate::engine::select_device(cli.device) {
        eprintln!("error: {e}");
        return EXIT_ERROR;
    }
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
        Cmd::Snapshot(a) => snapshot::run(a),
        Cmd::Trace(a) => trace::run(a),
        Cmd::Serve(a) => serve::run(a),
    }
}

pub use crate::engine::{device, folder_of, is_gguf};

/// The model path: `--model DIR`, or the embedded tiny model written to a temp folder.
pub fn model_dir(arg: Option<&Path>) -> Result<PathBuf, String> {
    crate::engine::model_dir(arg).map_err(|e| e.to_string())
}

/// Load a model folder or `.gguf` file and its tokenizer ([`crate::engine::load_model`]).
pub fn load_model(dir: &Path, dtype: Dtype) -> Result<(Transformer, Option<TextTokenizer>), String> {
    crate::engine::load_model(dir, dtype.weight_type()).map_err(|e| e.to_string())
}

pub fn default_policy() -> Source {
    Source { path: DEFAULT_POLICY.0.into(), text: DEFAULT_POLICY.1.into() }
}

/// The model's `generation_config.json` settings for `src` ([`crate::engine::model_defaults`]).
pub fn model_defaults(dir: &Path, src: &Source, user_sets: &[String]) -> Result<crate::engine::ModelDefaults, String> {
    crate::engine::model_defaults(dir, src, user_sets).map_err(|e| e.to_string())
}

/// A `FILE[:name=value,...]` policy spec of bench and eval: the policy, and its settings:
/// `shared` (kept only where the policy declares the parameter, since one list serves every
/// policy), then the spec's own, which must all apply.
pub fn policy_spec(spec: &str, shared: &[String]) -> Result<(Source, Vec<String>), String> {
    let (file, own) = spec.split_once(':').unwrap_or((spec, ""));
    let src = Source::read(file).map_err(|e| format!("{file}: {e}"))?;
    let mut sets = crate::engine::sets_for(&src, shared);
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
                    eprintln!(
                        "{}: {}: {}{}",
                        if d.is_error() { "error" } else { "warning" },
                        d.code,
                        d.message,
                        d.help.as_ref().map(|h| format!("\n  help: {h}")).unwrap_or_default()
                    );
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
    s.split(',').map(|x| x.trim()).filter(|x| !x.is_empty()).map(|x| x.parse::<u32>().map_err(|_| format!("--prompt-ids: `{x}` is not a token id"))).collect()
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
    let widths: Vec<usize> =
        (0..header.len()).map(|i| lines.iter().map(|l| l.get(i).map_or(0, |c| c.len())).chain([header[i].len()]).max().unwrap_or(0)).collect();
    let fmt =
        |cells: Vec<&str>| cells.iter().enumerate().map(|(i, c)| format!("{:>w$}", c, w = widths.get(i).copied().unwrap_or(0))).collect::<Vec<_>>().join("  ");
    println!("{}", fmt(header.to_vec()));
    for l in lines {
        println!("{}", fmt(l.iter().map(|s| s.as_str()).collect()));
    }
}

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

pub mod args;
pub mod output;

pub use args::{parse_ids, Dtype, ErrorFormat, ModelArgs, SetArgs};
pub use output::{print_diagnostics, print_table};

use clap::{Parser, Subcommand};
use d2c::compile::Source;
use std::path::Path;

pub const EXIT_OK: i32 = 0;
pub const EXIT_POLICY: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

/// How a subcommand fails; [`main`] turns it into the documented exit code.
#[derive(Debug)]
pub enum CliError {
    /// A policy is invalid or snapshots differ; what is wrong is already printed (exit 1).
    Invalid,
    /// A usage, I/O, model or decode error (exit 2), printed as one `error:` line.
    Failed(String),
    /// An error of exit 2 whose messages are already printed (several files were checked).
    Reported,
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::Failed(s)
    }
}

impl From<&str> for CliError {
    fn from(s: &str) -> Self {
        CliError::Failed(s.to_string())
    }
}

impl From<d2c::error::Error> for CliError {
    fn from(e: d2c::error::Error) -> Self {
        CliError::Failed(e.to_string())
    }
}

pub type CliResult = Result<(), CliError>;

/// The one place a subcommand's outcome becomes an exit code.
fn exit_code(r: CliResult) -> i32 {
    match r {
        Ok(()) => EXIT_OK,
        Err(CliError::Invalid) => EXIT_POLICY,
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {msg}");
            EXIT_ERROR
        }
        Err(CliError::Reported) => EXIT_ERROR,
    }
}

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
    device: d2c::engine::DeviceChoice,
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

pub fn main() -> i32 {
    use clap::{CommandFactory, FromArgMatches};
    // `--version` also names the instruction set the kernels use on this machine.
    let version = format!("{} (cpu kernels: {})", env!("CARGO_PKG_VERSION"), d2c::model::simd::describe());
    let version: &'static str = Box::leak(version.into_boxed_str());
    let parsed = Cli::command().version(version).try_get_matches().and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
        }
    };
    if let Err(e) = d2c::model::simd::check_env() {
        return exit_code(Err(e.to_string().into()));
    }
    if let Err(e) = d2c::engine::select_device(cli.device) {
        return exit_code(Err(e.into()));
    }
    exit_code(match cli.cmd {
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
    })
}

pub fn default_policy() -> Source {
    Source { path: DEFAULT_POLICY.0.into(), text: DEFAULT_POLICY.1.into() }
}

/// A `FILE[:name=value,...]` policy spec of bench and eval: the policy, and its settings:
/// `shared` (kept only where the policy declares the parameter, since one list serves every
/// policy), then the spec's own, which must all apply.
pub fn policy_spec(spec: &str, shared: &[String]) -> Result<(Source, Vec<String>), String> {
    let (file, own) = spec.split_once(':').unwrap_or((spec, ""));
    let src = Source::read(file).map_err(|e| format!("{file}: {e}"))?;
    let mut sets = d2c::engine::sets_for(&src, shared);
    sets.extend(own.split(',').filter(|s| !s.is_empty()).map(String::from));
    Ok((src, sets))
}

pub fn read_policy(path: Option<&Path>) -> Result<Source, String> {
    match path {
        None => Ok(default_policy()),
        Some(p) => Source::read(&p.to_string_lossy()).map_err(|e| format!("{}: {e}", p.display())),
    }
}

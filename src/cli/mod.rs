//! `d2c` subcommands, one file each; this module holds the argument types and the helpers
//! they share (loading a model, compiling a policy and printing its diagnostics).

mod bench;
mod check;
mod compile;
mod make_model;
mod run;

use crate::compile::{compile as compile_policy, Compiled, Source};
use crate::diag::{render, to_json, Diagnostic};
use crate::model::tokenizer::TextTokenizer;
use crate::model::{DiffusionModel, Llada};
use candle_core::{DType, Device};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

pub const EXIT_OK: i32 = 0;
pub const EXIT_POLICY: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

/// The default policy and model, compiled into the binary so `d2c run` works anywhere.
pub const DEFAULT_POLICY: (&str, &str) = ("policies/vanilla.pol", include_str!("../../policies/vanilla.pol"));
const EMBEDDED_MODEL: [(&str, &[u8]); 3] = [
    ("config.json", include_bytes!("../../models/tiny-llada/config.json")),
    ("model.safetensors", include_bytes!("../../models/tiny-llada/model.safetensors")),
    ("tokenizer.json", include_bytes!("../../models/tiny-llada/tokenizer.json")),
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
    /// Write a randomly initialised LLaDA-shaped checkpoint (for benchmarks).
    MakeModel(make_model::MakeModelArgs),
}

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum ErrorFormat {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq)]
pub enum Dtype {
    #[default]
    F32,
    Bf16,
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
    let dir = std::env::temp_dir().join(format!("d2c-embedded-{}", env!("CARGO_PKG_VERSION")));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, bytes) in EMBEDDED_MODEL {
        let p = dir.join(name);
        if std::fs::metadata(&p).map(|m| m.len() as usize != bytes.len()).unwrap_or(true) {
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    Ok(dir)
}

pub fn load_model(dir: &Path, dtype: Dtype) -> Result<(Llada, Option<TextTokenizer>), String> {
    let dt = if dtype == Dtype::Bf16 { DType::BF16 } else { DType::F32 };
    let model = Llada::load(dir, dt, &device()).map_err(|e| e.to_string())?;
    let tok = TextTokenizer::from_dir(dir).map_err(|e| e.to_string())?;
    let _ = model.info();
    Ok((model, tok))
}

pub fn read_policy(path: Option<&Path>) -> Result<Source, String> {
    match path {
        None => Ok(Source { path: DEFAULT_POLICY.0.into(), text: DEFAULT_POLICY.1.into() }),
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

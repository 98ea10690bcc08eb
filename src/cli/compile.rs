//! `d2c compile FILE`: the optimised plan as YAML or a text listing; `--explain` shows the
//! plan after every optimisation pass that changed it.

use super::args::{DiagnosticArgs, SetArgs};
use super::{print_diagnostics, CliError, CliResult};
use d2c::compile::{compile, Source};
use d2c::plan::render::{to_text, to_yaml};
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum, Default)]
pub enum Emit {
    #[default]
    Text,
    Yaml,
}

#[derive(clap::Args)]
pub struct CompileArgs {
    file: PathBuf,
    #[arg(long, value_enum, default_value_t = Emit::Text)]
    emit: Emit,
    /// Print the plan after each optimisation pass that changes it.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    sets: SetArgs,
    #[command(flatten)]
    diag: DiagnosticArgs,
}

pub fn run(a: CompileArgs) -> CliResult {
    let src = Source::read(&a.file.to_string_lossy()).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let emit = a.emit;
    let show = move |p: &d2c::plan::Plan| match emit {
        Emit::Text => to_text(p),
        Emit::Yaml => to_yaml(p),
    };
    if a.explain {
        if let Ok(file) = d2c::syntax::parse(&src.text) {
            if let Some(p) = d2c::check::check(&file).plan {
                println!("# lowered (before any pass)\n{}", show(&p));
            }
        }
    }
    let explain = a.explain;
    let mut observe = |pass: &dyn d2c::plan::passes::Pass, p: &d2c::plan::Plan| {
        if explain {
            println!("# after pass `{}`: {}\n{}", pass.name(), pass.describe(), show(p));
        }
    };
    match compile(&src, &a.sets.sets, &mut observe) {
        Ok(c) => {
            print_diagnostics(&c.warnings, &src, a.diag.error_format);
            if explain {
                println!("# final plan");
            }
            print!("{}", show(&c.plan));
            Ok(())
        }
        Err(f) => {
            print_diagnostics(&f.diagnostics, &src, a.diag.error_format);
            Err(CliError::Invalid)
        }
    }
}

//! `d2c compile FILE`: the optimised plan as YAML or a text listing; `--explain` shows the
//! plan after every optimisation pass that changed it.

use super::{print_diagnostics, ErrorFormat, EXIT_ERROR, EXIT_OK, EXIT_POLICY};
use crate::compile::{compile, Source};
use crate::plan::render::{to_text, to_yaml};
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
    #[arg(long = "set")]
    sets: Vec<String>,
    #[arg(long, value_enum, default_value_t = ErrorFormat::Human)]
    error_format: ErrorFormat,
}

pub fn run(a: CompileArgs) -> i32 {
    let src = match Source::read(&a.file.to_string_lossy()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", a.file.display());
            return EXIT_ERROR;
        }
    };
    let emit = a.emit;
    let show = move |p: &crate::plan::Plan| match emit {
        Emit::Text => to_text(p),
        Emit::Yaml => to_yaml(p),
    };
    if a.explain {
        if let Ok(file) = crate::syntax::parse(&src.text) {
            if let Some(p) = crate::check::check(&file).plan {
                println!("# lowered (before any pass)\n{}", show(&p));
            }
        }
    }
    let explain = a.explain;
    let mut observe = |pass: &dyn crate::plan::passes::Pass, p: &crate::plan::Plan| {
        if explain {
            println!("# after pass `{}`: {}\n{}", pass.name(), pass.describe(), show(p));
        }
    };
    match compile(&src, &a.sets, &mut observe) {
        Ok(c) => {
            print_diagnostics(&c.warnings, &src, a.error_format);
            if explain {
                println!("# final plan");
            }
            print!("{}", show(&c.plan));
            EXIT_OK
        }
        Err(f) => {
            print_diagnostics(&f.diagnostics, &src, a.error_format);
            EXIT_POLICY
        }
    }
}

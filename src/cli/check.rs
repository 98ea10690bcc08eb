//! `d2c check FILE...`: every diagnostic of every file; exit 1 if any has an error.

use super::{print_diagnostics, ErrorFormat, EXIT_ERROR, EXIT_OK, EXIT_POLICY};
use crate::compile::{diagnostics, Source};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Policy files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Check with these parameter values (`name=value`, repeatable).
    #[arg(long = "set")]
    sets: Vec<String>,
    #[arg(long, value_enum, default_value_t = ErrorFormat::Human)]
    error_format: ErrorFormat,
}

pub fn run(a: CheckArgs) -> i32 {
    let mut code = EXIT_OK;
    for f in &a.files {
        let src = match Source::read(&f.to_string_lossy()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                code = EXIT_ERROR;
                continue;
            }
        };
        let ds = diagnostics(&src, &a.sets);
        print_diagnostics(&ds, &src, a.error_format);
        let errors = ds.iter().filter(|d| d.is_error()).count();
        let warnings = ds.len() - errors;
        if errors > 0 {
            code = code.max(EXIT_POLICY);
            if matches!(a.error_format, ErrorFormat::Human) {
                eprintln!("{}: {errors} error(s), {warnings} warning(s)", src.path);
            }
        } else if matches!(a.error_format, ErrorFormat::Human) {
            println!("{}: ok{}", src.path, if warnings > 0 { format!(" ({warnings} warning(s))") } else { String::new() });
        }
    }
    code
}

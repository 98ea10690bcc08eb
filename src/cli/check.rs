//! `d2c check FILE...`: every diagnostic of every file; exit 1 if any has an error.

use super::args::{DiagnosticArgs, SetArgs};
use super::{print_diagnostics, CliError, CliResult, ErrorFormat};
use d2c::compile::{diagnostics, Source};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Policy files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    sets: SetArgs,
    #[command(flatten)]
    diag: DiagnosticArgs,
}

pub fn run(a: CheckArgs) -> CliResult {
    let (mut unreadable, mut invalid) = (false, false);
    let format = a.diag.error_format;
    for f in &a.files {
        let src = match Source::read(&f.to_string_lossy()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                unreadable = true;
                continue;
            }
        };
        let ds = diagnostics(&src, &a.sets.sets);
        print_diagnostics(&ds, &src, format);
        let errors = ds.iter().filter(|d| d.is_error()).count();
        let warnings = ds.len() - errors;
        if errors > 0 {
            invalid = true;
            if matches!(format, ErrorFormat::Human) {
                eprintln!("{}: {errors} error(s), {warnings} warning(s)", src.path);
            }
        } else if matches!(format, ErrorFormat::Human) {
            println!("{}: ok{}", src.path, if warnings > 0 { format!(" ({warnings} warning(s))") } else { String::new() });
        }
    }
    match (unreadable, invalid) {
        (true, _) => Err(CliError::Reported),
        (false, true) => Err(CliError::Invalid),
        (false, false) => Ok(()),
    }
}

//! What subcommands print besides their results: policy diagnostics, tables, files.

use super::args::ErrorFormat;
use super::CliError;
use d2c::compile::{Failed, Source};
use d2c::diag::{render, to_json, Diagnostic};

pub fn print_diagnostics(ds: &[Diagnostic], src: &Source, format: ErrorFormat) {
    use std::io::IsTerminal;
    match format {
        ErrorFormat::Human => {
            let color = std::io::stderr().is_terminal();
            for d in ds {
                if d.span.line == 0 {
                    let help = d.help.as_ref().map(|h| format!("\n  help: {h}")).unwrap_or_default();
                    eprintln!("{}: {}: {}{help}", if d.is_error() { "error" } else { "warning" }, d.code, d.message);
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

/// A prepared (or compiled) policy with its warnings printed, or its diagnostics printed and
/// [`CliError::Invalid`].
pub fn reported<T>(result: Result<T, Failed>, warnings: impl Fn(&T) -> &[Diagnostic], src: &Source, format: ErrorFormat) -> Result<T, CliError> {
    match result {
        Ok(c) => {
            print_diagnostics(warnings(&c), src, format);
            Ok(c)
        }
        Err(f) => {
            print_diagnostics(&f.diagnostics, src, format);
            let n = f.diagnostics.iter().filter(|d| d.is_error()).count();
            eprintln!("error: {}: policy is invalid ({n} error{})", src.path, if n == 1 { "" } else { "s" });
            Err(CliError::Invalid)
        }
    }
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

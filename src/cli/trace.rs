//! `d2c trace show TRACE.json --svg OUT.svg [--html OUT.html]`: the refresh-map picture of a
//! `--trace` file ([`d2c::picture`]).

use super::CliResult;
use d2c::picture::{html, svg, TraceView};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct TraceArgs {
    #[command(subcommand)]
    cmd: TraceCmd,
}

#[derive(clap::Subcommand)]
enum TraceCmd {
    /// Draw a trace: one row per step, one column per canvas position.
    Show(ShowArgs),
}

#[derive(clap::Args)]
struct ShowArgs {
    /// A trace written by `d2c run --trace` (or an oracle step trace).
    trace: PathBuf,
    /// Write the picture as SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Write a page with the picture here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Which sequence of a batch trace.
    #[arg(long, default_value_t = 0)]
    seq: usize,
    /// Pixels per cell (default: chosen from the canvas width).
    #[arg(long, default_value_t = 0)]
    cell: usize,
    /// Label committed tokens with this model's tokenizer (default: token ids).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(a: TraceArgs) -> CliResult {
    let TraceCmd::Show(s) = a.cmd;
    Ok(show(s)?)
}

fn show(a: ShowArgs) -> Result<(), String> {
    if a.svg.is_none() && a.html.is_none() {
        return Err("say where to draw: --svg OUT.svg and/or --html OUT.html".into());
    }
    let name = a.trace.display().to_string();
    let text = std::fs::read_to_string(&a.trace).map_err(|e| format!("{name}: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{name}: not JSON: {e}"))?;
    let mut view = TraceView::from_json(&v, &name, a.seq)?;
    if let Some(m) = &a.model {
        let tok = d2c::model::tokenizer::TextTokenizer::from_dir(&d2c::engine::folder_of(m))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{}: no tokenizer", m.display()))?;
        view.label_with(|id| tok.piece(id));
    }
    write(a.svg.as_deref(), || svg(&view, a.cell))?;
    write(a.html.as_deref(), || html(&view, a.cell))
}

pub fn write(path: Option<&Path>, make: impl FnOnce() -> String) -> Result<(), String> {
    match path {
        Some(p) => std::fs::write(p, make()).map_err(|e| format!("{}: {e}", p.display())),
        None => Ok(()),
    }
}

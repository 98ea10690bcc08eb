//! `d2c tasks`: write examples of the synthetic task language (the held-out set by default).

use super::CliResult;
use d2c::train::{tasks, write_jsonl};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct TasksArgs {
    /// Output `.jsonl` file.
    #[arg(long)]
    out: PathBuf,
    /// How many examples (an equal share of every task kind).
    #[arg(long, default_value_t = 350)]
    n: usize,
    /// Seed; 1 is the held-out set `d2c train` excludes from training.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only these task kinds (comma-separated; default: the preset's).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// `tiny-tasks` (the seven short kinds) or `long-tasks` (the long-answer model's kinds, as
    /// in tasks/long-heldout.jsonl, which is `--preset long-tasks --seed 11 --n 160`).
    #[arg(long, default_value = "tiny-tasks")]
    preset: String,
}

pub fn run(a: TasksArgs) -> CliResult {
    eprintln!("{}", write_tasks(&a)?);
    Ok(())
}

fn write_tasks(a: &TasksArgs) -> Result<String, String> {
    let preset: Vec<String> = match a.preset.as_str() {
        "tiny-tasks" => tasks::KINDS.iter().map(|s| s.to_string()).collect(),
        "long-tasks" => tasks::LONG_PRESET_KINDS.iter().map(|s| s.to_string()).collect(),
        other => return Err(format!("--preset {other}: not a preset (tiny-tasks, long-tasks)")),
    };
    let kinds = if a.kinds.is_empty() { preset } else { a.kinds.clone() };
    if let Some(k) = kinds.iter().find(|k| !tasks::all_kinds().contains(&k.as_str())) {
        return Err(format!("unknown task kind `{k}` (kinds: {})", tasks::all_kinds().join(", ")));
    }
    let ex = tasks::heldout(a.seed, a.n, &kinds);
    write_jsonl(&a.out, &ex).map_err(|e| e.to_string())?;
    Ok(format!("wrote {} examples ({}) to {}", ex.len(), kinds.join(", "), a.out.display()))
}

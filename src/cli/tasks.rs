//! `d2c tasks`: write examples of the synthetic task language (the held-out set by default).

use super::{EXIT_ERROR, EXIT_OK};
use crate::train::{tasks, write_jsonl};
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
    /// Only these task kinds (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
}

pub fn run(a: TasksArgs) -> i32 {
    let ex = tasks::heldout(a.seed, a.n, &a.kinds);
    match write_jsonl(&a.out, &ex) {
        Ok(()) => {
            eprintln!("wrote {} examples ({}) to {}", ex.len(), tasks::KINDS.join(", "), a.out.display());
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_ERROR
        }
    }
}

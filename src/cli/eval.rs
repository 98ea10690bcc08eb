//! `d2c eval`: exact-match accuracy, tokens/s and forwards of one or more policies on a tasks
//! file, as one table with speedups against the first policy.

use super::output::reported;
use super::{CliResult, ErrorFormat, ModelArgs, SetArgs};
use d2c::engine::{Engine, Prepared};
use d2c::eval::{evaluate, EvalReport};
use d2c::train;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Tasks, one JSON object per line: {"prompt": ..., "answer": ...} (optionally "task").
    #[arg(long)]
    tasks: PathBuf,
    /// Policy file, or `FILE:name=value,...`; repeat to compare (speedups are against the first).
    #[arg(long, default_value = "policies/vanilla.pol")]
    policy: Vec<String>,
    #[command(flatten)]
    sets: SetArgs,
    /// Evaluate only the first N tasks.
    #[arg(long)]
    limit: Option<usize>,
    /// Print accuracy per task kind and the first wrong answers.
    #[arg(long, short)]
    verbose: bool,
    /// Print a Markdown table.
    #[arg(long)]
    markdown: bool,
}

pub fn run(a: EvalArgs) -> CliResult {
    let table = EvalTable { model: &a.model, tasks: &a.tasks, specs: &a.policy, sets: &a.sets.sets, limit: a.limit, verbose: a.verbose, markdown: a.markdown };
    eval_table(table)
}

/// What [`eval_table`] evaluates and how it prints.
pub struct EvalTable<'a> {
    pub model: &'a ModelArgs,
    pub tasks: &'a Path,
    pub specs: &'a [String],
    pub sets: &'a [String],
    pub limit: Option<usize>,
    pub verbose: bool,
    pub markdown: bool,
}

/// Evaluate every policy spec on the tasks and print one table. Also used by `d2c bench --tasks`.
pub fn eval_table(t: EvalTable) -> CliResult {
    let EvalTable { model, tasks, specs, sets, limit, verbose, markdown } = t;
    let mut examples = train::read_jsonl(tasks).map_err(|e| e.to_string())?;
    if let Some(n) = limit {
        examples.truncate(n);
    }
    let engine = Engine::load(model.model.as_deref(), model.dtype.weight_type())?;
    if engine.tokenizer.is_none() {
        return Err(format!("{}: no tokenizer.json (eval needs text prompts)", engine.path.display()).into());
    }
    let mut rows: Vec<(String, EvalReport)> = Vec::new();
    for spec in specs {
        let (src, own) = super::policy_spec(spec, sets)?;
        let prepared = reported(engine.prepare(&src, &own)?, |p: &Prepared| &p.compiled.warnings, &src, ErrorFormat::Human)?;
        eprintln!("evaluating {spec} on {} tasks ...", examples.len());
        let r = evaluate(&engine, &prepared, &examples)?;
        if verbose {
            for (k, (c, t)) in &r.per_task {
                let (tr, ta) = r.per_task_tokens.get(k).copied().unwrap_or_default();
                eprintln!(
                    "  {k:>11}: {c}/{t} ({:.1}%), answer tokens right {:.1}%",
                    100.0 * *c as f64 / (*t).max(1) as f64,
                    100.0 * tr as f64 / ta.max(1) as f64
                );
            }
            for (p, want, got) in &r.mistakes {
                eprintln!("  wrong: {p} -> {got:?} (want {want:?})");
            }
        }
        rows.push((spec.trim_start_matches("policies/").to_string(), r));
    }
    print_table(&rows, examples.len(), markdown);
    Ok(())
}

fn print_table(rows: &[(String, EvalReport)], n: usize, markdown: bool) {
    let Some((_, base)) = rows.first() else { return };
    println!("{n} tasks; speedup vs {}", rows[0].0);
    let header =
        ["policy", "accuracy", "token acc.", "tokens/s", "speedup", "forwards/task", "rows/step", "recompute", "EOS early", "masked at 1st EOS", "cut short"];
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|(name, r)| {
            vec![
                name.clone(),
                format!("{:.1}%", 100.0 * r.accuracy()),
                format!("{:.1}%", 100.0 * r.token_accuracy()),
                format!("{:.0}", r.stats.tokens_per_s()),
                format!("{:.2}x", r.stats.tokens_per_s() / base.stats.tokens_per_s().max(1e-9)),
                format!("{:.1}", r.stats.forwards as f64 / r.total.max(1) as f64),
                format!("{:.1}", r.stats.mean_rows_per_step()),
                format!("{:.1}%", 100.0 * r.stats.recompute_fraction()),
                format!("{:.1}%", 100.0 * r.eos_early as f64 / r.total.max(1) as f64),
                format!("{:.1}%", 100.0 * r.eos_masked_share / r.total.max(1) as f64),
                format!("{:.1}%", 100.0 * r.cut_short as f64 / r.total.max(1) as f64),
            ]
        })
        .collect();
    super::print_table(&header, &lines, markdown);
}

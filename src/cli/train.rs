//! `d2c train`: train the tiny masked-diffusion model on the synthetic task language and write
//! a Hugging Face style folder, plus the held-out tasks it never saw.

use super::CliResult;
use d2c::engine::Engine;
use d2c::train::{self, tasks, TrainOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// `tiny-tasks` (the embedded model) or `long-tasks` (long answers; models/long-tasks,
    /// tasks/long-heldout.jsonl); the other flags override it.
    #[arg(long, default_value = "tiny-tasks")]
    preset: String,
    /// Output model folder (default: the preset's).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the held-out tasks (never trained on) to this file (default: the preset's).
    #[arg(long)]
    heldout: Option<PathBuf>,
    #[arg(long)]
    gen_min: Option<usize>,
    /// Length of the learning-rate schedule (and of the run, unless --stop-after).
    #[arg(long)]
    steps: Option<usize>,
    /// End after N steps, keeping the schedule of --steps.
    #[arg(long)]
    stop_after: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    d_model: Option<usize>,
    #[arg(long)]
    layers: Option<usize>,
    #[arg(long)]
    heads: Option<usize>,
    #[arg(long)]
    mlp_hidden: Option<usize>,
    /// Task kinds to train on, comma-separated (default: the preset's; `all` for the seven short kinds).
    /// With `--preset long-tasks` the held-out file keeps the preset's kinds, so a run on a
    /// few of them (a curriculum stage) still never trains on it and probes all of them.
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    #[arg(long)]
    gen_max: Option<usize>,
    /// Share of examples trained on a short canvas (answer + 1..=--short-pad EOS).
    #[arg(long)]
    short_frac: Option<f64>,
    #[arg(long)]
    short_pad: Option<usize>,
    /// Print the loss every N steps.
    #[arg(long, default_value_t = 100)]
    log_every: usize,
    /// Start from this model folder's weights (same shape) instead of a fresh init: a second
    /// training stage with its own schedule and a fresh optimiser.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Every N steps, save a checkpoint and report no-cache accuracy on 30 held-out tasks, per
    /// kind (exact and token-level), at gen 64 and at the model's canvas (0 = never).
    #[arg(long, default_value_t = 1000)]
    eval_every: usize,
}

pub fn run(a: TrainArgs) -> CliResult {
    Ok(train_inner(a)?)
}

fn train_inner(a: TrainArgs) -> Result<(), String> {
    let (d, heldout) = match a.preset.as_str() {
        "tiny-tasks" => (TrainOptions::default(), PathBuf::from("tasks/heldout.jsonl")),
        "long-tasks" => (TrainOptions::long_tasks(), PathBuf::from("tasks/long-heldout.jsonl")),
        other => return Err(format!("--preset {other}: not a preset (tiny-tasks, long-tasks)")),
    };
    let heldout = a.heldout.clone().unwrap_or(heldout);
    let mut o = TrainOptions {
        out: a.out.clone().unwrap_or(d.out.clone()),
        gen_min: a.gen_min.unwrap_or(d.gen_min),
        steps: a.steps.unwrap_or(d.steps),
        stop_after: a.stop_after.or(if a.steps.is_some() { None } else { d.stop_after }),
        batch: a.batch.unwrap_or(d.batch),
        lr: a.lr.unwrap_or(d.lr),
        seed: a.seed.unwrap_or(d.seed),
        d_model: a.d_model.unwrap_or(d.d_model),
        layers: a.layers.unwrap_or(d.layers),
        heads: a.heads.unwrap_or(d.heads),
        mlp_hidden: a.mlp_hidden.unwrap_or(d.mlp_hidden),
        gen_max: a.gen_max.unwrap_or(d.gen_max),
        short_frac: a.short_frac.unwrap_or(d.short_frac),
        short_pad: a.short_pad.unwrap_or(d.short_pad),
        kinds: if a.kinds.is_empty() { d.kinds.clone() } else { a.kinds.clone() },
        init: a.init.clone().or(d.init.clone()),
        ..d
    };
    if o.kinds.iter().any(|k| k == "all") {
        o.kinds = tasks::KINDS.iter().map(|s| s.to_string()).collect();
    }
    if a.log_every == 0 {
        return Err("--log-every must be positive".into());
    }
    o.validate().map_err(|e| e.to_string())?;
    let held = o.heldout();
    if let Some(parent) = heldout.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    train::write_jsonl(&heldout, &held).map_err(|e| e.to_string())?;
    eprintln!("training {} layers x d_model {} for {} steps of {} sequences -> {}", o.layers, o.d_model, o.steps, o.batch, o.out.display());
    // 30 tasks for the periodic probe (the held-out file is round-robin over kinds, so any
    // stride that is not a multiple of the kind count keeps it balanced), twice as many at the end.
    let sample = |n: usize| -> Vec<tasks::Example> { held.iter().step_by((held.len() / n).max(1)).take(n).cloned().collect() };
    let (probe, final_probe) = (sample(30), sample(60));
    let out = o.out.clone();
    let eval_every = a.eval_every;
    let gens = probe_canvases(o.gen_max);
    let mut on_progress = |p: &train::TrainProgress, vm: &candle_nn::VarMap| -> d2c::error::Result<()> {
        eprintln!("step {:>6}  loss {:.4}  lr {:.2e}  {:.0}s", p.step, p.loss, p.lr, p.elapsed_s);
        if eval_every > 0 && p.step.is_multiple_of(eval_every) && p.step < o.last_step() {
            train::save(vm, &out)?;
            for &gen in &gens {
                eprintln!("step {:>6}  {}", p.step, probe_line(&out, &probe, gen)?);
            }
        }
        Ok(())
    };
    train::train(&o, a.log_every, &mut on_progress).map_err(|e| e.to_string())?;
    for &gen in &gens {
        eprintln!("done: {}", probe_line(&o.out, &final_probe, gen).map_err(|e| e.to_string())?);
    }
    eprintln!("model in {}, held-out tasks in {}", o.out.display(), heldout.display());
    Ok(())
}

/// The canvases the probe decodes on: the model's default (`gen_max`) and, for a long canvas,
/// 64 as well, since accuracy on a long EOS tail and on a short canvas part ways (README).
fn probe_canvases(gen_max: usize) -> Vec<usize> {
    if gen_max > 64 {
        vec![64, gen_max]
    } else {
        vec![gen_max]
    }
}

/// "held-out exact match (no cache, gen G, N tasks): X% [kind a%, ...]".
fn probe_line(dir: &std::path::Path, probe: &[tasks::Example], gen: usize) -> d2c::error::Result<String> {
    let r = probe_report(dir, probe, gen)?;
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    let kinds: Vec<String> = r
        .per_task
        .iter()
        .map(|(k, (ok, n))| {
            let (right, all) = r.per_task_tokens.get(k).copied().unwrap_or_default();
            format!("{k} {:.0}% ({:.0}% of tokens)", pct(*ok, *n), pct(right, all))
        })
        .collect();
    Ok(format!("held-out exact match (no cache, gen {gen}, {} tasks): {:.1}% [{}]", probe.len(), 100.0 * r.accuracy(), kinds.join(", ")))
}

/// No-cache decoding of `probe` by the checkpoint in `dir` on a `gen`-token canvas (one block).
fn probe_report(dir: &std::path::Path, probe: &[tasks::Example], gen: usize) -> d2c::error::Result<d2c::eval::EvalReport> {
    let engine = Engine::load(Some(dir), d2c::model::linear::WeightType::Dense(candle_core::DType::F32))?;
    let canvas = [format!("gen_length={gen}"), format!("block_length={gen}")];
    let prepared = engine
        .prepare(&super::default_policy(), &canvas)?
        .map_err(|f| d2c::error::Error::Other(format!("the embedded policy does not compile at gen {gen}: {:?}", f.diagnostics)))?;
    d2c::eval::evaluate(&engine, &prepared, probe)
}

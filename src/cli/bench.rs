//! `d2c bench`: several policies on the same model, prompt and settings, in one process, as
//! one table (tokens/s, speedup and ideal speedup vs no-cache, forwards, rows, agreement).

use super::output::reported;
use super::{parse_ids, CliError, CliResult, Dtype, ErrorFormat, ModelArgs, SetArgs};
use d2c::engine::{Engine, Prepared};
use d2c::model::DiffusionModel;
use d2c::runtime::{RunOptions, RunOutput};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Policies, each `FILE` or `FILE:name=value,name=value` for per-policy settings.
    /// Default: the cache policies, or with --tasks every shipped policy.
    #[arg(long, value_delimiter = ' ', num_args = 1..)]
    policies: Vec<String>,
    /// Accuracy mode: decode every task of this `.jsonl` file with every policy and report
    /// exact-match accuracy next to speed (gen/block length from the model's generation_config.json
    /// unless --gen-length/--block-length are given).
    #[arg(long)]
    tasks: Option<PathBuf>,
    /// With --tasks: only the first N tasks.
    #[arg(long)]
    limit: Option<usize>,
    /// The no-cache baseline everything is compared with.
    #[arg(long, default_value = "policies/vanilla.pol")]
    baseline: String,
    /// Random prompt of this many tokens (seeded), unless --prompt-ids is given.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    #[arg(long = "prompt-ids")]
    prompt_ids: Option<String>,
    /// Default 256 (prompt mode).
    #[arg(long)]
    gen_length: Option<usize>,
    /// Default 32 (prompt mode).
    #[arg(long)]
    block_length: Option<usize>,
    #[command(flatten)]
    sets: SetArgs,
    /// Several weight types in one process (e.g. `f32,q8_0,q4_k`): every policy runs with each,
    /// speedups against the first type's baseline.
    #[arg(long, value_enum, value_delimiter = ',')]
    dtypes: Vec<Dtype>,
    /// Per-layer forward timing at 384/64/16 rows for each of --dtypes (default f32, bf16,
    /// q8_0, q4_k), extrapolated to --extrapolate-layers layers.
    #[arg(long)]
    layer_timing: bool,
    /// Where a layer's time goes, per op kind, at 32/64/384 rows (with --dtype).
    #[arg(long)]
    profile: bool,
    /// GFLOP/s of the projection kernels per instruction set and weight type, next to
    /// candle's matmul, on one layer's shapes of the --model (default: the bench model's).
    #[arg(long)]
    kernels: bool,
    #[arg(long, default_value_t = 32)]
    extrapolate_layers: usize,
    /// Repetitions per timing in --layer-timing.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print a Markdown table.
    #[arg(long)]
    markdown: bool,
    /// Step-level batching: N requests with prompts of different lengths (--prompt-len down
    /// to half of it) decoded one after another and then as one batch, per policy.
    #[arg(long)]
    concurrent: Option<usize>,
}

struct Row {
    name: String,
    out: RunOutput,
    weights: usize,
}

const CACHE_POLICIES: [&str; 4] = ["policies/fast-dllm-prefix.pol", "policies/fast-dllm-dual.pol", "policies/d2cache.pol", "policies/d2cache-fixed.pol"];
const ALL_POLICIES: [&str; 11] = [
    "policies/vanilla.pol:certainty_prior=true",
    "policies/parallel.pol",
    "policies/parallel-factor.pol",
    "policies/eb-sampler.pol",
    "policies/klass.pol",
    "policies/pc-sampler.pol",
    "policies/fast-dllm-prefix.pol",
    "policies/fast-dllm-dual.pol",
    "policies/d2cache.pol",
    "policies/d2cache-fixed.pol",
    "policies/dllm-cache.pol",
];

pub fn run(mut a: BenchArgs) -> CliResult {
    if let Some(tasks) = a.tasks.clone() {
        if a.policies.is_empty() {
            a.policies = ALL_POLICIES.iter().map(|s| s.to_string()).collect();
        }
        let specs: Vec<String> = std::iter::once(a.baseline.clone()).chain(a.policies.iter().cloned()).collect();
        let mut sets: Vec<String> =
            a.gen_length.map(|g| format!("gen_length={g}")).into_iter().chain(a.block_length.map(|b| format!("block_length={b}"))).collect();
        sets.extend(a.sets.sets.iter().cloned());
        let table = super::eval::EvalTable { model: &a.model, tasks: &tasks, specs: &specs, sets: &sets, limit: a.limit, verbose: false, markdown: a.markdown };
        return super::eval::eval_table(table);
    }
    if a.kernels {
        let (d, ff) = match &a.model.model {
            Some(dir) => {
                let info = Engine::load(Some(dir), Dtype::F32.weight_type())?.model.info().clone();
                (info.d_model, info.mlp_hidden)
            }
            None => (1024, 2816),
        };
        super::bench_kernels::run(d, ff, a.reps, a.markdown)?;
        return Ok(());
    }
    let dir = d2c::engine::model_dir(a.model.model.as_deref())?;
    if a.profile {
        super::bench_layers::profile(&dir, a.model.dtype, a.reps, a.markdown)?;
        return Ok(());
    }
    if a.layer_timing {
        let dtypes = if a.dtypes.is_empty() { vec![Dtype::F32, Dtype::Bf16, Dtype::Q8_0, Dtype::Q4K] } else { a.dtypes.clone() };
        super::bench_layers::run(&dir, &dtypes, a.extrapolate_layers, a.reps, a.markdown)?;
        return Ok(());
    }
    if a.policies.is_empty() {
        a.policies = CACHE_POLICIES.iter().map(|s| s.to_string()).collect();
    }
    let (gen_length, block_length) = (a.gen_length.unwrap_or(256), a.block_length.unwrap_or(32));
    if let Some(n) = a.concurrent {
        let engine = Engine::load(Some(&dir), a.model.dtype.weight_type())?;
        let info = engine.model.info().clone();
        let prompts: Vec<Vec<u32>> = (0..n.max(1)).map(|i| random_prompt(&info, a.prompt_len - i * a.prompt_len / (2 * n.max(1)), a.seed + i as u64)).collect();
        let mut shared = vec![format!("gen_length={gen_length}"), format!("block_length={block_length}")];
        shared.extend(a.sets.sets.iter().cloned());
        let specs: Vec<String> = std::iter::once(a.baseline.clone()).chain(a.policies.iter().cloned()).collect();
        let lines = super::bench_batch::compare(&engine, &specs, &shared, &prompts)?;
        let lens: Vec<String> = prompts.iter().map(|p| p.len().to_string()).collect();
        println!(
            "model: {} layers, d_model {}; {} requests, prompts of {} tokens; gen {gen_length}, block {block_length}; {}",
            info.n_layers,
            info.d_model,
            prompts.len(),
            lens.join("/"),
            a.model.dtype.name()
        );
        super::print_table(&super::bench_batch::HEADER, &lines, a.markdown);
        return Ok(());
    }
    let dtypes = if a.dtypes.is_empty() { vec![a.model.dtype] } else { a.dtypes.clone() };
    let mut rows = Vec::new();
    let mut info = None;
    for &dt in &dtypes {
        let engine = Engine::load(Some(&dir), dt.weight_type())?;
        run_policies(&a, &engine, dt, dtypes.len() > 1, (gen_length, block_length), &mut rows)?;
        info = Some(engine.model.info().clone());
    }
    let Some(info) = info else { return Ok(()) };
    let prompt_len = rows.first().map_or(0, |r| r.out.prompts[0].len());
    print_table(&rows, &info, &a, prompt_len);
    Ok(())
}

/// Run the baseline and every policy on `model` (weights `dt`, named in the rows when `tag`),
/// at `(gen_length, block_length)`, appending one row each.
fn run_policies(a: &BenchArgs, engine: &Engine, dt: Dtype, tag: bool, lengths: (usize, usize), rows: &mut Vec<Row>) -> CliResult {
    let (gen_length, block_length) = lengths;
    let prompt = match &a.prompt_ids {
        Some(s) => parse_ids(s)?,
        None => random_prompt(engine.model.info(), a.prompt_len, a.seed),
    };
    for spec in std::iter::once(&a.baseline).chain(a.policies.iter()) {
        let mut shared = vec![format!("gen_length={gen_length}"), format!("block_length={block_length}")];
        shared.extend(a.sets.sets.iter().cloned());
        let (src, sets) = super::policy_spec(spec, &shared)?;
        let prepared = reported(engine.prepare(&src, &sets)?, |p: &Prepared| &p.compiled.warnings, &src, ErrorFormat::Human)?;
        eprintln!("running {spec} ({}) ...", dt.name());
        let out = engine.generate(&prepared, std::slice::from_ref(&prompt), RunOptions::default()).map_err(CliError::from)?;
        let name = if tag { format!("{spec} [{}]", dt.name()) } else { spec.clone() };
        rows.push(Row { name, out, weights: engine.model.weight_bytes() });
    }
    Ok(())
}

/// A seeded prompt of `len` ids that are neither mask nor EOS.
fn random_prompt(info: &d2c::model::ModelInfo, len: usize, seed: u64) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let hi = (info.mask_id.min(info.eos_id) as usize).min(info.logits_width).max(2);
    (0..len.max(1)).map(|_| rng.gen_range(1..hi) as u32).collect()
}

fn print_table(rows: &[Row], info: &d2c::model::ModelInfo, a: &BenchArgs, prompt_len: usize) {
    let base = &rows[0].out;
    println!(
        "model: {} layers, d_model {}, {} heads, mlp {}, vocab {}; prompt {prompt_len}, gen {}, block {}; {}",
        info.n_layers,
        info.d_model,
        info.n_heads,
        info.mlp_hidden,
        info.logits_width,
        a.gen_length.unwrap_or(256),
        a.block_length.unwrap_or(32),
        if a.dtypes.is_empty() { a.model.dtype.name().to_string() } else { a.dtypes.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ") }
    );
    println!("cpu kernels: {}", d2c::model::simd::describe());
    let header = ["policy", "tokens/s", "speedup", "ideal", "forwards", "rows/step", "recompute", "model %", "policy %", "same tokens", "weights"];
    let mut lines: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let s = &r.out.stats;
        let agree = r.out.generated[0].iter().zip(&base.generated[0]).filter(|(x, y)| x == y).count() as f64 / base.generated[0].len().max(1) as f64;
        let wall = s.wall_time.as_secs_f64().max(1e-9);
        lines.push(vec![
            r.name.trim_start_matches("policies/").to_string(),
            format!("{:.2}", s.tokens_per_s()),
            format!("{:.2}x", s.tokens_per_s() / base.stats.tokens_per_s().max(1e-9)),
            format!("{:.2}x", base.stats.flops / s.flops.max(1.0)),
            s.forwards.to_string(),
            format!("{:.1}", s.mean_rows_per_step()),
            format!("{:.1}%", 100.0 * s.recompute_fraction()),
            format!("{:.1}", 100.0 * s.model_time.as_secs_f64() / wall),
            format!("{:.1}", 100.0 * s.policy_time.as_secs_f64() / wall),
            format!("{:.1}%", 100.0 * agree),
            d2c::model::linear::fmt_bytes(r.weights as u64),
        ]);
    }
    super::print_table(&header, &lines, a.markdown);
}

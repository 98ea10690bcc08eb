//! `d2c run`: decode prompts with a policy and print the text and a one-line summary.

use super::{compile_or_report, load_model, model_defaults, model_dir, parse_ids, read_policy, Dtype, ErrorFormat, EXIT_ERROR, EXIT_OK};
use crate::model::DiffusionModel;
use crate::runtime::{generate, trace, RunOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Hugging Face LLaDA folder (config.json, safetensors, tokenizer.json). Default: the
    /// tiny model embedded in the binary.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Policy file. Default: the embedded policies/vanilla.pol (no cache).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Prompt text (needs tokenizer.json); repeat for a batch.
    #[arg(long)]
    prompt: Vec<String>,
    /// Prompt as token ids `1,2,3`; repeat for a batch (all of equal length).
    #[arg(long = "prompt-ids")]
    prompt_ids: Vec<String>,
    /// Set a policy parameter, `name=value` (repeatable).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Shorthand for --set gen_length=N.
    #[arg(long)]
    gen_length: Option<usize>,
    /// Shorthand for --set block_length=N.
    #[arg(long)]
    block_length: Option<usize>,
    /// Total steps; sets tokens_per_step = gen_length / steps (must divide).
    #[arg(long)]
    steps: Option<usize>,
    /// Shorthand for --set temperature=T.
    #[arg(long)]
    temperature: Option<f64>,
    /// Shorthand for --set seed=S.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
    /// Write a step-by-step trace (JSON) to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    #[arg(long, value_enum, default_value_t = ErrorFormat::Human)]
    error_format: ErrorFormat,
}

fn value_of(sets: &[String], name: &str) -> Option<String> {
    sets.iter().rev().find_map(|s| s.split_once('=').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim().to_string()))
}

pub fn run(a: RunArgs) -> i32 {
    match run_inner(a) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            EXIT_ERROR
        }
    }
}

fn run_inner(a: RunArgs) -> Result<i32, String> {
    let src = read_policy(a.policy.as_deref())?;
    let dir = model_dir(a.model.as_deref())?;
    let mut sets = model_defaults(&dir, &src);
    if let Some(g) = a.gen_length {
        sets.push(format!("gen_length={g}"));
    }
    if let Some(b) = a.block_length {
        sets.push(format!("block_length={b}"));
    }
    if let Some(t) = a.temperature {
        sets.push(format!("temperature={t}"));
    }
    if let Some(s) = a.seed {
        sets.push(format!("seed={s}"));
    }
    sets.extend(a.sets.iter().cloned());
    if let Some(steps) = a.steps {
        // Resolve gen_length from the flags or the policy default to turn steps into a rate.
        let gen = match value_of(&sets, "gen_length") {
            Some(g) => g.parse::<usize>().map_err(|_| format!("gen_length `{g}` is not an integer"))?,
            None => {
                let c = compile_or_report(&src, &sets, a.error_format);
                let Ok(c) = c else { return Ok(super::EXIT_POLICY) };
                c.plan.schedule.gen_length.as_usize().unwrap_or(0)
            }
        };
        if steps == 0 || gen % steps != 0 {
            return Err(format!("--steps {steps} must divide gen_length {gen} (tokens per step is constant in d2c policies)"));
        }
        sets.push(format!("tokens_per_step={}", gen / steps));
    }
    let compiled = match compile_or_report(&src, &sets, a.error_format) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let (model, tok) = load_model(&dir, a.dtype)?;
    let mut prompts: Vec<Vec<u32>> = Vec::new();
    for p in &a.prompt {
        let t = tok.as_ref().ok_or_else(|| format!("{}: no tokenizer.json; pass --prompt-ids instead", dir.display()))?;
        let ids = t.encode(p).map_err(|e| e.to_string())?;
        if ids.is_empty() {
            return Err(format!("prompt {p:?} encodes to no tokens"));
        }
        prompts.push(ids);
    }
    let width = model.info().logits_width;
    for s in &a.prompt_ids {
        let ids = parse_ids(s)?;
        if ids.is_empty() {
            return Err("--prompt-ids: empty prompt".into());
        }
        if let Some(bad) = ids.iter().find(|&&x| x as usize >= width) {
            return Err(format!("--prompt-ids: token id {bad} is outside the vocabulary (0..{width})"));
        }
        prompts.push(ids);
    }
    if prompts.is_empty() {
        return Err("give a prompt: --prompt TEXT or --prompt-ids 1,2,3".into());
    }
    let total_steps = {
        let s = &compiled.plan.schedule;
        s.gen_length.as_usize().unwrap_or(0)
    };
    let bar = (!a.quiet && !a.json && total_steps >= 64).then(|| {
        let pb = indicatif::ProgressBar::new((total_steps * prompts.len()) as u64);
        pb.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} tokens {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
        pb
    });
    let pb2 = bar.clone();
    let on_step: Option<Box<dyn FnMut(usize, usize, usize)>> = pb2.map(|pb| Box::new(move |step: usize, done: usize, _| {
        pb.set_position(done as u64);
        pb.set_message(format!("step {step}"));
    }) as Box<dyn FnMut(usize, usize, usize)>);
    let out = generate(&model, &compiled.plan, &prompts, RunOptions { record_details: a.trace.is_some(), on_step }).map_err(|e| e.to_string())?;
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    if let Some(path) = &a.trace {
        let json = trace::to_json(&out, &compiled.plan.policy);
        std::fs::write(path, serde_json::to_string(&json).unwrap_or_default()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let texts: Vec<Option<String>> = out.generated.iter().map(|g| tok.as_ref().and_then(|t| t.decode(g).ok())).collect();
    let s = &out.stats;
    let model_share = s.model_time.as_secs_f64() / s.wall_time.as_secs_f64().max(1e-9);
    if a.json {
        let v = serde_json::json!({
            "policy": compiled.plan.policy,
            "generated_ids": out.generated,
            "text": texts,
            "steps": s.steps, "forwards": s.forwards, "full_forwards": s.full_forwards,
            "mean_rows_per_step": s.mean_rows_per_step(), "recompute_fraction": s.recompute_fraction(),
            "tokens_per_s": s.tokens_per_s(), "wall_s": s.wall_time.as_secs_f64(),
            "model_s": s.model_time.as_secs_f64(), "policy_s": s.policy_time.as_secs_f64(),
        });
        println!("{v}");
    } else {
        for (i, g) in out.generated.iter().enumerate() {
            match &texts[i] {
                Some(t) => println!("{t}"),
                None => println!("{}", g.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")),
            }
        }
        eprintln!(
            "[{}] {} steps, {} forwards ({} full), {:.1} rows/step ({:.1}% of no-cache), {:.1} tokens/s, {:.2}s wall ({:.0}% model, {:.0}% policy)",
            compiled.plan.policy,
            s.steps,
            s.forwards,
            s.full_forwards,
            s.mean_rows_per_step(),
            100.0 * s.recompute_fraction(),
            s.tokens_per_s(),
            s.wall_time.as_secs_f64(),
            100.0 * model_share,
            100.0 * s.policy_time.as_secs_f64() / s.wall_time.as_secs_f64().max(1e-9),
        );
    }
    Ok(EXIT_OK)
}

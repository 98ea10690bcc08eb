//! `d2c run`: decode prompts with a policy and print the text (live with `--stream`) and a
//! summary. Prompts go through the model's chat template unless `--raw`.

use super::args::DiagnosticArgs;
use super::output::reported;
use super::{parse_ids, read_policy, CliResult, ModelArgs, SetArgs};
use d2c::chat::{answer_len, prompt_ids, read_messages, Message};
use d2c::compile::Source;
use d2c::engine::{Engine, Prepared};
use d2c::model::linear::{fmt_bytes, peak_rss_bytes};
use d2c::model::tokenizer::TextTokenizer;
use d2c::model::DiffusionModel;
use d2c::runtime::{trace, Progress, RunOptions};
use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Policy file. Default: the embedded policies/vanilla.pol (no cache).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Prompt text (a user turn of the chat template when the model has one); repeat for a batch.
    #[arg(long)]
    prompt: Vec<String>,
    /// Prompt as token ids `1,2,3` (used as is); repeat for a batch (all of equal length).
    #[arg(long = "prompt-ids")]
    prompt_ids: Vec<String>,
    /// A system turn before each prompt.
    #[arg(long)]
    system: Option<String>,
    /// An OpenAI-style message list (JSON: [{"role": ..., "content": ...}, ...]) as the prompt.
    #[arg(long)]
    messages: Option<PathBuf>,
    /// Do not apply the chat template: tokenize the prompt text as it is.
    #[arg(long)]
    raw: bool,
    /// Jinja chat template file to use instead of the model's.
    #[arg(long = "chat-template")]
    chat_template: Option<PathBuf>,
    #[command(flatten)]
    sets: SetArgs,
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
    /// Print the answer as it grows: the text before the first still-masked position.
    #[arg(long)]
    stream: bool,
    /// Draw the refresh map (one row per step, one column per position) as SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Show the canvas filling in live (a terminal only; plain output otherwise).
    #[arg(long, conflicts_with = "stream")]
    visual: bool,
    /// Write a step-by-step trace (JSON) to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    diag: DiagnosticArgs,
}

fn value_of(sets: &[String], name: &str) -> Option<String> {
    sets.iter().rev().find_map(|s| s.split_once('=').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim().to_string()))
}

/// The user's settings: flags first, then `--set`s (later wins).
fn user_sets(a: &RunArgs) -> Vec<String> {
    let mut sets = Vec::new();
    let flags = [
        ("gen_length", a.gen_length.map(|x| x.to_string())),
        ("block_length", a.block_length.map(|x| x.to_string())),
        ("temperature", a.temperature.map(|x| x.to_string())),
        ("seed", a.seed.map(|x| x.to_string())),
    ];
    for (k, v) in flags {
        if let Some(v) = v {
            sets.push(format!("{k}={v}"));
        }
    }
    sets.extend(a.sets.sets.iter().cloned());
    sets
}

/// The conversations to decode: one per `--prompt`, or the `--messages` file.
fn conversations(a: &RunArgs) -> Result<Vec<Vec<Message>>, String> {
    let system: Vec<Message> = a.system.iter().map(|s| Message::new("system", s)).collect();
    let mut out: Vec<Vec<Message>> = a.prompt.iter().map(|p| system.iter().cloned().chain([Message::new("user", p)]).collect()).collect();
    if let Some(f) = &a.messages {
        out.push(system.into_iter().chain(read_messages(f).map_err(|e| e.to_string())?).collect());
    }
    Ok(out)
}

/// The policy with the model folder's settings and the user's (`--steps` turned into
/// tokens_per_step against the gen_length they give), its diagnostics printed.
fn prepare(a: &RunArgs, src: &Source, dir: &std::path::Path) -> Result<Prepared, super::CliError> {
    let mut sets = user_sets(a);
    let report = |sets: &[String]| -> Result<Prepared, super::CliError> {
        reported(d2c::engine::prepare(dir, src, sets)?, |p: &Prepared| &p.compiled.warnings, src, a.diag.error_format)
    };
    if let Some(steps) = a.steps {
        let gen = match value_of(&sets, "gen_length") {
            Some(g) => g.parse::<usize>().map_err(|_| format!("gen_length `{g}` is not an integer"))?,
            None => report(&sets)?.settings.gen,
        };
        if steps == 0 || gen % steps != 0 {
            return Err(format!("--steps {steps} must divide gen_length {gen} (tokens per step is constant in d2c policies)").into());
        }
        sets.push(format!("tokens_per_step={}", gen / steps));
    }
    report(&sets)
}

/// The prompts as ids: each conversation through the chat template, then `--prompt-ids`.
fn prompts(a: &RunArgs, engine: &Engine) -> Result<Vec<Vec<u32>>, String> {
    let tok = engine.tokenizer.clone();
    let template = engine.template.as_ref();
    let mut prompts: Vec<Vec<u32>> = Vec::new();
    for conv in conversations(a)? {
        let t = tok
            .as_deref()
            .ok_or_else(|| format!("{}: no tokenizer (tokenizer.json, or vocab.json + merges.txt); pass --prompt-ids instead", engine.path.display()))?;
        for m in &conv {
            let unknown = t.unknown_words(&m.content);
            if !unknown.is_empty() {
                eprintln!(
                    "warning: the tokenizer does not know {} (read as its unknown token)",
                    unknown.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
                );
            }
        }
        let ids = prompt_ids(t, template, &conv, a.raw).map_err(|e| e.to_string())?;
        if ids.is_empty() {
            return Err("the prompt encodes to no tokens".into());
        }
        prompts.push(ids);
    }
    for s in &a.prompt_ids {
        let ids = parse_ids(s)?;
        if ids.is_empty() {
            return Err("--prompt-ids: empty prompt".into());
        }
        prompts.push(ids);
    }
    if prompts.is_empty() {
        return Err("give a prompt: --prompt TEXT, --messages FILE or --prompt-ids 1,2,3".into());
    }
    Ok(prompts)
}

pub fn run(a: RunArgs) -> CliResult {
    let src = read_policy(a.policy.as_deref())?;
    let dir = d2c::engine::model_dir(a.model.model.as_deref())?;
    let prepared = prepare(&a, &src, &dir)?;
    let engine = Engine::load_with(Some(&dir), a.model.dtype.weight_type(), a.chat_template.as_deref())?;
    let prompts = prompts(&a, &engine)?;
    let gen = prepared.settings.gen;
    engine.check_prompts(&prompts, gen)?;
    if a.stream && prompts.len() != 1 {
        return Err("--stream shows one answer: give one prompt".into());
    }
    let (model, info, tok) = (&engine.model, engine.model.info().clone(), engine.tokenizer.clone());
    let (stops, compiled, applied, notes) = (engine.stops.clone(), &prepared.compiled, &prepared.applied, &prepared.notes);

    let mut visual = if a.visual && !a.json && prompts.len() == 1 { super::visual::Visual::new(tok.clone()) } else { None };
    let bar = (!a.quiet && !a.json && gen >= 64 && visual.is_none()).then(|| {
        let pb = indicatif::ProgressBar::new((gen * prompts.len()) as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} tokens {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let printed = Rc::new(RefCell::new(d2c::chat::AppendText::default()));
    let mut streamer = (a.stream && !a.json).then(|| Streamer { tok: tok.clone(), stops: stops.clone(), printed: printed.clone() });
    let pb2 = bar.clone();
    let on_step: Option<d2c::runtime::OnStep> = (bar.is_some() || streamer.is_some() || visual.is_some()).then(|| {
        Box::new(move |p: &Progress| {
            if let Some(v) = visual.as_mut() {
                v.draw(p);
            }
            if let Some(pb) = &pb2 {
                pb.set_position(p.committed as u64);
                pb.set_message(format!("step {}", p.steps));
            }
            if let Some(s) = streamer.as_mut() {
                s.show(&p.canvas[0], p.mask_id, pb2.as_ref());
            }
        }) as d2c::runtime::OnStep
    });
    let out = engine.generate(&prepared, &prompts, RunOptions { record_details: a.trace.is_some(), on_step, stop_ids: stops.clone(), cancel: None })?;
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    if a.trace.is_some() || a.svg.is_some() {
        let json = trace::to_json(&out, &compiled.plan.policy, Some(prepared.settings.block));
        if let Some(path) = &a.trace {
            std::fs::write(path, serde_json::to_string(&json).unwrap_or_default()).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if let Some(path) = &a.svg {
            let mut view = d2c::picture::TraceView::from_json(&json, "run", 0)?;
            if let Some(t) = tok.as_deref() {
                view.label_with(|id| t.piece(id));
            }
            super::trace::write(Some(path), || d2c::picture::svg(&view, 0))?;
        }
    }
    let answers: Vec<&[u32]> = out.generated.iter().map(|g| &g[..answer_len(g, &stops)]).collect();
    let texts: Vec<Option<String>> = answers.iter().map(|g| tok.as_ref().and_then(|t| t.decode(g).ok())).collect();
    let s = &out.stats;
    let wall = s.wall_time.as_secs_f64().max(1e-9);
    let answer_tokens: usize = answers.iter().map(|x| x.len()).sum();
    if a.json {
        let v = serde_json::json!({
            "policy": compiled.plan.policy,
            "model": info.arch,
            "prompt_ids": out.prompts,
            "generated_ids": out.generated,
            "answer_ids": answers,
            "text": texts,
            "stop_ids": stops,
            "settings_from_model": applied.iter().map(|x| serde_json::json!({"param": x.param, "value": x.value, "source": x.source})).collect::<Vec<_>>(),
            "notes": notes,
            "steps": s.steps, "forwards": s.forwards, "full_forwards": s.full_forwards,
            "mean_rows_per_step": s.mean_rows_per_step(), "recompute_fraction": s.recompute_fraction(),
            "tokens_per_s": s.tokens_per_s(), "answer_tokens": answer_tokens, "answer_tokens_per_s": answer_tokens as f64 / wall,
            "wall_s": s.wall_time.as_secs_f64(), "model_s": s.model_time.as_secs_f64(), "policy_s": s.policy_time.as_secs_f64(),
            "dtype": model.storage_name(), "weight_bytes": model.weight_bytes(), "peak_rss_bytes": peak_rss_bytes(),
        });
        println!("{v}");
        return Ok(());
    }
    for (i, text) in texts.iter().enumerate() {
        match text {
            // Streamed: finish the line with whatever the last steps added.
            Some(t) if a.stream => println!("{}", t.strip_prefix(printed.borrow().sent()).unwrap_or("")),
            Some(t) => println!("{t}"),
            None => println!("{}", answers[i].iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")),
        }
    }
    for (k, x) in applied.iter().enumerate() {
        eprint!("{}{}={} ({})", if k == 0 { "settings: " } else { ", " }, x.param, x.value, x.source);
        if k + 1 == applied.len() {
            eprintln!();
        }
    }
    for n in notes {
        eprintln!("note: {n}");
    }
    eprintln!(
        "[{}] {} steps, {} forwards ({} full), {:.1} rows/step ({:.1}% of no-cache), {:.1} tokens/s over the canvas, {:.1} tokens/s over the answer ({} tokens before the first stop), {:.2}s wall ({:.0}% model, {:.0}% policy), {:.1} host<->device copies/forward on {}, weights {} {}, peak RSS {}",
        compiled.plan.policy,
        s.steps,
        s.forwards,
        s.full_forwards,
        s.mean_rows_per_step(),
        100.0 * s.recompute_fraction(),
        s.tokens_per_s(),
        answer_tokens as f64 / wall,
        answer_tokens,
        s.wall_time.as_secs_f64(),
        100.0 * s.model_time.as_secs_f64() / wall,
        100.0 * s.policy_time.as_secs_f64() / wall,
        s.host_copies as f64 / s.forwards.max(1) as f64,
        device_name(),
        fmt_bytes(model.weight_bytes() as u64),
        model.storage_name(),
        peak_rss_bytes().map_or("n/a".to_string(), fmt_bytes),
    );
    Ok(())
}

/// `--stream`: prints the answer's stable left-to-right prefix (the text before the first
/// still-masked position, cut at the first stop token) as it grows.
struct Streamer {
    tok: Option<Arc<TextTokenizer>>,
    stops: Vec<u32>,
    printed: Rc<RefCell<d2c::chat::AppendText>>,
}

impl Streamer {
    fn show(&mut self, canvas: &[u32], mask: u32, bar: Option<&indicatif::ProgressBar>) {
        let Some(tok) = &self.tok else { return };
        let Some(new) = self.printed.borrow_mut().advance(tok, canvas, mask, &self.stops) else { return };
        let write = || {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(new.as_bytes());
            let _ = out.flush();
        };
        match bar {
            Some(pb) => pb.suspend(write),
            None => write(),
        }
    }
}

/// The device the model ran on, as the summary names it.
fn device_name() -> String {
    match d2c::engine::device() {
        candle_core::Device::Cpu => format!("cpu [{}]", d2c::model::simd::describe()),
        d => format!("{:?}", d.location()),
    }
}

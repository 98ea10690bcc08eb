//! The decoder thread: owns the [`Engine`] (the model is not shared between threads), takes
//! jobs from the bounded queue in arrival order, resolves each request's policy and settings
//! through the same checker as `d2c run`, decodes with the same executor, and sends progress
//! (text deltas or the whole canvas) and the result back to the request's handler. A job whose
//! client went away, or whose time ran out, is cancelled at its next step.

use super::api::{ApiError, Completion, GenRequest, Input, StreamMode};
use super::metrics::Metrics;
use crate::chat::{answer_len, prompt_ids};
use crate::compile::Source;
use crate::engine::{Engine, Prepared};
use crate::error::Error;
use crate::runtime::{Progress, RunOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// What a handler hears from the decoder about its job.
pub enum Event {
    /// Append mode: text added to the stable prefix.
    Delta(String),
    /// Canvas mode: the whole canvas after a step (masked positions as None).
    Canvas { step: usize, tokens: Vec<Option<String>> },
    Done(Completion),
    Failed(ApiError),
}

pub struct Job {
    pub req: GenRequest,
    pub events: mpsc::UnboundedSender<Event>,
    pub deadline: Instant,
}

pub struct Policies {
    pub dir: PathBuf,
    pub default: String,
}

impl Policies {
    /// The policy files' names (without `.pol`), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pol")).filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// `name` (or the default) as a policy source; only plain names inside the folder.
    fn read(&self, name: Option<&str>) -> Result<Source, ApiError> {
        let name = name.unwrap_or(&self.default);
        let stem = name.strip_suffix(".pol").unwrap_or(name);
        let plain = !stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') && !stem.contains("..");
        let path = self.dir.join(format!("{stem}.pol"));
        if !plain || !path.is_file() {
            return Err(ApiError::bad(format!("unknown policy `{name}` (available: {})", self.names().join(", ")), Some("policy"), "unknown_policy"));
        }
        Source::read(&path.to_string_lossy()).map_err(|e| ApiError::bad(format!("{}: {e}", path.display()), Some("policy"), "unknown_policy").with_status(500))
    }
}

/// Most requests decoded together in one batch.
pub const MAX_BATCH: usize = 16;

/// A job whose policy compiled and whose prompt fits: ready to decode.
struct Ready {
    job: Job,
    prepared: Prepared,
    ids: Vec<u32>,
    /// Jobs with equal keys can share a batch: same policy file and settings, same prompt length.
    key: (String, Vec<String>, usize),
}

/// Run jobs until the queue closes (server shutdown after the last request). Requests that
/// are waiting together and can share a batch (same policy and settings, same prompt length,
/// a plan that commits in lockstep) decode as one batch: one forward per step for all.
pub fn run(engine: Engine, policies: Policies, mut jobs: mpsc::UnboundedReceiver<Job>, metrics: Arc<Metrics>) {
    let mut waiting: std::collections::VecDeque<Ready> = Default::default();
    loop {
        // Take everything queued now (blocking only when nothing is waiting).
        if waiting.is_empty() {
            match jobs.blocking_recv() {
                Some(job) => admit(&engine, &policies, job, &metrics, &mut waiting),
                None => return,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            admit(&engine, &policies, job, &metrics, &mut waiting);
        }
        let Some(first) = waiting.pop_front() else { continue };
        let mut batch = vec![first];
        if batch[0].prepared.compiled.plan.decodes_in_lockstep() {
            let mut rest = std::collections::VecDeque::new();
            while let Some(r) = waiting.pop_front() {
                if batch.len() < MAX_BATCH && r.key == batch[0].key {
                    batch.push(r);
                } else {
                    rest.push_back(r);
                }
            }
            waiting = rest;
        }
        decode_batch(&engine, batch, &metrics);
    }
}

/// Check a job and queue it as ready, or answer its error now.
fn admit(engine: &Engine, policies: &Policies, job: Job, metrics: &Metrics, waiting: &mut std::collections::VecDeque<Ready>) {
    if job.events.is_closed() {
        metrics.queue_depth.fetch_sub(1, Relaxed);
        return;
    }
    match prepare(engine, policies, &job) {
        Ok((prepared, ids, key)) => waiting.push_back(Ready { job, prepared, ids, key }),
        Err(e) => {
            metrics.queue_depth.fetch_sub(1, Relaxed);
            let _ = job.events.send(Event::Failed(e));
        }
    }
}

/// The request's policy with its settings, checked, and its prompt ids.
fn prepare(engine: &Engine, policies: &Policies, job: &Job) -> Result<(Prepared, Vec<u32>, (String, Vec<String>, usize)), ApiError> {
    let req = &job.req;
    let src = policies.read(req.policy.as_deref())?;
    let declared = crate::engine::declared_params(&src);
    let mut sets = Vec::new();
    for (k, v) in &req.sets {
        if !declared.iter().any(|d| d == k) {
            let what = if k == "gen_length" { "max_tokens".to_string() } else { k.clone() };
            return Err(ApiError::bad(format!("{what}: policy `{}` has no parameter `{k}` (it has: {})", src.path, declared.join(", ")), Some(&what), "invalid_policy_param"));
        }
        sets.push(format!("{k}={v}"));
    }
    let user_block = req.sets.iter().any(|(k, _)| k == "block_length");
    let mut prepared = engine.prepare(&src, &sets).map_err(internal)?;
    if let Err(f) = &prepared {
        // max_tokens that the model's block length does not divide: one block, unless the
        // request chose a block length itself.
        if !user_block && req.sets.iter().any(|(k, _)| k == "gen_length") && f.diagnostics.iter().filter(|d| d.is_error()).all(|d| d.code == "E007") {
            let gen = req.sets.iter().rev().find(|(k, _)| k == "gen_length").map(|(_, v)| v.clone()).unwrap_or_default();
            sets.push(format!("block_length={gen}"));
            prepared = engine.prepare(&src, &sets).map_err(internal)?;
        }
    }
    let prepared = prepared.map_err(|f| {
        let first = f.diagnostics.iter().find(|d| d.is_error()).map(|d| format!("[{}] {}", d.code, d.message)).unwrap_or_default();
        ApiError {
            status: 400,
            message: format!("policy `{}` is invalid with these settings: {first}", src.path),
            param: Some("policy_params".into()),
            code: "invalid_policy",
            diagnostics: Some(serde_json::Value::Array(f.diagnostics.iter().map(|d| crate::diag::to_json(d, &src.path)).collect())),
        }
    })?;
    let ids = match &req.input {
        Input::Ids(ids) => ids.clone(),
        Input::Text(t) => engine.tokenizer.as_ref().ok_or_else(|| ApiError::bad("this model has no tokenizer: send token ids", Some("prompt"), "invalid_prompt"))?.encode(t).map_err(|e| ApiError::bad(e.to_string(), Some("prompt"), "invalid_prompt"))?,
        Input::Messages(m) => {
            let tok = engine.tokenizer.as_ref().ok_or_else(|| ApiError::bad("this model has no tokenizer", Some("messages"), "invalid_messages"))?;
            prompt_ids(tok, engine.template.as_ref(), m, false).map_err(|e| ApiError::bad(e.to_string(), Some("messages"), "invalid_messages"))?
        }
    };
    let gen = prepared.compiled.plan.schedule.gen_length.as_usize().unwrap_or(0);
    engine.check_prompts(std::slice::from_ref(&ids), gen).map_err(|e| {
        let param = if e.to_string().contains("maximum sequence length") { "max_tokens" } else { "prompt" };
        ApiError::bad(e.to_string().trim_start_matches("invalid input: ").to_string(), Some(param), "invalid_prompt")
    })?;
    let key = (src.text.clone(), sets, ids.len());
    Ok((prepared, ids, key))
}

/// Decode a batch of compatible jobs (or one) and answer each.
fn decode_batch(engine: &Engine, batch: Vec<Ready>, metrics: &Arc<Metrics>) {
    let n = batch.len();
    metrics.queue_depth.fetch_sub(n as i64, Relaxed);
    metrics.running.fetch_add(n as i64, Relaxed);
    metrics.batches.fetch_add(1, Relaxed);
    let mut plan = batch[0].prepared.compiled.plan.clone();
    if n > 1 {
        // The reference's batch-global scores would make a request's tokens depend on its
        // neighbours; a single-sequence decode never sees them, so off they give each
        // request exactly its own result (tests/batching.rs).
        plan.quirks.batch_global_scores = crate::plan::Val::Bool(false);
    }
    let prompts: Vec<Vec<u32>> = batch.iter().map(|r| r.ids.clone()).collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let jobs: Vec<&Job> = batch.iter().map(|r| &r.job).collect();
    let on_step = progress(engine, &jobs, cancel.clone(), metrics.clone());
    let opts = RunOptions { record_details: false, on_step: Some(on_step), stop_ids: engine.stops.clone(), cancel: Some(cancel) };
    let result = crate::runtime::generate(&engine.model, &plan, &prompts, opts);
    metrics.running.fetch_sub(n as i64, Relaxed);
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            for r in &batch {
                let err = match &e {
                    Error::Cancelled if Instant::now() >= r.job.deadline => ApiError::bad("the request timed out", None, "timeout").with_status(504),
                    Error::Cancelled => ApiError::bad("the client went away", None, "cancelled").with_status(499),
                    other => internal(Error::Other(other.to_string())),
                };
                let _ = r.job.events.send(Event::Failed(err));
            }
            return;
        }
    };
    let s = &out.stats;
    metrics.forwards.fetch_add(s.forwards as u64, Relaxed);
    // Layer-rows for dLLM-Cache: the fraction is the policy-independent measure.
    metrics.full_rows.fetch_add(s.full_rows as u64, Relaxed);
    metrics.query_rows.fetch_add((s.recompute_fraction() * s.full_rows as f64).round() as u64, Relaxed);
    for (i, r) in batch.iter().enumerate() {
        let generated = out.generated.get(i).cloned().unwrap_or_default();
        let k = answer_len(&generated, &engine.stops);
        let text = engine.tokenizer.as_ref().and_then(|t| t.decode(&generated[..k]).ok()).unwrap_or_default();
        metrics.generated_tokens.fetch_add(k as u64, Relaxed);
        if Instant::now() >= r.job.deadline {
            let _ = r.job.events.send(Event::Failed(ApiError::bad("the request timed out", None, "timeout").with_status(504)));
            continue;
        }
        let _ = r.job.events.send(Event::Done(Completion {
            text,
            finish_reason: if k < generated.len() { "stop" } else { "length" },
            prompt_tokens: r.ids.len(),
            completion_tokens: k,
            policy: plan.policy.clone(),
            steps: s.steps,
            forwards: s.forwards,
            recompute_fraction: s.recompute_fraction(),
            batch: n,
        }));
    }
}

fn internal(e: Error) -> ApiError {
    ApiError::bad(e.to_string(), None, "internal").with_status(500)
}

/// The per-step callback of a batch: step latency; cancellation once every client is gone or
/// past its deadline (a request past its own deadline is answered 504 at once); each
/// streamed request's deltas or canvas.
fn progress(engine: &Engine, jobs: &[&Job], cancel: Arc<AtomicBool>, metrics: Arc<Metrics>) -> Box<dyn FnMut(&Progress)> {
    let events: Vec<_> = jobs.iter().map(|j| j.events.clone()).collect();
    let deadlines: Vec<Instant> = jobs.iter().map(|j| j.deadline).collect();
    let modes: Vec<Option<StreamMode>> = jobs.iter().map(|j| j.req.stream.then_some(j.req.mode)).collect();
    let tok = engine.tokenizer.clone();
    let stops = engine.stops.clone();
    let mut last = Instant::now();
    let mut appended = vec![crate::chat::AppendText::default(); jobs.len()];
    let mut gone = vec![false; jobs.len()];
    Box::new(move |p: &Progress| {
        let now = Instant::now();
        metrics.step((now - last).as_secs_f64());
        last = now;
        for (i, ev) in events.iter().enumerate() {
            if gone[i] {
                continue;
            }
            if ev.is_closed() {
                gone[i] = true;
            } else if now >= deadlines[i] {
                gone[i] = true;
                let _ = ev.send(Event::Failed(ApiError::bad("the request timed out", None, "timeout").with_status(504)));
            }
        }
        if gone.iter().all(|&g| g) {
            cancel.store(true, Relaxed);
            return;
        }
        for (i, canvas) in p.canvas.iter().enumerate() {
            let (Some(mode), false) = (modes.get(i).copied().flatten(), gone[i]) else { continue };
            match (mode, &tok) {
                (StreamMode::Canvas, _) => {
                    let tokens = canvas.iter().map(|&t| (t != p.mask_id).then(|| tok.as_ref().map_or(t.to_string(), |k| k.piece(t)))).collect();
                    let _ = events[i].send(Event::Canvas { step: p.steps, tokens });
                }
                (StreamMode::Append, Some(tok)) => {
                    if let Some(new) = appended[i].advance(tok, canvas, p.mask_id, &stops) {
                        let _ = events[i].send(Event::Delta(new));
                    }
                }
                (StreamMode::Append, None) => {}
            }
        }
    })
}

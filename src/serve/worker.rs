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
use crate::runtime::{Batch, MemberId, Progress, RunOptions};
use std::collections::{HashMap, VecDeque};
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
    Canvas {
        step: usize,
        tokens: Vec<Option<String>>,
    },
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
        let files = crate::compile::policy_files(&self.dir).unwrap_or_default();
        files.iter().filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())).collect()
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

/// Most requests decoding together unless `d2c serve --max-batch` says otherwise.
pub const DEFAULT_MAX_BATCH: usize = 16;

/// A job whose policy compiled and whose prompt fits: ready to decode.
struct Ready {
    job: Job,
    prepared: Prepared,
    ids: Vec<u32>,
}

/// A job being decoded, as a member of the batch.
struct Live {
    job: Job,
    prompt_tokens: usize,
    policy: String,
    /// The most requests that shared a forward with this one.
    batch: usize,
}

/// Run jobs until the queue closes (server shutdown) and the running ones are answered.
///
/// Every request decoding is a member of one [`Batch`]: one forward per step serves all of
/// them, whatever their policy, settings, prompt and gen lengths. A request joins at the next
/// step (up to `max_batch` members; the rest wait in arrival order) and is answered as soon
/// as its own decode is done; a cancelled one (client gone, deadline passed) leaves at the
/// next step and frees its place.
pub fn run(engine: Engine, policies: Policies, mut jobs: mpsc::UnboundedReceiver<Job>, metrics: Arc<Metrics>, max_batch: usize) {
    let mut waiting: VecDeque<Ready> = VecDeque::new();
    let mut batch = Batch::new(&engine.model);
    let mut live: HashMap<MemberId, Live> = HashMap::new();
    let mut open = true;
    loop {
        if batch.is_empty() && waiting.is_empty() {
            // Idle: block until a job comes (or the server shuts down).
            match jobs.blocking_recv() {
                Some(job) if open => admit(&engine, &policies, job, &metrics, &mut waiting),
                _ => return,
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(job) => admit(&engine, &policies, job, &metrics, &mut waiting),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        while batch.len() < max_batch {
            let Some(ready) = waiting.pop_front() else { break };
            start(&engine, &mut batch, &mut live, ready, &metrics);
        }
        if batch.is_empty() {
            if !open && waiting.is_empty() {
                return;
            }
            continue;
        }
        let (t, n) = (Instant::now(), batch.len());
        let done = batch.step();
        metrics.step(t.elapsed().as_secs_f64());
        if n > 1 {
            metrics.batches.fetch_add(1, Relaxed);
        }
        for l in live.values_mut() {
            l.batch = l.batch.max(n);
        }
        for (id, result) in done {
            if let Some(l) = live.remove(&id) {
                metrics.running.fetch_sub(1, Relaxed);
                answer(&engine, l, result, &metrics);
            }
        }
    }
}

/// Make a waiting job a member of the batch (or drop it if its client already left).
fn start(engine: &Engine, batch: &mut Batch<'_, crate::model::Transformer>, live: &mut HashMap<MemberId, Live>, r: Ready, metrics: &Arc<Metrics>) {
    metrics.queue_depth.fetch_sub(1, Relaxed);
    if r.job.events.is_closed() {
        return;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let on_step = progress(engine, &r.job, cancel.clone());
    let opts = RunOptions { record_details: false, on_step: Some(on_step), stop_ids: engine.stops.clone(), cancel: Some(cancel) };
    let plan = &r.prepared.compiled.plan;
    match batch.join(plan, vec![r.ids.clone()], opts) {
        Ok(id) => {
            metrics.running.fetch_add(1, Relaxed);
            live.insert(id, Live { prompt_tokens: r.ids.len(), policy: plan.policy.clone(), job: r.job, batch: 1 });
        }
        Err(e) => {
            let _ = r.job.events.send(Event::Failed(internal(e)));
        }
    }
}

/// Check a job and queue it as ready, or answer its error now.
fn admit(engine: &Engine, policies: &Policies, job: Job, metrics: &Metrics, waiting: &mut VecDeque<Ready>) {
    if job.events.is_closed() {
        metrics.queue_depth.fetch_sub(1, Relaxed);
        return;
    }
    match prepare(engine, policies, &job) {
        Ok((prepared, ids)) => waiting.push_back(Ready { job, prepared, ids }),
        Err(e) => {
            metrics.queue_depth.fetch_sub(1, Relaxed);
            let _ = job.events.send(Event::Failed(e));
        }
    }
}

/// The request's policy with its settings, checked, and its prompt ids.
fn prepare(engine: &Engine, policies: &Policies, job: &Job) -> Result<(Prepared, Vec<u32>), ApiError> {
    let req = &job.req;
    let src = policies.read(req.policy.as_deref())?;
    let declared = crate::engine::declared_params(&src);
    let mut sets = Vec::new();
    for (k, v) in &req.sets {
        if !declared.iter().any(|d| d == k) {
            let what = if k == "gen_length" { "max_tokens".to_string() } else { k.clone() };
            return Err(ApiError::bad(
                format!("{what}: policy `{}` has no parameter `{k}` (it has: {})", src.path, declared.join(", ")),
                Some(&what),
                "invalid_policy_param",
            ));
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
        Input::Text(t) => engine
            .tokenizer
            .as_ref()
            .ok_or_else(|| ApiError::bad("this model has no tokenizer: send token ids", Some("prompt"), "invalid_prompt"))?
            .encode(t)
            .map_err(|e| ApiError::bad(e.to_string(), Some("prompt"), "invalid_prompt"))?,
        Input::Messages(m) => {
            let tok = engine.tokenizer.as_ref().ok_or_else(|| ApiError::bad("this model has no tokenizer", Some("messages"), "invalid_messages"))?;
            prompt_ids(tok, engine.template.as_ref(), m, false).map_err(|e| ApiError::bad(e.to_string(), Some("messages"), "invalid_messages"))?
        }
    };
    engine.check_prompts(std::slice::from_ref(&ids), prepared.settings.gen).map_err(prompt_error)?;
    Ok((prepared, ids))
}

/// A prompt the model cannot take, as the request field at fault.
fn prompt_error(e: Error) -> ApiError {
    match e {
        Error::PromptTooLong { .. } => ApiError::bad(e.to_string(), Some("max_tokens"), "invalid_prompt"),
        Error::Input(message) => ApiError::bad(message, Some("prompt"), "invalid_prompt"),
        Error::TokenOutOfRange { .. } => ApiError::bad(e.to_string(), Some("prompt"), "invalid_prompt"),
        other => internal(other),
    }
}

/// Answer a member's job with its result.
fn answer(engine: &Engine, l: Live, result: crate::error::Result<crate::runtime::RunOutput>, metrics: &Metrics) {
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            let err = match &e {
                Error::Cancelled if Instant::now() >= l.job.deadline => ApiError::bad("the request timed out", None, "timeout").with_status(504),
                Error::Cancelled => ApiError::bad("the client went away", None, "cancelled").with_status(499),
                _ => internal(e),
            };
            let _ = l.job.events.send(Event::Failed(err));
            return;
        }
    };
    let s = &out.stats;
    metrics.forwards.fetch_add(s.forwards as u64, Relaxed);
    // Layer-rows for dLLM-Cache: the fraction is the policy-independent measure.
    metrics.full_rows.fetch_add(s.full_rows as u64, Relaxed);
    metrics.query_rows.fetch_add((s.recompute_fraction() * s.full_rows as f64).round() as u64, Relaxed);
    let generated = out.generated.first().cloned().unwrap_or_default();
    let k = answer_len(&generated, &engine.stops);
    let text = engine.tokenizer.as_ref().and_then(|t| t.decode(&generated[..k]).ok()).unwrap_or_default();
    metrics.generated_tokens.fetch_add(k as u64, Relaxed);
    if Instant::now() >= l.job.deadline {
        let _ = l.job.events.send(Event::Failed(ApiError::bad("the request timed out", None, "timeout").with_status(504)));
        return;
    }
    let _ = l.job.events.send(Event::Done(Completion {
        text,
        finish_reason: if k < generated.len() { "stop" } else { "length" },
        prompt_tokens: l.prompt_tokens,
        completion_tokens: k,
        policy: l.policy,
        steps: s.steps,
        forwards: s.forwards,
        recompute_fraction: s.recompute_fraction(),
        batch: l.batch,
    }));
}

fn internal(e: Error) -> ApiError {
    ApiError::bad(e.to_string(), None, "internal").with_status(500)
}

/// A member's per-step callback: cancellation once its client is gone or past its deadline
/// (answered 504 at once), and its streamed deltas or canvas.
fn progress(engine: &Engine, job: &Job, cancel: Arc<AtomicBool>) -> crate::runtime::OnStep {
    let events = job.events.clone();
    let deadline = job.deadline;
    let mode = job.req.stream.then_some(job.req.mode);
    let tok = engine.tokenizer.clone();
    let stops = engine.stops.clone();
    let mut appended = crate::chat::AppendText::default();
    Box::new(move |p: &Progress| {
        if cancel.load(Relaxed) {
            return;
        }
        if events.is_closed() {
            cancel.store(true, Relaxed);
            return;
        }
        if Instant::now() >= deadline {
            cancel.store(true, Relaxed);
            let _ = events.send(Event::Failed(ApiError::bad("the request timed out", None, "timeout").with_status(504)));
            return;
        }
        let (Some(mode), Some(canvas)) = (mode, p.canvas.first()) else { return };
        match (mode, &tok) {
            (StreamMode::Canvas, _) => {
                let tokens = canvas.iter().map(|&t| (t != p.mask_id).then(|| tok.as_ref().map_or(t.to_string(), |k| k.piece(t)))).collect();
                let _ = events.send(Event::Canvas { step: p.steps, tokens });
            }
            (StreamMode::Append, Some(tok)) => {
                if let Some(new) = appended.advance(tok, canvas, p.mask_id, &stops) {
                    let _ = events.send(Event::Delta(new));
                }
            }
            (StreamMode::Append, None) => {}
        }
    })
}

//! `d2c serve`: an OpenAI-compatible HTTP front door onto the same engine, checker and
//! executor as `d2c run` (not a second executor). Endpoints: `POST /v1/completions`,
//! `POST /v1/chat/completions` (both with `stream: true` as server-sent events in OpenAI's
//! chunk format), `GET /v1/models`, `GET /health`, `GET /metrics`.
//!
//! One decoder thread owns the model ([`worker`]) and steps every running request as one
//! [`crate::runtime::Batch`] (one forward per step for all of them, any mix of policies and
//! lengths); handlers put jobs on a bounded queue (full: 429 with Retry-After) and wait for
//! their events. A request past its timeout, or
//! whose client disconnected, is cancelled at its next step; the body size is limited; on
//! SIGTERM or Ctrl-C the server stops accepting and finishes the requests it has.

pub mod api;
pub mod metrics;
mod worker;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::linear::WeightType;
use api::{chunk, parse, response, ApiError, Endpoint, StreamMode};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event as Sse, Sse as SseBody};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics::Metrics;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
pub use worker::DEFAULT_MAX_BATCH;
use worker::{Event, Job, Policies};

pub struct Config {
    /// Model folder or `.gguf` file; None = the embedded tiny model.
    pub model: Option<PathBuf>,
    pub weights: WeightType,
    pub policy_dir: PathBuf,
    pub default_policy: String,
    /// Requests that may wait for the decoder before new ones get 429.
    pub queue: usize,
    /// Most requests decoding at once; at least 1.
    pub max_batch: usize,
    pub timeout: Duration,
    pub max_body_bytes: usize,
}

struct App {
    jobs: mpsc::UnboundedSender<Job>,
    /// Requests accepted but not yet decoding (queued or waiting for a batch) before 429.
    queue_cap: i64,
    metrics: Arc<Metrics>,
    model_id: String,
    policies: Vec<String>,
    timeout: Duration,
    next_id: AtomicU64,
}

/// Load the model (on the decoder thread), bind nothing: returns the router to serve.
fn build(cfg: Config) -> Result<(Router, std::thread::JoinHandle<()>)> {
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = mpsc::unbounded_channel::<Job>();
    let policies = Policies { dir: cfg.policy_dir.clone(), default: cfg.default_policy.clone() };
    let names = policies.names();
    let default_stem = cfg.default_policy.trim_end_matches(".pol").to_string();
    if !names.contains(&default_stem) {
        return Err(Error::input(format!(
            "--default-policy {}: no {}.pol in {} (found: {})",
            cfg.default_policy,
            default_stem,
            cfg.policy_dir.display(),
            names.join(", ")
        )));
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String>>();
    let m = metrics.clone();
    let (model, weights, max_batch) = (cfg.model.clone(), cfg.weights, cfg.max_batch.max(1));
    let handle = std::thread::Builder::new()
        .name("d2c-decoder".into())
        .spawn(move || match Engine::load(model.as_deref(), weights) {
            Ok(engine) => {
                let id = if model.is_none() {
                    "tiny-tasks".to_string()
                } else {
                    engine.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
                };
                let _ = ready_tx.send(Ok(id));
                worker::run(engine, policies, rx, m, max_batch);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| Error::Other(format!("cannot start the decoder thread: {e}")))?;
    let model_id = ready_rx.recv().map_err(|_| Error::Other("the decoder thread died while loading the model".into()))??;
    let app =
        Arc::new(App { jobs: tx, queue_cap: cfg.queue.max(1) as i64, metrics, model_id, policies: names, timeout: cfg.timeout, next_id: AtomicU64::new(1) });
    let router = Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .with_state(app);
    Ok((router, handle))
}

/// Serve on `listener` until `shutdown` resolves, then finish the running requests.
pub async fn serve(cfg: Config, listener: tokio::net::TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
    let (router, decoder) = tokio::task::block_in_place(|| build(cfg))?;
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.map_err(|e| Error::Other(format!("server: {e}")))?;
    // The router (and with it the queue's sender) is gone: the decoder drains and stops.
    tokio::task::spawn_blocking(move || decoder.join()).await.ok();
    Ok(())
}

fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(e.body())).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn models(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(json!({"object": "list", "data": [{"id": app.model_id, "object": "model", "created": 0, "owned_by": "d2c", "policies": app.policies}]}))
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

async fn completions(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle(app, Endpoint::Completions, body).await
}

async fn chat(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle(app, Endpoint::Chat, body).await
}

async fn handle(app: Arc<App>, endpoint: Endpoint, body: Bytes) -> Response {
    let name = match endpoint {
        Endpoint::Completions => "completions",
        Endpoint::Chat => "chat",
    };
    let resp = submit(&app, endpoint, &body).await;
    app.metrics.request(name, resp.status().as_u16());
    resp
}

async fn submit(app: &Arc<App>, endpoint: Endpoint, body: &[u8]) -> Response {
    let req = match parse(endpoint, body) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let (stream, mode) = (req.stream, req.mode);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let job = Job { req, events: tx, deadline: Instant::now() + app.timeout };
    // The depth counts requests accepted and not yet decoding; the decoder lowers it when a
    // request starts (or is answered without decoding).
    if app.metrics.queue_depth.fetch_add(1, Relaxed) >= app.queue_cap {
        app.metrics.queue_depth.fetch_sub(1, Relaxed);
        let mut r = error_response(&ApiError::bad("the server is busy: the queue is full, retry shortly", None, "queue_full").with_status(429));
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    if app.jobs.send(job).is_err() {
        app.metrics.queue_depth.fetch_sub(1, Relaxed);
        return error_response(&ApiError::bad("the server is shutting down", None, "shutting_down").with_status(503));
    }
    let prefix = if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" };
    let id = format!("{prefix}-{}", app.next_id.fetch_add(1, Relaxed));
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let model = app.model_id.clone();
    if !stream {
        // The decoder enforces the deadline (it cancels at the next step); if this handler is
        // dropped because the client left, `rx` goes with it and the decoder notices.
        while let Some(ev) = rx.recv().await {
            match ev {
                Event::Done(c) => return Json(response(endpoint, &id, created, &model, &c)).into_response(),
                Event::Failed(e) => return error_response(&e),
                _ => {}
            }
        }
        return error_response(&ApiError::bad("the decoder stopped", None, "internal").with_status(500));
    }
    // Streamed: wait for the first event so a bad request is still a plain 400.
    let first = match rx.recv().await {
        Some(Event::Failed(e)) => return error_response(&e),
        Some(ev) => ev,
        None => return error_response(&ApiError::bad("the decoder stopped", None, "internal").with_status(500)),
    };
    let events = futures_stream(first, rx, endpoint, id, created, model, mode);
    SseBody::new(events).into_response()
}

/// The SSE stream of a job: chunks as events arrive, then `[DONE]` once the decoder has
/// dropped the job.
fn futures_stream(
    first: Event,
    rx: mpsc::UnboundedReceiver<Event>,
    endpoint: Endpoint,
    id: String,
    created: u64,
    model: String,
    mode: StreamMode,
) -> impl tokio_stream::Stream<Item = std::result::Result<Sse, std::convert::Infallible>> {
    use tokio_stream::StreamExt;
    let mut sent_first = false;
    let mut streamed = String::new();
    let events = tokio_stream::once(first).chain(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)).map(Some);
    events.chain(tokio_stream::once(None)).map(move |ev| {
        let data = match ev {
            None => "[DONE]".to_string(),
            Some(Event::Delta(t)) => {
                let v = chunk(endpoint, &id, created, &model, &t, !sent_first, None);
                sent_first = true;
                streamed.push_str(&t);
                v.to_string()
            }
            Some(Event::Canvas { step, tokens }) => {
                let text = tokens.iter().map(|t| t.as_deref().unwrap_or("_")).collect::<Vec<_>>().join(" ");
                let mut v = chunk(endpoint, &id, created, &model, "", !sent_first, None);
                sent_first = true;
                v["canvas"] = json!({"step": step, "tokens": tokens, "text": text});
                v.to_string()
            }
            Some(Event::Done(c)) => {
                // Append mode: whatever the deltas have not carried yet; canvas mode: the answer.
                let text = match mode {
                    StreamMode::Canvas => c.text.clone(),
                    StreamMode::Append => c.text.strip_prefix(streamed.as_str()).unwrap_or("").to_string(),
                };
                chunk(endpoint, &id, created, &model, &text, !sent_first, Some(&c)).to_string()
            }
            Some(Event::Failed(e)) => e.body().to_string(),
        };
        Ok(Sse::default().data(data))
    })
}

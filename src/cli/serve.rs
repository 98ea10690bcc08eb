//! `d2c serve`: the OpenAI-compatible server ([`d2c::serve`]) on HOST:PORT.

use super::{CliResult, ModelArgs};
use d2c::serve::{serve, Config};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Folder of policies a request may name (`"policy": "d2cache"` = d2cache.pol).
    #[arg(long, default_value = "policies")]
    policy_dir: PathBuf,
    /// The policy of requests that name none.
    #[arg(long, default_value = "d2cache")]
    default_policy: String,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Requests that may wait for the decoder (queued or waiting for a batch); more get 429
    /// with Retry-After.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Most requests decoding at once (sharing each step's forward); more wait in the queue.
    #[arg(long, default_value_t = d2c::serve::DEFAULT_MAX_BATCH)]
    max_batch: usize,
    /// Seconds a request may take, waiting included (then 504).
    #[arg(long, default_value_t = 300.0)]
    timeout_s: f64,
    /// Largest request body accepted (bytes).
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
}

pub fn run(a: ServeArgs) -> CliResult {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
        let cfg = Config {
            model: a.model.model,
            weights: a.model.dtype.weight_type(),
            policy_dir: a.policy_dir,
            default_policy: a.default_policy,
            queue: a.queue,
            max_batch: a.max_batch,
            timeout: Duration::try_from_secs_f64(a.timeout_s).unwrap_or(Duration::MAX),
            max_body_bytes: a.max_body_bytes,
        };
        eprintln!("d2c serve: listening on http://{local} (OpenAI base URL http://{local}/v1)");
        serve(cfg, listener, shutdown_signal()).await?;
        eprintln!("d2c serve: stopped");
        Ok(())
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("d2c serve: shutting down, finishing running requests");
}

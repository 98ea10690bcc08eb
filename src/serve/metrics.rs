//! Server counters in Prometheus' text format (`GET /metrics`): requests by endpoint and
//! status, generated tokens, forwards, recomputed vs no-cache rows (the recompute fraction),
//! queue depth, and a histogram of step latency.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Upper bounds (seconds) of the step-latency histogram buckets.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub generated_tokens: AtomicU64,
    pub forwards: AtomicU64,
    pub query_rows: AtomicU64,
    pub full_rows: AtomicU64,
    pub queue_depth: AtomicI64,
    pub running: AtomicI64,
    pub batches: AtomicU64,
    steps: Mutex<Histogram>,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    pub fn request(&self, endpoint: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((endpoint.to_string(), status)).or_default() += 1;
        }
    }

    pub fn step(&self, seconds: f64) {
        if let Ok(mut h) = self.steps.lock() {
            for (c, &b) in h.counts.iter_mut().zip(BUCKETS.iter()) {
                if seconds <= b {
                    *c += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP d2c_requests_total HTTP requests by endpoint and status.\n# TYPE d2c_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((ep, code), n) in m.iter() {
                let _ = writeln!(s, "d2c_requests_total{{endpoint=\"{ep}\",status=\"{code}\"}} {n}");
            }
        }
        let counters = [
            ("d2c_generated_tokens_total", "Answer tokens returned (before the first stop token).", &self.generated_tokens),
            ("d2c_forwards_total", "Model forwards, counted per request (a batched step counts once for each request in it).", &self.forwards),
            ("d2c_query_rows_total", "Rows recomputed by forwards.", &self.query_rows),
            ("d2c_full_rows_total", "Rows no-cache decoding would have computed.", &self.full_rows),
            ("d2c_batches_total", "Decode steps whose one forward served two or more requests.", &self.batches),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Relaxed));
        }
        let (q, f) = (self.query_rows.load(Relaxed) as f64, self.full_rows.load(Relaxed) as f64);
        let _ = writeln!(s, "# HELP d2c_recompute_fraction Recomputed rows over no-cache rows, all requests so far.\n# TYPE d2c_recompute_fraction gauge\nd2c_recompute_fraction {}", if f > 0.0 { q / f } else { 0.0 });
        let _ = writeln!(
            s,
            "# HELP d2c_queue_depth Requests waiting for the decoder.\n# TYPE d2c_queue_depth gauge\nd2c_queue_depth {}",
            self.queue_depth.load(Relaxed)
        );
        let _ = writeln!(s, "# HELP d2c_running Requests being decoded.\n# TYPE d2c_running gauge\nd2c_running {}", self.running.load(Relaxed));
        let _ = writeln!(s, "# HELP d2c_step_seconds Latency of one decode step (one forward).\n# TYPE d2c_step_seconds histogram");
        if let Ok(h) = self.steps.lock() {
            for (c, b) in h.counts.iter().zip(BUCKETS.iter()) {
                let _ = writeln!(s, "d2c_step_seconds_bucket{{le=\"{b}\"}} {c}");
            }
            let _ = writeln!(s, "d2c_step_seconds_bucket{{le=\"+Inf\"}} {}\nd2c_step_seconds_sum {}\nd2c_step_seconds_count {}", h.count, h.sum, h.count);
        }
        s
    }
}

//! `d2c serve` from the outside: the binary started on 127.0.0.1 with the shipped model, a
//! real HTTP client (ureq), completions, chat, streaming (append and canvas), bad requests
//! (400 with a clear message, and the server keeps serving), metrics, and a graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child =
            Command::new(env!("CARGO_BIN_EXE_d2c")).args(["serve", "--port", "0"]).args(extra).stderr(Stdio::piped()).spawn().expect("server starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines.next().expect("a first line").unwrap();
        let addr = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base: format!("http://{addr}") }
    }

    fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let r = ureq::post(&format!("{}{path}", self.base)).set("Content-Type", "application/json").send_string(body);
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({ "raw": text })))
    }

    /// The `data:` payloads of a streamed response.
    fn stream(&self, path: &str, body: &str) -> Vec<String> {
        let resp = ureq::post(&format!("{}{path}", self.base)).send_string(body).expect("stream starts");
        assert_eq!(resp.header("content-type"), Some("text/event-stream"));
        resp.into_string().unwrap().lines().filter_map(|l| l.strip_prefix("data: ").map(String::from)).collect()
    }

    fn get(&self, path: &str) -> String {
        ureq::get(&format!("{}{path}", self.base)).call().unwrap().into_string().unwrap()
    }

    fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn answers_completions_chat_and_streams() {
    let s = Server::start(&[]);
    assert_eq!(s.get("/health").trim(), r#"{"status":"ok"}"#);
    let models: serde_json::Value = serde_json::from_str(&s.get("/v1/models")).unwrap();
    assert_eq!(models["data"][0]["id"], "tiny-tasks");

    let (code, v) = s.post("/v1/completions", r#"{"model": "tiny-tasks", "prompt": "27 + 58 =", "max_tokens": 12}"#);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["choices"][0]["text"], "085");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["completion_tokens"], 3);

    // Chat on a model without a chat template: the message contents are the prompt. A policy
    // and its parameters per request.
    for (policy, params) in [("vanilla", "{}"), ("d2cache", r#"{"current_k": 4}"#), ("fast-dllm-dual", r#"{"block_length": 4}"#), ("dllm-cache", "{}")] {
        let body = format!(r#"{{"messages": [{{"role": "user", "content": "sort 9 4 7 1 3 ="}}], "policy": "{policy}", "policy_params": {params}}}"#);
        let (code, v) = s.post("/v1/chat/completions", &body);
        assert_eq!(code, 200, "{policy}: {v}");
        assert_eq!(v["choices"][0]["message"]["content"], "1 3 4 7 9", "{policy}");
        assert_eq!(v["object"], "chat.completion");
    }

    // Streamed chat: OpenAI chunks whose deltas concatenate to the answer, then [DONE].
    let data = s.stream("/v1/chat/completions", r#"{"messages": [{"role": "user", "content": "reverse a b c d e ="}], "stream": true}"#);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "e d c b a");
    assert!(chunks.len() >= 3, "the answer arrives in pieces: {data:?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");

    // Canvas mode: the whole canvas after each step, masks included, then the answer.
    let data = s.stream("/v1/completions", r#"{"prompt": "copy k e y s o =", "stream": true, "stream_mode": "canvas", "policy": "vanilla"}"#);
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let canvases: Vec<&serde_json::Value> = chunks.iter().filter(|c| c.get("canvas").is_some()).collect();
    assert_eq!(canvases.len(), 12, "one canvas per step");
    assert_eq!(canvases[0]["canvas"]["tokens"].as_array().unwrap().iter().filter(|t| t.is_null()).count(), 11);
    assert_eq!(chunks.last().unwrap()["choices"][0]["text"], "k e y s o");

    let metrics = s.get("/metrics");
    assert!(metrics.contains("d2c_requests_total{endpoint=\"chat\",status=\"200\"} 5"), "{metrics}");
    assert!(metrics.contains("d2c_step_seconds_count") && metrics.contains("d2c_queue_depth 0"), "{metrics}");
    assert_eq!(s.stop(), Some(0), "SIGTERM stops the server cleanly");
}

#[test]
fn bad_requests_get_400_and_the_server_keeps_serving() {
    // A small body limit, so the over-limit body below is read whole before the 413 (a body
    // larger than the socket buffers races the server's close: a broken pipe, not a status).
    let s = Server::start(&["--max-body-bytes", "2048"]);
    let cases = [
        ("{not json", "invalid_json", "not valid JSON"),
        (r#"{"prompt": "1 + 2 =", "policy": "nope"}"#, "unknown_policy", "unknown policy `nope` (available: d2cache"),
        (r#"{"prompt": "1 + 2 =", "policy": "../Cargo"}"#, "unknown_policy", "unknown policy"),
        (r#"{"prompt": "1 + 2 =", "policy_params": {"current_k": 0}}"#, "invalid_policy", "must be >= 1"),
        (r#"{"prompt": "1 + 2 =", "policy_params": {"curent_k": 3}}"#, "invalid_policy_param", "no parameter `curent_k`"),
        (r#"{"prompt": "1 + 2 =", "max_tokens": 5000}"#, "invalid_prompt", "maximum sequence length"),
        (&format!(r#"{{"prompt": "{}"}}"#, "1 + 2 = ".repeat(60)), "invalid_prompt", "maximum sequence length"),
        (r#"{"prompt": [1, 2, 99999]}"#, "invalid_prompt", "outside the vocabulary"),
        (r#"{"prompt": "1 + 2 =", "n": 3}"#, "unsupported", "one choice"),
    ];
    for (body, code, msg) in cases {
        let (status, v) = s.post("/v1/completions", body);
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(msg), "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let (status, v) = s.post("/v1/completions", r#"{"prompt": "1 + 2 =", "policy_params": {"current_k": 0}}"#);
    assert_eq!(status, 400);
    assert_eq!(v["error"]["diagnostics"][0]["code"], "E005", "the checker's diagnostic as JSON: {v}");
    let (status, _) = s.post("/v1/chat/completions", r#"{"messages": []}"#);
    assert_eq!(status, 400);
    // A body over the limit.
    let big = format!(r#"{{"prompt": "{}"}}"#, "x".repeat(6000));
    let (status, _) = s.post("/v1/completions", &big);
    assert_eq!(status, 413);
    // Still serving.
    let (status, v) = s.post("/v1/completions", r#"{"prompt": "85 + 07 ="}"#);
    assert_eq!((status, v["choices"][0]["text"].as_str()), (200, Some("092")), "{v}");
}

#[test]
fn concurrent_requests_are_all_answered() {
    let s = Server::start(&[]);
    let base = s.base.clone();
    let prompts = [("27 + 58 =", "085"), ("sort 9 4 7 1 3 =", "1 3 4 7 9"), ("reverse a b c d e =", "e d c b a"), ("copy k e y s o =", "k e y s o")];
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let base = base.clone();
            let (p, want) = prompts[i % prompts.len()];
            std::thread::spawn(move || {
                // Prompts of four lengths under five policies (threshold commits and
                // dLLM-Cache's per-layer forwards included), some with a shorter canvas.
                let policy = ["d2cache", "vanilla", "parallel", "dllm-cache", "fast-dllm-dual"][i % 5];
                let max = if i % 3 == 0 { r#", "max_tokens": 8"# } else { "" };
                let body = format!(r#"{{"prompt": "{p}", "policy": "{policy}"{max}}}"#);
                let r: serde_json::Value = ureq::post(&format!("{base}/v1/completions")).send_string(&body).unwrap().into_json().unwrap();
                assert_eq!(r["choices"][0]["text"], want, "{p}");
                r["d2c"]["batch"].as_u64().unwrap()
            })
        })
        .collect();
    let batches: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Requests decoding at the same time share each step's forward, whatever their policy
    // and length (tests/batching.rs checks that this changes none of their tokens).
    assert!(batches.iter().any(|&b| b > 1), "{batches:?}");
    let metrics = s.get("/metrics");
    let shared = metrics.lines().find_map(|l| l.strip_prefix("d2c_batches_total ")).and_then(|v| v.trim().parse::<u64>().ok());
    assert!(shared.is_some_and(|n| n > 0), "{metrics}");
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    // One request decoding at a time, a queue of one, slow requests: of six concurrent
    // requests, those arriving while one decodes and one waits cannot wait.
    let s = Server::start(&["--queue", "1", "--max-batch", "1"]);
    let base = s.base.clone();
    let slow = r#"{"prompt": "27 + 58 =", "max_tokens": 96, "policy": "vanilla"}"#;
    let busy: Vec<_> = (0..6)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || match ureq::post(&format!("{base}/v1/completions")).send_string(slow) {
                Ok(r) => (r.status(), None),
                Err(ureq::Error::Status(code, r)) => (code, r.header("retry-after").map(String::from)),
                Err(e) => panic!("{e}"),
            })
        })
        .collect();
    let results: Vec<(u16, Option<String>)> = busy.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().any(|(c, _)| *c == 200), "{results:?}");
    let rejected: Vec<_> = results.iter().filter(|(c, _)| *c == 429).collect();
    assert!(!rejected.is_empty(), "{results:?}");
    assert!(rejected.iter().all(|(_, r)| r.as_deref() == Some("1")), "{results:?}");
}

#[test]
fn a_request_past_its_timeout_gets_504_and_frees_the_decoder() {
    let s = Server::start(&["--timeout-s", "0.02"]);
    let (status, v) = s.post("/v1/completions", r#"{"prompt": "27 + 58 =", "max_tokens": 120, "policy": "vanilla"}"#);
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["error"]["code"], "timeout");
    // The decoder dropped it at its next step instead of decoding all 120 tokens (one a step):
    // nothing runs or waits afterwards, and far fewer steps than 120 ran.
    let metric = |text: &str, name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let t0 = std::time::Instant::now();
    let text = loop {
        let text = s.get("/metrics");
        if metric(&text, "d2c_running ") == 0.0 && metric(&text, "d2c_queue_depth ") == 0.0 {
            break text;
        }
        assert!(t0.elapsed().as_secs() < 30, "the timed-out request still holds the decoder:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let steps = metric(&text, "d2c_step_seconds_count ");
    assert!(steps < 120.0, "{steps} steps ran for a request that timed out after 20 ms");
}

//! The OpenAI request and response shapes `d2c serve` speaks, and their translation into a
//! decode job: `max_tokens` → gen_length, `temperature` / `top_p` / `seed` → the policy's
//! parameters, and d2c's own `policy`, `policy_params` and `stream_mode`. Fields OpenAI
//! clients send that d2c has no use for (`user`, `logprobs`, penalties, ...) are ignored;
//! values d2c cannot honour (`n` > 1, a `stop` list) are a 400, never silently dropped.

use crate::chat::{parse_messages, Message};
use serde_json::{json, Map, Value};

/// A request rejected before or during decoding: an HTTP status and OpenAI's error body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub param: Option<String>,
    pub code: &'static str,
    /// Policy diagnostics (the same objects as `d2c check --error-format json`).
    pub diagnostics: Option<Value>,
}

impl ApiError {
    pub fn bad(message: impl Into<String>, param: Option<&str>, code: &'static str) -> Self {
        ApiError { status: 400, message: message.into(), param: param.map(String::from), code, diagnostics: None }
    }
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
    pub fn body(&self) -> Value {
        let kind = match self.status {
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        let mut e = json!({"message": self.message, "type": kind, "param": self.param, "code": self.code});
        if let Some(d) = &self.diagnostics {
            e["diagnostics"] = d.clone();
        }
        json!({ "error": e })
    }
}

/// What to decode.
#[derive(Debug, Clone)]
pub enum Input {
    /// `/v1/completions`: text tokenized as is (no chat template), or token ids.
    Text(String),
    Ids(Vec<u32>),
    /// `/v1/chat/completions`: through the model's chat template, or the concatenated
    /// contents for a model without one.
    Messages(Vec<Message>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// Text as the stable left-to-right prefix grows (OpenAI's deltas).
    Append,
    /// The whole canvas, masks included, after every step.
    Canvas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

/// A parsed request, ready for the decoder.
#[derive(Debug, Clone)]
pub struct GenRequest {
    pub endpoint: Endpoint,
    pub input: Input,
    pub policy: Option<String>,
    /// `name=value` settings in order: policy_params, then max_tokens/temperature/top_p/seed.
    pub sets: Vec<(String, String)>,
    pub stream: bool,
    pub mode: StreamMode,
}

fn scalar(name: &str, v: &Value) -> Result<String, ApiError> {
    match v {
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::String(s) => Ok(s.clone()),
        _ => Err(ApiError::bad(
            format!("policy_params.{name}: expected a number, a boolean or a string, got {v}"),
            Some(&format!("policy_params.{name}")),
            "invalid_policy_param",
        )),
    }
}

/// Parse a request body of `endpoint`.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<GenRequest, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the body is not valid JSON: {e}"), None, "invalid_json"))?;
    let obj = v.as_object().ok_or_else(|| ApiError::bad("the body must be a JSON object", None, "invalid_json"))?;
    let input = match endpoint {
        Endpoint::Completions => match obj.get("prompt") {
            Some(Value::String(s)) => Input::Text(s.clone()),
            Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => Input::Text(a[0].as_str().unwrap_or_default().to_string()),
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(|x| x.is_u64()) => {
                Input::Ids(a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect())
            }
            Some(Value::Array(_)) => {
                return Err(ApiError::bad(
                    "prompt: one string or one list of token ids per request (batching happens in the server)",
                    Some("prompt"),
                    "invalid_prompt",
                ))
            }
            _ => return Err(ApiError::bad("prompt: missing (a string or a list of token ids)", Some("prompt"), "invalid_prompt")),
        },
        Endpoint::Chat => {
            let list = obj
                .get("messages")
                .and_then(|m| m.as_array())
                .ok_or_else(|| ApiError::bad("messages: missing (a list of {role, content})", Some("messages"), "invalid_messages"))?;
            let msgs = parse_messages(list).map_err(|e| ApiError::bad(format!("messages: {e}"), Some("messages"), "invalid_messages"))?;
            if msgs.is_empty() {
                return Err(ApiError::bad("messages: empty", Some("messages"), "invalid_messages"));
            }
            Input::Messages(msgs)
        }
    };
    if let Some(n) = obj.get("n").and_then(|n| n.as_u64()).filter(|&n| n != 1) {
        return Err(ApiError::bad(format!("n = {n}: d2c returns one choice per request"), Some("n"), "unsupported"));
    }
    if obj.get("stop").is_some_and(|s| !s.is_null()) {
        return Err(ApiError::bad("stop: not supported (answers end at the model's stop tokens)", Some("stop"), "unsupported"));
    }
    let policy = match obj.get("policy") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(ApiError::bad(format!("policy: expected a policy name, got {other}"), Some("policy"), "invalid_policy")),
    };
    let mut sets = Vec::new();
    match obj.get("policy_params") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                sets.push((k.clone(), scalar(k, v)?));
            }
        }
        Some(_) => return Err(ApiError::bad("policy_params: expected an object of name: value", Some("policy_params"), "invalid_policy_param")),
    }
    let number = |name: &str, m: &Map<String, Value>| -> Result<Option<String>, ApiError> {
        match m.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(ApiError::bad(format!("{name}: expected a number, got {other}"), Some(name), "invalid_value")),
        }
    };
    // max_completion_tokens is the newer name of the same thing.
    let max = number("max_tokens", obj)?.or(number("max_completion_tokens", obj)?);
    if let Some(m) = max {
        match m.parse::<usize>() {
            Ok(x) if x > 0 => sets.push(("gen_length".into(), m)),
            _ => return Err(ApiError::bad(format!("max_tokens: {m} is not a positive integer"), Some("max_tokens"), "invalid_value")),
        }
    }
    for (api, param) in [("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed")] {
        if let Some(x) = number(api, obj)? {
            sets.push((param.into(), x));
        }
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(ApiError::bad(format!("stream: expected true or false, got {other}"), Some("stream"), "invalid_value")),
    };
    let mode = match obj.get("stream_mode").and_then(|m| m.as_str()) {
        None | Some("append") => StreamMode::Append,
        Some("canvas") => StreamMode::Canvas,
        Some(other) => return Err(ApiError::bad(format!("stream_mode: `{other}` is not `append` or `canvas`"), Some("stream_mode"), "invalid_value")),
    };
    Ok(GenRequest { endpoint, input, policy, sets, stream, mode })
}

/// A finished decode, as the response needs it.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub finish_reason: &'static str,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub policy: String,
    pub steps: usize,
    pub forwards: usize,
    pub recompute_fraction: f64,
    /// The most requests that shared a step's forward with this one (itself included).
    pub batch: usize,
}

fn usage(c: &Completion) -> Value {
    json!({"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens, "total_tokens": c.prompt_tokens + c.completion_tokens})
}

fn d2c_stats(c: &Completion) -> Value {
    json!({"policy": c.policy, "steps": c.steps, "forwards": c.forwards, "recompute_fraction": c.recompute_fraction, "batch": c.batch})
}

/// The non-streamed response body.
pub fn response(endpoint: Endpoint, id: &str, created: u64, model: &str, c: &Completion) -> Value {
    match endpoint {
        Endpoint::Completions => json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": c.text, "finish_reason": c.finish_reason, "logprobs": null}],
            "usage": usage(c), "d2c": d2c_stats(c),
        }),
        Endpoint::Chat => json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason, "logprobs": null}],
            "usage": usage(c), "d2c": d2c_stats(c),
        }),
    }
}

/// One streamed chunk: `text` appended (or, at the end, `finish` with usage).
pub fn chunk(endpoint: Endpoint, id: &str, created: u64, model: &str, text: &str, first: bool, finish: Option<&Completion>) -> Value {
    let reason = finish.map(|c| c.finish_reason);
    let mut v = match endpoint {
        Endpoint::Completions => json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": reason, "logprobs": null}],
        }),
        Endpoint::Chat => {
            let delta = if first {
                json!({"role": "assistant", "content": text})
            } else if finish.is_some() && text.is_empty() {
                json!({})
            } else {
                json!({"content": text})
            };
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": null}],
            })
        }
    };
    if let Some(c) = finish {
        v["usage"] = usage(c);
        v["d2c"] = d2c_stats(c);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_openai_fields_to_policy_settings() {
        let r = parse(Endpoint::Completions, br#"{"model":"x","prompt":"27 + 58 =","max_tokens":12,"temperature":0,"seed":3,"policy":"d2cache","policy_params":{"current_k":16,"certainty_prior":false},"user":"u"}"#).unwrap();
        assert!(matches!(r.input, Input::Text(ref t) if t == "27 + 58 ="));
        assert_eq!(r.policy.as_deref(), Some("d2cache"));
        let sets: Vec<String> = r.sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(sets, ["certainty_prior=false", "current_k=16", "gen_length=12", "temperature=0", "seed=3"]);
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        for (body, param) in [
            (&br#"{"prompt": "a", "n": 2}"#[..], "n"),
            (br#"{"prompt": "a", "stop": ["x"]}"#, "stop"),
            (br#"{"prompt": "a", "max_tokens": 0}"#, "max_tokens"),
            (br#"{"prompt": "a", "stream_mode": "pixels"}"#, "stream_mode"),
            (br#"{"prompt": "a", "policy_params": {"current_k": [1]}}"#, "policy_params.current_k"),
            (br#"{"max_tokens": 3}"#, "prompt"),
        ] {
            let e = parse(Endpoint::Completions, body).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{}", e.message);
        }
        assert_eq!(parse(Endpoint::Chat, b"{not json").unwrap_err().code, "invalid_json");
    }
}

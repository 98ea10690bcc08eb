//! Shared helpers for tests that run shipped policies against the oracle fixtures.

use candle_core::DType;
use d2c::compile::{compile, Source};
use d2c::model::Transformer;
use d2c::plan::Plan;
use serde_json::Value;
use std::path::Path;

pub fn tiny_model() -> Transformer {
    d2c::model::load(Path::new("tests/fixtures/tiny-llada"), DType::F32, &d2c::engine::device()).expect("tiny model loads")
}

pub fn tiny_dream() -> Transformer {
    d2c::model::load(Path::new("tests/fixtures/tiny-dream"), DType::F32, &d2c::engine::device()).expect("tiny Dream loads")
}

/// The oracle's tiny checkpoint of the family a trace names (`model_family`, absent = LLaDA).
pub fn model_for(t: &Value) -> Transformer {
    match t["model_family"].as_str() {
        Some("dream") => tiny_dream(),
        _ => tiny_model(),
    }
}

/// A LLaDA trace by name, or a Dream one as `dream/NAME`.
pub fn trace(name: &str) -> Value {
    let p = match name.strip_prefix("dream/") {
        Some(n) => format!("tests/fixtures/dream/traces/{n}.json"),
        None => format!("tests/fixtures/traces/{name}.json"),
    };
    serde_json::from_str(&std::fs::read_to_string(&p).expect("trace fixture")).expect("trace json")
}

pub fn plan(policy: &str, sets: &[String]) -> Plan {
    let src = Source::read(&format!("policies/{policy}")).expect("policy file");
    match compile(&src, sets, &mut |_, _| {}) {
        Ok(c) => c.plan,
        Err(f) => panic!("{policy} does not compile: {:?}", f.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()),
    }
}

/// The shipped policy and `--set` values that reproduce an oracle trace, read from the
/// trace's own settings (not from its name).
pub fn policy_for(t: &Value) -> (String, Vec<String>) {
    let g = &t["generation"];
    let mut sets =
        vec![format!("gen_length={}", g["gen_length"]), format!("block_length={}", g["block_length"]), format!("tokens_per_step={}", g["num_transfer_tokens"])];
    if let Some(p) = g["top_p"].as_f64() {
        sets.push(format!("top_p={p}"));
    }
    // The reference turns the prior off with sigma None or 0 ("if sigma is not None and sigma > 0").
    let sigma = g["sigma"].as_f64().filter(|s| *s > 0.0);
    match g["alg"].as_str() {
        Some("topk_margin") => sets.push("score=margin".into()),
        Some("entropy") => sets.push("score=entropy".into()),
        _ => {}
    }
    let cache = &t["cache"];
    let klass = g["method"].as_str() == Some("klass");
    if klass {
        sets.push(format!("kl_threshold={}", g["kl_threshold"]));
        sets.push(format!("kl_history={}", g["kl_history_length"]));
        if let Some(t) = g["threshold"].as_f64() {
            sets.push(format!("threshold={t}"));
        }
    }
    let policy = match cache["kind"].as_str() {
        None if klass => {
            sets.push(format!("certainty_prior={}", sigma.is_some()));
            if let Some(s) = sigma {
                sets.push(format!("sigma={s}"));
            }
            "klass.pol"
        }
        Some("prefix") if klass => "dual-klass.pol",
        None if g["debias"].as_bool() == Some(true) => {
            sets.push(format!("clip_alpha={}", g["clip_alpha"]));
            let dir = if t["model_family"].as_str() == Some("dream") { "tests/fixtures/tiny-dream" } else { "tests/fixtures/tiny-llada" };
            sets.push(format!("token_freq={dir}/{}", g["token_freq_file"].as_str().unwrap_or("token_freq.json")));
            sets.push(format!("certainty_prior={}", sigma.is_some()));
            if let Some(s) = sigma {
                sets.push(format!("sigma={s}"));
            }
            "pc-sampler.pol"
        }
        None if g["gamma"].is_number() => {
            sets.push(format!("gamma={}", g["gamma"]));
            sets.push(format!("certainty_prior={}", sigma.is_some()));
            if let Some(s) = sigma {
                sets.push(format!("sigma={s}"));
            }
            "eb-sampler.pol"
        }
        None => {
            sets.push(format!("certainty_prior={}", sigma.is_some()));
            if let Some(s) = sigma {
                sets.push(format!("sigma={s}"));
            }
            "vanilla.pol"
        }
        Some("d2") => {
            sets.push(format!("certainty_prior={}", sigma.is_some()));
            if let Some(s) = sigma {
                sets.push(format!("sigma={s}"));
            }
            sets.push(format!("cache_sigma={}", cache["sigma"]));
            sets.push(format!("current_k={}", cache["current_k"]));
            sets.push(format!("rollout_p={}", cache["rollout_p"]));
            sets.push(format!("inflate_w={}", cache["inflate_w"]));
            if g["gamma"].is_number() {
                sets.push(format!("gamma={}", g["gamma"]));
                "d2cache-eb.pol"
            } else {
                "d2cache.pol"
            }
        }
        Some("prefix") if cache["use_dual"].as_bool() == Some(true) => "fast-dllm-dual.pol",
        Some("prefix") => "fast-dllm-prefix.pol",
        Some("dllm") => {
            sets.push(format!("prompt_interval={}", cache["kp"]));
            sets.push(format!("response_interval={}", cache["kr"]));
            sets.push(format!("value_ratio={}", cache["rou"]));
            "dllm-cache.pol"
        }
        Some(other) => panic!("no shipped policy for cache kind {other}"),
    };
    (policy.to_string(), sets)
}

pub fn ids(v: &Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect()
}

pub fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        Value::String(s) if s == "inf" => f64::INFINITY,
        other => other.as_f64().unwrap_or(f64::NAN),
    }
}

/// The shipped policy files, sorted.
pub fn shipped_policies() -> Vec<std::path::PathBuf> {
    d2c::compile::policy_files(Path::new("policies")).expect("policies/ lists")
}

/// `path` relative to the package root (what a user types; diagnostics print it).
pub fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).to_string_lossy().to_string()
}

/// A scratch folder removed when dropped, also when the test fails.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("d2c-test-").tempdir().expect("scratch folder")
}

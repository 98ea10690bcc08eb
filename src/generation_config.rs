//! A checkpoint's `generation_config.json`: the decode settings it suggests and the ids that
//! end an answer. Every key is optional (and may be `null`); a key of the wrong type, or a
//! file that is not JSON, is an error naming the key, never silently ignored.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationConfig {
    pub max_new_tokens: Option<usize>,
    pub steps: Option<usize>,
    pub block_length: Option<usize>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub alg: Option<String>,
    /// `eos_token_id`, which may be a list.
    pub eos_token_ids: Vec<u32>,
}

/// A policy setting suggested by the folder, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggested {
    pub param: String,
    pub value: String,
    pub source: String,
}

impl GenerationConfig {
    /// `Ok(default)` when the folder has no generation_config.json.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("generation_config.json");
        if !path.is_file() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::io(&path, format!("invalid JSON: {e}")))?;
        Self::from_json(&v).map_err(|m| Error::io(&path, m))
    }

    pub fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let obj = v.as_object().ok_or("expected a JSON object")?;
        let get = |k: &str| obj.get(k).filter(|x| !x.is_null());
        let uint = |k: &str| -> std::result::Result<Option<usize>, String> {
            get(k).map(|x| x.as_u64().map(|n| n as usize).ok_or_else(|| format!("`{k}` must be a non-negative integer, got {x}"))).transpose()
        };
        let float = |k: &str| -> std::result::Result<Option<f64>, String> {
            get(k).map(|x| x.as_f64().ok_or_else(|| format!("`{k}` must be a number, got {x}"))).transpose()
        };
        let id = |x: &Value| x.as_u64().map(|n| n as u32).ok_or_else(|| format!("`eos_token_id` must be a token id or a list of them, got {x}"));
        let eos_token_ids = match get("eos_token_id") {
            None => vec![],
            Some(Value::Array(list)) => list.iter().map(id).collect::<std::result::Result<_, _>>()?,
            Some(x) => vec![id(x)?],
        };
        let alg = get("alg").map(|x| x.as_str().map(String::from).ok_or_else(|| format!("`alg` must be a string, got {x}"))).transpose()?;
        Ok(GenerationConfig {
            max_new_tokens: uint("max_new_tokens")?,
            steps: uint("steps")?,
            block_length: uint("block_length")?,
            temperature: float("temperature")?,
            top_p: float("top_p")?,
            top_k: uint("top_k")?,
            alg,
            eos_token_ids,
        })
    }

    /// The settings this file suggests, as policy parameters (only those `declared`). `steps`
    /// becomes tokens_per_step and needs the final `gen_length` (`gen`), which it must divide.
    /// Settings that cannot apply come back in the second list, as notes.
    pub fn suggestions(&self, declared: &[String], gen: Option<usize>) -> (Vec<Suggested>, Vec<String>) {
        let mut out = Vec::new();
        let mut notes = Vec::new();
        let src = |k: &str| format!("generation_config.json {k}");
        let mut push = |param: &str, value: String, key: &str| {
            if declared.iter().any(|d| d == param) {
                out.push(Suggested { param: param.into(), value, source: src(key) });
            }
        };
        if let Some(n) = self.max_new_tokens {
            push("gen_length", n.to_string(), "max_new_tokens");
        }
        if let Some(n) = self.block_length {
            push("block_length", n.to_string(), "block_length");
        }
        if let Some(t) = self.temperature {
            push("temperature", t.to_string(), "temperature");
        }
        if let Some(p) = self.top_p {
            push("top_p", p.to_string(), "top_p");
        }
        if let Some(k) = self.top_k {
            push("top_k", k.to_string(), "top_k");
        }
        if let Some(s) = self.steps {
            match gen {
                Some(g) if s > 0 && s <= g && g % s == 0 => push("tokens_per_step", (g / s).to_string(), "steps"),
                _ => notes.push(format!(
                    "generation_config.json steps={s} not applied (it must divide gen_length{})",
                    gen.map(|g| format!(" {g}")).unwrap_or_default()
                )),
            }
        }
        if let Some(a) = &self.alg {
            // Dream's `alg` names the commit score; `origin` is its random order, which d2c's
            // score-ranked commits have no counterpart for.
            let kind = match a.as_str() {
                "maskgit_plus" => Some("confidence"),
                "topk_margin" => Some("margin"),
                "entropy" => Some("entropy"),
                _ => None,
            };
            match kind {
                Some(k) if declared.iter().any(|d| d == "score") => push("score", k.to_string(), "alg"),
                Some("confidence") => {}
                _ => notes.push(format!("generation_config.json alg={a} not applied (this policy has no `score` parameter that takes it)")),
            }
        }
        (out, notes)
    }
}

/// Names of the tokens that end a turn or a text in the families d2c runs (LLaDA-Instruct:
/// `<|eot_id|>` and `<|endoftext|>`; Dream / Qwen2: `<|endoftext|>` and `<|im_end|>`).
pub const STOP_TOKENS: [&str; 6] = ["<|eot_id|>", "<|endoftext|>", "<|im_end|>", "<|end_of_text|>", "<|eos|>", "</s>"];

/// Every id that ends an answer: `eos_token_id` of generation_config.json (one or a list),
/// the model's EOS, and the tokenizer's end-of-turn tokens.
pub fn stop_ids(gc: &GenerationConfig, model_eos: u32, tok: Option<&crate::model::tokenizer::TextTokenizer>) -> Vec<u32> {
    let mut ids = gc.eos_token_ids.clone();
    ids.push(model_eos);
    if let Some(t) = tok {
        ids.extend(STOP_TOKENS.iter().filter_map(|n| t.token_id(n)));
    }
    let mut seen = Vec::new();
    ids.retain(|x| {
        if seen.contains(x) {
            false
        } else {
            seen.push(*x);
            true
        }
    });
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_of_the_wrong_type_are_named() {
        assert!(GenerationConfig::from_json(&json!({"max_new_tokens": "many"})).unwrap_err().contains("`max_new_tokens`"));
        assert!(GenerationConfig::from_json(&json!({"eos_token_id": [1, "x"]})).unwrap_err().contains("`eos_token_id`"));
        let g = GenerationConfig::from_json(&json!({"eos_token_id": [126081, 126348], "top_p": null, "steps": 8})).unwrap();
        assert_eq!(g.eos_token_ids, vec![126081, 126348]);
        assert_eq!(g.top_p, None);
    }

    #[test]
    fn steps_become_tokens_per_step_only_when_they_divide() {
        let g = GenerationConfig { steps: Some(8), alg: Some("entropy".into()), ..Default::default() };
        let declared = vec!["tokens_per_step".to_string()];
        let (s, notes) = g.suggestions(&declared, Some(32));
        assert_eq!(s[0].value, "4");
        assert!(notes[0].contains("alg=entropy"));
        // A policy with a `score` parameter takes the checkpoint's alg as its score kind.
        let (s, notes) = g.suggestions(&["score".to_string()], Some(32));
        assert_eq!((s[0].param.as_str(), s[0].value.as_str(), notes.len()), ("score", "entropy", 0));
        let (s, notes) = g.suggestions(&declared, Some(30));
        assert!(s.is_empty() && notes[0].contains("steps=8 not applied"));
    }
}

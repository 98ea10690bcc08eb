//! Text in, text out, through a checkpoint's tokenizer: `tokenizer.json`, or the slow
//! tokenizer files Qwen2-style checkpoints (Dream) may ship instead: `vocab.json` +
//! `merges.txt` + `tokenizer_config.json`, assembled here into the same byte-level BPE
//! `transformers` builds from them, with the added tokens (mask, im_start/im_end, endoftext)
//! at their ids.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    unk: Option<u32>,
}

/// Qwen2's pre-tokenizer split (`Qwen2TokenizerFast` / `convert_slow_tokenizer`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::io(path, format!("invalid JSON: {e}")))
}

impl TextTokenizer {
    /// `Ok(None)` when the folder has no tokenizer (then `--prompt-ids` is the way in).
    pub fn from_dir(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("tokenizer.json");
        let inner = if path.is_file() {
            tokenizers::Tokenizer::from_file(&path).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?
        } else if dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
            byte_level_bpe(dir)?
        } else {
            return Ok(None);
        };
        let unk = ["[UNK]", "<unk>", "<|unk|>"].iter().find_map(|t| inner.token_to_id(t));
        Ok(Some(TextTokenizer { inner, unk }))
    }

    /// Encode with the tokenizer's own special tokens (its post-processor, e.g. a BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    /// Encode a rendered chat template: no special tokens added, as `apply_chat_template`
    /// tokenizes (the template writes BOS itself where the model wants one).
    pub fn encode_with(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, add_special).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The pieces of `text` the tokenizer maps to its unknown token.
    pub fn unknown_words(&self, text: &str) -> Vec<String> {
        let (Some(unk), Ok(enc)) = (self.unk, self.inner.encode(text, false)) else { return vec![] };
        let mut out: Vec<String> = Vec::new();
        for (id, (a, b)) in enc.get_ids().iter().zip(enc.get_offsets()) {
            let word = text.get(*a..*b).unwrap_or("").to_string();
            if *id == unk && !out.contains(&word) {
                out.push(word);
            }
        }
        out
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// One token's text with special tokens spelled out (`<|eot_id|>`, `[EOS]`), for
    /// pictures and snapshots.
    pub fn piece(&self, id: u32) -> String {
        self.inner.decode(&[id], false).ok().filter(|s| !s.is_empty()).or_else(|| self.inner.id_to_token(id)).unwrap_or_else(|| format!("[{id}]"))
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// A byte-level BPE from `vocab.json` + `merges.txt`, with `tokenizer_config.json`'s
/// `added_tokens_decoder` placed at their ids (put into the vocabulary, so they keep them
/// even where the ids are not contiguous).
fn byte_level_bpe(dir: &Path) -> Result<tokenizers::Tokenizer> {
    let (vocab, merges, added) = slow_files(dir)?;
    from_parts(vocab, merges, added, QWEN2_SPLIT).map_err(|e| Error::Tokenizer(format!("{}: {e}", dir.join("vocab.json").display())))
}

type Parts = (Value, Vec<Value>, Vec<Value>);

fn slow_files(dir: &Path) -> Result<Parts> {
    let vocab_path = dir.join("vocab.json");
    let mut vocab = read_json(&vocab_path)?;
    let vocab_map = vocab.as_object_mut().ok_or_else(|| Error::io(&vocab_path, "expected an object of token -> id"))?;
    let merges_path = dir.join("merges.txt");
    let merges_text = std::fs::read_to_string(&merges_path).map_err(|e| Error::io(&merges_path, e))?;
    let merges: Vec<Value> = merges_text.lines().filter(|l| !l.starts_with("#version") && !l.trim().is_empty()).map(|l| json!(l)).collect();
    let cfg_path = dir.join("tokenizer_config.json");
    let mut added = Vec::new();
    if cfg_path.is_file() {
        let cfg = read_json(&cfg_path)?;
        if let Some(dec) = cfg.get("added_tokens_decoder").and_then(|d| d.as_object()) {
            for (id, t) in dec {
                let id: u32 = id.parse().map_err(|_| Error::io(&cfg_path, format!("added_tokens_decoder: `{id}` is not a token id")))?;
                let content =
                    t.get("content").and_then(|c| c.as_str()).ok_or_else(|| Error::io(&cfg_path, format!("added_tokens_decoder.{id}: no `content`")))?;
                vocab_map.insert(content.to_string(), json!(id));
                let flag = |k: &str, d: bool| t.get(k).and_then(|v| v.as_bool()).unwrap_or(d);
                added.push(json!({
                    "id": id, "content": content, "single_word": flag("single_word", false), "lstrip": flag("lstrip", false),
                    "rstrip": flag("rstrip", false), "normalized": flag("normalized", false), "special": flag("special", true),
                }));
            }
        }
    }
    Ok((vocab, merges, added))
}

/// Assemble a byte-level BPE tokenizer (the GPT-2 / Qwen2 / LLaMA-3 kind) from its parts.
fn from_parts(vocab: Value, merges: Vec<Value>, added: Vec<Value>, split: &str) -> std::result::Result<tokenizers::Tokenizer, String> {
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
        ]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
    });
    spec.to_string().parse::<tokenizers::Tokenizer>().map_err(|e| e.to_string())
}

/// LLaMA-3's pre-tokenizer split (the `llama-bpe` pre-tokenizer of GGUF files).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl TextTokenizer {
    /// The tokenizer embedded in a GGUF file (`tokenizer.ggml.model = gpt2`: tokens, merges,
    /// token types; control tokens become special added tokens). `Ok(None)` when there is none.
    pub fn from_gguf(meta: &std::collections::HashMap<String, candle_core::quantized::gguf_file::Value>) -> Result<Option<Self>> {
        let s = |k: &str| meta.get(k).and_then(|v| v.to_string().ok()).cloned();
        if s("tokenizer.ggml.model").as_deref() != Some("gpt2") {
            return Ok(None);
        }
        let list = |k: &str| meta.get(k).and_then(|v| v.to_vec().ok()).cloned().unwrap_or_default();
        let tokens: Vec<String> = list("tokenizer.ggml.tokens").iter().filter_map(|v| v.to_string().ok().cloned()).collect();
        let types: Vec<i32> = list("tokenizer.ggml.token_type").iter().map(|v| v.to_i32().unwrap_or(1)).collect();
        let merges: Vec<Value> = list("tokenizer.ggml.merges").iter().filter_map(|v| v.to_string().ok().map(|m| json!(m))).collect();
        let mut vocab = serde_json::Map::new();
        let mut added = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            if types.get(i) == Some(&5) {
                continue; // unused ([PAD] fillers)
            }
            vocab.insert(t.clone(), json!(i));
            if types.get(i) == Some(&3) || types.get(i) == Some(&4) {
                added.push(json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": types.get(i) == Some(&3)}));
            }
        }
        let split = if s("tokenizer.ggml.pre").as_deref() == Some("qwen2") { QWEN2_SPLIT } else { LLAMA3_SPLIT };
        let inner = from_parts(Value::Object(vocab), merges, added, split).map_err(|e| Error::Tokenizer(format!("GGUF tokenizer: {e}")))?;
        Ok(Some(TextTokenizer { inner, unk: None }))
    }
}

/// The tokenizer of folder `dir` as GGUF metadata, when it is a byte-level BPE
/// (tokenizer.json with a BPE model, or vocab.json + merges.txt); none otherwise (d2c then
/// reads the tokenizer.json beside the GGUF file).
pub fn gguf_metadata(dir: &Path, vocab_size: usize) -> Result<Vec<(String, candle_core::quantized::gguf_file::Value)>> {
    use candle_core::quantized::gguf_file::Value as G;
    let (vocab, merges, added, pre) = if dir.join("tokenizer.json").is_file() {
        let t = read_json(&dir.join("tokenizer.json"))?;
        if t["model"]["type"] != "BPE" || t["model"]["vocab"].as_object().is_none() {
            return Ok(vec![]);
        }
        let merges: Vec<Value> = t["model"]["merges"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|m| match m {
                Value::Array(p) => json!(p.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
                other => other,
            })
            .collect();
        let added = t["added_tokens"].as_array().cloned().unwrap_or_default();
        (t["model"]["vocab"].clone(), merges, added, "llama-bpe")
    } else if dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
        let (v, m, a) = slow_files(dir)?;
        (v, m, a, "qwen2")
    } else {
        return Ok(vec![]);
    };
    let mut tokens: Vec<String> = (0..vocab_size).map(|i| format!("[PAD{i}]")).collect();
    let mut types = vec![5i32; vocab_size];
    for (t, id) in vocab.as_object().into_iter().flatten() {
        if let Some(i) = id.as_u64().map(|i| i as usize).filter(|&i| i < vocab_size) {
            tokens[i] = t.clone();
            types[i] = 1;
        }
    }
    for a in &added {
        if let (Some(i), Some(c)) = (a["id"].as_u64().map(|i| i as usize).filter(|&i| i < vocab_size), a["content"].as_str()) {
            tokens[i] = c.to_string();
            types[i] = if a["special"].as_bool().unwrap_or(true) { 3 } else { 4 };
        }
    }
    Ok(vec![
        ("tokenizer.ggml.model".into(), G::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), G::String(pre.into())),
        ("tokenizer.ggml.tokens".into(), G::Array(tokens.into_iter().map(G::String).collect())),
        ("tokenizer.ggml.token_type".into(), G::Array(types.into_iter().map(G::I32).collect())),
        ("tokenizer.ggml.merges".into(), G::Array(merges.iter().filter_map(|m| m.as_str().map(|s| G::String(s.into()))).collect())),
    ])
}

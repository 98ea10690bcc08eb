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

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// A byte-level BPE from `vocab.json` + `merges.txt`, with `tokenizer_config.json`'s
/// `added_tokens_decoder` placed at their ids (put into the vocabulary, so they keep them
/// even where the ids are not contiguous).
fn byte_level_bpe(dir: &Path) -> Result<tokenizers::Tokenizer> {
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
                let content = t.get("content").and_then(|c| c.as_str()).ok_or_else(|| Error::io(&cfg_path, format!("added_tokens_decoder.{id}: no `content`")))?;
                vocab_map.insert(content.to_string(), json!(id));
                let flag = |k: &str, d: bool| t.get(k).and_then(|v| v.as_bool()).unwrap_or(d);
                added.push(json!({
                    "id": id, "content": content, "single_word": flag("single_word", false), "lstrip": flag("lstrip", false),
                    "rstrip": flag("rstrip", false), "normalized": flag("normalized", false), "special": flag("special", true),
                }));
            }
        }
    }
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
        ]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
    });
    spec.to_string().parse::<tokenizers::Tokenizer>().map_err(|e| Error::Tokenizer(format!("{} + merges.txt: {e}", vocab_path.display())))
}

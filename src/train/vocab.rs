//! The tiny model's tokenizer: a Hugging Face WordPiece `tokenizer.json` over the synthetic
//! language's closed vocabulary.
//!
//! Numbers split into digits (`"485"` → `4 ##8 ##5`), so the model sees place value and the
//! standard WordPiece decoder glues them back; words and letters are whole tokens. Written as
//! JSON and read back through the `tokenizers` crate, so any HF-compatible loader can use it.

use super::tasks::{SYMBOLS, VOCAB_WORDS};
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

pub const EOS: &str = "<|eos|>";
pub const MASK: &str = "<|mask|>";
pub const UNK: &str = "[UNK]";
pub const PAD: &str = "<|pad|>";

/// Token strings in id order.
pub fn tokens() -> Vec<String> {
    let mut t: Vec<String> = [EOS, MASK, UNK, PAD].iter().map(|s| s.to_string()).collect();
    t.extend((0..10).map(|d| d.to_string()));
    t.extend((0..10).map(|d| format!("##{d}")));
    t.extend(SYMBOLS.iter().map(|s| s.to_string()));
    t.extend(('a'..='z').map(|c| c.to_string()));
    for w in VOCAB_WORDS {
        if !t.iter().any(|x| x == w) {
            t.push(w.to_string());
        }
    }
    t
}

pub fn id_of(tok: &str) -> u32 {
    tokens().iter().position(|t| t == tok).map_or(u32::MAX, |i| i as u32)
}

/// The `tokenizer.json` document.
pub fn tokenizer_json() -> Value {
    let toks = tokens();
    let vocab: serde_json::Map<String, Value> = toks.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<Value> = [EOS, MASK, UNK, PAD]
        .iter()
        .map(|t| json!({"id": id_of(t), "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": false},
        "model": {"type": "WordPiece", "unk_token": UNK, "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

/// Write `tokenizer.json` into `dir` and check that it loads.
pub fn write_tokenizer(dir: &Path) -> Result<tokenizers::Tokenizer> {
    let path = dir.join("tokenizer.json");
    let text = serde_json::to_string_pretty(&tokenizer_json()).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    tokenizers::Tokenizer::from_file(&path).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_language() {
        let dir = std::env::temp_dir().join(format!("d2c-vocab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tok = write_tokenizer(&dir).unwrap();
        let enc = tok.encode("37 + 485 = 522", false).unwrap();
        let pieces: Vec<&str> = enc.get_tokens().iter().map(|s| s.as_str()).collect();
        assert_eq!(pieces, ["3", "##7", "+", "4", "##8", "##5", "=", "5", "##2", "##2"]);
        assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), "37 + 485 = 522");
        let s = "tom has 5 apples . he sells 3 and buys 2 . how many apples does tom have now ?";
        let enc = tok.encode(s, false).unwrap();
        assert!(!enc.get_ids().contains(&id_of(UNK)));
        assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), s);
        std::fs::remove_dir_all(&dir).ok();
    }
}

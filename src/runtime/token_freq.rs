//! A token-frequency table for PC-Sampler's debiased score, in the format of the reference's
//! corpus files: `{"num_token": N, "p_baseline_dict": {"<id>": count, ...}}`. A listed token's
//! frequency is `count / N`, every other token's `1 / N`, both as f32 (oracle README §10.5).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct TokenFreq {
    listed: HashMap<u32, f32>,
    unlisted: f32,
}

impl TokenFreq {
    pub fn read(path: &Path) -> Result<TokenFreq> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::io(path, format!("not JSON: {e}")))?;
        let n = v.get("num_token").and_then(|n| n.as_f64()).filter(|n| *n > 0.0).ok_or_else(|| Error::io(path, "`num_token` must be a positive number"))?;
        let counts = v.get("p_baseline_dict").and_then(|d| d.as_object()).ok_or_else(|| Error::io(path, "no `p_baseline_dict` object"))?;
        let mut listed = HashMap::with_capacity(counts.len());
        for (id, c) in counts {
            let tok: u32 = id.parse().map_err(|_| Error::io(path, format!("`p_baseline_dict` key `{id}` is not a token id")))?;
            let c = c.as_f64().ok_or_else(|| Error::io(path, format!("`p_baseline_dict[\"{id}\"]` is not a number")))?;
            listed.insert(tok, (c / n) as f32);
        }
        Ok(TokenFreq { listed, unlisted: (1.0 / n) as f32 })
    }

    pub fn of(&self, token: u32) -> f32 {
        self.listed.get(&token).copied().unwrap_or(self.unlisted)
    }

    /// PC-Sampler's score of a row proposing `token` with probability `conf`:
    /// `min(-conf * ln(freq + 1e-10), alpha)`, in f32 as the reference computes it.
    pub fn debiased(&self, token: u32, conf: f64, alpha: f64) -> f64 {
        (-(conf as f32) * (self.of(token) + 1e-10f32).ln()).min(alpha as f32) as f64
    }
}

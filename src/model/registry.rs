//! The registry of model families: the one list every loader, writer and `make-model` walks.

use super::family::{Family, Preset};
use crate::error::{Error, Result};
use std::path::Path;

/// Every family d2c runs. LLaDA comes first: a `config.json` with neither `model_type` nor
/// `architectures` is read as LLaDA, whose missing keys take LLaDA-8B's values.
pub static FAMILIES: [&dyn Family; 2] = [&super::llada::Llada, &super::dream::Dream];

/// The family named `arch` (GGUF `general.architecture`, `make-model --family`).
pub fn by_arch(arch: &str) -> Option<&'static dyn Family> {
    FAMILIES.iter().copied().find(|f| f.arch() == arch)
}

/// The family names, for messages.
pub fn arch_names() -> String {
    FAMILIES.iter().map(|f| f.arch()).collect::<Vec<_>>().join(", ")
}

/// Every preset of every family.
pub fn presets() -> Vec<(&'static dyn Family, Preset)> {
    FAMILIES.iter().flat_map(|f| f.presets().into_iter().map(move |p| (*f, p))).collect()
}

/// The family a checkpoint's `config.json` declares (`model_type`, else `architectures`).
pub fn of_config(path: &Path) -> Result<&'static dyn Family> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config { path: path.into(), message: e.to_string() })?;
    let arch = v.get("architectures").and_then(|a| a.as_array()).and_then(|a| a.first()).and_then(|a| a.as_str());
    let model_type = v.get("model_type").and_then(|m| m.as_str());
    let listed = |i: usize| FAMILIES.iter().map(|f| if i == 0 { f.config_names().0 } else { f.config_names().1 }).collect::<Vec<_>>().join(", ");
    match (model_type, arch) {
        (Some(m), _) => FAMILIES
            .iter()
            .copied()
            .find(|f| f.config_names().0.eq_ignore_ascii_case(m))
            .ok_or_else(|| Error::Config { path: path.into(), message: format!("unknown model_type `{m}` (supported: {})", listed(0)) }),
        (None, Some(a)) => FAMILIES
            .iter()
            .copied()
            .find(|f| a.starts_with(f.config_names().1))
            .ok_or_else(|| Error::Config { path: path.into(), message: format!("unknown architectures `{a}` (supported: {})", listed(1)) }),
        (None, None) => Ok(FAMILIES[0]),
    }
}

//! Behaviour snapshots: a decode rendered as stable, human-readable text — per step the
//! positions committed (with their tokens) and the rows recomputed as compressed ranges,
//! then the answer — with no timings and nothing machine-dependent, so a policy author can
//! review what a change does as a diff. `d2c snapshot` prints it and checks folders of
//! policies against `snapshots/*.snap` files (insta's format); Rust users can
//! `insta::assert_snapshot!(d2c::snapshot::render(...))` in their own tests.

use crate::chat::answer_len;
use crate::compile::Source;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::runtime::{RunOptions, RunOutput};
use std::fmt::Write;

/// The prompts `d2c snapshot --check` decodes when a folder has no `prompts.txt`: one of each
/// kind the embedded model was trained on (addition, sorting, reversing, copying).
pub const DEFAULT_PROMPTS: [&str; 4] = ["27 + 58 =", "sort 9 4 7 1 3 =", "reverse a b c d e =", "copy k e y s o ="];

/// `0-11,14,20-23` for sorted or unsorted positions.
pub fn ranges(positions: &[usize]) -> String {
    let mut v = positions.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if j == i { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

/// A token's text quoted so spaces and newlines stay visible.
fn quoted(engine: &Engine, id: u32) -> String {
    format!("{:?}", engine.token_text(id))
}

/// The rendering of `out` (decoded by `policy` on `engine`'s model): positions are absolute
/// canvas positions (the prompt first), as in `--trace` query positions.
pub fn render(out: &RunOutput, policy: &str, engine: &Engine) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "policy: {policy}");
    for (b, prompt) in out.prompts.iter().enumerate() {
        let p = prompt.len();
        let gen = out.generated.get(b).map_or(0, |g| g.len());
        if out.prompts.len() > 1 {
            let _ = writeln!(s, "\n## sequence {b}");
        }
        let text = engine.tokenizer.as_ref().and_then(|t| t.decode(prompt).ok()).unwrap_or_default();
        let _ = writeln!(s, "prompt: {text:?} ({p} tokens, positions 0-{})", p.saturating_sub(1));
        let _ = writeln!(s, "canvas: positions {p}-{} ({gen} to generate)", (p + gen).saturating_sub(1));
        for r in &out.steps {
            let committed = r.committed.get(b).map(|c| c.as_slice()).unwrap_or(&[]);
            let mut line = format!("step {:>3}: commit ", r.step);
            if committed.is_empty() {
                line.push_str("none");
            }
            let mut sorted = committed.to_vec();
            sorted.sort_unstable();
            line.push_str(&sorted.iter().map(|&(i, t)| format!("{}={}", p + i, quoted(engine, t))).collect::<Vec<_>>().join(" "));
            let layers = r.layer_rows.get(b).filter(|l| !l.is_empty());
            match (&r.query_positions, layers) {
                (_, Some(layers)) => {
                    // dLLM-Cache: rows per layer; one list when every layer agrees.
                    let per: Vec<String> = layers.iter().map(|l| ranges(l)).collect();
                    if per.iter().all(|x| *x == per[0]) {
                        let _ = write!(line, " | recompute (every layer) {} ({} rows)", per[0], layers[0].len());
                    } else {
                        let _ =
                            write!(line, " | recompute per layer {}", per.iter().enumerate().map(|(l, x)| format!("L{l} {x}")).collect::<Vec<_>>().join("; "));
                    }
                }
                (None, None) => {
                    let _ = write!(line, " | recompute all ({} rows)", p + gen);
                }
                (Some(q), None) => {
                    let rows = q.get(b).map(|x| x.as_slice()).unwrap_or(&[]);
                    let _ = write!(line, " | recompute {} ({} rows)", ranges(rows), rows.len());
                }
            }
            let _ = writeln!(s, "{line}");
        }
        let ids = out.generated.get(b).map(|g| g.as_slice()).unwrap_or(&[]);
        let answer = &ids[..answer_len(ids, &engine.stops)];
        let text = engine.tokenizer.as_ref().and_then(|t| t.decode(answer).ok()).unwrap_or_else(|| format!("{answer:?}"));
        let _ = writeln!(s, "answer: {text:?} ({} tokens before the first stop)", answer.len());
        let _ = writeln!(s, "canvas ids: {}", ids.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","));
    }
    let st = &out.stats;
    let _ = writeln!(
        s,
        "steps {}, forwards {} ({} full), recomputed {:.1}% of no-cache's rows",
        st.steps,
        st.forwards,
        st.full_forwards,
        100.0 * st.recompute_fraction()
    );
    s
}

/// What to decode for a snapshot: text through the model's tokenizer (and chat template), or ids.
pub enum Prompt<'a> {
    Text(&'a str),
    Ids(Vec<u32>),
}

/// Compile `policy` (with `sets` after the model's own settings) on `engine`, decode `prompt`
/// and render it. An invalid policy is an error carrying the diagnostics' messages.
pub fn decode(engine: &Engine, policy: &Source, prompt: Prompt, sets: &[String]) -> Result<String> {
    let prepared = engine.prepare(policy, sets)?.map_err(|f| {
        let msgs: Vec<String> = f
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}:{}:{}: [{}] {}", policy.path, d.span.line, d.span.col, d.code, d.message))
            .collect();
        Error::Other(format!("{}: policy is invalid: {}", policy.path, msgs.join("; ")))
    })?;
    let ids = match prompt {
        Prompt::Text(t) => engine.encode(t)?,
        Prompt::Ids(ids) => ids,
    };
    let out = engine.generate(&prepared, &[ids], RunOptions { record_details: false, on_step: None, stop_ids: vec![], cancel: None })?;
    let name = std::path::Path::new(&policy.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| policy.path.clone());
    Ok(render(&out, &name, engine))
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(ranges(&[0, 1, 2, 3, 14, 20, 21, 22, 23, 11, 4, 5, 6, 7, 8, 9, 10]), "0-11,14,20-23");
        assert_eq!(ranges(&[]), "none");
        assert_eq!(ranges(&[5, 5, 7]), "5,7");
    }
}

//! Refresh-map pictures of a decode: one row per step, one column per canvas position, each
//! cell coloured by what happened there (recomputed = fresh K/V, reused = stale K/V, committed
//! now, still masked), prompt columns in their own colours, block boundaries marked, a side
//! bar with the rows recomputed per step and, for dLLM-Cache traces, a per-layer strip.
//!
//! The input is the `--trace` JSON (ours, or the oracle's step traces), so `d2c run --svg`
//! and `d2c trace show` draw the same thing from the same data.

use serde_json::Value;
use std::fmt::Write;

/// The trace format version d2c writes and reads (`"version"` in `--trace` files; traces
/// without one, like the oracle's, are read by shape).
pub const TRACE_VERSION: u64 = 1;

/// One sequence of a trace, as the picture needs it.
pub struct TraceView {
    pub policy: String,
    pub prompt_len: usize,
    pub gen_length: usize,
    pub block_length: Option<usize>,
    pub steps: Vec<StepCells>,
    /// Token text for committed ids (hover titles; ids when absent).
    pub labels: std::collections::HashMap<u32, String>,
}

pub struct StepCells {
    /// Absolute positions recomputed; None = every row (a full forward).
    pub rows: Option<Vec<usize>>,
    /// (position relative to the canvas, token id).
    pub committed: Vec<(usize, u32)>,
    /// dLLM-Cache: rows recomputed per layer.
    pub layers: Vec<Vec<usize>>,
}

fn field_err(file: &str, field: &str, what: &str) -> String {
    format!("{file}: field `{field}`: {what}")
}

fn usize_list(v: &Value, file: &str, field: &str) -> Result<Vec<usize>, String> {
    v.as_array()
        .ok_or_else(|| field_err(file, field, "expected a list of positions"))?
        .iter()
        .map(|x| x.as_u64().map(|n| n as usize).ok_or_else(|| field_err(file, field, &format!("`{x}` is not a position"))))
        .collect()
}

impl TraceView {
    /// Sequence `seq` of a parsed trace file; errors name the file and the field.
    pub fn from_json(v: &Value, file: &str, seq: usize) -> Result<TraceView, String> {
        if !v.is_object() {
            return Err(format!("{file}: not a d2c trace (expected a JSON object with `steps`)"));
        }
        if let Some(ver) = v.get("version") {
            if ver.as_u64() != Some(TRACE_VERSION) {
                return Err(field_err(file, "version", &format!("{ver} is not a trace version this d2c reads ({TRACE_VERSION})")));
            }
        }
        let prompts = v.get("prompt_ids").and_then(|p| p.as_array()).ok_or_else(|| field_err(file, "prompt_ids", "missing or not a list of prompts"))?;
        let prompt = prompts.get(seq).ok_or_else(|| field_err(file, "prompt_ids", &format!("has {} sequence(s), no sequence {seq}", prompts.len())))?;
        let prompt_len = prompt.as_array().ok_or_else(|| field_err(file, &format!("prompt_ids[{seq}]"), "not a list of ids"))?.len();
        let gen_ids = v
            .get("final_generated_ids")
            .and_then(|g| g.get(seq))
            .and_then(|g| g.as_array())
            .ok_or_else(|| field_err(file, &format!("final_generated_ids[{seq}]"), "missing or not a list of ids"))?;
        let steps_v = v.get("steps").and_then(|s| s.as_array()).ok_or_else(|| field_err(file, "steps", "missing or not a list"))?;
        let mut steps = Vec::with_capacity(steps_v.len());
        for (i, st) in steps_v.iter().enumerate() {
            let f = |name: &str| format!("steps[{i}].{name}");
            let rows = match st.get("query_positions") {
                None => return Err(field_err(file, &f("query_positions"), "missing")),
                Some(Value::String(s)) if s == "all" => None,
                Some(q) => {
                    let per = q.as_array().ok_or_else(|| field_err(file, &f("query_positions"), "expected \"all\" or a list per sequence"))?;
                    Some(usize_list(per.get(seq).unwrap_or(&Value::Array(vec![])), file, &f("query_positions"))?)
                }
            };
            let (committed, layers) = match st.get("seqs") {
                // The oracle's step traces: per sequence transfer_index / transfer_tokens,
                // dLLM-Cache layers as dllm_layers[].refresh_index.
                Some(seqs) => oracle_step(seqs, st.get("dllm_layers"), seq, file, i)?,
                None => d2c_step(st, seq, file, i)?,
            };
            // dLLM-Cache: a row is fresh when every layer recomputed it (the per-layer strip
            // shows the rest).
            let rows = match (&rows, layers.is_empty()) {
                (_, true) => rows,
                _ => Some(layers.first().map(|first| first.iter().copied().filter(|r| layers.iter().all(|l| l.contains(r))).collect()).unwrap_or_default()),
            };
            steps.push(StepCells { rows, committed, layers });
        }
        Ok(TraceView {
            policy: v.get("policy").or_else(|| v.get("name")).and_then(|p| p.as_str()).unwrap_or("policy").to_string(),
            prompt_len,
            gen_length: gen_ids.len(),
            block_length: v
                .get("block_length")
                .or_else(|| v.get("generation").and_then(|g| g.get("block_length")))
                .and_then(|b| b.as_u64())
                .map(|b| b as usize)
                .filter(|&b| b > 0),
            steps,
            labels: Default::default(),
        })
    }
}

impl StepCells {
    /// Rows the step computed: all, the recomputed set, or for dLLM-Cache the mean over layers.
    fn rows_computed(&self, canvas: usize) -> usize {
        if !self.layers.is_empty() {
            return self.layers.iter().map(|l| l.len()).sum::<usize>() / self.layers.len();
        }
        self.rows.as_ref().map_or(canvas, |r| r.len())
    }
}

type Commits = Vec<(usize, u32)>;

/// A step of `d2c run --trace`: `committed[seq]` as [position, token] pairs, `layer_rows[seq]`.
fn d2c_step(st: &Value, seq: usize, file: &str, i: usize) -> Result<(Commits, Vec<Vec<usize>>), String> {
    let f = |name: &str| format!("steps[{i}].{name}");
    let mut committed = Vec::new();
    let c = st.get("committed").and_then(|c| c.as_array()).ok_or_else(|| field_err(file, &f("committed"), "missing or not a list per sequence"))?;
    for pair in c.get(seq).and_then(|x| x.as_array()).into_iter().flatten() {
        match pair.as_array().map(|p| (p.first().and_then(|x| x.as_u64()), p.get(1).and_then(|x| x.as_u64()))) {
            Some((Some(pos), Some(tok))) => committed.push((pos as usize, tok as u32)),
            _ => return Err(field_err(file, &f("committed"), &format!("`{pair}` is not a [position, token] pair"))),
        }
    }
    let mut layers = Vec::new();
    if let Some(l) = st.get("layer_rows").and_then(|l| l.get(seq)) {
        for (k, rows) in l.as_array().ok_or_else(|| field_err(file, &f("layer_rows"), "expected a list of layers"))?.iter().enumerate() {
            layers.push(usize_list(rows, file, &f(&format!("layer_rows[{seq}][{k}]")))?);
        }
    }
    Ok((committed, layers))
}

/// A step of the oracle's traces (`../shared/oracle`): `seqs[seq].transfer_index` /
/// `transfer_tokens`, and for dLLM-Cache `dllm_layers[].refresh_index`.
fn oracle_step(seqs: &Value, layers_v: Option<&Value>, seq: usize, file: &str, i: usize) -> Result<(Commits, Vec<Vec<usize>>), String> {
    let f = |name: &str| format!("steps[{i}].{name}");
    let s = seqs.get(seq).ok_or_else(|| field_err(file, &f("seqs"), &format!("no sequence {seq}")))?;
    let idx = usize_list(s.get("transfer_index").unwrap_or(&Value::Null), file, &f(&format!("seqs[{seq}].transfer_index")))?;
    let toks = usize_list(s.get("transfer_tokens").unwrap_or(&Value::Null), file, &f(&format!("seqs[{seq}].transfer_tokens")))?;
    let committed = idx.into_iter().zip(toks).map(|(p, t)| (p, t as u32)).collect();
    let mut layers = Vec::new();
    for (k, l) in layers_v.and_then(|l| l.as_array()).into_iter().flatten().enumerate() {
        layers.push(usize_list(l.get("refresh_index").unwrap_or(&Value::Null), file, &f(&format!("dllm_layers[{k}].refresh_index")))?);
    }
    Ok((committed, layers))
}

impl TraceView {
    /// Label every committed token with `piece(id)`.
    pub fn label_with(&mut self, piece: impl Fn(u32) -> String) {
        for st in &self.steps {
            for &(_, tok) in &st.committed {
                self.labels.entry(tok).or_insert_with(|| piece(tok));
            }
        }
    }
}

const COMMITTED: &str = "#e15759";
const FRESH: &str = "#4e79a7";
const FRESH_MASKED: &str = "#a0cbe8";
const STALE: &str = "#bab0ac";
const STALE_MASKED: &str = "#f2f2f2";
const PROMPT_FRESH: &str = "#59a14f";
const PROMPT_STALE: &str = "#d4cfa8";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// At most two characters of a token for its cell; special tokens (`<|eos|>`, `[EOS]`) as ∎.
fn short(label: &str) -> String {
    let l = label.trim().trim_start_matches("##");
    if (l.starts_with('<') || l.starts_with('[')) && l.chars().count() > 2 {
        "∎".into()
    } else {
        l.chars().take(2).collect()
    }
}

/// The picture as an SVG document. `cell`: pixels per cell (0 = choose from the canvas width).
pub fn svg(t: &TraceView, cell: usize) -> String {
    let canvas = t.prompt_len + t.gen_length;
    let c = if cell > 0 { cell } else { (1100 / canvas.max(1)).clamp(1, 22) } as f64;
    let steps = t.steps.len();
    let (ml, mt) = (56.0, 58.0);
    let (gw, gh) = (canvas as f64 * c, steps as f64 * c);
    let bar_x = ml + gw + 12.0;
    let bar_w = 90.0;
    let n_layers = t.steps.iter().map(|s| s.layers.len()).max().unwrap_or(0);
    let strip_x = bar_x + bar_w + 16.0;
    let lw = c.max(3.0);
    let grid_width = strip_x + if n_layers > 0 { n_layers as f64 * lw + 16.0 } else { 0.0 } + 8.0;
    let legend_y = mt + gh + 24.0;
    let height = legend_y + 44.0;
    let mut s = String::new();
    let rows_total: usize = t.steps.iter().map(|st| st.rows_computed(canvas)).sum();
    let title = format!(
        "{} — prompt {}, gen {}{}, {} steps, {:.1} rows/step ({:.1}% of no-cache)",
        t.policy,
        t.prompt_len,
        t.gen_length,
        t.block_length.map(|b| format!(", block {b}")).unwrap_or_default(),
        steps,
        rows_total as f64 / steps.max(1) as f64,
        100.0 * rows_total as f64 / (steps.max(1) * canvas.max(1)) as f64
    );
    // Wide enough for the title and the legend even when the canvas is small.
    let width = grid_width.max(ml + 4.0 * 230.0).max(ml + 7.5 * title.chars().count() as f64);
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"##
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(s, r##"<text x="{ml}" y="16" font-size="13" font-weight="bold">{}</text>"##, esc(&title));
    // Position labels every 32 (and the prompt/answer split), step labels every 32.
    let _ = writeln!(
        s,
        r##"<text x="{ml}" y="34" fill="#555">prompt</text><text x="{:.1}" y="34" fill="#555">answer →</text>"##,
        ml + t.prompt_len as f64 * c + 2.0
    );
    for x in (0..canvas).step_by(32) {
        let px = ml + x as f64 * c;
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{mt:.1}" stroke="#555"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#555">{x}</text>"##,
            mt - 4.0,
            mt - 7.0
        );
    }
    for st in (0..steps).step_by(32) {
        let py = mt + st as f64 * c + c / 2.0 + 4.0;
        let _ = writeln!(s, r##"<text x="{:.1}" y="{py:.1}" text-anchor="end" fill="#555">step {st}</text>"##, ml - 4.0);
    }
    let mut decoded = vec![false; canvas];
    decoded[..t.prompt_len].iter_mut().for_each(|d| *d = true);
    let mut fresh = vec![false; canvas];
    for (i, st) in t.steps.iter().enumerate() {
        let y = mt + i as f64 * c;
        fresh.iter_mut().for_each(|f| *f = st.rows.is_none());
        for &r in st.rows.iter().flatten() {
            if r < canvas {
                fresh[r] = true;
            }
        }
        let colour = |x: usize| match (x < t.prompt_len, fresh[x], decoded[x]) {
            (true, true, _) => PROMPT_FRESH,
            (true, false, _) => PROMPT_STALE,
            (false, true, true) => FRESH,
            (false, true, false) => FRESH_MASKED,
            (false, false, true) => STALE,
            (false, false, false) => STALE_MASKED,
        };
        // Runs of one colour as one rectangle keep a gen-256 picture small.
        let mut x = 0;
        while x < canvas {
            let col = colour(x);
            let mut e = x + 1;
            while e < canvas && colour(e) == col {
                e += 1;
            }
            let _ = writeln!(s, r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{c:.1}" fill="{col}"/>"##, ml + x as f64 * c, (e - x) as f64 * c);
            x = e;
        }
        for &(rel, tok) in &st.committed {
            let x = t.prompt_len + rel;
            if x >= canvas {
                continue;
            }
            let label = t.labels.get(&tok).cloned().unwrap_or_else(|| tok.to_string());
            let px = ml + x as f64 * c;
            let _ = write!(
                s,
                r##"<rect x="{px:.1}" y="{y:.1}" width="{c:.1}" height="{c:.1}" fill="{COMMITTED}"><title>step {} position {x}: {}</title></rect>"##,
                i,
                esc(&label)
            );
            if c >= 10.0 {
                let _ = write!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="{:.0}" text-anchor="middle" fill="white">{}</text>"##,
                    px + c / 2.0,
                    y + c * 0.8,
                    c * 0.75,
                    esc(&short(&label))
                );
            }
            let _ = writeln!(s);
            decoded[x] = true;
        }
        // Side bar: rows recomputed this step, against the whole canvas.
        let n = st.rows_computed(canvas);
        let _ = writeln!(
            s,
            r##"<rect x="{bar_x:.1}" y="{y:.1}" width="{:.2}" height="{c:.1}" fill="{FRESH}"><title>step {}: {n} rows</title></rect>"##,
            bar_w * n as f64 / canvas.max(1) as f64,
            i
        );
        for (l, rows) in st.layers.iter().enumerate() {
            let frac = rows.len() as f64 / canvas.max(1) as f64;
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{y:.1}" width="{lw:.1}" height="{c:.1}" fill="{FRESH}" fill-opacity="{:.3}"><title>step {} layer {l}: {} rows</title></rect>"##,
                strip_x + l as f64 * lw,
                0.1 + 0.9 * frac,
                i,
                rows.len()
            );
        }
    }
    // Block boundaries and the prompt/answer split, over the cells.
    let line = |s: &mut String, x: usize, w: f64, col: &str| {
        let px = ml + x as f64 * c;
        let _ = writeln!(s, r##"<line x1="{px:.1}" y1="{mt:.1}" x2="{px:.1}" y2="{:.1}" stroke="{col}" stroke-width="{w}"/>"##, mt + gh);
    };
    if let Some(b) = t.block_length {
        for x in (t.prompt_len + b..canvas).step_by(b) {
            line(&mut s, x, 0.8, "#222");
        }
    }
    line(&mut s, t.prompt_len, 2.0, "#000");
    let _ = writeln!(s, r##"<rect x="{ml}" y="{mt}" width="{gw:.1}" height="{gh:.1}" fill="none" stroke="#000"/>"##);
    let _ = writeln!(s, r##"<text x="{bar_x:.1}" y="{:.1}" fill="#555">rows recomputed</text>"##, mt - 7.0);
    let _ = writeln!(s, r##"<rect x="{bar_x:.1}" y="{mt}" width="{bar_w}" height="{gh:.1}" fill="none" stroke="#999"/>"##);
    if n_layers > 0 {
        let _ = writeln!(s, r##"<text x="{strip_x:.1}" y="{:.1}" fill="#555">per layer</text>"##, mt - 7.0);
    }
    let legend = [
        (PROMPT_FRESH, "prompt, recomputed"),
        (PROMPT_STALE, "prompt, reused"),
        (FRESH, "decoded, recomputed (fresh K/V)"),
        (STALE, "decoded, reused (stale K/V)"),
        (FRESH_MASKED, "masked, recomputed"),
        (STALE_MASKED, "masked, reused"),
        (COMMITTED, "committed this step"),
    ];
    for (k, (col, name)) in legend.iter().enumerate() {
        let (lx, ly) = (ml + (k % 4) as f64 * 230.0, legend_y + (k / 4) as f64 * 18.0);
        let _ = writeln!(
            s,
            r##"<rect x="{lx:.1}" y="{ly:.1}" width="11" height="11" fill="{col}" stroke="#999"/><text x="{:.1}" y="{:.1}">{name}</text>"##,
            lx + 15.0,
            ly + 10.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The SVG in a page with the legend's meaning spelled out (hover a committed cell for its token).
pub fn html(t: &TraceView, cell: usize) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"font-family:sans-serif\">\n<h2>{}</h2>\n<p>One row per step (top to bottom), one column per canvas position. Hover a red cell for the token committed there; the bar on the right is the rows the step recomputed.</p>\n{}</body></html>\n",
        esc(&t.policy),
        esc(&t.policy),
        svg(t, cell)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_trace_and_draws_every_step() {
        let v = json!({"policy": "p.pol", "version": 1, "block_length": 2, "prompt_ids": [[1, 2]], "final_generated_ids": [[5, 6, 7, 8]],
            "steps": [{"query_positions": "all", "committed": [[[0, 5]]]}, {"query_positions": [[0, 3]], "committed": [[[1, 6], [2, 7]]]}]});
        let t = TraceView::from_json(&v, "t.json", 0).unwrap();
        assert_eq!((t.prompt_len, t.gen_length, t.steps.len()), (2, 4, 2));
        let svg = svg(&t, 10);
        assert_eq!(svg.matches(COMMITTED).count(), 3 + 1, "three committed cells and the legend");
        assert!(svg.contains("step 1: 2 rows"));
    }

    #[test]
    fn names_the_field_at_fault() {
        let bad = json!({"prompt_ids": [[1]], "final_generated_ids": [[2]], "steps": [{"query_positions": "all", "committed": [[["x", 1]]]}]});
        let e = TraceView::from_json(&bad, "t.json", 0).err().unwrap();
        assert!(e.starts_with("t.json: field `steps[0].committed`"), "{e}");
        let e = TraceView::from_json(&json!({"version": 9, "steps": []}), "t.json", 0).err().unwrap();
        assert!(e.contains("field `version`"), "{e}");
    }
}

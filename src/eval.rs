//! Exact-match accuracy of a compiled plan on a tasks file (one prompt and answer per line).
//!
//! Each prompt is decoded on its own (prompts differ in length and d2c does not pad), the
//! output is cut at the first EOS, and it counts as correct when its token ids equal the
//! tokenized answer's, so spacing differences in the text cannot hide or fake a match.

use crate::error::Result;
use crate::model::tokenizer::TextTokenizer;
use crate::model::DiffusionModel;
use crate::plan::Plan;
use crate::runtime::{generate, RunOptions, Stats};
use crate::train::tasks::Example;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EvalReport {
    pub total: usize,
    pub correct: usize,
    /// task kind -> (correct, total)
    pub per_task: BTreeMap<String, (usize, usize)>,
    pub forwards: usize,
    pub query_rows: usize,
    pub full_rows: usize,
    pub generated_tokens: usize,
    /// Layered (dLLM-Cache) forwards: rows recomputed summed over layers, and layers x rows.
    pub layer_rows: usize,
    pub layer_slots: usize,
    pub wall: Duration,
    pub model_time: Duration,
    pub policy_time: Duration,
    /// The first few wrong answers: (prompt, expected, got).
    pub mistakes: Vec<(String, String, String)>,
}

impl EvalReport {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }
    pub fn tokens_per_s(&self) -> f64 {
        self.generated_tokens as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    /// Rows recomputed per forward (layer-averaged for layered forwards).
    pub fn mean_rows_per_step(&self) -> f64 {
        self.full_rows as f64 * self.recompute_fraction() / self.forwards.max(1) as f64
    }
    pub fn recompute_fraction(&self) -> f64 {
        if self.layer_slots > 0 {
            return self.layer_rows as f64 / self.layer_slots as f64;
        }
        self.query_rows as f64 / self.full_rows.max(1) as f64
    }
    fn add(&mut self, s: &Stats) {
        self.forwards += s.forwards;
        self.query_rows += s.query_rows;
        self.full_rows += s.full_rows;
        self.generated_tokens += s.generated_tokens;
        self.layer_rows += s.layer_rows;
        self.layer_slots += s.layer_slots;
        self.wall += s.wall_time;
        self.model_time += s.model_time;
        self.policy_time += s.policy_time;
    }
}

/// The decoded answer: ids up to the first EOS (or the whole canvas).
pub fn answer_ids(generated: &[u32], eos: u32) -> &[u32] {
    let end = generated.iter().position(|&x| x == eos).unwrap_or(generated.len());
    &generated[..end]
}

/// Decode every example with `plan` and score exact matches.
pub fn evaluate<M: DiffusionModel>(model: &M, tok: &TextTokenizer, plan: &Plan, examples: &[Example]) -> Result<EvalReport> {
    let eos = model.info().eos_id;
    let mut r = EvalReport::default();
    for ex in examples {
        let prompt = tok.encode(&ex.prompt)?;
        let want = tok.encode(&ex.answer)?;
        let out = generate(model, plan, &[prompt], RunOptions::default())?;
        r.add(&out.stats);
        let got = answer_ids(&out.generated[0], eos);
        let ok = got == want.as_slice();
        r.total += 1;
        r.correct += ok as usize;
        let e = r.per_task.entry(if ex.task.is_empty() { "-".into() } else { ex.task.clone() }).or_default();
        e.0 += ok as usize;
        e.1 += 1;
        if !ok && r.mistakes.len() < 5 {
            r.mistakes.push((ex.prompt.clone(), ex.answer.clone(), tok.decode(got)?));
        }
    }
    Ok(r)
}

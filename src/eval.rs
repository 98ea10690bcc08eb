//! Exact-match accuracy of a compiled plan on a tasks file (one prompt and answer per line).
//!
//! Each prompt is decoded on its own (prompts differ in length and d2c does not pad), the
//! output is cut at the first EOS, and it counts as correct when its token ids equal the
//! tokenized answer's, so spacing differences in the text cannot hide or fake a match.

use crate::engine::{Engine, Prepared};
use crate::error::{Error, Result};
use crate::model::DiffusionModel;
use crate::runtime::{Progress, RunOptions, Stats};
use crate::train::tasks::Example;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EvalReport {
    pub total: usize,
    pub correct: usize,
    /// task kind -> (correct, total)
    pub per_task: BTreeMap<String, (usize, usize)>,
    /// task kind -> (answer tokens right at their position, answer tokens): partial credit,
    /// which tells "almost" from "nothing" where exact match says 0 for both.
    pub per_task_tokens: BTreeMap<String, (usize, usize)>,
    /// Decode statistics summed over every task.
    pub stats: Stats,
    /// Tasks where an EOS was committed while a position of the answer's span (the first
    /// `answer length` canvas positions) was still masked: the decoder settled the end of the
    /// text before the answer itself (plain confidence decoding's habit on padded canvases).
    pub eos_early: usize,
    /// Summed over tasks: the share of the answer's span still masked when the first EOS was
    /// committed (0 when the answer was complete first): how early, not just whether.
    pub eos_masked_share: f64,
    /// Tasks whose output has an EOS inside the answer's span: the answer was cut short.
    pub cut_short: usize,
    /// The first few wrong answers: (prompt, expected, got).
    pub mistakes: Vec<(String, String, String)>,
}

impl EvalReport {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    /// Share of answer tokens decoded right at their position, over every task.
    pub fn token_accuracy(&self) -> f64 {
        let (right, all) = self.per_task_tokens.values().fold((0, 0), |(r, a), (x, y)| (r + x, a + y));
        right as f64 / all.max(1) as f64
    }
}

/// The decoded answer: ids up to the first EOS (or the whole canvas).
pub fn answer_ids(generated: &[u32], eos: u32) -> &[u32] {
    let end = generated.iter().position(|&x| x == eos).unwrap_or(generated.len());
    &generated[..end]
}

/// Decode every example with a policy prepared for `engine` and score exact matches.
pub fn evaluate(engine: &Engine, prepared: &Prepared, examples: &[Example]) -> Result<EvalReport> {
    let tok = engine.tokenizer.as_deref().ok_or_else(|| Error::input(format!("{}: no tokenizer (eval needs text prompts)", engine.path.display())))?;
    let eos = engine.model.info().eos_id;
    let mut r = EvalReport::default();
    for ex in examples {
        let prompt = tok.encode(&ex.prompt)?;
        let want = tok.encode(&ex.answer)?;
        // The share of the answer's span still masked at the first step that committed an EOS.
        let first_eos: Rc<Cell<Option<f64>>> = Rc::new(Cell::new(None));
        let seen = first_eos.clone();
        let span = want.len();
        let watch = move |p: &Progress| {
            let c = &p.canvas[0];
            if seen.get().is_none() && c.contains(&eos) {
                let masked = c.iter().take(span).filter(|&&t| t == p.mask_id).count();
                seen.set(Some(masked as f64 / span.max(1) as f64));
            }
        };
        // Answers end at the model's EOS, as the tasks were written.
        let opts = RunOptions { on_step: Some(Box::new(watch)), stop_ids: vec![eos], ..RunOptions::default() };
        let out = engine.generate(prepared, &[prompt], opts)?;
        r.stats.absorb(&out.stats);
        let masked_at_eos = first_eos.get().unwrap_or(0.0);
        r.eos_early += (masked_at_eos > 0.0) as usize;
        r.eos_masked_share += masked_at_eos;
        r.cut_short += out.generated[0].iter().take(span).any(|&t| t == eos) as usize;
        let got = answer_ids(&out.generated[0], eos);
        let ok = got == want.as_slice();
        r.total += 1;
        r.correct += ok as usize;
        let kind = if ex.task.is_empty() { "-".to_string() } else { ex.task.clone() };
        let e = r.per_task.entry(kind.clone()).or_default();
        e.0 += ok as usize;
        e.1 += 1;
        let t = r.per_task_tokens.entry(kind).or_default();
        t.0 += want.iter().zip(&out.generated[0]).filter(|(a, b)| a == b).count();
        t.1 += want.len();
        if !ok && r.mistakes.len() < 5 {
            r.mistakes.push((ex.prompt.clone(), ex.answer.clone(), tok.decode(got)?));
        }
    }
    Ok(r)
}

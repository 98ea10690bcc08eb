//! The one place where a plan becomes executable: [`DecodeSettings::from_plan`] reads every
//! value the runtime will use, checks that it is folded to a constant of the right kind and in
//! range, and returns typed settings. Nothing after this step reads a [`Val`], so the runtime
//! has no fallbacks for values it did not expect.
//!
//! The plan (what the compiler proves and prints) and these settings (what the decoder runs)
//! have the same shape; a new policy primitive adds its variant to both, and the conversion
//! below is where its values are checked.

use super::commit::CommitCount;
use super::sampling::Sampling;
use super::token_freq::TokenFreq;
use crate::error::{Error, Result};
use crate::plan::{self, CommitRule, FullWhen, Needs, Plan, Quirk, RolloutMode, RowOp, Val};
use std::collections::BTreeSet;

/// A score expression with its constants in place (`if` is gone after folding).
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreExpr {
    Confidence,
    Margin,
    NegEntropy,
    CachedConfidence,
    Density {
        sigma: f64,
    },
    /// PC-Sampler's debiased confidence, clipped at `alpha`.
    Debias {
        alpha: f64,
        table: std::sync::Arc<TokenFreq>,
    },
    Const(f64),
    Mul(Box<ScoreExpr>, Box<ScoreExpr>),
    Add(Box<ScoreExpr>, Box<ScoreExpr>),
}

impl ScoreExpr {
    /// The part of the expression that reads this step's rows (the score kind, before any
    /// prior or constant): what a step records as a commit's score.
    pub fn base(&self) -> &ScoreExpr {
        match self {
            ScoreExpr::Mul(a, b) | ScoreExpr::Add(a, b) => {
                if a.reads_rows() {
                    a.base()
                } else {
                    b.base()
                }
            }
            other => other,
        }
    }

    /// True when the expression reads this step's row statistics (not only cached or
    /// positional values).
    pub fn reads_rows(&self) -> bool {
        match self {
            ScoreExpr::Confidence | ScoreExpr::Margin | ScoreExpr::NegEntropy | ScoreExpr::Debias { .. } => true,
            ScoreExpr::CachedConfidence | ScoreExpr::Density { .. } | ScoreExpr::Const(_) => false,
            ScoreExpr::Mul(a, b) | ScoreExpr::Add(a, b) => a.reads_rows() || b.reads_rows(),
        }
    }
}

/// When a step recomputes every row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FullAt {
    FirstStep,
    BlockStart,
    Every(usize),
}

/// Where a `masked top_k` rule looks for candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CandidateWindow {
    Block,
    Lookahead { k: usize },
    All,
}

/// How a rollout rule picks among the rows not selected yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    TopP(f64),
    TopK(usize),
    Above(f64),
}

/// One refresh rule (see [`crate::plan::RowOp`] for what each does).
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshRule {
    MaskedTopK { k: usize, score: ScoreExpr, window: CandidateWindow, prefer_block: bool },
    Committed,
    Rollout { pick: Pick, mode: RolloutMode },
    Block,
    Suffix,
    Prompt { every: usize },
    Inflate { w: usize },
}

/// The reference behaviours a plan turns on ([`Quirk`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuirkFlags(BTreeSet<Quirk>);

impl QuirkFlags {
    pub fn on(&self, q: Quirk) -> bool {
        self.0.contains(&q)
    }
}

/// dLLM-Cache's per-layer schedule (the `layers` section).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerSchedule {
    pub prompt_every: usize,
    pub response_every: usize,
    pub adaptive_ratio: f64,
    pub first_layer_full: bool,
}

/// Everything a decode reads from its plan, typed and checked.
#[derive(Debug, Clone)]
pub struct DecodeSettings {
    pub policy: String,
    pub gen: usize,
    pub block: usize,
    pub per_step: usize,
    pub stop_eos: bool,
    pub sampling: Sampling,
    pub seed: u64,
    pub commit: CommitCount,
    pub commit_score: ScoreExpr,
    pub full: Vec<FullAt>,
    pub rows: Vec<RefreshRule>,
    /// Shifted-logit models: refresh rules select the predecessor row of a position.
    pub shift_for_shifted_logits: bool,
    pub quirks: QuirkFlags,
    pub layers: Option<LayerSchedule>,
    pub needs: Needs,
}

impl DecodeSettings {
    pub fn from_plan(plan: &Plan) -> Result<DecodeSettings> {
        let s = &plan.schedule;
        let gen = count(&s.gen_length, "gen_length")?;
        let block = count(&s.block_length, "block_length")?;
        if gen == 0 || block == 0 || !gen.is_multiple_of(block) {
            return Err(Error::input(format!("gen_length {gen} must be a positive multiple of block_length {block}")));
        }
        let commit = match &plan.commit.rule {
            CommitRule::TopN { n } => CommitCount::TopN(count(n, "n")?),
            CommitRule::Threshold { threshold, min } => CommitCount::Threshold { threshold: num(threshold, "threshold")?, min: count(min, "min")? },
            CommitRule::Factor { factor, min } => CommitCount::Factor { factor: num(factor, "factor")?, min: count(min, "min")? },
            CommitRule::EntropyBounded { gamma, min } => CommitCount::EntropyBounded { gamma: num(gamma, "gamma")?, min: count(min, "min")? },
            CommitRule::KlStable { kl, history, above, min } => {
                let above = num(above, "above")?;
                let no_bound = above < 0.0 && plan.quirks.0.get(&Quirk::StablePathNeedsThreshold) == Some(&Val::Bool(true));
                // No score bound: the reference's preset never takes the stable path.
                CommitCount::KlStable { kl: num(kl, "kl")?, history: period(history, "history")?, above: (!no_bound).then_some(above), min: count(min, "min")? }
            }
        };
        Ok(DecodeSettings {
            policy: plan.policy.clone(),
            gen,
            block,
            per_step: count(&s.tokens_per_step, "tokens_per_step")?,
            stop_eos: flag(&s.stop_at_eos, "stop_at_eos")?,
            sampling: Sampling {
                temperature: num(&s.temperature, "temperature")?,
                top_k: count(&s.top_k, "top_k")?,
                top_p: num(&s.top_p, "top_p")?,
                never: None,
            },
            seed: count(&s.seed, "seed")? as u64,
            commit,
            commit_score: score(&plan.commit.score)?,
            full: plan.refresh.full.iter().map(|f| full_at(&f.when)).collect::<Result<_>>()?,
            rows: plan.refresh.rows.iter().map(|r| row_rule(&r.op)).collect::<Result<_>>()?,
            shift_for_shifted_logits: plan.refresh.shift_for_shifted_logits,
            quirks: QuirkFlags(
                plan.quirks.0.iter().filter(|(_, v)| v.as_bool() != Some(false)).map(|(&q, v)| flag(v, q.name()).map(|_| q)).collect::<Result<_>>()?,
            ),
            layers: plan.layers.as_ref().map(layer_schedule).transpose()?,
            needs: plan.needs.clone(),
        })
    }

    /// True when some steps recompute only selected rows.
    pub fn has_cache(&self) -> bool {
        !self.rows.is_empty()
    }

    /// True when a refresh rule ranks rows outside the current block by this step's row
    /// statistics, so every canvas row needs them after a forward.
    pub fn reads_outside_block(&self) -> bool {
        self.rows.iter().any(|r| match r {
            RefreshRule::MaskedTopK { score, window, .. } => !matches!(window, CandidateWindow::Block) && score.reads_rows(),
            _ => false,
        })
    }
}

fn not_folded(what: &str, want: &str, v: &Val) -> Error {
    Error::Other(format!("plan value `{what}` is not folded to {want} ({v:?}); the compiler's fold-constants pass did not run"))
}

fn num(v: &Val, what: &str) -> Result<f64> {
    v.as_f64().ok_or_else(|| not_folded(what, "a number", v))
}

fn count(v: &Val, what: &str) -> Result<usize> {
    v.as_usize().ok_or_else(|| not_folded(what, "a non-negative integer", v))
}

fn flag(v: &Val, what: &str) -> Result<bool> {
    v.as_bool().ok_or_else(|| not_folded(what, "a bool", v))
}

/// A count that is used as a period: 0 would divide by zero, and the checker rejects it.
fn period(v: &Val, what: &str) -> Result<usize> {
    match count(v, what)? {
        0 => Err(Error::input(format!("`{what}` must be at least 1"))),
        n => Ok(n),
    }
}

fn score(s: &plan::Score) -> Result<ScoreExpr> {
    Ok(match s {
        plan::Score::Confidence => ScoreExpr::Confidence,
        plan::Score::Margin => ScoreExpr::Margin,
        plan::Score::NegEntropy => ScoreExpr::NegEntropy,
        plan::Score::CachedConfidence => ScoreExpr::CachedConfidence,
        plan::Score::Density { sigma } => ScoreExpr::Density { sigma: num(sigma, "sigma")? },
        plan::Score::Const(v) => ScoreExpr::Const(num(v, "score constant")?),
        plan::Score::If { cond, .. } => return Err(not_folded("if condition", "a bool", cond)),
        plan::Score::Kind(v) => return Err(not_folded("score kind", "a resolved score", v)),
        plan::Score::Debias { alpha, table } => {
            let Val::Path(path) = table else { return Err(not_folded("debias table", "a file path", table)) };
            if path.is_empty() {
                return Err(Error::input("debias(...) needs a token-frequency file: --set token_freq=FILE (format: docs/policy-language.md)"));
            }
            ScoreExpr::Debias { alpha: num(alpha, "alpha")?, table: std::sync::Arc::new(TokenFreq::read(std::path::Path::new(path))?) }
        }
        plan::Score::Mul(a, b) => ScoreExpr::Mul(Box::new(score(a)?), Box::new(score(b)?)),
        plan::Score::Add(a, b) => ScoreExpr::Add(Box::new(score(a)?), Box::new(score(b)?)),
    })
}

fn full_at(w: &FullWhen) -> Result<FullAt> {
    Ok(match w {
        FullWhen::FirstStep => FullAt::FirstStep,
        FullWhen::BlockStart => FullAt::BlockStart,
        FullWhen::Every(n) => FullAt::Every(period(n, "full every")?),
    })
}

fn row_rule(op: &RowOp) -> Result<RefreshRule> {
    Ok(match op {
        RowOp::MaskedTopK { k, score: s, window, prefer_block } => {
            let window = match window {
                plan::Window::Block => CandidateWindow::Block,
                plan::Window::All => CandidateWindow::All,
                plan::Window::Lookahead { k } => CandidateWindow::Lookahead { k: count(k, "lookahead")? },
            };
            RefreshRule::MaskedTopK { k: count(k, "masked top_k")?, score: score(s)?, window, prefer_block: *prefer_block }
        }
        RowOp::Committed => RefreshRule::Committed,
        RowOp::Rollout { pick, mode } => {
            let pick = match pick {
                plan::RolloutPick::TopP(p) => Pick::TopP(num(p, "rollout top_p")?),
                plan::RolloutPick::TopK(k) => Pick::TopK(count(k, "rollout top_k")?),
                plan::RolloutPick::Above(t) => Pick::Above(num(t, "rollout above")?),
            };
            RefreshRule::Rollout { pick, mode: *mode }
        }
        RowOp::Block => RefreshRule::Block,
        RowOp::Suffix => RefreshRule::Suffix,
        RowOp::Prompt { every } => RefreshRule::Prompt { every: period(every, "prompt every")? },
        RowOp::Inflate { w } => RefreshRule::Inflate { w: count(w, "inflate")? },
    })
}

fn layer_schedule(l: &plan::Layers) -> Result<LayerSchedule> {
    Ok(LayerSchedule {
        prompt_every: period(&l.prompt_every, "prompt_every")?,
        response_every: period(&l.response_every, "response_every")?,
        adaptive_ratio: num(&l.adaptive_ratio, "adaptive_ratio")?,
        first_layer_full: flag(&l.first_layer_full, "first_layer_full")?,
    })
}

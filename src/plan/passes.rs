//! Named optimisation passes over a plan, run by a fixed-point driver.
//!
//! Each pass rewrites the plan in place and reports whether it changed anything; the driver
//! reruns the list until a full round changes nothing, calling an observer after every
//! change (this is what `d2c compile --explain` prints).

use super::{CommitRule, Needs, Plan, RolloutMode, RowOp, Score, Val};
use std::collections::BTreeMap;

pub trait Pass {
    fn name(&self) -> &'static str;
    fn describe(&self) -> &'static str;
    fn run(&self, plan: &mut Plan, values: &BTreeMap<String, Val>) -> bool;
}

/// Replace every parameter reference by its bound value.
pub struct FoldConstants;
/// Remove rules that cannot select anything once values are known (`inflate gaps(0)`).
pub struct DropNoopRules;
/// Simplify score arithmetic: `1 * x` -> `x`, constant products folded.
pub struct SimplifyScores;
/// Compute rollout importance as a row vector pushed backwards through the layers instead of
/// dense T x T matrix products.
pub struct RolloutVectorProduct;
/// Derive what the runtime must compute: attention rows only when a rule reads rollout,
/// certainty density only when a score uses it, a confidence cache only when read.
pub struct AnalyzeNeeds;

pub fn default_passes() -> Vec<Box<dyn Pass>> {
    vec![Box::new(FoldConstants), Box::new(DropNoopRules), Box::new(SimplifyScores), Box::new(RolloutVectorProduct), Box::new(AnalyzeNeeds)]
}

/// Run `passes` to a fixed point; `observe(pass, plan)` after each change.
pub fn optimize(mut plan: Plan, values: &BTreeMap<String, Val>, passes: &[Box<dyn Pass>], observe: &mut dyn FnMut(&dyn Pass, &Plan)) -> Plan {
    for _round in 0..16 {
        let mut changed = false;
        for p in passes {
            if p.run(&mut plan, values) {
                changed = true;
                observe(p.as_ref(), &plan);
            }
        }
        if !changed {
            break;
        }
    }
    plan
}

fn fold(v: &mut Val, values: &BTreeMap<String, Val>) -> bool {
    if let Val::Param(p) = v {
        if let Some(x) = values.get(&p.param) {
            *v = x.clone();
            return true;
        }
    }
    false
}

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold-constants"
    }
    fn describe(&self) -> &'static str {
        "replace parameter references by their bound values"
    }
    fn run(&self, plan: &mut Plan, values: &BTreeMap<String, Val>) -> bool {
        let mut c = false;
        plan.vals_mut(&mut |v| c |= fold(v, values));
        for (k, v) in plan.params.iter_mut() {
            if let Some(x) = values.get(k) {
                if v != x {
                    *v = x.clone();
                    c = true;
                }
            }
        }
        c
    }
}

impl Pass for DropNoopRules {
    fn name(&self) -> &'static str {
        "drop-noop-rules"
    }
    fn describe(&self) -> &'static str {
        "remove rules that select nothing for the bound values"
    }
    fn run(&self, plan: &mut Plan, _: &BTreeMap<String, Val>) -> bool {
        let before = plan.refresh.rows.len();
        plan.refresh.rows.retain(|r| !matches!(r.op, RowOp::Inflate { w: Val::Int(0) }));
        plan.refresh.rows.len() != before
    }
}

fn simplify(s: &mut Score) -> bool {
    let mut c = false;
    if let Score::Mul(a, b) | Score::Add(a, b) | Score::If { then: a, otherwise: b, .. } = s {
        c |= simplify(a) | simplify(b);
    }
    let replacement = match s {
        Score::If { cond: Val::Bool(c), then, otherwise } => Some(if *c { then.as_ref().clone() } else { otherwise.as_ref().clone() }),
        Score::Kind(Val::Kind(k)) => Some(k.score()),
        Score::Mul(a, b) => match (a.as_ref(), b.as_ref()) {
            (Score::Const(x), other) | (other, Score::Const(x)) if x.as_f64() == Some(1.0) => Some(other.clone()),
            (Score::Const(x), Score::Const(y)) => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => Some(Score::Const(Val::Float(x * y))),
                _ => None,
            },
            _ => None,
        },
        Score::Add(a, b) => match (a.as_ref(), b.as_ref()) {
            (Score::Const(x), other) | (other, Score::Const(x)) if x.as_f64() == Some(0.0) => Some(other.clone()),
            _ => None,
        },
        _ => None,
    };
    if let Some(r) = replacement {
        *s = r;
        c = true;
    }
    c
}

impl Pass for SimplifyScores {
    fn name(&self) -> &'static str {
        "simplify-scores"
    }
    fn describe(&self) -> &'static str {
        "resolve if(...) on bound conditions and score kinds of `score` parameters, fold constant score arithmetic"
    }
    fn run(&self, plan: &mut Plan, _: &BTreeMap<String, Val>) -> bool {
        let mut c = simplify(&mut plan.commit.score);
        for r in &mut plan.refresh.rows {
            if let RowOp::MaskedTopK { score, .. } = &mut r.op {
                c |= simplify(score);
            }
        }
        c
    }
}

impl Pass for RolloutVectorProduct {
    fn name(&self) -> &'static str {
        "rollout-vector-product"
    }
    fn describe(&self) -> &'static str {
        "rollout importance as 1^T M_L..M_1 over stored head-mean attention rows: O(L*rows*T) instead of O(L*T^3)"
    }
    fn run(&self, plan: &mut Plan, _: &BTreeMap<String, Val>) -> bool {
        let mut c = false;
        for r in &mut plan.refresh.rows {
            if let RowOp::Rollout { mode, .. } = &mut r.op {
                if *mode == RolloutMode::Dense {
                    *mode = RolloutMode::Vector;
                    c = true;
                }
            }
        }
        c
    }
}

impl Pass for AnalyzeNeeds {
    fn name(&self) -> &'static str {
        "analyze-needs"
    }
    fn describe(&self) -> &'static str {
        "skip attention output, rollout, density and the confidence cache where no rule reads them"
    }
    fn run(&self, plan: &mut Plan, _: &BTreeMap<String, Val>) -> bool {
        let mut scores: Vec<&Score> = vec![&plan.commit.score];
        let mut rollout = None;
        for r in &plan.refresh.rows {
            match &r.op {
                RowOp::MaskedTopK { score, .. } => scores.push(score),
                RowOp::Rollout { mode, .. } => rollout = Some(*mode),
                _ => {}
            }
        }
        let any = |f: fn(&Score) -> bool| scores.iter().any(|s| s.uses(f));
        let needs = Needs {
            attention_rows: rollout.is_some(),
            rollout,
            density: any(|s| matches!(s, Score::Density { .. })),
            confidence_cache: any(|s| matches!(s, Score::CachedConfidence)),
            margin: any(|s| matches!(s, Score::Margin)),
            entropy: any(|s| matches!(s, Score::NegEntropy)) || matches!(plan.commit.rule, CommitRule::EntropyBounded { .. }),
        };
        let changed = serde_json::to_string(&needs).ok() != serde_json::to_string(&plan.needs).ok();
        plan.needs = needs;
        changed
    }
}

//! Every value of a plan, visited in one place: passes that rewrite values (constant folding)
//! walk them through here instead of matching every op themselves, so a new op lists its
//! values once.

use super::{CommitRule, FullWhen, Plan, RolloutPick, RowOp, Score, Val, Window};

impl Score {
    /// Every value of the expression (sigma, constants, `if` conditions).
    pub fn vals_mut(&mut self, f: &mut dyn FnMut(&mut Val)) {
        match self {
            Score::Density { sigma } => f(sigma),
            Score::Const(v) | Score::Kind(v) => f(v),
            Score::Debias { alpha, table } => {
                f(alpha);
                f(table);
            }
            Score::If { cond, then, otherwise } => {
                f(cond);
                then.vals_mut(f);
                otherwise.vals_mut(f);
            }
            Score::Mul(a, b) | Score::Add(a, b) => {
                a.vals_mut(f);
                b.vals_mut(f);
            }
            Score::Confidence | Score::Margin | Score::NegEntropy | Score::CachedConfidence => {}
        }
    }
}

impl RowOp {
    /// Every value of the refresh rule, its scores' included.
    pub fn vals_mut(&mut self, f: &mut dyn FnMut(&mut Val)) {
        match self {
            RowOp::MaskedTopK { k, score, window, .. } => {
                f(k);
                score.vals_mut(f);
                if let Window::Lookahead { k } = window {
                    f(k);
                }
            }
            RowOp::Rollout { pick: RolloutPick::TopP(v) | RolloutPick::TopK(v) | RolloutPick::Above(v), .. } => f(v),
            RowOp::Prompt { every } => f(every),
            RowOp::Inflate { w } => f(w),
            RowOp::Committed | RowOp::Block | RowOp::Suffix => {}
        }
    }
}

impl CommitRule {
    pub fn vals_mut(&mut self, f: &mut dyn FnMut(&mut Val)) {
        match self {
            CommitRule::TopN { n } => f(n),
            CommitRule::Threshold { threshold, min } => {
                f(threshold);
                f(min);
            }
            CommitRule::Factor { factor, min } => {
                f(factor);
                f(min);
            }
            CommitRule::EntropyBounded { gamma, min } => {
                f(gamma);
                f(min);
            }
            CommitRule::KlStable { kl, history, above, min } => {
                f(kl);
                f(history);
                f(above);
                f(min);
            }
        }
    }
}

impl Plan {
    /// Every value the plan executes with (not the parameter table), in plan order.
    pub fn vals_mut(&mut self, f: &mut dyn FnMut(&mut Val)) {
        let s = &mut self.schedule;
        for v in
            [&mut s.gen_length, &mut s.block_length, &mut s.tokens_per_step, &mut s.stop_at_eos, &mut s.temperature, &mut s.top_k, &mut s.top_p, &mut s.seed]
        {
            f(v);
        }
        self.commit.rule.vals_mut(f);
        self.commit.score.vals_mut(f);
        for full in &mut self.refresh.full {
            if let FullWhen::Every(n) = &mut full.when {
                f(n);
            }
        }
        for r in &mut self.refresh.rows {
            r.op.vals_mut(f);
        }
        for v in self.quirks.0.values_mut() {
            f(v);
        }
        if let Some(l) = self.layers.as_mut() {
            for v in [&mut l.prompt_every, &mut l.response_every, &mut l.adaptive_ratio, &mut l.first_layer_full] {
                f(v);
            }
        }
    }
}

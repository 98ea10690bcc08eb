//! The rule statements of `decode` (how tokens are committed) and `cache` (which rows each
//! step recomputes), lowered to plan ops that keep their rule's span.

use super::{commit_of, default_commit_score, empty_refresh, Bound, Checker, Ty};
use crate::diag::{did_you_mean, Diagnostic};
use crate::plan::{Commit, CommitRule, FullRefresh, FullWhen, Refresh, RolloutMode, RolloutPick, RowOp, RowRule, Val, Window};
use crate::syntax::{Call, Expr, Part, Rule, Section, Stmt};

const CACHE_HEADS: &[&str] = &["full", "recompute", "inflate"];
const RECOMPUTE: &[&str] = &["masked", "committed", "rollout", "block", "suffix", "prompt"];

/// The pieces of a rule after its head, sorted by kind.
struct Parts<'r> {
    words: Vec<&'r crate::syntax::Ident>,
    calls: Vec<&'r Call>,
    clauses: Vec<(&'r str, &'r Expr, crate::syntax::Span)>,
}

fn split(r: &Rule) -> Parts<'_> {
    let mut p = Parts { words: vec![], calls: vec![], clauses: vec![] };
    for part in &r.parts {
        match part {
            Part::Word(w) => p.words.push(w),
            Part::Call(c) => p.calls.push(c),
            Part::Clause { keyword, value } => p.clauses.push((keyword.name.as_str(), value, keyword.span)),
            Part::Number { .. } => {}
        }
    }
    p
}

impl<'a> Checker<'a> {
    /// Report the rule's first part (the one the parser could not place) as unexpected.
    fn unexpected(&mut self, r: &Rule, allowed: &str) {
        if let Some(part) = r.parts.first() {
            let s = part.span();
            let text = crate::syntax::print::part(part);
            self.err(
                Diagnostic::error("E010", format!("unexpected `{text}` in `{}` rule", r.head.name), s, "not understood here").with_help(allowed.to_string()),
            );
        }
    }

    fn clause<'r>(&mut self, p: &Parts<'r>, kw: &str) -> Option<&'r Expr> {
        let mut found = p.clauses.iter().filter(|(k, _, _)| *k == kw);
        let first = found.next().map(|(_, e, _)| *e);
        if let Some((_, _, span)) = found.next() {
            self.err(Diagnostic::error("E006", format!("`{kw}` given twice in one rule"), *span, "second clause"));
        }
        first
    }

    pub(super) fn decode(&mut self, s: Option<&'a Section>, per_step: Val) -> Option<Commit> {
        let Some(s) = s else {
            if self.misspelt.contains("decode") {
                return None;
            }
            self.err(
                Diagnostic::error("E008", "missing `decode` section", self.file.name.span, "this policy never commits tokens")
                    .with_help("add `decode { commit top_n(tokens_per_step) by confidence within block }`"),
            );
            return None;
        };
        let assigns = self.assigns(s, &["score"]);
        let score = match assigns.get("score") {
            Some(e) => Some(self.score(e, false)?),
            None => None,
        };
        self.named_score = score.clone();
        let mut commit: Option<Commit> = None;
        let mut wrote_commit = false;
        for st in &s.stmts {
            let Stmt::Rule(r) = st else { continue };
            wrote_commit |= r.head.name == "commit";
            if r.head.name != "commit" {
                let h = did_you_mean(&r.head.name, ["commit"]).unwrap_or_else(|| "`decode` holds `score = ...` and one `commit` rule".into());
                self.err(Diagnostic::error("E003", format!("unknown rule `{}` in `decode`", r.head.name), r.head.span, "not a decode rule").with_help(h));
                continue;
            }
            if let Some(prev) = &commit {
                let line = prev.span.line;
                self.err(
                    Diagnostic::error("E009", "a policy has exactly one commit rule", r.span, "second commit rule")
                        .with_note(format!("the first is on line {line}"))
                        .with_help("combine them into one rule, e.g. threshold(0.9, min: 1)"),
                );
                continue;
            }
            if let Some(c) = self.commit_rule(r, score.clone(), per_step.clone()) {
                commit = Some(c);
            }
        }
        if commit.is_none() && !wrote_commit {
            self.err(
                Diagnostic::error("E008", "`decode` has no commit rule", s.name.span, "in this section")
                    .with_help("add `commit top_n(tokens_per_step) by score within block`"),
            );
        }
        commit
    }

    fn commit_rule(&mut self, r: &Rule, score: Option<crate::plan::Score>, per_step: Val) -> Option<Commit> {
        let p = split(r);
        let allowed = "write `commit top_n(N) | threshold(T, min: N) | factor(F, min: N) | entropy_bounded(GAMMA, min: N) | kl_stable(KL, history: H, above: T, min: N) [by SCORE] [within block]`";
        if !p.words.is_empty() || p.calls.len() != 1 {
            if p.calls.is_empty() {
                self.err(
                    Diagnostic::error("E010", "commit rule needs a count: top_n(..), threshold(..), factor(..) or entropy_bounded(..)", r.span, "no count")
                        .with_help(allowed),
                );
            } else {
                self.unexpected(r, allowed);
            }
            return None;
        }
        let c = p.calls[0];
        let rule = match c.name.name.as_str() {
            "top_n" => {
                let a = self.args(c, &["n"])?;
                CommitRule::TopN { n: self.bounded(&a[0], Ty::Int, "n", Bound::AtLeast(1.0))? }
            }
            "threshold" => {
                let a = self.args_opt(c, &["threshold", "min"], 1)?;
                let t = self.bounded(a[0].as_ref()?, Ty::Float, "threshold", Bound::Unit)?;
                let min = match &a[1] {
                    Some(e) => self.bounded(e, Ty::Int, "min", Bound::AtLeast(1.0))?,
                    None => per_step,
                };
                CommitRule::Threshold { threshold: t, min }
            }
            "factor" => {
                let a = self.args_opt(c, &["factor", "min"], 1)?;
                let f = self.bounded(a[0].as_ref()?, Ty::Float, "factor", Bound::Positive)?;
                let min = match &a[1] {
                    Some(e) => self.bounded(e, Ty::Int, "min", Bound::AtLeast(1.0))?,
                    None => per_step,
                };
                CommitRule::Factor { factor: f, min }
            }
            "entropy_bounded" => {
                let a = self.args_opt(c, &["gamma", "min"], 1)?;
                let gamma = self.bounded(a[0].as_ref()?, Ty::Float, "gamma", Bound::AtLeast(0.0))?;
                let min = match &a[1] {
                    Some(e) => self.bounded(e, Ty::Int, "min", Bound::AtLeast(1.0))?,
                    None => per_step,
                };
                CommitRule::EntropyBounded { gamma, min }
            }
            "kl_stable" => {
                let a = self.args_opt(c, &["kl", "history", "above", "min"], 1)?;
                let kl = self.bounded(a[0].as_ref()?, Ty::Float, "kl", Bound::Positive)?;
                let history = match &a[1] {
                    Some(e) => self.bounded(e, Ty::Int, "history", Bound::AtLeast(1.0))?,
                    None => Val::Int(2),
                };
                let above = match &a[2] {
                    Some(e) => self.value(e, Ty::Float, "above")?,
                    None => Val::Float(-1.0),
                };
                let min = match &a[3] {
                    Some(e) => self.bounded(e, Ty::Int, "min", Bound::AtLeast(1.0))?,
                    None => per_step,
                };
                CommitRule::KlStable { kl, history, above, min }
            }
            other => {
                let h = did_you_mean(other, ["top_n", "threshold", "factor", "entropy_bounded", "kl_stable"]).unwrap_or_else(|| allowed.into());
                self.err(Diagnostic::error("E003", format!("unknown commit count `{other}`"), c.name.span, "not a commit count").with_help(h));
                return None;
            }
        };
        for (k, e, span) in &p.clauses {
            match *k {
                "by" | "within" => {}
                _ => {
                    self.err(Diagnostic::error("E010", format!("`{k}` does not apply to a commit rule"), *span, "unexpected clause").with_help(allowed));
                    let _ = e;
                }
            }
        }
        if let Some(w) = self.clause(&p, "within") {
            if !matches!(w, Expr::Name(i) if i.name == "block") {
                self.err(
                    Diagnostic::error("E010", "commits happen within the current block", w.span(), "only `block` is supported")
                        .with_help("write `within block` or leave the clause out"),
                );
            }
        }
        let score = match self.clause(&p, "by") {
            Some(e) => self.score(e, false)?,
            None => default_commit_score(score),
        };
        Some(commit_of(rule, score, r.span))
    }

    pub(super) fn cache(&mut self, s: Option<&'a Section>) -> Option<Refresh> {
        let mut out = empty_refresh();
        let Some(s) = s else { return Some(out) };
        let a = self.assigns(s, &["shift_for_shifted_logits"]);
        if let Some(e) = a.get("shift_for_shifted_logits") {
            if let Some(Val::Bool(b)) = self.value(e, Ty::Bool, "shift_for_shifted_logits") {
                out.shift_for_shifted_logits = b;
            }
        }
        let mut ok = true;
        for st in &s.stmts {
            let Stmt::Rule(r) = st else { continue };
            match r.head.name.as_str() {
                "full" => match self.full_rule(r) {
                    Some(f) => out.full.push(f),
                    None => ok = false,
                },
                "recompute" | "inflate" => match self.row_rule(r) {
                    Some(op) => {
                        if out.rows.iter().any(|x| format!("{:?}", x.op) == format!("{op:?}")) {
                            self.err(Diagnostic::warning("W002", "this rule repeats an earlier one", r.span, "duplicate").with_help("remove one of the two"));
                        }
                        out.rows.push(RowRule { op, span: r.span });
                    }
                    None => ok = false,
                },
                other => {
                    ok = false;
                    let h = did_you_mean(other, CACHE_HEADS.iter().copied()).unwrap_or_else(|| "cache rules start with full, recompute or inflate".into());
                    self.err(Diagnostic::error("E003", format!("unknown cache rule `{other}`"), r.head.span, "not a cache rule").with_help(h));
                }
            }
        }
        if ok && out.rows.is_empty() && !out.full.is_empty() {
            self.err(
                Diagnostic::error("E009", "the cache refreshes fully on some steps but recomputes no rows on the others", s.name.span, "no `recompute` rule")
                    .with_help("add `recompute ...` rules, or remove the `cache` section for a no-cache policy"),
            );
        }
        if let Some(every1) = out.full.iter().find(|f| matches!(f.when, FullWhen::Every(Val::Int(1)))) {
            if !out.rows.is_empty() {
                self.err(Diagnostic::warning(
                    "W002",
                    "`full every 1` recomputes everything at every step, so no `recompute` rule ever runs",
                    every1.span,
                    "makes the row rules unreachable",
                ));
            }
        }
        if let (Some(first), Some(last)) = (out.rows.iter().position(|r| matches!(r.op, RowOp::Inflate { .. })), out.rows.len().checked_sub(1)) {
            if first != last {
                let span = out.rows[first].span;
                self.err(
                    Diagnostic::warning("W002", "`inflate` only fills gaps between rows chosen before it", span, "rules after this are not inflated")
                        .with_help("put `inflate` last"),
                );
            }
        }
        ok.then_some(out)
    }

    fn full_rule(&mut self, r: &Rule) -> Option<FullRefresh> {
        let p = split(r);
        let allowed = "write `full at first_step`, `full at block_start` or `full every N`";
        if !p.words.is_empty() || !p.calls.is_empty() || p.clauses.len() != 1 {
            self.err(Diagnostic::error("E010", "a `full` rule says when everything is recomputed", r.span, "not understood").with_help(allowed));
            return None;
        }
        let (kw, e, _) = p.clauses[0];
        let when = match (kw, e) {
            ("at", Expr::Name(i)) if i.name == "first_step" => FullWhen::FirstStep,
            ("at", Expr::Name(i)) if i.name == "block_start" => FullWhen::BlockStart,
            ("at", Expr::Name(i)) => {
                let h = did_you_mean(&i.name, ["first_step", "block_start"]).unwrap_or_else(|| allowed.into());
                self.err(Diagnostic::error("E003", format!("unknown moment `{}`", i.name), i.span, "not a moment").with_help(h));
                return None;
            }
            ("every", e) => FullWhen::Every(self.bounded(e, Ty::Int, "every", Bound::AtLeast(1.0))?),
            _ => {
                self.err(Diagnostic::error("E010", format!("`{kw}` does not apply to a `full` rule"), e.span(), "unexpected").with_help(allowed));
                return None;
            }
        };
        Some(FullRefresh { when, span: r.span })
    }

    fn row_rule(&mut self, r: &Rule) -> Option<RowOp> {
        let p = split(r);
        if r.head.name == "inflate" {
            let allowed = "write `inflate gaps(W)`";
            if p.calls.len() != 1 || p.calls[0].name.name != "gaps" || !p.words.is_empty() || !p.clauses.is_empty() {
                self.err(Diagnostic::error("E010", "`inflate` takes one `gaps(W)`", r.span, "not understood").with_help(allowed));
                return None;
            }
            let a = self.args(p.calls[0], &["w"])?;
            return Some(RowOp::Inflate { w: self.bounded(&a[0], Ty::Int, "w", Bound::AtLeast(0.0))? });
        }
        let Some(what) = p.words.first() else {
            self.err(
                Diagnostic::error("E010", "`recompute` needs to say which rows", r.span, "which rows?").with_help(format!("one of: {}", RECOMPUTE.join(", "))),
            );
            return None;
        };
        let simple = |ck: &mut Self, op: RowOp| -> Option<RowOp> {
            if p.words.len() > 1 || !p.calls.is_empty() || !p.clauses.is_empty() {
                ck.unexpected(r, &format!("`recompute {}` takes nothing more", what.name));
                return None;
            }
            Some(op)
        };
        match what.name.as_str() {
            "committed" => simple(self, RowOp::Committed),
            "block" => simple(self, RowOp::Block),
            "suffix" => simple(self, RowOp::Suffix),
            "prompt" => {
                let e = self.clause(&p, "every");
                match e {
                    Some(e) => Some(RowOp::Prompt { every: self.bounded(e, Ty::Int, "every", Bound::AtLeast(1.0))? }),
                    None => Some(RowOp::Prompt { every: Val::Int(1) }),
                }
            }
            "rollout" => {
                let allowed = "write `recompute rollout top_p(P) | top_k(K) | above(T)`";
                let Some(c) = p.calls.first() else {
                    self.err(Diagnostic::error("E010", "`recompute rollout` needs a pick", r.span, "no pick").with_help(allowed));
                    return None;
                };
                let a = self.args(c, &["value"])?;
                let pick = match c.name.name.as_str() {
                    "top_p" => RolloutPick::TopP(self.bounded(&a[0], Ty::Float, "top_p", Bound::Probability)?),
                    "top_k" => RolloutPick::TopK(self.bounded(&a[0], Ty::Int, "top_k", Bound::AtLeast(1.0))?),
                    "above" => RolloutPick::Above(self.bounded(&a[0], Ty::Float, "above", Bound::AtLeast(0.0))?),
                    other => {
                        let h = did_you_mean(other, ["top_p", "top_k", "above"]).unwrap_or_else(|| allowed.into());
                        self.err(Diagnostic::error("E003", format!("unknown rollout pick `{other}`"), c.name.span, "not a pick").with_help(h));
                        return None;
                    }
                };
                Some(RowOp::Rollout { pick, mode: RolloutMode::Dense })
            }
            "masked" => self.masked_rule(r, &p),
            other => {
                let h = did_you_mean(other, RECOMPUTE.iter().copied()).unwrap_or_else(|| format!("one of: {}", RECOMPUTE.join(", ")));
                self.err(Diagnostic::error("E003", format!("unknown row set `{other}`"), what.span, "not a row set").with_help(h));
                None
            }
        }
    }

    fn masked_rule(&mut self, r: &Rule, p: &Parts) -> Option<RowOp> {
        let allowed = "write `recompute masked top_k(K) by SCORE within block | all | lookahead(K) [prefer block]`";
        let Some(c) = p.calls.first().filter(|c| c.name.name == "top_k") else {
            self.err(Diagnostic::error("E010", "`recompute masked` needs `top_k(K)`", r.span, "how many?").with_help(allowed));
            return None;
        };
        let a = self.args(c, &["k"])?;
        let k = self.bounded(&a[0], Ty::Int, "k", Bound::AtLeast(1.0));
        let score = match self.clause(p, "by") {
            Some(e) => self.score(e, true),
            None => {
                self.err(Diagnostic::error("E008", "`recompute masked` needs `by SCORE`", r.span, "ranked by what?").with_help(allowed));
                None
            }
        };
        let window = match self.clause(p, "within") {
            None => Some(Window::Block),
            Some(Expr::Name(i)) if i.name == "block" => Some(Window::Block),
            Some(Expr::Name(i)) if i.name == "all" => Some(Window::All),
            Some(Expr::Call(w)) if w.name.name == "lookahead" => {
                let a = self.args(w, &["k"])?;
                self.bounded(&a[0], Ty::Int, "lookahead", Bound::AtLeast(1.0)).map(|k| Window::Lookahead { k })
            }
            Some(e) => {
                self.err(Diagnostic::error("E003", "unknown window", e.span(), "not a window").with_help("windows are block, all and lookahead(K)"));
                None
            }
        };
        let prefer_block = match self.clause(p, "prefer") {
            None => false,
            Some(Expr::Name(i)) if i.name == "block" => true,
            Some(e) => {
                self.err(Diagnostic::error("E010", "only `prefer block` is supported", e.span(), "unexpected").with_help(allowed));
                return None;
            }
        };
        if p.words.len() > 1 || p.calls.len() > 1 || p.clauses.iter().any(|(k, _, _)| !["by", "within", "prefer"].contains(k)) {
            self.unexpected(r, allowed);
            return None;
        }
        Some(RowOp::MaskedTopK { k: k?, score: score?, window: window?, prefer_block })
    }
}

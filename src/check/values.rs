//! Resolving expressions to typed plan values and score expressions.

use super::{Bound, Checker, Ty};
use crate::diag::{did_you_mean, Diagnostic};
use crate::plan::{Score, Val};
use crate::syntax::{BinOp, Call, Expr};

pub const SCORES: &[&str] = &["confidence", "margin", "neg_entropy", "cached_confidence"];

impl Checker<'_> {
    /// A value of type `want`: a literal or a parameter of a compatible type.
    pub fn value(&mut self, e: &Expr, want: Ty, what: &str) -> Option<Val> {
        match (e, want) {
            (Expr::Number { value, text, span }, Ty::Int) => {
                if value.fract() != 0.0 || text.contains('.') || text.contains('e') {
                    self.err(Diagnostic::error("E004", format!("`{what}` must be an integer, found `{text}`"), *span, "not an integer"));
                    None
                } else {
                    Some(Val::Int(*value as i64))
                }
            }
            (Expr::Number { value, .. }, Ty::Float) => Some(Val::Float(*value)),
            (Expr::Bool { value, .. }, Ty::Bool) => Some(Val::Bool(*value)),
            (Expr::Name(id), _) => match self.params.get(&id.name).map(|p| p.ty) {
                Some(ty) if ty == want || (ty == Ty::Int && want == Ty::Float) => {
                    self.used.insert(id.name.clone());
                    Some(Val::param(&id.name))
                }
                Some(ty) => {
                    self.used.insert(id.name.clone());
                    self.err(Diagnostic::error(
                        "E004",
                        format!("`{what}` expects {}, but parameter `{}` is {}", want.article(), id.name, ty.article()),
                        id.span,
                        format!("this is {}", ty.name()),
                    ));
                    None
                }
                None => {
                    let names: Vec<String> = self.params.keys().cloned().collect();
                    let mut d = Diagnostic::error("E003", format!("unknown parameter `{}`", id.name), id.span, "not declared");
                    d = match did_you_mean(&id.name, names.iter().map(|s| s.as_str())) {
                        Some(h) => d.with_help(h),
                        None => d.with_help(format!("declare it: `param {}: {} = ...`", id.name, want.name())),
                    };
                    self.err(d);
                    None
                }
            },
            _ => {
                self.err(Diagnostic::error("E004", format!("`{what}` expects {}", want.article()), e.span(), format!("expected {}", want.name())));
                None
            }
        }
    }

    /// A value with a range constraint checked once parameters are bound.
    pub fn bounded(&mut self, e: &Expr, want: Ty, what: &str, bound: Bound) -> Option<Val> {
        let v = self.value(e, want, what)?;
        self.constrain(v.clone(), bound, e.span(), what);
        Some(v)
    }

    pub fn score(&mut self, e: &Expr, allow_cached: bool) -> Option<Score> {
        match e {
            Expr::Name(id) => match id.name.as_str() {
                "confidence" => Some(Score::Confidence),
                "margin" => Some(Score::Margin),
                "neg_entropy" | "certainty" => Some(Score::NegEntropy),
                "cached_confidence" if allow_cached => Some(Score::CachedConfidence),
                "score" if self.named_score.is_some() => self.named_score.clone(),
                "cached_confidence" => {
                    self.err(
                        Diagnostic::error("E004", "`cached_confidence` is only available in cache rules", id.span, "not available here")
                            .with_help("commit rules see this step's fresh `confidence`"),
                    );
                    None
                }
                name if self.params.get(name).is_some_and(|p| p.ty == Ty::Score) => self.value(e, Ty::Score, name).map(Score::Kind),
                name if self.params.contains_key(name) => self.value(e, Ty::Float, name).map(Score::Const),
                name => {
                    let cands: Vec<String> = SCORES.iter().map(|s| s.to_string()).chain(self.params.keys().cloned()).chain(["density".to_string()]).collect();
                    let mut d = Diagnostic::error("E003", format!("unknown score `{name}`"), id.span, "not a score");
                    d = d.with_help(
                        did_you_mean(name, cands.iter().map(|s| s.as_str()))
                            .unwrap_or_else(|| format!("scores are {}, density(sigma), numbers and float parameters", SCORES.join(", "))),
                    );
                    self.err(d);
                    None
                }
            },
            Expr::Number { value, .. } => Some(Score::Const(Val::Float(*value))),
            Expr::Call(c) => self.score_call(c, allow_cached),
            Expr::Binary { op, lhs, rhs, .. } => {
                let (a, b) = (self.score(lhs, allow_cached), self.score(rhs, allow_cached));
                let (a, b) = (Box::new(a?), Box::new(b?));
                Some(match op {
                    BinOp::Mul => Score::Mul(a, b),
                    BinOp::Add => Score::Add(a, b),
                })
            }
            other => {
                self.err(Diagnostic::error("E004", "expected a score expression", other.span(), "not a score"));
                None
            }
        }
    }

    fn score_call(&mut self, c: &Call, allow_cached: bool) -> Option<Score> {
        if c.name.name == "if" {
            let a = self.args(c, &["cond", "then", "else"])?;
            let cond = self.value(&a[0], Ty::Bool, "if condition");
            let (then, otherwise) = (self.score(&a[1], allow_cached), self.score(&a[2], allow_cached));
            return Some(Score::If { cond: cond?, then: Box::new(then?), otherwise: Box::new(otherwise?) });
        }
        if c.name.name == "debias" {
            let a = self.args(c, &["alpha", "table"])?;
            let alpha = self.bounded(&a[0], Ty::Float, "alpha", Bound::Positive);
            let table = self.value(&a[1], Ty::File, "table");
            return Some(Score::Debias { alpha: alpha?, table: table? });
        }
        if c.name.name != "density" {
            let d = Diagnostic::error("E003", format!("unknown score function `{}`", c.name.name), c.name.span, "not a function");
            let h = did_you_mean(&c.name.name, ["density", "if", "debias"])
                .unwrap_or_else(|| "score functions are `density(sigma)`, `debias(alpha, table)` and `if(cond, a, b)`".into());
            self.err(d.with_help(h));
            return None;
        }
        let sigma = self.args(c, &["sigma"])?.remove(0);
        let v = self.bounded(&sigma, Ty::Float, "sigma", Bound::Positive)?;
        Some(Score::Density { sigma: v })
    }

    /// Positional-or-named arguments of a call, in the order of `names`; all required.
    pub fn args(&mut self, c: &Call, names: &[&str]) -> Option<Vec<Expr>> {
        self.args_opt(c, names, names.len()).map(|v| v.into_iter().map(|x| x.unwrap_or(Expr::Bool { value: false, span: c.span })).collect())
    }

    /// Like [`Self::args`], with the arguments after the first `required` optional.
    pub fn args_opt(&mut self, c: &Call, names: &[&str], required: usize) -> Option<Vec<Option<Expr>>> {
        let mut out: Vec<Option<Expr>> = vec![None; names.len()];
        let sig = format!(
            "{}({})",
            c.name.name,
            names.iter().enumerate().map(|(i, n)| if i < required { n.to_string() } else { format!("{n}: ..") }).collect::<Vec<_>>().join(", ")
        );
        for (i, a) in c.args.iter().enumerate() {
            let slot = match &a.name {
                Some(n) => match names.iter().position(|x| *x == n.name) {
                    Some(k) => k,
                    None => {
                        let h = did_you_mean(&n.name, names.iter().copied()).unwrap_or_else(|| format!("the signature is `{sig}`"));
                        self.err(Diagnostic::error("E010", format!("`{}` has no argument `{}`", c.name.name, n.name), n.span, "unknown argument").with_help(h));
                        return None;
                    }
                },
                None => i,
            };
            if slot >= names.len() {
                self.err(
                    Diagnostic::error("E010", format!("too many arguments to `{}`", c.name.name), a.value.span(), "extra argument")
                        .with_help(format!("the signature is `{sig}`")),
                );
                return None;
            }
            out[slot] = Some(a.value.clone());
        }
        if let Some(missing) = (0..required).find(|&i| out[i].is_none()) {
            self.err(
                Diagnostic::error("E010", format!("`{}` needs the argument `{}`", c.name.name, names[missing]), c.span, "missing argument")
                    .with_help(format!("the signature is `{sig}`")),
            );
            return None;
        }
        Some(out)
    }
}

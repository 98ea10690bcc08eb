//! Binding parameter values (defaults, then `--set name=value`) and checking the range
//! constraints the checker recorded against them.

use crate::check::{Bound, Checked, Constraint, Ty};
use crate::diag::{did_you_mean, Diagnostic};
use crate::plan::Val;
use crate::source::Span;
use std::collections::{BTreeMap, BTreeSet};

pub struct Bindings {
    pub values: BTreeMap<String, Val>,
    /// Parameters whose value came from `--set`.
    pub overridden: BTreeSet<String>,
}

/// Defaults overridden by `sets` (`name=value` strings). Errors are E011 diagnostics with no
/// source span (they come from the command line).
pub fn bind(checked: &Checked, sets: &[String]) -> Result<Bindings, Vec<Diagnostic>> {
    let mut values: BTreeMap<String, Val> = checked.params.iter().map(|(k, p)| (k.clone(), p.default.clone())).collect();
    let mut overridden = BTreeSet::new();
    let mut errs = Vec::new();
    for s in sets {
        let Some((name, raw)) = s.split_once('=') else {
            errs.push(Diagnostic::error("E011", format!("--set `{s}` is not of the form name=value"), Span::default(), ""));
            continue;
        };
        let (name, raw) = (name.trim(), raw.trim());
        let Some(p) = checked.params.get(name) else {
            let mut d = Diagnostic::error("E011", format!("--set: this policy has no parameter `{name}`"), Span::default(), "");
            let names: Vec<&str> = checked.params.keys().map(|s| s.as_str()).collect();
            d = d.with_help(did_you_mean(name, names.iter().copied()).unwrap_or_else(|| format!("parameters: {}", names.join(", "))));
            errs.push(d);
            continue;
        };
        let v = match p.ty {
            Ty::Int => raw.parse::<i64>().ok().map(Val::Int),
            Ty::Float => raw.parse::<f64>().ok().filter(|x| x.is_finite()).map(Val::Float),
            Ty::Bool => raw.parse::<bool>().ok().map(Val::Bool),
            Ty::Score => crate::plan::ScoreKind::named(raw).map(Val::Kind),
            Ty::File => Some(Val::Path(raw.to_string())),
        };
        match v {
            Some(v) => {
                values.insert(name.to_string(), v);
                overridden.insert(name.to_string());
            }
            None => {
                errs.push(Diagnostic::error("E011", format!("--set {name}={raw}: `{name}` takes {}, `{raw}` is not one", p.ty.article()), Span::default(), ""))
            }
        }
    }
    if errs.is_empty() {
        Ok(Bindings { values, overridden })
    } else {
        Err(errs)
    }
}

fn resolve<'a>(v: &'a Val, b: &'a Bindings) -> (Option<f64>, Option<&'a str>) {
    match v {
        Val::Param(p) => (b.values.get(&p.param).and_then(|x| x.as_f64()), Some(p.param.as_str())),
        other => (other.as_f64(), None),
    }
}

fn origin(checked: &Checked, b: &Bindings, name: Option<&str>, value: f64) -> Option<String> {
    let name = name?;
    Some(if b.overridden.contains(name) {
        format!("`{name}` = {value} (from --set)")
    } else {
        let line = checked.params.get(name).map_or(0, |p| p.span.line);
        format!("`{name}` = {value} (its default, declared on line {line})")
    })
}

/// Range and divisibility diagnostics (E005, E007) for the bound values.
pub fn validate(checked: &Checked, b: &Bindings) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &checked.constraints {
        match c {
            Constraint::Range { val, bound, span, what } => {
                let (Some(x), name) = resolve(val, b) else { continue };
                let (ok, want) = match bound {
                    Bound::Positive => (x > 0.0, "> 0".to_string()),
                    Bound::AtLeast(n) => (x >= *n, format!(">= {n}")),
                    Bound::Probability => (x > 0.0 && x <= 1.0, "in (0, 1]".to_string()),
                    Bound::Unit => ((0.0..=1.0).contains(&x), "in [0, 1]".to_string()),
                };
                if !ok {
                    let mut d = Diagnostic::error("E005", format!("`{what}` must be {want}, but it is {x}"), *span, format!("must be {want}"));
                    if let Some(o) = origin(checked, b, name, x) {
                        d = d.with_note(o);
                    }
                    out.push(d.with_help(format!("choose a value {want}")));
                }
            }
            Constraint::Divides { gen, block, span } => {
                let ((Some(g), gn), (Some(bl), bn)) = (resolve(gen, b), resolve(block, b)) else { continue };
                if bl >= 1.0 && g >= 1.0 && (g as i64) % (bl as i64) != 0 {
                    let mut d = Diagnostic::error("E007", format!("block_length {bl} does not divide gen_length {g}"), *span, "must divide gen_length");
                    for o in [origin(checked, b, gn, g), origin(checked, b, bn, bl)].into_iter().flatten() {
                        d = d.with_note(o);
                    }
                    out.push(d.with_help("pick a block_length that divides gen_length (the d2cache preset uses block_length = gen_length)"));
                }
            }
        }
    }
    out
}

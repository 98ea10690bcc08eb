//! Checking a parsed policy: names, types, ranges and rule consistency, with every problem
//! collected at once; a policy without errors is lowered to an (unfolded) [`Plan`].
//!
//! Range checks depend on parameter values, which `--set` may change, so they are recorded as
//! [`Constraint`]s and evaluated by [`bind`] for whatever values are bound.

pub mod bind;
mod rules;
mod values;

use crate::diag::{did_you_mean, Diagnostic};
use crate::plan::{Commit, CommitRule, Layers, Needs, Plan, Quirk, Quirks, Refresh, Schedule, Score, ScoreKind, Val};
use crate::syntax::{Expr, PolicyFile, Section, Span, Stmt};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ty {
    Int,
    Float,
    Bool,
    /// A score kind: `confidence`, `margin` or `entropy`.
    Score,
    /// A file path (`--set name=PATH`).
    File,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Int => "int",
            Ty::Float => "float",
            Ty::Bool => "bool",
            Ty::Score => "score",
            Ty::File => "file",
        }
    }
    fn article(self) -> String {
        match self {
            Ty::Int => "an int".into(),
            Ty::Float => "a float".into(),
            Ty::Bool => "a bool".into(),
            Ty::Score => "a score kind (confidence, margin, entropy)".into(),
            Ty::File => "a file path".into(),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ParamInfo {
    pub name: String,
    pub ty: Ty,
    pub default: Val,
    pub doc: Option<String>,
    #[serde(skip)]
    pub span: Span,
}

/// A range a value must satisfy once parameters are bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// > 0
    Positive,
    /// >= n
    AtLeast(f64),
    /// 0 < x <= 1
    Probability,
    /// 0 <= x <= 1
    Unit,
}

#[derive(Debug, Clone)]
pub enum Constraint {
    Range {
        val: Val,
        bound: Bound,
        span: Span,
        what: String,
    },
    /// `block` must divide `gen`.
    Divides {
        gen: Val,
        block: Val,
        span: Span,
    },
}

pub struct Checked {
    pub plan: Option<Plan>,
    pub params: BTreeMap<String, ParamInfo>,
    pub constraints: Vec<Constraint>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.is_error())
    }
}

pub(crate) struct Checker<'a> {
    file: &'a PolicyFile,
    params: BTreeMap<String, ParamInfo>,
    used: HashSet<String>,
    diags: Vec<Diagnostic>,
    constraints: Vec<Constraint>,
    /// The `score = ...` of `decode`, which rules may refer to as `score`.
    named_score: Option<Score>,
    /// Sections reported as misspelt (E002 with a did-you-mean), so that their absence is not
    /// reported a second time as E008.
    misspelt: HashSet<&'static str>,
}

const SECTIONS: &[&str] = &["schedule", "decode", "cache", "layers", "quirks"];

impl<'a> Checker<'a> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
    fn constrain(&mut self, val: Val, bound: Bound, span: Span, what: &str) {
        self.constraints.push(Constraint::Range { val, bound, span, what: what.to_string() });
    }

    fn declare_params(&mut self) {
        for p in &self.file.params {
            let ty = match p.ty.name.as_str() {
                "int" => Ty::Int,
                "float" => Ty::Float,
                "bool" => Ty::Bool,
                "score" => Ty::Score,
                "file" => Ty::File,
                other => {
                    let h = did_you_mean(other, ["int", "float", "bool", "score", "file"])
                        .unwrap_or_else(|| "parameter types are int, float, bool, score and file".into());
                    self.err(Diagnostic::error("E003", format!("unknown type `{other}`"), p.ty.span, "not a type").with_help(h));
                    continue;
                }
            };
            if let Some(prev) = self.params.get(&p.name.name) {
                let line = prev.span.line;
                self.err(
                    Diagnostic::error("E006", format!("parameter `{}` is declared twice", p.name.name), p.name.span, "second declaration")
                        .with_note(format!("first declared on line {line}")),
                );
                continue;
            }
            let default = match (&p.default, ty) {
                (Expr::Number { value, text, .. }, Ty::Int) if value.fract() == 0.0 && !text.contains('.') => Some(Val::Int(*value as i64)),
                (Expr::Number { value, .. }, Ty::Float) => Some(Val::Float(*value)),
                (Expr::Bool { value, .. }, Ty::Bool) => Some(Val::Bool(*value)),
                (Expr::Name(id), Ty::Score) if ScoreKind::named(&id.name).is_some() => ScoreKind::named(&id.name).map(Val::Kind),
                (Expr::Str { value, .. }, Ty::File) => Some(Val::Path(value.clone())),
                (e, _) => {
                    self.err(Diagnostic::error(
                        "E004",
                        format!("default of `{}` is not {}", p.name.name, ty.article()),
                        e.span(),
                        format!("expected {}", ty.name()),
                    ));
                    None
                }
            };
            if let Some(default) = default {
                self.params.insert(p.name.name.clone(), ParamInfo { name: p.name.name.clone(), ty, default, doc: p.doc.clone(), span: p.name.span });
            }
        }
    }

    fn sections(&mut self) -> BTreeMap<&'static str, &'a Section> {
        let mut seen: BTreeMap<&'static str, &'a Section> = BTreeMap::new();
        for s in &self.file.sections {
            match SECTIONS.iter().find(|k| **k == s.name.name) {
                Some(k) => {
                    if let Some(prev) = seen.get(k) {
                        let line = prev.span.line;
                        self.err(
                            Diagnostic::error("E006", format!("section `{k}` appears twice"), s.name.span, "second section")
                                .with_note(format!("first on line {line}"))
                                .with_help("merge the two sections"),
                        );
                    } else {
                        seen.insert(k, s);
                    }
                }
                None => {
                    let mut d = Diagnostic::error("E002", format!("unknown section `{}`", s.name.name), s.name.span, "not a section");
                    if let Some(k) = SECTIONS.iter().find(|k| did_you_mean(&s.name.name, [**k]).is_some()) {
                        self.misspelt.insert(k);
                    }
                    d = d.with_help(did_you_mean(&s.name.name, SECTIONS.iter().copied()).unwrap_or_else(|| format!("sections are {}", SECTIONS.join(", "))));
                    self.err(d);
                }
            }
        }
        seen
    }

    /// `name = value` statements of a section, each key at most once.
    fn assigns(&mut self, s: &'a Section, keys: &[&str]) -> BTreeMap<String, &'a Expr> {
        let mut out = BTreeMap::new();
        for st in &s.stmts {
            match st {
                Stmt::Assign { name, value, .. } if keys.contains(&name.name.as_str()) => {
                    if out.insert(name.name.clone(), value).is_some() {
                        self.err(Diagnostic::error("E006", format!("`{}` is set twice in `{}`", name.name, s.name.name), name.span, "set again here"));
                    }
                }
                Stmt::Assign { name, .. } => {
                    let h = did_you_mean(&name.name, keys.iter().copied()).unwrap_or_else(|| format!("`{}` accepts {}", s.name.name, keys.join(", ")));
                    self.err(
                        Diagnostic::error("E003", format!("unknown setting `{}` in `{}`", name.name, s.name.name), name.span, "not a setting here")
                            .with_help(h),
                    );
                }
                Stmt::Rule(_) => {}
            }
        }
        out
    }

    fn schedule(&mut self, s: Option<&'a Section>) -> Option<Schedule> {
        const KEYS: &[&str] = &["gen_length", "block_length", "tokens_per_step", "stop_at_eos", "temperature", "top_k", "top_p", "seed"];
        let Some(s) = s else {
            if self.misspelt.contains("schedule") {
                return None;
            }
            self.err(
                Diagnostic::error("E008", "missing `schedule` section", self.file.name.span, "this policy has no schedule")
                    .with_help("add `schedule { gen_length = gen_length  block_length = block_length }`"),
            );
            return None;
        };
        for st in &s.stmts {
            if let Stmt::Rule(r) = st {
                self.err(Diagnostic::error("E010", "`schedule` holds settings (`name = value`), not rules", r.span, "not a setting"));
            }
        }
        let a = self.assigns(s, KEYS);
        let get = |ck: &mut Self, key: &str, ty: Ty, bound: Option<Bound>, default: Option<Val>| -> Option<Val> {
            match a.get(key) {
                Some(e) => match bound {
                    Some(b) => ck.bounded(e, ty, key, b),
                    None => ck.value(e, ty, key),
                },
                None => {
                    if default.is_none() {
                        ck.err(
                            Diagnostic::error("E008", format!("`schedule` must set `{key}`"), s.name.span, "in this section")
                                .with_help(format!("add `{key} = {key}` and declare `param {key}: int = ...`")),
                        );
                    }
                    default
                }
            }
        };
        let gen = get(self, "gen_length", Ty::Int, Some(Bound::AtLeast(1.0)), None);
        let block = get(self, "block_length", Ty::Int, Some(Bound::AtLeast(1.0)), None);
        let per = get(self, "tokens_per_step", Ty::Int, Some(Bound::AtLeast(1.0)), Some(Val::Int(1)));
        let eos = get(self, "stop_at_eos", Ty::Bool, None, Some(Val::Bool(false)));
        let temp = get(self, "temperature", Ty::Float, Some(Bound::AtLeast(0.0)), Some(Val::Float(0.0)));
        let top_k = get(self, "top_k", Ty::Int, Some(Bound::AtLeast(0.0)), Some(Val::Int(0)));
        let top_p = get(self, "top_p", Ty::Float, Some(Bound::Probability), Some(Val::Float(1.0)));
        let seed = get(self, "seed", Ty::Int, Some(Bound::AtLeast(0.0)), Some(Val::Int(0)));
        if let (Some(g), Some(b)) = (&gen, &block) {
            let span = a.get("block_length").map(|e| e.span()).unwrap_or(s.name.span);
            self.constraints.push(Constraint::Divides { gen: g.clone(), block: b.clone(), span });
        }
        Some(Schedule {
            gen_length: gen?,
            block_length: block?,
            tokens_per_step: per?,
            stop_at_eos: eos?,
            temperature: temp?,
            top_k: top_k?,
            top_p: top_p?,
            seed: seed?,
        })
    }

    fn quirks(&mut self, s: Option<&'a Section>, has_cache: bool) -> Quirks {
        let keys: Vec<&str> = Quirk::ALL.iter().map(|q| q.name()).collect();
        let mut q = Quirks::default();
        let Some(s) = s else { return q };
        let a = self.assigns(s, &keys);
        for (k, e) in a {
            let Some(v) = self.value(e, Ty::Bool, &k) else { continue };
            if !has_cache && matches!(v, Val::Bool(true)) && Quirk::named(&k).is_some_and(|q| q.needs_cache()) {
                self.err(
                    Diagnostic::warning("W002", format!("quirk `{k}` has no effect without a cache"), e.span(), "no effect")
                        .with_help("remove it, or add a `cache` section"),
                );
            }
            if let Some(quirk) = Quirk::named(&k) {
                q.0.insert(quirk, v);
            }
        }
        q
    }
}

impl<'a> Checker<'a> {
    fn layers(&mut self, s: Option<&'a Section>, has_cache: bool) -> Option<Layers> {
        const KEYS: &[&str] = &["prompt_every", "response_every", "adaptive_ratio", "first_layer_full"];
        let s = s?;
        for st in &s.stmts {
            if let Stmt::Rule(r) = st {
                self.err(
                    Diagnostic::error("E010", "`layers` holds settings (`name = value`), not rules", r.span, "not a setting")
                        .with_help("e.g. `response_every = kr`"),
                );
            }
        }
        if has_cache {
            self.err(
                Diagnostic::error(
                    "E009",
                    "a policy either selects rows per step (`cache`) or per layer (`layers`), not both",
                    s.name.span,
                    "second cache mechanism",
                )
                .with_help("keep one of the two sections"),
            );
        }
        let a = self.assigns(s, KEYS);
        let mut get = |key: &str, ty: Ty, bound: Option<Bound>, default: Option<Val>| -> Option<Val> {
            match (a.get(key), bound) {
                (Some(e), Some(b)) => self.bounded(e, ty, key, b),
                (Some(e), None) => self.value(e, ty, key),
                (None, _) if default.is_some() => default,
                (None, _) => {
                    self.err(
                        Diagnostic::error("E008", format!("`layers` must set `{key}`"), s.name.span, "in this section").with_help(format!("add `{key} = ...`")),
                    );
                    None
                }
            }
        };
        let prompt_every = get("prompt_every", Ty::Int, Some(Bound::AtLeast(1.0)), None);
        let response_every = get("response_every", Ty::Int, Some(Bound::AtLeast(1.0)), None);
        let adaptive_ratio = get("adaptive_ratio", Ty::Float, Some(Bound::Unit), Some(Val::Float(0.0)));
        let first_layer_full = get("first_layer_full", Ty::Bool, None, Some(Val::Bool(true)));
        Some(Layers {
            prompt_every: prompt_every?,
            response_every: response_every?,
            adaptive_ratio: adaptive_ratio?,
            first_layer_full: first_layer_full?,
            span: s.name.span,
        })
    }
}

/// Check `file` and lower it to a plan if it has no errors.
pub fn check(file: &PolicyFile) -> Checked {
    let mut ck = Checker {
        file,
        params: BTreeMap::new(),
        used: HashSet::new(),
        diags: Vec::new(),
        constraints: Vec::new(),
        named_score: None,
        misspelt: HashSet::new(),
    };
    ck.declare_params();
    let secs = ck.sections();
    let schedule = ck.schedule(secs.get("schedule").copied());
    let per_step = schedule.as_ref().map(|s| s.tokens_per_step.clone()).unwrap_or(Val::Int(1));
    let commit = ck.decode(secs.get("decode").copied(), per_step);
    let refresh = ck.cache(secs.get("cache").copied());
    let has_cache = refresh.as_ref().is_some_and(|r| !r.rows.is_empty());
    let layers = ck.layers(secs.get("layers").copied(), has_cache);
    let quirks = ck.quirks(secs.get("quirks").copied(), has_cache);
    for p in &file.params {
        if ck.params.contains_key(&p.name.name) && !ck.used.contains(&p.name.name) {
            ck.diags.push(
                Diagnostic::warning("W001", format!("parameter `{}` is never used", p.name.name), p.name.span, "unused")
                    .with_help("remove it, or use it in a rule"),
            );
        }
    }
    let errors = ck.diags.iter().any(|d| d.is_error());
    let plan = match (schedule, commit, refresh, errors) {
        (Some(schedule), Some(commit), Some(refresh), false) => Some(Plan {
            policy: file.name.name.clone(),
            description: file.doc.clone(),
            params: ck.params.iter().map(|(k, p)| (k.clone(), p.default.clone())).collect(),
            schedule,
            commit,
            refresh,
            quirks,
            layers,
            needs: Needs::default(),
        }),
        _ => None,
    };
    ck.diags.sort_by_key(|d| (d.span.start, d.code));
    Checked { plan, params: ck.params, constraints: ck.constraints, diagnostics: ck.diags }
}

/// Default commit when `decode` gives none is not assumed: a policy must say how it commits.
pub(crate) fn default_commit_score(score: Option<Score>) -> Score {
    score.unwrap_or(Score::Confidence)
}

pub(crate) fn empty_refresh() -> Refresh {
    Refresh { full: Vec::new(), rows: Vec::new(), shift_for_shifted_logits: true }
}

pub(crate) fn commit_of(rule: CommitRule, score: Score, span: Span) -> Commit {
    Commit { rule, score, span }
}

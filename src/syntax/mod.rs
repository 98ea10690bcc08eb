//! Parsing `.pol` source into the [`ast`], with spans on every node.
//!
//! The pest grammar lives in `grammar/policy.pest`; this module only walks the pest pairs.
//! [`print`] writes an AST back as canonical source (used by the round-trip tests).

pub mod ast;
pub mod print;

pub use ast::*;
pub use print::print;

use crate::diag::Diagnostic;
use pest::iterators::Pair;
use pest::Parser;

mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/policy.pest"]
    pub struct PolicyParser;
}
use grammar::{PolicyParser, Rule as G};

fn span_of(p: &Pair<G>) -> Span {
    let s = p.as_span();
    let (line, col) = s.start_pos().line_col();
    Span { start: s.start(), end: s.end(), line, col }
}

fn ident(p: Pair<G>) -> Ident {
    Ident { name: p.as_str().to_string(), span: span_of(&p) }
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').to_string()
}

/// Parse a policy file. A syntax error is returned as one diagnostic (code E001).
pub fn parse(src: &str) -> Result<PolicyFile, Box<Diagnostic>> {
    let mut pairs = PolicyParser::parse(G::file, src).map_err(|e| Box::new(syntax_error(src, e)))?;
    let file = pairs.next().ok_or_else(|| Box::new(Diagnostic::error("E001", "empty policy file", Span::default(), "")))?;
    let mut name = None;
    let mut doc = None;
    let mut params = Vec::new();
    let mut sections = Vec::new();
    for item in file.into_inner() {
        match item.as_rule() {
            G::header => {
                let mut it = item.into_inner();
                if let Some(n) = it.next() {
                    let sp = span_of(&n);
                    name = Some(Ident { name: unquote(n.as_str()), span: sp });
                }
                doc = it.next().map(|d| unquote(d.as_str()));
            }
            G::param => params.push(param(item)),
            G::section => sections.push(section(item)),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| Box::new(Diagnostic::error("E001", "missing `policy NAME` header", Span::default(), "")))?;
    Ok(PolicyFile { name, doc, params, sections })
}

fn param(p: Pair<G>) -> Param {
    let span = span_of(&p);
    let mut it = p.into_inner();
    let mut next = || it.next();
    let name = next().map(ident);
    let ty = next().map(ident);
    let default = next().map(expr_atom);
    let doc = next().map(|d| unquote(d.as_str()));
    Param {
        name: name.unwrap_or_else(|| Ident { name: String::new(), span }),
        ty: ty.unwrap_or_else(|| Ident { name: String::new(), span }),
        default: default.unwrap_or(Expr::Bool { value: false, span }),
        doc,
        span,
    }
}

fn section(p: Pair<G>) -> Section {
    let span = span_of(&p);
    let mut it = p.into_inner();
    let name = it.next().map(ident).unwrap_or_else(|| Ident { name: String::new(), span });
    let stmts = it
        .map(|s| match s.as_rule() {
            G::assign => {
                let span = span_of(&s);
                let mut i = s.into_inner();
                let name = i.next().map(ident).unwrap_or_else(|| Ident { name: String::new(), span });
                let value = i.next().map(expr).unwrap_or(Expr::Bool { value: false, span });
                Stmt::Assign { name, value, span }
            }
            _ => {
                let span = span_of(&s);
                let mut i = s.into_inner();
                let head = i.next().map(ident).unwrap_or_else(|| Ident { name: String::new(), span });
                Stmt::Rule(ast::Rule { head, parts: i.map(part).collect(), span })
            }
        })
        .collect();
    Section { name, stmts, span }
}

fn part(p: Pair<G>) -> Part {
    let span = span_of(&p);
    match p.as_rule() {
        G::clause => {
            let mut i = p.into_inner();
            let keyword = i.next().map(ident).unwrap_or_else(|| Ident { name: String::new(), span });
            let value = i.next().map(expr).unwrap_or(Expr::Bool { value: false, span });
            Part::Clause { keyword, value }
        }
        G::call => Part::Call(call(p)),
        G::number => Part::Number { value: p.as_str().parse().unwrap_or(f64::NAN), text: p.as_str().into(), span },
        _ => Part::Word(ident(p)),
    }
}

fn call(p: Pair<G>) -> Call {
    let span = span_of(&p);
    let mut it = p.into_inner();
    let name = it.next().map(ident).unwrap_or_else(|| Ident { name: String::new(), span });
    let args = it
        .map(|a| {
            let inner: Vec<Pair<G>> = a.into_inner().collect();
            match inner.len() {
                2 => {
                    let mut i = inner.into_iter();
                    let n = i.next().map(ident);
                    Arg { name: n, value: i.next().map(expr).unwrap_or(Expr::Bool { value: false, span }) }
                }
                _ => Arg { name: None, value: inner.into_iter().next().map(expr).unwrap_or(Expr::Bool { value: false, span }) },
            }
        })
        .collect();
    Call { name, args, span }
}

fn expr(p: Pair<G>) -> Expr {
    if p.as_rule() != G::expr {
        return expr_atom(p);
    }
    let mut it = p.into_inner();
    let mut lhs = match it.next() {
        Some(t) => expr_atom(t),
        None => return Expr::Bool { value: false, span: Span::default() },
    };
    // `*` binds tighter than `+`: collect terms of sums of products.
    let mut sum: Vec<Expr> = Vec::new();
    while let (Some(op), Some(t)) = (it.next(), it.next()) {
        let rhs = expr_atom(t);
        if op.as_str() == "*" {
            let span = Span { end: rhs.span().end, ..lhs.span() };
            lhs = Expr::Binary { op: BinOp::Mul, lhs: Box::new(lhs), rhs: Box::new(rhs), span };
        } else {
            sum.push(lhs);
            lhs = rhs;
        }
    }
    sum.push(lhs);
    let mut acc = sum.remove(0);
    for r in sum {
        let span = Span { end: r.span().end, ..acc.span() };
        acc = Expr::Binary { op: BinOp::Add, lhs: Box::new(acc), rhs: Box::new(r), span };
    }
    acc
}

fn expr_atom(p: Pair<G>) -> Expr {
    let span = span_of(&p);
    match p.as_rule() {
        G::expr => expr(p),
        G::call => Expr::Call(call(p)),
        G::number => Expr::Number { value: p.as_str().parse().unwrap_or(f64::NAN), text: p.as_str().into(), span },
        G::boolean => Expr::Bool { value: p.as_str() == "true", span },
        G::string => Expr::Str { value: unquote(p.as_str()), span },
        _ => Expr::Name(ident(p)),
    }
}

fn rule_name(r: &G) -> String {
    match r {
        G::ident => "a name".into(),
        G::number => "a number".into(),
        G::boolean => "true or false".into(),
        G::string => "a \"string\"".into(),
        G::expr | G::call | G::arg => "an expression".into(),
        G::keyword | G::clause => "a clause (by, within, at, every, prefer)".into(),
        G::op => "an operator (* or +)".into(),
        G::section => "a section `name { ... }`".into(),
        G::param => "a `param NAME: TYPE = VALUE` declaration".into(),
        G::header => "the header `policy NAME`".into(),
        G::assign => "an assignment `name = value`".into(),
        G::rule => "a rule".into(),
        G::EOI => "end of file".into(),
        other => format!("{other:?}"),
    }
}

fn syntax_error(src: &str, e: pest::error::Error<G>) -> Diagnostic {
    let (start, end) = match e.location {
        pest::error::InputLocation::Pos(p) => (p, (p + 1).min(src.len())),
        pest::error::InputLocation::Span((a, b)) => (a, b),
    };
    let (line, col) = match e.line_col {
        pest::error::LineColLocation::Pos(lc) | pest::error::LineColLocation::Span(lc, _) => lc,
    };
    let span = Span { start, end: end.max(start), line, col };
    let (msg, label) = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, negatives } => {
            let mut want: Vec<String> = positives.iter().map(rule_name).collect();
            want.dedup();
            let found = src[start..].chars().next().map_or("end of file".to_string(), |c| match c {
                '\n' => "end of line".into(),
                c => format!("`{c}`"),
            });
            let label = if want.is_empty() {
                format!("unexpected {}", negatives.iter().map(rule_name).collect::<Vec<_>>().join(", "))
            } else {
                format!("expected {}", want.join(" or "))
            };
            (format!("syntax error: unexpected {found}"), label)
        }
        pest::error::ErrorVariant::CustomError { message } => (message.clone(), String::new()),
    };
    Diagnostic::error("E001", msg, span, label)
        .with_help("statements are `name = value` or rules like `commit top_n(1) by confidence within block`, one per line")
}

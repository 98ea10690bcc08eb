//! Canonical source text of an AST (one statement per line, two-space indent).

use super::ast::*;

pub fn print(f: &PolicyFile) -> String {
    let mut out = format!("policy {}", f.name.name);
    if let Some(d) = &f.doc {
        out += &format!(" \"{d}\"");
    }
    out.push('\n');
    for p in &f.params {
        out += &format!("param {}: {} = {}", p.name.name, p.ty.name, expr(&p.default));
        if let Some(d) = &p.doc {
            out += &format!(" \"{d}\"");
        }
        out.push('\n');
    }
    for s in &f.sections {
        out += &format!("{} {{\n", s.name.name);
        for st in &s.stmts {
            match st {
                Stmt::Assign { name, value, .. } => out += &format!("  {} = {}\n", name.name, expr(value)),
                Stmt::Rule(r) => {
                    out += &format!("  {}", r.head.name);
                    for p in &r.parts {
                        out.push(' ');
                        out += &part(p);
                    }
                    out.push('\n');
                }
            }
        }
        out += "}\n";
    }
    out
}

fn call(c: &Call) -> String {
    let args: Vec<String> = c
        .args
        .iter()
        .map(|a| match &a.name {
            Some(n) => format!("{}: {}", n.name, expr(&a.value)),
            None => expr(&a.value),
        })
        .collect();
    format!("{}({})", c.name.name, args.join(", "))
}

pub fn expr(e: &Expr) -> String {
    match e {
        Expr::Number { text, .. } => text.clone(),
        Expr::Bool { value, .. } => value.to_string(),
        Expr::Str { value, .. } => format!("\"{value}\""),
        Expr::Name(i) => i.name.clone(),
        Expr::Call(c) => call(c),
        Expr::Binary { op: BinOp::Mul, lhs, rhs, .. } => format!("{} * {}", paren(lhs), paren(rhs)),
        Expr::Binary { op: BinOp::Add, lhs, rhs, .. } => format!("{} + {}", expr(lhs), expr(rhs)),
    }
}

fn paren(e: &Expr) -> String {
    match e {
        Expr::Binary { op: BinOp::Add, .. } => format!("({})", expr(e)),
        _ => expr(e),
    }
}

pub fn part(p: &Part) -> String {
    match p {
        Part::Word(i) => i.name.clone(),
        Part::Call(c) => call(c),
        Part::Number { text, .. } => text.clone(),
        Part::Clause { keyword, value } => format!("{} {}", keyword.name, expr(value)),
    }
}

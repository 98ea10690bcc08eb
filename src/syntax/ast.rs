//! The policy AST. Every node carries the [`Span`] it was parsed from.

pub use crate::source::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFile {
    pub name: Ident,
    pub doc: Option<String>,
    pub params: Vec<Param>,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: Ident,
    pub default: Expr,
    pub doc: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub name: Ident,
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Assign { name: Ident, value: Expr, span: Span },
    Rule(Rule),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub head: Ident,
    pub parts: Vec<Part>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Word(Ident),
    Call(Call),
    Number { value: f64, text: String, span: Span },
    Clause { keyword: Ident, value: Expr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Mul,
    Add,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number { value: f64, text: String, span: Span },
    Bool { value: bool, span: Span },
    Str { value: String, span: Span },
    Name(Ident),
    Call(Call),
    Binary { op: BinOp, lhs: Box<Expr>, rhs: Box<Expr>, span: Span },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Number { span, .. } | Expr::Bool { span, .. } | Expr::Str { span, .. } | Expr::Binary { span, .. } => *span,
            Expr::Name(i) => i.span,
            Expr::Call(c) => c.span,
        }
    }
}

impl Part {
    pub fn span(&self) -> Span {
        match self {
            Part::Word(i) => i.span,
            Part::Call(c) => c.span,
            Part::Number { span, .. } => *span,
            Part::Clause { keyword, value } => Span { end: value.span().end, ..keyword.span },
        }
    }
}

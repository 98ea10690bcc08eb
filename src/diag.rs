//! Policy diagnostics: stable codes, a primary span with a label, a help hint and notes.
//! Rendered once, rustc-style, through codespan-reporting (code and message, file:line:col,
//! the source line with the span underlined), or as JSON.
//!
//! Codes (stable; documented in the README):
//! E001 syntax, E002 unknown section, E003 unknown name, E004 type mismatch, E005 value out of
//! range, E006 duplicate, E007 block_length does not divide gen_length, E008 missing required
//! statement, E009 contradictory or unreachable rules, E010 bad arguments, E011 bad --set;
//! W001 unused parameter, W002 rule without effect.

use crate::source::Span;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    #[serde(skip)]
    pub span: Span,
    pub label: String,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic { code, severity: Severity::Error, message: message.into(), span, label: label.into(), help: None, notes: Vec::new() }
    }
    pub fn warning(code: &'static str, message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Self::error(code, message, span, label) }
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Human rendering, once, the way rustc prints: `error[E003]: message` on the first line,
/// then `file:line:col`, the source excerpt with the label under the span, notes and help.
/// Colour (ANSI) only when `color` (stderr is a terminal); snapshots use none.
pub fn render(d: &Diagnostic, file: &str, src: &str, color: bool) -> String {
    use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
    use codespan_reporting::files::SimpleFile;
    use codespan_reporting::term;

    let files = SimpleFile::new(file, src);
    let end = d.span.end.max(d.span.start + 1).min(src.len().max(d.span.start));
    let start = d.span.start.min(end);
    let report = match d.severity {
        Severity::Error => Report::error(),
        Severity::Warning => Report::warning(),
    }
    .with_code(d.code)
    .with_message(&d.message)
    .with_labels(vec![Label::primary((), start..end).with_message(&d.label)])
    .with_notes(d.notes.iter().map(|n| format!("note: {n}")).chain(d.help.iter().map(|h| format!("help: {h}"))).collect());
    let config = term::Config::default();
    let mut out = String::new();
    if color {
        let mut buf = term::termcolor::Buffer::ansi();
        if term::emit_to_write_style(&mut buf, &config, &files, &report).is_ok() {
            return String::from_utf8_lossy(buf.as_slice()).into_owned();
        }
    }
    if term::emit_to_string(&mut out, &config, &files, &report).is_err() {
        // A span outside the file (never produced by the parser): the head line alone.
        out = format!("{}[{}]: {}: {}:{}:{}\n", if d.is_error() { "error" } else { "warning" }, d.code, d.message, file, d.span.line, d.span.col);
    }
    out
}

/// Machine rendering, one object per diagnostic.
pub fn to_json(d: &Diagnostic, file: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    v["file"] = serde_json::json!(file);
    v["line"] = serde_json::json!(d.span.line);
    v["col"] = serde_json::json!(d.span.col);
    v["span"] = serde_json::json!({"start": d.span.start, "end": d.span.end});
    v
}

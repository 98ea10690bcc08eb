//! Policy diagnostics: stable codes, a primary span with a label, a help hint and notes.
//! Rendered through miette (file:line:col, the source line, a caret) or as JSON.
//!
//! Codes (stable; documented in the README):
//! E001 syntax, E002 unknown section, E003 unknown name, E004 type mismatch, E005 value out of
//! range, E006 duplicate, E007 block_length does not divide gen_length, E008 missing required
//! statement, E009 contradictory or unreachable rules, E010 bad arguments, E011 bad --set;
//! W001 unused parameter, W002 rule without effect.

use crate::syntax::Span;
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

struct Report<'a> {
    d: &'a Diagnostic,
    src: miette::NamedSource<String>,
}

impl std::fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.d.message)
    }
}
impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.d.message)
    }
}
impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(self.d.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        let mut parts: Vec<String> = self.d.notes.iter().map(|n| format!("note: {n}")).collect();
        if let Some(h) = &self.d.help {
            parts.push(h.clone());
        }
        (!parts.is_empty()).then(|| Box::new(parts.join("\n")) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let s = self.d.span;
        let label = (!self.d.label.is_empty()).then(|| self.d.label.clone());
        Some(Box::new(std::iter::once(miette::LabeledSpan::new(label, s.start, s.end.saturating_sub(s.start).max(1)))))
    }
}

/// Human rendering: `file:line:col`, the source line, a caret and the help, without colour
/// (stable for snapshots) unless `color`.
pub fn render(d: &Diagnostic, file: &str, src: &str, color: bool) -> String {
    let theme = if color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(110).with_links(false);
    let report = Report { d, src: miette::NamedSource::new(file, src.to_string()) };
    let mut out = String::new();
    let head = format!("{}: {}:{}:{}: {}\n", match d.severity { Severity::Error => "error", Severity::Warning => "warning" }, file, d.span.line, d.span.col, d.message);
    out.push_str(&head);
    let _ = handler.render_report(&mut out, &report);
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

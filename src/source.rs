//! Where policy text comes from: the [`Source`] of a file and the [`Span`] of every node in it.
//!
//! A leaf: the parser, the diagnostics and the plan all point into sources, and none of them
//! needs the others to do so.

use serde::Serialize;

/// A policy source and where it came from (for diagnostics).
pub struct Source {
    pub path: String,
    pub text: String,
}

impl Source {
    pub fn read(path: &str) -> std::io::Result<Source> {
        Ok(Source { path: path.to_string(), text: std::fs::read_to_string(path)? })
    }
}

/// A byte range of the source plus the 1-based line and column of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub col: usize,
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}:{}", self.line, self.col))
    }
}

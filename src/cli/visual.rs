//! `d2c run --visual`: the canvas filling in live on a terminal — masked slots as `_`,
//! tokens appearing where they are committed (bold green on the step that commits them), the
//! rows the step recomputed in reverse video — redrawn in place after every step. Not used
//! when stdout is not a terminal; on a narrow one, tokens wrap and long ones are cut.

use d2c::model::tokenizer::TextTokenizer;
use d2c::runtime::Progress;
use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

pub struct Visual {
    tok: Option<Arc<TextTokenizer>>,
    term: console::Term,
    /// Lines drawn last time, to move back over.
    lines: usize,
    prev: Vec<u32>,
}

impl Visual {
    /// None when stdout is not a terminal (the caller prints plain output instead).
    pub fn new(tok: Option<Arc<TextTokenizer>>) -> Option<Self> {
        let term = console::Term::stdout();
        term.is_term().then(|| Visual { tok, term, lines: 0, prev: Vec::new() })
    }

    fn text(&self, id: u32) -> String {
        let raw = match &self.tok {
            Some(t) => t.piece(id),
            None => id.to_string(),
        };
        let s: String = raw.chars().map(|c| if c == '\n' { '⏎' } else { c }).filter(|c| !c.is_control()).collect();
        let s = s.trim().to_string();
        if s.is_empty() {
            "·".into()
        } else {
            s
        }
    }

    /// Redraw the first sequence's canvas after a step.
    pub fn draw(&mut self, p: &Progress) {
        let Some(canvas) = p.canvas.first() else { return };
        let (rows, cols) = self.term.size();
        let width = (cols as usize).max(1);
        let max_lines = (rows as usize).saturating_sub(2).max(2);
        let fresh: Option<HashSet<usize>> = p.recomputed.map(|r| r.first().into_iter().flatten().filter_map(|&x| x.checked_sub(p.prompt_len)).collect());
        let n_fresh = fresh.as_ref().map_or(p.prompt_len + canvas.len(), |f| f.len());
        let mut lines: Vec<String> = Vec::new();
        let (mut cur, mut cur_w) = (String::new(), 0usize);
        for (i, &t) in canvas.iter().enumerate() {
            let masked = t == p.mask_id;
            let text: String = if masked { "_".into() } else { self.text(t) }.chars().take(width).collect();
            let w = text.chars().count();
            if cur_w > 0 && cur_w + 1 + w > width {
                lines.push(std::mem::take(&mut cur));
                cur_w = 0;
            }
            if cur_w > 0 {
                cur.push(' ');
                cur_w += 1;
            }
            let new = !masked && self.prev.get(i).is_none_or(|&x| x == p.mask_id);
            let style = match (new, fresh.as_ref().is_none_or(|f| f.contains(&i)), masked) {
                (true, _, _) => "\x1b[1;32m",
                (_, true, _) => "\x1b[7m",
                (_, _, true) => "\x1b[2m",
                _ => "",
            };
            cur.push_str(style);
            cur.push_str(&text);
            if !style.is_empty() {
                cur.push_str("\x1b[0m");
            }
            cur_w += w;
        }
        lines.push(cur);
        if lines.len() > max_lines - 1 {
            let more = lines.len() - (max_lines - 2);
            lines.truncate(max_lines - 2);
            lines.push(format!("… {more} more line(s)"));
        }
        let head: String =
            format!("step {} · {}/{} committed · {} rows recomputed", p.steps, p.committed, p.canvas_size, n_fresh).chars().take(width).collect();
        let mut out = std::io::stdout().lock();
        if self.lines > 0 {
            // Back to the first line drawn last time, and clear everything below.
            let _ = write!(out, "\x1b[{}F\x1b[J", self.lines);
        }
        let _ = writeln!(out, "\x1b[1m{head}\x1b[0m");
        for l in &lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
        self.lines = lines.len() + 1;
        self.prev = canvas.clone();
    }
}

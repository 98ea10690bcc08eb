//! The README and the manual: every relative link resolves (files, and `#anchors` to headings
//! of the linked page), and the README stays a front page.

use std::path::{Path, PathBuf};

fn pages() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("README.md"), PathBuf::from("CHANGELOG.md")];
    let mut docs: Vec<PathBuf> =
        std::fs::read_dir("docs").expect("docs/").map(|e| e.expect("entry").path()).filter(|p| p.extension().is_some_and(|x| x == "md")).collect();
    docs.sort();
    v.extend(docs);
    v
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut in_code = false;
    text.lines()
        .filter(|line| {
            if line.starts_with("```") {
                in_code = !in_code;
                return false;
            }
            !in_code
        })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    prose(text).into_iter().filter(|l| l.starts_with('#')).map(|l| anchor(l.trim_start_matches('#'))).collect()
}

/// The targets of `[text](target)` and `![alt](target)` outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page reads");
        let dir = page.parent().unwrap_or(Path::new("."));
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, frag) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() { page.clone() } else { dir.join(file) };
            if !target.exists() {
                broken.push(format!("{}: {link} (no {})", page.display(), target.display()));
                continue;
            }
            if !frag.is_empty() && target.extension().is_some_and(|x| x == "md") {
                let t = std::fs::read_to_string(&target).expect("target reads");
                if !anchors(&t).iter().any(|a| a == frag) {
                    broken.push(format!("{}: {link} (no heading #{frag})", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_sees_a_broken_link() {
    assert_eq!(links("see [x](docs/nope.md) and ![y](a.svg)\n```\n[z](in-code.md)\n```"), vec!["docs/nope.md", "a.svg"]);
    assert_eq!(anchors("## Quantized weights and GGUF (8B models)\n```\n# not a heading\n```"), vec!["quantized-weights-and-gguf-8b-models"]);
}

#[test]
fn readme_is_a_front_page_with_the_two_commands_first() {
    let text = std::fs::read_to_string("README.md").expect("README");
    let lines = text.lines().count();
    assert!(lines <= 160, "README has {lines} lines; the manual belongs in docs/");
    let first_code = text.split("```sh").nth(1).expect("a shell block");
    assert!(first_code.contains("cargo run --release -- run") && first_code.contains("cargo test --release"), "{first_code}");
    let ci = std::fs::read_to_string(".ci/run").expect(".ci/run");
    assert!(ci.contains("cargo test --release"), ".ci/run runs the README's test command");
}

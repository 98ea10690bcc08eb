//! Every diagnostic class, from a folder of invalid policies (one file per class, the expected
//! error noted on its first line), snapshotted as the user sees it.

use d2c::compile::{diagnostics, Source};
use d2c::diag::render;

fn rendered(path: &str) -> (String, Vec<&'static str>) {
    let src = Source::read(path).expect("fixture");
    let ds = diagnostics(&src, &[]);
    let text: String = ds.iter().map(|d| render(d, path, &src.text, false)).collect();
    (text, ds.iter().map(|d| d.code).collect())
}

#[test]
fn every_invalid_fixture_reports_its_expected_code() {
    let mut seen = 0;
    insta::glob!("../invalid", "*.pol", |f| {
        seen += 1;
        let path = crate::support::relative(f);
        let src = std::fs::read_to_string(f).unwrap();
        let expected = src.lines().next().unwrap().trim_start_matches("# expect: ").split_whitespace().next().unwrap().to_string();
        let (text, codes) = rendered(&path);
        assert!(codes.iter().any(|c| *c == expected), "{path}: expected {expected}, got {codes:?}\n{text}");
        // file:line:col and a caret line are always shown
        assert!(text.contains(&format!("{path}:")), "{text}");
        insta::assert_snapshot!("rendered", text);
    });
    assert!(seen >= 12, "{seen} invalid fixtures");
}

#[test]
fn typo_gets_line_col_and_did_you_mean() {
    let (text, codes) = rendered("tests/invalid/e003_unknown_score.pol");
    assert_eq!(codes, vec!["E003"]);
    assert!(text.contains("tests/invalid/e003_unknown_score.pol:8:22"), "{text}");
    assert!(text.contains("did you mean `confidence`?"), "{text}");
}

#[test]
fn all_errors_are_collected_at_once() {
    let (_, codes) = rendered("tests/invalid/e005_range.pol");
    assert_eq!(codes.iter().filter(|c| **c == "E005").count(), 2, "{codes:?}");
    let (_, codes) = rendered("tests/invalid/e009_contradiction.pol");
    assert!(codes.iter().filter(|c| **c == "E009").count() >= 2, "{codes:?}");
}

#[test]
fn set_values_are_range_checked_too() {
    let src = Source::read("policies/d2cache.pol").unwrap();
    let ds = diagnostics(&src, &["rollout_p=0".into(), "block_length=100".into()]);
    let codes: Vec<_> = ds.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"E005") && codes.contains(&"E007"), "{codes:?}");
    assert!(ds.iter().any(|d| d.notes.iter().any(|n| n.contains("from --set"))));
    let ds = diagnostics(&src, &["curent_k=3".into()]);
    assert_eq!(ds[0].code, "E011");
    assert_eq!(ds[0].help.as_deref(), Some("did you mean `current_k`?"));
}

#[test]
fn json_format_has_position_and_code() {
    let src = Source::read("tests/invalid/e002_unknown_section.pol").unwrap();
    let ds = diagnostics(&src, &[]);
    let j = d2c::diag::to_json(&ds[0], &src.path);
    assert_eq!(j["code"], "E002");
    assert_eq!(j["line"], 7);
    assert_eq!(j["col"], 1);
    assert_eq!(j["severity"], "error");
}

//! The compiled plan of every shipped policy (snapshots), parser round-trips, and robustness:
//! random bytes and mutated policies never panic the front end.

use d2c::compile::{compile, Source};
use d2c::plan::render::{to_text, to_yaml};
use d2c::plan::{RolloutMode, RowOp};
use proptest::prelude::*;

use crate::support::shipped_policies as shipped;

#[test]
fn shipped_policies_compile_without_diagnostics_and_match_snapshots() {
    let mut seen = 0;
    insta::glob!("../../policies", "*.pol", |p| {
        seen += 1;
        let src = Source::read(&crate::support::relative(p)).unwrap();
        let c = compile(&src, &[], &mut |_, _| {})
            .unwrap_or_else(|f| panic!("{}: {:?}", p.display(), f.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()));
        assert!(c.warnings.is_empty(), "{}: {:?}", p.display(), c.warnings.iter().map(|d| &d.message).collect::<Vec<_>>());
        insta::assert_snapshot!("text", to_text(&c.plan));
        insta::assert_snapshot!("yaml", to_yaml(&c.plan));
    });
    assert_eq!(seen, shipped().len());
}

#[test]
fn d2cache_rollout_is_lowered_to_the_vector_pass() {
    let src = Source::read("policies/d2cache.pol").unwrap();
    let mut seen = Vec::new();
    let c = compile(&src, &[], &mut |pass, _| seen.push(pass.name())).ok().unwrap();
    assert!(seen.contains(&"rollout-vector-product"), "{seen:?}");
    let modes: Vec<_> = c.plan.refresh.rows.iter().filter_map(|r| if let RowOp::Rollout { mode, .. } = r.op { Some(mode) } else { None }).collect();
    assert_eq!(modes, vec![RolloutMode::Vector]);
    assert!(c.plan.needs.attention_rows && c.plan.needs.density && c.plan.needs.confidence_cache);
    // inflate gaps(0) is dropped by drop-noop-rules
    assert!(!c.plan.refresh.rows.iter().any(|r| matches!(r.op, RowOp::Inflate { .. })));
}

#[test]
fn no_cache_policies_skip_attention_and_rollout() {
    let src = Source::read("policies/fast-dllm-dual.pol").unwrap();
    let c = compile(&src, &[], &mut |_, _| {}).ok().unwrap();
    assert!(!c.plan.needs.attention_rows && c.plan.needs.rollout.is_none() && !c.plan.needs.density);
}

#[test]
fn parser_round_trips_every_shipped_policy() {
    for p in shipped() {
        let text = std::fs::read_to_string(&p).unwrap();
        let a = d2c::syntax::parse(&text).unwrap();
        let printed = d2c::syntax::print(&a);
        let b = d2c::syntax::parse(&printed).unwrap_or_else(|d| panic!("{}: reprint does not parse: {}", p.display(), d.message));
        assert_eq!(printed, d2c::syntax::print(&b), "{}", p.display());
        assert_eq!(a.params.len(), b.params.len());
        assert_eq!(a.sections.len(), b.sections.len());
    }
}

fn front_end(text: &str) {
    let src = Source { path: "fuzz.pol".into(), text: text.to_string() };
    let ds = d2c::compile::diagnostics(&src, &[]);
    for d in ds {
        let _ = d2c::diag::render(&d, "fuzz.pol", text, false);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        front_end(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_policies_never_panic(cut in 0usize..3000, len in 0usize..40, insert in "[ -~\n]{0,12}") {
        let base = std::fs::read_to_string("policies/d2cache.pol").unwrap();
        let chars: Vec<char> = base.chars().collect();
        let at = cut.min(chars.len());
        let end = (at + len).min(chars.len());
        let mutated: String = chars[..at].iter().chain(insert.chars().collect::<Vec<_>>().iter()).chain(chars[end..].iter()).collect();
        front_end(&mutated);
    }
}

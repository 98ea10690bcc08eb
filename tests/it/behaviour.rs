//! What every shipped policy does on the shipped model, step by step (`d2c::snapshot`):
//! committed positions and tokens, recomputed rows, the answer. The snapshots live in
//! `policies/snapshots/`, the same files `d2c snapshot --check policies` compares, so a change
//! of behaviour shows up as a reviewable diff both here and from the command line.

use candle_core::DType;
use d2c::compile::Source;
use d2c::engine::Engine;
use d2c::model::linear::WeightType;
use d2c::snapshot::{decode, Prompt, DEFAULT_PROMPTS};

use crate::support::shipped_policies;

#[test]
fn every_shipped_policy_behaves_as_snapshotted() {
    let engine = Engine::load(None, WeightType::Dense(DType::F32)).unwrap();
    let policies = shipped_policies();
    assert!(policies.len() >= 8, "{policies:?}");
    for p in policies {
        let src = Source::read(&p.to_string_lossy()).unwrap();
        let body: Vec<String> = DEFAULT_PROMPTS.iter().map(|t| decode(&engine, &src, Prompt::Text(t), &[]).unwrap()).collect();
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        insta::with_settings!({snapshot_path => "../../policies/snapshots", prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!(stem, body.join("\n"));
        });
    }
}

#[test]
fn a_snapshot_records_the_rows_a_cache_skips() {
    // The same prompt under no cache and under d²Cache: the renderings differ exactly where
    // the policies do (recomputed rows), not in the answer.
    let engine = Engine::load(None, WeightType::Dense(DType::F32)).unwrap();
    let render = |p: &str| decode(&engine, &Source::read(p).unwrap(), Prompt::Text("27 + 58 ="), &[]).unwrap();
    let (vanilla, d2) = (render("policies/vanilla.pol"), render("policies/d2cache.pol"));
    assert!(vanilla.lines().filter(|l| l.starts_with("step ")).all(|l| l.contains("recompute all")), "{vanilla}");
    assert!(d2.lines().filter(|l| l.starts_with("step ")).skip(1).all(|l| !l.contains("recompute all")), "{d2}");
    let answer = |s: &str| s.lines().find(|l| l.starts_with("answer:")).unwrap().to_string();
    assert_eq!(answer(&vanilla), answer(&d2));
    assert!(answer(&d2).contains("\"085\""), "{d2}");
}

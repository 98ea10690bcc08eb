//! The shipped trained model on its held-out tasks: no-cache decoding reaches the issue's
//! target (>= 90% exact match), and scoring is exact (a wrong answer never counts).

use candle_core::DType;
use d2c::compile::Source;
use d2c::engine::{Engine, Prepared};
use d2c::eval::evaluate;
use d2c::model::linear::WeightType;
use d2c::train::read_jsonl;
use std::path::Path;

const MODEL: &str = "models/tiny-tasks";

fn engine(dir: &str) -> Engine {
    Engine::load(Some(Path::new(dir)), WeightType::Dense(DType::F32)).expect("shipped model loads")
}

/// `policy` with the model folder's settings and `sets`, as `d2c eval` prepares it.
fn prepared(engine: &Engine, policy: &str, sets: &[&str]) -> Prepared {
    let src = Source::read(policy).expect("policy");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    engine.prepare(&src, &sets).expect("generation_config.json reads").map_err(|f| format!("{:?}", f.diagnostics)).expect("compiles")
}

#[test]
fn shipped_model_solves_heldout_tasks_without_cache() {
    let e = engine(MODEL);
    let tasks = read_jsonl(Path::new("tasks/heldout.jsonl")).expect("held-out tasks ship");
    assert!(tasks.len() >= 300);
    let r = evaluate(&e, &prepared(&e, "policies/vanilla.pol", &[]), &tasks).expect("eval");
    assert!(r.accuracy() >= 0.90, "no-cache exact match {:.1}% < 90%: {:?}", 100.0 * r.accuracy(), r.per_task);
}

#[test]
fn wrong_answers_score_zero() {
    let e = engine(MODEL);
    let mut tasks = read_jsonl(Path::new("tasks/heldout.jsonl")).expect("tasks");
    tasks.truncate(20);
    for t in tasks.iter_mut() {
        t.answer.push_str(" 7");
    }
    let r = evaluate(&e, &prepared(&e, "policies/d2cache.pol", &[]), &tasks).expect("eval");
    assert_eq!((r.correct, r.total), (0, 20));
    assert_eq!(r.mistakes.len(), 5);
}

/// The decoding-order statistic: plain confidence decoding settles the EOS padding while
/// answer positions are still masked; the certainty prior decodes quasi left to right and
/// does not.
#[test]
fn eos_early_separates_confidence_order_from_the_certainty_prior() {
    let e = engine(MODEL);
    let mut tasks = read_jsonl(Path::new("tasks/heldout.jsonl")).expect("tasks");
    tasks.truncate(30);
    let plain = evaluate(&e, &prepared(&e, "policies/vanilla.pol", &[]), &tasks).expect("eval");
    let prior = evaluate(&e, &prepared(&e, "policies/vanilla.pol", &["certainty_prior=true"]), &tasks).expect("eval");
    assert!(plain.eos_early > prior.eos_early, "EOS early: plain {} vs prior {} of {}", plain.eos_early, prior.eos_early, tasks.len());
    // Neither cuts an answer short on this model.
    assert_eq!((plain.cut_short, prior.cut_short), (0, 0));
}

/// Every forward copies a fixed handful of small tensors between host and model device (ids,
/// RoPE angles, row indices up; logits and all layers' attention down in one copy each), not
/// one per layer.
#[test]
fn host_device_copies_per_forward_stay_constant() {
    let e = engine(MODEL);
    let mut tasks = read_jsonl(Path::new("tasks/heldout.jsonl")).expect("tasks");
    tasks.truncate(3);
    for policy in ["policies/vanilla.pol", "policies/d2cache.pol", "policies/fast-dllm-dual.pol"] {
        let r = evaluate(&e, &prepared(&e, policy, &[]), &tasks).expect("eval");
        let per = r.stats.host_copies as f64 / r.stats.forwards as f64;
        assert!((5.0..=7.0).contains(&per), "{policy}: {per} copies per forward");
    }
}

/// The shipped long-answer model (models/long-tasks) solves what the README says it solves:
/// every kind of its preset, exactly, on a 128-token canvas mostly of EOS padding (its
/// default), and the certainty prior commits EOS later than plain confidence order.
#[test]
fn long_model_solves_its_kinds_and_the_prior_delays_eos() {
    let e = engine("models/long-tasks");
    let tok = e.tokenizer.clone().expect("tokenizer.json ships");
    let mut tasks = read_jsonl(Path::new("tasks/long-heldout.jsonl")).expect("long held-out ships");
    tasks.truncate(8);
    let kinds: std::collections::HashSet<_> = tasks.iter().map(|t| t.task.clone()).collect();
    assert_eq!(kinds.len(), d2c::train::tasks::LONG_PRESET_KINDS.len(), "round-robin: every kind in the first lines");
    let plain = evaluate(&e, &prepared(&e, "policies/vanilla.pol", &[]), &tasks).expect("eval");
    assert!(plain.correct >= 7, "{} of 8 right: {:?}", plain.correct, plain.mistakes);
    assert!(tasks.iter().all(|t| tok.encode(&t.answer).expect("encodes").len() >= 20), "the answers are the issue's long ones");
    let prior = evaluate(&e, &prepared(&e, "policies/vanilla.pol", &["certainty_prior=true"]), &tasks).expect("eval");
    assert!(prior.eos_masked_share < plain.eos_masked_share, "masked at first EOS: prior {} vs plain {}", prior.eos_masked_share, plain.eos_masked_share);
}

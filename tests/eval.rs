//! The shipped trained model on its held-out tasks: no-cache decoding reaches the issue's
//! target (>= 90% exact match), and scoring is exact (a wrong answer never counts).

use candle_core::{DType, Device};
use d2c::compile::{compile, Source};
use d2c::eval::evaluate;
use d2c::model::tokenizer::TextTokenizer;
use d2c::model::{llada, Transformer};
use d2c::train::read_jsonl;
use std::path::Path;

const MODEL: &str = "models/tiny-tasks";

fn plan(policy: &str) -> d2c::plan::Plan {
    let src = Source::read(policy).expect("policy");
    let (sets, _, _) = d2c::cli::model_defaults(Path::new(MODEL), &src, &[]).expect("generation_config.json reads");
    compile(&src, &sets, &mut |_, _| {}).map_err(|f| format!("{:?}", f.diagnostics)).expect("compiles").plan
}

fn model() -> (Transformer, TextTokenizer) {
    let m = llada::load(Path::new(MODEL), DType::F32, &Device::Cpu).expect("shipped model loads");
    let t = TextTokenizer::from_dir(Path::new(MODEL)).expect("tokenizer").expect("tokenizer.json ships");
    (m, t)
}

#[test]
fn shipped_model_solves_heldout_tasks_without_cache() {
    let (m, tok) = model();
    let tasks = read_jsonl(Path::new("tasks/heldout.jsonl")).expect("held-out tasks ship");
    assert!(tasks.len() >= 300);
    let r = evaluate(&m, &tok, &plan("policies/vanilla.pol"), &tasks).expect("eval");
    assert!(r.accuracy() >= 0.90, "no-cache exact match {:.1}% < 90%: {:?}", 100.0 * r.accuracy(), r.per_task);
}

#[test]
fn wrong_answers_score_zero() {
    let (m, tok) = model();
    let mut tasks = read_jsonl(Path::new("tasks/heldout.jsonl")).expect("tasks");
    tasks.truncate(20);
    for t in tasks.iter_mut() {
        t.answer.push_str(" 7");
    }
    let r = evaluate(&m, &tok, &plan("policies/d2cache.pol"), &tasks).expect("eval");
    assert_eq!((r.correct, r.total), (0, 20));
    assert_eq!(r.mistakes.len(), 5);
}

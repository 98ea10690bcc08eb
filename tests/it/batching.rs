//! Batch invariance: decoding requests together must not change any of them. For every
//! shipped policy, three prompts decoded as one batch give each sequence exactly the tokens
//! and the recomputed rows of its own single-sequence decode, with the reference's
//! batch-global behaviours (quirk `batch_global_scores`) off, as `d2c serve` batches.

use candle_core::DType;
use d2c::compile::Source;
use d2c::engine::Engine;
use d2c::model::linear::WeightType;
use d2c::plan::{Quirk, Val};
use d2c::runtime::{generate, RunOptions};

fn decode(engine: &Engine, plan: &d2c::plan::Plan, prompts: &[Vec<u32>]) -> d2c::runtime::RunOutput {
    generate(&engine.model, plan, prompts, RunOptions { record_details: true, stop_ids: engine.stops.clone(), ..Default::default() })
        .unwrap_or_else(|e| panic!("{}: {e}", plan.policy))
}

/// The shipped model with task prompts, and the oracle's tiny LLaDA with the prompts of its
/// batch trace (where the reference's top_up fires, so row counts differ across sequences).
fn cases(engine: &Engine, oracle: bool) -> (Vec<Vec<Vec<u32>>>, Vec<Vec<String>>) {
    if oracle {
        let ids = |s: &str| s.split(',').map(|x| x.parse().unwrap()).collect::<Vec<u32>>();
        let group = vec![ids("3,17,42,99,5,250,13,77,8,150,33,201"), ids("7,64,12,190,45,2,230,88,19,111,60,9"), ids("11,4,180,26,93,7,140,61,200,15,72,38")];
        let sets = |b: usize| vec!["gen_length=32".to_string(), format!("block_length={b}"), "current_k=8".into(), "tokens_per_step=1".into()];
        return (vec![group], vec![sets(32), sets(8)]);
    }
    let groups = [["27 + 58 =", "85 + 07 =", "19 + 21 ="], ["sort 9 4 7 1 3 =", "reverse q u i c k =", "copy d i f f u ="]];
    (groups.iter().map(|g| g.iter().map(|p| engine.encode(p).unwrap()).collect()).collect(), vec![vec![], vec!["block_length=4".to_string()]])
}

#[test]
fn a_batch_decodes_every_sequence_as_if_alone() {
    for oracle in [false, true] {
        let model = oracle.then(|| std::path::PathBuf::from("tests/fixtures/tiny-llada"));
        let engine = Engine::load(model.as_deref(), WeightType::Dense(DType::F32)).unwrap();
        check_policies(&engine, oracle);
    }
}

fn check_policies(engine: &Engine, oracle: bool) {
    let (groups, settings) = cases(engine, oracle);
    for path in crate::support::shipped_policies() {
        let src = Source::read(&path.to_string_lossy()).unwrap();
        for sets in &settings {
            let own = d2c::engine::declared_params(&src);
            let sets: Vec<String> = sets.iter().filter(|s| own.iter().any(|d| s.starts_with(&format!("{d}=")))).cloned().collect();
            let Ok(prepared) = engine.prepare(&src, &sets).unwrap() else { continue };
            let mut plan = prepared.compiled.plan.clone();
            plan.quirks.0.insert(Quirk::BatchGlobalScores, Val::Bool(false));
            if !plan.decodes_in_lockstep() {
                // Threshold/factor commits (and stop_at_eos) desynchronise a batch's blocks;
                // the server decodes such requests one at a time.
                continue;
            }
            for prompts in &groups {
                assert!(prompts.iter().all(|p| p.len() == prompts[0].len()), "{prompts:?}");
                let batch = decode(engine, &plan, prompts);
                for (i, p) in prompts.iter().enumerate() {
                    let alone = decode(engine, &plan, std::slice::from_ref(p));
                    let what = format!("{} {sets:?} {p:?}", path.display());
                    assert_eq!(batch.generated[i], alone.generated[0], "{what}: tokens");
                    assert_eq!(batch.steps.len(), alone.steps.len(), "{what}: steps");
                    for (b, a) in batch.steps.iter().zip(&alone.steps) {
                        assert_eq!(b.committed[i], a.committed[0], "{what}: step {} commits", a.step);
                        let rows = |r: &d2c::runtime::StepRecord, s: usize| r.query_positions.as_ref().map(|q| q[s].clone());
                        assert_eq!(rows(b, i), rows(a, 0), "{what}: step {} recomputed rows", a.step);
                        if !a.layer_rows[0].is_empty() {
                            assert_eq!(b.layer_rows[i], a.layer_rows[0], "{what}: step {} layer rows", a.step);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn with_the_reference_batch_quirk_a_batch_changes_the_rows() {
    // Negative control: d2cache.pol as shipped (batch_global_scores = true, for parity with
    // the reference's batch mode) tops up shorter row sets, so the comparison above can fail.
    let engine = Engine::load(Some(std::path::Path::new("tests/fixtures/tiny-llada")), WeightType::Dense(DType::F32)).unwrap();
    let src = Source::read("policies/d2cache.pol").unwrap();
    let (groups, settings) = cases(&engine, true);
    let plan = engine.prepare(&src, &settings[0]).unwrap().ok().unwrap().compiled.plan;
    assert_eq!(plan.quirks.0[&Quirk::BatchGlobalScores], Val::Bool(true));
    let prompts = &groups[0];
    let batch = decode(&engine, &plan, prompts);
    let differs = (0..prompts.len()).any(|i| {
        let alone = decode(&engine, &plan, std::slice::from_ref(&prompts[i]));
        batch.steps.iter().zip(&alone.steps).any(|(b, a)| b.query_positions.as_ref().map(|q| &q[i]) != a.query_positions.as_ref().map(|q| &q[0]))
    });
    assert!(differs, "top_up should have added rows to some sequence");
}

/// What a member of a mixed batch is: a policy file, its settings, a prompt.
struct Case {
    policy: &'static str,
    sets: &'static [&'static str],
    prompt: &'static str,
}

#[test]
fn requests_of_any_length_policy_and_commit_rule_share_a_batch_and_decode_as_alone() {
    // Different prompt lengths, gen lengths, block lengths, policies (per-layer dLLM-Cache,
    // threshold and factor commits, stop_at_eos) in one batch; two members join after three
    // steps, while the others are mid-block. Each must decode exactly as alone: same tokens,
    // same commits and recomputed rows at every one of its steps.
    let engine = Engine::load(None, WeightType::Dense(DType::F32)).unwrap();
    let cases = [
        Case { policy: "d2cache", sets: &[], prompt: "27 + 58 =" },
        Case { policy: "vanilla", sets: &["gen_length=16", "block_length=8"], prompt: "sort 9 4 7 1 3 =" },
        Case { policy: "fast-dllm-dual", sets: &["gen_length=8", "block_length=4"], prompt: "reverse q u i c k =" },
        Case { policy: "dllm-cache", sets: &[], prompt: "copy d i f f u s e =" },
        Case { policy: "parallel", sets: &["stop_at_eos=true"], prompt: "85 + 7 =" },
        Case { policy: "d2cache-parallel", sets: &["gen_length=12"], prompt: "sort 5 2 8 =" },
        Case { policy: "parallel-factor", sets: &[], prompt: "reverse a b =" },
        Case { policy: "fast-dllm-prefix", sets: &["gen_length=16", "block_length=4"], prompt: "copy x y z =" },
        Case { policy: "d2cache-fixed", sets: &[], prompt: "19 + 21 =" },
    ];
    let prepared: Vec<(d2c::plan::Plan, Vec<u32>)> = cases
        .iter()
        .map(|c| {
            let src = Source::read(&format!("policies/{}.pol", c.policy)).unwrap();
            let own = d2c::engine::declared_params(&src);
            let sets: Vec<String> = c.sets.iter().map(|s| s.to_string()).filter(|s| own.iter().any(|d| s.starts_with(&format!("{d}=")))).collect();
            assert_eq!(sets.len(), c.sets.len(), "{}: {:?} not all declared", c.policy, c.sets);
            let plan = engine.prepare(&src, &sets).unwrap().unwrap_or_else(|_| panic!("{} {:?} does not compile", c.policy, c.sets)).compiled.plan;
            (plan, engine.encode(c.prompt).unwrap())
        })
        .collect();
    let lengths: std::collections::BTreeSet<usize> = prepared.iter().map(|(_, p)| p.len()).collect();
    assert!(lengths.len() >= 4, "prompt lengths should differ: {lengths:?}");
    let opts = || RunOptions { record_details: true, stop_ids: engine.stops.clone(), ..Default::default() };
    let alone: Vec<_> = prepared.iter().map(|(plan, p)| decode(&engine, plan, std::slice::from_ref(p))).collect();

    let mut batch = d2c::runtime::Batch::new(&engine.model);
    let mut ids = Vec::new();
    let late = prepared.len() - 2;
    for (plan, p) in &prepared[..late] {
        ids.push(batch.join(plan, vec![p.clone()], opts()).unwrap());
    }
    let mut results = std::collections::HashMap::new();
    let mut steps = 0;
    let mut widest = 0;
    while !batch.is_empty() || ids.len() < prepared.len() {
        if steps == 3 {
            for (plan, p) in &prepared[late..] {
                ids.push(batch.join(plan, vec![p.clone()], opts()).unwrap());
            }
        }
        widest = widest.max(batch.len());
        for (id, r) in batch.step() {
            results.insert(id, r.unwrap());
        }
        steps += 1;
        assert!(steps < 1000, "the batch never finished");
    }
    // Fast members (parallel commits) may be done before the late ones join.
    assert!(widest >= prepared.len() - 2, "members should have shared steps (at most {widest} did)");
    for (i, c) in cases.iter().enumerate() {
        let (b, a) = (&results[&ids[i]], &alone[i]);
        let what = format!("{} {:?} {:?}", c.policy, c.sets, c.prompt);
        assert_eq!(b.generated, a.generated, "{what}: tokens");
        assert_eq!(b.steps.len(), a.steps.len(), "{what}: steps");
        for (x, y) in b.steps.iter().zip(&a.steps) {
            assert_eq!(x.committed, y.committed, "{what}: step {} commits", y.step);
            assert_eq!(x.query_positions, y.query_positions, "{what}: step {} recomputed rows", y.step);
            assert_eq!(x.layer_rows, y.layer_rows, "{what}: step {} layer rows", y.step);
            assert_eq!(x.committed_conf, y.committed_conf, "{what}: step {} confidences (bit for bit)", y.step);
        }
        assert_eq!(b.stats.forwards, a.stats.forwards, "{what}: forwards");
    }
}

#[test]
fn a_cancelled_member_leaves_at_the_next_step_and_the_others_finish() {
    let engine = Engine::load(None, WeightType::Dense(DType::F32)).unwrap();
    let src = Source::read("policies/vanilla.pol").unwrap();
    let plan = engine.prepare(&src, &[]).unwrap().ok().unwrap().compiled.plan;
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut batch = d2c::runtime::Batch::new(&engine.model);
    let gone = batch.join(&plan, vec![engine.encode("27 + 58 =").unwrap()], RunOptions { cancel: Some(flag.clone()), ..Default::default() }).unwrap();
    let stays =
        batch.join(&plan, vec![engine.encode("sort 9 4 7 1 3 =").unwrap()], RunOptions { stop_ids: engine.stops.clone(), ..Default::default() }).unwrap();
    assert!(batch.step().is_empty());
    flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let out = batch.step();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, gone);
    assert!(matches!(out[0].1, Err(d2c::error::Error::Cancelled)));
    assert_eq!(batch.len(), 1);
    let mut finished = None;
    while finished.is_none() {
        finished = batch.step().pop();
    }
    let (id, r) = finished.unwrap();
    assert_eq!(id, stays);
    let text = engine.tokenizer.as_ref().unwrap().decode(&r.unwrap().generated[0]).unwrap();
    assert!(text.starts_with("1 3 4 7 9"), "{text}");
}

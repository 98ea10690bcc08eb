//! Batch invariance: decoding requests together must not change any of them. For every
//! shipped policy, three prompts decoded as one batch give each sequence exactly the tokens
//! and the recomputed rows of its own single-sequence decode, with the reference's
//! batch-global behaviours (quirk `batch_global_scores`) off, as `d2c serve` batches.

use candle_core::DType;
use d2c::compile::Source;
use d2c::engine::Engine;
use d2c::model::linear::WeightType;
use d2c::plan::Val;
use d2c::runtime::{generate, RunOptions};

fn decode(engine: &Engine, plan: &d2c::plan::Plan, prompts: &[Vec<u32>]) -> d2c::runtime::exec::RunOutput {
    generate(&engine.model, plan, prompts, RunOptions { record_details: true, stop_ids: engine.stops.clone(), ..Default::default() }).unwrap_or_else(|e| panic!("{}: {e}", plan.policy))
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
    let mut policies: Vec<_> = std::fs::read_dir("policies").unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "pol")).collect();
    policies.sort();
    for path in policies {
        let src = Source::read(&path.to_string_lossy()).unwrap();
        for sets in &settings {
            let own = d2c::engine::declared_params(&src);
            let sets: Vec<String> = sets.iter().filter(|s| own.iter().any(|d| s.starts_with(&format!("{d}=")))).cloned().collect();
            let Ok(prepared) = engine.prepare(&src, &sets).unwrap() else { continue };
            let mut plan = prepared.compiled.plan.clone();
            plan.quirks.batch_global_scores = Val::Bool(false);
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
                        let rows = |r: &d2c::runtime::exec::StepRecord, s: usize| r.query_positions.as_ref().map(|q| q[s].clone());
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
    assert_eq!(plan.quirks.batch_global_scores, Val::Bool(true));
    let prompts = &groups[0];
    let batch = decode(&engine, &plan, &prompts);
    let differs = (0..prompts.len()).any(|i| {
        let alone = decode(&engine, &plan, std::slice::from_ref(&prompts[i]));
        batch.steps.iter().zip(&alone.steps).any(|(b, a)| b.query_positions.as_ref().map(|q| &q[i]) != a.query_positions.as_ref().map(|q| &q[0]))
    });
    assert!(differs, "top_up should have added rows to some sequence");
}

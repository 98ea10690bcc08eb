//! Step-by-step parity with the authors' Python reference (tests/fixtures/traces, copied from
//! ../shared/oracle by scripts/copy_oracle_fixtures.sh): same committed positions and tokens,
//! same recomputed row sets at every step, scores within 1e-5 (2e-5 relative above 1: see
//! `score_tol`), rollout importance within a
//! relative 1e-5. Every trace is replayed on each instruction set this CPU has (portable,
//! AVX2, AVX-512), one after another in this process.

use crate::support::*;
use d2c::runtime::{generate, RunOptions, RunOutput};
use serde_json::Value;

/// How far a score may be from the reference's: 1e-5 for probabilities; 2e-5 relative for
/// scores above 1 (PC-Sampler's multiply a probability, which the forward's float differences
/// move by ~1e-5 relative, by up to |ln 1e-6| = 13.8).
fn score_tol(want: f64) -> f64 {
    if want.abs() > 1.0 {
        2e-5 * want.abs()
    } else {
        1e-5
    }
}

fn run(name: &str) -> (Value, RunOutput) {
    let t = trace(name);
    let (policy, sets) = policy_for(&t);
    let plan = plan(&policy, &sets);
    let model = model_for(&t);
    let prompts = ids(&t["prompt_ids"]);
    let out = generate(&model, &plan, &prompts, RunOptions { record_details: true, ..Default::default() }).expect("decode runs");
    (t, out)
}

/// Compare and return a list of mismatches, each naming the step, the sequence and the set.
fn compare(name: &str, t: &Value, out: &RunOutput) -> Vec<String> {
    let mut bad = Vec::new();
    let steps = t["steps"].as_array().unwrap();
    if steps.len() != out.steps.len() {
        bad.push(format!("{name}: {} steps, oracle has {}", out.steps.len(), steps.len()));
    }
    for (ws, got) in steps.iter().zip(&out.steps) {
        let step = ws["step"].as_u64().unwrap();
        // recomputed rows
        match (&ws["query_positions"], &got.query_positions) {
            (Value::String(s), None) if s == "all" => {}
            (Value::Null, None) => {}
            (Value::Array(want), Some(have)) => {
                for (b, w) in want.iter().enumerate() {
                    let w: Vec<usize> = w.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
                    if have[b] != w {
                        bad.push(format!("{name} step {step} seq {b}: recomputed rows {:?}, oracle {:?}", have[b], w));
                    }
                }
            }
            (w, h) => bad.push(format!("{name} step {step}: recomputed rows {h:?}, oracle {w}")),
        }
        for (b, ws) in ws["seqs"].as_array().unwrap().iter().enumerate() {
            // A sequence whose block is done rides along with no commits (tokens: null).
            let none = Vec::new();
            let want: Vec<(usize, u32)> = ws["transfer_index"]
                .as_array()
                .unwrap_or(&none)
                .iter()
                .zip(ws["transfer_tokens"].as_array().unwrap_or(&none))
                .map(|(i, t)| (i.as_u64().unwrap() as usize, t.as_u64().unwrap() as u32))
                .collect();
            let mut have = got.committed[b].clone();
            let mut w2 = want.clone();
            have.sort();
            w2.sort();
            if have != w2 {
                bad.push(format!(
                    "{name} step {step} seq {b}: committed {:?}, oracle {:?} (oracle top-2 scores {})",
                    got.committed[b], want, ws["select_score_top2"]
                ));
            }
            for (k, c) in ws["transfer_conf"].as_array().unwrap_or(&none).iter().enumerate() {
                if let Some(h) = got.committed_conf[b].get(k) {
                    if (h - c.as_f64().unwrap()).abs() > score_tol(c.as_f64().unwrap()) {
                        bad.push(format!("{name} step {step} seq {b}: committed confidence {h}, oracle {c}"));
                    }
                }
            }
            if let Some(sc) = ws["select_scores"].as_array() {
                for (i, w) in sc.iter().enumerate() {
                    let (w, h) = (num(w), got.select_scores[b].get(i).copied().unwrap_or(f64::NAN));
                    let same = (w.is_infinite() && h == w) || (w - h).abs() <= score_tol(w);
                    if !same {
                        bad.push(format!("{name} step {step} seq {b}: score at {i} is {h}, oracle {w}"));
                        break;
                    }
                }
            }
        }
        if let Some(layers) = ws["dllm_layers"].as_array() {
            for lw in layers {
                let l = lw["layer"].as_u64().unwrap() as usize;
                let mut want: Vec<usize> = lw["refresh_index"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
                let mut have = got.layer_rows[0].get(l).cloned().unwrap_or_default();
                want.sort();
                have.sort();
                if have != want {
                    bad.push(format!("{name} step {step} layer {l}: recomputed rows {have:?}, oracle {want:?}"));
                    break;
                }
            }
        }
        if let Some(gi) = ws["d2cache"]["global_importance"].as_array() {
            for (b, w) in gi.iter().enumerate() {
                for (j, x) in w.as_array().unwrap().iter().enumerate() {
                    let (x, h) = (x.as_f64().unwrap(), got.importance[b][j]);
                    if (x - h).abs() > 1e-5 * x.abs().max(1.0) {
                        bad.push(format!("{name} step {step} seq {b}: rollout importance at {j} is {h}, oracle {x}"));
                        break;
                    }
                }
            }
        }
    }
    if ids(&t["final_generated_ids"]) != out.generated {
        bad.push(format!("{name}: final tokens {:?}, oracle {}", out.generated, t["final_generated_ids"]));
    }
    let forwards = t["num_forwards"].as_u64().unwrap() as usize;
    if forwards != out.stats.forwards {
        bad.push(format!("{name}: {} forwards, oracle {forwards}", out.stats.forwards));
    }
    // The oracle counts rows per forward; every sequence of a batch pushes the same number.
    if let Some(q) = t["total_query_tokens"].as_u64() {
        if q as usize * out.generated.len() != out.stats.query_rows {
            bad.push(format!("{name}: {} query rows in total, oracle {q}", out.stats.query_rows));
        }
    }
    bad
}

fn check(name: &str) {
    for s in d2c::model::simd::available() {
        let (t, out) = d2c::model::simd::with(s, || run(name));
        let bad = compare(name, &t, &out);
        assert!(bad.is_empty(), "{s:?}: {} mismatches, first ones:\n{}", bad.len(), bad.iter().take(8).cloned().collect::<Vec<_>>().join("\n"));
    }
}

macro_rules! parity {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            check($name);
        }
    )*};
}

parity! {
    nocache_g32_b8 => "nocache_g32_b8",
    nocache_g64_b32 => "nocache_g64_b32",
    nocache_g32_b32_sigma10 => "nocache_g32_b32_sigma10",
    nocache_g64_b64_sigma10 => "nocache_g64_b64_sigma10",
    d2cache_g32_b32_k8 => "d2cache_g32_b32_k8",
    d2cache_g32_b32_k32 => "d2cache_g32_b32_k32",
    d2cache_g64_b64_k32 => "d2cache_g64_b64_k32",
    dllm_g32_b8_kp8_kr3_rou0_25 => "dllm_g32_b8_kp8_kr3_rou0.25",
    dllm_g32_b8_kp8_kr3_rou0 => "dllm_g32_b8_kp8_kr3_rou0",
    dllm_g64_b32_kp50_kr7_rou0_25 => "dllm_g64_b32_kp50_kr7_rou0.25",
    d2cache_g32_b8_k4_inflate4_nosigma => "d2cache_g32_b8_k4_inflate4_nosigma",
    d2cache_g32_b32_k8_batch2 => "d2cache_g32_b32_k8_batch2",
    prefix_g32_b8 => "prefix_g32_b8",
    prefix_g64_b32 => "prefix_g64_b32",
    dual_g32_b8 => "dual_g32_b8",
    dual_g64_b32 => "dual_g64_b32",
}

// EB-Sampler (oracle README §10.1): several tokens a step, as many as fit the entropy budget.
parity! {
    eb_g32_b8_gamma3 => "eb_g32_b8_gamma3",
    eb_g32_b32_gamma5_sigma10 => "eb_g32_b32_gamma5_sigma10",
    eb_g64_b32_gamma4_n2 => "eb_g64_b32_gamma4_n2",
    eb_g32_b32_gamma4_batch2 => "eb_g32_b32_gamma4_batch2",
    dream_eb_g32_b8_gamma3 => "dream/eb_g32_b8_gamma3",
    dream_eb_g32_b32_gamma5_sigma10_topp0_9 => "dream/eb_g32_b32_gamma5_sigma10_topp0.9",
    d2cache_eb_g32_b32_k8_gamma3 => "d2cache_eb_g32_b32_k8_gamma3",
}

// KLASS (oracle README §10.3): KL stability across steps, on no cache and on the dual cache.
parity! {
    klass_g32_b8_kl0_2_h2_th0_1 => "klass_g32_b8_kl0.2_h2_th0.1",
    klass_g32_b32_kl1_h3_th0_3 => "klass_g32_b32_kl1_h3_th0.3",
    klass_g32_b8_kl0_01_h2_nothreshold => "klass_g32_b8_kl0.01_h2_nothreshold",
    dual_klass_g32_b8_kl0_2_h2_th0_1 => "dual_klass_g32_b8_kl0.2_h2_th0.1",
    dream_klass_g32_b8_kl0_2_h2_th0_1 => "dream/klass_g32_b8_kl0.2_h2_th0.1",
}

// PC-Sampler (oracle README §10.5): confidence debiased by a token-frequency table.
parity! {
    pc_g32_b8_alpha10 => "pc_g32_b8_alpha10",
    pc_g32_b32_alpha3_sigma10 => "pc_g32_b32_alpha3_sigma10",
}

// Score kinds (oracle README §10.2): `--set score=margin|entropy` on the shipped policies.
parity! {
    margin_g32_b8 => "margin_g32_b8",
    margin_g64_b64_sigma10 => "margin_g64_b64_sigma10",
    entropy_g32_b8 => "entropy_g32_b8",
    entropy_g32_b32_sigma10 => "entropy_g32_b32_sigma10",
    dual_margin_g32_b8 => "dual_margin_g32_b8",
    dream_entropy_g32_b8 => "dream/entropy_g32_b8",
    dream_entropy_g32_b32_topp0_9 => "dream/entropy_g32_b32_topp0.9",
}

// The Dream set (oracle README §8): shifted logits, GQA, q/k/v bias, top_p at temperature 0.
parity! {
    dream_nocache_g32_b8 => "dream/nocache_g32_b8",
    dream_nocache_g32_b32_sigma10 => "dream/nocache_g32_b32_sigma10",
    dream_nocache_g32_b32_sigma10_topp0_9 => "dream/nocache_g32_b32_sigma10_topp0.9",
    dream_d2cache_g32_b32_k8 => "dream/d2cache_g32_b32_k8",
    dream_d2cache_g32_b32_k8_topp0_9 => "dream/d2cache_g32_b32_k8_topp0.9",
    dream_d2cache_g64_b64_k32 => "dream/d2cache_g64_b64_k32",
    dream_d2cache_g32_b8_k4_inflate4_nosigma => "dream/d2cache_g32_b8_k4_inflate4_nosigma",
    dream_d2cache_g32_b32_k8_batch2 => "dream/d2cache_g32_b32_k8_batch2",
    dream_prefix_g32_b8 => "dream/prefix_g32_b8",
    dream_dual_g32_b8 => "dream/dual_g32_b8",
    dream_dllm_g32_b8_kp8_kr3_rou0_25 => "dream/dllm_g32_b8_kp8_kr3_rou0.25",
    dream_dllm_g32_b8_kp8_kr3_rou0 => "dream/dllm_g32_b8_kp8_kr3_rou0",
}

/// The comparison itself must be able to fail: a corrected d²Cache diverges from the
/// reference trace, and the report names the step.
#[test]
fn parity_report_catches_a_divergent_policy() {
    let t = trace("d2cache_g64_b64_k32");
    let (_, sets) = policy_for(&t);
    let plan = plan("d2cache-fixed.pol", &sets);
    let out = generate(&tiny_model(), &plan, &ids(&t["prompt_ids"]), RunOptions { record_details: true, ..Default::default() }).unwrap();
    let bad = compare("fixed-vs-reference", &t, &out);
    assert!(!bad.is_empty(), "the corrected policy should not reproduce the reference trace");
    assert!(bad[0].contains("step"), "{}", bad[0]);
}

/// The per-layer comparison can fail too: without the adaptive refresh, the layer row sets
/// differ from the first step that is not a full refresh.
#[test]
fn parity_report_catches_a_divergent_layer_schedule() {
    let t = trace("dllm_g32_b8_kp8_kr3_rou0.25");
    let (policy, mut sets) = policy_for(&t);
    sets.push("value_ratio=0".into());
    let out = generate(&tiny_model(), &plan(&policy, &sets), &ids(&t["prompt_ids"]), RunOptions { record_details: true, ..Default::default() }).unwrap();
    let bad = compare("no-adaptive-vs-reference", &t, &out);
    assert!(bad.iter().any(|b| b.contains("step 1 layer 1: recomputed rows []")), "{bad:?}");
}

/// Dream's d²Cache needs the late assignment of the last prompt row (§8.3): without the
/// quirk the recomputed rows differ, and the report says where.
#[test]
fn dream_parity_needs_the_late_first_row_assignment() {
    let t = trace("dream/d2cache_g32_b32_k8");
    let (_, sets) = policy_for(&t);
    let text =
        std::fs::read_to_string("policies/d2cache.pol").unwrap().replace("first_predecessor_after_rollout = true", "first_predecessor_after_rollout = false");
    let src = d2c::compile::Source { path: "d2cache-no-late-row.pol".into(), text };
    let plan = d2c::compile::compile(&src, &sets, &mut |_, _| {}).map_err(|_| "compiles").unwrap().plan;
    let out = generate(&tiny_dream(), &plan, &ids(&t["prompt_ids"]), RunOptions { record_details: true, ..Default::default() }).unwrap();
    let bad = compare("no-late-row-vs-reference", &t, &out);
    assert!(bad.iter().any(|b| b.contains("recomputed rows")), "{bad:?}");
}

/// top_p at temperature 0 changes the confidences (and, through the frozen confidence
/// cache, the decode): decoding the top_p trace without it must not match.
#[test]
fn dream_parity_needs_top_p_at_temperature_zero() {
    let t = trace("dream/d2cache_g32_b32_k8_topp0.9");
    let (policy, sets) = policy_for(&t);
    let sets: Vec<String> = sets.into_iter().filter(|s| !s.starts_with("top_p=")).collect();
    let out = generate(&tiny_dream(), &plan(&policy, &sets), &ids(&t["prompt_ids"]), RunOptions { record_details: true, ..Default::default() }).unwrap();
    let bad = compare("no-top-p-vs-reference", &t, &out);
    assert!(bad.iter().any(|b| b.contains("committed confidence")), "{bad:?}");
}

/// The EB batch trace needs the reference's maximum across sequences: with quirk
/// `entropy_max_over_batch` off, the second sequence decodes as it would alone and diverges.
#[test]
fn eb_batch_parity_needs_the_cross_sequence_maximum() {
    let t = trace("eb_g32_b32_gamma4_batch2");
    let (policy, sets) = policy_for(&t);
    let mut plan = plan(&policy, &sets);
    plan.quirks.0.insert(d2c::plan::Quirk::EntropyMaxOverBatch, d2c::plan::Val::Bool(false));
    let out = generate(&tiny_model(), &plan, &ids(&t["prompt_ids"]), RunOptions { record_details: true, ..Default::default() }).unwrap();
    let bad = compare("eb_g32_b32_gamma4_batch2", &t, &out);
    assert!(!bad.is_empty() && bad.iter().all(|b| !b.contains("seq 0")), "{bad:?}");
}

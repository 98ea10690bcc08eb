//! The LLaDA and Dream forwards against full logits from the authors' Python reference.

use candle_core::{DType, Device};
use d2c::model::{DiffusionModel, ForwardRequest, Transformer};
use std::path::Path;

const FAMILIES: [(&str, &str); 2] = [("tests/fixtures/tiny-llada", "tests/fixtures/traces"), ("tests/fixtures/tiny-dream", "tests/fixtures/dream/traces")];

fn fixture_in(traces: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{traces}/forward_check.json")).expect("fixture");
    serde_json::from_str(&text).expect("json")
}

fn load(dir: &str, dtype: DType) -> Transformer {
    d2c::model::load(Path::new(dir), dtype, &Device::Cpu).expect("load")
}

fn fixture() -> serde_json::Value {
    fixture_in(FAMILIES[0].1)
}

fn model() -> Transformer {
    load(FAMILIES[0].0, DType::F32)
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn max_abs_diff(got: &[Vec<f32>], want: &serde_json::Value) -> f64 {
    let mut worst = 0f64;
    for (r, row) in got.iter().enumerate() {
        for (c, g) in row.iter().enumerate() {
            let w = want[r][c].as_f64().unwrap();
            worst = worst.max((*g as f64 - w).abs());
        }
    }
    worst
}

#[test]
fn full_forward_matches_reference_logits() {
    for (dir, traces) in FAMILIES {
        let (f, m) = (fixture_in(traces), load(dir, DType::F32));
        assert_eq!(m.info().logits_shift, if dir.ends_with("dream") { 1 } else { 0 });
        full_forward_matches(&f, &m, dir);
    }
}

fn full_forward_matches(f: &serde_json::Value, m: &Transformer, dir: &str) {
    for case in ["prompt_plus_32_masks", "prompt_plus_mixed"] {
        let ids = ids(&f[case]);
        let mut kv = m.new_kv_store(1, ids.len()).unwrap();
        let out = m.forward(&ForwardRequest::full(std::slice::from_ref(&ids), 0, false), &mut kv).unwrap();
        let logits: Vec<Vec<f32>> = out.logits.squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(logits.len(), ids.len());
        let d = max_abs_diff(&logits, &f[case]["logits"]);
        assert!(d < 1e-4, "{dir} {case}: max |logit diff| = {d}");
    }
}

/// Recomputing a subset of rows against a store filled by a full forward of the same tokens
/// must give the same logits for those rows: the subset forward is the cache primitive.
#[test]
fn subset_forward_over_a_warm_store_equals_full_forward() {
    for (dir, traces) in FAMILIES {
        subset_equals_full(&fixture_in(traces), &load(dir, DType::F32));
    }
}

fn subset_equals_full(f: &serde_json::Value, m: &Transformer) {
    let ids = ids(&f["prompt_plus_mixed"]);
    let mut kv = m.new_kv_store(1, ids.len()).unwrap();
    let full = m.forward(&ForwardRequest::full(std::slice::from_ref(&ids), 0, true), &mut kv).unwrap();
    let full: Vec<Vec<f32>> = full.logits.squeeze(0).unwrap().to_vec2().unwrap();
    let rows = vec![3usize, 12, 20, 43];
    let req = ForwardRequest {
        ids: vec![rows.iter().map(|&p| ids[p]).collect()],
        positions: vec![rows.clone()],
        logit_rows: vec![(0..rows.len()).collect()],
        want_attention: true,
    };
    let out = m.forward(&req, &mut kv).unwrap();
    let sub: Vec<Vec<f32>> = out.logits.squeeze(0).unwrap().to_vec2().unwrap();
    for (i, &p) in rows.iter().enumerate() {
        for (a, b) in sub[i].iter().zip(&full[p]) {
            assert!((a - b).abs() < 1e-5, "row {p}: {a} vs {b}");
        }
    }
    assert_eq!(out.attention.len(), 3);
    let att: Vec<Vec<f32>> = out.attention[0].squeeze(0).unwrap().to_vec2().unwrap();
    assert_eq!((att.len(), att[0].len()), (rows.len(), ids.len()));
    for row in att {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "attention row sums to {s}");
    }
}

/// A stale store (zeros) must change the logits: proves the forward really reads the store.
#[test]
fn subset_forward_reads_the_store() {
    let f = fixture();
    let m = model();
    let ids = ids(&f["prompt_plus_mixed"]);
    let mut cold = m.new_kv_store(1, ids.len()).unwrap();
    let req = ForwardRequest { ids: vec![vec![ids[20]]], positions: vec![vec![20]], logit_rows: vec![vec![0]], want_attention: false };
    let a: Vec<f32> = m.forward(&req, &mut cold).unwrap().logits.flatten_all().unwrap().to_vec1().unwrap();
    let mut warm = m.new_kv_store(1, ids.len()).unwrap();
    m.forward(&ForwardRequest::full(std::slice::from_ref(&ids), 0, false), &mut warm).unwrap();
    let b: Vec<f32> = m.forward(&req, &mut warm).unwrap().logits.flatten_all().unwrap().to_vec1().unwrap();
    let diff: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(diff > 1e-3, "logits did not depend on the cached K/V");
}

#[test]
fn bf16_forward_is_close_to_f32() {
    let f = fixture();
    let m = load(FAMILIES[0].0, DType::BF16);
    let ids = ids(&f["prompt_plus_32_masks"]);
    let mut kv = m.new_kv_store(1, ids.len()).unwrap();
    let out = m.forward(&ForwardRequest::full(std::slice::from_ref(&ids), 0, false), &mut kv).unwrap();
    let logits: Vec<Vec<f32>> = out.logits.squeeze(0).unwrap().to_vec2().unwrap();
    let want = &f["prompt_plus_32_masks"];
    let d = max_abs_diff(&logits, &want["logits"]);
    // bf16 keeps ~3 significant digits; logits here span about +-13.
    assert!(d < 0.05 * 26.0, "bf16 logits drift {d}");
    let agree = logits
        .iter()
        .enumerate()
        .filter(|(r, row)| {
            let am = row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best });
            am as u64 == want["argmax"][*r].as_u64().unwrap()
        })
        .count();
    assert!(agree * 10 >= logits.len() * 9, "bf16 argmax agrees on only {agree}/{}", logits.len());
}

#[test]
fn forward_many_gives_every_part_its_own_forward_bit_for_bit() {
    // Parts of one shape (attention batched across them), parts of other shapes, subsets of
    // rows: each output must equal that part's forward alone, logits and attention, exactly.
    for (dir, _) in FAMILIES {
        let m = load(dir, DType::F32);
        let seq = |seed: u32, len: usize| -> Vec<u32> { (0..len as u32).map(|i| (i * 7 + seed * 13) % 200 + 2).collect() };
        let full = |s: Vec<u32>| ForwardRequest::full(std::slice::from_ref(&s), s.len() / 2, true);
        let subset = |s: Vec<u32>, rows: Vec<usize>| {
            let ids = rows.iter().map(|&r| s[r]).collect();
            ForwardRequest { ids: vec![ids], logit_rows: vec![(0..rows.len()).step_by(2).collect()], positions: vec![rows], want_attention: true }
        };
        let reqs = [
            (full(seq(1, 20)), 20),
            (full(seq(2, 20)), 20),
            (full(seq(3, 14)), 14),
            (subset(seq(4, 20), vec![0, 3, 5, 9, 17]), 20),
            (full(seq(5, 20)), 20),
            (subset(seq(6, 20), vec![1, 2, 4, 8, 16]), 20),
        ];
        let alone: Vec<_> = reqs
            .iter()
            .map(|(r, t)| {
                let mut kv = m.new_kv_store(1, *t).unwrap();
                // Positions outside a subset attend to whatever the store holds: give every part
                // the same history (a full forward first).
                if r.positions[0].len() < *t {
                    m.forward(&ForwardRequest::full(&[seq(9, *t)], 0, false), &mut kv).unwrap();
                }
                m.forward(r, &mut kv).unwrap()
            })
            .collect();
        let mut kvs: Vec<_> = reqs
            .iter()
            .map(|(r, t)| {
                let mut kv = m.new_kv_store(1, *t).unwrap();
                if r.positions[0].len() < *t {
                    m.forward(&ForwardRequest::full(&[seq(9, *t)], 0, false), &mut kv).unwrap();
                }
                kv
            })
            .collect();
        let mut parts: Vec<_> = reqs.iter().zip(kvs.iter_mut()).map(|((r, _), kv)| (r, kv)).collect();
        let many = m.forward_many(&mut parts).unwrap();
        for (i, (a, b)) in alone.iter().zip(&many).enumerate() {
            type Logits = Vec<Vec<Vec<f32>>>;
            let (la, lb): (Logits, Logits) = (a.logits.to_vec3().unwrap(), b.logits.to_vec3().unwrap());
            assert_eq!(la, lb, "{dir} part {i}: logits");
            assert_eq!(a.attention.len(), b.attention.len());
            for (x, y) in a.attention.iter().zip(&b.attention) {
                assert_eq!(x.to_vec3::<f32>().unwrap(), y.to_vec3::<f32>().unwrap(), "{dir} part {i}: attention");
            }
        }
    }
}

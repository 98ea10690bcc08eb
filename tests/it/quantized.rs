//! Quantized weights and GGUF files: q8_0 logits close to f32, an f32 GGUF written by
//! `d2c quantize` decoding token-exactly like its folder (both families, so LLaDA's q/k row
//! permutation round-trips), block sizes that do not divide a row named, missing GGUF keys
//! named, and the shipped model answering its held-out tasks in q8_0 as in f32.

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device};
use d2c::model::linear::WeightType;
use d2c::model::{DiffusionModel, ForwardRequest, Transformer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn d2c(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2c")).args(args).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

const FAMILIES: [(&str, &str); 2] = [("tests/fixtures/tiny-llada", "tests/fixtures/traces"), ("tests/fixtures/tiny-dream", "tests/fixtures/dream/traces")];
const PROMPT: &str = "3,17,42,99,5,250,13,77,8,150,33,201";

fn logits(m: &Transformer, traces: &str) -> Vec<Vec<f32>> {
    let f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!("{traces}/forward_check.json")).unwrap()).unwrap();
    let ids: Vec<u32> = f["prompt_plus_mixed"]["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let mut kv = m.new_kv_store(1, ids.len()).unwrap();
    m.forward(&ForwardRequest::full(&[ids], 0, false), &mut kv).unwrap().logits.squeeze(0).unwrap().to_vec2().unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A scratch path named `name`, with the folder that holds it (removed when dropped).
fn tmp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = crate::support::scratch();
    let path = dir.path().join(name);
    (dir, path)
}

/// q8_0 keeps logits within 10% of their largest magnitude of the f32 ones (measured: 9% on
/// the tiny LLaDA, 5% on the tiny Dream, whose random weights give logits up to +-14; bf16's
/// allowance in tests/forward.rs is the same size) and the argmax on at least 90% of rows.
/// candle's quantized matmul also quantizes the activations (q8 blocks), about 1% per matmul.
#[test]
fn q8_0_logits_are_close_to_f32() {
    for (dir, traces) in FAMILIES {
        let f32m = d2c::model::load(Path::new(dir), DType::F32, &Device::Cpu).unwrap();
        let q8 = d2c::model::load_as(Path::new(dir), WeightType::parse("q8_0").unwrap(), &Device::Cpu).unwrap();
        let (a, b) = (logits(&f32m, traces), logits(&q8, traces));
        let range = a.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
        let d = max_diff(&a, &b);
        assert!(d > 0.0, "{dir}: q8_0 should not be bit-identical to f32");
        assert!(d < 0.1 * range, "{dir}: q8_0 logits differ by {d} (range {range})");
        let argmax = |r: &Vec<f32>| r.iter().enumerate().fold(0, |b, (i, v)| if *v > r[b] { i } else { b });
        let agree = a.iter().zip(&b).filter(|(x, y)| argmax(x) == argmax(y)).count();
        assert!(agree * 10 >= a.len() * 9, "{dir}: argmax agrees on {agree}/{}", a.len());
        assert!(q8.weight_bytes() * 3 < f32m.weight_bytes(), "{dir}: q8_0 holds {} bytes vs f32 {}", q8.weight_bytes(), f32m.weight_bytes());
    }
}

/// `d2c quantize --dtype f32` then `--model FILE.gguf` decodes exactly like the folder.
#[test]
fn f32_gguf_decodes_like_its_folder() {
    for (dir, _) in FAMILIES {
        let (_out_dir, out) = tmp(&format!("{}.gguf", dir.rsplit('/').next().unwrap()));
        let o = d2c(&["quantize", dir, "--dtype", "f32", "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        for policy in ["policies/vanilla.pol", "policies/d2cache.pol"] {
            let run = |model: &str| {
                let mut args =
                    vec!["run", "--model", model, "--policy", policy, "--prompt-ids", PROMPT, "--gen-length", "32", "--block-length", "32", "--json"];
                if policy.contains("d2cache") {
                    args.extend(["--set", "current_k=8"]);
                }
                let o = d2c(&args);
                assert_eq!(o.status.code(), Some(0), "{model}: {}", stderr(&o));
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                v["generated_ids"].clone()
            };
            assert_eq!(run(dir), run(out.to_str().unwrap()), "{dir} {policy}");
        }
    }
}

/// A q8_0 GGUF holds about a quarter of the f32 bytes and loads back quantized.
#[test]
fn q8_0_gguf_is_small_and_loads() {
    let (_out_dir, out) = tmp("tiny-dream-q8.gguf");
    let o = d2c(&["quantize", "tests/fixtures/tiny-dream", "--dtype", "q8_0", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = d2c::model::load_as(&out, WeightType::parse("f32").unwrap(), &Device::Cpu).unwrap();
    let f = d2c::model::load(Path::new("tests/fixtures/tiny-dream"), DType::F32, &Device::Cpu).unwrap();
    assert!(m.weight_bytes() * 3 < f.weight_bytes());
    assert_eq!(m.info().logits_shift, 1, "Dream GGUF without diffusion.shift_logits reads as shifted");
    let d = max_diff(&logits(&m, "tests/fixtures/dream/traces"), &logits(&f, "tests/fixtures/dream/traces"));
    assert!(d < 1.4, "{d}");
}

#[test]
fn block_sizes_that_do_not_divide_a_row_are_named() {
    let o = d2c(&["run", "--model", "tests/fixtures/tiny-llada", "--prompt-ids", "1,2", "--dtype", "q4_k"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("model.transformer.blocks.0.q_proj.weight") && e.contains("q4_k") && e.contains("use q8_0 or q4_0"), "{e}");
    let (_out_dir, out) = tmp("bad.gguf");
    let o = d2c(&["quantize", "tests/fixtures/tiny-dream", "--dtype", "q4_k", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("q4_k") && !stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(!out.exists(), "a failed quantize leaves no partial file");
}

/// A GGUF written without one of the keys d2c needs is refused with the key named.
#[test]
fn missing_gguf_keys_are_named() {
    let (_src_dir, src) = tmp("full.gguf");
    assert_eq!(d2c(&["quantize", "tests/fixtures/tiny-llada", "--dtype", "f32", "--out", src.to_str().unwrap()]).status.code(), Some(0));
    let mut f = std::fs::File::open(&src).unwrap();
    let c = gguf_file::Content::read(&mut f).unwrap();
    let names: Vec<String> = c.tensor_infos.keys().cloned().collect();
    let tensors: Vec<(String, candle_core::quantized::QTensor)> = names.iter().map(|n| (n.clone(), c.tensor(&mut f, n, &Device::Cpu).unwrap())).collect();
    let meta: Vec<(&str, &gguf_file::Value)> = c.metadata.iter().filter(|(k, _)| k.as_str() != "llada.rope.freq_base").map(|(k, v)| (k.as_str(), v)).collect();
    let (_dst_dir, dst) = tmp("no-theta.gguf");
    let mut w = std::fs::File::create(&dst).unwrap();
    gguf_file::write(&mut w, &meta, &tensors.iter().map(|(n, t)| (n.as_str(), t)).collect::<Vec<_>>()).unwrap();
    let o = d2c(&["run", "--model", dst.to_str().unwrap(), "--prompt-ids", "1,2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing GGUF metadata key `llada.rope.freq_base`"), "{}", stderr(&o));
}

/// The shipped model answers its held-out tasks in q8_0 and q4_0 as in f32.
#[test]
fn shipped_model_accuracy_survives_q8_0() {
    let acc = |dtype: &str| {
        let o = d2c(&["eval", "--tasks", "tasks/heldout.jsonl", "--limit", "60", "--dtype", dtype, "--policy", "policies/vanilla.pol"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let line = out.lines().find(|l| l.trim_start().starts_with("vanilla.pol")).unwrap_or_default().to_string();
        line.split_whitespace()
            .find(|w| w.ends_with('%'))
            .and_then(|w| w.trim_end_matches('%').parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no accuracy in {out}"))
    };
    let (f, q8, q4) = (acc("f32"), acc("q8_0"), acc("q4_0"));
    assert!(f >= 90.0 && q8 >= f - 1.0 && q4 >= f - 5.0, "f32 {f}%, q8_0 {q8}%, q4_0 {q4}%");
}

/// A tensor of a type candle cannot read (here IQ4_XS, id 23) is named with the nearest type.
#[test]
fn unsupported_gguf_tensor_types_are_named() {
    let (_src_dir, src) = tmp("types.gguf");
    assert_eq!(d2c(&["quantize", "tests/fixtures/tiny-llada", "--dtype", "f32", "--out", src.to_str().unwrap()]).status.code(), Some(0));
    let mut bytes = std::fs::read(&src).unwrap();
    let name = b"blk.1.attn_q.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).expect("tensor info in the header");
    // name, then n_dims (u32 = 2), two u64 dims, then the type (u32).
    let ty = at + name.len() + 4 + 16;
    assert_eq!(u32::from_le_bytes(bytes[ty..ty + 4].try_into().unwrap()), 0, "f32 before patching");
    bytes[ty..ty + 4].copy_from_slice(&23u32.to_le_bytes());
    let (_dst_dir, dst) = tmp("iq4.gguf");
    std::fs::write(&dst, &bytes).unwrap();
    let o = d2c(&["run", "--model", dst.to_str().unwrap(), "--prompt-ids", "1,2"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("tensor `blk.1.attn_q.weight` has GGML type 23 (iq4)") && e.contains("re-quantize the file to q4_k") && !e.contains("panicked"), "{e}");
}

//! The `d2c` binary: exit codes (0 ok, 1 policy invalid, 2 usage/IO/model error), one-line
//! errors for bad input, and `--trace` reproducing an oracle trace from the command line.

use std::process::{Command, Output};

fn d2c(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2c")).args(args).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

const PROMPT: &str = "3,17,42,99,5,250,13,77,8,150,33,201";

#[test]
fn default_run_answers_the_readme_prompt() {
    // The README's first command, on the embedded trained model.
    let o = d2c(&["run", "--prompt", "27 + 58 ="]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "085");
    assert!(stderr(&o).contains("12 steps, 12 forwards"), "{}", stderr(&o));
    let o = d2c(&["run", "--prompt", "the city of music", "--gen-length", "16", "--block-length", "8", "--policy", "policies/d2cache.pol"]);
    assert_eq!(o.status.code(), Some(0), "unknown words become [UNK], not a crash: {}", stderr(&o));
}

#[test]
fn eval_prints_one_row_per_policy() {
    let o = d2c(&["eval", "--tasks", "tasks/heldout.jsonl", "--limit", "14", "--policy", "policies/vanilla.pol", "--policy", "policies/d2cache.pol"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("14 tasks") && out.contains("vanilla.pol") && out.contains("d2cache.pol") && out.contains("accuracy"), "{out}");
}

#[test]
fn eval_names_the_bad_line_of_a_tasks_file() {
    let dir_scratch = crate::support::scratch();
    let dir = dir_scratch.path().join("dir");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.jsonl");
    std::fs::write(&f, "{\"prompt\": \"1 + 1 =\", \"answer\": \"2\"}\n{\"prompt\": \"oops\"}\n").unwrap();
    let o = d2c(&["eval", "--tasks", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.jsonl:2:") && stderr(&o).contains("answer"), "{}", stderr(&o));
    let o = d2c(&["eval", "--tasks", "no/such/tasks.jsonl"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_exit_codes() {
    assert_eq!(d2c(&["check", "policies/d2cache.pol", "policies/vanilla.pol"]).status.code(), Some(0));
    let o = d2c(&["check", "tests/invalid/e003_unknown_score.pol"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("e003_unknown_score.pol:8:22") && stderr(&o).contains("did you mean `confidence`?"), "{}", stderr(&o));
    assert_eq!(d2c(&["check", "no/such/file.pol"]).status.code(), Some(2));
    let o = d2c(&["check", "tests/invalid/e002_unknown_section.pol", "--error-format", "json"]);
    let line = stderr(&o).lines().next().unwrap_or_default().to_string();
    let v: serde_json::Value = serde_json::from_str(&line).expect("json diagnostic");
    assert_eq!(v["code"], "E002");
}

#[test]
fn compile_yaml_uses_the_vector_rollout() {
    let o = d2c(&["compile", "policies/d2cache.pol", "--emit", "yaml"]);
    assert_eq!(o.status.code(), Some(0));
    let y: serde_yaml::Value = serde_yaml::from_slice(&o.stdout).expect("yaml plan");
    assert_eq!(y["needs"]["rollout"].as_str(), Some("vector"));
    let o = d2c(&["compile", "policies/d2cache.pol", "--explain"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("after pass `rollout-vector-product`"));
}

#[test]
fn bad_input_is_one_line_and_nonzero() {
    // Exit codes as documented: 1 when the policy (with its settings) is invalid, 2 for
    // usage, I/O and model errors.
    let cases: Vec<(Vec<&str>, &str, i32)> = vec![
        (vec!["run", "--prompt-ids", "1,x,3"], "not a token id", 2),
        (vec!["run", "--prompt-ids", "1,2,999"], "outside the vocabulary", 2),
        (vec!["run", "--prompt-ids", "1,2", "--gen-length", "30", "--block-length", "8"], "does not divide", 1),
        (vec!["run", "--prompt-ids", "1,2", "--gen-length", "512", "--block-length", "512"], "maximum sequence length", 2),
        (vec!["run", "--prompt-ids", "1,2", "--model", "no/such/dir"], "no/such/dir", 2),
        (vec!["run", "--prompt-ids", "1,2", "--set", "gen_lenght=8"], "did you mean `gen_length`?", 1),
        (vec!["run", "--device", "tpu", "--prompt-ids", "1,2"], "not a device (cpu, cuda, cuda:N, auto)", 2),
    ];
    for (args, needle, code) in cases {
        let o = d2c(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn broken_model_folders_are_named() {
    let dir_scratch = crate::support::scratch();
    let dir = dir_scratch.path().join("dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let o = d2c(&["run", "--prompt-ids", "1,2", "--model", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("config.json") && stderr(&o).contains("invalid config"), "{}", stderr(&o));
    // a valid config with a checkpoint lacking a tensor
    std::fs::copy("tests/fixtures/tiny-llada/config.json", dir.join("config.json")).unwrap();
    let dev = candle_core::Device::Cpu;
    let mut t = std::collections::HashMap::new();
    t.insert("model.transformer.wte.weight".to_string(), candle_core::Tensor::zeros((300, 64), candle_core::DType::F32, &dev).unwrap());
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
    let o = d2c(&["run", "--prompt-ids", "1,2", "--model", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing tensor `model.transformer.blocks.0.attn_norm.weight`"), "{}", stderr(&o));
    // wrong shape
    t.insert("model.transformer.wte.weight".to_string(), candle_core::Tensor::zeros((300, 32), candle_core::DType::F32, &dev).unwrap());
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
    let o = d2c(&["run", "--prompt-ids", "1,2", "--model", dir.to_str().unwrap()]);
    assert!(stderr(&o).contains("has shape [300, 32], expected [300, 64]"), "{}", stderr(&o));
}

#[test]
fn trace_flag_reproduces_an_oracle_trace() {
    let out_scratch = crate::support::scratch();
    let out = out_scratch.path().join("out.json");
    let o = d2c(&[
        "run",
        "--model",
        "tests/fixtures/tiny-llada",
        "--policy",
        "policies/d2cache.pol",
        "--prompt-ids",
        PROMPT,
        "--set",
        "gen_length=64",
        "--set",
        "block_length=64",
        "--set",
        "current_k=32",
        "--trace",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string("tests/fixtures/traces/d2cache_g64_b64_k32.json").unwrap()).unwrap();
    assert_eq!(got["final_generated_ids"], want["final_generated_ids"]);
    let (gs, ws) = (got["steps"].as_array().unwrap(), want["steps"].as_array().unwrap());
    assert_eq!(gs.len(), ws.len());
    for (g, w) in gs.iter().zip(ws) {
        assert_eq!(g["query_positions"], w["query_positions"], "step {}", w["step"]);
        let committed: Vec<u64> = g["committed"][0].as_array().unwrap().iter().map(|c| c[0].as_u64().unwrap()).collect();
        let want_c: Vec<u64> = w["seqs"][0]["transfer_index"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        assert_eq!(committed, want_c, "step {}", w["step"]);
    }
}

#[test]
fn train_rejects_impossible_shapes_without_panicking() {
    for (args, want) in [
        (&["--heads", "0"][..], "not divisible by n_heads 0"),
        (&["--heads", "3"][..], "not divisible by n_heads 3"),
        (&["--layers", "0"][..], "n_layers must be positive"),
    ] {
        let dir_scratch = crate::support::scratch();
        let dir = dir_scratch.path().join("dir");
        let mut all = vec!["train", "--steps", "1", "--eval-every", "0", "--out", dir.to_str().unwrap(), "--heldout"];
        let held = dir.join("h.jsonl");
        all.push(held.to_str().unwrap());
        all.extend_from_slice(args);
        let o = d2c(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want) && !stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
}

/// Every Dream trace, decoded from the command line with the shipped policy and the oracle's
/// settings as `--set`s (as an outside check would run it): same tokens, same recomputed rows
/// (per layer for dLLM-Cache) and same commits at every step.
#[test]
fn every_dream_trace_reproduces_from_the_command_line() {
    let dir = "tests/fixtures/dream/traces";
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect();
    names.retain(|n| n.ends_with(".json") && n != "forward_check.json" && n != "summary.json");
    names.sort();
    assert_eq!(names.len(), 17);
    for name in names {
        let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{name}")).unwrap()).unwrap();
        let (policy, sets) = crate::support::policy_for(&want);
        let out_scratch = crate::support::scratch();
        let out = out_scratch.path().join(&name);
        let policy = format!("policies/{policy}");
        let mut args = vec![
            "run".to_string(),
            "--model".into(),
            "tests/fixtures/tiny-dream".into(),
            "--policy".into(),
            policy,
            "--trace".into(),
            out.to_string_lossy().to_string(),
            "-q".into(),
        ];
        for p in want["prompt_ids"].as_array().unwrap() {
            let ids: Vec<String> = p.as_array().unwrap().iter().map(|x| x.to_string()).collect();
            args.extend(["--prompt-ids".to_string(), ids.join(",")]);
        }
        for s in sets {
            args.extend(["--set".to_string(), s]);
        }
        let o = d2c(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let got: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(got["final_generated_ids"], want["final_generated_ids"], "{name}");
        let (gs, ws) = (got["steps"].as_array().unwrap(), want["steps"].as_array().unwrap());
        assert_eq!(gs.len(), ws.len(), "{name}");
        for (g, w) in gs.iter().zip(ws) {
            // The oracle writes no query rows (null) for no-cache runs: every row.
            let want_q = if w["query_positions"].is_null() { serde_json::json!("all") } else { w["query_positions"].clone() };
            assert_eq!(g["query_positions"], want_q, "{name} step {}", w["step"]);
            for (b, seq) in w["seqs"].as_array().unwrap().iter().enumerate() {
                let committed: Vec<u64> = g["committed"][b].as_array().unwrap().iter().map(|c| c[0].as_u64().unwrap()).collect();
                let want_c: Vec<u64> = seq["transfer_index"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
                assert_eq!(committed, want_c, "{name} step {} seq {b}", w["step"]);
            }
            if let Some(layers) = w["dllm_layers"].as_array() {
                for l in layers {
                    let mut want_rows: Vec<u64> = l["refresh_index"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
                    let mut got_rows: Vec<u64> =
                        g["layer_rows"][0][l["layer"].as_u64().unwrap() as usize].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
                    want_rows.sort();
                    got_rows.sort();
                    assert_eq!(got_rows, want_rows, "{name} step {} layer {}", w["step"], l["layer"]);
                }
            }
        }
    }
}

/// Dream configs and checkpoints that cannot work are refused with the key or tensor named.
#[test]
fn broken_dream_folders_are_named() {
    let base_scratch = crate::support::scratch();
    let base = base_scratch.path().join("base");
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string("tests/fixtures/tiny-dream/config.json").unwrap()).unwrap();
    let st = candle_core::safetensors::load("tests/fixtures/tiny-dream/model.safetensors", &candle_core::Device::Cpu).unwrap();
    let write = |cfg: &serde_json::Value, tensors: &std::collections::HashMap<String, candle_core::Tensor>| {
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("config.json"), cfg.to_string()).unwrap();
        candle_core::safetensors::save(tensors, base.join("model.safetensors")).unwrap();
        let o = d2c(&["run", "--prompt-ids", "1,2", "--model", base.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked") && stderr(&o).trim().lines().count() == 1, "{}", stderr(&o));
        stderr(&o)
    };
    let mut c = cfg.clone();
    c["num_key_value_heads"] = serde_json::json!(3);
    assert!(write(&c, &st).contains("num_attention_heads 4 is not a multiple of num_key_value_heads 3"));
    let mut c = cfg.clone();
    c["model_type"] = serde_json::json!("qwen3");
    assert!(write(&c, &st).contains("unknown model_type `qwen3`"));
    let mut t = st.clone();
    t.remove("model.layers.1.self_attn.k_proj.bias");
    assert!(write(&cfg, &t).contains("missing tensor `model.layers.1.self_attn.k_proj.bias`"));
    let mut t = st.clone();
    t.insert("model.layers.0.self_attn.v_proj.bias".into(), candle_core::Tensor::zeros(64, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap());
    assert!(write(&cfg, &t).contains("`model.layers.0.self_attn.v_proj.bias` has shape [64], expected [32]"));
}

/// A cache that never recomputes the block's masked rows leaves nothing to commit: the run
/// stops with an error naming the step instead of spinning forever.
#[test]
fn a_policy_that_cannot_progress_is_an_error_not_a_hang() {
    let f_scratch = crate::support::scratch();
    let f = f_scratch.path().join("f.pol");
    std::fs::write(&f, "policy stuck\nschedule {\n  gen_length = 8\n  block_length = 8\n  tokens_per_step = 1\n}\ndecode {\n  commit top_n(1) by confidence within block\n}\ncache {\n  full at first_step\n  recompute committed\n}\n").unwrap();
    let o = d2c(&["run", "--model", "tests/fixtures/tiny-llada", "--prompt-ids", PROMPT, "--policy", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("step 1 committed nothing"), "{}", stderr(&o));
}

/// A scratch folder (removed when the returned guard drops) and its path.
fn scratch(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let guard = crate::support::scratch();
    let dir = guard.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    (guard, dir)
}

#[test]
fn snapshot_check_fails_with_a_diff_after_a_parameter_change_and_passes_after_accept() {
    let (_guard, dir) = scratch("snap");
    let pol = dir.join("mine.pol");
    std::fs::copy("policies/d2cache.pol", &pol).unwrap();
    std::fs::write(dir.join("prompts.txt"), "# two prompts\n27 + 58 =\nsort 9 4 7 1 3 =\n").unwrap();
    let d = dir.to_string_lossy().to_string();
    let o = d2c(&["snapshot", "--check", &d]);
    assert_eq!(o.status.code(), Some(1), "no snapshot yet is a difference: {}", String::from_utf8_lossy(&o.stdout));
    let o = d2c(&["snapshot", "--check", &d, "--accept"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let snap = std::fs::read_to_string(dir.join("snapshots/mine.snap")).unwrap();
    assert!(snap.starts_with("---\n") && snap.contains("step   1: commit") && snap.contains("answer: \"1 3 4 7 9\""), "{snap}");
    assert_eq!(d2c(&["snapshot", "--check", &d]).status.code(), Some(0));
    // A parameter change that moves the recomputed rows: exit 1 and a unified diff.
    let text = std::fs::read_to_string(&pol).unwrap();
    let changed = text
        .lines()
        .map(|l| if l.trim_start().starts_with("param current_k") { l.replace("= 32", "= 2") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(changed, text, "d2cache.pol declares current_k");
    std::fs::write(&pol, changed).unwrap();
    let o = d2c(&["snapshot", "--check", &d]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("differs from") && out.lines().any(|l| l.starts_with("-step")) && out.lines().any(|l| l.starts_with("+step")), "{out}");
    assert_eq!(d2c(&["snapshot", "--check", &d, "--accept"]).status.code(), Some(0));
    assert_eq!(d2c(&["snapshot", "--check", &d]).status.code(), Some(0));
}

#[test]
fn snapshot_of_one_policy_prints_steps_and_rejects_unknown_settings() {
    let o = d2c(&["snapshot", "policies/fast-dllm-dual.pol", "--prompt", "27 + 58 =", "--set", "block_length=4"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.starts_with("policy: fast-dllm-dual.pol") && out.contains("answer: \"085\""), "{out}");
    let o = d2c(&["snapshot", "policies/vanilla.pol", "--set", "curent_k=3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("curent_k"), "{}", stderr(&o));
    let o = d2c(&["snapshot", "--check", "/nonexistent-d2c-dir"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn run_svg_and_trace_show_draw_the_refresh_map() {
    let (_guard, dir) = scratch("svg");
    let (svg, trace, svg2, html) = (dir.join("a.svg"), dir.join("a.json"), dir.join("b.svg"), dir.join("b.html"));
    let o = d2c(&[
        "run",
        "--policy",
        "policies/d2cache.pol",
        "--prompt",
        "sort 9 4 7 1 3 =",
        "-q",
        "--svg",
        svg.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let a = std::fs::read_to_string(&svg).unwrap();
    assert!(a.starts_with("<svg") && a.trim_end().ends_with("</svg>") && a.contains("d2cache — prompt 7, gen 12"), "{a}");
    // One committed cell per generated position, each with its token.
    assert_eq!(a.matches("position ").count(), 12, "{a}");
    let o = d2c(&["trace", "show", trace.to_str().unwrap(), "--svg", svg2.to_str().unwrap(), "--html", html.to_str().unwrap(), "--model", "models/tiny-tasks"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&svg2).unwrap(), a, "the same picture from the trace file");
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    // An oracle trace (no version field) draws too, with a per-layer strip for dLLM-Cache.
    let o = d2c(&["trace", "show", "tests/fixtures/traces/dllm_g32_b8_kp8_kr3_rou0.25.json", "--svg", svg2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&svg2).unwrap().contains("per layer"));
    // Wrong shape or version: one line naming the file and the field.
    let bad = dir.join("bad.json");
    for (body, field) in [
        (r#"{"version": 7, "steps": []}"#, "field `version`"),
        (r#"{"prompt_ids": [[1]], "final_generated_ids": [[2]], "steps": 3}"#, "field `steps`"),
        ("[1,2]", "not a d2c trace"),
        ("{", "not JSON"),
    ] {
        std::fs::write(&bad, body).unwrap();
        let o = d2c(&["trace", "show", bad.to_str().unwrap(), "--svg", svg2.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(e.contains("bad.json") && e.contains(field) && e.lines().count() == 1, "{e}");
    }
}

#[test]
fn visual_falls_back_to_plain_output_off_a_terminal() {
    let o = d2c(&["run", "--prompt", "27 + 58 =", "--visual"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "085", "no escape codes when stdout is a pipe");
}

#[test]
fn a_policy_diagnostic_is_printed_once() {
    let o = d2c(&["check", "tests/invalid/e003_unknown_param.pol"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    let first = e.lines().next().unwrap_or("");
    assert!(first.starts_with("error[E") && first.contains("]: "), "code and message on the first line: {e}");
    assert_eq!(e.matches(first.split("]: ").nth(1).unwrap_or("?")).count(), 1, "the message once: {e}");
    assert!(e.contains("e003_unknown_param.pol:"), "{e}");
}

/// A CPU build asked for a GPU says how to get one instead of silently running on the CPU.
#[cfg(not(feature = "cuda"))]
#[test]
fn device_cuda_on_a_cpu_build_names_the_feature() {
    let o = d2c(&["--device", "cuda:1", "run", "--prompt-ids", "1,2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cuda:1") && stderr(&o).contains("scripts/build-cuda.sh"), "{}", stderr(&o));
    let o = d2c(&["run", "--device", "cpu", "--prompt", "sort 3 1 2 0 5 ="]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("copies/forward on cpu"), "{}", stderr(&o));
}

/// The long model's held-out file is what `d2c tasks` writes for its preset (anyone can
/// regenerate it, or draw another seed of the same kinds); an unknown kind or preset is named.
#[test]
fn tasks_regenerates_the_long_held_out_file_and_names_bad_kinds() {
    let (_guard, dir) = scratch("tasks");
    let out = dir.join("long.jsonl");
    let o = d2c(&["tasks", "--preset", "long-tasks", "--seed", "11", "--n", "160", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), std::fs::read_to_string("tasks/long-heldout.jsonl").unwrap());
    let o = d2c(&["tasks", "--kinds", "lsbadd,sotr", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown task kind `sotr`") && stderr(&o).lines().count() == 1, "{}", stderr(&o));
    let o = d2c(&["tasks", "--preset", "huge", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--preset huge"), "{}", stderr(&o));
}

/// A Dream folder whose generation_config.json asks for `alg: entropy` decodes with the entropy
/// score without any flag (the oracle's entropy trace, reproduced with no `--set score`), and
/// `--set score=confidence` still wins.
#[test]
fn a_checkpoints_alg_chooses_the_score_kind() {
    let guard = crate::support::scratch();
    let model = guard.path().join("dream-entropy");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(format!("tests/fixtures/tiny-dream/{f}"), model.join(f)).unwrap();
    }
    let mut gc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string("tests/fixtures/tiny-dream/generation_config.json").unwrap()).unwrap();
    gc["alg"] = serde_json::json!("entropy");
    std::fs::write(model.join("generation_config.json"), gc.to_string()).unwrap();
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string("tests/fixtures/dream/traces/entropy_g32_b8.json").unwrap()).unwrap();
    let (policy, sets) = crate::support::policy_for(&want);
    let ids: Vec<String> = want["prompt_ids"][0].as_array().unwrap().iter().map(|x| x.to_string()).collect();
    let decode = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["run".to_string(), "--model".into(), model.to_string_lossy().into(), "--policy".into(), format!("policies/{policy}")];
        args.extend(["--prompt-ids".to_string(), ids.join(","), "--json".into()]);
        for s in sets.iter().filter(|s| !s.starts_with("score=")) {
            args.extend(["--set".to_string(), s.clone()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let o = d2c(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = decode(&[]);
    assert_eq!(v["generated_ids"], want["final_generated_ids"], "the folder's alg decodes like the reference's entropy run");
    assert!(v["settings_from_model"].as_array().unwrap().iter().any(|s| s["param"] == "score" && s["value"] == "entropy"), "{}", v["settings_from_model"]);
    let v = decode(&["--set", "score=confidence"]);
    assert_ne!(v["generated_ids"], want["final_generated_ids"], "--set score wins over the folder");
}

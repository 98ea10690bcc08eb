//! Instruct checkpoints as people run them: chat templates rendered as `transformers`
//! renders them, token ids equal to what `apply_chat_template(..., add_generation_prompt=True)`
//! gives (derived by hand in scripts/make_chat_fixtures.py), stop tokens, Dream's slow
//! tokenizer files, `--stream`, and the bad inputs around them.

use candle_core::{DType, Device, Tensor};
use d2c::chat::{ChatTemplate, Message};
use d2c::model::tokenizer::TextTokenizer;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FAMILIES: [&str; 2] = ["llada-instruct", "dream-instruct"];

fn d2c(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2c")).args(args).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn fixture(family: &str) -> PathBuf {
    Path::new("tests/fixtures").join(family)
}

fn expected(family: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(family).join("expected.json")).unwrap()).unwrap()
}

fn conversations() -> Vec<(&'static str, Vec<Message>)> {
    let (q1, a1, q2, sys) = ("What is 12 * 7?", "84", "And 12 * 8?", "You answer with a number.");
    vec![
        ("one_turn", vec![Message::new("user", q1)]),
        ("one_turn_system", vec![Message::new("system", sys), Message::new("user", q1)]),
        ("two_turns", vec![Message::new("user", q1), Message::new("assistant", a1), Message::new("user", q2)]),
        ("two_turns_system", vec![Message::new("system", sys), Message::new("user", q1), Message::new("assistant", a1), Message::new("user", q2)]),
    ]
}

/// The rendered prompt and its ids equal the hand-derived ids, and are snapshotted.
#[test]
fn templates_render_to_the_ids_transformers_gives() {
    for family in FAMILIES {
        let dir = fixture(family);
        let tok = TextTokenizer::from_dir(&dir).unwrap().expect("tokenizer");
        let tmpl = ChatTemplate::from_dir(&dir, None).unwrap().expect("template");
        let want = expected(family);
        for (name, conv) in conversations() {
            let text = tmpl.render(&conv, true).unwrap();
            let ids = d2c::chat::prompt_ids(&tok, Some(&tmpl), &conv, false).unwrap();
            let want_ids: Vec<u32> = want["prompts"][name].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
            assert_eq!(ids, want_ids, "{family} {name}");
            insta::assert_snapshot!(format!("{family}__{name}"), format!("{text}\n---\n{ids:?}"));
        }
    }
}

/// A model folder of the fixture's layout whose weights always predict `stop` (all zero but
/// the embedding's first column and the head row of `stop`), written for the test.
fn instruct_model(family: &str) -> (tempfile::TempDir, PathBuf) {
    let scratch = crate::support::scratch();
    let out = scratch.path().join(family);
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(fixture(family)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), out.join(e.file_name())).unwrap();
    }
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let stop = expected(family)["stop_token"].as_u64().unwrap() as usize;
    let dev = Device::Cpu;
    let z = |s: &[usize]| Tensor::zeros(s, DType::F32, &dev).unwrap();
    let ones = |n: usize| Tensor::ones(n, DType::F32, &dev).unwrap();
    let first_col = |rows: usize, d: usize, only: Option<usize>| {
        let v: Vec<f32> = (0..rows * d).map(|i| if i % d == 0 && only.is_none_or(|r| i / d == r) { 1.0 } else { 0.0 }).collect();
        Tensor::from_vec(v, (rows, d), &dev).unwrap()
    };
    let mut t: HashMap<String, Tensor> = HashMap::new();
    if family.starts_with("llada") {
        let (d, f, v) =
            (cfg["d_model"].as_u64().unwrap() as usize, cfg["mlp_hidden_size"].as_u64().unwrap() as usize, cfg["vocab_size"].as_u64().unwrap() as usize);
        let p = "model.transformer";
        t.insert(format!("{p}.wte.weight"), first_col(v, d, None));
        t.insert(format!("{p}.ff_out.weight"), first_col(v, d, Some(stop)));
        t.insert(format!("{p}.ln_f.weight"), ones(d));
        let b = format!("{p}.blocks.0");
        t.insert(format!("{b}.attn_norm.weight"), ones(d));
        t.insert(format!("{b}.ff_norm.weight"), ones(d));
        for n in ["q_proj", "k_proj", "v_proj", "attn_out"] {
            t.insert(format!("{b}.{n}.weight"), z(&[d, d]));
        }
        t.insert(format!("{b}.ff_proj.weight"), z(&[f, d]));
        t.insert(format!("{b}.up_proj.weight"), z(&[f, d]));
        t.insert(format!("{b}.ff_out.weight"), z(&[d, f]));
    } else {
        let (d, f, v) =
            (cfg["hidden_size"].as_u64().unwrap() as usize, cfg["intermediate_size"].as_u64().unwrap() as usize, cfg["vocab_size"].as_u64().unwrap() as usize);
        let kvd = cfg["num_key_value_heads"].as_u64().unwrap() as usize * d / cfg["num_attention_heads"].as_u64().unwrap() as usize;
        t.insert("model.embed_tokens.weight".into(), first_col(v, d, None));
        t.insert("lm_head.weight".into(), first_col(v, d, Some(stop)));
        t.insert("model.norm.weight".into(), ones(d));
        let b = "model.layers.0";
        t.insert(format!("{b}.input_layernorm.weight"), ones(d));
        t.insert(format!("{b}.post_attention_layernorm.weight"), ones(d));
        for (n, rows) in [("q_proj", d), ("k_proj", kvd), ("v_proj", kvd)] {
            t.insert(format!("{b}.self_attn.{n}.weight"), z(&[rows, d]));
            t.insert(format!("{b}.self_attn.{n}.bias"), z(&[rows]));
        }
        t.insert(format!("{b}.self_attn.o_proj.weight"), z(&[d, d]));
        t.insert(format!("{b}.mlp.gate_proj.weight"), z(&[f, d]));
        t.insert(format!("{b}.mlp.up_proj.weight"), z(&[f, d]));
        t.insert(format!("{b}.mlp.down_proj.weight"), z(&[d, f]));
    }
    candle_core::safetensors::save(&t, out.join("model.safetensors")).unwrap();
    (scratch, out)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// `d2c run --prompt "What is 12 * 7?"` feeds the model the template's ids (BOS once) and the
/// answer stops at the first stop token (the model here predicts only `<|eot_id|>` /
/// `<|im_end|>`, so the answer is empty while the canvas is full).
#[test]
fn run_applies_the_template_and_stops_at_the_stop_token() {
    for family in FAMILIES {
        let (_scratch, dir) = instruct_model(family);
        let want = expected(family);
        let stop = want["stop_token"].as_u64().unwrap() as u32;
        let o = d2c(&["run", "--model", dir.to_str().unwrap(), "--prompt", "What is 12 * 7?", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{family}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(ids(&v["prompt_ids"][0]), ids(&want["prompts"]["one_turn"]), "{family}");
        let gen = ids(&v["generated_ids"][0]);
        // LLaDA's folder sets max_new_tokens 16; Dream's, like the real one, does not.
        assert_eq!(gen.len(), if family.starts_with("llada") { 16 } else { 64 }, "{family}");
        assert!(gen.iter().all(|&x| x == stop), "{family}: {gen:?}");
        assert_eq!(v["answer_ids"][0], serde_json::json!([]), "{family}");
        assert_eq!(v["text"][0], serde_json::json!(""), "{family}");
        assert!(ids(&v["stop_ids"]).contains(&stop), "{family}: {}", v["stop_ids"]);
        // --system and --messages reach the template too.
        let o = d2c(&["run", "--model", dir.to_str().unwrap(), "--prompt", "What is 12 * 7?", "--system", "You answer with a number.", "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(ids(&v["prompt_ids"][0]), ids(&want["prompts"]["one_turn_system"]), "{family}");
        let msgs = dir.join("two.json");
        std::fs::write(&msgs, r#"[{"role":"user","content":"What is 12 * 7?"},{"role":"assistant","content":"84"},{"role":"user","content":"And 12 * 8?"}]"#)
            .unwrap();
        let o = d2c(&["run", "--model", dir.to_str().unwrap(), "--messages", msgs.to_str().unwrap(), "--json"]);
        assert_eq!(o.status.code(), Some(0), "{family}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(ids(&v["prompt_ids"][0]), ids(&want["prompts"]["two_turns"]), "{family}");
        // The text summary says where the folder's settings came from.
        let o = d2c(&["run", "--model", dir.to_str().unwrap(), "--prompt", "What is 12 * 7?"]);
        let from = if family.starts_with("llada") {
            "gen_length=16 (generation_config.json max_new_tokens)"
        } else {
            "tokens_per_step=2 (generation_config.json steps)"
        };
        assert!(stderr(&o).contains(from), "{family}: {}", stderr(&o));
        assert!(stderr(&o).contains("tokens/s over the answer (0 tokens before the first stop)"), "{family}: {}", stderr(&o));
    }
}

/// `--raw` skips the template; LLaDA's tokenizer then adds its BOS itself, once.
#[test]
fn raw_prompts_skip_the_template() {
    let (_scratch, dir) = instruct_model("llada-instruct");
    let o = d2c(&["run", "--model", dir.to_str().unwrap(), "--prompt", "Hi", "--raw", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ids(&v["prompt_ids"][0]), vec![126080, b'H' as u32, b'i' as u32]);
    // --chat-template overrides the folder's.
    let t = dir.join("plain.jinja");
    std::fs::write(&t, "{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}\n{% endfor %}").unwrap();
    let o = d2c(&["run", "--model", dir.to_str().unwrap(), "--prompt", "Hi", "--chat-template", t.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let want: Vec<u32> = "[USER] Hi\n".bytes().map(|b| b as u32).collect();
    assert_eq!(ids(&v["prompt_ids"][0]), want);
}

/// Dream's generation_config.json settings reach the policy, and what cannot apply is said.
#[test]
fn dream_folder_defaults_and_notes() {
    let (_scratch, dir) = instruct_model("dream-instruct");
    let o = d2c(&["run", "--model", dir.to_str().unwrap(), "--prompt", "Hi"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("top_p=0.9 (generation_config.json top_p)") && e.contains("tokens_per_step=2 (generation_config.json steps)"), "{e}");
    // Dream's own `alg: entropy` becomes the policy's score kind.
    assert!(e.contains("score=entropy (generation_config.json alg)"), "{e}");
}

#[test]
fn bad_chat_input_is_one_named_line() {
    let (_scratch, dir) = instruct_model("dream-instruct");
    let d = dir.to_str().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().to_string()
    };
    let tool = write("tool.json", r#"[{"role":"tool","content":"42"}]"#);
    let not_list = write("obj.json", r#"{"role":"user","content":"hi"}"#);
    let no_content = write("noc.json", r#"[{"role":"user","content":"hi"},{"role":"user"}]"#);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--messages", &tool], "Conversation roles must be system, user or assistant, not tool"),
        (vec!["--messages", &not_list], "expected a JSON list"),
        (vec!["--messages", &no_content], "message 1: no string `content`"),
        (vec!["--prompt", "Hi", "--gen-length", "4096", "--block-length", "4096", "--set", "tokens_per_step=1"], "with gen_length 4096 that is"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["run", "--model", d];
        all.extend(args.iter());
        let o = d2c(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle) && !stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{args:?}: {}", stderr(&o));
    }
    std::fs::write(dir.join("generation_config.json"), "{ \"max_new_tokens\": \"lots\" }").unwrap();
    let o = d2c(&["run", "--model", d, "--prompt", "Hi"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("generation_config.json") && stderr(&o).contains("`max_new_tokens`"), "{}", stderr(&o));
    std::fs::write(dir.join("generation_config.json"), "{ not json").unwrap();
    let o = d2c(&["run", "--model", d, "--prompt", "Hi"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid JSON"), "{}", stderr(&o));
}

/// Words the tiny model's tokenizer does not know are named, not silently decoded as garbage.
#[test]
fn unknown_words_are_named() {
    let o = d2c(&["run", "--prompt", "27 + 58 = zebra", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: the tokenizer does not know `zebra`"), "{}", stderr(&o));
}

/// `--stream` on the shipped model: the same answer, printed as it grows.
#[test]
fn stream_prints_the_answer() {
    let o = d2c(&["run", "--prompt", "27 + 58 =", "--stream"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "085\n");
    let o = d2c(&["run", "--prompt", "sort 7 2 9 2 5 =", "--stream", "--policy", "policies/d2cache.pol"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "2 2 5 7 9\n");
}

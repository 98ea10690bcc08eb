//! The training side: gradients reach every parameter, the training network computes the
//! same function as the inference model after a save/load round trip, and the optimiser
//! actually fits a batch.

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use d2c::model::{DiffusionModel, ForwardRequest};
use d2c::train::{self, net, vocab, TrainOptions};
use rand::SeedableRng;

fn tiny_opts(out: &std::path::Path) -> TrainOptions {
    TrainOptions { out: out.to_path_buf(), d_model: 32, layers: 2, heads: 4, mlp_hidden: 64, batch: 8, ..TrainOptions::default() }
}

fn setup(o: &TrainOptions) -> (VarMap, net::TrainNet, Device) {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let cfg = train::config(o);
    let n = net::TrainNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev), &dev).unwrap();
    net::seed_init(&vm, &cfg, 3).unwrap();
    (vm, n, dev)
}

fn batch(o: &TrainOptions, dev: &Device, seed: u64) -> train::TrainBatch {
    let dir_scratch = crate::support::scratch();
    let dir = dir_scratch.path().join("dir");
    std::fs::create_dir_all(&dir).unwrap();
    let enc = train::Encoder::new(vocab::write_tokenizer(&dir).unwrap());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    train::make_batch(&enc, o, &Default::default(), &mut rng, dev).unwrap()
}

#[test]
fn every_parameter_receives_a_gradient() {
    let o = tiny_opts(std::path::Path::new("unused"));
    let (vm, n, dev) = setup(&o);
    let b = batch(&o, &dev, 1);
    assert!(b.masked > 0);
    let loss = net::masked_diffusion_loss(&n.forward(&b.ids, &b.key_ok).unwrap(), &b.targets, &b.weight).unwrap();
    let grads = loss.backward().unwrap();
    let vars = vm.data().lock().unwrap();
    assert_eq!(vars.len(), 2 + 2 * 9 + 1, "wte, ln_f, head and 9 tensors per block");
    for (name, v) in vars.iter() {
        let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{name} has no gradient"));
        let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(norm > 0.0 && norm.is_finite(), "{name}: gradient norm {norm}");
    }
}

#[test]
fn padding_is_invisible_to_real_tokens() {
    let o = tiny_opts(std::path::Path::new("unused"));
    let (_vm, n, dev) = setup(&o);
    let ids = Tensor::new(&[[5u32, 6, 7, 1, 3, 3]], &dev).unwrap();
    let ok = Tensor::new(&[[1f32, 1., 1., 1., 0., 0.]], &dev).unwrap();
    let ids2 = Tensor::new(&[[5u32, 6, 7, 1, 9, 12]], &dev).unwrap();
    let a = n.forward(&ids, &ok).unwrap().narrow(1, 0, 4).unwrap();
    let b = n.forward(&ids2, &ok).unwrap().narrow(1, 0, 4).unwrap();
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-6, "padded keys leak into real rows: {diff}");
}

#[test]
fn saved_weights_run_identically_in_the_inference_model() {
    let dir_scratch = crate::support::scratch();
    let dir = dir_scratch.path().join("dir");
    std::fs::create_dir_all(&dir).unwrap();
    let o = tiny_opts(&dir);
    let (vm, n, dev) = setup(&o);
    train::write_configs(&dir, &train::config(&o), &o, None).unwrap();
    train::save(&vm, &dir).unwrap();
    let m = d2c::model::load(&dir, DType::F32, &dev).unwrap();
    let toks: Vec<u32> = vec![14, 20, 33, 1, 1, 1, 0, 17];
    let mut kv = m.new_kv_store(1, toks.len()).unwrap();
    let inf = m.forward(&ForwardRequest::full(std::slice::from_ref(&toks), 0, false), &mut kv).unwrap().logits;
    let ids = Tensor::new(toks.as_slice(), &dev).unwrap().unsqueeze(0).unwrap();
    let ok = Tensor::ones((1, toks.len()), DType::F32, &dev).unwrap();
    let tr = n.forward(&ids, &ok).unwrap();
    let diff = (inf - tr).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-4, "training and inference forwards differ by {diff}");
}

#[test]
fn adamw_fits_a_fixed_batch() {
    let o = tiny_opts(std::path::Path::new("unused"));
    let (vm, n, dev) = setup(&o);
    let b = batch(&o, &dev, 2);
    let mut opt = AdamW::new(vm.all_vars(), ParamsAdamW { lr: 3e-3, ..Default::default() }).unwrap();
    let loss = |n: &net::TrainNet| net::masked_diffusion_loss(&n.forward(&b.ids, &b.key_ok).unwrap(), &b.targets, &b.weight).unwrap();
    let first = loss(&n).to_scalar::<f32>().unwrap();
    for _ in 0..60 {
        opt.backward_step(&loss(&n)).unwrap();
    }
    let last = loss(&n).to_scalar::<f32>().unwrap();
    assert!(last < 0.5 * first, "loss {first} -> {last}");
}

#[test]
fn a_second_stage_starts_from_the_first_stages_weights() {
    let base_scratch = crate::support::scratch();
    let base = base_scratch.path().join("base");
    let (a, b, c) = (base.join("a"), base.join("b"), base.join("c"));
    let first = TrainOptions { steps: 2, heldout_n: 20, ..tiny_opts(&a) };
    train::train(&first, 100, &mut |_, _| Ok(())).unwrap();
    // A near-zero learning rate: the second stage's weights are the first stage's, not a
    // fresh (differently seeded) init.
    let second = TrainOptions { steps: 1, lr: 1e-12, seed: 9, init: Some(a.clone()), ..tiny_opts(&b) };
    train::train(&second, 100, &mut |_, _| Ok(())).unwrap();
    let load = |d: &std::path::Path| candle_core::safetensors::load(d.join("model.safetensors"), &Device::Cpu).unwrap();
    let (wa, wb) = (load(&a), load(&b));
    assert_eq!(wa.len(), wb.len());
    for (name, t) in &wa {
        let diff = (t - &wb[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "{name} moved by {diff}: not started from stage one");
    }
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["d2c_training"]["init_stage"]["steps"], 2, "the config records the stage it started from");
    // Another shape cannot start from these weights: a named error, nothing trained.
    let wider = TrainOptions { d_model: 64, init: Some(a.clone()), ..tiny_opts(&c) };
    let err = train::train(&wider, 100, &mut |_, _| Ok(())).unwrap_err().to_string();
    assert!(err.contains("model.safetensors") && err.contains("cannot start from"), "{err}");
}

#[test]
fn a_curriculum_stage_keeps_the_presets_held_out_set() {
    let full = TrainOptions::long_tasks();
    // One kind, listed twice (drawn twice as often): the same held-out tasks, of all the
    // preset's kinds.
    let stage = TrainOptions { kinds: vec!["lsbadd".into(), "lsbadd".into(), "longcopy".into()], ..TrainOptions::long_tasks() };
    stage.validate().unwrap();
    let held = stage.heldout();
    assert_eq!(held, full.heldout());
    assert_eq!(held.iter().map(|e| e.task.as_str()).collect::<std::collections::HashSet<_>>().len(), train::tasks::LONG_PRESET_KINDS.len());
    let typo = TrainOptions { heldout_kinds: vec!["longsrot".into()], ..TrainOptions::long_tasks() };
    assert!(typo.validate().unwrap_err().to_string().contains("longsrot"));
}

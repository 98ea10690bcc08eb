//! Training a tiny masked-diffusion LLaDA on the synthetic task language, on CPU.
//!
//! LLaDA's SFT recipe: the prompt stays clean; the response (answer, then EOS up to a random
//! canvas length) is masked token by token with probability `t ~ U(eps, 1)`, and the loss is
//! the cross-entropy on masked tokens weighted `1 / t`, normalised by the response length.
//! The output is a Hugging Face style folder that [`crate::model::Llada`] loads as is.

pub mod net;
pub mod tasks;
pub mod vocab;

use crate::error::{Error, Result};
use crate::model::LladaConfig;
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use net::TrainNet;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tasks::Example;

/// The kinds the shipped model is trained on (see the README for why not all seven).
pub const DEFAULT_KINDS: [&str; 4] = ["add", "sort", "reverse", "copy"];

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainOptions {
    pub out: PathBuf,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub warmup: usize,
    pub weight_decay: f64,
    pub seed: u64,
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    pub mlp_hidden: usize,
    /// End the run after this many steps, keeping the learning-rate schedule of `steps` (how
    /// the shipped long-answer model was cut short for time; None = run all `steps`).
    #[serde(default)]
    pub stop_after: Option<usize>,
    /// Canvas (answer + EOS padding) length range seen in training.
    pub gen_min: usize,
    pub gen_max: usize,
    /// This share of examples gets a short canvas instead: the answer plus 1..=`short_pad`
    /// EOS. Long EOS tails cost compute and teach little once the model has seen some, so
    /// the long-answer preset spends most steps near the answer and the rest on full canvases.
    #[serde(default)]
    pub short_frac: f64,
    #[serde(default)]
    pub short_pad: usize,
    /// Held-out examples are generated from this seed and never trained on.
    pub heldout_seed: u64,
    pub heldout_n: usize,
    /// Task kinds to train on (empty = all of [`tasks::KINDS`]).
    pub kinds: Vec<String>,
    /// Kinds of the held-out set (empty = `kinds`): a preset's, so a run on some of its kinds
    /// (a curriculum stage) still never trains on, and probes with, the preset's held-out file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heldout_kinds: Vec<String>,
    /// Start from this model folder's weights instead of a seeded init (a second stage of
    /// training: same shape, fresh optimiser and schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            out: PathBuf::from("models/tiny-tasks"),
            steps: 12000,
            batch: 32,
            lr: 1e-3,
            warmup: 200,
            weight_decay: 0.01,
            seed: 0,
            d_model: 128,
            layers: 4,
            heads: 8,
            mlp_hidden: 384,
            stop_after: None,
            gen_min: 8,
            gen_max: 12,
            short_frac: 0.0,
            short_pad: 0,
            heldout_seed: 1,
            heldout_n: 350,
            kinds: DEFAULT_KINDS.iter().map(|s| s.to_string()).collect(),
            heldout_kinds: Vec::new(),
            init: None,
        }
    }
}

impl TrainOptions {
    /// `d2c train --preset long-tasks`: the long-answer model (issue: caches where they
    /// matter). Answers of 24-32 tokens; three quarters of the examples on short canvases
    /// (answer + 1-16 EOS), the rest on 48-128; the tiny model's network; the run that made
    /// `models/long-tasks`.
    pub fn long_tasks() -> Self {
        TrainOptions {
            out: PathBuf::from("models/long-tasks"),
            steps: 1500,
            stop_after: None,
            d_model: 128,
            layers: 4,
            heads: 8,
            mlp_hidden: 384,
            gen_min: 48,
            gen_max: 128,
            short_frac: 0.75,
            short_pad: 16,
            heldout_seed: 11,
            heldout_n: 160,
            kinds: tasks::LONG_PRESET_KINDS.iter().map(|s| s.to_string()).collect(),
            heldout_kinds: tasks::LONG_PRESET_KINDS.iter().map(|s| s.to_string()).collect(),
            ..TrainOptions::default()
        }
    }

    /// The held-out tasks: never trained on, seeded by `heldout_seed`.
    pub fn heldout(&self) -> Vec<Example> {
        let kinds = if self.heldout_kinds.is_empty() { &self.kinds } else { &self.heldout_kinds };
        tasks::heldout(self.heldout_seed, self.heldout_n, kinds)
    }

    /// How many steps the run takes: `steps`, or fewer with `stop_after`.
    pub fn last_step(&self) -> usize {
        self.stop_after.map_or(self.steps, |n| n.min(self.steps))
    }

    /// Every reason this run cannot start, before anything is written.
    pub fn validate(&self) -> Result<()> {
        if let Some(k) = self.kinds.iter().chain(&self.heldout_kinds).find(|k| !tasks::all_kinds().contains(&k.as_str())) {
            return Err(Error::Input(format!("unknown task kind `{k}` (kinds: {})", tasks::all_kinds().join(", "))));
        }
        if !(0.0..=1.0).contains(&self.short_frac) {
            return Err(Error::Input(format!("short_frac {} is not in 0..=1", self.short_frac)));
        }
        if self.steps == 0 || self.batch == 0 {
            return Err(Error::Input("steps and batch must be positive".into()));
        }
        config(self).validate().map_err(|m| Error::Input(format!("model shape: {m}")))
    }
}

/// The config.json of the trained model.
pub fn config(o: &TrainOptions) -> LladaConfig {
    let vocab = vocab::tokens().len();
    let mut c: LladaConfig = serde_json::from_str("{}").unwrap_or_else(|_| unreachable!("all fields have defaults"));
    c.d_model = o.d_model;
    c.n_heads = o.heads;
    c.n_kv_heads = Some(o.heads);
    c.n_layers = o.layers;
    c.mlp_hidden_size = Some(o.mlp_hidden);
    c.vocab_size = vocab;
    c.embedding_size = Some(vocab);
    // Room for the longest prompt (~45 tokens for 19-digit additions) and canvas.
    c.max_sequence_length = if o.gen_max <= 64 { 128 } else { (o.gen_max + 64).next_power_of_two() };
    c.rope_theta = 10000.0;
    c.mask_token_id = vocab::id_of(vocab::MASK);
    c.eos_token_id = vocab::id_of(vocab::EOS);
    c.pad_token_id = Some(vocab::id_of(vocab::PAD));
    c.torch_dtype = "float32".into();
    c
}

/// One training batch, right-padded.
pub struct TrainBatch {
    pub ids: Tensor,
    pub targets: Tensor,
    pub key_ok: Tensor,
    pub weight: Tensor,
    pub masked: usize,
}

pub struct Encoder {
    tok: tokenizers::Tokenizer,
}

impl Encoder {
    pub fn new(tok: tokenizers::Tokenizer) -> Self {
        Encoder { tok }
    }
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tok.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?.get_ids().to_vec())
    }
}

/// `n` fresh examples (none of them in `exclude`) as (prompt ids, response ids), the response
/// being the answer padded with EOS to a random canvas length in `gen_min..=gen_max`.
pub fn sample_seqs(enc: &Encoder, o: &TrainOptions, exclude: &HashSet<String>, rng: &mut impl Rng, n: usize) -> Result<Vec<(Vec<u32>, Vec<u32>)>> {
    let eos = vocab::id_of(vocab::EOS);
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        let ex = if o.kinds.is_empty() { tasks::sample_any(rng) } else { tasks::sample(&o.kinds[rng.gen_range(0..o.kinds.len())], rng) };
        if exclude.contains(&ex.prompt) {
            continue;
        }
        let (p, mut r) = (enc.encode(&ex.prompt)?, enc.encode(&ex.answer)?);
        let shortest = r.len() + 1;
        let g = if o.short_pad > 0 && rng.gen_bool(o.short_frac.clamp(0.0, 1.0)) {
            rng.gen_range(shortest..=(shortest + o.short_pad - 1).min(o.gen_max.max(shortest)))
        } else {
            rng.gen_range(shortest.max(o.gen_min)..=o.gen_max.max(shortest))
        };
        r.resize(g, eos);
        seqs.push((p, r));
    }
    Ok(seqs)
}

/// Build a batch of fresh examples, masked at random.
pub fn make_batch(enc: &Encoder, o: &TrainOptions, exclude: &HashSet<String>, rng: &mut impl Rng, dev: &Device) -> Result<TrainBatch> {
    let seqs = sample_seqs(enc, o, exclude, rng, o.batch)?;
    to_batch(&seqs, rng, dev)
}

/// Right-pad `seqs` into one batch and mask each response token with probability
/// `t ~ U(eps, 1)` drawn per sequence.
pub fn to_batch(seqs: &[(Vec<u32>, Vec<u32>)], rng: &mut impl Rng, dev: &Device) -> Result<TrainBatch> {
    let (mask, pad) = (vocab::id_of(vocab::MASK), vocab::id_of(vocab::PAD));
    let l = seqs.iter().map(|(p, r)| p.len() + r.len()).max().unwrap_or(1);
    let b = seqs.len();
    let (mut ids, mut targets) = (vec![pad; b * l], vec![pad; b * l]);
    let (mut key_ok, mut weight) = (vec![0f32; b * l], vec![0f32; b * l]);
    let mut masked = 0;
    for (s, (p, r)) in seqs.iter().enumerate() {
        let t: f64 = rng.gen();
        let pm = (1.0 - 1e-3) * t + 1e-3;
        for (i, &x) in p.iter().chain(r.iter()).enumerate() {
            let k = s * l + i;
            ids[k] = x;
            targets[k] = x;
            key_ok[k] = 1.0;
            if i >= p.len() && rng.gen_bool(pm) {
                ids[k] = mask;
                weight[k] = (1.0 / (pm * r.len() as f64 * b as f64)) as f32;
                masked += 1;
            }
        }
    }
    Ok(TrainBatch {
        ids: Tensor::from_vec(ids, (b, l), dev)?,
        targets: Tensor::from_vec(targets, (b, l), dev)?,
        key_ok: Tensor::from_vec(key_ok, (b, l), dev)?,
        weight: Tensor::from_vec(weight, (b, l), dev)?,
        masked,
    })
}

/// Progress of a training run, reported every `log_every` steps.
#[derive(Debug, Clone)]
pub struct TrainProgress {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub elapsed_s: f64,
}

/// Linear warm-up, then cosine decay to 10% of the peak.
pub fn lr_at(o: &TrainOptions, step: usize) -> f64 {
    if step < o.warmup {
        return o.lr * (step + 1) as f64 / o.warmup as f64;
    }
    let frac = (step - o.warmup) as f64 / (o.steps.saturating_sub(o.warmup)).max(1) as f64;
    o.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * frac.min(1.0)).cos()))
}

/// Train from scratch and write `config.json`, `tokenizer.json`, `generation_config.json` and
/// `model.safetensors` into `o.out`. `on_progress` is called every `log_every` steps and may
/// save intermediate checkpoints through [`save`].
pub fn train(o: &TrainOptions, log_every: usize, on_progress: &mut dyn FnMut(&TrainProgress, &VarMap) -> Result<()>) -> Result<()> {
    o.validate()?;
    let cfg = config(o);
    // Read the starting weights' provenance before anything in `out` is written (it may be
    // the same folder).
    let init_stage = o.init.as_deref().map(earlier_stage).transpose()?;
    std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, e))?;
    let tok = vocab::write_tokenizer(&o.out)?;
    let enc = Encoder::new(tok);
    let dev = Device::Cpu;
    let mut vm = VarMap::new();
    let net = TrainNet::new(&cfg, VarBuilder::from_varmap(&vm, candle_core::DType::F32, &dev), &dev)?;
    net::seed_init(&vm, &cfg, o.seed)?;
    if let Some(dir) = &o.init {
        let path = dir.join("model.safetensors");
        vm.load(&path).map_err(|e| Error::Input(format!("{}: cannot start from these weights: {e}", path.display())))?;
    }
    write_configs(&o.out, &cfg, o, init_stage)?;
    let exclude: HashSet<String> = o.heldout().into_iter().map(|e| e.prompt).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(o.seed);
    let params = ParamsAdamW { lr: o.lr, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: o.weight_decay };
    let mut opt = AdamW::new(vm.all_vars(), params)?;
    let start = Instant::now();
    let mut acc = 0.0;
    let mut queue: Vec<Vec<(Vec<u32>, Vec<u32>)>> = Vec::new();
    let last = o.last_step();
    for step in 0..last {
        let lr = lr_at(o, step);
        opt.set_learning_rate(lr);
        if queue.is_empty() {
            // Draw 8 batches at once and group them by length: prompts differ by kind (7 to 24
            // tokens over all seven kinds) and canvases by up to 4, so padding a mixed batch to its
            // longest member wastes a large share of the compute.
            let mut pool = sample_seqs(&enc, o, &exclude, &mut rng, 8 * o.batch)?;
            pool.sort_by_key(|(p, r)| p.len() + r.len());
            queue = pool.chunks(o.batch).map(|c| c.to_vec()).collect();
            queue.shuffle(&mut rng);
        }
        let seqs = queue.pop().unwrap_or_default();
        let b = to_batch(&seqs, &mut rng, &dev)?;
        let logits = net.forward(&b.ids, &b.key_ok)?;
        let loss = net::masked_diffusion_loss(&logits, &b.targets, &b.weight)?;
        opt.backward_step(&loss)?;
        acc += loss.to_scalar::<f32>()? as f64;
        if (step + 1) % log_every == 0 || step + 1 == last {
            let n = if (step + 1) % log_every == 0 { log_every } else { (step + 1) % log_every };
            on_progress(&TrainProgress { step: step + 1, loss: acc / n as f64, lr, elapsed_s: start.elapsed().as_secs_f64() }, &vm)?;
            acc = 0.0;
        }
    }
    save(&vm, &o.out)
}

/// Write the weights as `model.safetensors` (LLaDA tensor names).
pub fn save(vm: &VarMap, dir: &Path) -> Result<()> {
    let path = dir.join("model.safetensors");
    vm.save(&path).map_err(|e| Error::io(&path, e))
}

/// The `d2c_training` record of the model in `dir` (and of its own earlier stages): what a
/// second-stage run started from.
fn earlier_stage(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let c: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    Ok(c.get("d2c_training").cloned().unwrap_or(serde_json::Value::Null))
}

/// `init_stage`: the `d2c_training` record of the weights this run started from, kept as
/// `d2c_training.init_stage` so a staged model's config tells its whole history.
pub fn write_configs(dir: &Path, cfg: &LladaConfig, o: &TrainOptions, init_stage: Option<serde_json::Value>) -> Result<()> {
    let mut c = serde_json::to_value(cfg).map_err(|e| Error::Other(e.to_string()))?;
    if let Some(m) = c.as_object_mut() {
        m.insert("architectures".into(), serde_json::json!(["LLaDAModelLM"]));
        m.insert("model_type".into(), serde_json::json!("llada"));
        let mut t = serde_json::to_value(o).map_err(|e| Error::Other(e.to_string()))?;
        if let (Some(t), Some(stage)) = (t.as_object_mut(), init_stage) {
            t.insert("init_stage".into(), stage);
        }
        m.insert("d2c_training".into(), t);
    }
    let write = |name: &str, v: &serde_json::Value| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_string_pretty(v).unwrap_or_default()).map_err(|e| Error::io(&p, e))
    };
    write("config.json", &c)?;
    // Decode defaults for `d2c run`/`eval` on this model: the canvas length it was trained on.
    let gen = o.gen_max;
    write(
        "generation_config.json",
        &serde_json::json!({"max_new_tokens": gen, "block_length": gen, "eos_token_id": cfg.eos_token_id, "mask_token_id": cfg.mask_token_id}),
    )
}

/// Write `examples` as JSON lines.
pub fn write_jsonl(path: &Path, examples: &[Example]) -> Result<()> {
    let text: String = examples.iter().map(|e| serde_json::to_string(e).unwrap_or_default() + "\n").collect();
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Read a tasks file: one `{"prompt": ..., "answer": ...}` object per line.
pub fn read_jsonl(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example =
            serde_json::from_str(line).map_err(|e| Error::Input(format!("{}:{}: {e} (want {{\"prompt\": ..., \"answer\": ...}})", path.display(), i + 1)))?;
        out.push(ex);
    }
    if out.is_empty() {
        return Err(Error::Input(format!("{}: no tasks", path.display())));
    }
    Ok(out)
}

//! What every front door (`run`, `bench`, `eval`, `snapshot`) shares, in the library so none
//! of them is a second executor: finding the model (a folder, a `.gguf` file, or the tiny model
//! compiled into the binary), loading it with its tokenizer, chat template and stop tokens,
//! and turning a policy file plus `name=value` settings into a checked plan that takes the
//! model's `generation_config.json` suggestions first.

use crate::chat::{prompt_ids, ChatTemplate, Message};
use crate::compile::{compile, Compiled, Failed, Source};
use crate::error::{Error, Result};
use crate::generation_config::{stop_ids, GenerationConfig, Suggested};
use crate::model::linear::WeightType;
use crate::model::tokenizer::TextTokenizer;
use crate::model::{DiffusionModel, Transformer};
use crate::runtime::{generate, DecodeSettings, RunOptions, RunOutput};
use candle_core::Device;
use std::path::{Path, PathBuf};

/// The trained tiny model (`d2c train`, see README), so a first run needs no download.
const EMBEDDED_MODEL: [(&str, &[u8]); 5] = [
    ("config.json", include_bytes!("../models/tiny-tasks/config.json")),
    ("generation_config.json", include_bytes!("../models/tiny-tasks/generation_config.json")),
    ("model.safetensors", include_bytes!("../models/tiny-tasks/model.safetensors")),
    ("tokenizer.json", include_bytes!("../models/tiny-tasks/tokenizer.json")),
    // PC-Sampler's token-frequency table (scripts/token_freq.py over tasks/heldout.jsonl).
    ("token_freq.json", include_bytes!("../models/tiny-tasks/token_freq.json")),
];

/// The device of this process, opened once: every model and tensor must share one candle
/// device (two `new_cuda(0)` calls are two devices whose tensors do not mix).
static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();

/// Where models load: `cpu`, `cuda` / `cuda:N` (GPU N), or `auto` (the first GPU when the binary
/// was built with the `cuda` feature and one is present, else the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("`{other}` is not a device (cpu, cuda, cuda:N, auto)")),
        }
    }
}

/// Fix the device for this process (the CLI's `--device`), checking that it can be opened.
pub fn select_device(choice: DeviceChoice) -> Result<()> {
    let d = open_device(choice)?;
    let _ = DEVICE.set(d);
    Ok(())
}

fn open_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => {
            #[cfg(feature = "cuda")]
            if let Ok(d) = Device::new_cuda(0) {
                return Ok(d);
            }
            Ok(Device::Cpu)
        }
        #[cfg(feature = "cuda")]
        // candle appends a backtrace to driver errors: the first line names the failure.
        DeviceChoice::Cuda(n) => {
            Device::new_cuda(n).map_err(|e| Error::Input(format!("--device cuda:{n}: {}", e.to_string().lines().next().unwrap_or("no such GPU"))))
        }
        #[cfg(not(feature = "cuda"))]
        DeviceChoice::Cuda(n) => {
            Err(Error::Input(format!("--device cuda:{n}: this binary was built without the `cuda` feature (scripts/build-cuda.sh builds one)")))
        }
    }
}

/// The device models load on: `--device`, else the first GPU when built with `cuda` and one
/// is present, else the CPU.
pub fn device() -> Device {
    DEVICE.get_or_init(|| open_device(DeviceChoice::Auto).unwrap_or(Device::Cpu)).clone()
}

/// The model path: `arg`, or the embedded tiny model written to a temp folder.
pub fn model_dir(arg: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p.to_path_buf());
    }
    // Keyed by a hash of the contents, so a rebuilt binary never reuses another model's files.
    let hash = EMBEDDED_MODEL.iter().flat_map(|(_, b)| b.iter()).fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3));
    let dir = std::env::temp_dir().join(format!("d2c-embedded-{hash:016x}"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for (name, bytes) in EMBEDDED_MODEL {
        let p = dir.join(name);
        if std::fs::metadata(&p).map(|m| m.len() as usize != bytes.len()).unwrap_or(true) {
            // Written aside and renamed into place: another thread or process loading the
            // embedded model at the same time sees the whole file or none of it.
            static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!(".{name}.{}-{n}", std::process::id()));
            std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(dir)
}

pub fn is_gguf(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gguf")
}

/// The folder holding a model's side files (generation_config.json, tokenizer_config.json):
/// the model folder itself, or the folder a `.gguf` file sits in.
pub fn folder_of(model: &Path) -> PathBuf {
    if is_gguf(model) {
        model.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }).unwrap_or(Path::new(".")).to_path_buf()
    } else {
        model.to_path_buf()
    }
}

/// Load a LLaDA or Dream folder (the family comes from its config.json) or a `.gguf` file,
/// and its tokenizer (for a GGUF file: a tokenizer beside it, else the one embedded in it).
pub fn load_model(dir: &Path, ty: WeightType) -> Result<(Transformer, Option<TextTokenizer>)> {
    if is_gguf(dir) {
        let (model, content) = crate::model::gguf::load(dir, ty, &device())?;
        let tok = match TextTokenizer::from_dir(&folder_of(dir))? {
            Some(t) => Some(t),
            None => TextTokenizer::from_gguf(&content.metadata)?,
        };
        return Ok((model, tok));
    }
    let model = crate::model::load_as(dir, ty, &device())?;
    let tok = TextTokenizer::from_dir(dir)?;
    Ok((model, tok))
}

/// The parameters a policy declares (none if it does not parse; compiling reports why).
pub fn declared_params(src: &Source) -> Vec<String> {
    crate::syntax::parse(&src.text).map(|f| f.params.iter().map(|p| p.name.name.clone()).collect()).unwrap_or_default()
}

/// The `name=value` settings of `sets` that name a parameter `src` declares: one `--set` list
/// can serve several policies (a table of policies, a folder of snapshots).
pub fn sets_for(src: &Source, sets: &[String]) -> Vec<String> {
    let names = declared_params(src);
    sets.iter().filter(|s| s.split_once('=').is_some_and(|(k, _)| names.iter().any(|d| d == k.trim()))).cloned().collect()
}

/// A folder's settings for a policy: the `--set` strings to apply, what each came from, and notes.
pub type ModelDefaults = (Vec<String>, Vec<Suggested>, Vec<String>);

/// Decode settings a model folder suggests in `generation_config.json`, as `name=value`
/// for the parameters `src` declares; they come before the user's `sets`, which win. A
/// malformed file is an error. Returns the settings, what was applied from where, and notes
/// on what could not apply.
pub fn model_defaults(dir: &Path, src: &Source, user_sets: &[String]) -> Result<ModelDefaults> {
    let gc = GenerationConfig::from_dir(&folder_of(dir))?;
    let declared = declared_params(src);
    let user = |name: &str| user_sets.iter().rev().find_map(|s| s.split_once('=').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim().to_string()));
    // `steps` turns into tokens_per_step against the gen_length the decode will use.
    let gen = user("gen_length")
        .and_then(|g| g.parse().ok())
        .or(gc.max_new_tokens)
        .or_else(|| compile(src, &[], &mut |_, _| {}).ok().and_then(|c| c.plan.schedule.gen_length.as_usize()));
    let (suggested, notes) = gc.suggestions(&declared, gen);
    let applied: Vec<Suggested> = suggested.into_iter().filter(|s| user(&s.param).is_none()).collect();
    Ok((applied.iter().map(|s| format!("{}={}", s.param, s.value)).collect(), applied, notes))
}

/// A loaded model with everything a decode needs beside the policy.
pub struct Engine {
    pub path: PathBuf,
    pub model: Transformer,
    pub tokenizer: Option<std::sync::Arc<TextTokenizer>>,
    pub template: Option<ChatTemplate>,
    /// Where the printed answer ends: generation_config's EOS ids, the model's EOS and the
    /// end-of-turn tokens the tokenizer knows.
    pub stops: Vec<u32>,
}

/// A policy compiled against a model folder, with the folder's settings recorded and the plan
/// checked executable.
pub struct Prepared {
    pub compiled: Compiled,
    /// The plan as the runtime reads it (gen_length, block_length, ... as numbers).
    pub settings: DecodeSettings,
    pub applied: Vec<Suggested>,
    pub notes: Vec<String>,
}

/// `src` with the settings the model at `path` suggests, then `user_sets` (which win):
/// the diagnostics when the policy is invalid. What [`Engine::prepare`] does, before (or
/// without) loading the weights, so a front door can report a bad policy first.
pub fn prepare(path: &Path, src: &Source, user_sets: &[String]) -> Result<std::result::Result<Prepared, Failed>> {
    let (mut sets, applied, notes) = model_defaults(path, src, user_sets)?;
    sets.extend(user_sets.iter().cloned());
    match compile(src, &sets, &mut |_, _| {}) {
        Ok(mut compiled) => {
            // A relative file (a `file` parameter) that is not there from here is looked up in
            // the model's folder: a checkpoint ships its own token_freq.json.
            let side = folder_of(path);
            compiled.plan.vals_mut(&mut |v| {
                if let crate::plan::Val::Path(p) = v {
                    let rel = Path::new(p.as_str());
                    if !p.is_empty() && rel.is_relative() && !rel.exists() && side.join(rel).exists() {
                        *p = side.join(rel).to_string_lossy().into_owned();
                    }
                }
            });
            let settings = DecodeSettings::from_plan(&compiled.plan)?;
            Ok(Ok(Prepared { compiled, settings, applied, notes }))
        }
        Err(f) => Ok(Err(f)),
    }
}

impl Engine {
    /// `model` (None: the embedded tiny model) with weights held as `ty`.
    pub fn load(model: Option<&Path>, ty: WeightType) -> Result<Engine> {
        Self::load_with(model, ty, None)
    }

    /// [`Engine::load`] with a chat template file instead of the model's own.
    pub fn load_with(model: Option<&Path>, ty: WeightType, chat_template: Option<&Path>) -> Result<Engine> {
        let path = model_dir(model)?;
        let (model, tokenizer) = load_model(&path, ty)?;
        let side = folder_of(&path);
        let template = ChatTemplate::from_dir(&side, chat_template)?;
        let gc = GenerationConfig::from_dir(&side)?;
        let stops = stop_ids(&gc, model.info().eos_id, tokenizer.as_ref());
        Ok(Engine { path, model, tokenizer: tokenizer.map(std::sync::Arc::new), template, stops })
    }

    /// `src` with the model's suggested settings, then `user_sets`; the diagnostics when the
    /// policy is invalid.
    pub fn prepare(&self, src: &Source, user_sets: &[String]) -> Result<std::result::Result<Prepared, Failed>> {
        prepare(&self.path, src, user_sets)
    }

    /// A user message as prompt ids: through the chat template when the model has one, else
    /// the text itself.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let tok = self.tokenizer.as_ref().ok_or_else(|| Error::input(format!("{}: no tokenizer; give prompt ids instead", self.path.display())))?;
        let ids = prompt_ids(tok.as_ref(), self.template.as_ref(), &[Message::new("user", text)], false)?;
        if ids.is_empty() {
            return Err(Error::input("the prompt encodes to no tokens"));
        }
        Ok(ids)
    }

    /// Check `prompts` against the vocabulary and the model's length for `plan`.
    pub fn check_prompts(&self, prompts: &[Vec<u32>], gen_length: usize) -> Result<()> {
        let info = self.model.info();
        for p in prompts {
            if p.is_empty() {
                return Err(Error::input("empty prompt"));
            }
            if let Some(&id) = p.iter().find(|&&x| x as usize >= info.logits_width) {
                return Err(Error::TokenOutOfRange { id, width: info.logits_width });
            }
            if p.len() + gen_length > info.max_seq_len {
                return Err(Error::PromptTooLong { prompt: p.len(), gen: gen_length, max: info.max_seq_len });
            }
        }
        Ok(())
    }

    /// Decode `prompts` with a prepared policy.
    pub fn generate(&self, prepared: &Prepared, prompts: &[Vec<u32>], mut opts: RunOptions) -> Result<RunOutput> {
        self.check_prompts(prompts, prepared.settings.gen)?;
        if opts.stop_ids.is_empty() {
            opts.stop_ids = self.stops.clone();
        }
        generate(&self.model, &prepared.compiled.plan, prompts, opts)
    }

    /// Token text for pictures and snapshots (the id in brackets without a tokenizer).
    pub fn token_text(&self, id: u32) -> String {
        match &self.tokenizer {
            Some(t) => t.piece(id),
            None => format!("[{id}]"),
        }
    }
}

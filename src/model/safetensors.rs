//! Opening a Hugging Face checkpoint folder as is: config.json, one `model.safetensors` or a
//! sharded `model.safetensors.index.json`, memory-mapped, with every tensor checked by name,
//! shape and dtype before use, and built into a network by its family's tensor names.

use super::family::Family;
use super::linear::{Embed, Proj, WeightType};
use super::transformer::{Block, BlockWeights, Parts, Transformer};
use super::ModelInfo;
use crate::error::{Error, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub struct Weights {
    dir: PathBuf,
    st: MmapedSafetensors,
    dtype: DType,
    device: Device,
}

/// The safetensors files of a checkpoint folder.
pub fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::io(dir, "not a directory (expected a Hugging Face model folder)"));
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::io(&index, format!("invalid JSON: {e}")))?;
        let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::io(&index, "no `weight_map` object"))?;
        let files: BTreeSet<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
        let mut out = Vec::new();
        for f in files {
            let p = dir.join(&f);
            if !p.is_file() {
                return Err(Error::io(&p, "shard listed in model.safetensors.index.json is missing"));
            }
            out.push(p);
        }
        if out.is_empty() {
            return Err(Error::io(&index, "weight_map lists no shard files"));
        }
        return Ok(out);
    }
    Err(Error::io(dir, "no model.safetensors or model.safetensors.index.json"))
}

impl Weights {
    pub fn open(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let files = shard_files(dir)?;
        // SAFETY: the files are mapped read-only; d2c never writes to checkpoint files while
        // they are loaded, and concurrent modification by another process is out of scope.
        let st = unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| Error::io(dir, format!("cannot read safetensors: {e}")))?;
        Ok(Weights { dir: dir.to_path_buf(), st, dtype, device: device.clone() })
    }

    /// Load tensor `name`, checking its shape, converted to the model dtype.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get_as(name, shape, self.dtype)
    }

    pub fn get_as(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let view = self.st.get(name).map_err(|_| Error::MissingTensor { path: self.dir.clone(), name: name.to_string() })?;
        if view.shape() != shape {
            return Err(Error::TensorShape { name: name.into(), expected: shape.to_vec(), got: view.shape().to_vec() });
        }
        use safetensors::Dtype as S;
        match view.dtype() {
            S::F32 | S::BF16 | S::F16 => {}
            other => return Err(Error::TensorDtype { name: name.into(), dtype: format!("{other:?}") }),
        }
        let t = self.st.load(name, &self.device)?;
        Ok(t.to_dtype(dtype)?)
    }
}

/// Load checkpoint folder `dir` of family `fam`, its linear weights stored as `ty` (quantized
/// tensor by tensor as they are read).
pub fn load(fam: &dyn Family, dir: &Path, ty: WeightType, device: &Device) -> Result<Transformer> {
    let cfg = fam.read_config(&dir.join("config.json"))?;
    super::check_fits(&cfg.spec, ty)?;
    let w = Weights::open(dir, ty.load_dtype(), device)?;
    let names = fam.names();
    let s = cfg.spec.clone();
    let (d, kvd, ff, rows) = (s.d_model, s.kv_dim(), s.mlp_hidden, s.emb_rows);
    let weight = |name: &str| format!("{name}.weight");
    let embed_w = w.get(&weight(names.embed), &[rows, d])?;
    let mut blocks = Vec::with_capacity(s.n_layers);
    for i in 0..s.n_layers {
        let part = |k: usize| names.block_part(i, k);
        let shapes: [&[usize]; 9] = [&[d], &[d], &[d, d], &[kvd, d], &[kvd, d], &[d, d], &[ff, d], &[ff, d], &[d, ff]];
        let t = |k: usize| w.get(&weight(&part(k)), shapes[k]);
        let bias = |k: usize| w.get(&format!("{}.bias", part(k)), &[shapes[k][0]]);
        let bw = BlockWeights {
            attn_norm: t(0)?,
            ffn_norm: t(1)?,
            q: t(2)?,
            k: t(3)?,
            v: t(4)?,
            qkv_bias: if fam.qkv_bias() { Some((bias(2)?, bias(3)?, bias(4)?)) } else { None },
            o: t(5)?,
            gate: t(6)?,
            up: t(7)?,
            down: t(8)?,
            names: [2, 5, 6, 8].map(|k| weight(&part(k))),
        };
        blocks.push(Block::new(bw, ty)?);
    }
    let final_norm = w.get(&weight(names.final_norm), &[d])?;
    let head_w = if cfg.tied_head { embed_w.clone() } else { w.get(&weight(names.head), &[rows, d])? };
    let head = Proj::new(&weight(names.head), head_w, None, ty.for_head())?;
    let embed = Embed::new(&weight(names.embed), embed_w, ty)?;
    let info = ModelInfo::of(fam.arch(), &s, cfg.mask_id, cfg.eos_id, fam.logits_shift());
    Transformer::new(Parts { spec: s, info, embed, blocks, final_norm, head }, ty.activations(device), device)
}

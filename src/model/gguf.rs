//! GGUF files as llama.cpp's converter writes them for LLaDA (`llada` arch) and Dream
//! (`dream` arch): reading them as a [`Transformer`] (`--model FILE.gguf`) and writing them
//! from a safetensors folder (`d2c quantize`).
//!
//! Names: `token_embd`, `blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
//! ffn_gate, ffn_up, ffn_down}`, `output_norm`, `output` (absent = tied). The LLaDA converter
//! permutes the rows of q and k for GGML's interleaved RoPE (`undo_permute`); d2c undoes that
//! on read and applies it on write, on raw rows, so quantized tensors stay as they are.
//! `diffusion.shift_logits` absent means shifted, as llama.cpp reads it.

use super::family::{Family, ModelConfig};
use super::linear::{Embed, Proj, WeightType};
use super::registry::by_arch;
use super::transformer::{Block, Parts, Spec, Transformer};
use super::ModelInfo;
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use std::path::Path;
use std::sync::Arc;

/// llama.cpp's name of each block part, in [`super::family::BLOCK_PARTS`] order.
const PARTS: [&str; 9] = ["attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

struct Reader<'a> {
    path: &'a Path,
    content: Content,
    file: std::fs::File,
    device: Device,
}

impl Reader<'_> {
    fn meta(&self, key: &str) -> Result<&Value> {
        self.content.metadata.get(key).ok_or_else(|| Error::io(self.path, format!("missing GGUF metadata key `{key}`")))
    }
    fn uint(&self, key: &str) -> Result<usize> {
        self.meta(key)?.to_u64().map(|v| v as usize).map_err(|_| Error::io(self.path, format!("GGUF key `{key}` is not an unsigned integer")))
    }
    fn float(&self, key: &str) -> Result<f64> {
        let v = self.meta(key)?;
        v.to_f32().map(|x| x as f64).or_else(|_| v.to_f64()).map_err(|_| Error::io(self.path, format!("GGUF key `{key}` is not a float")))
    }
    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<QTensor> {
        let info = self.content.tensor_infos.get(name).ok_or_else(|| Error::MissingTensor { path: self.path.into(), name: name.into() })?;
        if info.shape.dims() != shape {
            return Err(Error::TensorShape { name: name.into(), expected: shape.to_vec(), got: info.shape.dims().to_vec() });
        }
        Ok(self.content.tensor(&mut self.file, name, &self.device)?)
    }
    /// A small tensor (norms, biases) as dense f32.
    fn dense(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        Ok(self.tensor(name, shape)?.dequantize(&self.device)?)
    }
}

fn is_float(t: GgmlDType) -> bool {
    matches!(t, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// Row `r` of a (rows x cols) tensor stored as `t`, in bytes.
fn row_bytes(t: GgmlDType, cols: usize) -> usize {
    cols / t.block_size() * t.type_size()
}

/// Reorder the rows of `q`: row `i` of the result is row `from(i)` of `q`.
fn permute_rows(q: &QTensor, from: impl Fn(usize) -> usize) -> Result<QTensor> {
    let (rows, cols) = q.shape().dims2()?;
    let rb = row_bytes(q.dtype(), cols);
    let data = q.data()?;
    let mut out = Vec::with_capacity(data.len());
    for i in 0..rows {
        let r = from(i);
        out.extend_from_slice(&data[r * rb..(r + 1) * rb]);
    }
    Ok(candle_core::quantized::ggml_file::qtensor_from_ggml(q.dtype(), &out, vec![rows, cols], &Device::Cpu)?)
}

/// llama.cpp's `permute` for heads of `hd` rows: GGUF row h*hd + 2j + t holds HF row
/// h*hd + t*hd/2 + j. `to_gguf` applies it, otherwise it is undone.
fn rope_permute(q: &QTensor, hd: usize, to_gguf: bool) -> Result<QTensor> {
    let half = hd / 2;
    let hf_of_gguf = move |g: usize| {
        let (h, r) = (g / hd, g % hd);
        h * hd + (r % 2) * half + r / 2
    };
    let gguf_of_hf = move |f: usize| {
        let (h, r) = (f / hd, f % hd);
        h * hd + 2 * (r % half) + r / half
    };
    if to_gguf {
        permute_rows(q, hf_of_gguf)
    } else {
        permute_rows(q, gguf_of_hf)
    }
}

/// Rows of several tensors stacked; one type is kept when they share it, else f32.
fn stack_rows(parts: &[QTensor]) -> Result<QTensor> {
    let t = parts[0].dtype();
    let cols = parts[0].shape().dims2()?.1;
    if parts.iter().all(|p| p.dtype() == t) {
        let mut data = Vec::new();
        let mut rows = 0;
        for p in parts {
            data.extend_from_slice(&p.data()?);
            rows += p.shape().dims2()?.0;
        }
        return Ok(candle_core::quantized::ggml_file::qtensor_from_ggml(t, &data, vec![rows, cols], &Device::Cpu)?);
    }
    let dense: Vec<Tensor> = parts.iter().map(|p| p.dequantize(&Device::Cpu)).collect::<candle_core::Result<_>>()?;
    Ok(QTensor::quantize(&Tensor::cat(&dense, 0)?, GgmlDType::F32)?)
}

/// A projection from a stored tensor: quantized tensors stay as stored; float ones follow `ty`.
fn proj(q: QTensor, bias: Option<Tensor>, ty: WeightType, name: &str) -> Result<Proj> {
    if is_float(q.dtype()) {
        return Proj::new(name, q.dequantize(&Device::Cpu)?, bias, ty);
    }
    Proj::from_qtensor(Arc::new(q), bias)
}

/// Read `path` (a `.gguf` file) as a network; float tensors are stored as `ty`.
pub fn load(path: &Path, ty: WeightType, device: &Device) -> Result<(Transformer, Content)> {
    if !device.is_cpu() {
        // Row permutations, stacking and candle's quantized matmuls here all work on host
        // memory; a GPU build reads checkpoint folders instead.
        return Err(Error::io(path, "GGUF files load on the CPU only (--device cpu); on a GPU, load the safetensors folder (e.g. --dtype bf16)"));
    }
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = match Content::read(&mut file) {
        Ok(c) => c,
        Err(e) => {
            // candle's parser names neither the tensor nor the type; find them ourselves.
            let why = unsupported_tensor(path).ok().flatten().unwrap_or_else(|| format!("not a readable GGUF file: {e}"));
            return Err(Error::io(path, why));
        }
    };
    let mut r = Reader { path, content, file, device: device.clone() };
    let arch = r.meta("general.architecture")?.to_string().map_err(|_| Error::io(path, "`general.architecture` is not a string"))?.clone();
    let family = by_arch(&arch).ok_or_else(|| Error::io(path, format!("GGUF architecture `{arch}` is not supported ({})", super::registry::arch_names())))?;
    let key = |k: &str| format!("{arch}.{k}");
    let n_heads = r.uint(&key("attention.head_count"))?;
    let kv_heads = if r.content.metadata.contains_key(&key("attention.head_count_kv")) { r.uint(&key("attention.head_count_kv"))? } else { n_heads };
    let d = r.uint(&key("embedding_length"))?;
    let emb_rows = r
        .content
        .tensor_infos
        .get("token_embd.weight")
        .map(|i| i.shape.dims()[0])
        .ok_or_else(|| Error::MissingTensor { path: path.into(), name: "token_embd.weight".into() })?;
    let spec = Spec {
        n_layers: r.uint(&key("block_count"))?,
        d_model: d,
        n_heads,
        kv_heads,
        mlp_hidden: r.uint(&key("feed_forward_length"))?,
        emb_rows,
        rms_eps: r.float(&key("attention.layer_norm_rms_epsilon"))?,
        rope_theta: r.float(&key("rope.freq_base"))?,
        max_len: r.uint(&key("context_length"))?,
    };
    if n_heads == 0 || kv_heads == 0 || d % n_heads != 0 || n_heads % kv_heads != 0 {
        return Err(Error::io(path, format!("{arch}.attention.head_count {n_heads} / head_count_kv {kv_heads} do not fit embedding_length {d}")));
    }
    let shift = match r.content.metadata.get("diffusion.shift_logits") {
        Some(v) => v.to_bool().map_err(|_| Error::io(path, "`diffusion.shift_logits` is not a bool"))?,
        None => true,
    };
    let mask_id =
        mask_id(&r.content).ok_or_else(|| Error::io(path, "missing GGUF metadata key `tokenizer.ggml.mask_token_id` (and no mask token in the vocabulary)"))?;
    let eos_id = r.uint("tokenizer.ggml.eos_token_id")? as u32;
    let (hd, kvd, ff) = (spec.head_dim(), spec.kv_dim(), spec.mlp_hidden);
    let mut blocks = Vec::with_capacity(spec.n_layers);
    for i in 0..spec.n_layers {
        let n = |p: &str| format!("blk.{i}.{p}.weight");
        let shapes: [Vec<usize>; 9] = [vec![d], vec![d], vec![d, d], vec![kvd, d], vec![kvd, d], vec![d, d], vec![ff, d], vec![ff, d], vec![d, ff]];
        let mut t: Vec<QTensor> = Vec::with_capacity(9);
        for (p, s) in PARTS.iter().zip(&shapes) {
            t.push(r.tensor(&n(p), s)?);
        }
        if family.gguf_permutes_qk() {
            t[2] = rope_permute(&t[2], hd, false)?;
            t[3] = rope_permute(&t[3], hd, false)?;
        }
        let bias = if family.qkv_bias() {
            let b = |r: &mut Reader, p: &str, w: usize| r.dense(&format!("blk.{i}.{p}.bias"), &[w]);
            Some(Tensor::cat(&[b(&mut r, "attn_q", d)?, b(&mut r, "attn_k", kvd)?, b(&mut r, "attn_v", kvd)?], 0)?)
        } else {
            None
        };
        let mut t = t.into_iter();
        let mut next = || t.next().ok_or_else(|| Error::Other("internal: block part missing".into()));
        let attn_norm = next()?.dequantize(device)?;
        let ffn_norm = next()?.dequantize(device)?;
        let qkv = stack_rows(&[next()?, next()?, next()?])?;
        let o = next()?;
        let gate_up = stack_rows(&[next()?, next()?])?;
        let down = next()?;
        blocks.push(Block::from_parts(
            attn_norm,
            ffn_norm,
            proj(qkv, bias, ty, &n("attn_q"))?,
            proj(o, None, ty, &n("attn_output"))?,
            proj(gate_up, None, ty, &n("ffn_gate"))?,
            proj(down, None, ty, &n("ffn_down"))?,
            ty.activations(device),
        )?);
    }
    let final_norm = r.dense("output_norm.weight", &[d])?;
    let embed_q = r.tensor("token_embd.weight", &[emb_rows, d])?;
    let head =
        if r.has("output.weight") { r.tensor("output.weight", &[emb_rows, d])? } else { QTensor::quantize(&embed_q.dequantize(device)?, embed_q.dtype())? };
    let head = proj(head, None, ty.for_head(), "output.weight")?;
    let embed = if is_float(embed_q.dtype()) { Embed::new("token_embd.weight", embed_q.dequantize(device)?, ty)? } else { Embed::Quant(Arc::new(embed_q)) };
    let info = ModelInfo::of(&arch, &spec, mask_id, eos_id, shift as usize);
    let model = Transformer::new(Parts { spec, info, embed, blocks, final_norm, head }, ty.activations(device), device)?;
    Ok((model, r.content))
}

/// `tokenizer.ggml.mask_token_id`, else the id of a mask token in the embedded vocabulary.
fn mask_id(c: &Content) -> Option<u32> {
    if let Some(v) = c.metadata.get("tokenizer.ggml.mask_token_id") {
        return v.to_u64().ok().map(|x| x as u32);
    }
    let tokens = c.metadata.get("tokenizer.ggml.tokens")?.to_vec().ok()?;
    tokens.iter().position(|t| t.to_string().map(|s| s == "<|mdm_mask|>" || s == "<|mask|>").unwrap_or(false)).map(|i| i as u32)
}

/// The metadata and tensors of a GGUF file for `model`'s checkpoint folder `dir`, every
/// linear weight stored as `ty` (norms and biases f32), named and permuted as llama.cpp's
/// converter names and permutes them.
pub fn write(dir: &Path, out: &Path, ty: WeightType) -> Result<usize> {
    let family = super::registry::of_config(&dir.join("config.json"))?;
    let config = family.read_config(&dir.join("config.json"))?;
    let w = super::safetensors::Weights::open(dir, DType::F32, &Device::Cpu)?;
    let tok = super::tokenizer::gguf_metadata(dir, config.spec.emb_rows)?;
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let header = Header { family, config, name };
    write_tensors(&header, &mut |n, s| w.get(n, s), tok, out, ty)
}

/// What a GGUF file says about its network besides the tensors.
pub struct Header {
    pub family: &'static dyn Family,
    pub config: ModelConfig,
    pub name: String,
}

/// A GGUF file of random N(0, 0.02) weights (norms 1) of `h`'s shape, every linear weight
/// written directly as `ty`: an 8B-shaped model without ever holding it in f32 (`d2c
/// make-model --gguf`).
pub fn write_random(h: &Header, out: &Path, ty: WeightType, seed: u64) -> Result<usize> {
    let mut random = super::random::RandomWeights::new(seed);
    // Every block gets the same random matrices (drawn once per shape): speed and memory do
    // not depend on the values, and drawing 8B normals would dominate the run.
    let mut drawn: std::collections::HashMap<(Vec<usize>, bool), Tensor> = std::collections::HashMap::new();
    let mut get = |name: &str, shape: &[usize]| -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if shape.len() == 1 && !name.ends_with(".bias") {
            return Ok(Tensor::ones(n, DType::F32, &Device::Cpu)?);
        }
        let key = (shape.to_vec(), name.ends_with(".bias"));
        if let Some(t) = drawn.get(&key) {
            return Ok(t.clone());
        }
        let t = random.normal(shape)?;
        drawn.insert(key, t.clone());
        Ok(t)
    };
    write_tensors(h, &mut get, vec![], out, ty)
}

/// Write `h`'s network under llama.cpp's tensor names, reading each tensor from `get` under the
/// family's checkpoint names.
fn write_tensors(h: &Header, get: &mut dyn FnMut(&str, &[usize]) -> Result<Tensor>, tok: Vec<(String, Value)>, out: &Path, ty: WeightType) -> Result<usize> {
    let (family, spec, arch) = (h.family, &h.config.spec, h.family.arch());
    let (mask, eos) = (h.config.mask_id, h.config.eos_id);
    let names = family.names();
    let (embed, norm) = (format!("{}.weight", names.embed), format!("{}.weight", names.final_norm));
    let head = (!h.config.tied_head).then(|| format!("{}.weight", names.head));
    let w = Getter { get: std::cell::RefCell::new(get) };
    let store = |name: &str, t: Tensor, ty: WeightType| -> Result<QTensor> {
        match ty {
            WeightType::Quant(q) => super::linear::quantize(name, &t, q),
            WeightType::Dense(DType::F16) => Ok(QTensor::quantize(&t, GgmlDType::F16)?),
            WeightType::Dense(DType::BF16) => Ok(QTensor::quantize(&t, GgmlDType::BF16)?),
            WeightType::Dense(_) => Ok(QTensor::quantize(&t, GgmlDType::F32)?),
        }
    };
    let f32t = |t: Tensor| -> Result<QTensor> { Ok(QTensor::quantize(&t, GgmlDType::F32)?) };
    let (d, kvd, ff, rows, hd) = (spec.d_model, spec.kv_dim(), spec.mlp_hidden, spec.emb_rows, spec.head_dim());
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    tensors.push(("token_embd.weight".into(), store(&embed, w.get(&embed, &[rows, d])?, ty)?));
    tensors.push(("output_norm.weight".into(), f32t(w.get(&norm, &[d])?)?));
    if let Some(h) = &head {
        tensors.push(("output.weight".into(), store(h, w.get(h, &[rows, d])?, ty.for_head())?));
    }
    let shapes: [Vec<usize>; 9] = [vec![d], vec![d], vec![d, d], vec![kvd, d], vec![kvd, d], vec![d, d], vec![ff, d], vec![ff, d], vec![d, ff]];
    for i in 0..spec.n_layers {
        for (k, part) in PARTS.iter().enumerate() {
            let src = format!("{}.weight", names.block_part(i, k));
            let t = w.get(&src, &shapes[k])?;
            let mut q = if k < 2 { f32t(t)? } else { store(&src, t, ty)? };
            if family.gguf_permutes_qk() && (k == 2 || k == 3) {
                q = rope_permute(&q, hd, true)?;
            }
            tensors.push((format!("blk.{i}.{part}.weight"), q));
            if family.qkv_bias() && (2..=4).contains(&k) {
                let b = format!("{}.bias", names.block_part(i, k));
                tensors.push((format!("blk.{i}.{part}.bias"), f32t(w.get(&b, &[shapes[k][0]])?)?));
            }
        }
    }
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String(h.name.clone())),
        (format!("{arch}.block_count"), Value::U32(spec.n_layers as u32)),
        (format!("{arch}.context_length"), Value::U32(spec.max_len as u32)),
        (format!("{arch}.embedding_length"), Value::U32(d as u32)),
        (format!("{arch}.feed_forward_length"), Value::U32(ff as u32)),
        (format!("{arch}.attention.head_count"), Value::U32(spec.n_heads as u32)),
        (format!("{arch}.attention.head_count_kv"), Value::U32(spec.kv_heads as u32)),
        (format!("{arch}.rope.freq_base"), Value::F32(spec.rope_theta as f32)),
        (format!("{arch}.rope.dimension_count"), Value::U32(hd as u32)),
        (format!("{arch}.attention.layer_norm_rms_epsilon"), Value::F32(spec.rms_eps as f32)),
        (format!("{arch}.attention.causal"), Value::Bool(false)),
        ("tokenizer.ggml.mask_token_id".into(), Value::U32(mask)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(eos)),
    ];
    if family.logits_shift() == 0 {
        // Readers take a file without the key as shifted (llama.cpp's Dream files).
        meta.push(("diffusion.shift_logits".into(), Value::Bool(false)));
    }
    meta.extend(tok);
    let mut f = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let m: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &m, &t).map_err(|e| Error::io(out, e))?;
    Ok(tensors.len())
}

/// The tensor source of [`write_tensors`], called like `Weights::get`.
/// Reads a tensor by name and expected shape.
type TensorFn<'a> = dyn FnMut(&str, &[usize]) -> Result<Tensor> + 'a;

struct Getter<'a> {
    get: std::cell::RefCell<&'a mut TensorFn<'a>>,
}

impl Getter<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        (self.get.borrow_mut())(name, shape)
    }
}

/// GGML type names by id, and the type candle reads that is closest to each it does not.
fn ggml_type(id: u32) -> (&'static str, &'static str) {
    match id {
        16 | 17 | 19 | 22 | 29 => ("iq1/iq2", "q2_k"),
        18 | 21 => ("iq3", "q3_k"),
        20 | 23 => ("iq4", "q4_k"),
        24..=28 => ("integer/f64", "f32"),
        34 | 35 => ("tq1_0/tq2_0", "q2_k"),
        39 => ("mxfp4", "q4_0"),
        _ => ("unknown", "q8_0"),
    }
}

/// The first tensor of a GGUF file (v2/v3 header) whose type candle cannot read, as a message
/// naming the tensor, the type and the nearest readable type; None if every type is readable.
fn unsupported_tensor(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
    let u32_ = |f: &mut std::io::BufReader<std::fs::File>| -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        f.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    };
    fn u64_(f: &mut impl Read) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        f.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn skip(f: &mut impl Read, n: u64) -> std::io::Result<()> {
        std::io::copy(&mut f.take(n), &mut std::io::sink()).map(|_| ())
    }
    fn string(f: &mut impl Read) -> std::io::Result<String> {
        let n = u64_(f)?;
        let mut b = vec![0u8; n.min(1 << 20) as usize];
        f.read_exact(&mut b)?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
    fn value(f: &mut impl Read, t: u32) -> std::io::Result<()> {
        let size = match t {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => return string(f).map(|_| ()),
            9 => {
                let mut b = [0u8; 4];
                f.read_exact(&mut b)?;
                let inner = u32::from_le_bytes(b);
                for _ in 0..u64_(f)? {
                    value(f, inner)?;
                }
                return Ok(());
            }
            _ => return Err(std::io::Error::other("unknown metadata type")),
        };
        skip(f, size)
    }
    if u32_(&mut f)? != 0x4655_4747 || u32_(&mut f)? < 2 {
        return Ok(None);
    }
    let (n_tensors, n_kv) = (u64_(&mut f)?, u64_(&mut f)?);
    for _ in 0..n_kv {
        string(&mut f)?;
        let t = u32_(&mut f)?;
        value(&mut f, t)?;
    }
    for _ in 0..n_tensors {
        let name = string(&mut f)?;
        let dims = u32_(&mut f)?;
        skip(&mut f, 8 * dims as u64)?;
        let ty = u32_(&mut f)?;
        u64_(&mut f)?;
        // The ids candle's reader accepts (GgmlDType::from_u32 is private to candle).
        if !matches!(ty, 0..=3 | 6..=15 | 30) {
            let (tname, near) = ggml_type(ty);
            return Ok(Some(format!("tensor `{name}` has GGML type {ty} ({tname}), which d2c cannot read; re-quantize the file to {near} (readable: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k .. q6_k)")));
        }
    }
    Ok(None)
}

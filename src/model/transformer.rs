//! The bidirectional transformer both families share: pre-norm blocks of RMSNorm, attention
//! with RoPE (grouped-query when the family has fewer K/V heads, optional q/k/v bias) and a
//! SwiGLU FFN, then a final norm and an untied (or tied) LM head.
//!
//! A family file (`llada.rs`, `dream.rs`) reads its own `config.json` into a [`Spec`] and maps
//! its tensor names onto [`BlockWeights`]; everything that computes lives here, once. The
//! forward is the cache primitive of [`DiffusionModel`]: any subset of rows, K/V written into
//! a caller-owned store, attention over every cached row. Beside it: several forwards in one
//! step (`many.rs`), dLLM-Cache's per-layer forward (`layered.rs`), benchmark timing
//! (`profile.rs`).

mod layered;
mod many;
mod profile;

use super::kv::KvStore;
use super::linear::{Embed, Proj, WeightType};
use super::{DiffusionModel, ForwardOutput, ForwardRequest, LayerCache, LayeredOutput, LayeredRequest, ModelInfo};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// Shapes and constants of the network, whatever the family calls them.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub kv_heads: usize,
    pub mlp_hidden: usize,
    /// Rows of the embedding and the LM head.
    pub emb_rows: usize,
    pub rms_eps: f64,
    pub rope_theta: f64,
    pub max_len: usize,
}

impl Spec {
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim()
    }
}

/// One block's tensors as a family's checkpoint names them, already shape-checked.
pub struct BlockWeights {
    pub attn_norm: Tensor,
    pub ffn_norm: Tensor,
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    /// q, k and v biases (Qwen2 / Dream); LLaDA has none.
    pub qkv_bias: Option<(Tensor, Tensor, Tensor)>,
    /// Checkpoint names of q, o, gate and down, for errors about the stacks they head.
    pub names: [String; 4],
    pub o: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    pub down: Tensor,
}

pub struct Block {
    attn_norm: Tensor,
    ffn_norm: Tensor,
    /// q, k and v projections stacked into one matrix: one skinny matmul instead of three
    /// (per-call packing and thread start-up dominate when only a few rows are recomputed).
    qkv: Proj,
    o: Proj,
    /// gate and up projections stacked, for the same reason.
    gate_up: Proj,
    down: Proj,
}

impl Block {
    /// One block's weights stored as `ty`; norms in the activation dtype.
    pub fn new(w: BlockWeights, ty: WeightType) -> Result<Self> {
        let bias = match w.qkv_bias {
            Some((bq, bk, bv)) => Some(Tensor::cat(&[bq, bk, bv], 0)?),
            None => None,
        };
        let act = ty.activations(w.attn_norm.device());
        let [q, o, gate, down] = &w.names;
        Ok(Block {
            attn_norm: w.attn_norm.to_dtype(act)?,
            ffn_norm: w.ffn_norm.to_dtype(act)?,
            qkv: Proj::new(q, Tensor::cat(&[w.q, w.k, w.v], 0)?, bias, ty)?,
            o: Proj::new(o, w.o, None, ty)?,
            gate_up: Proj::new(gate, Tensor::cat(&[w.gate, w.up], 0)?, None, ty)?,
            down: Proj::new(down, w.down, None, ty)?,
        })
    }

    /// A block from projections already stored (a GGUF file's).
    pub fn from_parts(attn_norm: Tensor, ffn_norm: Tensor, qkv: Proj, o: Proj, gate_up: Proj, down: Proj, act: DType) -> Result<Self> {
        Ok(Block { attn_norm: attn_norm.to_dtype(act)?, ffn_norm: ffn_norm.to_dtype(act)?, qkv, o, gate_up, down })
    }

    fn size_in_bytes(&self) -> usize {
        [&self.qkv, &self.o, &self.gate_up, &self.down].iter().map(|p| p.size_in_bytes()).sum()
    }
}

pub struct Transformer {
    spec: Spec,
    info: ModelInfo,
    embed: Embed,
    blocks: Vec<Block>,
    final_norm: Tensor,
    head: Proj,
    inv_freq: Vec<f32>,
    /// Activations and the K/V store.
    dtype: DType,
    device: Device,
    /// Per-op timing for `d2c bench --profile`; off (None) in normal runs.
    clock: std::cell::RefCell<Option<OpClock>>,
    /// Host-to-device copies made since the last forward returned (ids, RoPE angles, row
    /// indices): reported per step, since on a GPU each one is a synchronising transfer.
    uploads: std::cell::Cell<usize>,
}

const SETUP: &str = "setup (not reported)";

/// Time spent per op kind between [`Transformer::lap`] calls.
struct OpClock {
    last: std::time::Instant,
    spent: Vec<(&'static str, std::time::Duration)>,
}

/// RoPE frequencies, the reference's recipe: inv_freq = 1 / theta^(2i/hd), in f32.
fn inv_freq(hd: usize, theta: f64) -> Vec<f32> {
    (0..hd / 2).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / hd as f32)).collect()
}

/// (max_len, hd/2) cos and sin tables of the RoPE angles (position x inv_freq in f32), for
/// the training network.
pub(crate) fn rope_tables(max_len: usize, hd: usize, theta: f64, dev: &Device) -> Result<(Tensor, Tensor)> {
    let inv = inv_freq(hd, theta);
    let angles: Vec<f32> = (0..max_len).flat_map(|p| inv.iter().map(move |f| p as f32 * f)).collect();
    let cos = angles.iter().map(|a| a.cos()).collect();
    let sin = angles.iter().map(|a| a.sin()).collect();
    Ok((Tensor::from_vec(cos, (max_len, hd / 2), dev)?, Tensor::from_vec(sin, (max_len, hd / 2), dev)?))
}

/// softmax(scale · scores) over the last dimension, f32: the own vectorised pass on the CPU
/// ([`super::softmax`]), candle's ops elsewhere.
fn scaled_softmax(scores: &Tensor, scale: f64) -> Result<Tensor> {
    if scores.device().is_cpu() && scores.dtype() == DType::F32 {
        let s = scores.contiguous()?;
        let t = s.dims().last().copied().unwrap_or(0);
        let probs = {
            let (st, layout) = s.storage_and_layout();
            match &*st {
                candle_core::Storage::Cpu(c) => {
                    let v = &c.as_slice::<f32>()?[layout.start_offset()..layout.start_offset() + s.elem_count()];
                    super::softmax::scaled_softmax(v, t, scale as f32)
                }
                _ => return Ok(candle_nn::ops::softmax_last_dim(&(scores * scale)?)?),
            }
        };
        return Ok(Tensor::from_vec(probs, s.shape(), s.device())?);
    }
    Ok(candle_nn::ops::softmax_last_dim(&(scores * scale)?)?)
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm(x, w, eps as f32)?)
}

/// What a family's loader hands the shared network: its shape, what it tells the policy
/// layer, and its weights.
pub struct Parts {
    pub spec: Spec,
    pub info: ModelInfo,
    pub embed: Embed,
    pub blocks: Vec<Block>,
    pub final_norm: Tensor,
    pub head: Proj,
}

impl Transformer {
    /// Assemble a network from a family's parts (activations in `dtype`).
    pub fn new(parts: Parts, dtype: DType, device: &Device) -> Result<Self> {
        let Parts { spec, info, embed, blocks, final_norm, head } = parts;
        let inv_freq = inv_freq(spec.head_dim(), spec.rope_theta);
        let final_norm = final_norm.to_dtype(dtype)?;
        Ok(Transformer {
            spec,
            info,
            embed,
            blocks,
            final_norm,
            head,
            inv_freq,
            dtype,
            device: device.clone(),
            clock: Default::default(),
            uploads: Default::default(),
        })
    }

    /// How the blocks' linear weights are stored (the first block's q/k/v), e.g. `q4_k`.
    pub fn storage_name(&self) -> &'static str {
        self.blocks.first().map_or("none", |b| b.qkv.type_name())
    }

    /// Bytes of the weights as held (embedding, blocks, head).
    pub fn weight_bytes(&self) -> usize {
        self.embed.size_in_bytes() + self.blocks.iter().map(|b| b.size_in_bytes()).sum::<usize>() + self.head.size_in_bytes()
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    fn check(&self, req: &ForwardRequest, kv: &KvStore) -> Result<(usize, usize, usize)> {
        let b = req.ids.len();
        let nq = req.ids.first().map_or(0, |r| r.len());
        let nl = req.logit_rows.first().map_or(0, |r| r.len());
        if b == 0 || nq == 0 {
            return Err(Error::input("forward needs at least one sequence and one row"));
        }
        if b != kv.batch() || req.positions.len() != b || req.logit_rows.len() != b {
            return Err(Error::input(format!("batch mismatch: {b} id rows, {} position rows, K/V store for {}", req.positions.len(), kv.batch())));
        }
        for s in 0..b {
            if req.ids[s].len() != nq || req.positions[s].len() != nq || req.logit_rows[s].len() != nl {
                return Err(Error::input("every sequence must push the same number of rows"));
            }
            if let Some(&p) = req.positions[s].iter().find(|&&p| p >= kv.len() || p >= self.spec.max_len) {
                return Err(Error::input(format!("position {p} is outside the sequence (length {}, max length {})", kv.len(), self.spec.max_len)));
            }
            self.check_ids(&req.ids[s])?;
            if let Some(&r) = req.logit_rows[s].iter().find(|&&r| r >= nq) {
                return Err(Error::input(format!("logit row {r} is not a query row (only {nq})")));
            }
        }
        Ok((b, nq, nl))
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&t| t as usize >= self.spec.emb_rows) {
            Some(t) => Err(Error::input(format!("token id {t} is outside the vocabulary ({} rows)", self.spec.emb_rows))),
            None => Ok(()),
        }
    }

    fn embed(&self, ids: Vec<u32>) -> Result<Tensor> {
        let n = ids.len();
        self.embed.rows(&self.upload(ids, n)?, self.dtype)
    }

    /// Final norm and LM head of `x` (rows, d), as f32 logits.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.head.forward(&rms_norm(x, &self.final_norm, self.spec.rms_eps)?)?.to_dtype(DType::F32)?)
    }
}

impl DiffusionModel for Transformer {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn new_kv_store(&self, batch: usize, len: usize) -> Result<KvStore> {
        if len > self.spec.max_len {
            return Err(Error::input(format!("sequence length {len} exceeds the model's maximum {}", self.spec.max_len)));
        }
        KvStore::new(self.spec.n_layers, batch, self.spec.kv_heads, len, self.spec.head_dim(), self.dtype, &self.device)
    }

    fn new_layer_cache(&self, batch: usize, len: usize) -> Result<LayerCache> {
        self.layer_cache(batch, len)
    }

    fn forward_layered(&self, req: &LayeredRequest, kv: &mut KvStore, cache: &mut LayerCache) -> Result<LayeredOutput> {
        self.layered(req, kv, cache)
    }

    fn forward(&self, req: &ForwardRequest, kv: &mut KvStore) -> Result<ForwardOutput> {
        let mut outs = self.forward_many(&mut [(req, kv)])?;
        outs.pop().ok_or_else(|| Error::Other("forward returned no output".into()))
    }

    /// The rows of every part flow through the blocks as one (rows, d) matrix: norms,
    /// residuals, the FFN and the projections run once for the whole batch (the weights
    /// stream from memory once per step), and only attention runs per part over the part's
    /// own K/V store, batched across parts of one shape. Each part gets exactly its result
    /// alone where the projections' kernel computes rows independently
    /// ([`Transformer::project`]).
    fn forward_many(&self, parts: &mut [(&ForwardRequest, &mut KvStore)]) -> Result<Vec<ForwardOutput>> {
        // Parts of one shape sit next to each other, so their attention is one batched op.
        let key = |i: usize| (parts[i].0.ids.len(), parts[i].0.ids.first().map_or(0, Vec::len), parts[i].1.len());
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by_key(|&i| key(i));
        let sorted: Vec<(&ForwardRequest, &KvStore)> = order.iter().map(|&i| (parts[i].0, &*parts[i].1)).collect();
        let outs = self.forward_sorted(&sorted)?;
        let mut back: Vec<Option<ForwardOutput>> = (0..parts.len()).map(|_| None).collect();
        for (&i, o) in order.iter().zip(outs) {
            back[i] = Some(o);
        }
        back.into_iter().map(|o| o.ok_or_else(|| Error::Other("forward_many: a part has no output".into()))).collect()
    }
}

/// Where a forward's query rows sit: their RoPE angles and their K/V scatter index.
struct QueryRows {
    cos: Tensor,
    sin: Tensor,
    index: Tensor,
}

impl Transformer {
    /// RoPE angles (position x inv_freq, in f32 as the reference computes them) and the K/V
    /// index of the rows at `positions`.
    fn query_rows(&self, positions: &[Vec<usize>]) -> Result<QueryRows> {
        let (b, n, hd) = (positions.len(), positions.first().map_or(0, |r| r.len()), self.spec.head_dim());
        let mut cos = Vec::with_capacity(b * n * hd / 2);
        let mut sin = Vec::with_capacity(b * n * hd / 2);
        for &p in positions.iter().flatten() {
            for f in &self.inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok(QueryRows { cos: self.upload(cos, (b, n, hd / 2))?, sin: self.upload(sin, (b, n, hd / 2))?, index: self.kv_index(positions)? })
    }

    /// Index of `rows` (B sequences, n positions each) for a head-major K/V write:
    /// (B, kv_heads, n, head_dim), on the model's device.
    fn kv_index(&self, rows: &[Vec<usize>]) -> Result<Tensor> {
        let (kvh, hd) = (self.spec.kv_heads, self.spec.head_dim());
        let n = rows.first().map_or(0, |r| r.len());
        let mut idx = Vec::with_capacity(rows.len() * kvh * n * hd);
        for r in rows {
            for _ in 0..kvh {
                for &p in r {
                    idx.extend(std::iter::repeat_n(p as u32, hd));
                }
            }
        }
        self.upload(idx, (rows.len(), kvh, n, hd))
    }

    /// A host vector as a tensor on the model's device, counted in [`Self::uploads`].
    fn upload<T: candle_core::WithDType, S: Into<candle_core::Shape>>(&self, v: Vec<T>, shape: S) -> Result<Tensor> {
        self.uploads.set(self.uploads.get() + 1);
        Ok(Tensor::from_vec(v, shape, &self.device)?)
    }

    /// The attention sub-block for the normed query rows `hn` (B, n, d): writes their K/V
    /// into layer `l` of the store, attends over every cached row, and returns the
    /// out-projected output (B, n, d) and the attention probabilities (B, h, n, T), f32.
    fn attend(&self, l: usize, blk: &Block, hn: &Tensor, rows: &QueryRows, kv: &KvStore) -> Result<(Tensor, Tensor)> {
        self.lap("attn norm");
        let qkv = blk.qkv.forward(hn)?;
        self.lap("q/k/v matmul");
        let (o, att) = self.attention(l, &qkv, rows, kv)?;
        let out = blk.o.forward(&o)?;
        self.lap("o matmul");
        Ok((out, att))
    }

    /// Attention of the projected rows `qkv` (B, n, d + 2 kv_dim): RoPE, their K/V written
    /// into layer `l` of the store, scores over every cached row; returns the heads merged
    /// (B, n, d), before the out-projection, and the probabilities (B, h, n, T), f32.
    fn attention(&self, l: usize, qkv: &Tensor, rows: &QueryRows, kv: &KvStore) -> Result<(Tensor, Tensor)> {
        let (q, k, v) = self.heads_rope(qkv, &rows.cos, &rows.sin)?;
        self.lap("split heads + RoPE");
        kv.write(l, &rows.index, &k, &v)?;
        self.lap("K/V scatter");
        let (kc, vc) = kv.layer(l)?;
        self.attend_keys(&q, kc, vc)
    }

    /// q (B, h, n, hd) and k, v (B, kvh, n, hd) of projected rows `qkv` (B, n, d + 2 kv_dim),
    /// RoPE applied to q and k.
    fn heads_rope(&self, qkv: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (h, kvh, hd, d) = (self.spec.n_heads, self.spec.kv_heads, self.spec.head_dim(), self.spec.d_model);
        let (b, n, _) = qkv.dims3()?;
        let heads = |t: Tensor, k: usize| -> Result<Tensor> { Ok(t.reshape((b, n, k, hd))?.transpose(1, 2)?.contiguous()?) };
        let rope = |t: Tensor| -> Result<Tensor> { Ok(candle_nn::rotary_emb::rope(&t.to_dtype(DType::F32)?, cos, sin)?.to_dtype(self.dtype)?) };
        let q = rope(heads(qkv.narrow(2, 0, d)?, h)?)?;
        let k = rope(heads(qkv.narrow(2, d, kvh * hd)?, kvh)?)?;
        let v = heads(qkv.narrow(2, d + kvh * hd, kvh * hd)?, kvh)?;
        Ok((q, k, v))
    }

    /// Queries q (B, h, n, hd) over keys and values (B, kvh, T, hd): the heads merged
    /// (B, n, d) and the probabilities (B, h, n, T), f32.
    ///
    /// Grouped-query attention without repeating K/V: the `h / kvh` query heads that share a
    /// K/V head are stacked as extra query rows of one (B, kvh, g*n, hd) x (B, kvh, hd, T)
    /// product.
    fn attend_keys(&self, q: &Tensor, kc: &Tensor, vc: &Tensor) -> Result<(Tensor, Tensor)> {
        let (h, kvh, hd, d) = (self.spec.n_heads, self.spec.kv_heads, self.spec.head_dim(), self.spec.d_model);
        let (b, _, n, _) = q.dims4()?;
        let t_len = kc.dim(2)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let q = q.reshape((b, kvh, (h / kvh) * n, hd))?;
        let scores = q.matmul(&kc.t()?)?.to_dtype(DType::F32)?;
        self.lap("scores q.K^T");
        let att = scaled_softmax(&scores, scale)?;
        self.lap("softmax");
        let o = att.to_dtype(self.dtype)?.matmul(vc)?.reshape((b, h, n, hd))?.transpose(1, 2)?.reshape((b, n, d))?;
        self.lap("att.V + merge heads");
        Ok((o, att.reshape((b, h, n, t_len))?))
    }

    /// Charge the time since the last lap to `op` (only while profiling).
    fn lap(&self, op: &'static str) {
        if let Some(c) = self.clock.borrow_mut().as_mut() {
            let now = std::time::Instant::now();
            match c.spent.iter_mut().find(|(n, _)| *n == op) {
                Some((_, d)) => *d += now - c.last,
                None => c.spent.push((op, now - c.last)),
            }
            c.last = now;
        }
    }

    /// The FFN sub-block's output for rows `x` (B, n, d), before the residual add.
    fn ffn(&self, blk: &Block, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / self.spec.d_model.max(1);
        self.ffn_rows(blk, x, &[rows])
    }

    /// The FFN sub-block for stacked rows `x` made of parts of `counts` rows.
    fn ffn_rows(&self, blk: &Block, x: &Tensor, counts: &[usize]) -> Result<Tensor> {
        let hn = rms_norm(x, &blk.ffn_norm, self.spec.rms_eps)?;
        self.lap("residual + ffn norm");
        let gu = self.project(&blk.gate_up, &hn, counts)?;
        self.lap("gate/up matmul");
        let act = swiglu(&gu, gu.dim(gu.rank() - 1)? / 2)?;
        self.lap("silu * up");
        let out = self.project(&blk.down, &act, counts)?;
        self.lap("down matmul");
        Ok(out)
    }
}

/// silu(gate) * up over the fused gate/up rows: one pass on the CPU in f32, candle's ops
/// elsewhere.
fn swiglu(gu: &Tensor, ff: usize) -> Result<Tensor> {
    if gu.dtype() == DType::F32 && gu.device().is_cpu() && gu.is_contiguous() {
        let (st, layout) = gu.storage_and_layout();
        if let candle_core::Storage::Cpu(c) = &*st {
            let s = &c.as_slice::<f32>()?[layout.start_offset()..layout.start_offset() + gu.elem_count()];
            let mut dims = gu.dims().to_vec();
            if let Some(last) = dims.last_mut() {
                *last = ff;
            }
            let out = super::gemm::swiglu(s, ff);
            return Ok(Tensor::from_vec(out, dims, gu.device())?);
        }
    }
    let last = gu.rank() - 1;
    Ok((candle_nn::ops::silu(&gu.narrow(last, 0, ff)?)? * gu.narrow(last, ff, ff)?)?)
}

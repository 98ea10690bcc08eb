//! LLaDA (Nie et al. 2025): a LLaMA-style encoder with bidirectional attention, RoPE,
//! RMSNorm, SwiGLU and an untied head, loaded from the real checkpoints' tensor names.

use super::config::LladaConfig;
use super::kv::KvStore;
use super::load::Weights;
use super::{DiffusionModel, ForwardOutput, ForwardRequest, LayerCache, LayeredOutput, LayeredRequest, ModelInfo};

mod layered;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use std::path::Path;

struct Block {
    attn_norm: Tensor,
    ff_norm: Tensor,
    /// q, k and v projections stacked into one matrix: one skinny matmul instead of three
    /// (per-call packing and thread start-up dominate when only a few rows are recomputed).
    qkv: Linear,
    o: Linear,
    /// ff_proj (gate) and up_proj stacked, for the same reason.
    gate_up: Linear,
    ff_out: Linear,
}

pub struct Llada {
    cfg: LladaConfig,
    info: ModelInfo,
    wte: Tensor,
    blocks: Vec<Block>,
    ln_f: Tensor,
    head: Linear,
    cos: Tensor,
    sin: Tensor,
    dtype: DType,
    device: Device,
}

fn stack(ws: &[Tensor]) -> Result<Linear> {
    Ok(Linear::new(Tensor::cat(ws, 0)?, None))
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm(x, w, eps as f32)?)
}

impl Llada {
    /// Load a LLaDA checkpoint folder (config.json + safetensors) in `dtype` on `device`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let cfg = LladaConfig::from_file(&dir.join("config.json"))?;
        let w = Weights::open(dir, dtype, device)?;
        Self::from_weights(cfg, &w, dtype, device)
    }

    pub fn config(&self) -> &LladaConfig {
        &self.cfg
    }

    fn from_weights(cfg: LladaConfig, w: &Weights, dtype: DType, device: &Device) -> Result<Self> {
        let (d, hd, kvh) = (cfg.d_model, cfg.head_dim(), cfg.kv_heads());
        let (ff, rows) = (cfg.mlp_hidden(), cfg.emb_rows());
        let lin = |name: &str, out: usize, inp: usize| -> Result<Linear> { Ok(Linear::new(w.get(name, &[out, inp])?, None)) };
        let p = "model.transformer";
        let wte = w.get(&format!("{p}.wte.weight"), &[rows, d])?;
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let b = format!("{p}.blocks.{i}");
            blocks.push(Block {
                attn_norm: w.get(&format!("{b}.attn_norm.weight"), &[d])?,
                ff_norm: w.get(&format!("{b}.ff_norm.weight"), &[d])?,
                qkv: stack(&[
                    w.get(&format!("{b}.q_proj.weight"), &[d, d])?,
                    w.get(&format!("{b}.k_proj.weight"), &[kvh * hd, d])?,
                    w.get(&format!("{b}.v_proj.weight"), &[kvh * hd, d])?,
                ])?,
                o: lin(&format!("{b}.attn_out.weight"), d, d)?,
                gate_up: stack(&[w.get(&format!("{b}.ff_proj.weight"), &[ff, d])?, w.get(&format!("{b}.up_proj.weight"), &[ff, d])?])?,
                ff_out: lin(&format!("{b}.ff_out.weight"), d, ff)?,
            });
        }
        let ln_f = w.get(&format!("{p}.ln_f.weight"), &[d])?;
        let head = if cfg.weight_tying {
            Linear::new(wte.clone(), None)
        } else {
            lin(&format!("{p}.ff_out.weight"), rows, d)?
        };
        let (cos, sin) = rope_tables(cfg.max_sequence_length, hd, cfg.rope_theta, device)?;
        let info = ModelInfo {
            arch: "llada".into(),
            n_layers: cfg.n_layers,
            d_model: d,
            n_heads: cfg.n_heads,
            mlp_hidden: ff,
            logits_width: rows,
            mask_id: cfg.mask_token_id,
            eos_id: cfg.eos_token_id,
            max_seq_len: cfg.max_sequence_length,
            logits_shifted: false,
        };
        Ok(Llada { cfg, info, wte, blocks, ln_f, head, cos, sin, dtype, device: device.clone() })
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
            if let Some(&p) = req.positions[s].iter().find(|&&p| p >= kv.len() || p >= self.cfg.max_sequence_length) {
                return Err(Error::input(format!("position {p} is outside the sequence (length {}, max_sequence_length {})", kv.len(), self.cfg.max_sequence_length)));
            }
            if let Some(&t) = req.ids[s].iter().find(|&&t| t as usize >= self.cfg.emb_rows()) {
                return Err(Error::input(format!("token id {t} is outside the vocabulary ({} rows)", self.cfg.emb_rows())));
            }
            if let Some(&r) = req.logit_rows[s].iter().find(|&&r| r >= nq) {
                return Err(Error::input(format!("logit row {r} is not a query row (only {nq})")));
            }
        }
        Ok((b, nq, nl))
    }
}

pub(crate) fn rope_tables(max_len: usize, hd: usize, theta: f64, dev: &Device) -> Result<(Tensor, Tensor)> {
    let half = hd / 2;
    let mut cos = Vec::with_capacity(max_len * half);
    let mut sin = Vec::with_capacity(max_len * half);
    // Same recipe as the reference (inv_freq in f32, position * inv_freq in f32).
    let inv: Vec<f32> = (0..half).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / hd as f32)).collect();
    for p in 0..max_len {
        for f in &inv {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    Ok((Tensor::from_vec(cos, (max_len, half), dev)?, Tensor::from_vec(sin, (max_len, half), dev)?))
}

impl DiffusionModel for Llada {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn new_kv_store(&self, batch: usize, len: usize) -> Result<KvStore> {
        if len > self.cfg.max_sequence_length {
            return Err(Error::input(format!("sequence length {len} exceeds max_sequence_length {}", self.cfg.max_sequence_length)));
        }
        KvStore::new(self.cfg.n_layers, batch, self.cfg.kv_heads(), len, self.cfg.head_dim(), self.dtype, &self.device)
    }

    fn new_layer_cache(&self, batch: usize, len: usize) -> Result<LayerCache> {
        self.layer_cache(batch, len)
    }

    fn forward_layered(&self, req: &LayeredRequest, kv: &mut KvStore, cache: &mut LayerCache) -> Result<LayeredOutput> {
        self.layered(req, kv, cache)
    }

    fn forward(&self, req: &ForwardRequest, kv: &mut KvStore) -> Result<ForwardOutput> {
        let (b, nq, nl) = self.check(req, kv)?;
        let cfg = &self.cfg;
        let (h, d) = (cfg.n_heads, cfg.d_model);
        let dev = &self.device;
        let ids: Vec<u32> = req.ids.iter().flatten().copied().collect();
        let rows = self.query_rows(&req.positions)?;
        let mut x = self.wte.index_select(&Tensor::from_vec(ids, b * nq, dev)?, 0)?.reshape((b, nq, d))?;
        let mut attention = Vec::new();
        for (l, blk) in self.blocks.iter().enumerate() {
            let (o, att) = self.attend(l, blk, &rms_norm(&x, &blk.attn_norm, cfg.rms_norm_eps)?, &rows, kv)?;
            if req.want_attention {
                // Head mean as a (1 x h) @ (h x nq*T) product: candle's reduction over a
                // middle dimension is an order of magnitude slower.
                let t_len = att.dim(3)?;
                let w = Tensor::full(1.0f32 / h as f32, (b, 1, h), dev)?;
                attention.push(w.matmul(&att.reshape((b, h, nq * t_len))?)?.reshape((b, nq, t_len))?);
            }
            x = (x + o)?;
            x = (&x + self.ffn(blk, &x)?)?;
        }
        let sel: Vec<u32> = (0..b).flat_map(|s| req.logit_rows[s].iter().map(move |&r| (s * nq + r) as u32)).collect();
        let xs = x.reshape((b * nq, d))?.index_select(&Tensor::from_vec(sel, b * nl, dev)?, 0)?;
        let xs = rms_norm(&xs, &self.ln_f, cfg.rms_norm_eps)?;
        let logits = self.head.forward(&xs)?.to_dtype(DType::F32)?.reshape((b, nl, cfg.emb_rows()))?;
        Ok(ForwardOutput { logits, attention })
    }
}

/// Where a forward's query rows sit: their RoPE angles and their K/V scatter index.
struct QueryRows {
    cos: Tensor,
    sin: Tensor,
    index: Tensor,
}

/// Index of `rows` (B sequences, n positions each) for a head-major K/V write: (B, kvh, n, hd).
fn kv_index(rows: &[Vec<usize>], kvh: usize, hd: usize, dev: &Device) -> Result<Tensor> {
    let n = rows.first().map_or(0, |r| r.len());
    let mut idx = Vec::with_capacity(rows.len() * kvh * n * hd);
    for r in rows {
        for _ in 0..kvh {
            for &p in r {
                idx.extend(std::iter::repeat(p as u32).take(hd));
            }
        }
    }
    Ok(Tensor::from_vec(idx, (rows.len(), kvh, n, hd), dev)?)
}

impl Llada {
    fn query_rows(&self, positions: &[Vec<usize>]) -> Result<QueryRows> {
        let (b, n, hd) = (positions.len(), positions.first().map_or(0, |r| r.len()), self.cfg.head_dim());
        let pos: Vec<u32> = positions.iter().flatten().map(|&p| p as u32).collect();
        let pos_t = Tensor::from_vec(pos, b * n, &self.device)?;
        Ok(QueryRows {
            cos: self.cos.index_select(&pos_t, 0)?.reshape((b, n, hd / 2))?,
            sin: self.sin.index_select(&pos_t, 0)?.reshape((b, n, hd / 2))?,
            index: kv_index(positions, self.cfg.kv_heads(), hd, &self.device)?,
        })
    }

    /// The attention sub-block for the normed query rows `hn` (B, n, d): writes their K/V
    /// into layer `l` of the store, attends over every cached row, and returns the
    /// out-projected output (B, n, d) and the attention probabilities (B, h, n, T), f32.
    fn attend(&self, l: usize, blk: &Block, hn: &Tensor, rows: &QueryRows, kv: &KvStore) -> Result<(Tensor, Tensor)> {
        let cfg = &self.cfg;
        let (h, kvh, hd, d) = (cfg.n_heads, cfg.kv_heads(), cfg.head_dim(), cfg.d_model);
        let (b, n, _) = hn.dims3()?;
        let heads = |t: Tensor, k: usize| -> Result<Tensor> { Ok(t.reshape((b, n, k, hd))?.transpose(1, 2)?.contiguous()?) };
        let rope = |t: Tensor| -> Result<Tensor> { Ok(candle_nn::rotary_emb::rope(&t.to_dtype(DType::F32)?, &rows.cos, &rows.sin)?.to_dtype(self.dtype)?) };
        let qkv = blk.qkv.forward(hn)?;
        let q = rope(heads(qkv.narrow(2, 0, d)?, h)?)?;
        let k = rope(heads(qkv.narrow(2, d, kvh * hd)?, kvh)?)?;
        let v = heads(qkv.narrow(2, d + kvh * hd, kvh * hd)?, kvh)?;
        kv.write(l, &rows.index, &k, &v)?;
        let (kc, vc) = kv.layer(l)?;
        let (kc, vc) = (repeat_kv(kc, h / kvh)?, repeat_kv(vc, h / kvh)?);
        let scale = 1.0 / (hd as f64).sqrt();
        let att = candle_nn::ops::softmax_last_dim(&(q.matmul(&kc.t()?)?.to_dtype(DType::F32)? * scale)?)?;
        let o = att.to_dtype(self.dtype)?.matmul(&vc)?.transpose(1, 2)?.reshape((b, n, d))?;
        Ok((blk.o.forward(&o)?, att))
    }

    /// The FFN sub-block's output for rows `x` (B, n, d), before the residual add.
    fn ffn(&self, blk: &Block, x: &Tensor) -> Result<Tensor> {
        let gu = blk.gate_up.forward(&rms_norm(x, &blk.ff_norm, self.cfg.rms_norm_eps)?)?;
        let ff = gu.dim(2)? / 2;
        let act = (candle_nn::ops::silu(&gu.narrow(2, 0, ff)?)? * gu.narrow(2, ff, ff)?)?;
        Ok(blk.ff_out.forward(&act)?)
    }
}

fn repeat_kv(t: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(t.clone());
    }
    let (b, kvh, len, hd) = t.dims4()?;
    Ok(t.unsqueeze(2)?.expand((b, kvh, n, len, hd))?.reshape((b, kvh * n, len, hd))?)
}

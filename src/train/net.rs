//! LLaDA for training: the same architecture and tensor names as [`crate::model::Llada`],
//! built from differentiable candle ops only (candle-nn's fused `rms_norm`, `softmax_last_dim`
//! and `rope` have no backward pass), over right-padded batches with a key-padding mask.

use crate::error::Result;
use crate::model::llada::NAMES;
use crate::model::random::seeded_normal;
use crate::model::LladaConfig;
use candle_core::{Device, Tensor, D};
use candle_nn::{Init, Linear, Module, VarBuilder};

struct TrainBlock {
    attn_norm: Tensor,
    ff_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
}

pub struct TrainNet {
    cfg: LladaConfig,
    wte: Tensor,
    blocks: Vec<TrainBlock>,
    ln_f: Tensor,
    head: Linear,
    cos: Tensor,
    sin: Tensor,
}

fn linear(vb: &VarBuilder, name: &str, out: usize, inp: usize, std: f64) -> Result<Linear> {
    Ok(Linear::new(vb.get_with_hints((out, inp), &format!("{name}.weight"), Init::Randn { mean: 0.0, stdev: std })?, None))
}

fn norm(vb: &VarBuilder, name: &str, d: usize) -> Result<Tensor> {
    Ok(vb.get_with_hints(d, &format!("{name}.weight"), Init::Const(1.0))?)
}

/// x / sqrt(mean(x^2) + eps) * w, in differentiable pieces.
fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let r = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&r)?.broadcast_mul(w)?)
}

impl TrainNet {
    /// Create (or, from a loaded VarMap, bind) every parameter under LLaDA's tensor names.
    /// ForwardResult weights are N(0, 0.02) with output projections scaled by 1/sqrt(2 n_layers)
    /// (GPT-2 style), but candle's CPU generator cannot be seeded: call [`seed_init`] after
    /// this for a reproducible start.
    pub fn new(cfg: &LladaConfig, vb: VarBuilder, device: &Device) -> Result<Self> {
        let (d, ff, rows, hd) = (cfg.d_model, cfg.mlp_hidden(), cfg.emb_rows(), cfg.head_dim());
        let kvd = cfg.kv_heads() * hd;
        let std = 0.02;
        let out_std = std / (2.0 * cfg.n_layers as f64).sqrt();
        let wte = vb.get_with_hints((rows, d), &format!("{}.weight", NAMES.embed), Init::Randn { mean: 0.0, stdev: std })?;
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |k: usize| NAMES.block_part(i, k);
            blocks.push(TrainBlock {
                attn_norm: norm(&vb, &n(0), d)?,
                ff_norm: norm(&vb, &n(1), d)?,
                q: linear(&vb, &n(2), d, d, std)?,
                k: linear(&vb, &n(3), kvd, d, std)?,
                v: linear(&vb, &n(4), kvd, d, std)?,
                o: linear(&vb, &n(5), d, d, out_std)?,
                gate: linear(&vb, &n(6), ff, d, std)?,
                up: linear(&vb, &n(7), ff, d, std)?,
                down: linear(&vb, &n(8), d, ff, out_std)?,
            });
        }
        let ln_f = norm(&vb, NAMES.final_norm, d)?;
        let head = linear(&vb, NAMES.head, rows, d, std)?;
        let (cos, sin) = crate::model::transformer::rope_tables(cfg.max_sequence_length, hd, cfg.rope_theta, device)?;
        Ok(TrainNet { cfg: cfg.clone(), wte, blocks, ln_f, head, cos, sin })
    }

    /// Logits (B, L, vocab) for `ids` (B, L) u32; `key_ok` (B, L) f32 is 1 for real tokens and
    /// 0 for padding, which no query may attend to.
    pub fn forward(&self, ids: &Tensor, key_ok: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let cfg = &self.cfg;
        let (h, kvh, hd, d) = (cfg.n_heads, cfg.kv_heads(), cfg.head_dim(), cfg.d_model);
        let cos = self.cos.narrow(0, 0, l)?;
        let sin = self.sin.narrow(0, 0, l)?;
        // 0 for real keys, -1e9 for padding, broadcast over heads and queries.
        let bias = ((key_ok - 1.0)? * 1e9)?.reshape((b, 1, 1, l))?;
        let mut x = self.wte.embedding_rows(ids)?;
        let scale = 1.0 / (hd as f64).sqrt();
        for blk in &self.blocks {
            let hn = rms_norm(&x, &blk.attn_norm, cfg.rms_norm_eps)?;
            let heads = |t: Tensor, n: usize| -> Result<Tensor> { Ok(t.reshape((b, l, n, hd))?.transpose(1, 2)?.contiguous()?) };
            let q = candle_nn::rotary_emb::rope_slow(&heads(blk.q.forward(&hn)?, h)?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_slow(&heads(blk.k.forward(&hn)?, kvh)?, &cos, &sin)?;
            let v = heads(blk.v.forward(&hn)?, kvh)?;
            let (k, v) = (repeat_kv(k, h / kvh)?, repeat_kv(v, h / kvh)?);
            let att = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&bias)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let o = att.matmul(&v)?.transpose(1, 2)?.reshape((b, l, d))?;
            x = (x + blk.o.forward(&o)?)?;
            let hn = rms_norm(&x, &blk.ff_norm, cfg.rms_norm_eps)?;
            let act = (candle_nn::ops::silu(&blk.gate.forward(&hn)?)? * blk.up.forward(&hn)?)?;
            x = (x + blk.down.forward(&act)?)?;
        }
        let x = rms_norm(&x, &self.ln_f, cfg.rms_norm_eps)?;
        Ok(self.head.forward(&x)?)
    }
}

trait EmbeddingRows {
    fn embedding_rows(&self, ids: &Tensor) -> candle_core::Result<Tensor>;
}

impl EmbeddingRows for Tensor {
    fn embedding_rows(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, l) = ids.dims2()?;
        self.index_select(&ids.flatten_all()?, 0)?.reshape((b, l, self.dim(1)?))
    }
}

fn repeat_kv(t: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(t);
    }
    let (b, kvh, len, hd) = t.dims4()?;
    Ok(t.unsqueeze(2)?.expand((b, kvh, n, len, hd))?.reshape((b, kvh * n, len, hd))?)
}

/// The masked-diffusion loss of LLaDA's SFT recipe: `sum over masked response tokens of
/// CE / p_mask / response_length`, averaged over the batch. `weight` (B, L) f32 already holds
/// `1 / (p_mask * response_length * B)` on masked response tokens and 0 elsewhere.
/// Overwrite every matrix of `vm` with seeded N(0, std) values (norm weights stay 1), in name
/// order, so a training run is reproducible from its seed.
pub fn seed_init(vm: &candle_nn::VarMap, cfg: &LladaConfig, seed: u64) -> Result<()> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let vars = vm.data().lock().map_err(|_| crate::error::Error::Other("variable map lock poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let out_std = 0.02 / (2.0 * cfg.n_layers as f64).sqrt();
    for name in names {
        let v = &vars[name];
        if v.as_tensor().rank() < 2 {
            continue;
        }
        // The blocks' output projections (attention output, FFN down), not the LM head.
        let is_out = name != &format!("{}.weight", NAMES.head) && [5, 8].iter().any(|&k| name.ends_with(&format!("{}.weight", NAMES.parts[k])));
        let data = seeded_normal(&mut rng, v.as_tensor().elem_count(), if is_out { out_std } else { 0.02 });
        v.set(&Tensor::from_vec(data, v.as_tensor().shape(), v.as_tensor().device())?)?;
    }
    Ok(())
}

pub fn masked_diffusion_loss(logits: &Tensor, targets: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = lp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?;
    Ok((picked * weight)?.sum_all()?.neg()?)
}

//! dLLM-Cache's forward (Liu et al. 2025, as `src/cache/dllm_cache.py` of the d²Cache code
//! runs it): every row's hidden state flows through every layer, but a layer recomputes
//! attention and FFN only for the rows its [`LayerRows`] names; the other rows add that
//! layer's cached attention and FFN outputs.

use super::{rms_norm, Transformer};
use crate::error::{Error, Result};
use crate::model::{KvStore, LayerCache, LayerRows, LayeredOutput, LayeredRequest, ResponseRows};
use candle_core::{DType, Tensor};

impl Transformer {
    /// Rows `rows[s]` of every sequence of `x` (B, T, d) as (B, n, d).
    fn gather_rows(&self, x: &Tensor, rows: &[Vec<usize>]) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let n = rows.first().map_or(0, |r| r.len());
        let idx: Vec<u32> = rows.iter().enumerate().flat_map(|(s, r)| r.iter().map(move |&i| (s * t + i) as u32)).collect();
        Ok(x.reshape((b * t, d))?.index_select(&self.upload(idx, b * n)?, 0)?.reshape((b, n, d))?)
    }

    /// Overwrite rows `rows[s]` of `cache` (B, T, d) with `val` (B, n, d).
    fn scatter_rows(&self, cache: &Tensor, rows: &[Vec<usize>], val: &Tensor) -> Result<()> {
        let (_, _, d) = cache.dims3()?;
        let n = rows.first().map_or(0, |r| r.len());
        let idx: Vec<u32> = rows.iter().flat_map(|r| r.iter().flat_map(|&i| std::iter::repeat_n(i as u32, d))).collect();
        cache.scatter_set(&self.upload(idx, (rows.len(), n, d))?, val, 1)?;
        Ok(())
    }
}

/// Per sequence, the `k` rows with the lowest cosine similarity between `fresh` and `cached`
/// (both (B, G, kv_dim)), least similar first (torch.topk(largest=False) order).
fn least_similar(fresh: &Tensor, cached: &Tensor, k: usize) -> Result<Vec<Vec<usize>>> {
    let dot = (fresh * cached)?.sum(2)?;
    let nf = fresh.sqr()?.sum(2)?;
    let nc = cached.sqr()?.sum(2)?;
    // torch: x.y / sqrt(clamp_min(|x|^2 |y|^2, eps^2)), eps = 1e-8.
    let den = (nf * nc)?.clamp(1e-16f64, f64::MAX)?.sqrt()?;
    let cos: Vec<Vec<f32>> = (dot / den)?.to_dtype(DType::F32)?.to_vec2()?;
    Ok(cos
        .iter()
        .map(|c| {
            let mut idx: Vec<usize> = (0..c.len()).collect();
            idx.sort_by(|&a, &b| c[a].total_cmp(&c[b]).then(a.cmp(&b)));
            idx.truncate(k);
            idx
        })
        .collect())
}

impl Transformer {
    pub(super) fn layer_cache(&self, batch: usize, len: usize) -> Result<LayerCache> {
        let z = || Tensor::zeros((batch, len, self.spec.d_model), self.dtype, &self.device);
        let mut c = LayerCache { attn: Vec::new(), ffn: Vec::new() };
        for _ in 0..self.spec.n_layers {
            c.attn.push(z()?);
            c.ffn.push(z()?);
        }
        Ok(c)
    }

    pub(super) fn layered(&self, req: &LayeredRequest, kv: &mut KvStore, lc: &mut LayerCache) -> Result<LayeredOutput> {
        let spec = &self.spec;
        let (kvh, hd, d) = (spec.kv_heads, spec.head_dim(), spec.d_model);
        let kvd = kvh * hd;
        let b = req.ids.len();
        let t = req.ids.first().map_or(0, |r| r.len());
        let p = req.prompt_len;
        if b == 0 || t == 0 || p > t || req.logits_from > t || b != kv.batch() || t != kv.len() || req.ids.iter().any(|r| r.len() != t) {
            return Err(Error::input(format!("layered forward: {b} sequences of {t} rows do not match the K/V store ({} x {})", kv.batch(), kv.len())));
        }
        if req.layers.len() != spec.n_layers || lc.attn.len() != spec.n_layers {
            return Err(Error::input(format!("layered forward: {} layer specs for {} layers", req.layers.len(), spec.n_layers)));
        }
        let g = t - p;
        req.ids.iter().try_for_each(|r| self.check_ids(r))?;
        let mut x = self.embed(req.ids.iter().flatten().copied().collect())?.reshape((b, t, spec.d_model))?;
        let mut refreshed = Vec::with_capacity(spec.n_layers);
        for (l, blk) in self.blocks.iter().enumerate() {
            let LayerRows { prompt, response } = req.layers[l];
            let hn = rms_norm(&x, &blk.attn_norm, spec.rms_eps)?;
            let mut rows: Vec<Vec<usize>> = vec![if prompt { (0..p).collect() } else { vec![] }; b];
            match response {
                ResponseRows::None => {}
                ResponseRows::All => rows.iter_mut().for_each(|r| r.extend(p..t)),
                ResponseRows::LeastSimilarValues(k) => {
                    let v_resp = blk.qkv.forward(&hn.narrow(1, p, g)?)?.narrow(2, d + kvd, kvd)?;
                    let (_, vc) = kv.layer(l)?;
                    let cached = vc.narrow(2, p, g)?.transpose(1, 2)?.reshape((b, g, kvd))?;
                    let pick = least_similar(&v_resp, &cached, k.min(g))?;
                    let resp: Vec<Vec<usize>> = vec![(p..t).collect(); b];
                    let v_heads = v_resp.reshape((b, g, kvh, hd))?.transpose(1, 2)?.contiguous()?;
                    vc.scatter_set(&self.kv_index(&resp)?, &v_heads, 2)?;
                    for (r, sel) in rows.iter_mut().zip(pick) {
                        r.extend(sel.into_iter().map(|i| p + i));
                    }
                }
            }
            let nq = rows[0].len();
            if nq > 0 {
                let (o, _) = self.attend(l, blk, &self.gather_rows(&hn, &rows)?, &self.query_rows(&rows)?, kv)?;
                self.scatter_rows(&lc.attn[l], &rows, &o)?;
            }
            x = (x + &lc.attn[l])?;
            if nq > 0 {
                self.scatter_rows(&lc.ffn[l], &rows, &self.ffn(blk, &self.gather_rows(&x, &rows)?)?)?;
            }
            x = (x + &lc.ffn[l])?;
            refreshed.push(rows);
        }
        let from = req.logits_from;
        let logits = self.logits(&x.narrow(1, from, t - from)?.contiguous()?)?;
        Ok(LayeredOutput { logits, refreshed, uploads: self.uploads.take() })
    }
}

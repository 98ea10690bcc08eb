//! Several forwards as one ([`DiffusionModel::forward_many`]): the rows of every part go
//! through the blocks as one matrix, attention runs per part (batched across parts of one
//! shape with small K/V stores), and a projection stacks parts only where that leaves each
//! part's result exactly as alone.
//!
//! [`DiffusionModel::forward_many`]: crate::model::DiffusionModel::forward_many

use super::{rms_norm, QueryRows, Transformer};
use crate::error::Result;
use crate::model::linear::{Kernel, Proj};
use crate::model::{ForwardOutput, ForwardRequest, KvStore};
use candle_core::{DType, Tensor};

impl Transformer {
    /// [`DiffusionModel::forward_many`] over parts already ordered by shape.
    pub(super) fn forward_sorted(&self, parts: &[(&ForwardRequest, &KvStore)]) -> Result<Vec<ForwardOutput>> {
        let (h, d) = (self.spec.n_heads, self.spec.d_model);
        // Whatever a failed forward left uncounted is not this one's.
        self.uploads.take();
        let mut shapes = Vec::with_capacity(parts.len());
        let mut rows = Vec::with_capacity(parts.len());
        let mut uploads = Vec::with_capacity(parts.len());
        for (req, kv) in parts {
            shapes.push(self.check(req, kv)?);
            rows.push(self.query_rows(&req.positions)?);
            uploads.push(self.uploads.take());
        }
        let counts: Vec<usize> = shapes.iter().map(|&(b, nq, _)| b * nq).collect();
        // Runs of parts with the same (B, rows, K/V length) whose attention runs as one batched
        // op: [first, end). Only small stores are grouped, since grouping copies each part's
        // K/V layer; for large ones the attention's own work dwarfs the per-op overhead saved.
        let small = |i: usize| parts[i].1.batch() * parts[i].1.len() * self.spec.kv_dim() <= GROUP_KV_ELEMS;
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for i in 0..parts.len() {
            match groups.last_mut() {
                Some((first, end))
                    if small(i)
                        && small(*first)
                        && shapes[*first].0 == shapes[i].0
                        && shapes[*first].1 == shapes[i].1
                        && parts[*first].1.len() == parts[i].1.len() =>
                {
                    *end = i + 1
                }
                _ => groups.push((i, i + 1)),
            }
        }
        let angles = groups.iter().map(|&(f, e)| self.group_angles(&rows[f..e])).collect::<Result<Vec<_>>>()?;
        let ids: Vec<u32> = parts.iter().flat_map(|(req, _)| req.ids.iter().flatten().copied()).collect();
        let mut x = self.embed(ids)?;
        let mut attention: Vec<Vec<Tensor>> = vec![Vec::new(); parts.len()];
        for (l, blk) in self.blocks.iter().enumerate() {
            let hn = rms_norm(&x, &blk.attn_norm, self.spec.rms_eps)?;
            let qkv = self.project(&blk.qkv, &hn, &counts)?;
            let mut merged = Vec::with_capacity(groups.len());
            let mut at = 0;
            for (&(first, end), (cos, sin)) in groups.iter().zip(&angles) {
                let (b, nq, _) = shapes[first];
                let n = end - first;
                let rows_here = n * counts[first];
                let part = qkv.narrow(0, at, rows_here)?.reshape((n * b, nq, qkv.dim(1)?))?;
                at += rows_here;
                let (q, k, v) = self.heads_rope(&part, cos, sin)?;
                self.lap("split heads + RoPE");
                for (j, (_, kv)) in parts[first..end].iter().enumerate() {
                    kv.write(l, &rows[first + j].index, &k.narrow(0, j * b, b)?, &v.narrow(0, j * b, b)?)?;
                }
                self.lap("K/V scatter");
                let (kc, vc) = if n == 1 {
                    let (kc, vc) = parts[first].1.layer(l)?;
                    (kc.clone(), vc.clone())
                } else {
                    let layers = parts[first..end].iter().map(|(_, kv)| kv.layer(l)).collect::<Result<Vec<_>>>()?;
                    let ks: Vec<&Tensor> = layers.iter().map(|(k, _)| *k).collect();
                    let vs: Vec<&Tensor> = layers.iter().map(|(_, v)| *v).collect();
                    (Tensor::cat(&ks, 0)?, Tensor::cat(&vs, 0)?)
                };
                let (o, att) = self.attend_keys(&q, &kc, &vc)?;
                merged.push(o.reshape((rows_here, d))?);
                for j in 0..n {
                    if parts[first + j].0.want_attention {
                        // Head mean as a (1 x h) @ (h x nq*T) product: candle's reduction over
                        // a middle dimension is an order of magnitude slower.
                        let t_len = att.dim(3)?;
                        let w = Tensor::full(1.0f32 / h as f32, (b, 1, h), &self.device)?;
                        let mine = att.narrow(0, j * b, b)?.reshape((b, h, nq * t_len))?;
                        attention[first + j].push(w.matmul(&mine)?.reshape((b, nq, t_len))?);
                    }
                }
            }
            let merged = if merged.len() == 1 { merged.remove(0) } else { Tensor::cat(&merged, 0)? };
            x = (x + self.project(&blk.o, &merged, &counts)?)?;
            x = (&x + self.ffn_rows(blk, &x, &counts)?)?;
        }
        // The rows whose logits are wanted, part after part.
        let mut sel = Vec::new();
        let mut at = 0;
        for (i, (req, _)) in parts.iter().enumerate() {
            let (b, nq, _) = shapes[i];
            sel.extend((0..b).flat_map(|s| req.logit_rows[s].iter().map(move |&r| (at + s * nq + r) as u32)));
            at += counts[i];
        }
        let picked: Vec<usize> = shapes.iter().map(|&(b, _, nl)| b * nl).collect();
        let n_sel = sel.len();
        let xs = rms_norm(&x.index_select(&self.upload(sel, n_sel)?, 0)?, &self.final_norm, self.spec.rms_eps)?;
        let logits = self.project(&self.head, &xs, &picked)?.to_dtype(DType::F32)?;
        let shared = self.uploads.take();
        let mut out = Vec::with_capacity(parts.len());
        let mut at = 0;
        for (i, attention) in attention.into_iter().enumerate() {
            let (b, _, nl) = shapes[i];
            let part = logits.narrow(0, at, picked[i])?.reshape((b, nl, self.spec.emb_rows))?;
            at += picked[i];
            out.push(ForwardOutput { logits: part, attention, uploads: uploads[i] + shared });
        }
        Ok(out)
    }

    /// The RoPE angles of a group of parts, stacked along the batch.
    fn group_angles(&self, rows: &[QueryRows]) -> Result<(Tensor, Tensor)> {
        if let [one] = rows {
            return Ok((one.cos.clone(), one.sin.clone()));
        }
        let cos: Vec<&Tensor> = rows.iter().map(|r| &r.cos).collect();
        let sin: Vec<&Tensor> = rows.iter().map(|r| &r.sin).collect();
        Ok((Tensor::cat(&cos, 0)?, Tensor::cat(&sin, 0)?))
    }

    /// `proj` over stacked rows `x` (rows, in) made of parts of `counts` rows. One call when
    /// every part would run on the same row-independent kernel alone (each part's rows then
    /// come out exactly as alone); otherwise each part on its own kernel.
    pub(super) fn project(&self, proj: &Proj, x: &Tensor, counts: &[usize]) -> Result<Tensor> {
        let kernels: Vec<Kernel> = counts.iter().map(|&r| proj.kernel(x, r)).collect();
        if counts.len() == 1 || (kernels[0].row_independent() && kernels.iter().all(|&k| k == kernels[0])) {
            return proj.forward_with(x, kernels[0]);
        }
        let mut at = 0;
        let mut ys = Vec::with_capacity(counts.len());
        for (&r, &k) in counts.iter().zip(&kernels) {
            ys.push(proj.forward_with(&x.narrow(0, at, r)?, k)?);
            at += r;
        }
        Ok(Tensor::cat(&ys, 0)?)
    }
}

/// Largest K/V layer (elements) of a part whose attention [`Transformer::forward_many`]
/// batches with other parts of its shape: 64K elements (256 KB in f32) copy in about the time
/// of the few small ops the grouping saves.
const GROUP_KV_ELEMS: usize = 1 << 16;

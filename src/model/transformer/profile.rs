//! Benchmark support: per-layer timing (`d2c bench --layer-timing`) and where a layer's
//! time goes per op kind (`d2c bench --profile`).

use super::{rms_norm, Block, OpClock, Transformer, SETUP};
use crate::error::Result;
use crate::model::DiffusionModel;
use candle_core::Tensor;

impl Transformer {
    /// Benchmark support (`d2c bench --layer-timing`): seconds per layer of a forward over
    /// `rows` query rows attending over a K/V store of `t` rows (mean over the layers and
    /// `reps` repetitions, after one warm-up), and seconds of the final norm + LM head over
    /// `head_rows` rows.
    pub fn profile(&self, rows: usize, t: usize, head_rows: usize, reps: usize) -> Result<(f64, f64)> {
        let (d, n) = (self.spec.d_model, rows.min(t).max(1));
        let kv = self.new_kv_store(1, t)?;
        let positions: Vec<usize> = (0..n).map(|i| i * t / n).collect();
        let qr = self.query_rows(&[positions])?;
        let x = Tensor::randn(0f32, 1.0, (1, n, d), &self.device)?.to_dtype(self.dtype)?;
        let layer = |blk: &Block, l: usize| -> Result<Tensor> {
            let (o, _) = self.attend(l, blk, &rms_norm(&x, &blk.attn_norm, self.spec.rms_eps)?, &qr, &kv)?;
            let h = (&x + o)?;
            Ok((&h + self.ffn(blk, &h)?)?)
        };
        self.lap(SETUP);
        layer(&self.blocks[0], 0)?;
        self.lap(SETUP);
        let start = std::time::Instant::now();
        for _ in 0..reps {
            for (l, blk) in self.blocks.iter().enumerate() {
                layer(blk, l)?;
            }
        }
        let per_layer = start.elapsed().as_secs_f64() / (reps * self.blocks.len()).max(1) as f64;
        let xh = Tensor::randn(0f32, 1.0, (head_rows.max(1), d), &self.device)?.to_dtype(self.dtype)?;
        self.logits(&xh)?;
        let start = std::time::Instant::now();
        for _ in 0..reps {
            self.logits(&xh)?;
        }
        Ok((per_layer, start.elapsed().as_secs_f64() / reps.max(1) as f64))
    }

    /// Benchmark support (`d2c bench --profile`): seconds per layer spent in each op kind of a
    /// forward over `rows` query rows and a `t`-row K/V store, in the order the ops run.
    pub fn profile_ops(&self, rows: usize, t: usize, reps: usize) -> Result<Vec<(&'static str, f64)>> {
        self.profile(rows, t, 1, 1)?;
        *self.clock.borrow_mut() = Some(OpClock { last: std::time::Instant::now(), spent: Vec::new() });
        let r = self.profile(rows, t, 1, reps);
        let clock = self.clock.borrow_mut().take();
        r?;
        // The warm-up layer inside profile() is timed too: one extra layer.
        let per = (reps * self.blocks.len()) as f64 + 1.0;
        Ok(clock.map(|c| c.spent.into_iter().filter(|(n, _)| *n != SETUP).map(|(n, d)| (n, d.as_secs_f64() / per)).collect()).unwrap_or_default())
    }
}

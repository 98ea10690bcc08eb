//! Random weights from a seed: the one generator behind `d2c make-model` (safetensors and
//! GGUF) and the start of a training run, so every random model is reproducible from its seed.
//!
//! candle's CPU generator cannot be seeded, hence a seeded `StdRng` and Box-Muller here.

use super::family::{Family, ModelConfig};
use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;

/// N(0, std) samples from a seeded generator (Box-Muller).
pub fn seeded_normal(rng: &mut impl rand::Rng, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
            (std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

/// A seeded source of N(0, 0.02) matrices and unit norm weights.
pub struct RandomWeights {
    rng: StdRng,
}

impl RandomWeights {
    pub fn new(seed: u64) -> Self {
        RandomWeights { rng: StdRng::seed_from_u64(seed) }
    }

    /// N(0, 0.02) values of `shape`.
    pub fn normal(&mut self, shape: &[usize]) -> Result<Tensor> {
        let n = shape.iter().product();
        Ok(Tensor::from_vec(seeded_normal(&mut self.rng, n, 0.02), shape, &Device::Cpu)?)
    }

    /// Every tensor of a `fam` checkpoint of shape `c`, under the family's names: matrices and
    /// biases N(0, 0.02), norms 1. Drawn in a fixed order (embedding, head, then each block's
    /// parts with their biases), so a seed always gives the same checkpoint.
    pub fn checkpoint(&mut self, fam: &dyn Family, c: &ModelConfig) -> Result<HashMap<String, Tensor>> {
        let s = &c.spec;
        let (d, kvd, f, v) = (s.d_model, s.kv_dim(), s.mlp_hidden, s.emb_rows);
        let names = fam.names();
        let ones = |n: usize| Tensor::ones(n, DType::F32, &Device::Cpu);
        let mut t = HashMap::new();
        t.insert(format!("{}.weight", names.embed), self.normal(&[v, d])?);
        if !c.tied_head {
            t.insert(format!("{}.weight", names.head), self.normal(&[v, d])?);
        }
        t.insert(format!("{}.weight", names.final_norm), ones(d)?);
        let rows = [d, d, d, kvd, kvd, d, f, f, d];
        for i in 0..s.n_layers {
            for (k, &r) in rows.iter().enumerate() {
                let name = names.block_part(i, k);
                if k < 2 {
                    t.insert(format!("{name}.weight"), ones(d)?);
                    continue;
                }
                t.insert(format!("{name}.weight"), self.normal(&[r, if k == 8 { f } else { d }])?);
                if fam.qkv_bias() && (2..=4).contains(&k) {
                    t.insert(format!("{name}.bias"), self.normal(&[r])?);
                }
            }
        }
        Ok(t)
    }
}

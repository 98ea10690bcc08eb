//! The per-layer K/V store, owned by the decoder rather than the model.
//!
//! Layout per layer: (B, kv_heads, T, head_dim), keys stored after RoPE. A row's position
//! never changes during a decode, so rotating once at write time is exact and saves rotating
//! all T keys at every forward. Head-major storage lets attention read the whole store as a
//! contiguous batched matmul operand with no copy; a write of n selected rows is one scatter
//! of n x d_model values.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};

pub struct KvStore {
    pub(crate) k: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
    batch: usize,
    len: usize,
}

impl KvStore {
    pub fn new(layers: usize, batch: usize, heads: usize, len: usize, head_dim: usize, dtype: DType, dev: &Device) -> Result<Self> {
        let mut k = Vec::with_capacity(layers);
        let mut v = Vec::with_capacity(layers);
        for _ in 0..layers {
            k.push(Tensor::zeros((batch, heads, len, head_dim), dtype, dev)?);
            v.push(Tensor::zeros((batch, heads, len, head_dim), dtype, dev)?);
        }
        Ok(KvStore { k, v, batch, len })
    }

    pub fn batch(&self) -> usize {
        self.batch
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Overwrite rows `positions` (as a (B, heads, n, head_dim) u32 index) of layer `layer`.
    pub(crate) fn write(&self, layer: usize, index: &Tensor, k: &Tensor, v: &Tensor) -> Result<()> {
        let (kl, vl) = self.layer(layer)?;
        kl.scatter_set(index, k, 2)?;
        vl.scatter_set(index, v, 2)?;
        Ok(())
    }

    pub(crate) fn layer(&self, layer: usize) -> Result<(&Tensor, &Tensor)> {
        match (self.k.get(layer), self.v.get(layer)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(Error::Other(format!("K/V store has no layer {layer}"))),
        }
    }
}

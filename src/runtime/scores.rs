//! Evaluation of score expressions over the canvas.

use super::kernels::certainty_density;
pub use super::sampling::RowStat;
use super::settings::ScoreExpr;

/// Inputs a score expression can read, over the generation canvas.
pub struct ScoreInputs<'a> {
    pub rows: &'a [RowStat],
    pub cached_conf: Option<&'a [f64]>,
    /// Which positions count as decoded for the density.
    pub decoded: &'a [bool],
}

pub struct DensityMemo {
    entries: Vec<(u64, Vec<f64>)>,
}

impl DensityMemo {
    pub fn new() -> Self {
        DensityMemo { entries: Vec::new() }
    }
    fn get(&mut self, decoded: &[bool], sigma: f64) -> &[f64] {
        let key = sigma.to_bits();
        if let Some(i) = self.entries.iter().position(|(k, _)| *k == key) {
            return &self.entries[i].1;
        }
        self.entries.push((key, certainty_density(decoded, sigma)));
        &self.entries[self.entries.len() - 1].1
    }
}

impl Default for DensityMemo {
    fn default() -> Self {
        Self::new()
    }
}

/// Evaluate `score` at every canvas position. `memo` must belong to `inp.decoded`.
pub fn eval(score: &ScoreExpr, inp: &ScoreInputs, memo: &mut DensityMemo) -> Vec<f64> {
    let g = inp.rows.len();
    match score {
        ScoreExpr::Confidence => inp.rows.iter().map(|r| r.conf).collect(),
        ScoreExpr::Margin => inp.rows.iter().map(|r| r.margin).collect(),
        ScoreExpr::NegEntropy => inp.rows.iter().map(|r| r.neg_entropy).collect(),
        ScoreExpr::CachedConfidence => match inp.cached_conf {
            Some(c) => c.to_vec(),
            None => inp.rows.iter().map(|r| r.conf).collect(),
        },
        ScoreExpr::Density { sigma } => memo.get(inp.decoded, *sigma).to_vec(),
        ScoreExpr::Debias { alpha, table } => inp.rows.iter().map(|r| table.debiased(r.token, r.conf, *alpha)).collect(),
        ScoreExpr::Const(v) => vec![*v; g],
        ScoreExpr::Mul(a, b) => {
            let (x, y) = (eval(a, inp, memo), eval(b, inp, memo));
            x.iter().zip(&y).map(|(p, q)| p * q).collect()
        }
        ScoreExpr::Add(a, b) => {
            let (x, y) = (eval(a, inp, memo), eval(b, inp, memo));
            x.iter().zip(&y).map(|(p, q)| p + q).collect()
        }
    }
}

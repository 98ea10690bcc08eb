//! Per-row statistics of a forward's logits and evaluation of plan score expressions.

use super::select::certainty_density;
use crate::plan::{Score, Val};
use rand::Rng;

/// What one canvas position looks like after a step's forward.
#[derive(Debug, Clone, Copy)]
pub struct RowStat {
    pub token: u32,
    /// Probability of `token` (max softmax probability at temperature 0).
    pub conf: f64,
    pub margin: f64,
    pub neg_entropy: f64,
    pub recomputed: bool,
}

impl RowStat {
    /// A row the forward did not recompute: the reference leaves its logits at zero, which is
    /// a uniform distribution over `width` tokens, argmax token 0.
    pub fn stale(width: usize) -> Self {
        RowStat { token: 0, conf: (1.0f32 / width as f32) as f64, margin: 0.0, neg_entropy: -(width as f64).ln(), recomputed: false }
    }
}

pub struct Sampling {
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
}

/// Statistics of one logits row; samples when `sampling.temperature > 0`.
pub fn row_stat(logits: &[f32], sampling: &Sampling, need_extra: bool, rng: &mut impl Rng) -> RowStat {
    if sampling.temperature > 0.0 {
        return sample_row(logits, sampling, rng);
    }
    let (mut best, mut second) = (0usize, None::<usize>);
    for (i, &x) in logits.iter().enumerate().skip(1) {
        if x > logits[best] {
            second = Some(best);
            best = i;
        } else if second.map_or(true, |s| x > logits[s]) {
            second = Some(i);
        }
    }
    let m = logits[best];
    let sum: f32 = logits.iter().map(|&x| (x - m).exp()).sum();
    // torch: softmax in f32, then max; the max element is exp(0)/sum.
    let conf = (1.0f32 / sum) as f64;
    let (mut margin, mut neg_entropy) = (0.0, 0.0);
    if need_extra {
        let p2 = second.map_or(0.0, |s| ((logits[s] - m).exp() / sum) as f64);
        margin = conf - p2;
        let lse = (sum as f64).ln();
        neg_entropy = logits.iter().map(|&x| {
            let lp = (x - m) as f64 - lse;
            lp.exp() * lp
        }).sum();
    }
    RowStat { token: best as u32, conf, margin, neg_entropy, recomputed: true }
}

fn sample_row(logits: &[f32], s: &Sampling, rng: &mut impl Rng) -> RowStat {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].partial_cmp(&logits[a]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
    if s.top_k > 0 {
        idx.truncate(s.top_k);
    }
    let m = logits[idx[0]] as f64;
    let mut p: Vec<f64> = idx.iter().map(|&i| ((logits[i] as f64 - m) / s.temperature).exp()).collect();
    let total: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= total);
    if s.top_p < 1.0 {
        let mut cum = 0.0;
        let keep = p.iter().position(|&x| { cum += x; cum >= s.top_p }).map_or(p.len(), |k| k + 1);
        p.truncate(keep);
        idx.truncate(keep);
        let t: f64 = p.iter().sum();
        p.iter_mut().for_each(|x| *x /= t);
    }
    let u: f64 = rng.gen();
    let mut cum = 0.0;
    let mut pick = p.len() - 1;
    for (k, x) in p.iter().enumerate() {
        cum += x;
        if u < cum {
            pick = k;
            break;
        }
    }
    let second = if pick == 0 { p.get(1).copied().unwrap_or(0.0) } else { p[0] };
    let ne = p.iter().filter(|&&x| x > 0.0).map(|&x| x * x.ln()).sum();
    RowStat { token: idx[pick] as u32, conf: p[pick], margin: p[pick] - second, neg_entropy: ne, recomputed: true }
}

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

fn num(v: &Val) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Evaluate `score` at every canvas position. `memo` must belong to `inp.decoded`.
pub fn eval(score: &Score, inp: &ScoreInputs, memo: &mut DensityMemo) -> Vec<f64> {
    let g = inp.rows.len();
    match score {
        Score::Confidence => inp.rows.iter().map(|r| r.conf).collect(),
        Score::Margin => inp.rows.iter().map(|r| r.margin).collect(),
        Score::NegEntropy => inp.rows.iter().map(|r| r.neg_entropy).collect(),
        Score::CachedConfidence => match inp.cached_conf {
            Some(c) => c.to_vec(),
            None => inp.rows.iter().map(|r| r.conf).collect(),
        },
        Score::Density { sigma } => memo.get(inp.decoded, num(sigma)).to_vec(),
        Score::Const(v) => vec![num(v); g],
        Score::If { cond, then, otherwise } => {
            if cond.as_bool().unwrap_or(false) {
                eval(then, inp, memo)
            } else {
                eval(otherwise, inp, memo)
            }
        }
        Score::Mul(a, b) => {
            let (x, y) = (eval(a, inp, memo), eval(b, inp, memo));
            x.iter().zip(&y).map(|(p, q)| p * q).collect()
        }
        Score::Add(a, b) => {
            let (x, y) = (eval(a, inp, memo), eval(b, inp, memo));
            x.iter().zip(&y).map(|(p, q)| p + q).collect()
        }
    }
}

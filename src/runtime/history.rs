//! What a sequence remembers about its positions across steps, for rules that look back:
//! KLASS's KL divergence between consecutive steps' distributions, over the last few steps.

use std::collections::VecDeque;

/// Per generated position: the previous step's distribution and the last `len` KL values.
pub struct KlHistory {
    /// Empty until a position's first step (the reference starts from all zeros).
    prev: Vec<Vec<f32>>,
    kl: Vec<VecDeque<f64>>,
}

impl KlHistory {
    /// `positions` positions, `len` steps of history, every value 0 (as the reference starts).
    pub fn new(positions: usize, len: usize) -> Self {
        KlHistory { prev: vec![Vec::new(); positions], kl: vec![VecDeque::from(vec![0.0; len]); positions] }
    }

    /// Position `j`'s distribution at this step: append KL(p || previous), keep p for the next.
    /// `KL = Σ p (ln(p + 1e-12) - ln(q + 1e-12))`, the first log in f32 as the reference takes
    /// it, the rest in f64 (oracle README §10.3).
    pub fn observe(&mut self, j: usize, p: &[f32]) {
        let q = &self.prev[j];
        let kl: f64 = p
            .iter()
            .enumerate()
            .map(|(v, &pv)| {
                let lp = (pv + 1e-12f32).ln() as f64;
                let lq = (q.get(v).copied().unwrap_or(0.0) as f64 + 1e-12).ln();
                pv as f64 * (lp - lq)
            })
            .sum();
        let h = &mut self.kl[j];
        h.pop_front();
        h.push_back(kl);
        self.prev[j] = p.to_vec();
    }

    /// Every position's history, oldest first.
    pub fn windows(&self) -> Vec<Vec<f64>> {
        self.kl.iter().map(|h| h.iter().copied().collect()).collect()
    }
}

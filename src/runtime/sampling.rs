//! From one row of logits to what the decoder needs about it: the token it proposes and how
//! confident it is, exactly as the reference's `sample_tokens` computes them.
//!
//! The reference scales by the temperature (when > 0), applies the top-p filter, then the
//! top-k filter, and takes the softmax of what is left; at temperature 0 the token is the
//! argmax (unchanged by the filters) but the confidence is the renormalised probability, so
//! `top_p = 0.9` changes which positions a confidence-ranked policy commits (oracle §8.6).

use rand::Rng;

/// What one canvas position looks like after a step's forward.
#[derive(Debug, Clone, Copy)]
pub struct RowStat {
    pub token: u32,
    /// Probability of `token` (max softmax probability at temperature 0).
    pub conf: f64,
    pub margin: f64,
    pub neg_entropy: f64,
    /// Whether the row that decides this position was recomputed by this step's forward.
    pub recomputed: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    pub temperature: f64,
    /// 0 = off.
    pub top_k: usize,
    /// 1 = off.
    pub top_p: f64,
    /// A token never proposed: the mask. Committing it would leave the position masked
    /// forever (random weights do predict it); it still counts in the softmax, so the
    /// confidence of every other token is the reference's.
    pub never: Option<u32>,
}

impl Sampling {
    fn filters(&self) -> bool {
        self.top_p < 1.0 || self.top_k > 0
    }

    /// A row the forward did not recompute: the reference leaves its logits at zero, a
    /// uniform distribution over `width` tokens (confidence 1/V; with top-p, 1/n_kept). The
    /// token is the lowest id; the reference's tie order may pick another (never committed in
    /// the oracle runs).
    pub fn stale(&self, width: usize) -> RowStat {
        let zeros = vec![0.0f32; width];
        RowStat { recomputed: false, ..filtered(&zeros, 1.0, self) }
    }
}

/// The distribution the decoder reads from one logits row (after the top-p / top-k filters,
/// renormalised), over every token, in f32 as torch's softmax gives it.
pub fn distribution(logits: &[f32], sampling: &Sampling) -> Vec<f32> {
    if sampling.filters() {
        let mut p = vec![0.0f32; logits.len()];
        for (i, x) in survivors(logits, 1.0, sampling) {
            p[i] = x as f32;
        }
        return p;
    }
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|&x| (x - m).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

/// Statistics of one logits row; samples when `sampling.temperature > 0`.
pub fn row_stat(logits: &[f32], sampling: &Sampling, need_extra: bool, rng: &mut impl Rng) -> RowStat {
    if sampling.temperature > 0.0 {
        return sample_row(logits, sampling, rng);
    }
    if sampling.filters() {
        return filtered(logits, 1.0, sampling);
    }
    let never = sampling.never.map(|t| t as usize);
    let (mut best, mut second) = (None::<usize>, None::<usize>);
    for (i, &x) in logits.iter().enumerate() {
        if Some(i) == never {
            continue;
        }
        if best.is_none_or(|b| x > logits[b]) {
            second = best;
            best = Some(i);
        } else if second.is_none_or(|s| x > logits[s]) {
            second = Some(i);
        }
    }
    let best = best.unwrap_or(0);
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // torch: softmax in f32, then max; the max element is exp(0)/sum.
    let sum: f32 = logits.iter().map(|&x| (x - m).exp()).sum();
    let conf = ((logits[best] - m).exp() / sum) as f64;
    let (mut margin, mut neg_entropy) = (0.0, 0.0);
    if need_extra {
        let p2 = second.map_or(0.0, |s| ((logits[s] - m).exp() / sum) as f64);
        margin = conf - p2;
        let lse = (sum as f64).ln();
        neg_entropy = logits
            .iter()
            .map(|&x| {
                let lp = (x - m) as f64 - lse;
                lp.exp() * lp
            })
            .sum();
    }
    RowStat { token: best as u32, conf, margin, neg_entropy, recomputed: true }
}

/// The tokens that survive the top-p then top-k filters, best first (ties by id), with
/// their probabilities renormalised over the survivors.
fn survivors(logits: &[f32], temperature: f64, s: &Sampling) -> Vec<(usize, f64)> {
    let scale = if temperature > 0.0 { 1.0 / temperature as f32 } else { 1.0 };
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) * scale;
    let e: Vec<f32> = logits.iter().map(|&x| (x * scale - m).exp()).collect();
    let total: f32 = e.iter().sum();
    // Only tokens above a cut can be kept by top-p: lower the cut until the tokens above it
    // hold more mass than top_p (then the cumulative sum crosses top_p among them and every
    // token below the cut comes later in the order and is dropped). Saves sorting a whole
    // 150k vocabulary per row.
    let mut cut = if s.top_p < 1.0 { 1e-3f32 } else { 0.0 };
    let mut order: Vec<usize> = loop {
        let cand: Vec<usize> = (0..e.len()).filter(|&i| e[i] / total >= cut).collect();
        let mass: f64 = cand.iter().map(|&i| (e[i] / total) as f64).sum();
        if cut == 0.0 || mass > s.top_p + 1e-4 {
            break cand;
        }
        cut = if cut < 1e-9 { 0.0 } else { cut * 1e-2 };
    };
    order.sort_by(|&a, &b| e[b].total_cmp(&e[a]).then(a.cmp(&b)));
    let mut keep = order.len();
    if s.top_p < 1.0 {
        // torch.cumsum on the CPU: accumulated in f64, each prefix rounded to f32; a token is
        // dropped when the mass *before* it already exceeds top_p.
        let (p32, mut acc) = (s.top_p as f32, 0.0f64);
        for (r, &i) in order.iter().enumerate() {
            if r > 0 && (acc as f32) > p32 {
                keep = r;
                break;
            }
            acc += (e[i] / total) as f64;
        }
    }
    if s.top_k > 0 && s.top_k < keep {
        // torch: drop logits strictly below the k-th largest (ties at the k-th survive).
        let kth = e[order[s.top_k - 1]];
        keep = order[..keep].iter().position(|&i| e[i] < kth).unwrap_or(keep);
    }
    order.truncate(keep.max(1));
    let kept: f32 = order.iter().map(|&i| e[i]).sum();
    order.into_iter().map(|i| (i, (e[i] / kept) as f64)).collect()
}

/// The survivors without the token that is never proposed; if only it survived, the best
/// other token with probability 0.
fn proposable(logits: &[f32], temperature: f64, s: &Sampling) -> Vec<(usize, f64)> {
    let never = s.never.map(|t| t as usize);
    let mut kept = survivors(logits, temperature, s);
    kept.retain(|x| Some(x.0) != never);
    if kept.is_empty() {
        let best = (0..logits.len()).filter(|&i| Some(i) != never).max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a))).unwrap_or(0);
        kept.push((best, 0.0));
    }
    kept
}

/// Greedy decoding over the filtered distribution.
fn filtered(logits: &[f32], temperature: f64, s: &Sampling) -> RowStat {
    let kept = proposable(logits, temperature, s);
    let (token, conf) = kept[0];
    let margin = conf - kept.get(1).map_or(0.0, |x| x.1);
    let neg_entropy = kept.iter().filter(|x| x.1 > 0.0).map(|x| x.1 * x.1.ln()).sum();
    RowStat { token: token as u32, conf, margin, neg_entropy, recomputed: true }
}

fn sample_row(logits: &[f32], s: &Sampling, rng: &mut impl Rng) -> RowStat {
    let kept = proposable(logits, s.temperature, s);
    let u: f64 = rng.gen::<f64>() * kept.iter().map(|x| x.1).sum::<f64>();
    let mut cum = 0.0;
    let mut pick = kept.len() - 1;
    for (k, x) in kept.iter().enumerate() {
        cum += x.1;
        if u < cum {
            pick = k;
            break;
        }
    }
    let second = if pick == 0 { kept.get(1).map_or(0.0, |x| x.1) } else { kept[0].1 };
    let ne = kept.iter().filter(|x| x.1 > 0.0).map(|x| x.1 * x.1.ln()).sum();
    RowStat { token: kept[pick].0 as u32, conf: kept[pick].1, margin: kept[pick].1 - second, neg_entropy: ne, recomputed: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greedy(top_p: f64, top_k: usize) -> Sampling {
        Sampling { temperature: 0.0, top_k, top_p, never: None }
    }

    /// Oracle §8.6: a zero row keeps n_kept = 270 tokens for V = 300 and 361 for V = 400 at
    /// top_p = 0.9 (a plain f32 running sum would give 271 for V = 300).
    #[test]
    fn stale_row_confidence_under_top_p_is_one_over_n_kept() {
        for (v, n) in [(300usize, 270.0f64), (400, 361.0)] {
            let c = greedy(0.9, 0).stale(v).conf;
            assert!((c - 1.0 / n).abs() < 1e-7, "V={v}: {c} vs 1/{n}");
        }
        assert!((greedy(1.0, 0).stale(300).conf - (1.0f32 / 300.0) as f64).abs() < 1e-9);
    }

    #[test]
    fn filters_keep_the_argmax_and_renormalise() {
        let logits = [2.0f32, 0.5, 1.0, -1.0, 0.0];
        let mut rng = rand::thread_rng();
        let plain = row_stat(&logits, &greedy(1.0, 0), false, &mut rng);
        let p = row_stat(&logits, &greedy(0.5, 0), false, &mut rng);
        let k = row_stat(&logits, &greedy(1.0, 2), false, &mut rng);
        assert_eq!((plain.token, p.token, k.token), (0, 0, 0));
        // p(0) = 0.55 > 0.5: only token 0 is kept.
        assert!((p.conf - 1.0).abs() < 1e-6, "{}", p.conf);
        let e1 = (1.0f64 - 2.0).exp();
        assert!((k.conf - 1.0 / (1.0 + e1)).abs() < 1e-6, "{}", k.conf);
        assert!(plain.conf < k.conf);
    }

    /// The mask token is never proposed, but stays in the softmax.
    #[test]
    fn the_never_token_is_skipped_but_counted() {
        let logits = [2.0f32, 0.5, 1.0];
        let mut rng = rand::thread_rng();
        for s in [Sampling { never: Some(0), ..greedy(1.0, 0) }, Sampling { never: Some(0), ..greedy(0.99, 0) }] {
            let r = row_stat(&logits, &s, false, &mut rng);
            assert_eq!(r.token, 2);
            let z: f64 = logits.iter().map(|&x| (x as f64).exp()).sum();
            assert!((r.conf - 1f64.exp() / z).abs() < 1e-6, "{}", r.conf);
        }
        let only = Sampling { never: Some(0), ..greedy(0.1, 0) };
        assert_eq!(row_stat(&logits, &only, false, &mut rng).token, 2);
    }
}

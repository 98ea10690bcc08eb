//! Selection kernels: certainty density, top-k and nucleus.
//!
//! Ties always break towards the lower position, which is what the reference's
//! `torch.topk`/`torch.max` do on the CPU for the cases the oracle exercises.

use std::cmp::Ordering;

/// Gaussian certainty density around decoded positions, exact closed form of the
/// reference's FFT convolution (oracle README §5.3): positions left of the canvas count as
/// decoded, positions right of it repeat the last element, and the normaliser is the sum of
/// the kernel over the 6L FFT buffer.
pub fn certainty_density(decoded: &[bool], sigma: f64) -> Vec<f64> {
    let l = decoded.len() as i64;
    if l == 0 {
        return Vec::new();
    }
    let g = |d: i64| (-((d * d) as f64) / (2.0 * sigma * sigma)).exp();
    // kernel[d + 3l] = g(d) for d in [-3l, 3l]
    let kernel: Vec<f64> = (-3 * l..=3 * l).map(g).collect();
    let k = |d: i64| kernel[(d + 3 * l) as usize];
    let norm: f64 = (-3 * l..3 * l).map(k).sum();
    let last = decoded[(l - 1) as usize];
    (0..l)
        .map(|i| {
            let left: f64 = (-l..0).map(|j| k(i - j)).sum();
            let mid: f64 = (0..l).filter(|&j| decoded[j as usize]).map(|j| k(i - j)).sum();
            let right: f64 = if last { (l..2 * l).map(|j| k(i - j)).sum() } else { 0.0 };
            (left + mid + right) / norm
        })
        .collect()
}

fn desc(a: &(usize, f64), b: &(usize, f64)) -> Ordering {
    b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then(a.0.cmp(&b.0))
}

/// Indices of the `k` highest scores among `candidates`, best first.
pub fn top_k(scores: &[f64], candidates: impl Iterator<Item = usize>, k: usize) -> Vec<usize> {
    let mut c: Vec<(usize, f64)> = candidates.map(|i| (i, scores[i])).collect();
    c.sort_by(desc);
    c.into_iter().take(k).map(|(i, _)| i).collect()
}

/// The reference's `nucleus_select`: normalise the allowed scores to a distribution and keep
/// the longest prefix (by descending mass) whose cumulative mass is <= p, at least `min_k`.
pub fn nucleus(scores: &[f64], allowed: &[bool], p: f64, min_k: usize) -> Vec<usize> {
    let w: Vec<f64> = scores.iter().zip(allowed).map(|(s, a)| if *a { *s } else { 0.0 }).collect();
    let total: f64 = w.iter().sum::<f64>() + 1e-9;
    let mut order: Vec<(usize, f64)> = w.iter().map(|x| x / total).enumerate().collect();
    order.sort_by(desc);
    let mut cum = 0.0;
    let mut out = Vec::new();
    for (r, (i, pr)) in order.into_iter().enumerate() {
        cum += pr;
        if (cum <= p || r < min_k) && allowed[i] {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_towards_lower_index() {
        let s = [0.5, 0.9, 0.9, 0.1];
        assert_eq!(top_k(&s, 0..4, 2), vec![1, 2]);
        assert_eq!(top_k(&s, [3, 0].into_iter(), 5), vec![0, 3]);
    }

    #[test]
    fn nucleus_keeps_at_least_one_and_respects_mask() {
        let s = [5.0, 1.0, 1.0, 3.0];
        assert_eq!(nucleus(&s, &[true; 4], 0.1, 1), vec![0]);
        assert_eq!(nucleus(&s, &[false, true, true, true], 0.9, 1), vec![3, 1]);
    }

    #[test]
    fn density_is_high_next_to_decoded_tokens() {
        let mut m = vec![false; 32];
        m[10] = true;
        let d = certainty_density(&m, 3.0);
        assert!(d[10] > d[20] && d[9] > d[5]);
        // the left padding counts as decoded, so position 0 beats the far middle
        assert!(d[0] > d[25]);
    }
}

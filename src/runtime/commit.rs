//! Commit rules: how many of a step's ranked candidates it commits.

use super::kernels::top_k;

/// How many candidates a step commits, given its scores sorted in descending order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CommitCount {
    TopN(usize),
    Threshold {
        threshold: f64,
        min: usize,
    },
    Factor {
        factor: f64,
        min: usize,
    },
    /// EB-Sampler: as many as fit an entropy budget `gamma`; at least `min`.
    EntropyBounded {
        gamma: f64,
        min: usize,
    },
    /// KLASS: every candidate stable over `history` steps (KL < `kl`) with score >= `above`
    /// (None: the stable path is off); when there is none, the `min` best.
    KlStable {
        kl: f64,
        history: usize,
        above: Option<f64>,
        min: usize,
    },
}

impl CommitCount {
    /// The rule reads each candidate's entropy (`entropy` in [`commit`]).
    pub fn needs_entropy(&self) -> bool {
        matches!(self, CommitCount::EntropyBounded { .. })
    }
    /// How many steps of KL history the rule reads (`kl` in [`RowHistory`]).
    pub fn keeps_history(&self) -> Option<usize> {
        match self {
            CommitCount::KlStable { history, .. } => Some(*history),
            _ => None,
        }
    }
}

/// What a commit rule may read besides the scores: per canvas position, the entropy of its
/// distribution ([`CommitCount::EntropyBounded`]) and its latest KL divergences between
/// steps ([`CommitCount::KlStable`]); empty when the rule reads neither.
#[derive(Default)]
pub struct RowHistory<'a> {
    pub entropy: &'a [f64],
    pub kl: &'a [Vec<f64>],
    /// EB-Sampler with quirk `entropy_max_over_batch`: per rank, the largest candidate entropy
    /// of the earlier sequences of the batch (None: the sequence alone).
    pub earlier_max: Option<&'a [f64]>,
}

/// Apply a commit rule: the committed positions, best first (a KLASS stable set by position).
pub fn commit(scores: &[f64], rows: &RowHistory, candidates: &[usize], rule: &CommitCount) -> Vec<usize> {
    let ranked = top_k(scores, candidates.iter().copied(), candidates.len());
    if let CommitCount::KlStable { kl, above: Some(above), .. } = *rule {
        let stable = |i: usize| scores[i] >= above && rows.kl.get(i).is_some_and(|h| h.iter().all(|&x| x < kl));
        // A threshold's set, listed by position as the reference lists it.
        let chosen: Vec<usize> = candidates.iter().copied().filter(|&i| stable(i)).collect();
        if !chosen.is_empty() {
            return chosen;
        }
    }
    let n = match *rule {
        CommitCount::TopN(n) => n,
        CommitCount::Threshold { threshold, min } => {
            let above = ranked.iter().filter(|&&i| scores[i] >= threshold).count();
            above.max(min)
        }
        CommitCount::Factor { factor, min } => {
            let big_n = ranked.len();
            let mut n = 1;
            while n <= big_n {
                if (n as f64 + 1.0) * (1.0 - scores[ranked[n - 1]]) >= factor {
                    break;
                }
                n += 1;
            }
            // The reference's loop leaves N-1 when no n triggers the break (oracle §5.2).
            (n.min(big_n)).saturating_sub(1).max(min)
        }
        CommitCount::EntropyBounded { gamma, min } => match rows.earlier_max {
            None => entropy_bounded(&ranked, rows.entropy, gamma),
            Some(earlier) => entropy_bounded_in_batch(&ranked, rows.entropy, gamma, earlier),
        }
        .max(min),
        CommitCount::KlStable { min, .. } => min,
    };
    ranked.into_iter().take(n.min(candidates.len())).collect()
}

/// EB-Sampler's count (oracle README §10.1, the reference's rule at batch 1): the number of
/// ranks k whose value `v_k`, the entropy summed over the ranks before k, is at most `gamma`.
/// Entropies are non-negative, so that is the first k whose `v_k` exceeds `gamma`, and every
/// candidate when none does.
fn entropy_bounded(ranked: &[usize], entropy: &[f64], gamma: f64) -> usize {
    let mut before = 0.0;
    for (k, &i) in ranked.iter().enumerate() {
        if before > gamma {
            return k;
        }
        before += entropy.get(i).copied().unwrap_or(0.0);
    }
    ranked.len()
}

/// The reference's count in a batch (quirk `entropy_max_over_batch`): `v_k = S_k - M_k` with
/// `S_k` the entropy summed over ranks 0..=k and `M_k` the largest rank-k entropy of this and
/// the earlier sequences; the number of candidate ranks with `v_k <= gamma` (not a prefix any
/// more: `M_k` can jump). Ranks past the candidates are left out; the reference's order there
/// is torch's, and no decision of its traces depends on it (oracle README §10.1).
fn entropy_bounded_in_batch(ranked: &[usize], entropy: &[f64], gamma: f64, earlier: &[f64]) -> usize {
    let mut sum = 0.0;
    let mut n = 0;
    for (k, &i) in ranked.iter().enumerate() {
        let h = entropy.get(i).copied().unwrap_or(0.0);
        sum += h;
        if sum - earlier.get(k).copied().unwrap_or(f64::NEG_INFINITY).max(h) <= gamma {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_falls_back_to_min() {
        let s = [0.95, 0.2, 0.97, 0.5];
        let all = [0, 1, 2, 3];
        assert_eq!(commit(&s, &RowHistory::default(), &all, &CommitCount::Threshold { threshold: 0.9, min: 1 }), vec![2, 0]);
        assert_eq!(commit(&s, &RowHistory::default(), &all, &CommitCount::Threshold { threshold: 0.99, min: 1 }), vec![2]);
    }

    #[test]
    fn factor_rule_matches_reference_loop() {
        // sorted: 0.99, 0.9, 0.5 -> n=1: 2*0.01 < 1; n=2: 3*0.1 < 1; n=3: 4*0.5 >= 1 -> 3-1 = 2
        let s = [0.9, 0.5, 0.99];
        assert_eq!(commit(&s, &RowHistory::default(), &[0, 1, 2], &CommitCount::Factor { factor: 1.0, min: 1 }), vec![2, 0]);
        // never triggers -> N-1
        assert_eq!(commit(&s, &RowHistory::default(), &[0, 1, 2], &CommitCount::Factor { factor: 100.0, min: 1 }).len(), 2);
    }

    #[test]
    fn entropy_bounded_takes_the_prefix_whose_earlier_entropy_fits() {
        // ranked by score: 2 (H 1.0), 0 (H 1.5), 3 (H 2.0), 1 (H 0.1)
        let s = [0.8, 0.1, 0.9, 0.5];
        let h = [1.5, 0.1, 1.0, 2.0];
        let all = [0, 1, 2, 3];
        // v = 0, 1.0, 2.5, 4.5: gamma 2.5 keeps ranks 0..=2
        assert_eq!(commit(&s, &RowHistory { entropy: &h, ..RowHistory::default() }, &all, &CommitCount::EntropyBounded { gamma: 2.5, min: 1 }), vec![2, 0, 3]);
        // gamma 0.5: only rank 0 (v_0 = 0 always fits)
        assert_eq!(commit(&s, &RowHistory { entropy: &h, ..RowHistory::default() }, &all, &CommitCount::EntropyBounded { gamma: 0.5, min: 1 }), vec![2]);
        // at least min, at most every candidate
        assert_eq!(commit(&s, &RowHistory { entropy: &h, ..RowHistory::default() }, &all, &CommitCount::EntropyBounded { gamma: 0.5, min: 2 }), vec![2, 0]);
        assert_eq!(commit(&s, &RowHistory { entropy: &h, ..RowHistory::default() }, &all, &CommitCount::EntropyBounded { gamma: 100.0, min: 1 }).len(), 4);
    }

    #[test]
    fn kl_stable_commits_every_stable_candidate_above_the_bound_else_the_best() {
        let s = [0.9, 0.2, 0.6, 0.8];
        let kl = vec![vec![0.01, 0.02], vec![0.0, 0.0], vec![0.5, 0.01], vec![0.01, 0.03]];
        let rows = RowHistory { kl: &kl, ..RowHistory::default() };
        let rule = |above| CommitCount::KlStable { kl: 0.1, history: 2, above, min: 1 };
        // 0 and 3 are stable and above 0.5; 1 is stable but below; 2 moved
        assert_eq!(commit(&s, &rows, &[0, 1, 2, 3], &rule(Some(0.5))), vec![0, 3]);
        // nothing stable above 0.95: the best one
        assert_eq!(commit(&s, &rows, &[0, 1, 2, 3], &rule(Some(0.95))), vec![0]);
        // no bound (the reference preset's quirk): never the stable path
        assert_eq!(commit(&s, &rows, &[1, 2], &rule(None)), vec![2]);
    }
}

//! Commit rules: how many of a step's ranked candidates it commits.

use super::kernels::top_k;

/// How many candidates a step commits, given its scores sorted in descending order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CommitCount {
    TopN(usize),
    Threshold { threshold: f64, min: usize },
    Factor { factor: f64, min: usize },
}

/// Apply a commit rule: the committed positions, best first.
pub fn commit(scores: &[f64], candidates: &[usize], rule: &CommitCount) -> Vec<usize> {
    let ranked = top_k(scores, candidates.iter().copied(), candidates.len());
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
    };
    ranked.into_iter().take(n.min(candidates.len())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_falls_back_to_min() {
        let s = [0.95, 0.2, 0.97, 0.5];
        let all = [0, 1, 2, 3];
        assert_eq!(commit(&s, &all, &CommitCount::Threshold { threshold: 0.9, min: 1 }), vec![2, 0]);
        assert_eq!(commit(&s, &all, &CommitCount::Threshold { threshold: 0.99, min: 1 }), vec![2]);
    }

    #[test]
    fn factor_rule_matches_reference_loop() {
        // sorted: 0.99, 0.9, 0.5 -> n=1: 2*0.01 < 1; n=2: 3*0.1 < 1; n=3: 4*0.5 >= 1 -> 3-1 = 2
        let s = [0.9, 0.5, 0.99];
        assert_eq!(commit(&s, &[0, 1, 2], &CommitCount::Factor { factor: 1.0, min: 1 }), vec![2, 0]);
        // never triggers -> N-1
        assert_eq!(commit(&s, &[0, 1, 2], &CommitCount::Factor { factor: 100.0, min: 1 }).len(), 2);
    }
}

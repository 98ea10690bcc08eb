//! Which rows the next step recomputes: the plan's refresh rules, evaluated in order after a
//! step has committed its tokens. Each rule adds positions to the set; rollout rules pick only
//! among positions not selected yet, and `inflate` fills gaps in what the rules before it chose.
//!
//! Rules that want a canvas position's *prediction* (masked top-k, block, suffix) select the
//! row whose logits decide it ([`RowMap::logit_row`]: the position itself, or its predecessor
//! on a shifted-logit model such as Dream); rules that want a token's fresh K/V (committed)
//! select the token's own row.

use super::kernels::{nucleus, top_k};
use super::scores::{eval, DensityMemo, RowStat, ScoreInputs};
use super::settings::{CandidateWindow, DecodeSettings, Pick, RefreshRule};
use crate::plan::Quirk;

/// Where canvas positions sit among the model's rows, for a model whose logits for position
/// `i` come from row `i - shift`.
#[derive(Debug, Clone, Copy)]
pub struct RowMap {
    pub prompt_len: usize,
    pub gen: usize,
    pub shift: usize,
}

impl RowMap {
    /// The row whose logits decide canvas position `j` (requires `prompt_len >= shift`).
    pub fn logit_row(&self, j: usize) -> usize {
        self.prompt_len + j - self.shift
    }
    /// The canvas position that row `r`'s logits decide, if any.
    pub fn decided_by(&self, r: usize) -> Option<usize> {
        (r + self.shift).checked_sub(self.prompt_len).filter(|&j| j < self.gen)
    }
    /// The row that holds canvas position `j`'s own token.
    pub fn token_row(&self, j: usize) -> usize {
        self.prompt_len + j
    }
    pub fn len(&self) -> usize {
        self.prompt_len + self.gen
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One sequence's view of the step that just ran.
pub struct StepView<'a> {
    /// Rows of the refresh rules (the model's shift, unless the policy turns it off).
    pub map: RowMap,
    /// Canvas after this step's commits.
    pub masked_after: &'a [bool],
    /// In-block positions that were masked before this step (the reference's mutated block mask).
    pub block_seen: &'a [bool],
    pub block: (usize, usize),
    pub block_length: usize,
    pub committed: &'a [usize],
    pub rows: &'a [RowStat],
    pub cached_conf: Option<&'a [f64]>,
    pub importance: Option<&'a [f64]>,
    /// Index of the step about to run.
    pub next_step: usize,
}

/// Window scores of every `masked top_k` rule, computed for all sequences first because the
/// in-block bias may use the batch-global maximum (oracle §6.8, quirk `batch_global_scores`;
/// otherwise each sequence's own).
pub fn window_scores(set: &DecodeSettings, views: &[StepView]) -> Vec<Vec<Vec<f64>>> {
    let global = set.quirks.on(Quirk::BatchGlobalScores);
    let mut per_rule = Vec::new();
    for rule in &set.rows {
        if let RefreshRule::MaskedTopK { score, prefer_block, .. } = rule {
            let mut all: Vec<Vec<f64>> = views
                .iter()
                .map(|v| {
                    let decoded: Vec<bool> = v.masked_after.iter().map(|m| !m).collect();
                    let inp = ScoreInputs { rows: v.rows, cached_conf: v.cached_conf, decoded: &decoded };
                    eval(score, &inp, &mut DensityMemo::new())
                })
                .collect();
            if *prefer_block {
                let max_of = |sc: &[f64]| sc.iter().copied().filter(|x| !x.is_nan()).fold(f64::NEG_INFINITY, f64::max);
                let batch_max = all.iter().map(|sc| max_of(sc)).fold(f64::NEG_INFINITY, f64::max);
                for (v, sc) in views.iter().zip(all.iter_mut()) {
                    let max = if global { batch_max } else { max_of(sc) };
                    for (i, s) in sc.iter_mut().enumerate() {
                        if v.block_seen[i] {
                            *s += max;
                        }
                    }
                }
            }
            per_rule.push(all);
        }
    }
    per_rule
}

/// The lookahead window [start, end] (inclusive) of d²Cache, in canvas coordinates.
fn lookahead(v: &StepView, k: usize, rounds_to_masked: bool) -> (usize, usize) {
    let g = v.masked_after.len();
    let mut cum = 0;
    let mut mse = g - 1;
    for (i, &m) in v.masked_after.iter().enumerate() {
        cum += m as usize;
        if cum >= k {
            mse = i;
            break;
        }
    }
    let bs = if rounds_to_masked { v.block_seen.iter().filter(|&&b| b).count() } else { v.block_length }.max(1);
    let end = ((mse / bs) + 1) * bs - 1;
    let start = if rounds_to_masked { v.block_seen.iter().position(|&b| b).unwrap_or(v.block.0) } else { v.block.0 };
    (start, end.min(g - 1))
}

/// Absolute positions (length T mask) the next step recomputes for one sequence.
pub fn select_rows(set: &DecodeSettings, v: &StepView, seq: usize, window: &[Vec<Vec<f64>>]) -> Vec<bool> {
    let (map, g) = (v.map, v.masked_after.len());
    let mut q = vec![false; map.len()];
    let rounds = set.quirks.on(Quirk::WindowRoundsToMasked);
    // Oracle §8.3: the reference assigns the row of canvas position 0 (the last prompt row
    // on a shifted model) only after the rollout nucleus, replacing whatever it picked.
    let late_first = map.shift > 0 && set.quirks.on(Quirk::FirstPredecessorAfterRollout);
    let mut pending_first: Option<bool> = None;
    let mut wi = 0;
    for rule in &set.rows {
        match rule {
            RefreshRule::MaskedTopK { k, window: w, .. } => {
                let k = *k;
                let sc = &window[wi][seq];
                wi += 1;
                let (lo, hi) = match w {
                    CandidateWindow::Block => (v.block.0, v.block.1 - 1),
                    CandidateWindow::All => (0, g - 1),
                    CandidateWindow::Lookahead { k } => lookahead(v, *k, rounds),
                };
                let cands = (lo..=hi).filter(|&i| v.masked_after[i]);
                let picked = top_k(sc, cands, k.min(g));
                if late_first {
                    pending_first = Some(pending_first.unwrap_or(false) || picked.contains(&0));
                }
                for i in picked.into_iter().filter(|&i| !(late_first && i == 0)) {
                    q[map.logit_row(i)] = true;
                }
            }
            RefreshRule::Committed => v.committed.iter().for_each(|&i| q[map.token_row(i)] = true),
            RefreshRule::Rollout { pick, .. } => {
                let Some(gi) = v.importance else { continue };
                let free: Vec<bool> = q.iter().map(|x| !x).collect();
                let picked = match pick {
                    Pick::TopP(p) => nucleus(gi, &free, *p, 1),
                    Pick::TopK(k) => top_k(gi, (0..q.len()).filter(|&i| free[i]), *k),
                    Pick::Above(t) => (0..q.len()).filter(|&i| free[i] && gi[i] >= *t).collect(),
                };
                picked.into_iter().for_each(|i| q[i] = true);
                if let Some(first) = pending_first.take() {
                    q[map.logit_row(0)] = first;
                }
            }
            RefreshRule::Block => (v.block.0..v.block.1).for_each(|i| q[map.logit_row(i)] = true),
            RefreshRule::Suffix => (v.block.1..g).for_each(|i| q[map.logit_row(i)] = true),
            RefreshRule::Prompt { every } => {
                if v.next_step.is_multiple_of(*every) {
                    q[..map.prompt_len].iter_mut().for_each(|x| *x = true);
                }
            }
            RefreshRule::Inflate { w } => {
                if let Some(first) = pending_first.take() {
                    q[map.logit_row(0)] = first;
                }
                inflate(&mut q, *w)
            }
        }
    }
    if let Some(first) = pending_first {
        q[map.logit_row(0)] |= first;
    }
    q
}

fn inflate(q: &mut [bool], w: usize) {
    if w == 0 {
        return;
    }
    let sel: Vec<usize> = (0..q.len()).filter(|&i| q[i]).collect();
    for pair in sel.windows(2) {
        if pair[1] - pair[0] <= w {
            q[pair[0]..pair[1]].iter_mut().for_each(|x| *x = true);
        }
    }
}

/// The reference's `top_up`: in a batch every sequence pushes the same number of rows, so
/// shorter sets are filled with their best unselected positions, canvas positions first (by
/// window score), then the prompt by rollout importance.
pub fn top_up(sets: &mut [Vec<bool>], importance: &[Vec<f64>], density: &[Vec<f64>], prompt_len: usize) {
    let target = sets.iter().map(|s| s.iter().filter(|&&x| x).count()).max().unwrap_or(0);
    if sets.iter().all(|s| s.iter().filter(|&&x| x).count() == target) {
        return;
    }
    let combined: Vec<Vec<f64>> =
        sets.iter().zip(importance).map(|(s, gi)| s.iter().zip(gi).map(|(&q, &x)| if q { f64::NEG_INFINITY } else { x }).collect()).collect();
    let max = combined.iter().flatten().copied().fold(f64::NEG_INFINITY, f64::max);
    for (b, set) in sets.iter_mut().enumerate() {
        let mut sc = combined[b].clone();
        for (i, d) in density.get(b).map(|d| d.as_slice()).unwrap_or(&[]).iter().enumerate() {
            sc[prompt_len + i] += max + d;
        }
        let have = set.iter().filter(|&&x| x).count();
        let free = (0..set.len()).filter(|&i| !set[i]);
        for i in top_k(&sc, free, target - have) {
            set[i] = true;
        }
    }
}

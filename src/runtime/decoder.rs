//! One decode's state (its plan, prompts, canvas, K/V store and caches) and the phases of
//! one step, in the order [`super::batch::Batch::step`] runs them: [`Decoder::next_step`]
//! (which rows to push, block after block), the forward ([`Decoder::request`] /
//! [`Decoder::receive`] when the batch runs it, [`Decoder::forward`] alone), then
//! [`Decoder::finish_step`]: the commit (row statistics, scores, the commit rule, confidence
//! cache, rollout importance), the refresh (the next step's rows) and the accounting.
//!
//! Shifted logits (Dream) are handled through [`RowMap`] only: the forward asks for the rows
//! whose logits decide masked positions, and the commit reads them back by position.

use super::commit::{commit, RowHistory};
use super::cost::{account_layered, forward_flops, StepShape};
use super::history::KlHistory;
use super::kernels::top_k;
use super::layers::layer_spec;
use super::options::Progress;
use super::output::{RunOutput, Stats, StepRecord};
use super::refresh::{select_rows, top_up, window_scores, RowMap, StepView};
use super::rollout::{importance_dense, importance_vector};
use super::sampling::{distribution, row_stat, RowStat};
use super::scores::{eval, DensityMemo, ScoreInputs};
use super::settings::{DecodeSettings, FullAt};
use crate::error::{Error, Result};
use crate::model::{DiffusionModel, ForwardOutput, ForwardRequest, KvStore, LayerCache, LayeredRequest, ModelInfo};
use crate::plan::{Quirk, RolloutMode};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;

pub(super) struct Decoder<'a, M: DiffusionModel + ?Sized> {
    model: &'a M,
    set: DecodeSettings,
    info: ModelInfo,
    prompts: Vec<Vec<u32>>,
    /// The semi-autoregressive blocks as [start, end) canvas ranges, the one being decoded,
    /// and whether its first step is still to come.
    blocks: Vec<(usize, usize)>,
    block_at: usize,
    first_in_block: bool,
    /// Where the model reads logits for each canvas position.
    logits_map: RowMap,
    /// Where the refresh rules put a position's prediction (the policy may turn the shift off).
    refresh_map: RowMap,
    kv: KvStore,
    layer_cache: Option<LayerCache>,
    /// Per sequence, the canvas (masked positions hold the mask id), kept apart from the rest
    /// of its state because progress callbacks read all canvases at once.
    canvas: Vec<Vec<u32>>,
    /// Per sequence, what the policy remembers between steps.
    seqs: Vec<SeqState>,
    /// What a masked position whose logit row was not recomputed looks like.
    stale: RowStat,
    /// Its distribution, for rules that keep one per position (empty otherwise).
    stale_dist: Vec<f32>,
    /// Ids that end an answer (`stop_at_eos`).
    stop_ids: Vec<u32>,
    rng: StdRng,
    step: usize,
    pub(super) stats: Stats,
}

/// What one sequence carries from a step to the next, besides its canvas.
#[derive(Default)]
struct SeqState {
    /// The confidence cache (raw confidence of still-masked positions).
    conf_cache: Option<Vec<f64>>,
    /// The rows the refresh rules chose for the next step (None: all).
    next_rows: Option<Vec<bool>>,
    /// Attention-rollout importance of every row, from the last forward.
    importance: Vec<f64>,
    /// The first `masked top_k` rule's window scores, for topping up a batch's row sets.
    window_density: Vec<f64>,
    /// Stopped at a stop token (`stop_at_eos`).
    finished: bool,
    /// KL divergences between steps, for a commit rule that reads them (KLASS).
    kl: Option<KlHistory>,
}

/// One step's rows: which sequences decode, which rows they push, whose logits are read.
pub(super) struct StepRows {
    block: (usize, usize),
    /// Per sequence: block positions still masked before this step.
    block_seen: Vec<Vec<bool>>,
    /// The sequences in the forward: every one of the decode, since they share one K/V store.
    active: Vec<usize>,
    /// Per sequence in the forward, whether it commits this step (it has masked positions in
    /// the block and has not stopped); the others only ride along, as in the reference.
    commits: Vec<bool>,
    full: bool,
    /// Per sequence, the rows its policy recomputes.
    positions: Vec<Vec<usize>>,
    /// The same, padded to one count for the forward (repeats of the last row).
    padded: Vec<Vec<usize>>,
    ids: Vec<Vec<u32>>,
    /// Indices into `positions`, padded to one count for the batch; `real` are the unpadded counts.
    logit_rows: Vec<Vec<usize>>,
    real: Vec<usize>,
}

impl StepRows {
    /// Rows this step pushes through the model, over its sequences.
    pub(super) fn row_count(&self) -> usize {
        self.padded.iter().map(Vec::len).sum()
    }
}

/// What a forward returns, on the host.
pub(super) struct ForwardResult {
    /// Per active sequence, per logit row.
    logits: Vec<Vec<Vec<f32>>>,
    /// Per layer, per active sequence, (query rows x T) head-mean attention.
    attention: Vec<Vec<Vec<Vec<f32>>>>,
    /// Layered forwards: per layer, per active sequence, the rows recomputed.
    layer_rows: Vec<Vec<Vec<usize>>>,
}

/// One sequence's outcome of the commit phase.
pub(super) struct SeqCommit {
    seq: usize,
    rows: Vec<RowStat>,
    chosen: Vec<usize>,
}

impl<'a, M: DiffusionModel + ?Sized> Decoder<'a, M> {
    pub(super) fn new(model: &'a M, mut set: DecodeSettings, prompts: Vec<Vec<u32>>, stop_ids: Vec<u32>) -> Result<Self> {
        let info = model.info().clone();
        set.sampling.never = Some(info.mask_id);
        let b = prompts.len();
        let p = prompts.first().map_or(0, |x| x.len());
        if b == 0 || p == 0 {
            return Err(Error::input("at least one non-empty prompt is needed"));
        }
        if prompts.iter().any(|x| x.len() != p) {
            return Err(Error::input("all prompts of a batch must have the same length (no padding support)"));
        }
        let (g, t) = (set.gen, p + set.gen);
        if t > info.max_seq_len {
            return Err(Error::input(format!("prompt ({p} tokens) + gen_length ({g}) = {t} exceeds the model's maximum sequence length {}", info.max_seq_len)));
        }
        let logits_map = RowMap { prompt_len: p, gen: g, shift: info.logits_shift };
        let refresh_map = RowMap { shift: if set.shift_for_shifted_logits { info.logits_shift } else { 0 }, ..logits_map };
        let layer_cache = match &set.layers {
            Some(_) => Some(model.new_layer_cache(b, t)?),
            None => None,
        };
        let blocks = (0..set.gen / set.block).map(|k| (k * set.block, (k + 1) * set.block)).collect();
        Ok(Decoder {
            model,
            blocks,
            block_at: 0,
            first_in_block: true,
            kv: model.new_kv_store(b, t)?,
            layer_cache,
            canvas: vec![vec![info.mask_id; g]; b],
            seqs: (0..b)
                .map(|_| SeqState { importance: vec![0.0; t], kl: set.commit.keeps_history().map(|h| KlHistory::new(g, h)), ..SeqState::default() })
                .collect(),
            stale: set.sampling.stale(info.logits_width),
            // A row the forward did not recompute reads as zero logits (oracle §10.3).
            stale_dist: if set.commit.keeps_history().is_some() { distribution(&vec![0.0; info.logits_width], &set.sampling) } else { Vec::new() },
            stop_ids: if stop_ids.is_empty() { vec![info.eos_id] } else { stop_ids },
            rng: StdRng::seed_from_u64(set.seed),
            step: 0,
            stats: Stats::default(),
            logits_map,
            refresh_map,
            set,
            info,
            prompts,
        })
    }

    /// The rows of the next step: in the current block while it has masked positions, else
    /// in the next block; `None` once every block is decoded.
    pub(super) fn next_step(&mut self) -> Option<StepRows> {
        while let Some(&block) = self.blocks.get(self.block_at) {
            if let Some(st) = self.rows(block, self.first_in_block) {
                return Some(st);
            }
            self.block_at += 1;
            self.first_in_block = true;
        }
        None
    }

    /// Everything after the forward: commit, refresh, accounting (`before` is the policy time
    /// spent choosing the rows, `model` the forward's). Fails when the step committed nothing,
    /// which would otherwise loop for ever.
    pub(super) fn finish_step(&mut self, st: &StepRows, fresh: &ForwardResult, details: bool, before: Duration, model: Duration) -> Result<StepRecord> {
        let t = std::time::Instant::now();
        let (mut rec, commits) = self.commit(st, fresh, details);
        if rec.committed.iter().all(|c| c.is_empty()) {
            return Err(Error::Other(format!(
                "{}: step {} committed nothing (no masked position of block {}..{} was a commit candidate; does the cache recompute the block's rows?)",
                self.set.policy, rec.step, st.block.0, st.block.1
            )));
        }
        self.refresh(st, &commits, &mut rec);
        self.account(st, fresh, before + t.elapsed(), model);
        self.first_in_block = false;
        Ok(rec)
    }

    /// Whether this decode's forwards are per-layer ones (dLLM-Cache), which run alone.
    pub(super) fn is_layered(&self) -> bool {
        self.set.layers.is_some()
    }

    /// The K/V store, for a forward the batch runs.
    pub(super) fn kv_mut(&mut self) -> &mut KvStore {
        &mut self.kv
    }

    pub(super) fn progress<'b>(&'b self, recomputed: Option<&'b [Vec<usize>]>) -> Progress<'b> {
        Progress {
            steps: self.stats.forwards,
            committed: self.stats.generated_tokens,
            canvas_size: self.set.gen * self.canvas.len(),
            canvas: &self.canvas,
            mask_id: self.info.mask_id,
            prompt_len: self.prompts.first().map_or(0, |x| x.len()),
            recomputed,
        }
    }

    /// Phase 1: the rows this step pushes, or `None` when no sequence has a masked position
    /// left in `block`.
    fn rows(&self, block: (usize, usize), first_in_block: bool) -> Option<StepRows> {
        let (g, t, mask) = (self.set.gen, self.logits_map.len(), self.info.mask_id);
        let block_seen: Vec<Vec<bool>> = self.canvas.iter().map(|c| (0..g).map(|i| i >= block.0 && i < block.1 && c[i] == mask).collect()).collect();
        let commits: Vec<bool> = (0..self.canvas.len()).map(|s| !self.seqs[s].finished && block_seen[s].iter().any(|&x| x)).collect();
        if !commits.iter().any(|&c| c) || self.set.per_step == 0 {
            return None;
        }
        let active: Vec<usize> = (0..self.canvas.len()).collect();
        let full = !self.set.has_cache()
            || active.iter().any(|&s| self.seqs[s].next_rows.is_none())
            || self.set.full.iter().any(|f| match *f {
                FullAt::FirstStep => self.step == 0,
                FullAt::BlockStart => first_in_block,
                FullAt::Every(n) => self.step.is_multiple_of(n),
            });
        let mut sets: Vec<Vec<bool>> =
            active.iter().map(|&s| if full { vec![true; t] } else { self.seqs[s].next_rows.clone().unwrap_or_else(|| vec![true; t]) }).collect();
        if !full && active.len() > 1 && self.set.quirks.on(Quirk::BatchGlobalScores) {
            // The reference pushes equal row counts for every sequence of a batch.
            let gi: Vec<Vec<f64>> = active.iter().map(|&s| self.seqs[s].importance.clone()).collect();
            let dens: Vec<Vec<f64>> = active.iter().map(|&s| self.seqs[s].window_density.clone()).collect();
            top_up(&mut sets, &gi, &dens, self.logits_map.prompt_len);
        }
        let positions: Vec<Vec<usize>> = sets.iter().map(|q| (0..t).filter(|&i| q[i]).collect()).collect();
        // The forward takes one row count per batch: shorter sets repeat their last row,
        // which recomputes and rewrites the same K/V (see quirk `batch_global_scores`).
        let n = positions.iter().map(|p| p.len()).max().unwrap_or(0);
        let padded: Vec<Vec<usize>> = positions
            .iter()
            .map(|p| {
                let mut q = p.clone();
                q.resize(n, p.last().copied().unwrap_or(self.logits_map.prompt_len.saturating_sub(1)));
                q
            })
            .collect();
        let ids = active.iter().zip(&padded).map(|(&s, pos)| pos.iter().map(|&i| self.token_at(s, i)).collect()).collect();
        // Logits only where a rule reads them: rows deciding masked positions of the block,
        // and every masked position while the confidence cache or an out-of-block rule needs it.
        let mut logit_rows: Vec<Vec<usize>> = active
            .iter()
            .zip(&positions)
            .map(|(&s, pos)| {
                let history = self.set.commit.keeps_history().is_some();
                let all = self.set.reads_outside_block()
                    || (self.set.needs.confidence_cache && (!self.set.quirks.on(Quirk::FrozenConfidenceCache) || self.seqs[s].conf_cache.is_none()));
                (0..pos.len())
                    .filter(|&r| {
                        // A rule with a history reads every masked position's distribution.
                        self.logits_map.decided_by(pos[r]).is_some_and(|j| self.canvas[s][j] == mask && (history || all || (j >= block.0 && j < block.1)))
                    })
                    .collect()
            })
            .collect();
        let real: Vec<usize> = logit_rows.iter().map(|r| r.len()).collect();
        let nl = real.iter().copied().max().unwrap_or(0).max(1);
        for r in logit_rows.iter_mut() {
            let pad = r.last().copied().unwrap_or(0);
            r.resize(nl, pad);
        }
        Some(StepRows { block, block_seen, active, commits, full, positions, padded, ids, logit_rows, real })
    }

    fn token_at(&self, seq: usize, row: usize) -> u32 {
        let p = self.logits_map.prompt_len;
        if row < p {
            self.prompts[seq][row]
        } else {
            self.canvas[seq][row - p]
        }
    }

    /// Phase 2 for a plain forward: what to ask the model ([`Decoder::receive`] takes the
    /// answer).
    pub(super) fn request(&self, st: &StepRows) -> ForwardRequest {
        ForwardRequest {
            ids: st.ids.clone(),
            positions: st.padded.clone(),
            logit_rows: st.logit_rows.clone(),
            want_attention: self.set.needs.rollout.is_some(),
        }
    }

    /// A plain forward's output, on the host.
    pub(super) fn receive(&mut self, out: ForwardOutput) -> Result<ForwardResult> {
        let attention = download_attention(&out.attention)?;
        self.stats.host_copies += out.uploads + 1 + !out.attention.is_empty() as usize;
        Ok(ForwardResult { logits: out.logits.to_vec3()?, attention, layer_rows: Vec::new() })
    }

    /// Phase 2: one forward over the chosen rows; logits and attention back on the host.
    pub(super) fn forward(&mut self, st: &StepRows) -> Result<ForwardResult> {
        let map = self.logits_map;
        match (&self.set.layers, self.layer_cache.as_mut()) {
            (Some(lp), Some(lc)) => {
                if st.active.len() != self.canvas.len() {
                    return Err(Error::Other("per-layer caches need every sequence of the batch active (stop_at_eos with a batch is not supported)".into()));
                }
                let from = map.logit_row(0);
                let req = LayeredRequest {
                    ids: st.ids.clone(),
                    prompt_len: map.prompt_len,
                    logits_from: from,
                    layers: layer_spec(lp, self.step, self.info.n_layers, map.gen),
                };
                let out = self.model.forward_layered(&req, &mut self.kv, lc)?;
                self.stats.host_copies += out.uploads + 1;
                let all: Vec<Vec<Vec<f32>>> = out.logits.to_vec3()?;
                let logits =
                    st.logit_rows.iter().enumerate().map(|(a, rows)| rows.iter().map(|&r| all[a][st.positions[a][r] - from].clone()).collect()).collect();
                Ok(ForwardResult { logits, attention: Vec::new(), layer_rows: out.refreshed })
            }
            _ => {
                let out = self.model.forward(&self.request(st), &mut self.kv)?;
                self.receive(out)
            }
        }
    }

    /// Phase 3: statistics of every masked position, the commit score, the commit rule; then
    /// the confidence cache and the rollout importance the refresh rules will read.
    fn commit(&mut self, st: &StepRows, fresh: &ForwardResult, details: bool) -> (StepRecord, Vec<SeqCommit>) {
        let (g, b, mask) = (self.set.gen, self.canvas.len(), self.info.mask_id);
        let mut rec = StepRecord {
            step: self.step,
            query_positions: if st.full { None } else { Some(vec![vec![]; b]) },
            committed: vec![vec![]; b],
            committed_conf: vec![vec![]; b],
            select_scores: vec![vec![]; b],
            importance: vec![vec![]; b],
            next_query_positions: vec![vec![]; b],
            layer_rows: vec![vec![]; b],
        };
        let need_extra = self.set.needs.margin || self.set.needs.entropy;
        let mut out = Vec::with_capacity(st.active.len());
        // Quirk entropy_max_over_batch: per rank, the largest candidate entropy so far.
        let mut earlier_max: Option<Vec<f64>> = (self.set.commit.needs_entropy() && self.set.quirks.on(Quirk::EntropyMaxOverBatch)).then(Vec::new);
        for (a, &s) in st.active.iter().enumerate() {
            if let Some(qp) = rec.query_positions.as_mut() {
                qp[s] = st.positions[a].clone();
            }
            rec.layer_rows[s] = fresh.layer_rows.iter().map(|l| l[a].clone()).collect();
            if !st.commits[a] {
                continue;
            }
            let mut rows = vec![self.stale; g];
            let mut dists: Vec<Option<Vec<f32>>> = vec![None; if self.seqs[s].kl.is_some() { g } else { 0 }];
            for (k, &r) in st.logit_rows[a].iter().take(st.real[a]).enumerate() {
                if let Some(j) = self.logits_map.decided_by(st.positions[a][r]) {
                    rows[j] = row_stat(&fresh.logits[a][k], &self.set.sampling, need_extra, &mut self.rng);
                    if let Some(d) = dists.get_mut(j) {
                        *d = Some(distribution(&fresh.logits[a][k], &self.set.sampling));
                    }
                }
            }
            let stale = &self.stale_dist;
            let kl = self.seqs[s].kl.as_mut().map(|h| {
                // Decoded positions are never candidates again (KLASS does not re-mask), so
                // their history is not kept up; the reference's would only be read for them.
                for (j, d) in dists.iter().enumerate().filter(|&(j, _)| self.canvas[s][j] == mask) {
                    h.observe(j, d.as_deref().unwrap_or(stale));
                }
                h.windows()
            });
            let remaining: Vec<bool> = self.canvas[s].iter().map(|&x| x == mask).collect();
            let decoded: Vec<bool> = remaining.iter().map(|m| !m).collect();
            let eligible = |i: usize| remaining[i] && (rows[i].recomputed || self.set.quirks.on(Quirk::StaleRowsAreCandidates));
            let candidates: Vec<usize> = (0..g).filter(|&i| st.block_seen[s][i] && eligible(i)).collect();
            let inp = ScoreInputs { rows: &rows, cached_conf: self.seqs[s].conf_cache.as_deref(), decoded: &decoded };
            let mut score = eval(&self.set.commit_score, &inp, &mut DensityMemo::new());
            for (i, sc) in score.iter_mut().enumerate() {
                if !eligible(i) {
                    *sc = f64::NEG_INFINITY;
                }
            }
            let entropy: Vec<f64> = if self.set.commit.needs_entropy() { rows.iter().map(|r| -r.neg_entropy).collect() } else { Vec::new() };
            let history = RowHistory { entropy: &entropy, kl: kl.as_deref().unwrap_or(&[]), earlier_max: earlier_max.as_deref() };
            let chosen = commit(&score, &history, &candidates, &self.set.commit);
            if let Some(m) = earlier_max.as_mut() {
                for (k, i) in top_k(&score, candidates.iter().copied(), candidates.len()).into_iter().enumerate() {
                    match m.get_mut(k) {
                        Some(x) => *x = x.max(entropy[i]),
                        None => m.push(entropy[i]),
                    }
                }
            }
            let base = eval(self.set.commit_score.base(), &inp, &mut DensityMemo::new());
            for &i in &chosen {
                self.canvas[s][i] = rows[i].token;
                rec.committed[s].push((i, rows[i].token));
                rec.committed_conf[s].push(base[i]);
            }
            self.stats.generated_tokens += chosen.len();
            if details {
                rec.select_scores[s] = (0..g).map(|i| if st.block_seen[s][i] { score[i] } else { f64::NEG_INFINITY }).collect();
            }
            if self.set.needs.confidence_cache {
                self.remember_confidence(s, &rows, &remaining);
            }
            if let Some(mode) = self.set.needs.rollout {
                let layers: Vec<Vec<Vec<f32>>> = fresh.attention.iter().map(|l| l[a].clone()).collect();
                let t = self.logits_map.len();
                self.seqs[s].importance = match mode {
                    RolloutMode::Vector => importance_vector(&layers, &st.positions[a], t),
                    RolloutMode::Dense => importance_dense(&layers, &st.positions[a], t),
                };
                if details {
                    rec.importance[s] = self.seqs[s].importance.clone();
                }
            }
            if self.set.stop_eos && stop_reached(&self.canvas[s], mask, &self.stop_ids) {
                self.seqs[s].finished = true;
            }
            out.push(SeqCommit { seq: s, rows, chosen });
        }
        (rec, out)
    }

    /// The confidence cache: raw confidence of still-masked positions (-inf elsewhere), set
    /// at the first step and, unless frozen, refreshed where a position was recomputed.
    fn remember_confidence(&mut self, s: usize, rows: &[RowStat], remaining: &[bool]) {
        let raw: Vec<f64> = rows.iter().zip(remaining).map(|(r, &m)| if m { r.conf } else { f64::NEG_INFINITY }).collect();
        match self.seqs[s].conf_cache.as_mut() {
            None => self.seqs[s].conf_cache = Some(raw),
            Some(c) if !self.set.quirks.on(Quirk::FrozenConfidenceCache) => {
                for (i, r) in rows.iter().enumerate() {
                    if r.recomputed && remaining[i] {
                        c[i] = raw[i];
                    }
                }
            }
            Some(_) => {}
        }
    }

    /// Phase 4: the refresh rules choose the rows of the next step.
    fn refresh(&mut self, st: &StepRows, commits: &[SeqCommit], rec: &mut StepRecord) {
        if !self.set.has_cache() {
            return;
        }
        let mask = self.info.mask_id;
        let masked_after: Vec<Vec<bool>> = self.canvas.iter().map(|c| c.iter().map(|&x| x == mask).collect()).collect();
        let views: Vec<StepView> = commits
            .iter()
            .map(|c| StepView {
                map: self.refresh_map,
                masked_after: &masked_after[c.seq],
                block_seen: &st.block_seen[c.seq],
                block: st.block,
                block_length: self.set.block,
                committed: &c.chosen,
                rows: &c.rows,
                cached_conf: self.seqs[c.seq].conf_cache.as_deref(),
                importance: self.set.needs.rollout.map(|_| self.seqs[c.seq].importance.as_slice()),
                next_step: self.step + 1,
            })
            .collect();
        let window = window_scores(&self.set, &views);
        let mut next = Vec::with_capacity(views.len());
        for (a, v) in views.iter().enumerate() {
            let q = select_rows(&self.set, v, a, &window);
            rec.next_query_positions[commits[a].seq] = (0..q.len()).filter(|&i| q[i]).collect();
            next.push(q);
        }
        for (a, (c, q)) in commits.iter().zip(next).enumerate() {
            if let Some(first) = window.first() {
                self.seqs[c.seq].window_density = first[a].clone();
            }
            self.seqs[c.seq].next_rows = Some(q);
        }
    }

    /// Phase 5: counts, FLOPs and times of the step.
    fn account(&mut self, st: &StepRows, fresh: &ForwardResult, policy: Duration, model: Duration) {
        let (n, t) = (st.active.len(), self.logits_map.len());
        let s = &mut self.stats;
        s.policy_time += policy;
        s.model_time += model;
        s.forwards += 1;
        s.full_forwards += st.full as usize;
        s.query_rows += st.positions.iter().map(|x| x.len()).sum::<usize>();
        s.full_rows += t * n;
        let nl = st.logit_rows.first().map_or(0, |r| r.len());
        if fresh.layer_rows.is_empty() {
            s.flops += n as f64 * forward_flops(&self.info, st.positions[0].len(), t, nl);
        } else {
            let shape = StepShape { seqs: n, canvas: t, gen: self.set.gen, logit_rows: nl };
            account_layered(s, self.set.layers.is_some_and(|l| l.adaptive_ratio > 0.0), &self.info, &fresh.layer_rows, shape);
        }
        self.step += 1;
    }

    /// The finished decode. A stopped sequence's unfilled tail reads as EOS, as LLaDA's own
    /// generate leaves it.
    pub(super) fn finish(mut self, steps: Vec<StepRecord>, wall: Duration) -> RunOutput {
        let (mask, eos) = (self.info.mask_id, self.info.eos_id);
        for (s, c) in self.canvas.iter_mut().enumerate() {
            if self.seqs[s].finished {
                c.iter_mut().filter(|x| **x == mask).for_each(|x| *x = eos);
            }
        }
        self.stats.steps = self.step;
        self.stats.wall_time = wall;
        RunOutput { prompts: self.prompts, generated: self.canvas, steps, stats: self.stats }
    }
}

/// A stop token has been committed and everything before the first one is decoded.
fn stop_reached(canvas: &[u32], mask: u32, stops: &[u32]) -> bool {
    match canvas.iter().position(|x| stops.contains(x)) {
        Some(e) => canvas[..e].iter().all(|&x| x != mask),
        None => false,
    }
}

/// Every layer's head-mean attention (B, n, T) in one device-to-host copy: stacked on the
/// device first, so a GPU step pays one transfer instead of one per layer.
fn download_attention(layers: &[candle_core::Tensor]) -> Result<Vec<Vec<Vec<Vec<f32>>>>> {
    let Some(first) = layers.first() else { return Ok(Vec::new()) };
    let (b, n, t) = first.dims3()?;
    let flat: Vec<f32> = candle_core::Tensor::stack(layers, 0)?.flatten_all()?.to_vec1()?;
    if n * t == 0 {
        return Ok(vec![vec![vec![Vec::new(); n]; b]; layers.len()]);
    }
    Ok(flat.chunks(b * n * t).map(|layer| layer.chunks(n * t).map(|seq| seq.chunks(t).map(<[f32]>::to_vec).collect()).collect()).collect())
}

//! The decode loop: semi-autoregressive blocks, one forward per step over the rows the plan
//! selects, a commit rule over the block's masked positions, then the refresh rules choose
//! the next step's rows.

use super::rollout::{importance_dense, importance_vector};
use super::rows::{select_rows, top_up, window_scores, StepView};
use super::scores::{eval, row_stat, DensityMemo, RowStat, Sampling, ScoreInputs};
use super::layers::{account_layered, layer_spec};
use super::select::{commit, CommitCount};
use crate::error::{Error, Result};
use crate::model::{DiffusionModel, ForwardRequest, LayeredRequest};
use crate::plan::{CommitRule, FullWhen, Plan, RolloutMode, RowOp, Score, Val, Window};
use rand::SeedableRng;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct RunOptions {
    /// Keep per-step details (scores, importance) for parity checks and traces.
    pub record_details: bool,
    /// Called after every step with (steps done, tokens committed so far, canvas size).
    pub on_step: Option<Box<dyn FnMut(usize, usize, usize)>>,
}

/// One step of the decode, per sequence where it says so.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepRecord {
    pub step: usize,
    /// None: all rows (a full forward).
    pub query_positions: Option<Vec<Vec<usize>>>,
    /// (canvas position, token), best first.
    pub committed: Vec<Vec<(usize, u32)>>,
    pub committed_conf: Vec<Vec<f64>>,
    /// Commit scores over the canvas, -inf for non-candidates (only with `record_details`).
    pub select_scores: Vec<Vec<f64>>,
    pub importance: Vec<Vec<f64>>,
    pub next_query_positions: Vec<Vec<usize>>,
    /// Layered (dLLM-Cache) forwards: per sequence, per layer, the rows recomputed.
    pub layer_rows: Vec<Vec<Vec<usize>>>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub steps: usize,
    pub forwards: usize,
    pub full_forwards: usize,
    /// Rows pushed through the model, summed over forwards and sequences.
    pub query_rows: usize,
    /// Rows a no-cache decode of the same steps would push.
    pub full_rows: usize,
    pub generated_tokens: usize,
    /// Approximate model FLOPs (matmuls only), for the ideal speedup of a cache.
    pub flops: f64,
    /// Layered forwards: rows recomputed summed over layers, and layers x rows available.
    pub layer_rows: usize,
    pub layer_slots: usize,
    pub model_time: Duration,
    pub policy_time: Duration,
    pub wall_time: Duration,
}

impl Stats {
    /// Rows recomputed per forward; for layered forwards, the layer-averaged count.
    pub fn mean_rows_per_step(&self) -> f64 {
        self.full_rows as f64 * self.recompute_fraction() / self.forwards.max(1) as f64
    }
    pub fn recompute_fraction(&self) -> f64 {
        if self.layer_slots > 0 {
            return self.layer_rows as f64 / self.layer_slots as f64;
        }
        self.query_rows as f64 / self.full_rows.max(1) as f64
    }
    /// Add another run's counts and times to these (totals over several decodes).
    pub fn absorb(&mut self, s: &Stats) {
        self.steps += s.steps;
        self.forwards += s.forwards;
        self.full_forwards += s.full_forwards;
        self.query_rows += s.query_rows;
        self.full_rows += s.full_rows;
        self.generated_tokens += s.generated_tokens;
        self.flops += s.flops;
        self.layer_rows += s.layer_rows;
        self.layer_slots += s.layer_slots;
        self.model_time += s.model_time;
        self.policy_time += s.policy_time;
        self.wall_time += s.wall_time;
    }
    pub fn tokens_per_s(&self) -> f64 {
        self.generated_tokens as f64 / self.wall_time.as_secs_f64().max(1e-9)
    }
}

pub struct RunOutput {
    pub prompts: Vec<Vec<u32>>,
    pub generated: Vec<Vec<u32>>,
    pub steps: Vec<StepRecord>,
    pub stats: Stats,
}

fn need(v: &Val, what: &str) -> Result<f64> {
    v.as_f64().ok_or_else(|| Error::Other(format!("plan value `{what}` is not folded to a number ({v:?})")))
}

struct Setup {
    gen: usize,
    block: usize,
    per_step: usize,
    stop_eos: bool,
    sampling: Sampling,
    seed: u64,
    rule: CommitCount,
    frozen: bool,
    stale_candidates: bool,
}

fn setup(plan: &Plan) -> Result<Setup> {
    let s = &plan.schedule;
    let gen = need(&s.gen_length, "gen_length")? as usize;
    let block = need(&s.block_length, "block_length")? as usize;
    if gen == 0 || block == 0 || gen % block != 0 {
        return Err(Error::input(format!("gen_length {gen} must be a positive multiple of block_length {block}")));
    }
    let rule = match &plan.commit.rule {
        CommitRule::TopN { n } => CommitCount::TopN(need(n, "n")? as usize),
        CommitRule::Threshold { threshold, min } => CommitCount::Threshold { threshold: need(threshold, "threshold")?, min: need(min, "min")? as usize },
        CommitRule::Factor { factor, min } => CommitCount::Factor { factor: need(factor, "factor")?, min: need(min, "min")? as usize },
    };
    Ok(Setup {
        gen,
        block,
        per_step: need(&s.tokens_per_step, "tokens_per_step")? as usize,
        stop_eos: s.stop_at_eos.as_bool().unwrap_or(false),
        sampling: Sampling { temperature: need(&s.temperature, "temperature")?, top_k: need(&s.top_k, "top_k")? as usize, top_p: need(&s.top_p, "top_p")? },
        seed: need(&s.seed, "seed")? as u64,
        rule,
        frozen: plan.quirks.frozen_confidence_cache.as_bool().unwrap_or(false),
        stale_candidates: plan.quirks.stale_rows_are_candidates.as_bool().unwrap_or(false),
    })
}

/// Decode `prompts` (one per sequence, equal lengths) with `plan` on `model`.
pub fn generate<M: DiffusionModel>(model: &M, plan: &Plan, prompts: &[Vec<u32>], mut opts: RunOptions) -> Result<RunOutput> {
    let wall = Instant::now();
    let cfg = setup(plan)?;
    let info = model.info().clone();
    if info.logits_shifted && (plan.has_cache() || plan.layers.is_some()) {
        return Err(Error::Other("cache policies for shifted-logit models (Dream) are not implemented yet".into()));
    }
    let b = prompts.len();
    let p = prompts.first().map_or(0, |x| x.len());
    if b == 0 || p == 0 {
        return Err(Error::input("at least one non-empty prompt is needed"));
    }
    if prompts.iter().any(|x| x.len() != p) {
        return Err(Error::input("all prompts of a batch must have the same length (no padding support)"));
    }
    let (g, t) = (cfg.gen, p + cfg.gen);
    if t > info.max_seq_len {
        return Err(Error::input(format!("prompt ({p} tokens) + gen_length ({g}) = {t} exceeds the model's max_sequence_length {}", info.max_seq_len)));
    }
    let mask = info.mask_id;
    let width = info.logits_width;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut kv = model.new_kv_store(b, t)?;
    let mut layer_cache = match &plan.layers {
        Some(_) => Some(model.new_layer_cache(b, t)?),
        None => None,
    };
    let mut canvas: Vec<Vec<u32>> = vec![vec![mask; g]; b];
    let mut conf_cache: Vec<Option<Vec<f64>>> = vec![None; b];
    let mut next_q: Vec<Option<Vec<bool>>> = vec![None; b];
    let mut last_gi: Vec<Vec<f64>> = vec![vec![0.0; t]; b];
    let mut last_density: Vec<Vec<f64>> = vec![vec![]; b];
    let mut finished = vec![false; b];
    let mut stats = Stats::default();
    let mut records = Vec::new();
    let rollout = plan.needs.rollout;
    let fresh_outside = fresh_stats_outside_block(plan);
    let mut step = 0usize;

    for blk in 0..g / cfg.block {
        let (bs, be) = (blk * cfg.block, (blk + 1) * cfg.block);
        let mut first_in_block = true;
        loop {
            let pol_start = Instant::now();
            let block_seen: Vec<Vec<bool>> = canvas.iter().map(|c| (0..g).map(|i| i >= bs && i < be && c[i] == mask).collect()).collect();
            let active: Vec<usize> = (0..b).filter(|&s| !finished[s] && block_seen[s].iter().any(|&x| x)).collect();
            if active.is_empty() || cfg.per_step == 0 {
                break;
            }
            let full = !plan.has_cache()
                || active.iter().any(|&s| next_q[s].is_none())
                || plan.refresh.full.iter().any(|f| match &f.when {
                    FullWhen::FirstStep => step == 0,
                    FullWhen::BlockStart => first_in_block,
                    FullWhen::Every(n) => n.as_usize().is_some_and(|n| n > 0 && step % n == 0),
                });
            // Rows for this forward, per active sequence.
            let mut sets: Vec<Vec<bool>> = active.iter().map(|&s| if full { vec![true; t] } else { next_q[s].clone().unwrap_or_else(|| vec![true; t]) }).collect();
            if !full && active.len() > 1 {
                let gi: Vec<Vec<f64>> = active.iter().map(|&s| last_gi[s].clone()).collect();
                let dens: Vec<Vec<f64>> = active.iter().map(|&s| last_density[s].clone()).collect();
                top_up(&mut sets, &gi, &dens, p);
            }
            let positions: Vec<Vec<usize>> = sets.iter().map(|q| (0..t).filter(|&i| q[i]).collect()).collect();
            let ids: Vec<Vec<u32>> = active
                .iter()
                .zip(&positions)
                .map(|(&s, pos)| pos.iter().map(|&i| if i < p { prompts[s][i] } else { canvas[s][i - p] }).collect())
                .collect();
            // Logits only where a rule reads them: masked rows of the current block, and every
            // recomputed masked row while the confidence cache or an out-of-block rule needs it.
            let mut logit_rows: Vec<Vec<usize>> = active
                .iter()
                .zip(&positions)
                .map(|(&s, pos)| {
                    let all = fresh_outside || (plan.needs.confidence_cache && (!cfg.frozen || conf_cache[s].is_none()));
                    (0..pos.len())
                        .filter(|&r| pos[r] >= p && canvas[s][pos[r] - p] == mask && (all || (pos[r] - p >= bs && pos[r] - p < be)))
                        .collect()
                })
                .collect();
            let nl = logit_rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
            let real_nl: Vec<usize> = logit_rows.iter().map(|r| r.len()).collect();
            for r in logit_rows.iter_mut() {
                let pad = r.last().copied().unwrap_or(0);
                r.resize(nl, pad);
            }
            let want_attention = rollout.is_some();
            stats.policy_time += pol_start.elapsed();

            let m_start = Instant::now();
            let mut layer_rows = Vec::new();
            let (logits, attn): (Vec<Vec<Vec<f32>>>, Vec<Vec<Vec<Vec<f32>>>>) = match (&plan.layers, layer_cache.as_mut()) {
                (Some(lp), Some(lc)) => {
                    if active.len() != b {
                        return Err(Error::Other("per-layer caches need every sequence of the batch active (stop_at_eos with a batch is not supported)".into()));
                    }
                    let req = LayeredRequest { ids, prompt_len: p, layers: layer_spec(lp, step, info.n_layers, g) };
                    let out = model.forward_layered(&req, &mut kv, lc)?;
                    let all: Vec<Vec<Vec<f32>>> = out.logits.to_vec3()?;
                    layer_rows = out.refreshed;
                    let picked = logit_rows.iter().enumerate().map(|(a, rows)| rows.iter().map(|&r| all[a][positions[a][r] - p].clone()).collect()).collect();
                    (picked, Vec::new())
                }
                _ => {
                    let req = ForwardRequest { ids, positions: positions.clone(), logit_rows: logit_rows.clone(), want_attention };
                    let out = model.forward(&req, &mut kv)?;
                    let attn = out.attention.iter().map(|a| a.to_vec3()).collect::<candle_core::Result<_>>()?;
                    (out.logits.to_vec3()?, attn)
                }
            };
            stats.model_time += m_start.elapsed();
            let pol_start = Instant::now();
            stats.forwards += 1;
            stats.full_forwards += full as usize;
            stats.query_rows += positions.iter().map(|x| x.len()).sum::<usize>();
            stats.full_rows += t * active.len();
            if layer_rows.is_empty() {
                stats.flops += active.len() as f64 * forward_flops(&info, positions[0].len(), t, nl);
            } else {
                account_layered(&mut stats, plan, &info, &layer_rows, active.len(), t, g, nl);
            }

            let mut rec = StepRecord {
                step,
                query_positions: if full { None } else { Some(vec![vec![]; b]) },
                committed: vec![vec![]; b],
                committed_conf: vec![vec![]; b],
                select_scores: vec![vec![]; b],
                importance: vec![vec![]; b],
                next_query_positions: vec![vec![]; b],
                layer_rows: vec![vec![]; b],
            };
            for (a, &s) in active.iter().enumerate() {
                rec.layer_rows[s] = layer_rows.iter().map(|l| l[a].clone()).collect();
            }
            let mut views_data = Vec::new();
            for (a, &s) in active.iter().enumerate() {
                if let Some(qp) = rec.query_positions.as_mut() {
                    qp[s] = positions[a].clone();
                }
                let mut rows = vec![RowStat::stale(width); g];
                for (k, &r) in logit_rows[a].iter().take(real_nl[a]).enumerate() {
                    let gp = positions[a][r] - p;
                    if canvas[s][gp] == mask {
                        rows[gp] = row_stat(&logits[a][k], &cfg.sampling, plan.needs.margin || plan.needs.entropy, &mut rng);
                    }
                }
                let remaining: Vec<bool> = canvas[s].iter().map(|&x| x == mask).collect();
                let decoded: Vec<bool> = remaining.iter().map(|m| !m).collect();
                let candidates: Vec<usize> = (0..g).filter(|&i| block_seen[s][i] && (rows[i].recomputed || cfg.stale_candidates)).collect();
                let inp = ScoreInputs { rows: &rows, cached_conf: conf_cache[s].as_deref(), decoded: &decoded };
                let mut score = eval(&plan.commit.score, &inp, &mut DensityMemo::new());
                for (i, sc) in score.iter_mut().enumerate() {
                    if !remaining[i] || !(rows[i].recomputed || cfg.stale_candidates) {
                        *sc = f64::NEG_INFINITY;
                    }
                }
                let chosen = commit(&score, &candidates, &cfg.rule);
                for &i in &chosen {
                    canvas[s][i] = rows[i].token;
                    rec.committed[s].push((i, rows[i].token));
                    rec.committed_conf[s].push(rows[i].conf);
                }
                stats.generated_tokens += chosen.len();
                if opts.record_details {
                    rec.select_scores[s] = (0..g).map(|i| if block_seen[s][i] { score[i] } else { f64::NEG_INFINITY }).collect();
                }
                // Confidence cache: raw confidence of still-masked rows (-inf elsewhere).
                if plan.needs.confidence_cache {
                    let raw: Vec<f64> = (0..g).map(|i| if remaining[i] { rows[i].conf } else { f64::NEG_INFINITY }).collect();
                    match conf_cache[s].as_mut() {
                        None => conf_cache[s] = Some(raw),
                        Some(c) if !cfg.frozen => {
                            for i in 0..g {
                                if rows[i].recomputed && remaining[i] {
                                    c[i] = raw[i];
                                }
                            }
                        }
                        Some(_) => {}
                    }
                }
                if let Some(mode) = rollout {
                    let layers: Vec<Vec<Vec<f32>>> = attn.iter().map(|l| l[a].clone()).collect();
                    last_gi[s] = match mode {
                        RolloutMode::Vector => importance_vector(&layers, &positions[a], t),
                        RolloutMode::Dense => importance_dense(&layers, &positions[a], t),
                    };
                    if opts.record_details {
                        rec.importance[s] = last_gi[s].clone();
                    }
                }
                if cfg.stop_eos && stop_reached(&canvas[s], mask, info.eos_id) {
                    finished[s] = true;
                }
                views_data.push((s, rows, chosen));
            }
            if plan.has_cache() {
                let masked_after: Vec<Vec<bool>> = canvas.iter().map(|c| c.iter().map(|&x| x == mask).collect()).collect();
                let views: Vec<StepView> = views_data
                    .iter()
                    .map(|(s, rows, chosen)| StepView {
                        prompt_len: p,
                        masked_after: &masked_after[*s],
                        block_seen: &block_seen[*s],
                        block: (bs, be),
                        block_length: cfg.block,
                        committed: chosen,
                        rows,
                        cached_conf: conf_cache[*s].as_deref(),
                        importance: rollout.map(|_| last_gi[*s].as_slice()),
                        next_step: step + 1,
                    })
                    .collect();
                let window = window_scores(plan, &views);
                for (a, (s, _, _)) in views_data.iter().enumerate() {
                    let q = select_rows(plan, &views[a], a, &window);
                    if let Some(first) = window.first() {
                        last_density[*s] = first[a].clone();
                    }
                    rec.next_query_positions[*s] = (0..t).filter(|&i| q[i]).collect();
                    next_q[*s] = Some(q);
                }
            }
            stats.policy_time += pol_start.elapsed();
            records.push(rec);
            step += 1;
            first_in_block = false;
            if let Some(cb) = opts.on_step.as_mut() {
                cb(step, stats.generated_tokens, g * b);
            }
        }
    }
    // A finished sequence's unfilled tail reads as EOS, as LLaDA's own generate leaves it.
    for s in 0..b {
        if finished[s] {
            canvas[s].iter_mut().filter(|x| **x == mask).for_each(|x| *x = info.eos_id);
        }
    }
    stats.steps = step;
    stats.wall_time = wall.elapsed();
    Ok(RunOutput { prompts: prompts.to_vec(), generated: canvas, steps: records, stats })
}

/// Matmul FLOPs of one sequence's forward: `rows` recomputed rows attending over `t` keys,
/// `logit_rows` rows through the LM head.
pub fn forward_flops(info: &crate::model::ModelInfo, rows: usize, t: usize, logit_rows: usize) -> f64 {
    let (d, f, l) = (info.d_model as f64, info.mlp_hidden as f64, info.n_layers as f64);
    let per_row = 2.0 * (4.0 * d * d + 3.0 * d * f) + 4.0 * t as f64 * d;
    l * rows as f64 * per_row + 2.0 * logit_rows as f64 * d * info.logits_width as f64
}

/// Some refresh rule ranks rows outside the current block by this step's row statistics.
fn fresh_stats_outside_block(plan: &Plan) -> bool {
    plan.refresh.rows.iter().any(|r| match &r.op {
        RowOp::MaskedTopK { score, window, .. } => {
            !matches!(window, Window::Block) && score.uses(|s| matches!(s, Score::Confidence | Score::Margin | Score::NegEntropy))
        }
        _ => false,
    })
}

/// An EOS has been committed and everything before the first EOS is decoded.
fn stop_reached(canvas: &[u32], mask: u32, eos: u32) -> bool {
    match canvas.iter().position(|&x| x == eos) {
        Some(e) => canvas[..e].iter().all(|&x| x != mask),
        None => false,
    }
}


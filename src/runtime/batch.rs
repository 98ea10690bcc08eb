//! Step-level batching of independent decodes.
//!
//! A [`Batch`] holds decodes that may differ in everything: policy, settings, prompt length,
//! gen length, block length, commit rule, `stop_at_eos`. Each member keeps its own
//! [`Decoder`] (canvas, K/V store, caches, block position), so it decodes exactly as it would
//! alone; what members share is the forward: every step asks the model for all members' rows
//! at once ([`DiffusionModel::forward_many`]), which streams the weights once for the whole
//! batch. A member joins at the next step and leaves as soon as it is done or cancelled, so
//! nobody waits for a batch to drain. Per-layer (dLLM-Cache) forwards run alone inside the
//! same step.

use super::decoder::{Decoder, ForwardResult, StepRows};
use super::options::RunOptions;
use super::output::{RunOutput, StepRecord};
use super::settings::DecodeSettings;
use crate::error::{Error, Result};
use crate::model::DiffusionModel;
use crate::plan::Plan;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Names a member of a [`Batch`] from [`Batch::join`] until its result comes back.
pub type MemberId = usize;

struct Member<'m, M: DiffusionModel + ?Sized> {
    id: MemberId,
    dec: Decoder<'m, M>,
    opts: RunOptions,
    records: Vec<StepRecord>,
    started: Instant,
}

impl<M: DiffusionModel + ?Sized> Member<'_, M> {
    fn cancelled(&self) -> bool {
        self.opts.cancel.as_ref().is_some_and(|c| c.load(Relaxed))
    }
}

/// Decodes stepped together, one forward per step for all of them.
pub struct Batch<'m, M: DiffusionModel + ?Sized> {
    model: &'m M,
    members: Vec<Member<'m, M>>,
    next_id: MemberId,
}

impl<'m, M: DiffusionModel + ?Sized> Batch<'m, M> {
    pub fn new(model: &'m M) -> Self {
        Batch { model, members: Vec::new(), next_id: 0 }
    }

    /// Members still decoding.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Start decoding `prompts` (one or more sequences of equal length) with `plan` from the
    /// next step on. Fails at once when the plan or the prompts cannot decode.
    pub fn join(&mut self, plan: &Plan, prompts: Vec<Vec<u32>>, mut opts: RunOptions) -> Result<MemberId> {
        let stops = std::mem::take(&mut opts.stop_ids);
        let dec = Decoder::new(self.model, DecodeSettings::from_plan(plan)?, prompts, stops)?;
        let id = self.next_id;
        self.next_id += 1;
        self.members.push(Member { id, dec, opts, records: Vec::new(), started: Instant::now() });
        Ok(id)
    }

    /// One step of every member: each chooses its rows, one forward serves them all, each
    /// commits and chooses its next rows. Returns the members that finished (their output),
    /// failed or were cancelled ([`Error::Cancelled`]) in this step; the others stay.
    pub fn step(&mut self) -> Vec<(MemberId, Result<RunOutput>)> {
        let mut done = Vec::new();
        let mut stepping = Vec::with_capacity(self.members.len());
        let mut rows = Vec::with_capacity(self.members.len());
        for mut m in std::mem::take(&mut self.members) {
            if m.cancelled() {
                done.push((m.id, Err(Error::Cancelled)));
                continue;
            }
            let t = Instant::now();
            match m.dec.next_step() {
                Some(st) => {
                    rows.push((st, t.elapsed()));
                    stepping.push(m);
                }
                None => {
                    let wall = m.started.elapsed();
                    done.push((m.id, Ok(m.dec.finish(m.records, wall))));
                }
            }
        }
        let fresh = forward_all(self.model, &mut stepping, &rows);
        for ((mut m, (st, before)), fresh) in stepping.into_iter().zip(rows).zip(fresh) {
            let rec = fresh.and_then(|(f, model)| m.dec.finish_step(&st, &f, m.opts.record_details, before, model));
            match rec {
                Ok(rec) => {
                    if let Some(cb) = m.opts.on_step.as_mut() {
                        cb(&m.dec.progress(rec.query_positions.as_deref()));
                    }
                    m.records.push(rec);
                    self.members.push(m);
                }
                Err(e) => done.push((m.id, Err(e))),
            }
        }
        done
    }
}

/// This step's forwards: the plain ones as one [`DiffusionModel::forward_many`], the
/// per-layer ones each alone. Per member, what came back and the model time charged to it
/// (a shared forward's time split by rows).
fn forward_all<M: DiffusionModel + ?Sized>(model: &M, members: &mut [Member<'_, M>], rows: &[(StepRows, Duration)]) -> Vec<Result<(ForwardResult, Duration)>> {
    let mut out: Vec<Option<Result<(ForwardResult, Duration)>>> = (0..members.len()).map(|_| None).collect();
    let mut plain = Vec::new();
    for (i, m) in members.iter_mut().enumerate() {
        if m.dec.is_layered() {
            let t = Instant::now();
            out[i] = Some(m.dec.forward(&rows[i].0).map(|f| (f, t.elapsed())));
        } else {
            plain.push(i);
        }
    }
    if !plain.is_empty() {
        let reqs: Vec<_> = plain.iter().map(|&i| members[i].dec.request(&rows[i].0)).collect();
        let t = Instant::now();
        let outs = {
            let mut parts: Vec<_> =
                members.iter_mut().enumerate().filter(|(i, _)| plain.contains(i)).zip(&reqs).map(|((_, m), r)| (r, m.dec.kv_mut())).collect();
            model.forward_many(&mut parts)
        };
        let spent = t.elapsed();
        let total: usize = plain.iter().map(|&i| rows[i].0.row_count()).sum::<usize>().max(1);
        match outs {
            Ok(outs) => {
                for (&i, o) in plain.iter().zip(outs) {
                    let share = spent.mul_f64(rows[i].0.row_count() as f64 / total as f64);
                    out[i] = Some(members[i].dec.receive(o).map(|f| (f, share)));
                }
            }
            // One failed forward fails every member in it; a lone member keeps the error's kind.
            Err(e) if plain.len() == 1 => out[plain[0]] = Some(Err(e)),
            Err(e) => {
                for &i in &plain {
                    out[i] = Some(Err(Error::Other(format!("batched forward: {e}"))));
                }
            }
        }
    }
    out.into_iter().map(|o| o.unwrap_or_else(|| Err(Error::Other("a member's forward did not run".into())))).collect()
}

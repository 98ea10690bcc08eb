//! The execution plan: what a checked policy lowers to and what the runtime executes.
//!
//! Every op is a closed enum and keeps the [`Span`] of the policy rule it came from, so a plan
//! listing (and a runtime error) can point back at the source. Values start as parameter
//! references and become constants in the `fold-constants` pass; the executor only accepts a
//! fully folded plan.

pub mod passes;
pub mod render;
pub mod visit;

use crate::source::Span;
use serde::Serialize;
use std::collections::BTreeMap;

/// A plan value: a parameter reference until folded, then a constant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Val {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A score kind named by a `score` parameter (`confidence`, `margin`, `entropy`).
    Kind(ScoreKind),
    /// A file named by a `file` parameter.
    Path(String),
    Param(ParamRef),
}

/// The per-position scores a `score` parameter can name (a checkpoint's `alg`:
/// `maskgit_plus`, `topk_margin`, `entropy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    Confidence,
    Margin,
    Entropy,
}

impl ScoreKind {
    pub const ALL: [ScoreKind; 3] = [ScoreKind::Confidence, ScoreKind::Margin, ScoreKind::Entropy];
    pub fn name(self) -> &'static str {
        match self {
            ScoreKind::Confidence => "confidence",
            ScoreKind::Margin => "margin",
            ScoreKind::Entropy => "entropy",
        }
    }
    pub fn named(name: &str) -> Option<ScoreKind> {
        ScoreKind::ALL.into_iter().find(|k| k.name() == name)
    }
    /// The score this kind stands for.
    pub fn score(self) -> Score {
        match self {
            ScoreKind::Confidence => Score::Confidence,
            ScoreKind::Margin => Score::Margin,
            ScoreKind::Entropy => Score::NegEntropy,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamRef {
    pub param: String,
}

impl Val {
    pub fn param(name: &str) -> Self {
        Val::Param(ParamRef { param: name.to_string() })
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            _ => None,
        }
    }
    pub fn as_usize(&self) -> Option<usize> {
        match self {
            Val::Int(i) if *i >= 0 => Some(*i as usize),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// A per-position score, evaluated over the generation canvas.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    /// Max softmax probability of the row's prediction (from this step's forward).
    Confidence,
    /// Probability gap between the best and second-best token.
    Margin,
    /// Negative entropy of the row's distribution (higher = more certain).
    NegEntropy,
    /// Confidence remembered in the confidence cache (refresh rules only).
    CachedConfidence,
    /// The score kind a `score` parameter names; replaced by that score in `simplify-scores`.
    Kind(Val),
    /// PC-Sampler (oracle README §10.5): confidence debiased by how frequent the proposed
    /// token is in a corpus, `min(-confidence * ln(freq(token) + 1e-10), alpha)`; `table` is
    /// the token-frequency file.
    Debias {
        alpha: Val,
        table: Val,
    },
    /// Gaussian certainty density around already-decoded positions (d²Cache §3).
    Density {
        sigma: Val,
    },
    Const(Val),
    /// `if(cond, then, else)` on a bool parameter; resolved by constant folding.
    If {
        cond: Val,
        then: Box<Score>,
        otherwise: Box<Score>,
    },
    Mul(Box<Score>, Box<Score>),
    Add(Box<Score>, Box<Score>),
}

impl Score {
    pub fn visit(&self, f: &mut impl FnMut(&Score)) {
        f(self);
        if let Score::Mul(a, b) | Score::Add(a, b) | Score::If { then: a, otherwise: b, .. } = self {
            a.visit(f);
            b.visit(f);
        }
    }
    pub fn uses(&self, pred: impl Fn(&Score) -> bool) -> bool {
        let mut hit = false;
        self.visit(&mut |s| hit |= pred(s));
        hit
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub gen_length: Val,
    pub block_length: Val,
    pub tokens_per_step: Val,
    pub stop_at_eos: Val,
    pub temperature: Val,
    pub top_k: Val,
    pub top_p: Val,
    pub seed: Val,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitRule {
    /// The n best-scoring candidates.
    TopN { n: Val },
    /// Every candidate with score >= threshold; at least `min` (then top-min).
    Threshold { threshold: Val, min: Val },
    /// Fast-dLLM's factor rule over the sorted scores; at least `min`.
    Factor { factor: Val, min: Val },
    /// EB-Sampler (oracle README §10.1): the longest score-ranked prefix of the candidates
    /// whose entropy, summed over the positions ranked before the last one, is at most
    /// `gamma`; at least `min`.
    EntropyBounded { gamma: Val, min: Val },
    /// KLASS (oracle README §10.3): every candidate whose last `history` KL divergences between
    /// consecutive steps' distributions are all below `kl` and whose score is at least `above`;
    /// when there is none, the `min` best. `above < 0` means no score bound (see quirk
    /// `stable_path_needs_threshold`).
    KlStable { kl: Val, history: Val, above: Val, min: Val },
}

#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    pub rule: CommitRule,
    pub score: Score,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FullWhen {
    FirstStep,
    BlockStart,
    Every(Val),
}

#[derive(Debug, Clone, Serialize)]
pub struct FullRefresh {
    pub when: FullWhen,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The current block.
    Block,
    /// From the first masked in-block position to the block boundary at or after the k-th
    /// still-masked position (d²Cache's window).
    Lookahead { k: Val },
    /// The whole canvas.
    All,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutPick {
    TopP(Val),
    TopK(Val),
    Above(Val),
}

/// How rollout importance (column sums of the attention rollout) is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutMode {
    /// Multiply dense T x T per-layer matrices, as the reference does.
    Dense,
    /// One row-vector pass backwards through the layers over the stored head-mean attention
    /// rows: O(layers * rows * T).
    Vector,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOp {
    /// Masked positions: the top k by `score` inside `window`; with `prefer_block`, positions
    /// of the current block rank before all others (d²Cache adds the global maximum to them).
    MaskedTopK { k: Val, score: Score, window: Window, prefer_block: bool },
    /// The positions committed by the previous step.
    Committed,
    /// Positions not yet selected, picked by attention-rollout importance.
    Rollout { pick: RolloutPick, mode: RolloutMode },
    /// Every position of the current block.
    Block,
    /// Every position after the current block.
    Suffix,
    /// Every prompt position, on steps that are a multiple of `every`.
    Prompt { every: Val },
    /// Fill gaps of width <= w between selected positions.
    Inflate { w: Val },
}

#[derive(Debug, Clone, Serialize)]
pub struct RowRule {
    pub op: RowOp,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refresh {
    pub full: Vec<FullRefresh>,
    pub rows: Vec<RowRule>,
    /// Models whose logits are shifted (Dream): recompute the predecessor of each selected
    /// masked position instead of the position itself.
    pub shift_for_shifted_logits: bool,
}

/// A reference behaviour kept as an explicit, named choice (oracle README §6 and §8.3), so
/// parity with the reference is one switch and the corrected behaviour the other. Every quirk
/// is off unless a policy's `quirks` section turns it on. A new quirk is a variant here (with
/// its name and doc) and the place in the runtime that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quirk {
    /// §6.1: the confidence cache keeps step-0 confidences for the whole generation.
    FrozenConfidenceCache,
    /// §6.2: masked rows that were not recomputed stay commit candidates (conf 1/V, token 0).
    StaleRowsAreCandidates,
    /// §6.3: the lookahead window rounds to the number of still-masked in-block positions.
    WindowRoundsToMasked,
    /// §8.3 (shifted-logit models): the row deciding canvas position 0 (the last prompt row)
    /// is assigned after the rollout rule, so it can also remove a rollout pick.
    FirstPredecessorAfterRollout,
    /// §6.8 / top_up: in a batch, the in-block bias is the maximum over every sequence and
    /// every sequence pushes the same number of rows (the best unselected ones fill up the
    /// shorter sets). Off, a sequence's rows and tokens do not depend on its batch: the
    /// in-block bias is its own maximum and shorter row sets are padded with repeats of
    /// their last row, which rewrite the same K/V. No effect on a single sequence.
    BatchGlobalScores,
    /// §10.3: KLASS without a score bound (`above < 0`, the reference's `klass.yaml` preset)
    /// never takes its stable path, so it decodes as plain top-n. Off, stable candidates are
    /// committed whatever their score.
    StablePathNeedsThreshold,
    /// §10.1: EB-Sampler's subtracted maximum runs over the batch axis, so in a multi-prompt
    /// decode a sequence's count depends on the sequences before it (the rank-k entropy of
    /// every earlier sequence). Off, every sequence decodes as it would alone. No effect on a
    /// single sequence, nor across served requests.
    EntropyMaxOverBatch,
}

impl Quirk {
    pub const ALL: [Quirk; 7] = [
        Quirk::FrozenConfidenceCache,
        Quirk::StaleRowsAreCandidates,
        Quirk::WindowRoundsToMasked,
        Quirk::FirstPredecessorAfterRollout,
        Quirk::BatchGlobalScores,
        Quirk::StablePathNeedsThreshold,
        Quirk::EntropyMaxOverBatch,
    ];

    /// The key in a policy's `quirks` section.
    pub fn name(self) -> &'static str {
        match self {
            Quirk::FrozenConfidenceCache => "frozen_confidence_cache",
            Quirk::StaleRowsAreCandidates => "stale_rows_are_candidates",
            Quirk::WindowRoundsToMasked => "window_rounds_to_masked",
            Quirk::FirstPredecessorAfterRollout => "first_predecessor_after_rollout",
            Quirk::BatchGlobalScores => "batch_global_scores",
            Quirk::StablePathNeedsThreshold => "stable_path_needs_threshold",
            Quirk::EntropyMaxOverBatch => "entropy_max_over_batch",
        }
    }

    pub fn named(name: &str) -> Option<Quirk> {
        Quirk::ALL.into_iter().find(|q| q.name() == name)
    }

    /// The quirk changes something only where rows are cached.
    pub fn needs_cache(self) -> bool {
        !matches!(self, Quirk::StablePathNeedsThreshold | Quirk::EntropyMaxOverBatch)
    }
}

/// Every quirk with its value (a bool, or a parameter until folded), in [`Quirk::ALL`] order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quirks(pub BTreeMap<Quirk, Val>);

impl Default for Quirks {
    /// Every quirk off.
    fn default() -> Self {
        Quirks(Quirk::ALL.into_iter().map(|q| (q, Val::Bool(false))).collect())
    }
}

/// dLLM-Cache's per-layer refresh schedule (the `layers` section). Every row flows through
/// every layer; a layer recomputes attention and FFN for the rows due, and the others reuse
/// that layer's cached outputs.
#[derive(Debug, Clone, Serialize)]
pub struct Layers {
    /// Recompute the prompt rows every this many forwards.
    pub prompt_every: Val,
    /// Recompute all canvas rows every this many forwards.
    pub response_every: Val,
    /// On the other forwards, recompute this fraction of the canvas rows: those whose fresh
    /// value vectors are least similar to the cached ones (0 = none).
    pub adaptive_ratio: Val,
    /// Layer 0 recomputes every row at every forward.
    pub first_layer_full: Val,
    pub span: Span,
}

/// What the runtime must compute, derived by the analysis pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Needs {
    pub attention_rows: bool,
    pub rollout: Option<RolloutMode>,
    pub density: bool,
    pub confidence_cache: bool,
    pub margin: bool,
    pub entropy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub policy: String,
    pub description: Option<String>,
    pub params: BTreeMap<String, Val>,
    pub schedule: Schedule,
    pub commit: Commit,
    pub refresh: Refresh,
    pub quirks: Quirks,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Layers>,
    pub needs: Needs,
}

impl Plan {
    /// True when some steps recompute only selected rows.
    pub fn has_cache(&self) -> bool {
        !self.refresh.rows.is_empty()
    }

    /// True when every sequence of a multi-sequence decode commits the same number of tokens
    /// at every step and none stops early, so its sequences step through their blocks
    /// together. (Served requests do not need it: each is its own member of a
    /// [`crate::runtime::Batch`].)
    pub fn decodes_in_lockstep(&self) -> bool {
        matches!(self.commit.rule, CommitRule::TopN { .. }) && !self.schedule.stop_at_eos.as_bool().unwrap_or(true)
    }
}

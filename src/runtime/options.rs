//! What a caller hands a decode besides the plan and the prompts, and what it sees after
//! every step.

/// A callback run after every step with what the decode has done so far.
pub type OnStep = Box<dyn FnMut(&Progress)>;

#[derive(Default)]
pub struct RunOptions {
    /// Keep per-step details (scores, importance) for parity checks and traces.
    pub record_details: bool,
    /// Called after every step.
    pub on_step: Option<OnStep>,
    /// Ids that end an answer (for `stop_at_eos`); empty = the model's EOS.
    pub stop_ids: Vec<u32>,
    /// Checked before every step: when set, the decode stops with [`Error::Cancelled`]
    /// (a server's client went away or its request timed out).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Where a decode stands after a step, for progress bars and live output.
pub struct Progress<'a> {
    pub steps: usize,
    pub committed: usize,
    pub canvas_size: usize,
    /// Per sequence, the canvas as it stands (masked positions hold `mask_id`).
    pub canvas: &'a [Vec<u32>],
    pub mask_id: u32,
    /// Prompt length: canvas position j is absolute position `prompt_len + j`.
    pub prompt_len: usize,
    /// The positions recomputed by this step's forward (None: all).
    pub recomputed: Option<&'a [Vec<usize>]>,
}

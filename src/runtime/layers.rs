//! Per-layer refresh (the `layers` section, dLLM-Cache): which rows each layer recomputes at
//! a forward.

use super::settings::LayerSchedule;
use crate::model::{LayerRows, ResponseRows};

/// The rows each layer recomputes at forward `step` (dLLM-Cache's schedule: the counter is
/// the global forward index).
pub fn layer_spec(l: &LayerSchedule, step: usize, n_layers: usize, g: usize) -> Vec<LayerRows> {
    let (pe, re, ratio, first_full) = (l.prompt_every, l.response_every, l.adaptive_ratio, l.first_layer_full);
    // Python's int(G * rou).
    let k = (g as f64 * ratio) as usize;
    (0..n_layers)
        .map(|i| {
            let forced = first_full && i == 0;
            let response = if step.is_multiple_of(re) || forced {
                ResponseRows::All
            } else if ratio > 0.0 {
                ResponseRows::LeastSimilarValues(k)
            } else {
                ResponseRows::None
            };
            LayerRows { prompt: step.is_multiple_of(pe) || forced, response }
        })
        .collect()
}

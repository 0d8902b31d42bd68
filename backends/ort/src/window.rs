//! Static shapes, for accelerators that compile a graph only when every dimension is fixed (QNN's HTP, OpenVINO's
//! NPU), as their own LLM pipelines run: one token per call, the KV cache a fixed window of `W` positions of which
//! only the filled ones are unmasked, and the new position's K/V, which the graph appends after the window, copied
//! back into its slot. The primitive graph runs unchanged; ONNX Runtime fixes its symbolic dimensions
//! (`seq` = 1, `past` = `W`, `past+seq` = `W` + 1, `rows` = 1) before the provider sees it.

use edgebench_core::BackendError;
use edgebench_onnx::io::{self, GraphFacts};
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

use crate::{input, runtime, unsupported};

/// The symbolic dimensions of the primitive graph and their fixed sizes for a window of `window` positions.
pub(crate) fn overrides(window: usize) -> [(&'static str, i64); 4] {
    [("seq", 1), ("past", window as i64), ("past+seq", window as i64 + 1), ("rows", 1)]
}

/// The additive mask of one query at a window holding `filled` positions: the filled slots and the new position
/// (after the window) visible, the empty slots hidden.
pub(crate) fn bias(window: usize, filled: usize) -> Vec<f32> {
    let mut b = vec![f32::NEG_INFINITY; window + 1];
    b[..filled].fill(0.0);
    b[window] = 0.0;
    b
}

/// One session's windowed KV cache: per layer K then V, `[1, kv_heads, window, head_dim]`.
pub(crate) struct Window {
    cache: Vec<Tensor<f32>>,
    window: usize,
    filled: usize,
}

impl Window {
    /// An empty window of `window` positions.
    pub(crate) fn new(g: &GraphFacts, window: usize) -> Result<Self, BackendError> {
        if g.sliding_window.is_some() {
            return Err(unsupported(
                "static shapes (a fixed KV window) are not written for models with sliding-window layers",
            ));
        }
        let cache = (0..2 * g.n_layer)
            .map(|_| {
                Tensor::from_array((
                    [1usize, g.n_head_kv, window, g.head_dim],
                    vec![0f32; g.n_head_kv * window * g.head_dim],
                ))
                .map_err(runtime)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { cache, window, filled: 0 })
    }

    /// Feeds `token` at the next position; returns its logits.
    pub(crate) fn step(&mut self, session: &mut Session, g: &GraphFacts, token: u32) -> Result<Vec<f32>, BackendError> {
        if self.filled == self.window {
            return Err(unsupported(format!(
                "the static KV window of {} positions is full (--backend-opt ort:static_window=N for a longer one)",
                self.window
            )));
        }
        let mut all: Vec<(String, SessionInputValue<'_>)> = vec![
            input(io::INPUT_IDS, vec![1, 1], vec![token as i64])?,
            input(io::POSITION_IDS, vec![1, 1], vec![self.filled as i64])?,
            input(io::ATTENTION_BIAS, vec![1, self.window + 1], bias(self.window, self.filled))?,
            input(io::LOGITS_INDEX, vec![1], vec![0i64])?,
        ]
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
        for (i, t) in self.cache.iter().enumerate() {
            all.push((io::past(i / 2, i % 2 == 1), t.into()));
        }
        let out = session.run(all).map_err(runtime)?;
        let logits = out
            .get(io::LOGITS)
            .ok_or_else(|| runtime("no logits output"))?
            .try_extract_tensor::<f32>()
            .map_err(runtime)?
            .1
            .to_vec();
        let (w, d) = (self.window, g.head_dim);
        for (i, slot) in self.cache.iter_mut().enumerate() {
            let name = io::present(i / 2, i % 2 == 1);
            let v = out.get(&name).ok_or_else(|| runtime(format!("no output {name}")))?;
            let new = v.try_extract_tensor::<f32>().map_err(runtime)?.1;
            let dst = slot.extract_tensor_mut().1;
            for h in 0..g.n_head_kv {
                dst[(h * w + self.filled) * d..][..d].copy_from_slice(&new[(h * (w + 1) + w) * d..][..d]);
            }
        }
        self.filled += 1;
        Ok(logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_shows_the_filled_slots_and_the_new_position_only() {
        let b = bias(4, 2);
        assert_eq!(b[..2], [0.0, 0.0]);
        assert!(b[2].is_infinite() && b[3].is_infinite());
        assert_eq!(b[4], 0.0);
        assert_eq!(overrides(4), [("seq", 1), ("past", 4), ("past+seq", 5), ("rows", 1)]);
    }
}

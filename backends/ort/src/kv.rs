//! The ort backend's KV cache between calls: handed back (each call's present outputs become the next call's past
//! inputs) or shared (one preallocated buffer per layer for K and for V, bound as both the past input and the
//! present output, as onnxruntime-genai runs `GroupQueryAttention` with `past_present_share_buffer`).

use edgebench_core::BackendError;
use edgebench_onnx::io::{self, GraphFacts};
use ort::memory::Allocator;
use ort::session::{IoBinding, Session, SessionInputValue, SessionOutputs};
use ort::value::{DynValue, Tensor};

use crate::runtime;

/// Positions a shared buffer holds when a session starts (fewer when the context is shorter).
pub(crate) const INITIAL_POSITIONS: usize = 256;

/// The shared buffer's first capacity for a model with context length `n_ctx`.
pub(crate) fn initial_capacity(n_ctx: usize) -> usize {
    INITIAL_POSITIONS.min(n_ctx.max(1))
}

/// One session's KV cache.
pub(crate) enum Kv {
    /// The previous call's present outputs, in layer order, K before V.
    Handed(Vec<DynValue>),
    /// Buffers `[1, kv_heads, capacity, head_dim]`, in layer order, K before V, bound to both names.
    Shared { binding: Box<IoBinding>, buffers: Vec<Tensor<f32>>, capacity: usize },
}

impl Kv {
    /// An empty handed-back cache (past length 0).
    pub(crate) fn handed(g: &GraphFacts) -> Result<Self, BackendError> {
        let past = (0..2 * g.n_layer)
            .map(|_| {
                Tensor::<f32>::from_array(([1usize, g.n_head_kv, 0, g.head_dim], Vec::<f32>::new()))
                    .map(Tensor::into_dyn)
                    .map_err(runtime)
            })
            .collect::<Result<_, _>>()?;
        Ok(Kv::Handed(past))
    }

    /// A shared cache of `initial_capacity` positions, bound to `session`'s past inputs and present outputs.
    pub(crate) fn shared(session: &Session, g: &GraphFacts) -> Result<Self, BackendError> {
        let mut binding = Box::new(session.create_binding().map_err(runtime)?);
        let capacity = initial_capacity(g.n_ctx);
        let mut buffers = allocate(session.allocator(), g, capacity)?;
        bind(&mut binding, &mut buffers)?;
        Ok(Kv::Shared { binding, buffers, capacity })
    }

    /// Runs one call with `inputs` (everything but the KV cache), `past` positions cached before it and `total`
    /// after it; returns the logits.
    pub(crate) fn run(
        &mut self,
        session: &mut Session,
        g: &GraphFacts,
        inputs: Vec<(String, DynValue)>,
        past: usize,
        total: usize,
    ) -> Result<Vec<f32>, BackendError> {
        match self {
            Kv::Handed(cache) => {
                let mut all: Vec<(String, SessionInputValue<'_>)> =
                    inputs.into_iter().map(|(k, v)| (k, v.into())).collect();
                for (i, v) in std::mem::take(cache).into_iter().enumerate() {
                    all.push((io::past(i / 2, i % 2 == 1), v.into()));
                }
                let mut out = session.run(all).map_err(runtime)?;
                let logits = logits(&out)?;
                for i in 0..2 * g.n_layer {
                    let name = io::present(i / 2, i % 2 == 1);
                    cache.push(out.remove(&name).ok_or_else(|| runtime(format!("no output {name}")))?);
                }
                Ok(logits)
            }
            Kv::Shared { binding, buffers, capacity } => {
                if total > *capacity {
                    let grown = (2 * *capacity).max(total.next_power_of_two()).min(g.n_ctx.max(total));
                    let mut next = allocate(session.allocator(), g, grown)?;
                    for (old, new) in buffers.iter().zip(&mut next) {
                        copy_positions(old.extract_tensor().1, new.extract_tensor_mut().1, *capacity, grown, past, g);
                    }
                    bind(binding, &mut next)?;
                    (*buffers, *capacity) = (next, grown);
                }
                for (name, v) in &inputs {
                    binding.bind_input(name.as_str(), v).map_err(runtime)?;
                }
                // Bound afresh each call: ONNX Runtime keeps the previous call's logits bound, of that call's shape.
                binding.bind_output_to_device(io::LOGITS, session.allocator().memory_info()).map_err(runtime)?;
                let out = session.run_binding(binding).map_err(runtime)?;
                logits(&out)
            }
        }
    }
}

fn logits(out: &SessionOutputs<'_>) -> Result<Vec<f32>, BackendError> {
    let v = out.get(io::LOGITS).ok_or_else(|| runtime("no logits output"))?;
    Ok(v.try_extract_tensor::<f32>().map_err(runtime)?.1.to_vec())
}

/// `2 · n_layer` uninitialized buffers of `capacity` positions (`GroupQueryAttention` reads only the positions
/// `seqlens_k` says are filled).
fn allocate(alloc: &Allocator, g: &GraphFacts, capacity: usize) -> Result<Vec<Tensor<f32>>, BackendError> {
    (0..2 * g.n_layer)
        .map(|_| Tensor::<f32>::new(alloc, [1usize, g.n_head_kv, capacity, g.head_dim]).map_err(runtime))
        .collect()
}

/// Binds each buffer as its layer's past input and present output.
fn bind(binding: &mut IoBinding, buffers: &mut [Tensor<f32>]) -> Result<(), BackendError> {
    for (i, b) in buffers.iter_mut().enumerate() {
        let (layer, value) = (i / 2, i % 2 == 1);
        binding.bind_input(io::past(layer, value), b).map_err(runtime)?;
        binding.bind_output(io::present(layer, value), b).map_err(runtime)?;
    }
    Ok(())
}

/// Copies the first `filled` positions of every head from a `[1, heads, from, head_dim]` buffer into a
/// `[1, heads, to, head_dim]` one.
fn copy_positions(src: &[f32], dst: &mut [f32], from: usize, to: usize, filled: usize, g: &GraphFacts) {
    let d = g.head_dim;
    for h in 0..g.n_head_kv {
        dst[h * to * d..][..filled * d].copy_from_slice(&src[h * from * d..][..filled * d]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_keeps_each_heads_filled_positions() {
        let g = GraphFacts {
            n_layer: 1,
            n_head_kv: 2,
            head_dim: 3,
            vocab: 8,
            n_ctx: 4,
            variant: Default::default(),
            sliding_window: None,
        };
        // Two heads, capacity 2, both positions filled: head h position p holds 10h + p in every lane.
        let src: Vec<f32> = (0..2).flat_map(|h| (0..2).flat_map(move |p| [(10 * h + p) as f32; 3])).collect();
        let mut dst = vec![f32::NAN; 2 * 4 * 3];
        copy_positions(&src, &mut dst, 2, 4, 2, &g);
        let at = |h: usize, p: usize| dst[(h * 4 + p) * 3];
        assert_eq!([at(0, 0), at(0, 1), at(1, 0), at(1, 1)], [0.0, 1.0, 10.0, 11.0]);
        assert!(at(0, 2).is_nan() && at(1, 3).is_nan(), "positions past the filled ones are left alone");
    }

    #[test]
    fn the_first_capacity_never_exceeds_the_context() {
        assert_eq!(initial_capacity(8192), INITIAL_POSITIONS);
        assert_eq!(initial_capacity(64), 64);
        assert_eq!(initial_capacity(0), 1);
    }
}

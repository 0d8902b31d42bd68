//! The tract backend: runs edgebench's ONNX export of a GGUF model (`edgebench-onnx`) on tract, sonos's pure-Rust
//! inference engine. tract reads the file, types and optimizes the graph with symbolic `seq` / `past` lengths
//! (Q4_0/Q4_1 `MatMulNBits` become its block-quantized matrix products), and runs one plan per call; the KV cache
//! is the graph's `present` outputs handed back as the next call's `past` inputs, without copies.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgebench_core::{
    BackendError, BackendFacts, Loaded, LoadedModel, ModelSpec, NoOptions, Preparation, Request, Rows, Session,
    TypedBackend,
};
use edgebench_onnx::backend::{loaded_fingerprint, prepare_export, Step};
use edgebench_onnx::io::GraphFacts;
use edgebench_onnx::ExportOptions;
use tract_onnx::prelude::*;

/// Version of tract this backend was built with.
pub const TRACT_VERSION: &str = "tract-onnx 0.23.9";

/// The graph tract runs: standard operators, and a tied f32 output product with its own copy of the table (tract
/// pre-packs a constant matrix at load only when one node reads it or it is under 4 MiB; shared with the embedding
/// lookup, the default model's 113 MB table was re-packed at every call, 64 of 123 ms per decode step).
const EXPORT: ExportOptions = ExportOptions {
    accuracy_level: 1,
    graph: edgebench_onnx::io::GraphVariant::Primitive,
    untied_head: true,
    fp16_safe_norm: false,
};

/// Facts about the graph's symbols that an ONNX file cannot state and tract needs: every call feeds at least one
/// token and the past is never negative. With them tract proves the shapes of an element-wise operation's operands
/// equal and runs it as one vector loop (`OptAddUnicast`); without, 570 additions of the default model's graph ran
/// through the generic broadcasting path, 20% of its prefill. tract's own LLM exports carry the same kind of facts
/// (torch-to-nnef's `extension tract_assert`).
pub const SYMBOL_ASSERTIONS: &[&str] = &["seq>=1", "past>=0"];

/// tract's typed model of an export with [`SYMBOL_ASSERTIONS`] declared, ready for `into_optimized`.
pub fn typed_model(onnx: &tract_onnx::Onnx, proto: &tract_onnx::pb::ModelProto) -> TractResult<TypedModel> {
    let model = onnx.model_for_proto_model(proto)?;
    for a in SYMBOL_ASSERTIONS {
        model.symbols.add_assertion(*a)?;
    }
    model.into_typed()
}

/// The tract backend factory.
pub struct TractBackend {
    cache_root: PathBuf,
}

impl TractBackend {
    /// A backend whose ONNX exports are cached under `cache_root`.
    pub fn new(cache_root: PathBuf) -> Self {
        Self { cache_root }
    }
}

fn runtime(e: impl std::fmt::Display) -> BackendError {
    BackendError::Runtime(format!("tract: {e:#}"))
}

impl TypedBackend for TractBackend {
    type Options = NoOptions;
    type Prepared = PathBuf;
    const NAME: &'static str = "tract";

    fn check(&self, _model: &ModelSpec, req: Request<'_, NoOptions>) -> Result<(), BackendError> {
        if req.device.kind != "cpu" {
            return Err(BackendError::Unsupported(format!("the tract backend runs on cpu, not {}", req.device)));
        }
        Ok(())
    }

    fn prepare(&self, model: &ModelSpec, _: Request<'_, NoOptions>) -> Result<Preparation<PathBuf>, BackendError> {
        prepare_export(&self.cache_root, model, EXPORT)
    }

    fn load(&self, _model: &ModelSpec, req: Request<'_, NoOptions>, path: &PathBuf) -> Loaded {
        Ok(Box::new(TractModel::load(path, req.threads)?))
    }

    fn versions(&self) -> Vec<String> {
        vec![TRACT_VERSION.into()]
    }
}

impl TractModel {
    /// Plan states spawned by this model's sessions so far.
    #[cfg(test)]
    fn states_spawned(&self) -> usize {
        self.states.load(Ordering::Relaxed)
    }

    fn load(path: &std::path::Path, threads: usize) -> Result<Self, BackendError> {
        let path = path.to_path_buf();
        let load_err = |e: &dyn std::fmt::Display| BackendError::Load {
            path: path.display().to_string(),
            message: format!("{e:#}"),
        };
        let executor = if threads > 1 {
            tract_linalg::multithread::Executor::multithread(threads)
        } else {
            tract_linalg::multithread::Executor::SingleThread
        };
        tract_linalg::multithread::set_default_executor(executor);
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_path(&path).map_err(|e| load_err(&e))?;
        let file = edgebench_onnx::fingerprint::file_facts(&proto, &path).map_err(|e| load_err(&e))?;
        let plan = typed_model(&onnx, &proto)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| load_err(&e))?;
        drop(proto);
        let g = file.graph.clone();
        let facts = BackendFacts {
            versions: vec![TRACT_VERSION.into(), file.exporter.clone()],
            kernel_path: "tract optimized plan; tract-linalg kernels chosen at run time for this CPU".into(),
            threads,
            vocab_size: g.vocab,
            context_length: g.n_ctx,
            converted: (!file.converted.is_empty()).then(|| file.converted.join("; ")),
            notes: vec![
                format!("weights carried as: {}", file.carried),
                "primitive graph with the tied output product reading its own transposed copy of the embedding \
                 table (tract merges equal constants and re-packs a shared one at every call); one plan state per \
                 session"
                    .into(),
                format!(
                    "symbol facts declared to tract: {} (lets it run element-wise operators as vector loops); \
                     tract-transformers' fused operators not applied (measured slower on this graph)",
                    SYMBOL_ASSERTIONS.join(", ")
                ),
                "KV cache f32: the graph's present outputs become the next call's past inputs (no copies)".into(),
            ]
            .into_iter()
            .chain(file.carried.contains("Q4_K").then(|| {
                "tract keeps 4-bit MatMulNBits block scales as f16: the Q4_K scales d·sc (f32 in the ONNX file, the \
                 GGUF's values) are rounded to f16 inside tract (relative error ≤ 2^-11)"
                    .to_string()
            }))
            .collect(),
            kv_cache: Some("f32".into()),
            coverage: None,
            weights: None,
        };
        Ok(TractModel { plan, graph: g, facts, path, states: AtomicUsize::new(0) })
    }
}

struct TractModel {
    plan: std::sync::Arc<TypedRunnableModel>,
    graph: GraphFacts,
    facts: BackendFacts,
    path: PathBuf,
    /// Plan states spawned so far: one per session (`plan.run` would build one per call).
    states: AtomicUsize,
}

impl LoadedModel for TractModel {
    fn facts(&self) -> BackendFacts {
        self.facts.clone()
    }

    fn weights_fingerprint(&self) -> Result<Option<(String, String)>, BackendError> {
        loaded_fingerprint(&self.path, "tract")
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError> {
        let g = &self.graph;
        let empty = Tensor::zero::<f32>(&[1, g.n_head_kv, 0, g.head_dim]).map_err(runtime)?.into_tvalue();
        let state = self.plan.spawn().map_err(runtime)?;
        self.states.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(TractSession { model: self, state, past: vec![empty; 2 * g.n_layer], pos: 0 }))
    }
}

struct TractSession<'a> {
    model: &'a TractModel,
    /// One plan state for the session's life: its operators' scratch state is built once, not per call.
    state: TypedSimpleState,
    past: Vec<TValue>,
    pos: usize,
}

impl Session for TractSession<'_> {
    fn run(&mut self, tokens: &[u32], rows: Rows) -> Result<Vec<f32>, BackendError> {
        let g = &self.model.graph;
        let st = Step::new(self.pos, tokens, rows == Rows::All);
        let mut inputs: TVec<TValue> = tvec![
            tensor1(&st.ids).into_shape(&[1, st.seq]).map_err(runtime)?.into_tvalue(),
            tensor1(&st.positions).into_shape(&[1, st.seq]).map_err(runtime)?.into_tvalue(),
            tensor1(&st.bias()).into_shape(&[st.seq, st.total]).map_err(runtime)?.into_tvalue(),
            tensor1(&st.rows).into_tvalue(),
        ];
        if let Some(w) = g.sliding_window {
            // The graph's inputs in order: the sliding layers' mask follows `logits_index`, before the KV cache.
            inputs.push(tensor1(&st.bias_sliding(w)).into_shape(&[st.seq, st.total]).map_err(runtime)?.into_tvalue());
        }
        inputs.extend(std::mem::take(&mut self.past));
        let mut out = self.state.run(inputs).map_err(runtime)?;
        let logits = out.remove(0);
        self.past = out.into_iter().collect();
        self.pos = st.total;
        let v = logits.try_as_plain_ram().and_then(|p| Ok(p.as_slice::<f32>()?.to_vec())).map_err(runtime)?;
        if v.len() != st.rows.len() * g.vocab {
            return Err(BackendError::Runtime(format!("tract returned {} logits for {} rows", v.len(), st.rows.len())));
        }
        Ok(v)
    }

    fn position(&self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgebench_gguf::synth::{tiny_model, TinyConfig};

    /// A session spawns one plan state and reuses it for every call; each session has its own.
    #[test]
    fn a_session_reuses_one_plan_state() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("tiny.gguf");
        tiny_model(&TinyConfig::default()).unwrap().write(&gguf).unwrap();
        let onnx = dir.path().join("tiny.onnx");
        edgebench_onnx::cache::export_file(&gguf, EXPORT, &onnx).unwrap();
        let m = TractModel::load(&onnx, 1).unwrap();
        let mut a = m.new_session().unwrap();
        let first = a.run(&[1, 2, 3], Rows::Last).unwrap();
        for t in [4, 5, 6] {
            a.run(&[t], Rows::Last).unwrap();
        }
        assert_eq!(m.states_spawned(), 1, "four calls of one session");
        let mut b = m.new_session().unwrap();
        assert_eq!(b.run(&[1, 2, 3], Rows::Last).unwrap(), first, "a reused state starts each session afresh");
        assert_eq!(m.states_spawned(), 2);
    }

    /// With the symbol facts declared, tract runs the graph's additions as vector loops: the only generic ones
    /// left are the attention masks' (one per layer, a broadcast tract cannot size); without them, every residual
    /// and Q4_1 minimum addition ran on the generic path.
    #[test]
    fn symbol_facts_make_additions_vector_loops() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("tiny.gguf");
        let cfg = TinyConfig { weight_type: edgebench_gguf::GgmlType::Q4_1, ..TinyConfig::default() };
        tiny_model(&cfg).unwrap().write(&gguf).unwrap();
        let path = dir.path().join("tiny.onnx");
        edgebench_onnx::cache::export_file(&gguf, EXPORT, &path).unwrap();
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_path(&path).unwrap();
        let generic_adds = |m: TypedModel| {
            let plan = m.into_optimized().unwrap();
            plan.nodes.iter().filter(|n| n.op.name() == "Add").count()
        };
        let with = generic_adds(typed_model(&onnx, &proto).unwrap());
        let without = generic_adds(onnx.model_for_proto_model(&proto).unwrap().into_typed().unwrap());
        let layers = edgebench_onnx::fingerprint::file_facts(&proto, &path).unwrap().graph.n_layer;
        assert_eq!(with, layers, "generic additions left with the facts: the masks' only");
        assert!(without > 2 * layers, "without the facts: {without} generic additions");
    }
}

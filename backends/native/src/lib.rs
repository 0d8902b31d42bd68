//! The native backend: edgebench's own CPU engine for llama-architecture GGUF models, on the kernels of
//! `edgebench-kernels` (run-time dispatch: AVX2+FMA on x86-64, NEON on aarch64, scalar elsewhere).
//!
//! Weights run in their file format (no conversion at load), activations are quantized to 8 bits per block of 32
//! for the block-quantized weights, the KV cache is f32, and a pool of `--threads` compute threads (the caller
//! included) splits every matrix product by weight rows and the attention by (query, head). Option
//! `kernels=scalar|avx2|neon` forces a path (default: the best this CPU has); on the AVX2 path Q4_0, Q4_1 and
//! Q8_0 matrices are interleaved by four rows at load (the same bytes, reordered; `interleave=off` keeps the file
//! order, for comparison).

mod forward;
mod model;
mod ops;
mod pool;

use std::sync::Mutex;

use edgebench_core::{Backend, BackendError, BackendFacts, LoadOptions, LoadedModel, ModelSpec, Session, Support};
use edgebench_kernels::{Isa, KernelSet};
use pool::Pool;

/// This crate's version, recorded in results.
pub const VERSION: &str = concat!("edgebench-backend-native ", env!("CARGO_PKG_VERSION"));

/// The native backend factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct NativeBackend;

fn kernel_set(opts: &LoadOptions) -> Result<KernelSet, BackendError> {
    match opts.options.get("kernels").map(String::as_str) {
        None | Some("auto") => Ok(KernelSet::best()),
        Some(name) => {
            let isa = Isa::parse(name).ok_or_else(|| {
                BackendError::Unsupported(format!("native option kernels={name} (auto, scalar, avx2 or neon)"))
            })?;
            KernelSet::new(isa).map_err(BackendError::Unsupported)
        }
    }
}

fn interleave(opts: &LoadOptions, ks: &KernelSet) -> Result<bool, BackendError> {
    match opts.options.get("interleave").map(String::as_str) {
        None | Some("on") => Ok(ks.isa() == Isa::Avx2),
        Some("off") => Ok(false),
        Some(v) => Err(BackendError::Unsupported(format!("native option interleave={v} (on or off)"))),
    }
}

fn check_options(opts: &LoadOptions) -> Result<(), BackendError> {
    if let Some(k) = opts.options.keys().find(|k| !["kernels", "interleave"].contains(&k.as_str())) {
        return Err(BackendError::Unsupported(format!(
            "native option {k:?} (the native backend knows kernels= and interleave=)"
        )));
    }
    interleave(opts, &kernel_set(opts)?)?;
    if opts.device.kind != "cpu" {
        return Err(BackendError::Unsupported(format!("the native backend runs on cpu, not {}", opts.device)));
    }
    kernel_set(opts).map(|_| ())
}

impl Backend for NativeBackend {
    fn name(&self) -> &'static str {
        "native"
    }

    fn supports(&self, _model: &ModelSpec, opts: &LoadOptions) -> Support {
        match check_options(opts) {
            Ok(()) => Support::Yes,
            Err(e) => Support::No(e.to_string()),
        }
    }

    fn load(&self, model: &ModelSpec, opts: &LoadOptions) -> Result<Box<dyn LoadedModel>, BackendError> {
        check_options(opts)?;
        let ks = kernel_set(opts)?;
        let w = model::load(&model.path, interleave(opts, &ks)?)?;
        let pool = Pool::new(opts.threads).map_err(|e| BackendError::Runtime(format!("starting threads: {e}")))?;
        let forced = if opts.options.contains_key("kernels") { "forced by option" } else { "run-time dispatch" };
        let types: Vec<String> = w
            .types
            .keys()
            .map(|t| {
                let path = if ks.isa().covers(*t) { ks.isa().name() } else { "scalar" };
                let acts = if t.quantized() { "8-bit activations" } else { "f32 activations" };
                format!("{} {path} ({acts})", t.name())
            })
            .collect();
        let mut notes = vec!["KV cache f32".to_string()];
        if w.interleaved > 0 {
            notes.push(format!("{} matrices interleaved by four rows at load (same bytes, reordered)", w.interleaved));
        }
        if w.output.is_none() {
            notes.push("output projection tied to token_embd".into());
        }
        let facts = BackendFacts {
            versions: vec![VERSION.into()],
            kernel_path: format!(
                "native {} ({forced}){}; {}",
                ks.isa(),
                if w.interleaved > 0 { ", 4-row interleaved Q4_0/Q4_1/Q8_0" } else { "" },
                types.join("; ")
            ),
            threads: pool.threads(),
            vocab_size: w.hp.vocab,
            context_length: w.hp.n_ctx,
            converted: None,
            notes,
            weights: None,
        };
        Ok(Box::new(NativeModel { engine: forward::Engine { w, ks, pool: Mutex::new(pool) }, facts }))
    }
}

struct NativeModel {
    engine: forward::Engine,
    facts: BackendFacts,
}

impl LoadedModel for NativeModel {
    fn facts(&self) -> BackendFacts {
        self.facts.clone()
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError> {
        Ok(Box::new(NativeSession { engine: &self.engine, state: forward::State::new(self.engine.w.hp.n_layer) }))
    }
}

struct NativeSession<'a> {
    engine: &'a forward::Engine,
    state: forward::State,
}

impl Session for NativeSession<'_> {
    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>, BackendError> {
        self.engine.forward(&mut self.state, tokens, false)
    }

    fn forward_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>, BackendError> {
        self.engine.forward(&mut self.state, tokens, true)
    }

    fn position(&self) -> usize {
        self.state.pos
    }
}

//! The native backend: edgebench's own CPU engine for GGUF models of every architecture `edgebench_gguf::arch`
//! describes (llama incl. Llama 3.1's rope factors, qwen2, qwen3, gemma3, phi3), on the kernels of
//! `edgebench-kernels` (run-time dispatch: AVX-512 VNNI, AVX-VNNI or AVX2+FMA on x86-64, NEON on aarch64, scalar
//! elsewhere).
//!
//! Weights run in their file format (no conversion at load; copied into 2 MiB transparent huge pages where Linux
//! grants them, `arena.rs`), activations are quantized to 8 bits per block of 32 for the block-quantized weights
//! (one scale per 256 for matrices that are all K-quants, as ggml's Q8_K), the KV cache is f16 as llama.cpp's
//! default (`kv=f32` keeps f32; keys stored in transposed tiles, each loaded once for every query head of its GQA
//! group), and a pool of `--threads` compute threads (the caller included) splits every matrix product by weight
//! rows and the attention by (block of positions, KV head). Option
//! `kernels=scalar|avx2|avx512|avxvnni|neon` forces a path (default: the best this CPU has); on the AVX2 and AVX-512
//! paths Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 matrices are interleaved by four rows at load, and on the AVX-512 path
//! Q4_0, Q4_1, Q8_0, Q4_K, Q5_K and Q6_K by sixteen (the same bytes, reordered; `interleave=four` keeps four rows, `interleave=off` the
//! file order, for comparison).

mod arena;
mod forward;
mod kv;
mod model;
mod ops;
mod pool;
pub mod profile;

use std::sync::Mutex;

use edgebench_core::{
    BackendError, BackendFacts, Loaded, LoadedModel, ModelSpec, Request, Rows, Session, TypedBackend,
};
use edgebench_kernels::{Isa, KernelSet, Layout, WeightType};
use pool::Pool;
use serde::Deserialize;

/// This crate's version, recorded in results.
pub const VERSION: &str = concat!("edgebench-backend-native ", env!("CARGO_PKG_VERSION"));

/// The native backend factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct NativeBackend;

/// The native backend's options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NativeOptions {
    /// Force a kernel path (`auto`: the best this CPU has).
    pub kernels: Kernels,
    /// Interleave matrices at load: `on` (default) by sixteen rows for Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K on the AVX-512 path and
    /// by four for the rest of Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 on the x86 SIMD paths, `four` by four rows (or none) only,
    /// `off` file order.
    pub interleave: Interleave,
    /// The KV cache's element type (`f16`, llama.cpp's default, or `f32`).
    pub kv: Kv,
}

/// The `kv` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kv {
    /// f16 (llama.cpp's default).
    #[default]
    F16,
    /// f32.
    F32,
}

/// The `kernels` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernels {
    /// The best this CPU has (run-time dispatch).
    #[default]
    Auto,
    /// The portable reference.
    Scalar,
    /// AVX2 + FMA (also spelled as the facts name it, `avx2+fma`).
    #[serde(alias = "avx2+fma")]
    Avx2,
    /// AVX-512 with VNNI for the interleaved Q4_0/Q4_1/Q8_0 products, AVX2 for the rest (also `avx512vnni`).
    #[serde(alias = "avx512vnni")]
    Avx512,
    /// AVX-VNNI (256-bit) for the interleaved Q4_0/Q4_1/Q8_0 products, AVX2 for the rest.
    Avxvnni,
    /// Arm NEON.
    Neon,
}

/// The `interleave` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interleave {
    /// Every layout the kernel path has (16-row where it runs, else 4-row).
    #[default]
    On,
    /// The 4-row layout only (for comparison with the 16-row one).
    Four,
    /// File order.
    Off,
}

fn kernel_set(o: &NativeOptions) -> Result<KernelSet, BackendError> {
    let name = match o.kernels {
        Kernels::Auto => return Ok(KernelSet::best()),
        Kernels::Scalar => "scalar",
        Kernels::Avx2 => "avx2",
        Kernels::Avx512 => "avx512",
        Kernels::Avxvnni => "avxvnni",
        Kernels::Neon => "neon",
    };
    let isa = Isa::parse(name).expect("every option names an ISA");
    KernelSet::new(isa).map_err(BackendError::Unsupported)
}

impl TypedBackend for NativeBackend {
    type Options = NativeOptions;
    type Prepared = ();
    const NAME: &'static str = "native";

    fn check(&self, _model: &ModelSpec, req: Request<'_, NativeOptions>) -> Result<(), BackendError> {
        if req.device.kind != "cpu" {
            return Err(BackendError::Unsupported(format!("the native backend runs on cpu, not {}", req.device)));
        }
        kernel_set(req.options).map(|_| ())
    }

    fn load(&self, model: &ModelSpec, req: Request<'_, NativeOptions>, _: &()) -> Loaded {
        let ks = kernel_set(req.options)?;
        let opt = req.options.interleave;
        let interleave = opt != Interleave::Off && ks.isa().interleaves();
        let w = model::load(&model.path, interleave, interleave && opt == Interleave::On && ks.isa().interleaves16())?;
        let pool = Pool::new(req.threads).map_err(|e| BackendError::Runtime(format!("starting threads: {e}")))?;
        let forced = if req.options.kernels == Kernels::Auto { "run-time dispatch" } else { "forced by option" };
        let types: Vec<String> = w
            .types
            .keys()
            .map(|t| {
                let layout = w
                    .matrices()
                    .filter(|m| m.ty == *t)
                    .map(|m| m.layout)
                    .max_by_key(|l| l.group_rows())
                    .unwrap_or(Layout::Plain);
                let path = ks.isa().path_for(*t, layout).name();
                let acts = match t {
                    WeightType::Q4K | WeightType::Q5K | WeightType::Q6K => {
                        "8-bit activations, one scale per 256 when every reader is a K-quant"
                    }
                    t if t.quantized() => "8-bit activations",
                    _ => "f32 activations",
                };
                format!("{} {path} ({acts})", t.name())
            })
            .collect();
        let kv = match req.options.kv {
            Kv::F16 => kv::KvType::F16,
            Kv::F32 => kv::KvType::F32,
        };
        let mut notes = vec![match kv {
            kv::KvType::F16 => "KV cache f16 (llama.cpp's default; kv=f32 keeps f32)".to_string(),
            kv::KvType::F32 => "KV cache f32 (kv=f32)".to_string(),
        }];
        for (n, by) in [(w.interleaved16, "sixteen"), (w.interleaved, "four")] {
            if n > 0 {
                notes.push(format!("{n} matrices interleaved by {by} rows at load (same bytes, reordered)"));
            }
        }
        notes.push(arena::describe());
        if w.output.is_none() {
            notes.push("output projection tied to token_embd".into());
        }
        notes.push(format!("architecture {}", w.hp.arch.name()));
        let facts = BackendFacts {
            versions: vec![VERSION.into()],
            kernel_path: format!(
                "native {} ({forced}){}; {}",
                ks.isa(),
                [Layout::Interleaved16, Layout::Interleaved4]
                    .into_iter()
                    .filter_map(|l| {
                        let tys: std::collections::BTreeSet<&str> =
                            w.matrices().filter(|m| m.layout == l).map(|m| m.ty.name()).collect();
                        let tys: Vec<&str> = tys.into_iter().collect();
                        (!tys.is_empty()).then(|| format!(", {}-row interleaved {}", l.group_rows(), tys.join("/")))
                    })
                    .collect::<String>(),
                types.join("; ")
            ),
            threads: pool.threads(),
            vocab_size: w.hp.vocab,
            context_length: w.hp.n_ctx,
            converted: None,
            notes,
            kv_cache: Some(match kv {
                kv::KvType::F16 => "f16".into(),
                kv::KvType::F32 => "f32".into(),
            }),
            coverage: None,
            weights: None,
        };
        Ok(Box::new(NativeModel { engine: forward::Engine { w, ks, pool: Mutex::new(pool) }, facts, kv }))
    }

    fn versions(&self) -> Vec<String> {
        vec![VERSION.into()]
    }
}

struct NativeModel {
    engine: forward::Engine,
    facts: BackendFacts,
    kv: kv::KvType,
}

impl LoadedModel for NativeModel {
    fn facts(&self) -> BackendFacts {
        self.facts.clone()
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError> {
        Ok(Box::new(NativeSession {
            engine: &self.engine,
            state: forward::State::new(self.engine.w.hp.n_layer, self.kv),
        }))
    }
}

struct NativeSession<'a> {
    engine: &'a forward::Engine,
    state: forward::State,
}

impl Session for NativeSession<'_> {
    fn run(&mut self, tokens: &[u32], rows: Rows) -> Result<Vec<f32>, BackendError> {
        self.engine.forward(&mut self.state, tokens, rows == Rows::All)
    }

    fn position(&self) -> usize {
        self.state.pos
    }
}

//! The llama.cpp backend factory, loaded model and session. Sessions reuse contexts (KV cache cleared) so a
//! repetition measures decoding, not context allocation — as llama-bench reuses one context across repetitions.

use std::cell::RefCell;

use edgebench_core::{
    BackendError, BackendFacts, Loaded, LoadedModel, ModelSpec, Request, Rows, Session, TypedBackend,
};

use crate::ffi::{self, Context, ContextParams, DecodeError, Model, ModelParams, Outputs};
use crate::options::{Options, DEFAULT_CTX};

/// The llama.cpp backend factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct LlamaCppBackend;

/// The GPU feature a device kind needs, if this build lacks it.
fn device_problem(kind: &str) -> Option<String> {
    let compiled = match kind {
        "cpu" => return None,
        "cuda" => cfg!(feature = "cuda"),
        "metal" => cfg!(feature = "metal"),
        other => return Some(format!("llamacpp cannot run on {other}")),
    };
    (!compiled).then(|| {
        BackendError::NotCompiled { backend: format!("llamacpp ({kind})"), feature: format!("llamacpp-{kind}") }
            .to_string()
    })
}

/// The x86-64 extensions ggml's CPU backend reports in its system info (`NAME = 1` when compiled in), each with
/// whether this CPU has it (AMX is left out: its detection is not in stable Rust); none elsewhere.
fn x86_extensions() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        vec![
            ("SSE3", has!("sse3")),
            ("SSSE3", has!("ssse3")),
            ("AVX", has!("avx")),
            ("AVX_VNNI", has!("avxvnni")),
            ("AVX2", has!("avx2")),
            ("F16C", has!("f16c")),
            ("FMA", has!("fma")),
            ("BMI2", has!("bmi2")),
            ("AVX512", has!("avx512f") && has!("avx512cd") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw")),
            ("AVX512_VBMI", has!("avx512vbmi")),
            ("AVX512_VNNI", has!("avx512vnni")),
            ("AVX512_BF16", has!("avx512bf16")),
        ]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// Whether ggml's system info says `name` was compiled in (`… | NAME = 1 | …`).
fn compiled(system_info: &str, name: &str) -> bool {
    // The first entry carries the backend's name: `CPU : SSE3 = 1`.
    system_info
        .split('|')
        .filter_map(|part| part.split_once('='))
        .any(|(k, v)| k.rsplit(':').next().is_some_and(|k| k.trim() == name) && v.trim() == "1")
}

const GIB: f64 = (1u64 << 30) as f64;

/// The GPU a cell asks for, among those llama.cpp's GPU backend found; why not, as a skipped cell's reason.
fn gpu_for(device: &edgebench_core::DeviceRequest) -> Result<ffi::GpuDevice, BackendError> {
    let gpus = ffi::gpu_devices();
    gpus.get(device.index).cloned().ok_or_else(|| {
        let seen = gpus.iter().map(|g| format!("{} ({})", g.name, g.description)).collect::<Vec<_>>().join(", ");
        let log = ffi::take_recent_log();
        BackendError::Unsupported(format!(
            "no {device} here: llama.cpp's GPU backend found {} GPU(s){}{}",
            gpus.len(),
            if seen.is_empty() { String::new() } else { format!(": {seen}") },
            if log.is_empty() { String::new() } else { format!(" ({log})") }
        ))
    })
}

/// Layers offloaded and offloadable, from llama.cpp's `load_tensors: offloaded 31/31 layers to GPU`.
fn offloaded_layers(line: &str) -> Option<(u32, u32)> {
    let after = line.split("offloaded").nth(1)?.trim_start();
    let (n, rest) = after.split_once('/')?;
    let m = rest.split_whitespace().next()?;
    Some((n.trim().parse().ok()?, m.parse().ok()?))
}

/// A GPU cell measures the GPU: every layer offloaded, or no cell (llama.cpp would run the rest on the CPU).
fn require_full_offload(line: Option<&str>, device: &str) -> Result<String, BackendError> {
    match line.and_then(offloaded_layers) {
        Some((n, m)) if n == m && m > 0 => Ok(format!("offloaded {n}/{m} layers to {device}")),
        Some((n, m)) => Err(BackendError::Runtime(format!(
            "llama.cpp put only {n} of {m} layers on {device}: the rest would run on the CPU, which is not a {device} \
             measurement"
        ))),
        None => Err(BackendError::Runtime(format!(
            "llama.cpp did not say how many layers it offloaded to {device}: refusing to measure a possible CPU fallback"
        ))),
    }
}

/// CPU extensions llama.cpp was compiled to use (from its system info) that this CPU lacks: running would SIGILL.
pub fn missing_cpu_features(system_info: &str) -> Vec<&'static str> {
    x86_extensions().into_iter().filter(|&(name, has)| !has && compiled(system_info, name)).map(|(n, _)| n).collect()
}

/// CPU extensions this CPU has that the llama.cpp build does not use: what llama.cpp's own default build
/// (`GGML_NATIVE`) would compile in here and this one leaves out.
pub fn unused_cpu_features(system_info: &str) -> Vec<&'static str> {
    x86_extensions().into_iter().filter(|&(name, has)| has && !compiled(system_info, name)).map(|(n, _)| n).collect()
}

/// The result's note on how llama.cpp's CPU kernels were built against what this CPU offers.
fn cpu_build_note(system_info: &str) -> String {
    let unused = unused_cpu_features(system_info);
    if unused.is_empty() {
        "ggml CPU build: one variant compiled for this CPU's instruction sets (every extension llama.cpp's own \
         default build, GGML_NATIVE, would use here)"
            .into()
    } else {
        format!(
            "ggml CPU build: NOT llama.cpp's best on this CPU: it has {} which this build does not use (llama.cpp's \
             own default build, GGML_NATIVE, would); rebuild after `eval \"$(bash ci/llama-cpu-flags.sh)\"`",
            unused.join(", ")
        )
    }
}

impl TypedBackend for LlamaCppBackend {
    type Options = Options;
    type Prepared = ();
    const NAME: &'static str = "llamacpp";

    fn check(&self, _model: &ModelSpec, req: Request<'_, Options>) -> Result<(), BackendError> {
        if let Some(why) = device_problem(&req.device.kind) {
            return Err(BackendError::Unsupported(why));
        }
        if req.device.kind != "cpu" {
            gpu_for(req.device)?;
        }
        let missing = missing_cpu_features(&ffi::system_info());
        if !missing.is_empty() {
            return Err(BackendError::Unsupported(format!(
                "this llama.cpp build uses {} which this CPU lacks (it was compiled for another CPU); rebuild on this \
                 machine after `eval \"$(bash ci/llama-cpu-flags.sh)\"`",
                missing.join(", ")
            )));
        }
        req.options.validate()
    }

    fn load(&self, spec: &ModelSpec, req: Request<'_, Options>, _: &()) -> Loaded {
        Ok(Box::new(LlamaCppModel::load(spec, req)?))
    }

    fn devices(&self) -> Vec<String> {
        let mut d = vec!["cpu".to_string()];
        let kind = if cfg!(feature = "cuda") {
            "cuda"
        } else if cfg!(feature = "metal") {
            "metal"
        } else {
            return d;
        };
        let gpus = ffi::gpu_devices();
        if gpus.is_empty() {
            // The reason a cell on the first device would be skipped with.
            let first = edgebench_core::DeviceRequest::parse(kind).expect("a device kind");
            d.push(format!("no {kind} device ({})", gpu_for(&first).err().map(|e| e.to_string()).unwrap_or_default()));
        }
        d.extend(gpus.iter().enumerate().map(|(i, g)| format!("{kind}:{i} ({}, {})", g.name, g.description)));
        d
    }

    fn versions(&self) -> Vec<String> {
        vec![format!("llama.cpp vendored in llama-cpp-sys-2 {}", crate::LLAMA_CPP_SYS_VERSION)]
    }
}

/// A model resident in llama.cpp, with a pool of idle contexts.
pub struct LlamaCppModel {
    // Declared before `model`: contexts must be freed before the model they were made from.
    pool: RefCell<Vec<Context>>,
    model: Model,
    ctx_params: ContextParams,
    n_vocab: usize,
    facts: BackendFacts,
}

impl LlamaCppModel {
    fn load(spec: &ModelSpec, req: Request<'_, Options>) -> Result<LlamaCppModel, BackendError> {
        let o = req.options;
        let load_err = |message: String| BackendError::Load { path: spec.path.display().to_string(), message };
        if !spec.path.is_file() {
            return Err(load_err("no such file".into()));
        }
        let gpu = req.device.kind != "cpu";
        let mp = ModelParams {
            mmap: o.mmap,
            repack: o.repack,
            n_gpu_layers: if gpu { -1 } else { 0 },
            main_gpu: req.device.index as i32,
            vocab_only: false,
        };
        let gpu_device = if gpu { Some(gpu_for(req.device)?) } else { None };
        let model = Model::load(&spec.path, mp).map_err(load_err)?;
        let offload = match &gpu_device {
            Some(g) => Some(
                require_full_offload(
                    ffi::take_offloaded_line().as_deref(),
                    &format!("{} ({})", g.name, g.description),
                )? + &format!(
                    "; device memory {:.1} GiB, {:.1} GiB free before the load",
                    g.memory.1 as f64 / GIB,
                    g.memory.0 as f64 / GIB
                ),
            ),
            None => None,
        };
        let n_ctx = o.ctx.unwrap_or(DEFAULT_CTX.min(model.n_ctx_train().max(1) as u32));
        let ctx_params = ContextParams {
            n_ctx,
            n_batch: o.batch,
            n_ubatch: o.ubatch,
            threads: req.threads as i32,
            flash_attn: o.flash_attn_type(),
        };
        // One context now: it fails early on bad settings, and the first session finds it ready.
        let first = Context::new(&model, ctx_params).map_err(load_err)?;
        let (ggml, commit) = ffi::ggml_version();
        let info = ffi::system_info();
        let n_vocab = model.n_vocab();
        let facts = BackendFacts {
            versions: vec![
                format!(
                    "llama.cpp vendored in llama-cpp-sys-2 {} (crate sha256 {})",
                    crate::LLAMA_CPP_SYS_VERSION,
                    env!("EDGEBENCH_LLAMA_CPP_SYS_SHA256")
                ),
                format!("ggml {ggml} (build commit: {commit})"),
            ],
            kernel_path: match &gpu_device {
                Some(g) => format!("llama.cpp {} ({}); CPU side {}", g.name, g.description, compact_system_info(&info)),
                None => format!("llama.cpp {}", compact_system_info(&info)),
            },
            threads: req.threads,
            vocab_size: n_vocab,
            context_length: first.n_ctx(),
            converted: None,
            // The context parameters leave type_k / type_v at llama.cpp's default, F16.
            kv_cache: Some("f16".into()),
            coverage: None,
            weights: None,
            notes: vec![
                format!("model: {}", model.desc()),
                format!(
                    "mmap {}, CPU weight repacking {} (layout only, values unchanged)",
                    on_off(o.mmap),
                    on_off(o.repack)
                ),
                format!(
                    "n_ctx {}, batch {}, ubatch {}, flash_attn {}, KV cache f16",
                    first.n_ctx(),
                    first.n_batch(),
                    o.ubatch,
                    o.flash_attn_name()
                ),
                format!("device {}, OpenMP threads {}", req.device, req.threads),
                cpu_build_note(&info),
            ]
            .into_iter()
            .chain(offload)
            .collect(),
        };
        Ok(LlamaCppModel { pool: RefCell::new(vec![first]), model, ctx_params, n_vocab, facts })
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// `CPU : SSE3 = 1 | AVX = 1 | … |` → `CPU: SSE3 AVX …` (enabled entries only).
fn compact_system_info(info: &str) -> String {
    let mut out = String::new();
    for part in info.split('|').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((name, v)) if v.trim() == "1" => {
                let name = name.trim();
                match name.split_once(':') {
                    Some((backend, feature)) => out.push_str(&format!(
                        "{}{}: {}",
                        if out.is_empty() { "" } else { "; " },
                        backend.trim(),
                        feature.trim()
                    )),
                    None => {
                        out.push(' ');
                        out.push_str(name);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

impl LoadedModel for LlamaCppModel {
    fn facts(&self) -> BackendFacts {
        self.facts.clone()
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError> {
        let ctx = match self.pool.borrow_mut().pop() {
            Some(c) => c,
            None => Context::new(&self.model, self.ctx_params).map_err(BackendError::Runtime)?,
        };
        Ok(Box::new(LlamaCppSession { owner: self, ctx: Some(ctx), pos: 0 }))
    }
}

/// One sequence on a pooled context.
struct LlamaCppSession<'m> {
    owner: &'m LlamaCppModel,
    ctx: Option<Context>,
    pos: usize,
}

impl Session for LlamaCppSession<'_> {
    fn run(&mut self, tokens: &[u32], rows: Rows) -> Result<Vec<f32>, BackendError> {
        let n_vocab = self.owner.n_vocab;
        let ctx = self.ctx.as_mut().expect("context present until drop");
        // The harness's checked session has refused empty input, ids outside the vocabulary and a full context.
        let no_logits = || BackendError::Runtime(format!("llama.cpp returned no logits: {}", ffi::take_recent_log()));
        let chunks = tokens.len().div_ceil(ctx.n_batch());
        let mut every = Vec::with_capacity(if rows == Rows::All { tokens.len() * n_vocab } else { 0 });
        for (i, chunk) in tokens.chunks(ctx.n_batch()).enumerate() {
            let want = match (rows, i + 1 == chunks) {
                (Rows::All, _) => Outputs::All,
                (Rows::Last, true) => Outputs::Last,
                (Rows::Last, false) => Outputs::None,
            };
            ctx.decode(chunk, self.pos, want).map_err(|e| match e {
                DecodeError::NoKvSlot => BackendError::Runtime("llama.cpp found no KV-cache slot".into()),
                DecodeError::Failed(code, log) => BackendError::Runtime(format!("llama_decode returned {code}: {log}")),
            })?;
            self.pos += chunk.len();
            if rows == Rows::All {
                for j in 0..chunk.len() {
                    every.extend_from_slice(ctx.logits_ith(j, n_vocab).ok_or_else(no_logits)?);
                }
            }
        }
        if rows == Rows::All {
            return Ok(every);
        }
        ctx.last_logits(n_vocab).map(<[f32]>::to_vec).ok_or_else(no_logits)
    }

    fn position(&self) -> usize {
        self.pos
    }
}

impl Drop for LlamaCppSession<'_> {
    fn drop(&mut self) {
        if let Some(mut ctx) = self.ctx.take() {
            ctx.clear();
            self.owner.pool.borrow_mut().push(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_info_is_compacted_to_enabled_features() {
        let info = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 0 | AVX2 = 1 | OPENMP = 1 | REPACK = 1 |";
        assert_eq!(compact_system_info(info), "CPU: SSE3 SSSE3 AVX AVX2 OPENMP REPACK");
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn compiled_extensions_are_checked_against_this_cpu() {
        let none = "CPU : SSE3 = 0 | OPENMP = 1 |";
        let all: String = format!(
            "CPU : {} | OPENMP = 1 |",
            x86_extensions().iter().map(|(n, _)| format!("{n} = 1")).collect::<Vec<_>>().join(" | ")
        );
        assert!(compiled(&all, "SSE3") && compiled(&all, "AVX512") && !compiled(&all, "AVX5"));
        assert!(!compiled(none, "SSE3") && compiled(none, "OPENMP"));
        let has: Vec<&str> = x86_extensions().iter().filter(|e| e.1).map(|e| e.0).collect();
        let lacks: Vec<&str> = x86_extensions().iter().filter(|e| !e.1).map(|e| e.0).collect();
        assert_eq!(missing_cpu_features(&all), lacks, "a build with everything needs what this CPU lacks");
        assert_eq!(missing_cpu_features(none), Vec::<&str>::new());
        assert_eq!(unused_cpu_features(none), has, "a build with nothing leaves every extension unused");
        assert_eq!(unused_cpu_features(&all), Vec::<&str>::new());
        assert!(cpu_build_note(&all).contains("every extension"));
        if !has.is_empty() {
            assert!(cpu_build_note(none).contains("NOT llama.cpp's best") && cpu_build_note(none).contains(has[0]));
        }
    }

    #[test]
    fn a_gpu_cell_needs_every_layer_offloaded() {
        let line = "load_tensors: offloaded 31/31 layers to GPU";
        assert_eq!(offloaded_layers(line), Some((31, 31)));
        assert_eq!(require_full_offload(Some(line), "CUDA0").unwrap(), "offloaded 31/31 layers to CUDA0");
        let partial = require_full_offload(Some("load_tensors: offloaded 20/31 layers to GPU"), "CUDA0").unwrap_err();
        assert!(partial.to_string().contains("only 20 of 31 layers on CUDA0"), "{partial}");
        assert!(require_full_offload(None, "CUDA0").is_err());
        assert_eq!(offloaded_layers("load_tensors: offloading 30 repeating layers to GPU"), None);
    }

    #[test]
    fn a_cpu_only_build_finds_no_gpu_and_refuses_a_gpu_cell() {
        if cfg!(any(feature = "cuda", feature = "metal")) {
            eprintln!("skipped: built with a GPU backend (its devices depend on this machine)");
            return;
        }
        assert!(ffi::gpu_devices().is_empty(), "{:?}", ffi::gpu_devices());
        let e = gpu_for(&edgebench_core::DeviceRequest::parse("cuda:0").unwrap()).unwrap_err();
        assert!(matches!(&e, BackendError::Unsupported(m) if m.contains("found 0 GPU(s)")), "{e}");
    }

    #[test]
    fn gpu_devices_need_their_feature() {
        assert_eq!(device_problem("cpu"), None);
        if !cfg!(feature = "cuda") {
            assert!(device_problem("cuda").unwrap().contains("--features llamacpp-cuda"));
        }
        assert!(device_problem("npu").unwrap().contains("cannot run on npu"));
    }
}

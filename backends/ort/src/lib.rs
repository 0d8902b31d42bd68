//! The ONNX Runtime backend: runs edgebench's ONNX export of a GGUF model (`edgebench-onnx`) through the crate
//! `ort` with `load-dynamic`. No binaries are downloaded at build time: the shared library is the one shipped in the
//! `onnxruntime` wheel (fetched by the CLI with `pip download`, SHA-256 pinned and cached like models) or a file the
//! user names (`--backend-opt ort_lib=PATH`).
//!
//! Execution providers: `--device cpu` runs the CPU provider; `cuda[:N]`, `openvino[:CPU|GPU|NPU]` (OpenVINO's own
//! build of ONNX Runtime, `library`), `qnn[:htp|gpu|cpu]` (the QNN plugin registered with the default library),
//! `coreml` and `directml` register that provider with errors on failure *and* `session.disable_cpu_ep_fallback=1`,
//! so a session whose nodes would fall back to the CPU is refused — a skipped cell naming the reason and carrying the
//! provider's coverage (`coverage`) — never measured as that device, unless `allow_cpu_fallback=true` labels it
//! partial. Accelerators default to the primitive graph at `accuracy_level=1`; QNN and OpenVINO's NPU run static
//! shapes (`window`), and QNN's HTP reads the graph it prepared at an earlier load from a cached context binary
//! (`context`). Options: see [`OrtOptions`]; `accuracy_level=4` (the CPU provider's default) quantizes
//! activations to int8 as llama.cpp and the native backend do, but is not batch-consistent (see `ExportOptions`);
//! `graph=fused` (the CPU provider's default) is the graph ONNX Runtime's own model builder writes (see
//! `GraphVariant`); `genai_model=DIR` runs a model onnxruntime-genai's builder wrote instead of the export, for
//! comparison (see [`genai`]).

mod context;
mod coverage;
pub mod genai;
mod kv;
mod library;
pub mod probe;
mod qdq;
mod window;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use edgebench_core::{
    BackendError, BackendFacts, DeviceRequest, Loaded, LoadedModel, ModelSpec, Preparation, Request, Rows, Session,
    TypedBackend,
};
use edgebench_onnx::backend::{loaded_fingerprint, prepare_export, Step};
use edgebench_onnx::io::{self, GraphFacts, GraphVariant};
use edgebench_onnx::ExportOptions;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, Tensor};
use serde::Deserialize;

pub use library::{providers, LibrarySource, ORT_VERSION_PINNED};

/// The `ort` crate this backend is built on.
pub const ORT_CRATE_VERSION: &str = "ort 2.0.0-rc.15 (load-dynamic)";

/// The ONNX Runtime backend factory.
pub struct OrtBackend {
    cache_root: PathBuf,
    library: LibrarySource,
}

impl OrtBackend {
    /// A backend whose exports are cached under `cache_root` and whose library comes from `library`.
    pub fn new(cache_root: PathBuf, library: LibrarySource) -> Self {
        Self { cache_root, library }
    }
}

/// The ort backend's options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrtOptions {
    /// `accuracy_level` of the exported `MatMulNBits` nodes (0 unset, 1 f32, 2 f16, 3 bf16, 4 int8 activations;
    /// absent: 4 on the CPU provider, as ONNX Runtime's own toolchain, and 1 on an accelerator, whose toolchain
    /// decides its own arithmetic).
    pub accuracy_level: Option<u8>,
    /// The ONNX Runtime shared library to load instead of the pinned wheel's.
    pub ort_lib: Option<PathBuf>,
    /// ONNX Runtime's intra-op spinning (absent: ORT's own default, on).
    pub spinning: Option<Spinning>,
    /// Which exported graph runs: `fused` (ONNX Runtime's contrib operators, as its own model builder writes: the
    /// default on the CPU provider) or `primitive` (standard operators, the graph tract runs: the default on
    /// OpenVINO and QNN, which do not take the contrib operators).
    pub graph: Option<GraphVariant>,
    /// How the KV cache passes between calls (absent: `shared` on the fused graph, `copy` on the primitive one).
    pub kv_buffer: Option<KvBuffer>,
    /// A directory onnxruntime-genai's model builder wrote (`genai_config.json` and its graph): run that model
    /// instead of edgebench's export of the GGUF, whose tokenizer still feeds it. Its weights are the builder's,
    /// so the weight check says they differ; `accuracy_level` and `graph` are then the builder's own.
    pub genai_model: Option<PathBuf>,
    /// On an accelerator: measure the graph even when its provider leaves nodes to ONNX Runtime's CPU provider (the
    /// cell is then labelled `partial: N% on <device>`); by default such a graph is a skipped cell with its coverage.
    pub allow_cpu_fallback: bool,
    /// OpenVINO's `precision` for its device (`FP32`, `FP16`, `ACCURACY`; absent: OpenVINO's own default).
    pub openvino_precision: Option<String>,
    /// OpenVINO's compile cache (`cache_dir`, beside the export, one folder per OpenVINO device): a load reads the
    /// compiled graph an earlier load wrote instead of compiling again, as OpenVINO's model caching does for its own
    /// applications. Absent: off, ONNX Runtime's default, so every load compiles (and the load time says so).
    pub openvino_cache: Option<bool>,
    /// The QNN execution provider plugin library to register instead of the pinned `onnxruntime-qnn` wheel's.
    pub qnn_lib: Option<PathBuf>,
    /// Static shapes with a KV window of this many positions, one token per call (see `window`); 0 keeps the
    /// dynamic shapes. Absent: [`DEFAULT_WINDOW`] on QNN and OpenVINO's NPU, which compile static graphs only,
    /// dynamic elsewhere.
    pub static_window: Option<usize>,
    /// QNN's HTP: run float graphs in fp16 (`enable_htp_fp16_precision`, default true: HTP has no f32 arithmetic).
    pub qnn_htp_fp16: Option<bool>,
    /// Export RMS norms that stay within fp16's range (see `ExportOptions::fp16_safe_norm`; absent: on for QNN's
    /// primitive graph, since its HTP runs float graphs in fp16, off elsewhere).
    pub fp16_safe_norm: Option<bool>,
    /// QNN's `soc_model` and `htp_arch`, which chip the HTP graph is prepared for (default 60 and 75; QNN's ids).
    pub qnn_soc_model: Option<u32>,
    /// See `qnn_soc_model`.
    pub qnn_htp_arch: Option<u32>,
    /// QNN context binaries (ONNX Runtime's EPContext model, see `context`): the first load prepares the graph and
    /// writes the prepared context beside the export, later loads read it, as QNN's deployment flow does. Absent: on
    /// for QNN's HTP; `false` prepares the graph at every load (ONNX Runtime's default).
    pub qnn_context: Option<bool>,
    /// The QDQ variant (see `qdq`): the 4-bit products as int4 blocks of the file's codes with calibrated uint16
    /// activations, the form QNN's HTP runs weight products in (it takes no `MatMulNBits`). Primitive graph only.
    /// Absent: on for QNN's HTP, off elsewhere.
    pub qdq: Option<bool>,
}

/// QNN's HTP: the `soc_model` and `htp_arch` a graph is prepared for unless the options say otherwise (QNN's ids).
pub const QNN_SOC_MODEL: u32 = 60;
/// See [`QNN_SOC_MODEL`].
pub const QNN_HTP_ARCH: u32 = 75;

/// The static KV window on QNN and OpenVINO's NPU unless `static_window` says otherwise: enough for the standard
/// suite's 512-token prompt and 128 generated tokens.
pub const DEFAULT_WINDOW: usize = 1024;

/// The `kv_buffer` option: how the KV cache passes from one call to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvBuffer {
    /// One preallocated buffer per layer for K and one for V, bound (IO binding) as both the past input and the
    /// present output, so `GroupQueryAttention` appends the new positions in place — onnxruntime-genai's
    /// `past_present_share_buffer`. Fused graph only; the buffer grows by doubling when a call outruns it.
    Shared,
    /// Each call's present outputs, newly allocated by ONNX Runtime, are handed back as the next call's past inputs
    /// (the operator copies the past into them).
    Copy,
}

/// Whether a device runs on an accelerator's provider (whose defaults differ from the CPU provider's).
fn accelerator(device: &DeviceRequest) -> bool {
    matches!(device.kind.as_str(), "openvino" | "qnn")
}

impl OrtOptions {
    /// The graph that runs on `device`.
    fn graph_for(&self, device: &DeviceRequest) -> GraphVariant {
        self.graph.unwrap_or(if accelerator(device) { GraphVariant::Primitive } else { GraphVariant::Fused })
    }

    /// The `MatMulNBits` accuracy level on `device`.
    fn accuracy_for(&self, device: &DeviceRequest) -> u8 {
        self.accuracy_level.unwrap_or(if accelerator(device) { 1 } else { 4 })
    }

    /// Whether the exported norms are fp16-safe on `device`.
    fn fp16_safe_norm_for(&self, device: &DeviceRequest) -> bool {
        self.fp16_safe_norm.unwrap_or(device.kind == "qnn" && self.graph_for(device) == GraphVariant::Primitive)
    }

    /// Whether the graph on `device` is the QDQ variant.
    fn qdq_for(&self, device: &DeviceRequest) -> bool {
        self.qdq.unwrap_or(
            device.kind == "qnn"
                && device.target.as_deref() == Some("htp")
                && self.graph_for(device) == GraphVariant::Primitive
                && self.genai_model.is_none(),
        )
    }

    /// Whether loads on `device` read and write QNN context binaries.
    fn qnn_context_for(&self, device: &DeviceRequest) -> bool {
        device.kind == "qnn" && self.qnn_context.unwrap_or(device.target.as_deref() == Some("htp"))
    }

    /// The static KV window on `device`, if it runs static shapes.
    fn window_for(&self, device: &DeviceRequest) -> Option<usize> {
        let needs_static =
            device.kind == "qnn" || (device.kind == "openvino" && device.target.as_deref() == Some("NPU"));
        match self.static_window {
            Some(0) => None,
            Some(w) => Some(w),
            None => needs_static.then_some(DEFAULT_WINDOW),
        }
    }

    /// The KV passing this graph runs with, or why the combination cannot run.
    fn kv(&self, device: &DeviceRequest) -> Result<KvBuffer, BackendError> {
        if self.window_for(device).is_some() && self.graph_for(device) != GraphVariant::Primitive {
            return Err(unsupported(format!(
                "static shapes (static_window; on {device} by default, which compiles static graphs only) need \
                 graph=primitive"
            )));
        }
        match (self.graph_for(device), self.kv_buffer) {
            (GraphVariant::Primitive, Some(KvBuffer::Shared)) => Err(unsupported(
                "ort option kv_buffer=shared needs graph=fused (the primitive graph concatenates its KV cache)",
            )),
            (GraphVariant::Primitive, _) => Ok(KvBuffer::Copy),
            (GraphVariant::Fused, kv) => Ok(kv.unwrap_or(KvBuffer::Shared)),
        }
    }
}

/// The `spinning` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spinning {
    /// Threads spin between operators.
    On,
    /// Threads sleep between operators.
    Off,
}

pub(crate) fn unsupported(m: impl Into<String>) -> BackendError {
    BackendError::Unsupported(m.into())
}

fn export_options(o: &OrtOptions, device: &DeviceRequest) -> Result<ExportOptions, BackendError> {
    if let Some(p) = &o.openvino_precision {
        if !["FP32", "FP16", "ACCURACY"].contains(&p.as_str()) {
            return Err(unsupported(format!("ort option openvino_precision={p} (FP32, FP16 or ACCURACY)")));
        }
        if device.kind != "openvino" {
            return Err(unsupported(format!("ort option openvino_precision is for --device openvino, not {device}")));
        }
    }
    if o.openvino_cache.is_some() && device.kind != "openvino" {
        return Err(unsupported(format!("ort option openvino_cache is for --device openvino, not {device}")));
    }
    let qnn_opts = o.qnn_htp_fp16.is_some()
        || o.qnn_soc_model.is_some()
        || o.qnn_htp_arch.is_some()
        || o.qnn_lib.is_some()
        || o.qnn_context.is_some();
    if qnn_opts && device.kind != "qnn" {
        return Err(unsupported(format!("ort options qnn_* are for --device qnn, not {device}")));
    }
    if o.qdq_for(device) && o.graph_for(device) != GraphVariant::Primitive {
        return Err(unsupported("ort option qdq needs graph=primitive"));
    }
    if o.qdq_for(device) && o.genai_model.is_some() {
        return Err(unsupported("ort option qdq rewrites edgebench's export, not a genai_model"));
    }
    if o.fp16_safe_norm_for(device) && o.graph_for(device) != GraphVariant::Primitive {
        return Err(unsupported(
            "ort option fp16_safe_norm needs graph=primitive (the fused graph's norms are ONNX Runtime's own operators)",
        ));
    }
    match o.accuracy_for(device) {
        v @ 0..=4 => Ok(ExportOptions {
            accuracy_level: v,
            graph: o.graph_for(device),
            untied_head: false,
            fp16_safe_norm: o.fp16_safe_norm_for(device),
        }),
        v => Err(unsupported(format!("ort option accuracy_level={v} (0, 1, 2, 3 or 4)"))),
    }
}

/// The execution provider a device asks for, by ONNX Runtime's name.
fn provider_for(device: &DeviceRequest) -> Result<&'static str, BackendError> {
    Ok(match device.kind.as_str() {
        "cpu" => "CPUExecutionProvider",
        "cuda" => "CUDAExecutionProvider",
        "openvino" => "OpenVINOExecutionProvider",
        "qnn" => "QNNExecutionProvider",
        "coreml" => "CoreMLExecutionProvider",
        "directml" => "DmlExecutionProvider",
        other => return Err(unsupported(format!("the ort backend has no execution provider for device {other}"))),
    })
}

impl TypedBackend for OrtBackend {
    type Options = OrtOptions;
    type Prepared = PathBuf;
    const NAME: &'static str = "ort";

    fn check(&self, _model: &ModelSpec, req: Request<'_, OrtOptions>) -> Result<(), BackendError> {
        export_options(req.options, req.device)?;
        req.options.kv(req.device)?;
        if let Some(dir) = &req.options.genai_model {
            if req.options.graph.is_some() || req.options.accuracy_level.is_some() {
                return Err(unsupported(
                    "ort options graph and accuracy_level choose edgebench's export; with genai_model the graph and \
                     its accuracy levels are the builder's",
                ));
            }
            genai::GenaiModel::read(dir)?;
        }
        let provider = provider_for(req.device)?;
        let lib = library::init(&self.library, req.options.ort_lib.as_deref(), req.device).map_err(unsupported)?;
        if req.device.kind == "qnn" {
            library::qnn_plugin(&self.library, req.options.qnn_lib.as_deref(), lib).map_err(unsupported)?;
        }
        match providers(lib) {
            Ok(have) if have.iter().any(|p| p == provider) => Ok(()),
            Ok(have) => Err(unsupported(format!(
                "this ONNX Runtime library has no {provider} (it offers {}); no CPU fallback is measured as {}",
                have.join(", "),
                req.device
            ))),
            Err(e) => Err(unsupported(format!("listing ONNX Runtime's execution providers: {e}"))),
        }
    }

    fn prepare(&self, model: &ModelSpec, req: Request<'_, OrtOptions>) -> Result<Preparation<PathBuf>, BackendError> {
        if let Some(dir) = &req.options.genai_model {
            let g = genai::GenaiModel::read(dir)?;
            g.check_against(&model.path)?;
            return Ok(Preparation {
                value: g.graph_path,
                notes: vec![format!(
                    "onnxruntime-genai model {} (no export): vocabulary, layers, KV heads and head width checked \
                     against the GGUF",
                    dir.display()
                )],
            });
        }
        let mut p = prepare_export(&self.cache_root, model, export_options(req.options, req.device)?)?;
        if req.options.qdq_for(req.device) {
            let lib = library::init(&self.library, req.options.ort_lib.as_deref(), req.device).map_err(unsupported)?;
            let (path, note) = qdq::prepare(lib, &p.value, &model.path, req.threads)
                .map_err(|m| BackendError::Load { path: p.value.display().to_string(), message: m })?;
            p.notes.push(note);
            p.value = path;
        }
        Ok(p)
    }

    fn load(&self, _model: &ModelSpec, req: Request<'_, OrtOptions>, path: &PathBuf) -> Loaded {
        let eo = export_options(req.options, req.device)?;
        let kv = req.options.kv(req.device)?;
        let provider = provider_for(req.device)?;
        let lib = library::init(&self.library, req.options.ort_lib.as_deref(), req.device).map_err(unsupported)?;
        let qnn = match req.device.kind.as_str() {
            "qnn" => {
                Some(library::qnn_plugin(&self.library, req.options.qnn_lib.as_deref(), lib).map_err(unsupported)?)
            }
            _ => None,
        };
        let ov_cache = (req.options.openvino_cache == Some(true)).then(|| openvino_cache_dir(path, req.device));
        let cached_before = ov_cache.as_deref().map(files_in);
        let placement = library::Placement {
            device: req.device,
            threads: req.threads,
            allow_cpu_fallback: req.options.allow_cpu_fallback,
            openvino_precision: req.options.openvino_precision.as_deref(),
            openvino_cache: ov_cache.as_deref(),
            qnn_htp: Some((
                req.options.qnn_htp_fp16.unwrap_or(true),
                req.options.qnn_soc_model.unwrap_or(QNN_SOC_MODEL),
                req.options.qnn_htp_arch.unwrap_or(QNN_HTP_ARCH),
            )),
        };
        let window = req.options.window_for(req.device);
        let path: &Path = path;
        let load_err = |m: String| BackendError::Load { path: path.display().to_string(), message: m };
        let threads = req.threads;
        let spinning = req.options.spinning.map(|v| if v == Spinning::On { "on" } else { "off" });
        let acc = eo.accuracy_level.to_string();
        let build = |placement: &library::Placement<'_>,
                     context_out: Option<&Path>|
         -> Result<ort::session::builder::SessionBuilder, String> {
            let s = |e: ort::Error<ort::session::builder::SessionBuilder>| e.to_string();
            let mut b = library::session_builder(lib, req.device.kind == "cpu")
                .map_err(|e| e.to_string())?
                // ORT_ENABLE_ALL, ONNX Runtime's own default and onnxruntime-genai's: the ort crate's `Level3` is
                // ORT_ENABLE_LAYOUT (3), not ORT_ENABLE_ALL (99).
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(s)?
                .with_intra_threads(threads)
                .map_err(s)?
                .with_inter_threads(1)
                .map_err(s)?
                .with_parallel_execution(false)
                .map_err(s)?
                // The exported graph has no QDQ pairs for ORT to fuse into MatMulNBits, but the fusion's accuracy
                // level is set anyway, to the graph's own, so no default can quantize activations unannounced.
                .with_config_entry("session.qdq_matmulnbits_accuracy_level", &acc)
                .map_err(s)?;
            if let Some(v) = spinning {
                b = b
                    .with_config_entry("session.intra_op.allow_spinning", if v == "on" { "1" } else { "0" })
                    .map_err(s)?;
            }
            for (dim, size) in window.map(window::overrides).into_iter().flatten() {
                b = b.with_dimension_override(dim, size).map_err(s)?;
            }
            if req.device.kind != "cpu" {
                b = library::register(b, lib, placement).map_err(|e| e.to_string())?;
            }
            if let Some(out) = context_out {
                b = b
                    .with_config_entry("ep.context_enable", "1")
                    .map_err(s)?
                    .with_config_entry("ep.context_file_path", out.display().to_string())
                    .map_err(s)?
                    .with_config_entry("ep.context_embed_mode", "0")
                    .map_err(s)?;
            }
            Ok(b)
        };
        let mark = library::log_mark();
        let said = |mark: usize| {
            let e = library::errors_since(mark);
            if e.is_empty() {
                String::new()
            } else {
                format!("; ONNX Runtime logged: {}", e.join(" | "))
            }
        };
        let context = req.options.qnn_context_for(req.device).then(|| {
            context::Entry::new(
                path,
                req.device.target.as_deref().unwrap_or("default"),
                context_key(path, lib, qnn, &placement, window),
            )
        });
        // A cached context's record says whether the provider took the whole graph, so a refused fallback needs no
        // preparation; otherwise the load reads the prepared graph, or prepares it again if that fails.
        let mut stale = None;
        let mut hit = None;
        if let Some((entry, record)) = context.as_ref().and_then(|e| e.read().map(|r| (e, r))) {
            if !record.coverage.complete() && !req.options.allow_cpu_fallback {
                return Err(unsupported(fallback_refused(
                    provider,
                    req.device,
                    &format!(
                        "{}, as recorded when QNN prepared the cached context {}",
                        record.coverage.summary(),
                        entry.dir().display()
                    ),
                    "",
                )));
            }
            match build(&placement, None).and_then(|mut b| b.commit_from_file(entry.model()).map_err(|e| e.to_string()))
            {
                Ok(s) => hit = Some((s, entry.hit_note(&record), record.coverage)),
                Err(e) => {
                    entry.discard();
                    stale = Some(e);
                }
            }
        }
        let (session, coverage, context_note) = match hit {
            Some((session, note, coverage)) => (session, Some(coverage), Some(note)),
            None => {
                let staging = context.as_ref().map(context::Entry::staging).transpose().map_err(|e| {
                    load_err(format!("making a folder for QNN's context binary beside the export: {e}"))
                })?;
                let mut builder = match build(&placement, staging.as_ref().map(context::Staging::model).as_deref()) {
                    Ok(b) => b,
                    Err(e) if req.device.kind == "cpu" => return Err(load_err(e)),
                    Err(e) => return Err(unsupported(format!("{provider} on {}: {e}{}", req.device, said(mark)))),
                };
                let started = std::time::Instant::now();
                let session = match builder.commit_from_file(path) {
                    Ok(s) => s,
                    Err(e) if req.device.kind == "cpu" => return Err(load_err(e.to_string())),
                    Err(e) if req.options.allow_cpu_fallback || !e.to_string().contains("fallback to CPU EP") => {
                        return Err(unsupported(format!("{provider} on {}: {e}{}", req.device, said(mark))))
                    }
                    Err(e) => {
                        // Which nodes it did not take: the same graph again, the fallback allowed, only to read the
                        // partitioning (not measured). Its prepared context is cached with that coverage, so the next
                        // refusal needs no preparation and a run allowing the fallback reads it.
                        drop(staging);
                        let staging = context.as_ref().and_then(|e| e.staging().ok());
                        let started = std::time::Instant::now();
                        let mixed = build(
                            &library::Placement { allow_cpu_fallback: true, ..placement },
                            staging.as_ref().map(context::Staging::model).as_deref(),
                        )
                        .and_then(|mut b| b.commit_from_file(path).map_err(|e| e.to_string()));
                        let prepare_s = started.elapsed().as_secs_f64();
                        let coverage = mixed.and_then(|s| coverage_of(&s, path, provider, req.device));
                        if let (Some(entry), Some(staging), Ok(c)) = (&context, staging, &coverage) {
                            let _ = entry.commit(staging, prepare_s, c.clone());
                        }
                        let report = coverage.map_or_else(|e| format!("coverage unknown: {e}"), |c| c.summary());
                        return Err(unsupported(fallback_refused(
                            provider,
                            req.device,
                            &report,
                            &format!(". ONNX Runtime: {e}{}", said(mark)),
                        )));
                    }
                };
                let prepare_s = started.elapsed().as_secs_f64();
                let coverage = match req.device.kind.as_str() {
                    "cpu" => None,
                    _ => Some(coverage_of(&session, path, provider, req.device).map_err(load_err)?),
                };
                let note = match (&context, staging, &coverage) {
                    (Some(entry), Some(staging), Some(c)) => Some(match entry.commit(staging, prepare_s, c.clone()) {
                        Ok(r) => entry.miss_note(&r, stale.as_deref()),
                        Err(e) => format!(
                            "QNN context binary not cached ({e}): the load prepared the graph in {prepare_s:.1} s"
                        ),
                    }),
                    _ => None,
                };
                (session, coverage, note)
            }
        };
        let GraphSource { graph: g, desc: graph_desc, version: source_version, converted, mut notes, variance, origin } =
            match &req.options.genai_model {
                None => export_source(&session, path, &acc, eo.accuracy_level, kv)?,
                Some(dir) => genai_source(dir, path, kv)?,
            };
        notes.insert(
            if origin == Origin::Export { 1 } else { 0 },
            format!(
                "graph optimization ORT_ENABLE_ALL, intra-op threads {threads}, inter-op 1, sequential; intra-op \
                 spinning {}; session.qdq_matmulnbits_accuracy_level={acc}",
                spinning.unwrap_or("ORT default (on)")
            ),
        );
        notes.extend(variance.as_ref().map(|why| format!("batch-variant: {why}")));
        if let Some(c) = &coverage {
            notes.insert(0, format!("coverage: {}", c.summary()));
        }
        notes.extend(accelerator_notes(req.device, req.options, eo.graph, eo.accuracy_level));
        if let (Some(dir), Some(before)) = (&ov_cache, cached_before) {
            notes.push(compile_cache_note(dir, before, files_in(dir)));
        }
        notes.extend(context_note);
        if eo.fp16_safe_norm {
            notes.push(format!(
                "fp16-safe RMS norms: each norm's input is divided by {} before it is squared and its epsilon by the \
                 square (the same function, exact in binary floating point), so the mean of squares stays within \
                 fp16's range (--backend-opt ort:fp16_safe_norm=false exports the plain norms)",
                edgebench_onnx::export::FP16_SAFE_NORM_SCALE
            ));
        }
        if let Some(w) = window {
            notes.push(format!(
                "static shapes: one token per call (prompts too), the KV cache a fixed window of {w} positions with the \
                 empty ones masked (symbolic dimensions fixed by ONNX Runtime: seq=1, past={w}, past+seq={}, rows=1)",
                w + 1
            ));
        }
        let mut versions =
            vec![format!("onnxruntime {} ({})", lib.version, lib.source), ORT_CRATE_VERSION.into(), source_version];
        if let Some((qnn_path, origin)) = qnn {
            versions.push(format!("QNN execution provider plugin {} ({origin})", qnn_path.display()));
        }
        let partial = coverage.as_ref().filter(|c| !c.complete()).map(|c| {
            format!(
                "partial: {:.1}% of nodes on {} (the rest on ONNX Runtime's CPU provider); ",
                100.0 * c.node_share(),
                req.device
            )
        });
        let facts = BackendFacts {
            versions,
            kernel_path: format!(
                "{}onnxruntime {provider}{}; {graph_desc}; KV {}",
                partial.unwrap_or_default(),
                req.device.target.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
                match (window, kv) {
                    (Some(w), _) => format!("static window of {w} positions, one token per call"),
                    (None, KvBuffer::Shared) => "shared buffer".into(),
                    (None, KvBuffer::Copy) => "copied".into(),
                }
            ),
            threads,
            vocab_size: g.vocab,
            context_length: g.n_ctx,
            converted,
            notes,
            kv_cache: Some("f32".into()),
            coverage,
            weights: None,
        };
        Ok(Box::new(OrtModel {
            session: Mutex::new(session),
            graph: g,
            facts,
            path: path.to_path_buf(),
            batch_variance: variance,
            kv,
            origin,
            window,
        }))
    }

    fn devices(&self) -> Vec<String> {
        match library::init(&self.library, None, &DeviceRequest::cpu())
            .map_err(|e| e.to_string())
            .and_then(|lib| providers(lib).map_err(|e| e.to_string()))
        {
            Ok(p) => p
                .iter()
                .map(|name| {
                    let dev = match name.as_str() {
                        "CPUExecutionProvider" => "cpu",
                        "CUDAExecutionProvider" => "cuda:0",
                        "OpenVINOExecutionProvider" => "openvino",
                        "QNNExecutionProvider" => "qnn",
                        "CoreMLExecutionProvider" => "coreml",
                        "DmlExecutionProvider" => "directml",
                        _ => return format!("({name}: not driven by edgebench)"),
                    };
                    format!("{dev} ({name})")
                })
                .collect(),
            Err(e) => vec![format!("(no ONNX Runtime library: {e})")],
        }
    }

    fn versions(&self) -> Vec<String> {
        vec![
            ORT_CRATE_VERSION.into(),
            format!(
                "onnxruntime {ORT_VERSION_PINNED} wheel unless ort_lib names another (openvino: the onnxruntime-openvino \
                 wheel's; qnn: the onnxruntime-qnn plugin on the default)"
            ),
        ]
    }
}

/// The share of the graph `provider` took in `session`, weighed by the weight bytes of the file at `path`.
fn coverage_of(
    session: &ort::session::Session,
    path: &Path,
    provider: &str,
    device: &DeviceRequest,
) -> Result<edgebench_core::ProviderCoverage, String> {
    let subgraphs =
        coverage::assignment(session).map_err(|e| format!("reading ONNX Runtime's node assignment: {e}"))?;
    let weights = edgebench_onnx::scan::weight_bytes(path).map_err(|e| e.to_string())?;
    // The plugin QNN provider calls itself `QNN`; the built-in one `QNNExecutionProvider`.
    let name =
        if subgraphs.iter().any(|s| s.provider == library::QNN_PLUGIN_EP) { library::QNN_PLUGIN_EP } else { provider };
    Ok(coverage::summarize(&subgraphs, name, &device.to_string(), &weights))
}

/// OpenVINO's compile cache for the export at `path` on `device`: a folder beside the export, per OpenVINO device.
fn openvino_cache_dir(path: &Path, device: &DeviceRequest) -> PathBuf {
    let target = device.target.as_deref().unwrap_or("default");
    path.parent().unwrap_or(Path::new(".")).join(format!("openvino-cache-{target}"))
}

/// The skipped cell's reason when `provider` leaves nodes to the CPU and the fallback is refused.
fn fallback_refused(provider: &str, device: &DeviceRequest, report: &str, detail: &str) -> String {
    format!(
        "{provider} could not take the whole graph on {device} (CPU fallback disabled, so it is not measured; \
         --backend-opt ort:allow_cpu_fallback=true measures the mixed graph): {report}{detail}"
    )
}

/// Every setting a prepared QNN graph depends on, spelled out: the key of its context cache entry.
fn context_key(
    export: &Path,
    lib: &library::Loaded,
    qnn: Option<&(PathBuf, String)>,
    placement: &library::Placement<'_>,
    window: Option<usize>,
) -> String {
    let file = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => format!("{} ({} bytes, modified {:?})", p.display(), m.len(), m.modified().ok()),
        Err(_) => p.display().to_string(),
    };
    format!(
        "export {}; onnxruntime {} {}; QNN plugin {}; device {}; static window {}; HTP (fp16, soc_model, htp_arch) \
         {:?}",
        file(export),
        lib.version,
        file(&lib.path),
        qnn.map(|(p, _)| file(p)).unwrap_or_default(),
        placement.device,
        window.map_or("none".into(), |w| w.to_string()),
        placement.qnn_htp
    )
}

/// Files in `dir` (0 when it does not exist yet).
fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.flatten().filter(|e| e.path().is_file()).count())
}

/// Whether this load compiled the graph or read what an earlier load compiled, from the cache folder's files
/// before and after it.
fn compile_cache_note(dir: &Path, before: usize, after: usize) -> String {
    let what = match (before, after) {
        (0, 0) => "nothing written: OpenVINO did not cache this graph, so the load compiled it".to_string(),
        (b, a) if a > b => format!("a miss: the load compiled the graph and wrote {} file(s)", a - b),
        (b, _) => format!("a hit: the load read the compiled graph from the {b} file(s) an earlier load wrote"),
    };
    format!(
        "OpenVINO compile cache {} (--backend-opt ort:openvino_cache=true), at the load these facts come from: \
         {what}; load times include the cache's reads and writes",
        dir.display()
    )
}

/// What a reader of an accelerator's result must know about how it ran.
fn accelerator_notes(device: &DeviceRequest, o: &OrtOptions, graph: GraphVariant, acc: u8) -> Vec<String> {
    let mut notes = Vec::new();
    if !accelerator(device) {
        return notes;
    }
    if o.graph.is_none() {
        notes.push(format!(
            "graph {} (the default on {}: the fused graph's com.microsoft operators are ONNX Runtime's own CPU \
             kernels, which this provider does not take)",
            graph.name(),
            device.kind
        ));
    }
    if o.qdq_for(device) {
        if o.qdq.is_none() {
            notes.push(
                "QDQ variant (the default on QNN's HTP, which runs weight products only quantized; \
                 --backend-opt ort:qdq=false runs the float graph, whose 4-bit products the HTP leaves to the CPU)"
                    .into(),
            );
        }
    } else if o.accuracy_level.is_none() {
        notes.push(format!(
            "MatMulNBits accuracy_level={acc} (the default on an accelerator: its toolchain, not ONNX Runtime's CPU \
             kernel, decides the arithmetic)"
        ));
    }
    match device.kind.as_str() {
        "openvino" => notes.push(match &o.openvino_precision {
            Some(p) => format!(
                "OpenVINO precision {p} (--backend-opt ort:openvino_precision); num_of_threads = the cell's threads"
            ),
            None => {
                "OpenVINO precision: its own default for the device (which may trade accuracy for speed; \
                     --backend-opt ort:openvino_precision=ACCURACY turns that off); num_of_threads = the cell's threads"
                    .into()
            }
        }),
        "qnn" => {
            if std::env::consts::ARCH == "x86_64" {
                notes.push(
                    "emulated: QNN's backends on x86-64 run the accelerator's graph in a software model of it, so \
                     its speed says nothing about the real device (compare its drift, not its speed)"
                        .into(),
                );
            }
            if device.target.as_deref() == Some("htp") {
                notes.push(format!(
                    "QNN HTP options: enable_htp_fp16_precision={} (float graphs in fp16), soc_model={}, htp_arch={} \
                     (the chip the graph is prepared for, QNN's ids; --backend-opt ort:qnn_htp_fp16, qnn_soc_model, \
                     qnn_htp_arch)",
                    u8::from(o.qnn_htp_fp16.unwrap_or(true)),
                    o.qnn_soc_model.unwrap_or(QNN_SOC_MODEL),
                    o.qnn_htp_arch.unwrap_or(QNN_HTP_ARCH)
                ));
            }
        }
        _ => {}
    }
    notes
}

/// What the graph a model runs says about itself, for the results.
struct GraphSource {
    graph: GraphFacts,
    /// The graph's part of `kernel_path`.
    desc: String,
    /// Who wrote the graph (a `versions` entry).
    version: String,
    converted: Option<String>,
    notes: Vec<String>,
    variance: Option<String>,
    origin: Origin,
}

/// How the KV cache passes between calls, for the notes.
fn kv_note(kv: KvBuffer, n_ctx: usize) -> String {
    match kv {
        KvBuffer::Shared => format!(
            "KV cache f32 in one preallocated buffer per layer for K and for V, bound as both past input and present \
             output (onnxruntime-genai's past_present_share_buffer), {} positions at first, doubled when a call \
             outruns it",
            kv::initial_capacity(n_ctx)
        ),
        KvBuffer::Copy => {
            "KV cache f32, not shared (kv_buffer=copy): GroupQueryAttention appends to a copy of the past \
            each step and the present outputs are handed back as the next call's past inputs"
                .to_string()
        }
    }
}

/// edgebench's export, described from the metadata ONNX Runtime read from the file it loaded (decoding the file
/// again would double the peak memory of the load).
fn export_source(
    session: &ort::session::Session,
    path: &Path,
    acc: &str,
    accuracy_level: u8,
    kv: KvBuffer,
) -> Result<GraphSource, BackendError> {
    let load_err = |m: String| BackendError::Load { path: path.display().to_string(), message: m };
    let meta = session.metadata().map_err(|e| load_err(e.to_string()))?;
    let file =
        edgebench_onnx::fingerprint::file_facts_from(|k| meta.custom(k), path).map_err(|e| load_err(e.to_string()))?;
    let qdq_about = meta.custom(qdq::META);
    drop(meta);
    let g = &file.graph;
    let graph_note = match g.variant {
        GraphVariant::Fused => format!(
            "fused graph: GroupQueryAttention (rotary inside, K/V heads not expanded), SkipSimplifiedLayerNormalization \
             (residual adds absorbed), one MatMulNBits for Q/K/V and one for gate/up; {}",
            kv_note(kv, g.n_ctx)
        ),
        GraphVariant::Primitive => "primitive graph: standard ONNX operators (RMSNorm, rotary and attention unfused, \
            K/V heads expanded); KV cache f32: Concat of past and new each step; the present outputs are handed back \
            as the next call's past inputs"
            .into(),
    };
    Ok(GraphSource {
        desc: match &qdq_about {
            Some(_) => format!(
                "{} graph, QDQ variant (int4 blocks with uint16 activations; float products MatMul)",
                g.variant.name()
            ),
            None => format!("{} graph; MatMulNBits accuracy_level={acc}", g.variant.name()),
        },
        notes: vec![
            format!("weights carried as: {}", file.carried),
            match qdq_about {
                Some(q) => format!("QDQ variant: {q}"),
                None => "no MatMulInteger or QDQ nodes in the exported graph (the u8×s8 AVX2 overflow of \
                         MatMulInteger cannot arise)"
                    .into(),
            },
            graph_note,
        ],
        converted: (!file.converted.is_empty()).then(|| file.converted.join("; ")),
        variance: batch_variance(accuracy_level),
        origin: Origin::Export,
        graph: file.graph,
        version: file.exporter,
    })
}

/// A model onnxruntime-genai's builder wrote in `dir`, its graph at `path`.
fn genai_source(dir: &Path, path: &Path, kv: KvBuffer) -> Result<GraphSource, BackendError> {
    let m = genai::GenaiModel::read(dir)?;
    let summary = genai::GraphSummary::read(path)?;
    let logits = if summary.last_position_only {
        "logits: the builder's graph computes the last position's only (prune_lm_head), so a call asking for every \
         position's (the drift check) feeds its tokens one at a time"
    } else {
        "logits: the builder's graph computes every position's; edgebench keeps the rows it asked for"
    };
    Ok(GraphSource {
        desc: format!("onnxruntime-genai builder graph ({} nodes)", summary.nodes),
        version: format!("onnxruntime-genai model builder ({})", dir.display()),
        converted: Some(
            "weights re-quantized by onnxruntime-genai's model builder from the GGUF's values (not the file's tensors)"
                .into(),
        ),
        notes: vec![
            format!("onnxruntime-genai model builder's graph from {}: {}", dir.display(), summary.describe()),
            kv_note(kv, m.graph.n_ctx),
            logits.into(),
        ],
        variance: summary.int8_activations().then(|| batch_variance(4)).flatten(),
        origin: Origin::Genai { position_ids: m.position_ids, last_only: summary.last_position_only },
        graph: m.graph,
    })
}

struct OrtModel {
    session: Mutex<ort::session::Session>,
    graph: GraphFacts,
    facts: BackendFacts,
    path: PathBuf,
    batch_variance: Option<String>,
    kv: KvBuffer,
    origin: Origin,
    /// The static KV window, when the graph runs with static shapes.
    window: Option<usize>,
}

/// Where the graph a model runs came from, which decides its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// edgebench's export: `logits_index` picks the rows, the fused graph takes `seqlens_k` and
    /// `total_sequence_length`, the primitive one position ids and additive masks.
    Export,
    /// onnxruntime-genai's builder: `attention_mask` (and `position_ids` where its config lists them); logits for
    /// every position, or for the last one only (`last_only`: built with `prune_lm_head`).
    Genai { position_ids: bool, last_only: bool },
}

/// Why a graph at this accuracy level is batch-variant, if it is.
fn batch_variance(accuracy_level: u8) -> Option<String> {
    (accuracy_level == 4).then(|| {
        "ONNX Runtime's MatMulNBits with int8 activations (accuracy_level=4) computes a prompt's rows differently \
         from single tokens, so a prompt's logits differ from the same tokens fed one at a time (checked as \
         distributions: same top-1 token, small KL divergence)"
            .to_string()
    })
}

impl LoadedModel for OrtModel {
    fn facts(&self) -> BackendFacts {
        self.facts.clone()
    }

    fn weights_fingerprint(&self) -> Result<Option<(String, String)>, BackendError> {
        match self.origin {
            Origin::Export => loaded_fingerprint(&self.path, "ONNX Runtime"),
            Origin::Genai { .. } => Ok(Some((
                format!("sha256:{}", genai::files_sha256(&self.path)?),
                "not decoded: the weights onnxruntime-genai's model builder wrote (SHA-256 of its graph and data \
                 files)"
                    .into(),
            ))),
        }
    }

    fn batch_variance(&self) -> Option<String> {
        self.batch_variance.clone()
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError> {
        let kv = match self.kv {
            KvBuffer::Shared => {
                let session = self.session.lock().map_err(|_| runtime("a previous call panicked"))?;
                kv::Kv::shared(&session, &self.graph)?
            }
            KvBuffer::Copy => kv::Kv::handed(&self.graph)?,
        };
        let window = self.window.map(|w| window::Window::new(&self.graph, w)).transpose()?;
        Ok(Box::new(OrtSession { model: self, kv, window, pos: 0 }))
    }
}

/// A named graph input of `shape` holding `data`.
fn input<T: ort::value::PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static>(
    name: &str,
    shape: Vec<usize>,
    data: Vec<T>,
) -> Result<(String, DynValue), BackendError> {
    Ok((name.to_string(), Tensor::from_array((shape, data)).map_err(runtime)?.into_dyn()))
}

/// The inputs of edgebench's exported graphs for one call (everything but the KV cache).
fn export_inputs(g: &GraphFacts, st: Step) -> Result<Vec<(String, DynValue)>, BackendError> {
    let primitive = g.variant == GraphVariant::Primitive;
    let bias = primitive.then(|| st.bias());
    let sliding = g.sliding_window.filter(|_| primitive).map(|w| st.bias_sliding(w));
    let Step { ids, positions, rows: index, seq: n, total } = st;
    let mut inputs = vec![input(io::INPUT_IDS, vec![1, n], ids)?, input(io::LOGITS_INDEX, vec![index.len()], index)?];
    match bias {
        Some(bias) => {
            inputs.push(input(io::POSITION_IDS, vec![1, n], positions)?);
            inputs.push(input(io::ATTENTION_BIAS, vec![n, total], bias)?);
            if let Some(sliding) = sliding {
                inputs.push(input(io::ATTENTION_BIAS_SLIDING, vec![n, total], sliding)?);
            }
        }
        None => {
            inputs.push(input(io::SEQLENS_K, vec![1], vec![total as i32 - 1])?);
            inputs.push(input(io::TOTAL_SEQUENCE_LENGTH, vec![], vec![total as i32])?);
        }
    }
    Ok(inputs)
}

pub(crate) fn runtime(e: impl std::fmt::Display) -> BackendError {
    BackendError::Runtime(format!("onnxruntime: {e}"))
}

struct OrtSession<'a> {
    model: &'a OrtModel,
    kv: kv::Kv,
    /// Static shapes: the windowed cache (then `kv` is unused).
    window: Option<window::Window>,
    pos: usize,
}

impl OrtSession<'_> {
    /// One call of the graph: the logits of every new position (`all`) or of the last.
    fn call(&mut self, tokens: &[u32], all: bool) -> Result<Vec<f32>, BackendError> {
        let g = &self.model.graph;
        let st = Step::new(self.pos, tokens, all);
        let (n, total, n_rows) = (st.seq, st.total, st.rows.len());
        let (inputs, computed_rows) = match self.model.origin {
            Origin::Export => (export_inputs(g, st)?, n_rows),
            Origin::Genai { position_ids, last_only } => {
                let mut inputs = vec![
                    input(io::INPUT_IDS, vec![1, n], st.ids)?,
                    input(genai::ATTENTION_MASK, vec![1, total], vec![1i64; total])?,
                ];
                if position_ids {
                    inputs.push(input(io::POSITION_IDS, vec![1, n], st.positions)?);
                }
                (inputs, if last_only { 1 } else { n })
            }
        };
        let mut session = self.model.session.lock().map_err(|_| runtime("a previous call panicked"))?;
        let mut logits = self.kv.run(&mut session, g, inputs, self.pos, total)?;
        self.pos = total;
        if logits.len() != computed_rows * g.vocab {
            return Err(runtime(format!("{} logits for {computed_rows} rows", logits.len())));
        }
        if computed_rows > n_rows {
            logits.drain(..(computed_rows - n_rows) * g.vocab);
        }
        Ok(logits)
    }
}

impl Session for OrtSession<'_> {
    fn run(&mut self, tokens: &[u32], rows: Rows) -> Result<Vec<f32>, BackendError> {
        if let Some(w) = &mut self.window {
            let mut session = self.model.session.lock().map_err(|_| runtime("a previous call panicked"))?;
            let mut out = Vec::with_capacity(if rows == Rows::All { tokens.len() } else { 1 } * self.model.graph.vocab);
            for (i, &t) in tokens.iter().enumerate() {
                let logits = w.step(&mut session, &self.model.graph, t)?;
                self.pos += 1;
                if rows == Rows::All || i + 1 == tokens.len() {
                    out.extend(logits);
                }
            }
            return Ok(out);
        }
        if let (Origin::Genai { last_only: true, .. }, Rows::All) = (self.model.origin, rows) {
            let mut all = Vec::with_capacity(tokens.len() * self.model.graph.vocab);
            for t in tokens {
                all.extend(self.call(std::slice::from_ref(t), false)?);
            }
            return Ok(all);
        }
        self.call(tokens, rows == Rows::All)
    }

    fn position(&self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp16_safe_norms_are_the_default_on_qnns_primitive_graph_only() {
        let qnn = DeviceRequest::parse("qnn").unwrap();
        let d = OrtOptions::default();
        assert!(export_options(&d, &qnn).unwrap().fp16_safe_norm);
        assert!(!export_options(&d, &DeviceRequest::cpu()).unwrap().fp16_safe_norm);
        assert!(!export_options(&d, &DeviceRequest::parse("openvino").unwrap()).unwrap().fp16_safe_norm);

        // The fused graph on QNN (with dynamic shapes) is not refused for a default the user did not ask for.
        let fused = OrtOptions { graph: Some(GraphVariant::Fused), static_window: Some(0), ..OrtOptions::default() };
        assert!(!export_options(&fused, &qnn).unwrap().fp16_safe_norm);
        let asked = OrtOptions { fp16_safe_norm: Some(true), ..fused };
        assert!(export_options(&asked, &qnn).unwrap_err().to_string().contains("needs graph=primitive"));
    }

    #[test]
    fn openvino_cache_is_for_openvino_and_says_hit_or_miss() {
        let cached = OrtOptions { openvino_cache: Some(true), ..Default::default() };
        assert!(export_options(&cached, &DeviceRequest::parse("cpu").unwrap()).is_err());
        assert!(export_options(&cached, &DeviceRequest::parse("openvino").unwrap()).is_ok());
        let dir = Path::new("/c");
        assert!(compile_cache_note(dir, 0, 3).contains("a miss: the load compiled the graph and wrote 3 file(s)"));
        assert!(compile_cache_note(dir, 3, 3).contains("a hit: the load read the compiled graph from the 3 file(s)"));
        assert!(compile_cache_note(dir, 0, 0).contains("did not cache"));
    }

    #[test]
    fn the_qdq_variant_is_the_default_on_qnns_htp_only_and_needs_the_primitive_graph() {
        let dev = |d: &str| DeviceRequest::parse(d).unwrap();
        let d = OrtOptions::default();
        assert!(d.qdq_for(&dev("qnn")) && !d.qdq_for(&dev("qnn:gpu")) && !d.qdq_for(&dev("cpu")));
        assert!(!d.qdq_for(&dev("openvino:NPU")));
        let off = OrtOptions { qdq: Some(false), ..Default::default() };
        assert!(!off.qdq_for(&dev("qnn")));
        let fused = OrtOptions { graph: Some(GraphVariant::Fused), static_window: Some(0), ..Default::default() };
        assert!(!fused.qdq_for(&dev("qnn")), "not a default the fused graph would refuse");
        let asked = OrtOptions { qdq: Some(true), ..fused };
        assert!(export_options(&asked, &dev("cpu")).unwrap_err().to_string().contains("qdq needs graph=primitive"));
        let genai = OrtOptions { genai_model: Some("g".into()), graph: None, ..Default::default() };
        assert!(!genai.qdq_for(&dev("qnn")), "a builder's model is not rewritten by default");
    }

    #[test]
    fn qnn_context_binaries_are_for_qnn_and_on_by_default_for_its_htp() {
        let dev = |d: &str| DeviceRequest::parse(d).unwrap();
        let default = OrtOptions::default();
        assert!(default.qnn_context_for(&dev("qnn")), "qnn means qnn:htp");
        assert!(!default.qnn_context_for(&dev("qnn:gpu")));
        assert!(!default.qnn_context_for(&dev("openvino")) && !default.qnn_context_for(&dev("cpu")));
        let off = OrtOptions { qnn_context: Some(false), ..Default::default() };
        assert!(!off.qnn_context_for(&dev("qnn:htp")));
        assert!(export_options(&off, &dev("qnn")).is_ok());
        let err = export_options(&off, &dev("openvino")).unwrap_err().to_string();
        assert!(err.contains("qnn_* are for --device qnn"), "{err}");
    }
}

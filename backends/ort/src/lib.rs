//! The ONNX Runtime backend: runs edgebench's ONNX export of a GGUF model (`edgebench-onnx`) through the crate
//! `ort` with `load-dynamic`. No binaries are downloaded at build time: the shared library is the one shipped in the
//! `onnxruntime` wheel (fetched by the CLI with `pip download`, SHA-256 pinned and cached like models) or a file the
//! user names (`--backend-opt ort_lib=PATH`).
//!
//! Execution providers: `--device cpu` runs the CPU provider; `cuda[:N]`, `openvino`, `qnn`, `coreml` and
//! `directml` register that provider with errors on failure *and* `session.disable_cpu_ep_fallback=1`, so a session
//! whose nodes would fall back to the CPU is refused (a skipped cell naming the reason), never measured as that
//! device. Options: `accuracy_level=0|1|4` (the exported `MatMulNBits` nodes' own setting, default 1: f32; 4
//! quantizes activations to int8 as llama.cpp and the native backend do, but is not batch-consistent, see
//! `ExportOptions`), `ort_lib=PATH`, `spinning=on|off` (ORT's intra-op spin, default
//! ORT's own: on).

mod library;

use std::path::PathBuf;
use std::sync::Mutex;

use edgebench_core::{Backend, BackendError, BackendFacts, LoadOptions, LoadedModel, ModelSpec, Session, Support};
use edgebench_onnx::backend::{export_error, loaded_fingerprint, Step};
use edgebench_onnx::cache::Exports;
use edgebench_onnx::io::{self, GraphFacts};
use edgebench_onnx::ExportOptions;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor};

pub use library::{providers, LibrarySource, ORT_VERSION_PINNED};

const OPTIONS: [&str; 3] = ["accuracy_level", "ort_lib", "spinning"];

/// The ONNX Runtime backend factory.
pub struct OrtBackend {
    exports: Exports,
    library: LibrarySource,
}

impl OrtBackend {
    /// A backend whose exports are cached under `cache_root` and whose library comes from `library`.
    pub fn new(cache_root: PathBuf, library: LibrarySource) -> Self {
        Self { exports: Exports::new(cache_root), library }
    }
}

fn unsupported(m: impl Into<String>) -> BackendError {
    BackendError::Unsupported(m.into())
}

fn export_options(opts: &LoadOptions) -> Result<ExportOptions, BackendError> {
    if let Some(k) = opts.options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(unsupported(format!("ort option {k:?} (known: {})", OPTIONS.join(", "))));
    }
    if let Some(v) = opts.options.get("spinning") {
        if v != "on" && v != "off" {
            return Err(unsupported(format!("ort option spinning={v} (on or off)")));
        }
    }
    match opts.options.get("accuracy_level").map(String::as_str) {
        None => Ok(ExportOptions::default()),
        Some(v @ ("0" | "1" | "2" | "3" | "4")) => Ok(ExportOptions { accuracy_level: v.parse().expect("digit") }),
        Some(v) => Err(unsupported(format!("ort option accuracy_level={v} (0, 1, 2, 3 or 4)"))),
    }
}

/// The execution provider a device asks for, by ONNX Runtime's name.
fn provider_for(device: &edgebench_core::DeviceRequest) -> Result<&'static str, BackendError> {
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

fn check(opts: &LoadOptions) -> Result<(), BackendError> {
    export_options(opts)?;
    provider_for(&opts.device)?;
    Ok(())
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn supports(&self, _model: &ModelSpec, opts: &LoadOptions) -> Support {
        let provider = match check(opts).and_then(|_| provider_for(&opts.device)) {
            Ok(p) => p,
            Err(e) => return Support::No(e.to_string()),
        };
        match library::init(&self.library, opts) {
            Err(e) => Support::No(e),
            Ok(_) => match providers() {
                Ok(have) if have.iter().any(|p| p == provider) => Support::Yes,
                Ok(have) => Support::No(format!(
                    "this ONNX Runtime library has no {provider} (it offers {}); no CPU fallback is measured as {}",
                    have.join(", "),
                    opts.device
                )),
                Err(e) => Support::No(format!("listing ONNX Runtime's execution providers: {e}")),
            },
        }
    }

    fn prepare(&self, model: &ModelSpec, opts: &LoadOptions) -> Result<Vec<String>, BackendError> {
        let (_, note) = self.exports.prepare(&model.path, export_options(opts)?).map_err(export_error(&model.path))?;
        Ok(vec![note])
    }

    fn load(&self, model: &ModelSpec, opts: &LoadOptions) -> Result<Box<dyn LoadedModel>, BackendError> {
        let eo = export_options(opts)?;
        let provider = provider_for(&opts.device)?;
        let lib = library::init(&self.library, opts).map_err(unsupported)?;
        let path = self.exports.path(&model.path, eo).map_err(export_error(&model.path))?;
        let load_err = |m: String| BackendError::Load { path: path.display().to_string(), message: m };
        let threads = opts.threads.max(1);
        let spinning = opts.options.get("spinning").map(String::as_str);
        let acc = eo.accuracy_level.to_string();
        let build = || -> Result<ort::session::builder::SessionBuilder, String> {
            let s = |e: ort::Error<ort::session::builder::SessionBuilder>| e.to_string();
            let mut b = ort::session::Session::builder(&lib.env)
                .map_err(|e| e.to_string())?
                .with_optimization_level(GraphOptimizationLevel::Level3)
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
            if opts.device.kind != "cpu" {
                b = library::register(b, opts).map_err(|e| e.to_string())?;
            }
            Ok(b)
        };
        let mut b = build().map_err(load_err)?;
        let session = b.commit_from_file(&path).map_err(|e| match opts.device.kind.as_str() {
            "cpu" => load_err(e.to_string()),
            _ => unsupported(format!(
                "{provider} could not take the whole graph on {} (CPU fallback disabled, so it is not measured): {e}",
                opts.device
            )),
        })?;
        // The metadata as ONNX Runtime read it from the file it loaded (decoding the file again would double the
        // peak memory of the load).
        let meta = session.metadata().map_err(|e| load_err(e.to_string()))?;
        let file = edgebench_onnx::fingerprint::file_facts_from(|k| meta.custom(k), &path)
            .map_err(|e| load_err(e.to_string()))?;
        drop(meta);
        let g = file.graph.clone();
        let facts = BackendFacts {
            versions: vec![format!("onnxruntime {} ({})", lib.version, lib.source), "ort 2.0.0-rc.15".into(), file.exporter.clone()],
            kernel_path: format!("onnxruntime {provider}; MatMulNBits accuracy_level={acc}"),
            threads,
            vocab_size: g.vocab,
            context_length: g.n_ctx,
            converted: (!file.converted.is_empty()).then(|| file.converted.join("; ")),
            notes: vec![
                format!("weights carried as: {}", file.carried),
                format!(
                    "graph optimization level 3, intra-op threads {threads}, inter-op 1, sequential; intra-op spinning {}; \
                     session.qdq_matmulnbits_accuracy_level={acc}",
                    spinning.unwrap_or("ORT default (on)")
                ),
                "no MatMulInteger or QDQ nodes in the exported graph (the u8×s8 AVX2 overflow of MatMulInteger cannot arise)".into(),
                "KV cache f32: the present outputs are handed back as the next call's past inputs (no copies)".into(),
            ],
            weights: None,
        };
        Ok(Box::new(OrtModel { session: Mutex::new(session), graph: g, facts, path }))
    }

    fn devices(&self) -> Vec<String> {
        let opts =
            LoadOptions { threads: 1, device: edgebench_core::DeviceRequest::cpu(), options: Default::default() };
        match library::init(&self.library, &opts)
            .map_err(|e| e.to_string())
            .and_then(|_| providers().map_err(|e| e.to_string()))
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
}

struct OrtModel {
    session: Mutex<ort::session::Session>,
    graph: GraphFacts,
    facts: BackendFacts,
    path: PathBuf,
}

impl LoadedModel for OrtModel {
    fn facts(&self) -> BackendFacts {
        self.facts.clone()
    }

    fn weights_fingerprint(&self) -> Result<Option<(String, String)>, BackendError> {
        loaded_fingerprint(&self.path, "ONNX Runtime")
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError> {
        let g = &self.graph;
        let mut past = Vec::with_capacity(2 * g.n_layer);
        for _ in 0..2 * g.n_layer {
            let t = Tensor::<f32>::from_array(([1usize, g.n_head_kv, 0, g.head_dim], Vec::<f32>::new()))
                .map_err(runtime)?;
            past.push(t.into_dyn());
        }
        Ok(Box::new(OrtSession { model: self, past, pos: 0 }))
    }
}

fn runtime(e: impl std::fmt::Display) -> BackendError {
    BackendError::Runtime(format!("onnxruntime: {e}"))
}

struct OrtSession<'a> {
    model: &'a OrtModel,
    past: Vec<DynValue>,
    pos: usize,
}

impl OrtSession<'_> {
    fn run(&mut self, tokens: &[u32], all: bool) -> Result<Vec<f32>, BackendError> {
        let g = &self.model.graph;
        let st = Step::new(g, self.pos, tokens, all)?;
        let (n, n_rows) = (st.seq, st.rows.len());
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = vec![
            (io::INPUT_IDS.into(), Tensor::from_array(([1, n], st.ids)).map_err(runtime)?.into()),
            (io::POSITION_IDS.into(), Tensor::from_array(([1, n], st.positions)).map_err(runtime)?.into()),
            (io::ATTENTION_BIAS.into(), Tensor::from_array(([n, st.total], st.bias)).map_err(runtime)?.into()),
            (io::LOGITS_INDEX.into(), Tensor::from_array(([n_rows], st.rows)).map_err(runtime)?.into()),
        ];
        for (i, v) in std::mem::take(&mut self.past).into_iter().enumerate() {
            inputs.push((io::past(i / 2, i % 2 == 1), v.into()));
        }
        let mut session = self.model.session.lock().map_err(|_| runtime("a previous call panicked"))?;
        let mut out = session.run(inputs).map_err(runtime)?;
        let logits = {
            let v = out.get(io::LOGITS).ok_or_else(|| runtime("no logits output"))?;
            let (_, data) = v.try_extract_tensor::<f32>().map_err(runtime)?;
            data.to_vec()
        };
        for i in 0..2 * g.n_layer {
            let name = io::present(i / 2, i % 2 == 1);
            self.past.push(out.remove(&name).ok_or_else(|| runtime(format!("no output {name}")))?);
        }
        self.pos = st.total;
        if logits.len() != n_rows * g.vocab {
            return Err(runtime(format!("{} logits for {n_rows} rows", logits.len())));
        }
        Ok(logits)
    }
}

impl Session for OrtSession<'_> {
    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>, BackendError> {
        self.run(tokens, false)
    }

    fn forward_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>, BackendError> {
        self.run(tokens, true)
    }

    fn position(&self) -> usize {
        self.pos
    }
}

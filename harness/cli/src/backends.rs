//! The one place that names concrete backends. A backend whose feature is off is a stub that says how to enable it.

use edgebench_core::{Backend, BackendError, LoadOptions, LoadedModel, ModelSpec, Support};

/// Known backends: (name, cargo feature that compiles it in, or "" when always present).
pub const KNOWN: &[(&str, &str)] =
    &[("candle", "candle"), ("native", ""), ("llamacpp", "llamacpp"), ("ort", "ort"), ("tract", "tract"), ("mock", "")];

/// Stands in for a backend built without its feature (unused when every feature is on).
#[allow(dead_code)]
struct NotCompiled {
    name: &'static str,
    feature: &'static str,
}

#[allow(dead_code)]
impl NotCompiled {
    fn error(&self) -> BackendError {
        BackendError::NotCompiled { backend: self.name.into(), feature: self.feature.into() }
    }
}

impl Backend for NotCompiled {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, _: &ModelSpec, _: &LoadOptions) -> Support {
        Support::No(self.error().to_string())
    }

    fn load(&self, _: &ModelSpec, _: &LoadOptions) -> Result<Box<dyn LoadedModel>, BackendError> {
        Err(self.error())
    }

    fn devices(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The backend called `name`, or an error listing the known names.
pub fn get(name: &str) -> anyhow::Result<Box<dyn Backend>> {
    Ok(match name {
        "mock" => Box::new(edgebench_backend_mock::MockBackend),
        "native" => Box::new(edgebench_backend_native::NativeBackend),
        #[cfg(feature = "candle")]
        "candle" => Box::new(edgebench_backend_candle::CandleBackend),
        #[cfg(not(feature = "candle"))]
        "candle" => Box::new(NotCompiled { name: "candle", feature: "candle" }),
        #[cfg(feature = "llamacpp")]
        "llamacpp" => Box::new(edgebench_backend_llamacpp::LlamaCppBackend),
        #[cfg(not(feature = "llamacpp"))]
        "llamacpp" => Box::new(NotCompiled { name: "llamacpp", feature: "llamacpp" }),
        #[cfg(feature = "ort")]
        "ort" => Box::new(edgebench_backend_ort::OrtBackend::new(
            edgebench_models::registry::cache_dir(),
            Box::new(ort_library),
        )),
        #[cfg(not(feature = "ort"))]
        "ort" => Box::new(NotCompiled { name: "ort", feature: "ort" }),
        #[cfg(feature = "tract")]
        "tract" => Box::new(edgebench_backend_tract::TractBackend::new(edgebench_models::registry::cache_dir())),
        #[cfg(not(feature = "tract"))]
        "tract" => Box::new(NotCompiled { name: "tract", feature: "tract" }),
        other => anyhow::bail!(
            "unknown backend {other:?} (flag --backend); known: {}",
            KNOWN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Whether `name` is compiled into this binary.
pub fn compiled(name: &str) -> bool {
    name == "mock"
        || name == "native"
        || (name == "candle" && cfg!(feature = "candle"))
        || (name == "llamacpp" && cfg!(feature = "llamacpp"))
        || (name == "ort" && cfg!(feature = "ort"))
        || (name == "tract" && cfg!(feature = "tract"))
}

/// Backends `edgebench run` uses by default: every compiled-in one except mock.
pub fn default_set() -> Vec<String> {
    KNOWN.iter().filter(|(n, _)| *n != "mock" && compiled(n)).map(|(n, _)| n.to_string()).collect()
}

/// Library versions per compiled-in backend, for the manifest.
pub fn versions() -> std::collections::BTreeMap<String, Vec<String>> {
    let mut v = std::collections::BTreeMap::new();
    if compiled("candle") {
        let c = env!("EDGEBENCH_CANDLE_VERSION");
        v.insert("candle".into(), vec![format!("candle-core {c}"), format!("candle-nn {c}")]);
    }
    #[cfg(feature = "llamacpp")]
    v.insert(
        "llamacpp".into(),
        vec![format!("llama.cpp vendored in llama-cpp-sys-2 {}", edgebench_backend_llamacpp::LLAMA_CPP_SYS_VERSION)],
    );
    v.insert("native".into(), vec![edgebench_backend_native::VERSION.into()]);
    #[cfg(feature = "ort")]
    v.insert(
        "ort".into(),
        vec![
            "ort 2.0.0-rc.15 (load-dynamic)".into(),
            format!("onnxruntime {} wheel unless ort_lib names another", edgebench_backend_ort::ORT_VERSION_PINNED),
        ],
    );
    #[cfg(feature = "tract")]
    v.insert("tract".into(), vec![edgebench_backend_tract::TRACT_VERSION.into()]);
    v.insert("mock".into(), vec![format!("edgebench-backend-mock {}", env!("CARGO_PKG_VERSION"))]);
    v
}

/// The ONNX Runtime library pinned in the registry for this platform: fetched with pip on first use, SHA-256
/// verified and cached like models.
#[cfg(feature = "ort")]
fn ort_library() -> Result<(std::path::PathBuf, String), String> {
    use edgebench_models::registry;
    let lib = registry::library("onnxruntime").map_err(|e| e.to_string())?;
    let path = registry::ensure(&lib, &mut |l| eprintln!("{l}")).map_err(|e| e.to_string())?;
    Ok((path, format!("{} wheel, SHA-256 verified", lib.package)))
}

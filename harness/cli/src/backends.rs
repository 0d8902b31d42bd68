//! The one place that names concrete backends. A backend whose feature is off is a stub that says how to enable it.

use edgebench_core::{Backend, BackendError, LoadOptions, LoadedModel, ModelSpec, Support};

/// Known backends: (name, cargo feature that compiles it in, or "" when always present).
pub const KNOWN: &[(&str, &str)] = &[("candle", "candle"), ("native", ""), ("llamacpp", "llamacpp"), ("mock", "")];

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
    v.insert("mock".into(), vec![format!("edgebench-backend-mock {}", env!("CARGO_PKG_VERSION"))]);
    v
}

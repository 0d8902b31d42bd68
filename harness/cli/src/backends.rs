//! The one place that names concrete backends: one table row per backend (name, the cargo feature that compiles
//! it in, how to make it). A backend whose feature is off gets a stub, generated from its row, that says how to
//! enable it.

use edgebench_core::{Backend, BackendError, LoadOptions, ModelSpec, Prepared};
#[allow(unused_imports)]
use edgebench_models::registry::cache_dir;

/// Generates [`KNOWN`] and `make` from the rows: `"name" => "feature": constructor` or `"name" => always: …`.
macro_rules! backends {
    ($( $name:literal => $feature:tt : $make:expr ),* $(,)?) => {
        /// Known backends: (name, cargo feature that compiles it in or "" when always present, compiled in).
        pub const KNOWN: &[(&str, &str, bool)] = &[$(($name, backends!(@feature $feature), backends!(@on $feature))),*];

        fn make(name: &str) -> Option<Box<dyn Backend>> {
            $( if name == $name { return Some(backends!(@make $name, $feature, $make)); } )*
            None
        }
    };
    (@feature always) => { "" };
    (@feature $f:literal) => { $f };
    (@on always) => { true };
    (@on $f:literal) => { cfg!(feature = $f) };
    (@make $name:literal, always, $make:expr) => {{
        let b: Box<dyn Backend> = Box::new($make);
        b
    }};
    (@make $name:literal, $f:literal, $make:expr) => {{
        #[cfg(feature = $f)]
        let b: Box<dyn Backend> = Box::new($make);
        #[cfg(not(feature = $f))]
        let b: Box<dyn Backend> = Box::new(NotCompiled { name: $name, feature: $f });
        b
    }};
}

backends! {
    "candle" => "candle": edgebench_backend_candle::CandleBackend,
    "native" => always: edgebench_backend_native::NativeBackend,
    "llamacpp" => "llamacpp": edgebench_backend_llamacpp::LlamaCppBackend,
    "ort" => "ort": edgebench_backend_ort::OrtBackend::new(cache_dir(), Box::new(edgebench_models::registry::library_file)),
    "tract" => "tract": edgebench_backend_tract::TractBackend::new(cache_dir()),
    "mock" => always: edgebench_backend_mock::MockBackend,
}

/// Stands in for a backend built without its feature (unused when every feature is on).
#[allow(dead_code)]
struct NotCompiled {
    name: &'static str,
    feature: &'static str,
}

impl Backend for NotCompiled {
    fn name(&self) -> &'static str {
        self.name
    }

    fn check_options(&self, _: &std::collections::BTreeMap<String, String>) -> Result<(), BackendError> {
        Err(BackendError::NotCompiled { backend: self.name.into(), feature: self.feature.into() })
    }

    fn check(&self, _: &ModelSpec, _: &LoadOptions) -> Result<(), BackendError> {
        Err(BackendError::NotCompiled { backend: self.name.into(), feature: self.feature.into() })
    }

    fn prepare(&self, m: &ModelSpec, o: &LoadOptions) -> Result<Box<dyn Prepared + '_>, BackendError> {
        Err(self.check(m, o).expect_err("never compiled in"))
    }

    fn devices(&self) -> Vec<String> {
        Vec::new()
    }

    fn versions(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The backend called `name`, or an error listing the known names.
pub fn get(name: &str) -> anyhow::Result<Box<dyn Backend>> {
    make(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown backend {name:?} (flag --backend); known: {}",
            KNOWN.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Backends `edgebench run` uses by default: every compiled-in one except mock.
pub fn default_set() -> Vec<String> {
    KNOWN.iter().filter(|(n, _, on)| *n != "mock" && *on).map(|(n, _, _)| n.to_string()).collect()
}

/// Library versions per compiled-in backend, for the manifest (each backend's own `versions`).
pub fn versions() -> std::collections::BTreeMap<String, Vec<String>> {
    KNOWN.iter().filter(|(_, _, on)| *on).filter_map(|(n, _, _)| Some((n.to_string(), make(n)?.versions()))).collect()
}

/// The devices of one accelerator library (`openvino`, `qnn`), probed in this process.
pub fn ort_probe(kind: &str) -> Vec<String> {
    #[cfg(feature = "ort")]
    return edgebench_backend_ort::OrtBackend::new(cache_dir(), Box::new(edgebench_models::registry::library_file))
        .probe(kind);
    #[cfg(not(feature = "ort"))]
    return vec![format!("{kind}: ort is not compiled in: rebuild with --features ort")];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every version a compiled-in backend reports as `<crate> <version>` is the one Cargo.lock resolves.
    #[test]
    fn reported_crate_versions_match_cargo_lock() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
        let mut checked = 0;
        for (name, _, on) in KNOWN.iter().filter(|(_, _, on)| *on) {
            assert!(on);
            for v in get(name).unwrap().versions() {
                let mut words = v.split_whitespace();
                let (Some(krate), Some(version)) = (words.next(), words.next()) else { continue };
                if lock.contains(&format!("name = \"{krate}\"\n")) {
                    let pinned = format!("name = \"{krate}\"\nversion = \"{version}\"");
                    assert!(lock.contains(&pinned), "{name} reports {v:?}; Cargo.lock resolves another {krate}");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 2, "native and mock at least report their crate versions");
    }
}

//! The ONNX Runtime shared library: which file (the `ort_lib` option, else `ORT_DYLIB_PATH`, else the CLI's pinned
//! wheel), loading it once per process (`ort` with `load-dynamic`), the execution providers it offers, and
//! registering a non-CPU provider so that a fallback to the CPU is an error.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use edgebench_core::DeviceRequest;
use ort::ep::{self, ExecutionProvider};
use ort::session::builder::SessionBuilder;

/// The onnxruntime release the CLI fetches by default (the `onnxruntime` wheel of this version).
pub const ORT_VERSION_PINNED: &str = "1.31.1";

/// Where the library comes from when neither `ort_lib` nor `ORT_DYLIB_PATH` names one: returns the file and a
/// description of its origin (e.g. `onnxruntime==1.31.1 wheel, SHA-256 verified`).
pub type LibrarySource = Box<dyn Fn() -> Result<(PathBuf, String), String> + Send + Sync>;

/// The library this process loaded, and its environment.
pub struct Loaded {
    /// Its file.
    pub path: PathBuf,
    /// Where it came from.
    pub source: String,
    /// Its version, from its build information.
    pub version: String,
    /// The process's ONNX Runtime environment.
    pub env: ort::environment::Environment,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Loads the library once (`ort_lib`, else `ORT_DYLIB_PATH`, else `source`); later calls must name the same file.
pub fn init(source: &LibrarySource, ort_lib: Option<&std::path::Path>) -> Result<&'static Loaded, String> {
    let (path, origin) = match (ort_lib, std::env::var_os("ORT_DYLIB_PATH")) {
        (Some(p), _) => (p.to_path_buf(), format!("--backend-opt ort_lib={}", p.display())),
        (None, Some(p)) if !p.is_empty() => (PathBuf::from(&p), format!("ORT_DYLIB_PATH={}", p.to_string_lossy())),
        _ => source()?,
    };
    if let Some(l) = LOADED.get() {
        return if l.path == path {
            Ok(l)
        } else {
            Err(format!(
                "ONNX Runtime is already loaded from {} in this process, not {}",
                l.path.display(),
                path.display()
            ))
        };
    }
    if !path.is_file() {
        return Err(format!("ONNX Runtime library {} ({origin}): no such file", path.display()));
    }
    let _one_at_a_time = INIT.lock().map_err(|_| "ONNX Runtime initialisation panicked earlier".to_string())?;
    if let Some(l) = LOADED.get() {
        return Ok(l);
    }
    let e = ort::init_from(&path)
        .map_err(|e| format!("loading ONNX Runtime from {} ({origin}): {e}", path.display()))?
        .with_name("edgebench")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("starting ONNX Runtime from {}: {e}", path.display()))?;
    let info = ort::info();
    let version = info
        .split([',', ' '])
        .find_map(|p| p.strip_prefix("git-branch=rel-"))
        .map(str::to_string)
        .unwrap_or_else(|| info.chars().take(80).collect());
    Ok(LOADED.get_or_init(|| Loaded { path, source: origin, version, env: e }))
}

/// The execution providers the loaded library was built with, by ONNX Runtime's names.
pub fn providers() -> ort::Result<Vec<String>> {
    let mut have = Vec::new();
    let mut check = |name: &str, available: ort::Result<bool>| -> ort::Result<()> {
        if available? {
            have.push(name.to_string());
        }
        Ok(())
    };
    check(ep::CPU::NAME, ep::CPU::is_available())?;
    check(ep::CUDA::NAME, ep::CUDA::is_available())?;
    check(ep::TensorRT::NAME, ep::TensorRT::is_available())?;
    check(ep::OpenVINO::NAME, ep::OpenVINO::is_available())?;
    check(ep::QNN::NAME, ep::QNN::is_available())?;
    check(ep::CoreML::NAME, ep::CoreML::is_available())?;
    check(ep::DirectML::NAME, ep::DirectML::is_available())?;
    check(ep::ROCm::NAME, ep::ROCm::is_available())?;
    check(ep::XNNPACK::NAME, ep::XNNPACK::is_available())?;
    Ok(have)
}

/// Registers the provider `device` asks for, failing if it cannot be registered, and forbids the CPU fallback:
/// session creation then fails when any node would run on the CPU.
pub fn register(b: SessionBuilder, device: &DeviceRequest) -> ort::Result<SessionBuilder> {
    let dispatch = match device.kind.as_str() {
        "cuda" => ep::CUDA::default().with_device_id(device.index as i32).build(),
        "openvino" => ep::OpenVINO::default().build(),
        "qnn" => ep::QNN::default().build(),
        "coreml" => ep::CoreML::default().build(),
        "directml" => ep::DirectML::default().with_device_id(device.index as i32).build(),
        other => return Err(ort::Error::new(format!("no execution provider for device {other}"))),
    };
    Ok(b.with_execution_providers([dispatch.error_on_failure()])?
        .with_config_entry("session.disable_cpu_ep_fallback", "1")?)
}

//! The ONNX Runtime shared library: which file (the `ort_lib` option, else `ORT_DYLIB_PATH`, else the pinned wheel
//! for the device: the default, or OpenVINO's build), loading it once per process (`ort` with `load-dynamic`), the
//! QNN plugin registered with it, the execution providers it offers, the errors it logs (a provider's own reasons),
//! and registering a non-CPU provider so that a fallback to the CPU is an error.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use edgebench_core::DeviceRequest;
use ort::ep::{self, ExecutionProvider};
use ort::session::builder::SessionBuilder;

/// The onnxruntime release the CLI fetches by default (the `onnxruntime` wheel of this version).
pub const ORT_VERSION_PINNED: &str = "1.31.1";

/// Where a library comes from when neither `ort_lib` nor `ORT_DYLIB_PATH` names one: given a registry id
/// (`onnxruntime`, `onnxruntime-openvino`, `onnxruntime-qnn`), returns the file and a description of its origin (e.g.
/// `onnxruntime==1.31.1 wheel, SHA-256 verified`).
pub type LibrarySource = Box<dyn Fn(&str) -> Result<(PathBuf, String), String> + Send + Sync>;

/// The registry id of the ONNX Runtime library a device runs on: OpenVINO's own build for `openvino`, the default
/// one otherwise (QNN's provider is a plugin registered with it, see [`qnn_plugin`]).
pub fn library_for(device: &DeviceRequest) -> &'static str {
    match device.kind.as_str() {
        "openvino" => "onnxruntime-openvino",
        _ => "onnxruntime",
    }
}

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
/// Errors ONNX Runtime and its providers logged in this process (they and the warnings also go to stderr).
static LOG: Mutex<Vec<(ort::logging::LogLevel, String)>> = Mutex::new(Vec::new());

/// A point in the log, for [`errors_since`].
pub fn log_mark() -> usize {
    LOG.lock().map_or(0, |l| l.len())
}

/// The errors ONNX Runtime or a provider logged since `mark`: a provider's own reason for refusing a device or a
/// graph often reaches the log only, not the error ONNX Runtime returns.
pub fn errors_since(mark: usize) -> Vec<String> {
    let Ok(log) = LOG.lock() else { return Vec::new() };
    let mut seen = Vec::new();
    for (level, m) in log.iter().skip(mark) {
        // A provider's message after its C++ source location and signature (OpenVINO's `… [ERROR] [OpenVINO] …`).
        let m = m.split_once("[ERROR] ").map_or(m.as_str(), |(_, rest)| rest);
        const KEEP: usize = 400;
        let m = match m.char_indices().nth(KEEP) {
            Some((cut, _)) => format!("{}… ({} characters)", &m[..cut], m.chars().count()),
            None => m.to_string(),
        };
        if *level >= ort::logging::LogLevel::Error && !seen.contains(&m) {
            seen.push(m);
        }
    }
    seen
}
static INIT: Mutex<()> = Mutex::new(());

/// Loads the library once (`ort_lib`, else `ORT_DYLIB_PATH`, else `source`'s library for `device`); later calls
/// must name the same file.
pub fn init(
    source: &LibrarySource,
    ort_lib: Option<&std::path::Path>,
    device: &DeviceRequest,
) -> Result<&'static Loaded, String> {
    let (path, origin) = match (ort_lib, std::env::var_os("ORT_DYLIB_PATH")) {
        (Some(p), _) => (p.to_path_buf(), format!("--backend-opt ort_lib={}", p.display())),
        (None, Some(p)) if !p.is_empty() => (PathBuf::from(&p), format!("ORT_DYLIB_PATH={}", p.to_string_lossy())),
        _ => source(library_for(device))?,
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
        .with_logger(std::sync::Arc::new(|level, _category, _id, location, message| {
            if level >= ort::logging::LogLevel::Warning {
                eprintln!("onnxruntime {level:?} {location}: {message}");
                if level >= ort::logging::LogLevel::Error {
                    if let Ok(mut log) = LOG.lock() {
                        log.push((level, message.trim().to_string()));
                    }
                }
            }
        }))
        .build()
        .map_err(|e| format!("starting ONNX Runtime from {}: {e}", path.display()))?;
    let info = ort::info();
    // Release builds name their branch `rel-X.Y.Z`; others (the 1.31.1 wheel's: `HEAD`) leave the version to the
    // file name (`libonnxruntime.so.1.31.1`).
    let from_name = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.split_once(".so.")).map(|(_, v)| v);
    let version = info
        .split([',', ' '])
        .find_map(|p| p.strip_prefix("git-branch=rel-"))
        .or(from_name)
        .map(str::to_string)
        .unwrap_or_else(|| info.chars().take(80).collect());
    Ok(LOADED.get_or_init(|| Loaded { path, source: origin, version, env: e }))
}

/// The execution providers the loaded library was built with, by ONNX Runtime's names, and the plugin providers
/// registered with it (QNN's).
pub fn providers(lib: &Loaded) -> ort::Result<Vec<String>> {
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
    for d in lib.env.devices() {
        let name = d.ep()?;
        if name == QNN_PLUGIN_EP && !have.iter().any(|h| h == ep::QNN::NAME) {
            have.push(ep::QNN::NAME.to_string());
        }
    }
    Ok(have)
}

/// A session builder on `lib`. A CPU session (`cpu_only`) names ONNX Runtime's CPU provider device: the `ort` crate
/// sets an automatic device policy (`MaxEfficiency`) on every session, which ONNX Runtime applies to a session that
/// names no provider, and once a plugin provider such as QNN's is registered in the process it picks that plugin's
/// device (QNN's CPU backend, absent from its wheel) for a session meant for ONNX Runtime's CPU provider. Accelerator
/// sessions name their provider themselves (`register`).
pub fn session_builder(lib: &Loaded, cpu_only: bool) -> ort::Result<SessionBuilder> {
    let b = ort::session::Session::builder(&lib.env)?;
    let cpu: Vec<_> = lib.env.devices().filter(|d| d.ep().is_ok_and(|n| n == ep::CPU::NAME)).collect();
    if !cpu_only || cpu.is_empty() {
        return Ok(b);
    }
    b.with_devices(cpu, None).map_err(|e| ort::Error::new(e.to_string()))
}

/// The name ONNX Runtime's QNN plugin library gives its provider (the built-in one is `QNNExecutionProvider`).
pub const QNN_PLUGIN_EP: &str = "QNN";

static QNN: OnceLock<Result<(PathBuf, String), String>> = OnceLock::new();

/// Registers the QNN execution provider plugin (the `onnxruntime-qnn` wheel's library, or `qnn_lib`) with the
/// loaded library, once per process; returns its file and origin.
pub fn qnn_plugin(
    source: &LibrarySource,
    qnn_lib: Option<&std::path::Path>,
    lib: &Loaded,
) -> Result<&'static (PathBuf, String), String> {
    QNN.get_or_init(|| {
        let (path, origin) = match qnn_lib {
            Some(p) => (p.to_path_buf(), format!("--backend-opt qnn_lib={}", p.display())),
            None => source("onnxruntime-qnn")?,
        };
        lib.env
            .register_ep_library(QNN_PLUGIN_EP, &path)
            .map_err(|e| format!("registering the QNN provider library {} ({origin}): {e}", path.display()))?;
        Ok((path, origin))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// How a session places its nodes on a non-CPU provider.
pub struct Placement<'a> {
    /// The device asked for.
    pub device: &'a DeviceRequest,
    /// Compute threads (OpenVINO's `num_of_threads`).
    pub threads: usize,
    /// Let nodes the provider does not take run on ONNX Runtime's CPU provider (default: refused).
    pub allow_cpu_fallback: bool,
    /// OpenVINO's `precision` option (absent: OpenVINO's own default for the device).
    pub openvino_precision: Option<&'a str>,
    /// OpenVINO's `cache_dir` (absent: no compile cache, ONNX Runtime's default).
    pub openvino_cache: Option<&'a Path>,
    /// QNN's HTP options: fp16 arithmetic for float graphs, and the chip (`soc_model`, `htp_arch`) it prepares for.
    pub qnn_htp: Option<(bool, u32, u32)>,
}

/// Registers the provider `device` asks for, failing if it cannot be registered; forbids the CPU fallback unless
/// allowed (session creation then fails when any node would run on the CPU); asks ONNX Runtime to record which
/// provider runs each node (see `coverage`).
pub fn register(b: SessionBuilder, lib: &Loaded, p: &Placement<'_>) -> ort::Result<SessionBuilder> {
    let device = p.device;
    let target = device.target.as_deref().unwrap_or_default();
    let b = match device.kind.as_str() {
        "qnn" => {
            let devices: Vec<_> = lib.env.devices().filter(|d| d.ep().is_ok_and(|n| n == QNN_PLUGIN_EP)).collect();
            if devices.is_empty() {
                return Err(ort::Error::new("the QNN provider library is registered but offers no device"));
            }
            let mut options = vec![(format!("{QNN_PLUGIN_EP}.backend_type"), target.to_string())];
            if let (Some((fp16, soc, arch)), "htp") = (p.qnn_htp, target) {
                for (k, v) in [
                    ("enable_htp_fp16_precision", if fp16 { "1".to_string() } else { "0".into() }),
                    ("soc_model", soc.to_string()),
                    ("htp_arch", arch.to_string()),
                ] {
                    options.push((format!("{QNN_PLUGIN_EP}.{k}"), v));
                }
            }
            b.with_devices(devices, Some(&options[..]))?
        }
        kind => {
            let dispatch = match kind {
                "cuda" => ep::CUDA::default().with_device_id(device.index as i32).build(),
                "openvino" => {
                    let mut ov = ep::OpenVINO::default().with_device_type(target).with_num_threads(p.threads);
                    if let Some(precision) = p.openvino_precision {
                        ov = ov.with_precision(precision);
                    }
                    if let Some(dir) = p.openvino_cache {
                        ov = ov.with_cache_dir(dir.display());
                    }
                    ov.build()
                }
                "coreml" => ep::CoreML::default().build(),
                "directml" => ep::DirectML::default().with_device_id(device.index as i32).build(),
                other => return Err(ort::Error::new(format!("no execution provider for device {other}"))),
            };
            b.with_execution_providers([dispatch.error_on_failure()])?
        }
    };
    Ok(b.with_config_entry("session.disable_cpu_ep_fallback", if p.allow_cpu_fallback { "0" } else { "1" })?
        .with_config_entry("session.record_ep_graph_assignment_info", "1")?)
}

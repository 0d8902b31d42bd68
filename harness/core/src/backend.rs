//! The backend contract: a stateless factory loads a model; a loaded model opens sessions; a session maps token ids
//! to logits and keeps its KV cache. Backends never tokenize, sample or time a reported metric.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::BackendError;

/// A model file to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelSpec {
    /// Registry id, or the file name for a local path.
    pub id: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// SHA-256 of the file, hex: computed once when the model is resolved, so no child hashes it again. Empty only
    /// in specs built by hand for files that do not exist.
    #[serde(default)]
    pub sha256: String,
}

/// Where to run: `cpu`, `cuda:0`, `metal`, `openvino:NPU`, `qnn:htp`, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    /// Device kind (`cpu`, `cuda`, `metal`, `openvino`, `qnn`, …).
    pub kind: String,
    /// Ordinal for multi-device kinds.
    pub index: usize,
    /// The toolchain's own device name, for kinds that address devices by name rather than ordinal: OpenVINO's
    /// `CPU`, `GPU`, `NPU` (`GPU.1`, …) and QNN's backends `htp`, `cpu`, `gpu`. Always set for those kinds (their
    /// defaults: `CPU`, `htp`), never for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl DeviceRequest {
    /// The host CPU.
    pub fn cpu() -> Self {
        Self { kind: "cpu".into(), index: 0, target: None }
    }

    /// The device names a kind addresses its devices by, default first (OpenVINO's `CPU`, `GPU`, `NPU`; QNN's
    /// backends `htp`, `gpu`, `cpu`); empty for kinds addressed by ordinal.
    pub fn named_targets(kind: &str) -> &'static [&'static str] {
        match kind {
            "openvino" => &["CPU", "GPU", "NPU"],
            "qnn" => &["htp", "gpu", "cpu"],
            _ => &[],
        }
    }

    /// Parses `cpu`, `cuda`, `cuda:1`, `metal`, and the ONNX Runtime provider devices `openvino[:CPU|GPU|NPU]`,
    /// `qnn[:htp|cpu|gpu]`, `coreml`, `directml[:N]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kind, suffix) = match s.split_once(':') {
            Some((k, rest)) => (k, Some(rest)),
            None => (s, None),
        };
        let ordinal = |suffix: Option<&str>| -> Result<usize, String> {
            suffix.map_or(Ok(0), |i| i.parse().map_err(|_| format!("bad device ordinal in {s:?}")))
        };
        match kind {
            "cpu" | "cuda" | "metal" | "coreml" | "directml" => {
                Ok(Self { kind: kind.into(), index: ordinal(suffix)?, target: None })
            }
            "openvino" => {
                let t = suffix.unwrap_or(Self::named_targets(kind)[0]).to_ascii_uppercase();
                let known = Self::named_targets(kind).iter().any(|d| {
                    t == *d || t.strip_prefix(d).and_then(|r| r.strip_prefix('.')).is_some_and(|n| n.parse::<u32>().is_ok())
                });
                if !known {
                    return Err(format!("unknown OpenVINO device in {s:?} (expected openvino:CPU, GPU[.N] or NPU)"));
                }
                Ok(Self { kind: kind.into(), index: 0, target: Some(t) })
            }
            "qnn" => {
                let t = suffix.unwrap_or(Self::named_targets(kind)[0]).to_ascii_lowercase();
                if !Self::named_targets(kind).contains(&t.as_str()) {
                    return Err(format!("unknown QNN backend in {s:?} (expected qnn:htp, qnn:cpu or qnn:gpu)"));
                }
                Ok(Self { kind: kind.into(), index: 0, target: Some(t) })
            }
            _ => Err(format!(
                "unknown device {s:?} (expected cpu, cuda[:N], metal, openvino[:CPU|GPU|NPU], qnn[:htp|cpu|gpu], coreml \
                 or directml[:N])"
            )),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.target, self.kind.as_str()) {
            (_, "cpu") => f.write_str("cpu"),
            (Some(t), k) => write!(f, "{k}:{t}"),
            (None, k) => write!(f, "{k}:{}", self.index),
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadOptions {
    /// Compute threads the backend may use. The harness sets this; backends must not exceed it.
    pub threads: usize,
    /// Target device.
    pub device: DeviceRequest,
    /// Backend-specific options (e.g. `requantize = "q8_0"`), recorded in the results.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Whether a backend can run a request, and if not, why.
#[derive(Debug, Clone, PartialEq)]
pub enum Support {
    /// It can.
    Yes,
    /// It cannot, with the reason shown to the user.
    No(String),
}

/// What a loaded model tells the results about itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BackendFacts {
    /// Library versions, e.g. `candle-core 0.11.1`.
    pub versions: Vec<String>,
    /// The kernel path that runs, e.g. `candle cpu: avx2 (compile-time); Q4_1 has no SIMD kernel`.
    pub kernel_path: String,
    /// Compute threads in use.
    pub threads: usize,
    /// Vocabulary size (logits per position).
    pub vocab_size: usize,
    /// Context length the session accepts.
    pub context_length: usize,
    /// How the executed weights differ from the file, e.g. `requantized from Q4_1 to Q8_0 at load`; `None` when
    /// the file's weights run as stored.
    pub converted: Option<String>,
    /// Anything else a reader of the results should know.
    pub notes: Vec<String>,
    /// Element type of the KV cache (`f16`, `f32`), which sizes the memory a longer context costs; `None` when the
    /// backend does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache: Option<String>,
    /// For an accelerator's execution provider: which share of the graph it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::ProviderCoverage>,
    /// Whether the weights that ran are the file's: set by the harness after loading, never by a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsCheck>,
}

/// The fingerprint (SHA-256 of every dequantized value, `edgebench_gguf::fingerprint`) of the weights a backend
/// ran, beside the source file's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WeightsCheck {
    /// Fingerprint of the weights the backend runs.
    pub fingerprint: String,
    /// Fingerprint of the model file's tensors.
    pub source: String,
    /// How the backend's fingerprint was obtained, e.g. `runs the file's tensors as stored` or `decoded from the
    /// ONNX initializers it loaded`.
    pub how: String,
}

impl WeightsCheck {
    /// `identical to source` or `differs from source`.
    pub fn verdict(&self) -> &'static str {
        if self.fingerprint == self.source {
            "identical to source"
        } else {
            "differs from source"
        }
    }
}

/// A backend as the harness holds it (`Box<dyn Backend>`): options still as text, support checked, loads timed.
/// Backends do not implement this trait by hand: they implement [`crate::TypedBackend`], whose blanket
/// implementation parses and checks their typed options once, hands `prepare`'s output to `load`, and wraps every
/// session in the harness's common input checks.
pub trait Backend: Send + Sync {
    /// Short name used on the command line and in results (`candle`, `mock`, …).
    fn name(&self) -> &'static str;

    /// Whether `model` can run with `opts`: options parsed and checked, device and library support checked.
    fn supports(&self, model: &ModelSpec, opts: &LoadOptions) -> Support {
        match self.check(model, opts) {
            Ok(()) => Support::Yes,
            Err(e) => Support::No(e.to_string()),
        }
    }

    /// Parses `options` as this backend's options, without a model: an unknown key or a bad value is an error
    /// whose message names the keys it knows. The run checks every `--backend-opt` this way before measuring.
    fn check_options(&self, options: &BTreeMap<String, String>) -> Result<(), BackendError>;

    /// [`Backend::supports`] as a result: `Unsupported` / `NotCompiled` errors mean a skipped cell.
    fn check(&self, model: &ModelSpec, opts: &LoadOptions) -> Result<(), BackendError>;

    /// Untimed work before the timed loads, e.g. writing (or finding in the cache) the ONNX export of a GGUF
    /// file; returns what the timed loads need.
    fn prepare(&self, model: &ModelSpec, opts: &LoadOptions) -> Result<Box<dyn Prepared + '_>, BackendError>;

    /// Prepares and loads in one call (untimed convenience for tests and the drift reference).
    fn load(&self, model: &ModelSpec, opts: &LoadOptions) -> Result<Box<dyn LoadedModel>, BackendError> {
        self.prepare(model, opts)?.load()
    }

    /// Devices this build can target on this machine, for `edgebench backends`.
    fn devices(&self) -> Vec<String>;

    /// Versions of the libraries this backend runs, for the manifest (e.g. `candle-core 0.11.1`).
    fn versions(&self) -> Vec<String>;
}

/// A backend ready to load a model: options parsed, support checked, untimed preparation done.
pub trait Prepared {
    /// Notes for the results (e.g. where the ONNX export came from and whether it was written now).
    fn notes(&self) -> &[String];

    /// Loads the weights; the harness times this call as load time.
    fn load(&self) -> Result<Box<dyn LoadedModel>, BackendError>;
}

/// Weights resident and ready; opens independent sessions.
pub trait LoadedModel {
    /// Facts for the results file.
    fn facts(&self) -> BackendFacts;

    /// The weights this model runs, when they are not the file's tensors as stored: `Some((fingerprint, how))`
    /// with the fingerprint of `edgebench_gguf::fingerprint` over the values it actually holds. `None` (the
    /// default) says it runs the file's tensors unconverted, so the file's own fingerprint is the one. Called once,
    /// untimed, after loading.
    fn weights_fingerprint(&self) -> Result<Option<(String, String)>, BackendError> {
        Ok(None)
    }

    /// Why logits of tokens fed in one call may differ from the same tokens fed over several calls by more than
    /// `tolerance::LOGITS_BATCH_VS_INCREMENTAL`: the runtime's own kernels compute a batch differently from a
    /// single row (e.g. ONNX Runtime's int8-activation `MatMulNBits`). `None` (the default): they must agree. The
    /// conformance suite then compares the two as distributions (`tolerance::LOGITS_BATCH_VARIANT`); the backend
    /// also says so in its facts' notes.
    fn batch_variance(&self) -> Option<String> {
        None
    }

    /// A fresh session with an empty KV cache.
    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError>;
}

/// Which logits a call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// The last position's (`vocab_size` values): prefill and decode.
    Last,
    /// Every appended position's (`tokens.len() × vocab_size` values, row `i` predicting the token after
    /// `tokens[i]`): teacher forcing, for accuracy statistics.
    All,
}

/// One conversation: a KV cache and a position.
pub trait Session {
    /// Appends `tokens` at the current position and returns the logits `rows` asks for. Backends that cannot
    /// return every row of one batched call may feed one token at a time for [`Rows::All`].
    fn run(&mut self, tokens: &[u32], rows: Rows) -> Result<Vec<f32>, BackendError>;

    /// Positions consumed so far.
    fn position(&self) -> usize;

    /// Appends `tokens` and returns the logits of the last one.
    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>, BackendError> {
        self.run(tokens, Rows::Last)
    }

    /// Appends `tokens` and returns the logits of every one of them.
    fn forward_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>, BackendError> {
        self.run(tokens, Rows::All)
    }
}

#[cfg(test)]
mod tests {
    use super::DeviceRequest;

    #[test]
    fn devices_parse_and_print_back_the_same() {
        for (given, shown) in [
            ("cpu", "cpu"),
            ("cuda", "cuda:0"),
            ("cuda:1", "cuda:1"),
            ("openvino", "openvino:CPU"),
            ("openvino:npu", "openvino:NPU"),
            ("openvino:GPU.1", "openvino:GPU.1"),
            ("qnn", "qnn:htp"),
            ("qnn:GPU", "qnn:gpu"),
            ("directml:2", "directml:2"),
        ] {
            let d = DeviceRequest::parse(given).unwrap();
            assert_eq!(d.to_string(), shown, "{given}");
            assert_eq!(DeviceRequest::parse(shown).unwrap(), d, "{shown} parses back");
        }
    }

    #[test]
    fn unknown_devices_and_targets_are_refused_by_name() {
        for (bad, says) in [
            ("tpu", "unknown device \"tpu\""),
            ("cuda:x", "bad device ordinal"),
            ("openvino:VPU", "unknown OpenVINO device"),
            ("openvino:GPU.x", "unknown OpenVINO device"),
            ("qnn:dsp", "unknown QNN backend"),
        ] {
            let e = DeviceRequest::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_named_target_survives_json_and_others_omit_it() {
        let ov = DeviceRequest::parse("openvino:NPU").unwrap();
        let j = serde_json::to_string(&ov).unwrap();
        assert!(j.contains("\"target\":\"NPU\""), "{j}");
        assert_eq!(serde_json::from_str::<DeviceRequest>(&j).unwrap(), ov);
        assert!(!serde_json::to_string(&DeviceRequest::cpu()).unwrap().contains("target"));
    }
}

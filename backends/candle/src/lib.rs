//! The candle backend: GGUF models of every architecture `edgebench_gguf::arch` describes, on candle-core quantized
//! tensors (CPU; CUDA and Metal behind the `cuda` and `metal` features).
//!
//! Kernel selection is candle's: on x86-64, candle 0.11 picks AVX2+FMA dot products at run time for Q4_0, Q8_0 and
//! the K-quants, and has no SIMD dot product for Q4_1 (a scalar loop). The facts this backend reports say which
//! path runs for each tensor type. Option `requantize=q8_0` (or `q4_0`) re-encodes the 2-D weights at load and
//! labels the result as converted; `requantize=f32` (or `f16`) dequantizes every 2-D weight, the embedding table
//! included: the accuracy reference.
//!
//! Threads: candle runs on rayon's global pool, sized once per process from `RAYON_NUM_THREADS`; the runner sets it
//! in each cell's child. The facts report the pool size candle actually uses.

mod cuda_libs;
mod model;

use candle_core::Device;
use edgebench_core::{BackendError, DeviceRequest, Loaded, ModelSpec, Request, TypedBackend};
use serde::Deserialize;

/// candle-core's version, as built.
pub const CANDLE_VERSION: &str = "candle-core 0.11.1";

/// The candle backend factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct CandleBackend;

/// The candle backend's options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandleOptions {
    /// Re-encode (or dequantize) the 2-D weights at load; absent: the file's types as stored.
    pub requantize: Option<Requantize>,
}

/// Target type of `requantize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Requantize {
    /// Q8_0 blocks.
    #[serde(rename = "q8_0")]
    Q8_0,
    /// Q4_0 blocks.
    #[serde(rename = "q4_0")]
    Q4_0,
    /// Half precision (dequantized).
    #[serde(rename = "f16")]
    F16,
    /// Single precision (dequantized): the accuracy reference.
    #[serde(rename = "f32")]
    F32,
}

fn device(req: &DeviceRequest) -> Result<Device, BackendError> {
    match req.kind.as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" if cfg!(feature = "cuda") => {
            cuda_libs::check()?;
            Device::new_cuda(req.index).map_err(|e| cuda_error(req, &e.to_string()))
        }
        "cuda" => Err(BackendError::NotCompiled { backend: "candle (cuda)".into(), feature: "cuda".into() }),
        "metal" if cfg!(feature = "metal") => {
            Device::new_metal(req.index).map_err(|e| BackendError::Runtime(e.to_string()))
        }
        "metal" => Err(BackendError::NotCompiled { backend: "candle (metal)".into(), feature: "metal".into() }),
        other => Err(BackendError::Unsupported(format!("candle cannot run on {other}"))),
    }
}

/// The driver's answers that mean "no such device here" (a skipped cell), not a failure of one that exists.
const CUDA_ABSENT: [&str; 5] = [
    "CUDA_ERROR_NO_DEVICE",
    "CUDA_ERROR_INVALID_DEVICE",
    "CUDA_ERROR_STUB_LIBRARY",
    "CUDA_ERROR_INSUFFICIENT_DRIVER",
    "CUDA_ERROR_NOT_SUPPORTED",
];

fn cuda_error(req: &DeviceRequest, e: &str) -> BackendError {
    let first = e.lines().next().unwrap_or_default();
    if CUDA_ABSENT.iter().any(|code| first.contains(code)) {
        BackendError::Unsupported(format!("no CUDA device {req} here (the CUDA driver answers {first})"))
    } else {
        BackendError::Runtime(format!("CUDA device {req}: {first}"))
    }
}

impl TypedBackend for CandleBackend {
    type Options = CandleOptions;
    type Prepared = ();
    const NAME: &'static str = "candle";

    fn check(&self, _model: &ModelSpec, req: Request<'_, CandleOptions>) -> Result<(), BackendError> {
        device(req.device).map(|_| ())
    }

    fn load(&self, model: &ModelSpec, req: Request<'_, CandleOptions>, _: &()) -> Loaded {
        let dev = device(req.device)?;
        Ok(Box::new(model::CandleModel::load(&model.path, req.options.requantize, dev)?))
    }

    fn devices(&self) -> Vec<String> {
        let mut d = vec!["cpu".to_string()];
        if cfg!(feature = "cuda") {
            match device(&DeviceRequest::parse("cuda:0").expect("a valid device")) {
                Ok(_) => d.push("cuda:0".into()),
                Err(e) => d.push(format!("no CUDA device ({e})")),
            }
        }
        if cfg!(feature = "metal") && Device::new_metal(0).is_ok() {
            d.push("metal".into());
        }
        d
    }

    fn versions(&self) -> Vec<String> {
        vec![CANDLE_VERSION.into(), CANDLE_VERSION.replace("candle-core", "candle-nn")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_cuda_device_is_unsupported_and_a_failing_one_an_error() {
        let req = DeviceRequest::parse("cuda:0").unwrap();
        let stub =
            cuda_error(&req, "DriverError(CUDA_ERROR_STUB_LIBRARY, \"<Failure when calling cuGetErrorString()>\")");
        assert!(matches!(&stub, BackendError::Unsupported(m) if m.starts_with("no CUDA device cuda:0 here")), "{stub}");
        let oom = cuda_error(&req, "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")");
        assert!(matches!(&oom, BackendError::Runtime(m) if m.contains("CUDA_ERROR_OUT_OF_MEMORY")), "{oom}");
    }

    #[test]
    fn cuda_without_the_feature_says_which_feature() {
        if cfg!(feature = "cuda") {
            eprintln!("skipped: built with the cuda feature");
            return;
        }
        let e = device(&DeviceRequest::parse("cuda:0").unwrap()).unwrap_err();
        assert!(e.to_string().contains("--features cuda"), "{e}");
    }
}

//! NVIDIA GPUs through NVML's total-energy counter (millijoules since the driver loaded, Volta and newer). The
//! library is loaded at run time: a machine without the driver gets "unavailable", not a link error.

use std::ffi::OsStr;
use std::sync::Arc;

use nvml_wrapper::Nvml;

use super::{Found, Meter, MeterInfo, Reading};

/// The shortest phase whose NVML energy is reported. The counter moves in steps: on the H200 (driver 580) they were
/// 15.3 J at ~130 W, one every ~0.12 s (ci/gpu-run.sh's tg128 cells, 2026-12-04), so a phase needs about eight steps
/// for its figure to be within ~12% of the truth; a shorter one gets none (`energy_below_resolution`).
pub const NVML_MIN_PHASE_S: f64 = 1.0;

/// One GPU's energy counter.
pub struct NvmlMeter {
    info: MeterInfo,
    nvml: Arc<Nvml>,
    index: u32,
}

impl Meter for NvmlMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, String> {
        let mj = self
            .nvml
            .device_by_index(self.index)
            .and_then(|d| d.total_energy_consumption())
            .map_err(|e| format!("NVML GPU {}: {e}", self.index))?;
        Ok(Reading::Energy { joules: mj as f64 * 1e-3, wrap_joules: None })
    }
}

/// Loads NVML from the driver's library; the error says why there is none.
pub(crate) fn init() -> Result<Nvml, String> {
    // The driver installs libnvidia-ml.so.1; the unversioned name exists only with development packages.
    Nvml::builder()
        .lib_path(OsStr::new("libnvidia-ml.so.1"))
        .init()
        .or_else(|_| Nvml::init())
        .map_err(|e| format!("NVML not loadable (no NVIDIA driver here?): {e}"))
}

/// One meter per GPU NVML sees, or one unavailable entry saying why there is none.
pub fn discover() -> Vec<Found> {
    let nvml = match init() {
        Ok(n) => Arc::new(n),
        Err(e) => return vec![Found::unavailable("nvml", "libnvidia-ml.so.1", "gpu", e)],
    };
    let count = match nvml.device_count() {
        Ok(c) => c,
        Err(e) => {
            return vec![Found::unavailable("nvml", "libnvidia-ml.so.1", "gpu", format!("NVML device count: {e}"))]
        }
    };
    (0..count)
        .map(|index| {
            let gpu = nvml.device_by_index(index).and_then(|d| d.name()).unwrap_or_else(|_| "GPU".into());
            let info = MeterInfo {
                name: format!("nvml:{index}"),
                source: format!("NVML total energy, {gpu}"),
                scope: "gpu".into(),
            };
            let mut m = NvmlMeter { info, nvml: nvml.clone(), index };
            match m.read() {
                Ok(_) => Found::Ok(Box::new(m)),
                Err(e) => Found::Unavailable(m.info.clone(), format!("{e} (the energy counter needs Volta or newer)")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// Where NVIDIA's driver is present the GPUs are meters; elsewhere the one entry says NVML is not loadable.
    #[test]
    fn nvml_is_a_meter_or_a_reason() {
        let found = super::discover();
        assert!(!found.is_empty());
        let driver = std::path::Path::new("/proc/driver/nvidia/gpus").exists();
        if !driver {
            assert_eq!(found.len(), 1);
            assert!(found[0].reason().unwrap().contains("NVML not loadable"), "{:?}", found[0].reason());
        }
        for f in &found {
            assert!(f.name().starts_with("nvml"));
        }
    }
}

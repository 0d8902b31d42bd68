//! Notes on how the GPU memory column was measured, one per device and method, and the reasons where it was not.

use std::collections::BTreeSet;

use edgebench_core::device_memory::{DeviceMemoryReading, DeviceMemorySource};
use edgebench_core::results::RunResults;

/// One line per distinct way the run's GPU cells had their device memory measured (or not).
pub fn notes(r: &RunResults) -> Vec<String> {
    let mut lines = BTreeSet::new();
    for c in &r.cells {
        let line = match &c.device_memory {
            None => continue,
            Some(DeviceMemoryReading::Measured(m)) => {
                let how = match m.source {
                    DeviceMemorySource::Process => "NVML's figure for the cell's process".to_string(),
                    DeviceMemorySource::DeviceDelta => format!(
                        "the device's used memory above its {:.0} MiB before the load (NVML listed no figure for \
                         the process)",
                        m.used_before_mib
                    ),
                };
                format!(
                    "GPU mem ({}, {:.0} MiB): peak of {how}, sampled every {:.0} ms",
                    m.device, m.total_mib, m.interval_ms
                )
            }
            Some(DeviceMemoryReading::Unavailable { reason }) => {
                format!("GPU mem of {}: not measured: {reason}", c.key.device)
            }
        };
        lines.insert(line);
    }
    lines.into_iter().collect()
}

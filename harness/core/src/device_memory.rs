//! GPU memory over one cell, as NVML saw it: the cell process's own allocation where the driver reports it per
//! process, else the device's used memory above what it was before the model loaded.

use serde::{Deserialize, Serialize};

/// How [`DeviceMemory::peak_mib`] was measured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeviceMemorySource {
    /// NVML's per-process figure for the cell's own process (`nvmlDeviceGetComputeRunningProcesses`): the CUDA
    /// context, the weights, caches and scratch buffers that process holds.
    Process,
    /// The device's used memory (`nvmlDeviceGetMemoryInfo`) minus its value before the load: NVML listed no figure
    /// for this process (a container's PID namespace hides it), so anything else on the GPU meanwhile counts too.
    DeviceDelta,
}

/// Device memory of one cell, sampled while it ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceMemory {
    /// The cell's device and the GPU's name (`cuda:0, NVIDIA H200`).
    pub device: String,
    /// What `peak_mib` is.
    pub source: DeviceMemorySource,
    /// Largest sampled figure, MiB (the metric `peak_device_mib`).
    pub peak_mib: f64,
    /// The device's used memory before the model loaded, MiB.
    pub used_before_mib: f64,
    /// Largest sampled used memory of the whole device, MiB.
    pub used_peak_mib: f64,
    /// The device's memory, MiB.
    pub total_mib: f64,
    /// Samples taken.
    pub samples: usize,
    /// Milliseconds between samples: an allocation shorter than this can be missed.
    pub interval_ms: f64,
    /// CPU time of the sampling thread / the cell's wall time (share of one core).
    pub sampler_core_share: f64,
    /// Samples NVML refused while the cell ran (the peaks are over the others).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_samples: usize,
    /// NVML's reason for the last refused sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_error: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Device memory of a cell, or why there is none.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeviceMemoryReading {
    /// Sampled.
    Measured(DeviceMemory),
    /// Not measurable here (no NVML, a device NVML does not list), with the reason.
    Unavailable {
        /// Why.
        reason: String,
    },
}

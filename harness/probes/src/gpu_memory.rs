//! A cell's GPU memory through NVML, sampled on a thread while the cell runs: the process's own figure where the
//! driver lists it, else the device's used memory above its value before the load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use edgebench_core::device_memory::{DeviceMemory, DeviceMemoryReading, DeviceMemorySource};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

const MIB: f64 = 1024.0 * 1024.0;

/// What the sampler saw so far.
#[derive(Debug, Default, Clone, Copy)]
struct Peaks {
    process: Option<u64>,
    used: u64,
    samples: usize,
    /// CPU seconds the sampling thread used.
    cpu_s: f64,
}

/// A running sampler for one `cuda:N` cell; [`GpuMemoryWatch::finish`] stops it.
pub struct GpuMemoryWatch {
    inner: Result<Running, String>,
}

struct Running {
    device: String,
    before: u64,
    total: u64,
    interval: Duration,
    stop: Arc<AtomicBool>,
    started: std::time::Instant,
    handle: JoinHandle<Result<Peaks, String>>,
}

/// The CUDA ordinal of a `cuda:N` device string; `None` for any other device.
pub fn cuda_index(device: &str) -> Option<u32> {
    device.strip_prefix("cuda:").and_then(|n| n.parse().ok())
}

fn sample(nvml: &Nvml, index: u32, pid: u32, peaks: &mut Peaks) -> Result<(), String> {
    let dev = nvml.device_by_index(index).map_err(|e| format!("NVML GPU {index}: {e}"))?;
    let used = dev.memory_info().map_err(|e| format!("NVML GPU {index} memory: {e}"))?.used;
    peaks.used = peaks.used.max(used);
    // Not every driver or container lists processes; the device's figure stands in then.
    if let Ok(list) = dev.running_compute_processes() {
        for p in list.iter().filter(|p| p.pid == pid) {
            if let UsedGpuMemory::Used(b) = p.used_gpu_memory {
                peaks.process = Some(peaks.process.unwrap_or(0).max(b));
            }
        }
    }
    peaks.samples += 1;
    Ok(())
}

impl GpuMemoryWatch {
    /// Starts sampling `device` every `interval` when it is `cuda:N`; `None` for other devices. NVML's GPU index is
    /// taken as the CUDA ordinal (true unless `CUDA_VISIBLE_DEVICES` reorders them).
    pub fn start(device: &str, interval: Duration) -> Option<GpuMemoryWatch> {
        let index = cuda_index(device)?;
        Some(GpuMemoryWatch { inner: Running::start(device, index, interval) })
    }

    /// Stops sampling and returns what it saw.
    pub fn finish(self) -> DeviceMemoryReading {
        let r = match self.inner {
            Ok(r) => r,
            Err(reason) => return DeviceMemoryReading::Unavailable { reason },
        };
        r.stop.store(true, Ordering::Relaxed);
        let peaks = match r.handle.join() {
            Ok(Ok(p)) => p,
            Ok(Err(reason)) => return DeviceMemoryReading::Unavailable { reason },
            Err(_) => return DeviceMemoryReading::Unavailable { reason: "the NVML sampler thread panicked".into() },
        };
        let (source, peak) = match peaks.process {
            Some(b) => (DeviceMemorySource::Process, b),
            None => (DeviceMemorySource::DeviceDelta, peaks.used.saturating_sub(r.before)),
        };
        DeviceMemoryReading::Measured(DeviceMemory {
            device: r.device,
            source,
            peak_mib: peak as f64 / MIB,
            used_before_mib: r.before as f64 / MIB,
            used_peak_mib: peaks.used as f64 / MIB,
            total_mib: r.total as f64 / MIB,
            samples: peaks.samples,
            interval_ms: r.interval.as_secs_f64() * 1e3,
            sampler_core_share: peaks.cpu_s / r.started.elapsed().as_secs_f64().max(1e-9),
        })
    }
}

impl Running {
    fn start(device: &str, index: u32, interval: Duration) -> Result<Running, String> {
        let nvml = crate::energy::nvml::init()?;
        let dev = nvml.device_by_index(index).map_err(|e| format!("NVML has no GPU {index}: {e}"))?;
        let name = dev.name().unwrap_or_else(|_| "GPU".into());
        let mem = dev.memory_info().map_err(|e| format!("NVML GPU {index} memory: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let pid = std::process::id();
        let handle = std::thread::Builder::new()
            .name("gpu-memory".into())
            .spawn(move || {
                let mut peaks = Peaks::default();
                loop {
                    sample(&nvml, index, pid, &mut peaks)?;
                    if flag.load(Ordering::Relaxed) {
                        peaks.cpu_s = crate::energy::monitor::thread_cpu_seconds();
                        return Ok(peaks);
                    }
                    std::thread::sleep(interval);
                }
            })
            .map_err(|e| format!("cannot start the NVML sampler thread: {e}"))?;
        Ok(Running {
            device: format!("{device}, {name}"),
            before: mem.used,
            total: mem.total,
            interval,
            stop,
            started: std::time::Instant::now(),
            handle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cuda_devices_are_watched() {
        assert_eq!(cuda_index("cuda:0"), Some(0));
        assert_eq!(cuda_index("cuda:3"), Some(3));
        assert_eq!(cuda_index("cpu"), None);
        assert_eq!(cuda_index("cuda:x"), None);
        assert!(GpuMemoryWatch::start("cpu", Duration::from_millis(5)).is_none());
    }

    /// Without NVIDIA's driver a GPU cell's reading says why it has none; with it, the sampler took samples.
    #[test]
    fn a_gpu_cell_is_sampled_or_says_why_not() {
        let w = GpuMemoryWatch::start("cuda:0", Duration::from_millis(5)).expect("cuda:0 is watched");
        std::thread::sleep(Duration::from_millis(20));
        match w.finish() {
            DeviceMemoryReading::Unavailable { reason } => {
                assert!(!std::path::Path::new("/proc/driver/nvidia/gpus").exists(), "{reason}");
                assert!(reason.contains("NVML"), "{reason}");
            }
            DeviceMemoryReading::Measured(m) => {
                assert!(m.samples >= 2 && m.total_mib > 0.0 && m.used_peak_mib >= m.used_before_mib, "{m:?}");
            }
        }
    }
}

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
#[derive(Debug, Default, Clone)]
struct Peaks {
    process: Option<u64>,
    used: u64,
    samples: usize,
    /// Samples NVML refused, and the last reason.
    failed: usize,
    last_error: Option<String>,
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
    handle: JoinHandle<Peaks>,
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
            Ok(p) => p,
            Err(_) => return DeviceMemoryReading::Unavailable { reason: "the NVML sampler thread panicked".into() },
        };
        reading(peaks, r.device, r.before, r.total, r.interval, r.started.elapsed())
    }
}

/// What the sampler's `peaks` say about the cell: measured over the samples NVML gave (refused ones counted), or
/// unavailable when it gave none.
fn reading(
    peaks: Peaks,
    device: String,
    before: u64,
    total: u64,
    interval: Duration,
    elapsed: Duration,
) -> DeviceMemoryReading {
    if peaks.samples == 0 {
        let reason = peaks.last_error.unwrap_or_else(|| "NVML gave no sample".into());
        return DeviceMemoryReading::Unavailable { reason };
    }
    let (source, peak) = match peaks.process {
        Some(b) => (DeviceMemorySource::Process, b),
        None => (DeviceMemorySource::DeviceDelta, peaks.used.saturating_sub(before)),
    };
    DeviceMemoryReading::Measured(DeviceMemory {
        device,
        source,
        peak_mib: peak as f64 / MIB,
        used_before_mib: before as f64 / MIB,
        used_peak_mib: peaks.used as f64 / MIB,
        total_mib: total as f64 / MIB,
        samples: peaks.samples,
        interval_ms: interval.as_secs_f64() * 1e3,
        sampler_core_share: peaks.cpu_s / elapsed.as_secs_f64().max(1e-9),
        failed_samples: peaks.failed,
        sample_error: peaks.last_error,
    })
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
                    // A refused sample is counted and sampling goes on: the peaks so far stay measured.
                    if let Err(e) = sample(&nvml, index, pid, &mut peaks) {
                        peaks.failed += 1;
                        peaks.last_error = Some(e);
                    }
                    if flag.load(Ordering::Relaxed) {
                        peaks.cpu_s = crate::energy::monitor::thread_cpu_seconds();
                        return peaks;
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

    /// Refused samples keep the peaks the others measured; with no sample at all the reading says why.
    #[test]
    fn refused_samples_keep_the_peaks_measured() {
        let (ms, s) = (Duration::from_millis(20), Duration::from_secs(2));
        let refused = "NVML GPU 0 memory: Unknown Error".to_string();
        let peaks = Peaks {
            process: Some(800 << 20),
            used: 900 << 20,
            samples: 40,
            failed: 2,
            last_error: Some(refused.clone()),
            cpu_s: 0.02,
        };
        match reading(peaks, "cuda:0, GPU".into(), 60 << 20, 1 << 37, ms, s) {
            DeviceMemoryReading::Measured(m) => {
                assert_eq!(
                    (m.source, m.peak_mib, m.samples, m.failed_samples),
                    (DeviceMemorySource::Process, 800.0, 40, 2)
                );
                assert_eq!(m.sample_error.as_deref(), Some(refused.as_str()));
                assert!((m.sampler_core_share - 0.01).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
        let delta = Peaks { used: 900 << 20, samples: 3, ..Peaks::default() };
        match reading(delta, "cuda:0, GPU".into(), 60 << 20, 1 << 37, ms, s) {
            DeviceMemoryReading::Measured(m) => {
                assert_eq!((m.source, m.peak_mib), (DeviceMemorySource::DeviceDelta, 840.0))
            }
            other => panic!("{other:?}"),
        }
        let none = Peaks { failed: 5, last_error: Some(refused.clone()), ..Peaks::default() };
        assert_eq!(
            reading(none, "cuda:0, GPU".into(), 0, 1 << 37, ms, s),
            DeviceMemoryReading::Unavailable { reason: refused }
        );
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

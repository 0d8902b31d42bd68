//! The device fingerprint: what machine a result came from.

use edgebench_core::results::DeviceFingerprint;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// ISA features relevant to inference kernels that this CPU reports at run time.
pub fn isa_features() -> Vec<String> {
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! detect {
            ($($name:tt),*) => { $( if std::is_x86_feature_detected!($name) { f.push($name.to_string()); } )* };
        }
        detect!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "bmi2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16",
            "avxvnni"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! detect {
            ($($name:tt),*) => { $( if std::arch::is_aarch64_feature_detected!($name) { f.push($name.to_string()); } )* };
        }
        detect!("neon", "dotprod", "i8mm", "fp16", "bf16", "sve", "sve2");
    }
    f
}

/// Hypervisor name, or `none`.
fn virtualization() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hv_flag = cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|w| w == "hypervisor"));
    let vendor = read("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
    let product = read("/sys/class/dmi/id/product_name").unwrap_or_default();
    let known = ["QEMU", "KVM", "VMware", "VirtualBox", "Xen", "Microsoft", "Amazon EC2", "Google", "Firecracker"];
    if let Some(k) = known.iter().find(|k| vendor.contains(*k) || product.contains(*k)) {
        return k.to_string();
    }
    if hv_flag {
        "yes (hypervisor flag; vendor unknown)".into()
    } else {
        "none".into()
    }
}

/// GPUs visible through the NVIDIA driver's procfs (no library needed).
fn gpus() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/driver/nvidia/gpus") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("information")).ok())
        .filter_map(|info| info.lines().find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string())))
        .collect()
}

/// Fingerprints this machine; `energy` says where sysfs is and which external meter the run uses.
pub fn fingerprint(energy: &crate::energy::EnergySpec) -> DeviceFingerprint {
    let root = std::path::Path::new(&energy.sysfs_root);
    // The external command is named, not started: the cells start it.
    let mut energy_meters: Vec<String> =
        crate::energy::discover(&crate::energy::EnergySpec { command: None, ..energy.clone() })
            .iter()
            .map(crate::energy::Found::describe)
            .collect();
    if let Some(cmd) = &energy.command {
        energy_meters.insert(0, format!("external: --energy-cmd {cmd:?}"));
    }
    let thermal_sensors = match crate::thermal::ThermalProbe::discover(root) {
        Ok(p) => p.describe(),
        Err(e) => vec![format!("none: {e}")],
    };
    use sysinfo::System;
    let mut sys = System::new();
    sys.refresh_memory();
    sys.refresh_cpu_all();
    let cpu_model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    DeviceFingerprint {
        cpu_model,
        arch: std::env::consts::ARCH.into(),
        physical_cores: System::physical_core_count(),
        logical_cpus: crate::process::logical_cpus(),
        isa_features: isa_features(),
        ram_bytes: sys.total_memory(),
        os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.into()),
        kernel: System::kernel_version().unwrap_or_default(),
        cpu_governor: read(&format!(
            "{}/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            energy.sysfs_root.trim_end_matches('/')
        )),
        virtualization: virtualization(),
        gpus: gpus(),
        hostname: System::host_name().unwrap_or_default(),
        power_source: crate::energy::power_source(root),
        energy_meters,
        thermal_sensors,
        limits: None,
        memory_bandwidth: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_has_the_basics() {
        let f = super::fingerprint(&crate::energy::EnergySpec::default());
        assert!(!f.power_source.is_empty() && !f.energy_meters.is_empty() && !f.thermal_sensors.is_empty());
        assert!(f.logical_cpus >= 1 && f.ram_bytes > 0);
        assert!(!f.cpu_model.is_empty() && !f.arch.is_empty());
    }
}

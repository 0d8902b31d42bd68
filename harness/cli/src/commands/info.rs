//! `edgebench device` and `edgebench backends`.

use std::process::ExitCode;

use anyhow::Context;

use crate::backends;
use crate::cli::Format;

pub fn device(format: Format) -> anyhow::Result<ExitCode> {
    let spec = edgebench_probes::energy::EnergySpec { sysfs_root: super::sysfs_root(), ..Default::default() };
    let f = edgebench_probes::device::fingerprint(&spec);
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&f)?),
        Format::Table => {
            println!("cpu:            {} ({})", f.cpu_model, f.arch);
            println!(
                "cores:          {} physical, {} logical",
                f.physical_cores.map_or("?".into(), |c| c.to_string()),
                f.logical_cpus
            );
            println!("isa features:   {}", f.isa_features.join(" "));
            println!("compiled for:   {}", crate::build_info::compiled_cpu_features().join(" "));
            println!("ram:            {:.1} GiB", f.ram_bytes as f64 / (1u64 << 30) as f64);
            println!("os / kernel:    {} / {}", f.os, f.kernel);
            println!("cpu governor:   {}", f.cpu_governor.as_deref().unwrap_or("not exposed"));
            println!("virtualization: {}", f.virtualization);
            println!("gpus:           {}", if f.gpus.is_empty() { "none found".into() } else { f.gpus.join(", ") });
            println!("power source:   {}", f.power_source);
            println!("energy meters:");
            for m in &f.energy_meters {
                println!("  {m}");
            }
            println!("thermal:");
            for t in &f.thermal_sensors {
                println!("  {t}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn backends(ort_probe: Option<&str>) -> anyhow::Result<ExitCode> {
    if let Some(kind) = ort_probe {
        for line in backends::ort_probe(kind) {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    for (name, feature, compiled) in backends::KNOWN {
        let b = backends::get(name)?;
        if *compiled {
            let v = b.versions().join(", ");
            println!("{name:<8} compiled in   devices here: {:<16} {v}", b.devices().join(", "));
        } else {
            println!("{name:<8} not compiled in: rebuild with --features {feature}");
        }
    }
    if backends::KNOWN.iter().any(|(n, _, on)| *n == "ort" && *on) {
        // One ONNX Runtime library per process: each accelerator's is asked in a child of its own.
        println!("ort accelerator libraries:");
        let exe = std::env::current_exe().context("finding the edgebench binary to probe ONNX Runtime libraries")?;
        for kind in ["openvino", "qnn"] {
            let out = std::process::Command::new(&exe)
                .args(["backends", "--ort-probe", kind])
                .stderr(std::process::Stdio::piped())
                .output()
                .with_context(|| format!("probing the {kind} library"))?;
            // Only the probe's own lines: a vendor library may print to stdout too (QNN's does).
            for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with(kind)) {
                println!("  {line}");
            }
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                println!("  {kind}: the probe failed ({}): {}", out.status, err.lines().last().unwrap_or(""));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

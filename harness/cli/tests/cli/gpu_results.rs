//! The H200 results committed under reports/measured (issue 25's GPU run) still load and render with this build, and
//! hold what the README's GPU table says they hold: every GPU cell measured, its device memory from NVML's per-process
//! figure, llama.cpp's layers all offloaded, decode energy from phases long enough for NVML's counter.

use std::path::PathBuf;

use crate::common::{edgebench, results, text};

fn measured() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reports/measured/h200-20261204")
}

#[test]
fn the_h200_results_load_render_and_hold_what_the_readme_says() {
    let dir = measured();
    let files: Vec<String> = ["candle", "llamacpp", "llamacpp-fa-off", "energy-candle", "energy-llamacpp"]
        .iter()
        .map(|n| dir.join(format!("results-{n}.json")).to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = ["report"].into_iter().chain(files.iter().map(String::as_str)).collect();
    let o = edgebench(&[args.as_slice(), &["--format", "markdown"]].concat(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.contains("peak_device_mib") && md.contains("GPU mem (cuda:0, NVIDIA H200"), "{md}");
    let mut gpu_cells = 0;
    for f in &files {
        let r = results(std::path::Path::new(f));
        for c in r["cells"].as_array().unwrap() {
            assert_eq!(c["status"], "ok", "{f}: {}", c["key"]);
            if c["key"]["device"] != "cuda:0" {
                continue;
            }
            gpu_cells += 1;
            assert_eq!(c["device_memory"]["source"], "process", "{f}: {}", c["key"]);
            assert!(c["metrics"]["peak_device_mib"]["summary"]["median"].as_f64().unwrap() > 500.0);
            let notes = c["backend"]["notes"].to_string();
            if c["key"]["backend"] == "llamacpp" {
                assert!(notes.contains("offloaded 31/31 layers to CUDA0 (NVIDIA H200)"), "{notes}");
            }
            if f.contains("energy-") {
                let j = &c["metrics"]["decode_j_per_token"]["samples"];
                assert_eq!(j.as_array().map(Vec::len), Some(3), "{f}: {j}");
                let flags = c["validity"]["flags"].to_string();
                assert!(!flags.contains("energy_below_resolution"), "{flags}");
            }
        }
    }
    assert_eq!(gpu_cells, 2 + 2 + 2 + 1 + 1);
}

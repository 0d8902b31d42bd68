//! `edgebench fleet plan` and `edgebench fleet collect`; and the reading of fleet indexes for `report` and `gate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use edgebench_core::results::RunResults;

/// Plans `fleet` into `out` and prints the commands that run and collect it.
pub fn plan(fleet: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let f = edgebench_fleet::FleetFile::read(fleet)?;
    let plan = edgebench_fleet::plan(&f, fleet, out, env!("CARGO_PKG_VERSION"))?;
    let dir = out.canonicalize().with_context(|| format!("--out {}", out.display()))?;
    for d in &plan.devices {
        eprintln!(
            "{}: {}@{}:{} ({}): edgebench {}",
            d.device.name,
            d.device.user,
            d.device.address,
            d.device.port,
            d.device.arch,
            d.args.join(" ")
        );
    }
    println!("ansible-playbook -i {0}/inventory.json ci/fleet/playbook.yml -e fleet_dir={0}", dir.display());
    println!("edgebench fleet collect {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Collects `dir`: exit 0 when every device's results came back valid and as labelled, 2 otherwise.
pub fn collect(dir: &Path) -> anyhow::Result<ExitCode> {
    let index = edgebench_fleet::collect(dir)?;
    let mut bad = 0;
    for d in &index.devices {
        let shown = edgebench_core::text::terminal_safe(&d.reasons.join("; "));
        match d.status.as_str() {
            "ok" => println!("{}: ok ({})", d.name, d.results.as_deref().unwrap_or("")),
            other => {
                bad += 1;
                println!("{}: {other}: {shown}", d.name);
            }
        }
    }
    println!(
        "index: {} (ansible {}, edgebench {})",
        dir.join("fleet.json").display(),
        index.ansible_version,
        index.edgebench_version
    );
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// The runs in `paths`: a results file as itself, a fleet index as one run per device (failed devices as failed
/// cells with the reason).
pub fn read_runs(paths: &[PathBuf]) -> anyhow::Result<Vec<RunResults>> {
    let mut runs = Vec::new();
    for p in paths {
        if edgebench_fleet::collect::is_index(p) {
            runs.extend(edgebench_fleet::load_index(p)?.into_iter().map(|(_, r)| r));
        } else {
            runs.push(edgebench_runner::results_io::read(p).with_context(|| format!("reading {}", p.display()))?);
        }
    }
    Ok(runs)
}

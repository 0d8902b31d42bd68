//! `edgebench fleet collect`: each device's fetched results read and checked (schema, summaries against samples),
//! its fingerprint compared with the fleet file (architecture, CPU model, CPUs: a host that differs is flagged
//! mislabelled), a device with no results turned into failed cells with the playbook's reason, and one
//! `DIR/fleet.json` index written. [`load_index`] gives `report` and `gate` a run per device.

use std::path::{Path, PathBuf};

use edgebench_core::results::{CellKey, CellResult, CellStatus, DeviceFingerprint, FailureKind, ModelInfo, RunResults};
use serde::{Deserialize, Serialize};

use crate::plan::{plan_path, Plan, PlannedDevice};
use crate::{io, FleetError};

/// Schema version of `fleet.json`.
pub const INDEX_VERSION: u32 = 1;

/// What the playbook wrote for a device (`DIR/status/<name>.json`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Status {
    status: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    ansible_version: String,
}

/// One device in the index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceEntry {
    /// Its name in the fleet file.
    pub name: String,
    /// `ok` (results valid), `mislabelled` (valid, but the host is not what the fleet file says), `failed` or
    /// `unreachable`.
    pub status: String,
    /// Why it failed, or what did not match.
    pub reasons: Vec<String>,
    /// The results file, relative to the fleet folder (absent when none came back).
    pub results: Option<String>,
    /// Its SHA-256.
    pub sha256: Option<String>,
    /// The plan for it.
    pub planned: PlannedDevice,
}

/// `DIR/fleet.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FleetIndex {
    /// Always [`INDEX_VERSION`].
    pub fleet_version: u32,
    /// The fleet file and its SHA-256.
    pub fleet_file: String,
    /// SHA-256 of the fleet file.
    pub fleet_sha256: String,
    /// Ansible's version, as the playbook reported it.
    pub ansible_version: String,
    /// The controller's edgebench version.
    pub edgebench_version: String,
    /// Every planned device.
    pub devices: Vec<DeviceEntry>,
}

fn read_plan(dir: &Path) -> Result<Plan, FleetError> {
    let p = plan_path(dir);
    let text = std::fs::read_to_string(&p).map_err(|e| FleetError::Folder {
        path: p.display().to_string(),
        message: format!("{e} (run `edgebench fleet plan FLEET.toml --out {}` first)", dir.display()),
    })?;
    serde_json::from_str(&text)
        .map_err(|e| FleetError::Folder { path: p.display().to_string(), message: e.to_string() })
}

/// Differences between what the fleet file says of a device and what its results say.
pub fn mislabelled(d: &crate::Device, f: &DeviceFingerprint) -> Vec<String> {
    let mut out = Vec::new();
    if d.arch != f.arch {
        out.push(format!("architecture {} but the fleet file says {}", f.arch, d.arch));
    }
    if let Some(m) = &d.cpu_model {
        if !f.cpu_model.to_lowercase().contains(&m.to_lowercase()) {
            out.push(format!("CPU {:?} but the fleet file says {m:?}", f.cpu_model));
        }
    }
    if let Some(c) = d.cores {
        if c != f.logical_cpus {
            out.push(format!("{} logical CPUs but the fleet file says {c}", f.logical_cpus));
        }
    }
    out
}

/// Checks what came back into `dir` and writes `dir/fleet.json`.
pub fn collect(dir: &Path) -> Result<FleetIndex, FleetError> {
    let plan = read_plan(dir)?;
    let mut devices = Vec::new();
    let mut ansible = String::new();
    for p in &plan.devices {
        let name = &p.device.name;
        let status_path = dir.join("status").join(format!("{name}.json"));
        let status: Option<Status> = match std::fs::read_to_string(&status_path) {
            Ok(t) => {
                let mut s: Status = serde_json::from_str(&t).map_err(|e| FleetError::Folder {
                    path: status_path.display().to_string(),
                    message: e.to_string(),
                })?;
                // Terminal output the playbook quoted: line ends as in a file.
                s.reason = s.reason.replace("\r\n", "\n").replace('\r', "");
                Some(s)
            }
            Err(_) => None,
        };
        if let Some(s) = &status {
            if ansible.is_empty() {
                ansible = s.ansible_version.clone();
            }
        }
        let rel = format!("results/{name}/results.json");
        let results_path = dir.join(&rel);
        let mut e = DeviceEntry {
            name: name.clone(),
            status: "failed".into(),
            reasons: Vec::new(),
            results: None,
            sha256: None,
            planned: p.clone(),
        };
        match (results_path.is_file(), &status) {
            (true, _) => match edgebench_runner::results_io::read(&results_path) {
                Ok(r) => {
                    let bytes = std::fs::read(&results_path).map_err(io(&results_path))?;
                    e.sha256 = Some(edgebench_models::registry::sha256_hex(&bytes));
                    e.results = Some(rel);
                    e.reasons = mislabelled(&p.device, &r.device);
                    e.status = if e.reasons.is_empty() { "ok" } else { "mislabelled" }.into();
                    if let Some(s) = status.as_ref().filter(|s| s.status != "ok") {
                        e.reasons.push(format!("the playbook reported {}: {}", s.status, s.reason));
                    }
                }
                Err(err) => e.reasons.push(format!("results file not valid: {err}")),
            },
            (false, Some(s)) => {
                e.status = if s.status == "unreachable" { "unreachable".into() } else { "failed".into() };
                e.reasons.push(if s.reason.is_empty() {
                    format!("{} (no reason given)", s.status)
                } else {
                    s.reason.clone()
                });
            }
            (false, None) => e.reasons.push(
                "no results and no status: the playbook never reached this device (was ansible-playbook run with \
                 this folder's inventory?)"
                    .into(),
            ),
        }
        devices.push(e);
    }
    let index = FleetIndex {
        fleet_version: INDEX_VERSION,
        fleet_file: plan.fleet_file,
        fleet_sha256: plan.fleet_sha256,
        ansible_version: if ansible.is_empty() { "unknown (no device reported it)".into() } else { ansible },
        edgebench_version: plan.edgebench_version,
        devices,
    };
    let p = dir.join("fleet.json");
    std::fs::write(&p, serde_json::to_string_pretty(&index).expect("json") + "\n").map_err(io(&p))?;
    Ok(index)
}

/// Whether `path` is a fleet index (`fleet.json`) rather than a results file.
pub fn is_index(path: &Path) -> bool {
    let Ok(text) = edgebench_core::limits::read_text(path, edgebench_core::limits::RESULTS_FILE, "results file") else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v.get("fleet_version").is_some())
}

/// A device's results as `report` and `gate` see them: its run (the run id prefixed with the device's name), or for
/// a device that failed, a run of failed cells (one per planned model × backend × threads) carrying the reason.
pub fn load_index(path: &Path) -> Result<Vec<(String, RunResults)>, FleetError> {
    let bad = |message: String| FleetError::Folder { path: path.display().to_string(), message };
    let text = edgebench_core::limits::read_text(path, edgebench_core::limits::RESULTS_FILE, "fleet index")
        .map_err(|e| bad(e.to_string()))?;
    let index: FleetIndex = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if index.fleet_version != INDEX_VERSION {
        return Err(bad(format!("fleet_version {} (this edgebench reads {INDEX_VERSION})", index.fleet_version)));
    }
    let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    for d in &index.devices {
        let run = match &d.results {
            Some(rel) => {
                let p = dir.join(rel);
                let bytes = std::fs::read(&p).map_err(io(&p))?;
                if Some(edgebench_models::registry::sha256_hex(&bytes)) != d.sha256 {
                    return Err(bad(format!("{}: its SHA-256 is not the one the index recorded", p.display())));
                }
                let mut r = edgebench_runner::results_io::read(&p).map_err(|e| bad(e.to_string()))?;
                r.run_id = format!("{}: {}", d.name, r.run_id);
                r
            }
            None => failed_run(d, &index),
        };
        out.push((d.name.clone(), run));
    }
    Ok(out)
}

fn failed_run(d: &DeviceEntry, index: &FleetIndex) -> RunResults {
    let p = &d.planned;
    let message = format!("device {} {}: {}", d.name, d.status, d.reasons.join("; "));
    let mut cells = Vec::new();
    let threads = if p.threads.is_empty() { vec![0] } else { p.threads.clone() };
    for (model, _) in &p.models {
        for b in &p.backends {
            for t in &threads {
                let key = CellKey {
                    model: model.clone(),
                    backend: b.clone(),
                    device: "cpu".into(),
                    threads: *t,
                    workload: format!("suite {}", p.suite),
                };
                cells.push(CellResult::new(
                    key,
                    CellStatus::Failed { kind: FailureKind::Error, message: message.clone() },
                ));
            }
        }
    }
    RunResults {
        schema_version: edgebench_core::results::SCHEMA_VERSION,
        run_id: format!("{}: not run", d.name),
        started_at: String::new(),
        finished_at: None,
        manifest: edgebench_core::results::Manifest {
            edgebench_version: index.edgebench_version.clone(),
            ..Default::default()
        },
        device: DeviceFingerprint {
            cpu_model: p.device.cpu_model.clone().unwrap_or_else(|| format!("{} (not reached)", d.name)),
            arch: p.device.arch.clone(),
            logical_cpus: p.device.cores.unwrap_or(0),
            hostname: d.name.clone(),
            ..Default::default()
        },
        models: p
            .models
            .iter()
            .map(|(id, sha)| (id.clone(), ModelInfo { id: id.clone(), sha256: sha.clone(), ..Default::default() }))
            .collect(),
        cells,
    }
}

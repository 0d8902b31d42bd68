//! `edgebench fleet plan`: each device's settings resolved, its binary found by architecture, its models resolved
//! (fetched and verified on the controller), written as `DIR/inventory.json` (an Ansible inventory; YAML's JSON
//! subset) whose host variables tell `ci/fleet/playbook.yml` what to copy and run, and `DIR/plan.json`, what
//! `fleet collect` checks against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::file::{Device, FleetFile};
use crate::{io, FleetError};

/// What was planned for one device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedDevice {
    /// The device as the fleet file describes it.
    pub device: Device,
    /// Suite (built-in name, or `suite-<name>.toml` shipped).
    pub suite: String,
    /// Backends.
    pub backends: Vec<String>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Model ids as the device's results will name them (the shipped file names' stems), with their SHA-256.
    pub models: Vec<(String, String)>,
    /// The `edgebench` arguments run on the device.
    pub args: Vec<String>,
}

/// The plan written to `DIR/plan.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// The fleet file, as given.
    pub fleet_file: String,
    /// SHA-256 of its text.
    pub fleet_sha256: String,
    /// When the plan was made (UTC, RFC 3339).
    pub created_at: String,
    /// The controller's edgebench version.
    pub edgebench_version: String,
    /// Every device.
    pub devices: Vec<PlannedDevice>,
}

/// The plan's file in a fleet folder.
pub fn plan_path(dir: &Path) -> PathBuf {
    dir.join("plan.json")
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Plans `fleet` (read from `fleet_path`) into `out`: checks every device's binary and models first (an error names
/// the device and what is missing), then writes the inventory and the plan. `version` is the controller's
/// edgebench version.
pub fn plan(fleet: &FleetFile, fleet_path: &Path, out: &Path, version: &str) -> Result<Plan, FleetError> {
    let lock_wait_s = fleet.fleet.lock_wait_s.unwrap_or(7200);
    let mut hosts = serde_json::Map::new();
    let mut devices = Vec::new();
    let mut resolved: BTreeMap<String, edgebench_models::resolve::ResolvedModel> = BTreeMap::new();
    for d in &fleet.device {
        let dev_err = |message: String| FleetError::Device { device: d.name.clone(), message };
        let s = fleet.settings(d);
        let remote_dir = d.remote_dir.clone().or_else(|| fleet.fleet.remote_dir.clone());
        let remote_dir = remote_dir.unwrap_or_else(|| "/tmp/edgebench-fleet".into());
        let lock = d.lock.clone().or_else(|| fleet.fleet.lock.clone()).unwrap_or_else(|| "/tmp/edgebench.lock".into());
        let binary = fleet.binaries.get(&d.arch).map(|b| fleet.path(b)).ok_or_else(|| {
            dev_err(format!(
                "it is {} and [binaries] names no edgebench for {0} (build one, e.g. `cargo build --release --target \
                 {0}-unknown-linux-gnu`, and add `{0} = \"PATH\"`)",
                d.arch
            ))
        })?;
        if !binary.is_file() {
            return Err(dev_err(format!("its {} binary {} does not exist", d.arch, binary.display())));
        }
        let mut files = vec![json!({"src": binary.canonicalize().map_err(io(&binary))?, "dest": "edgebench"})];
        let suite = s.suite.clone().unwrap_or_else(|| "quick".into());
        let suite_arg = if suite.ends_with(".toml") {
            let p = fleet.path(&suite);
            if !p.is_file() {
                return Err(dev_err(format!("suite file {} does not exist", p.display())));
            }
            let name = format!("suite-{}", file_name(&p));
            files.push(json!({"src": p.canonicalize().map_err(io(&p))?, "dest": name}));
            format!("{remote_dir}/{name}")
        } else {
            suite.clone()
        };
        let backends = s.backends.clone().unwrap_or_else(|| vec!["native".into()]);
        let threads = s.threads.clone().unwrap_or_default();
        let mut args: Vec<String> =
            vec!["run".into(), "--suite".into(), suite_arg, "--backend".into(), backends.join(",")];
        if !threads.is_empty() {
            let t: Vec<String> = threads.iter().map(usize::to_string).collect();
            args.extend(["--threads".into(), t.join(",")]);
        }
        let mut models = Vec::new();
        let list: Vec<Option<String>> = match &s.models {
            Some(v) => v.iter().cloned().map(Some).collect(),
            None => vec![None],
        };
        for m in list {
            let arg =
                m.as_ref().map(|m| if m.ends_with(".gguf") { fleet.path(m).display().to_string() } else { m.clone() });
            let key = arg.clone().unwrap_or_default();
            if !resolved.contains_key(&key) {
                let r = edgebench_models::resolve::resolve(arg.as_deref(), &mut |_| {})
                    .map_err(|e| dev_err(format!("model {}: {e}", m.as_deref().unwrap_or("(the default model)"))))?;
                resolved.insert(key.clone(), r);
            }
            let r = &resolved[&key];
            let name = file_name(&r.spec.path);
            files.push(json!({"src": r.spec.path, "dest": format!("models/{name}")}));
            args.extend(["--model".into(), format!("{remote_dir}/models/{name}")]);
            let id = Path::new(&name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or(name);
            models.push((id, r.spec.sha256.clone()));
        }
        if let Some(cmd) = &s.energy_meter {
            args.extend(["--energy-cmd".into(), cmd.clone()]);
        }
        args.extend(s.extra_args.clone().unwrap_or_default());
        args.extend(["--force".into(), "--out".into(), format!("{remote_dir}/results.json")]);
        let mut host = serde_json::Map::new();
        host.insert("ansible_host".into(), json!(d.address));
        host.insert("ansible_port".into(), json!(d.port));
        host.insert("ansible_user".into(), json!(d.user));
        if let Some(k) = &d.ssh_key {
            host.insert("ansible_ssh_private_key_file".into(), json!(fleet.path(k)));
        }
        host.insert(
            "eb".into(),
            json!({
                "arch": d.arch,
                "remote_dir": remote_dir,
                "files": files,
                "args": args,
                "timeout_s": s.timeout_s.unwrap_or(3600),
                "lock": lock,
                "lock_wait_s": lock_wait_s,
            }),
        );
        hosts.insert(d.name.clone(), serde_json::Value::Object(host));
        devices.push(PlannedDevice { device: d.clone(), suite, backends, threads, models, args });
    }
    let earlier = out.join("results");
    if std::fs::read_dir(&earlier).is_ok_and(|mut d| d.next().is_some()) {
        return Err(FleetError::Folder {
            path: earlier.display().to_string(),
            message: "holds results of an earlier fleet run; choose another --out (nothing is overwritten)".into(),
        });
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let text = std::fs::read(fleet_path).map_err(io(fleet_path))?;
    let plan = Plan {
        fleet_file: fleet_path.display().to_string(),
        fleet_sha256: edgebench_models::registry::sha256_hex(&text),
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        edgebench_version: version.into(),
        devices,
    };
    let inventory = json!({"fleet": {"hosts": hosts}});
    let write = |name: &str, v: String| -> Result<(), FleetError> {
        let p = out.join(name);
        std::fs::write(&p, v).map_err(io(&p))
    };
    write("inventory.json", serde_json::to_string_pretty(&inventory).expect("json") + "\n")?;
    write("plan.json", serde_json::to_string_pretty(&plan).expect("json") + "\n")?;
    for sub in ["results", "status"] {
        let p = out.join(sub);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    Ok(plan)
}

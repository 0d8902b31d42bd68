//! The fleet file (TOML): defaults in `[fleet]`, overrides per `[class.NAME]` and per `[[device]]`, one
//! edgebench binary per architecture in `[binaries]`. Unknown keys are errors. Each device's settings are resolved
//! here once: device over class over fleet defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::FleetError;

/// Settings a class or a device may override.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Built-in suite name or a suite TOML file (relative to the fleet file).
    pub suite: Option<String>,
    /// Backends to run.
    pub backends: Option<Vec<String>>,
    /// Thread counts.
    pub threads: Option<Vec<usize>>,
    /// Registry ids, `ID@TYPE` variants or GGUF files (relative to the fleet file).
    pub models: Option<Vec<String>>,
    /// `--energy-cmd` on the device: a shell command printing joules or watts.
    pub energy_meter: Option<String>,
    /// More `edgebench run` arguments, e.g. `["--drift", "off"]`.
    pub extra_args: Option<Vec<String>>,
    /// Longest the run may take on the device, seconds (then it is killed and the device recorded as failed).
    pub timeout_s: Option<u64>,
}

impl Settings {
    fn over(&self, base: &Settings) -> Settings {
        Settings {
            suite: self.suite.clone().or_else(|| base.suite.clone()),
            backends: self.backends.clone().or_else(|| base.backends.clone()),
            threads: self.threads.clone().or_else(|| base.threads.clone()),
            models: self.models.clone().or_else(|| base.models.clone()),
            energy_meter: self.energy_meter.clone().or_else(|| base.energy_meter.clone()),
            extra_args: self.extra_args.clone().or_else(|| base.extra_args.clone()),
            timeout_s: self.timeout_s.or(base.timeout_s),
        }
    }
}

/// Fleet-wide settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Defaults for every device.
    #[serde(flatten)]
    pub defaults: Settings,
    /// The working folder on each device (default `/tmp/edgebench-fleet`).
    pub remote_dir: Option<String>,
    /// The device's lock file: two fleet runs never measure one device at once (default `/tmp/edgebench.lock`).
    pub lock: Option<String>,
    /// How long a run waits for another's lock on the device, seconds (default 7200).
    pub lock_wait_s: Option<u64>,
}

/// One device.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Unique name (letters, digits, `-`, `_`, `.`): the inventory host and the results folder.
    pub name: String,
    /// SSH address.
    pub address: String,
    /// SSH port (default 22).
    #[serde(default = "default_port")]
    pub port: u16,
    /// SSH user.
    pub user: String,
    /// Private key for SSH (default: the SSH agent / ssh's defaults).
    pub ssh_key: Option<String>,
    /// `uname -m` of the device: `x86_64`, `aarch64`, …; picks the binary and is checked before anything runs.
    pub arch: String,
    /// Its class, e.g. `rpi5` (settings from `[class.NAME]`).
    pub class: Option<String>,
    /// Expected CPU model (a substring of the one the device reports), checked by `fleet collect`.
    pub cpu_model: Option<String>,
    /// Expected logical CPUs, checked by `fleet collect`.
    pub cores: Option<usize>,
    /// Free-form labels, carried into the index.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// This device's working folder, when not the fleet's `remote_dir`.
    pub remote_dir: Option<String>,
    /// This device's lock file, when not the fleet's `lock`.
    pub lock: Option<String>,
    /// Per-device overrides.
    #[serde(flatten)]
    pub settings: Settings,
}

fn default_port() -> u16 {
    22
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// Defaults and fleet-wide options.
    #[serde(default)]
    pub fleet: Fleet,
    /// The edgebench binary for each architecture (relative to the fleet file).
    #[serde(default)]
    pub binaries: BTreeMap<String, String>,
    /// Settings by class name.
    #[serde(default)]
    pub class: BTreeMap<String, Settings>,
    /// The devices.
    #[serde(default)]
    pub device: Vec<Device>,
    /// Where the file was read from (set by [`FleetFile::read`]).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl FleetFile {
    /// Reads and checks `path`: unknown keys, duplicate or unsafe names, unknown classes and empty fleets are errors.
    pub fn read(path: &Path) -> Result<FleetFile, FleetError> {
        let err = |message: String| FleetError::File { path: path.display().to_string(), message };
        let text = edgebench_core::limits::read_text(path, edgebench_core::limits::SUITE_FILE, "fleet file")
            .map_err(|e| err(e.to_string()))?;
        let mut f: FleetFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        f.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if f.device.is_empty() {
            return Err(err("no [[device]]".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &f.device {
            let safe = !d.name.is_empty()
                && !d.name.starts_with('.')
                && d.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !safe {
                return Err(err(format!("device name {:?}: use letters, digits, '-', '_' or '.'", d.name)));
            }
            if !seen.insert(&d.name) {
                return Err(err(format!("device name {:?} appears twice", d.name)));
            }
            if let Some(c) = &d.class {
                if !f.class.contains_key(c) {
                    return Err(err(format!("device {}: class {c:?} has no [class.{c}] table", d.name)));
                }
            }
        }
        Ok(f)
    }

    /// A device's settings: its own, over its class's, over the fleet's defaults.
    pub fn settings(&self, d: &Device) -> Settings {
        let class = d.class.as_ref().and_then(|c| self.class.get(c)).cloned().unwrap_or_default();
        d.settings.over(&class.over(&self.fleet.defaults))
    }

    /// A path from the fleet file: `~/…` in the home folder, else relative to the fleet file's folder.
    pub fn path(&self, p: &str) -> PathBuf {
        if let (Some(rest), Some(home)) = (p.strip_prefix("~/"), std::env::var_os("HOME")) {
            return PathBuf::from(home).join(rest);
        }
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FleetFile, FleetError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fleet.toml");
        std::fs::write(&p, text).unwrap();
        FleetFile::read(&p)
    }

    const BASE: &str = r#"
[fleet]
suite = "quick"
backends = ["native"]
threads = [2]
[binaries]
x86_64 = "edgebench"
[class.rpi5]
threads = [4]
backends = ["native", "llamacpp"]
[[device]]
name = "pi-1"
address = "10.0.0.2"
user = "bench"
arch = "aarch64"
class = "rpi5"
threads = [1]
[[device]]
name = "laptop"
address = "10.0.0.3"
user = "bench"
arch = "x86_64"
"#;

    #[test]
    fn device_over_class_over_defaults() {
        let f = parse(BASE).unwrap();
        let pi = f.settings(&f.device[0]);
        assert_eq!(pi.threads, Some(vec![1]));
        assert_eq!(pi.backends, Some(vec!["native".into(), "llamacpp".into()]));
        assert_eq!(pi.suite.as_deref(), Some("quick"));
        let laptop = f.settings(&f.device[1]);
        assert_eq!((laptop.threads, f.device[1].port), (Some(vec![2]), 22));
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse(&BASE.replace("threads = [1]", "threds = [1]")).unwrap_err().to_string();
        assert!(e.contains("threds"), "{e}");
        let e = parse(&BASE.replace("name = \"laptop\"", "name = \"pi-1\"")).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let e = parse(&BASE.replace("name = \"laptop\"", "name = \"../x\"")).unwrap_err().to_string();
        assert!(e.contains("letters"), "{e}");
        let e = parse(&BASE.replace("class = \"rpi5\"", "class = \"rpi6\"")).unwrap_err().to_string();
        assert!(e.contains("[class.rpi6]"), "{e}");
        let e = parse("[fleet]\nsuite = \"quick\"\n").unwrap_err().to_string();
        assert!(e.contains("no [[device]]"), "{e}");
    }
}

//! Energy meters. Each meter yields either a cumulative energy counter (RAPL, NVML, hwmon `energy*_input`, an
//! external meter) or instantaneous power (battery, hwmon power rails) that the [`monitor`] integrates. A meter that
//! cannot be read is reported with its reason; nothing is ever estimated.

mod battery;
mod external;
mod hwmon;
pub mod monitor;
pub(crate) mod nvml;
pub use nvml::NVML_MIN_PHASE_S;
mod rapl;
pub mod sysfs;
#[cfg(test)]
pub(crate) mod testing;

use std::path::Path;

use edgebench_core::energy::{Availability, MeterResult};
use serde::{Deserialize, Serialize};

pub use battery::power_source;
pub use external::{parse_line as parse_external_line, parse_powermetrics_line, ExternalMeter};

/// Identity of a meter.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterInfo {
    /// Stable name (`rapl:package-0`).
    pub name: String,
    /// File, library or command read.
    pub source: String,
    /// What it measures (see [`MeterResult::scope`]).
    pub scope: String,
}

/// One reading of a meter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A cumulative counter, joules; it restarts from 0 after `wrap_joules` when that is known.
    Energy {
        /// Counter value.
        joules: f64,
        /// Counter range (RAPL `max_energy_range_uj`).
        wrap_joules: Option<f64>,
    },
    /// Instantaneous power, watts.
    Power {
        /// Watts.
        watts: f64,
    },
}

/// A source of energy figures.
pub trait Meter: Send {
    /// Name, source and scope.
    fn info(&self) -> &MeterInfo;
    /// Reads it now; the error names the file or command.
    fn read(&mut self) -> Result<Reading, String>;
}

/// A meter found, or one looked for and unusable.
pub enum Found {
    /// Readable.
    Ok(Box<dyn Meter>),
    /// Not readable, with the reason.
    Unavailable(MeterInfo, String),
}

impl Found {
    /// An unusable meter.
    pub fn unavailable(name: &str, source: &str, scope: &str, reason: String) -> Found {
        Found::Unavailable(MeterInfo { name: name.into(), source: source.into(), scope: scope.into() }, reason)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Found::Ok(m) => &m.info().name,
            Found::Unavailable(i, _) => &i.name,
        }
    }

    /// The reason it is unusable.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Found::Ok(_) => None,
            Found::Unavailable(_, r) => Some(r),
        }
    }

    /// The meter, when readable.
    pub fn ok(self) -> Option<Box<dyn Meter>> {
        match self {
            Found::Ok(m) => Some(m),
            Found::Unavailable(..) => None,
        }
    }

    /// A results entry with no figures yet.
    pub fn to_result(&self) -> MeterResult {
        let (info, availability) = match self {
            Found::Ok(m) => (m.info().clone(), Availability::Available),
            Found::Unavailable(i, r) => (i.clone(), Availability::Unavailable { reason: r.clone() }),
        };
        MeterResult {
            name: info.name,
            source: info.source,
            scope: info.scope,
            availability,
            idle_w: None,
            prefill_j: Vec::new(),
            decode_j: Vec::new(),
            error: None,
        }
    }

    /// `name: available` or `name: unavailable (reason)`, for the device fingerprint.
    pub fn describe(&self) -> String {
        match self.reason() {
            None => format!("{}: available", self.name()),
            Some(r) => format!("{}: unavailable ({r})", self.name()),
        }
    }
}

/// How a run asks for energy measurement (part of each cell's spec).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnergySpec {
    /// Root of the sysfs tree to read (`/`; tests use fake trees).
    pub sysfs_root: String,
    /// An external meter command (`--energy-cmd`).
    pub command: Option<String>,
    /// Meters whose sum is the headline figure (`--energy-meter`); empty: chosen by [`choose_primary`].
    pub primary: Vec<String>,
    /// Idle baseline before each cell, seconds (0: none; net figures are then absent).
    pub idle_s: f64,
    /// Sampling period of meters and sensors, ms.
    pub interval_ms: u64,
}

/// Default idle baseline, seconds.
pub const DEFAULT_IDLE_S: f64 = 3.0;
/// Default sampling period, ms.
pub const DEFAULT_INTERVAL_MS: u64 = 100;

impl Default for EnergySpec {
    fn default() -> Self {
        EnergySpec {
            sysfs_root: "/".into(),
            command: None,
            primary: Vec::new(),
            idle_s: DEFAULT_IDLE_S,
            interval_ms: DEFAULT_INTERVAL_MS,
        }
    }
}

/// Every meter this machine offers (or lacks), in a fixed order: external, RAPL, NVML, battery, hwmon, powermetrics.
pub fn discover(spec: &EnergySpec) -> Vec<Found> {
    let root = Path::new(&spec.sysfs_root);
    let mut v = Vec::new();
    if let Some(cmd) = &spec.command {
        v.push(match ExternalMeter::spawn(cmd) {
            Ok(m) => Found::Ok(Box::new(m)),
            Err(e) => Found::unavailable("external", cmd, "device", e),
        });
    }
    v.extend(rapl::discover(root));
    v.extend(nvml::discover());
    v.extend(battery::discover(root));
    v.extend(hwmon::discover(root));
    v.extend(external::discover_powermetrics());
    v
}

/// Picks the meters whose sum is the headline figure, and says why (or why there is none).
///
/// Order: the user's `--energy-meter` choice; an external meter (it sees the whole device); RAPL psys (the whole
/// platform); a discharging battery (the whole system); a board-input rail (`*_IN`, Jetson); otherwise every RAPL
/// package, plus the cell's GPU when it runs on CUDA. Meters that overlap (package and its core/dram subzones) are
/// never summed.
pub fn choose_primary(found: &[MeterResult], asked: &[String], device: &str) -> (Vec<String>, String) {
    let ok: Vec<&MeterResult> = found.iter().filter(|m| m.availability.is_available()).collect();
    let has = |n: &str| ok.iter().any(|m| m.name == n);
    if !asked.is_empty() {
        let missing: Vec<&String> = asked.iter().filter(|n| !has(n)).collect();
        if missing.is_empty() {
            return (asked.to_vec(), "chosen with --energy-meter".into());
        }
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return (Vec::new(), format!("--energy-meter names meters that are not available here: {}", names.join(", ")));
    }
    if ok.is_empty() {
        let reasons: Vec<String> = found
            .iter()
            .filter_map(|m| match &m.availability {
                Availability::Unavailable { reason } => Some(format!("{}: {reason}", m.name)),
                Availability::Available => None,
            })
            .collect();
        return (Vec::new(), format!("unavailable: no energy meter could be read ({})", reasons.join("; ")));
    }
    let first = |pred: &dyn Fn(&MeterResult) -> bool, why: &str| {
        ok.iter().find(|m| pred(m)).map(|m| (vec![m.name.clone()], why.to_string()))
    };
    if let Some(r) = first(&|m| m.name == "external", "the external meter (--energy-cmd) sees the whole device") {
        return r;
    }
    if let Some(r) = first(&|m| m.scope == "platform", "RAPL psys covers the whole platform") {
        return r;
    }
    if let Some(r) = first(&|m| m.scope == "system", "the discharging battery supplies the whole system") {
        return r;
    }
    if let Some(r) = first(&|m| m.scope == "rail" && m.name.ends_with("_IN"), "the board's input rail") {
        return r;
    }
    let mut names: Vec<String> = ok.iter().filter(|m| m.scope == "cpu-package").map(|m| m.name.clone()).collect();
    let packages = !names.is_empty();
    let mut why = "sum of the CPU packages (RAPL)".to_string();
    if let Some(gpu) = device.strip_prefix("cuda") {
        let idx = gpu.trim_start_matches(':');
        let idx = if idx.is_empty() { "0" } else { idx };
        if has(&format!("nvml:{idx}")) {
            names.push(format!("nvml:{idx}"));
            why = if packages {
                format!("{why} plus the GPU the cell ran on (NVML)")
            } else {
                "the GPU the cell ran on (NVML) alone: no CPU package meter here, so the host CPU's share is not counted"
                    .into()
            };
        }
    }
    if names.is_empty() {
        let avail: Vec<&str> = ok.iter().map(|m| m.name.as_str()).collect();
        return (
            Vec::new(),
            format!(
                "no meter covers the whole device or CPU package; pick one or more with --energy-meter (available: {})",
                avail.join(", ")
            ),
        );
    }
    (names, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, scope: &str, ok: bool) -> MeterResult {
        let f = if ok {
            Found::Ok(Box::new(testing::Fixed(MeterInfo {
                name: name.into(),
                source: "t".into(),
                scope: scope.into(),
            })))
        } else {
            Found::unavailable(name, "t", scope, "nope".into())
        };
        f.to_result()
    }

    #[test]
    fn primary_prefers_whole_device_meters_and_never_sums_overlaps() {
        let pk = m("rapl:package-0", "cpu-package", true);
        let core = m("rapl:package-0/core", "cpu-cores", true);
        let pk1 = m("rapl:package-1", "cpu-package", true);
        let gpu = m("nvml:0", "gpu", true);
        let all = vec![pk.clone(), core.clone(), pk1.clone(), gpu.clone()];
        assert_eq!(choose_primary(&all, &[], "cpu").0, ["rapl:package-0", "rapl:package-1"]);
        assert_eq!(choose_primary(&all, &[], "cuda:0").0, ["rapl:package-0", "rapl:package-1", "nvml:0"]);
        // A GPU machine without RAPL (the H200 VM): the GPU alone, and the note says the CPU is not counted.
        let (p, why) = choose_primary(std::slice::from_ref(&gpu), &[], "cuda:0");
        assert_eq!(p, ["nvml:0"]);
        assert!(why.contains("alone") && !why.contains("RAPL)"), "{why}");
        let mut with_psys = all.clone();
        with_psys.push(m("rapl:psys", "platform", true));
        assert_eq!(choose_primary(&with_psys, &[], "cpu").0, ["rapl:psys"]);
        with_psys.push(m("external", "device", true));
        assert_eq!(choose_primary(&with_psys, &[], "cpu").0, ["external"]);
        assert_eq!(choose_primary(&all, &["rapl:package-0/core".into()], "cpu").0, ["rapl:package-0/core"]);
        let (p, why) = choose_primary(&all, &["nvml:3".into()], "cpu");
        assert!(p.is_empty() && why.contains("nvml:3"), "{why}");
    }

    #[test]
    fn no_meter_is_a_reason_never_a_zero() {
        let (p, why) = choose_primary(&[m("rapl", "cpu-package", false)], &[], "cpu");
        assert!(p.is_empty());
        assert!(why.starts_with("unavailable") && why.contains("rapl: nope"), "{why}");
        let (p, why) = choose_primary(&[m("hwmon:x/power1", "rail", true)], &[], "cpu");
        assert!(p.is_empty() && why.contains("--energy-meter"), "{why}");
    }
}

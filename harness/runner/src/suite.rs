//! Suites (TOML in `suites/`, the built-in ones embedded in the binary) and their expansion into cells.

use std::collections::BTreeMap;
use std::path::Path;

use edgebench_core::drift::DriftLevel;
use edgebench_core::results::CellKey;
use edgebench_core::DeviceRequest;
use edgebench_models::ResolvedModel;
use serde::{Deserialize, Serialize};

use crate::protocol::{CellSpec, DriftPlan};
use crate::workload::Workload;
use edgebench_probes::energy::EnergySpec;

/// Suites shipped with the binary: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("quick", include_str!("../../../suites/quick.toml")),
    ("standard", include_str!("../../../suites/standard.toml")),
    ("sustained", include_str!("../../../suites/sustained.toml")),
    ("accuracy", include_str!("../../../suites/accuracy.toml")),
];

/// A suite: workloads and how often to repeat them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// Name.
    pub name: String,
    /// One line about it.
    #[serde(default)]
    pub about: String,
    /// Measured repetitions per cell.
    pub repetitions: usize,
    /// Warm-up repetitions per cell (not recorded).
    #[serde(default)]
    pub warmup: usize,
    /// Timed loads per cell.
    #[serde(default = "one")]
    pub load_repetitions: usize,
    /// Keep repeating each cell until its measured repetitions span this many seconds (sustained runs).
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Models to run when the command line names none: registry ids, files, or `ID@q8_0`-style requantized
    /// variants (default: the registry's default model).
    #[serde(default)]
    pub models: Vec<String>,
    /// Accuracy drift check of every cell: `off`, `short` (default) or `full`.
    #[serde(default)]
    pub drift: DriftLevel,
    /// Wall-clock limit of one cell's child process, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Workloads.
    #[serde(rename = "workload")]
    pub workloads: Vec<Workload>,
}

fn one() -> usize {
    1
}

fn default_timeout() -> u64 {
    600
}

/// The longest a cell's child may run (a suite's `timeout_s`, `--timeout`): a week. Longer is a typo, and a far
/// larger figure would overflow the clock's arithmetic.
pub const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;
/// The longest a sustained cell may repeat (`duration_s`, `--duration-s`): a day.
pub const MAX_DURATION_S: f64 = 24.0 * 3600.0;

/// Errors reading a suite.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// Not a built-in name and not a readable file.
    #[error("suite {0:?} is neither a built-in suite (quick, standard, sustained, accuracy) nor a readable file")]
    NotFound(String),
    /// Malformed TOML or values.
    #[error("suite {source_name}: {message}")]
    Invalid {
        /// File or name.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

/// A suite and the text it came from.
#[derive(Debug, Clone)]
pub struct LoadedSuite {
    /// The parsed suite.
    pub suite: Suite,
    /// `builtin:<name>` or the file path.
    pub origin: String,
    /// The TOML text.
    pub text: String,
}

/// Reads a built-in suite by name, or a suite file by path.
pub fn load(name_or_path: &str) -> Result<LoadedSuite, SuiteError> {
    let (origin, text) = match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
        Some((n, t)) => (format!("builtin:{n}"), t.to_string()),
        None => {
            let p = Path::new(name_or_path);
            let t = match edgebench_core::limits::read_text(p, edgebench_core::limits::SUITE_FILE, "suite file") {
                Ok(t) => t,
                Err(edgebench_core::limits::ReadError::Io { .. }) => {
                    return Err(SuiteError::NotFound(name_or_path.into()))
                }
                Err(e) => return Err(SuiteError::Invalid { source_name: name_or_path.into(), message: e.to_string() }),
            };
            (p.display().to_string(), t)
        }
    };
    let suite = parse(&text, &origin)?;
    Ok(LoadedSuite { suite, origin, text })
}

/// Parses and checks a suite's TOML.
pub fn parse(text: &str, origin: &str) -> Result<Suite, SuiteError> {
    let bad = |message: String| SuiteError::Invalid { source_name: origin.into(), message };
    let s: Suite = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    if s.repetitions == 0 || s.load_repetitions == 0 {
        return Err(bad("repetitions and load_repetitions must be at least 1".into()));
    }
    if s.duration_s.is_some_and(|d| !(d > 0.0 && d <= MAX_DURATION_S)) {
        return Err(bad(format!("duration_s must be a positive number of seconds, at most {MAX_DURATION_S}")));
    }
    if !(1..=MAX_TIMEOUT_S).contains(&s.timeout_s) {
        return Err(bad(format!("timeout_s must be between 1 and {MAX_TIMEOUT_S} seconds, got {}", s.timeout_s)));
    }
    if s.workloads.is_empty() {
        return Err(bad("no [[workload]]".into()));
    }
    let mut names: Vec<&str> = s.workloads.iter().map(|w| w.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad("workload names must be unique".into()));
    }
    Ok(s)
}

/// The axes a run crosses with the suite's workloads.
#[derive(Debug, Clone)]
pub struct Axes {
    /// Models, resolved to verified files.
    pub models: Vec<ResolvedModel>,
    /// Backend names.
    pub backends: Vec<String>,
    /// Devices.
    pub devices: Vec<DeviceRequest>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Backend options by backend name (`--backend-opt`, routed and checked), passed to that backend's cells.
    pub options: BTreeMap<String, BTreeMap<String, String>>,
    /// Energy meters and sampling, passed to every cell.
    pub energy: EnergySpec,
}

/// Expands a suite into cells: model × backend × device × threads × workload, in that nesting order. `drift` is the
/// drift plan of each model's cells, by model id (absent: none).
pub fn plan(suite: &Suite, axes: &Axes, drift: &BTreeMap<String, DriftPlan>) -> Vec<CellSpec> {
    let mut cells = Vec::new();
    for model in axes.models.iter().map(|m| &m.spec) {
        for backend in &axes.backends {
            for device in &axes.devices {
                for &threads in &axes.threads {
                    for w in &suite.workloads {
                        cells.push(CellSpec {
                            key: CellKey {
                                model: model.id.clone(),
                                backend: backend.clone(),
                                device: device.to_string(),
                                threads,
                                workload: w.name.clone(),
                            },
                            model: model.clone(),
                            options: axes.options.get(backend).cloned().unwrap_or_default(),
                            workload: w.clone(),
                            repetitions: suite.repetitions,
                            warmup: suite.warmup,
                            load_repetitions: suite.load_repetitions,
                            duration_s: suite.duration_s,
                            energy: axes.energy.clone(),
                            drift: drift.get(&model.id).cloned().unwrap_or_default(),
                        });
                    }
                }
            }
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_suites_parse() {
        for &(name, _) in BUILTIN {
            let s = load(name).unwrap();
            assert_eq!(s.suite.name, name);
        }
        let std = load("standard").unwrap().suite;
        assert_eq!(std.workloads.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["pp512", "tg128"]);
    }

    #[test]
    fn bad_suites_are_explained() {
        assert!(matches!(load("no-such-suite"), Err(SuiteError::NotFound(_))));
        let e = parse("name='x'\nrepetitions=0\n[[workload]]\nname='a'\nkind='synthetic'\ntokens=4\ngen_tokens=1", "t")
            .unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        let e = parse(
            "name='x'\nrepetitions=1\nbogus=1\n[[workload]]\nname='a'\nkind='synthetic'\ntokens=4\ngen_tokens=1",
            "t",
        );
        assert!(e.is_err());
        let w = "[[workload]]\nname='a'\nkind='synthetic'\ntokens=4\ngen_tokens=1";
        for (bad, says) in [
            ("timeout_s=0", "timeout_s must be between 1"),
            ("timeout_s=9223372036854775807", "timeout_s must be between 1"),
            ("duration_s=1e300", "duration_s must be"),
        ] {
            let e = parse(&format!("name='x'\nrepetitions=1\n{bad}\n{w}"), "t").unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = parse(
            "name='x'\nrepetitions=1\n[[workload]]\nname='a'\nkind='synthetic'\ntokens=4\ngen_tokens=1\ngen_tokenz=2",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gen_tokenz"), "a misspelled workload key is named: {e}");
        let e = parse(
            "name='x'\nrepetitions=1\n[[workload]]\nname='a'\nkind='chat'\ntext='hi'\ntokens=4\ngen_tokens=1",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tokens") && e.contains("chat"), "a key of another kind is refused: {e}");
        let e = load("/dev/zero").unwrap_err().to_string();
        assert!(e.contains("larger than the 1 MiB"), "{e}");
    }

    #[test]
    fn plan_crosses_every_axis() {
        let s = load("standard").unwrap().suite;
        let m = |id: &str| ResolvedModel {
            spec: edgebench_core::ModelSpec { id: id.into(), path: "/m".into(), sha256: String::new() },
            info: Default::default(),
            source: None,
        };
        let axes = Axes {
            models: vec![m("a"), m("b")],
            backends: vec!["mock".into(), "candle".into()],
            devices: vec![DeviceRequest::cpu()],
            threads: vec![1, 2],
            options: BTreeMap::from([("mock".into(), BTreeMap::from([("prefill_us".into(), "5".into())]))]),
            energy: EnergySpec::default(),
        };
        let cells = plan(&s, &axes, &BTreeMap::new());
        assert_eq!(cells.len(), 2 * 2 * 2 * 2);
        assert_eq!(cells[0].key.workload, "pp512");
        assert_eq!(cells[1].key.workload, "tg128");
        assert_eq!(cells[2].key.threads, 2);
        assert!(cells.iter().all(|c| c.load().unwrap().threads == c.key.threads));
        assert!(cells.iter().all(|c| c.options.is_empty() == (c.key.backend != "mock")), "options go to their backend");
    }
}

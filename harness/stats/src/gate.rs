//! Two results files compared cell by cell and metric by metric, for `edgebench compare` and `edgebench gate`.
//! Runs of different models, devices or settings are refused (with the reason) unless the caller allows it.

use std::collections::BTreeMap;

use crate::compare::{compare, Rule};
pub use edgebench_core::comparison::{Outcome, Row, RunComparison};
use edgebench_core::metrics;
use edgebench_core::results::{CellKey, CellResult, CellStatus, RunResults};
use serde::{Deserialize, Serialize};

/// Per-metric rules, read from `ci/thresholds.toml` (or a user's file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Rule for any metric without its own entry (so new metrics are gated without editing the file).
    pub default: Rule,
    /// Rules by metric key (`decode_tps`, `ttft_ms`, …).
    #[serde(default)]
    pub metric: BTreeMap<String, Rule>,
}

/// The thresholds shipped in `ci/thresholds.toml`.
pub const DEFAULT_THRESHOLDS: &str = include_str!("../../../ci/thresholds.toml");

impl Thresholds {
    /// Parses a thresholds file; errors name the offending key. Refused: unknown keys, metric names that are no
    /// metric's key (with the list of known ones), and values that are not finite numbers in range (`inf` or `nan`
    /// would turn a rule off).
    pub fn parse(text: &str) -> Result<Thresholds, String> {
        let t: Thresholds = toml::from_str(text).map_err(|e| e.to_string())?;
        let unknown: Vec<&str> = t.metric.keys().map(String::as_str).filter(|k| metrics::lookup(k).is_none()).collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = metrics::ALL.iter().map(|m| m.key).collect();
            return Err(format!(
                "unknown metric{} {}; known metrics: {}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.iter().map(|k| format!("[metric.{}]", k.escape_debug())).collect::<Vec<_>>().join(", "),
                known.join(", ")
            ));
        }
        let tables = std::iter::once(("[default]".to_string(), &t.default))
            .chain(t.metric.iter().map(|(k, v)| (format!("[metric.{k}]"), v)));
        for (table, r) in tables {
            let checks = [
                ("floor", r.floor, r.floor.is_finite() && (0.0..1.0).contains(&r.floor), "a number in [0, 1)"),
                (
                    "noise_multiple",
                    r.noise_multiple,
                    r.noise_multiple.is_finite() && r.noise_multiple >= 0.0,
                    "a finite number >= 0",
                ),
                ("abs_floor", r.abs_floor, r.abs_floor.is_finite() && r.abs_floor >= 0.0, "a finite number >= 0"),
            ];
            if let Some((key, v, _, want)) = checks.iter().find(|c| !c.2) {
                return Err(format!("{table} {key} = {v}: must be {want}"));
            }
        }
        Ok(t)
    }

    /// The rule for `metric`.
    pub fn rule(&self, metric: &str) -> Rule {
        self.metric.get(metric).copied().unwrap_or(self.default)
    }
}

/// Reasons two runs should not be compared: different model files, device, suite or backend builds.
pub fn mismatches(base: &RunResults, current: &RunResults) -> Vec<String> {
    let mut out = Vec::new();
    let shas = |r: &RunResults| r.models.values().map(|m| (m.id.clone(), m.sha256.clone())).collect::<BTreeMap<_, _>>();
    let (bm, cm) = (shas(base), shas(current));
    for (id, sha) in &cm {
        if let Some(b) = bm.get(id) {
            if b != sha {
                out.push(format!("model {id}: file sha256 {} in base, {} in current", short(b), short(sha)));
            }
        }
    }
    let (bd, cd) = (&base.device, &current.device);
    if (&bd.cpu_model, bd.logical_cpus, &bd.arch) != (&cd.cpu_model, cd.logical_cpus, &cd.arch) {
        out.push(format!(
            "device: {} ({} CPUs, {}) in base, {} ({} CPUs, {}) in current",
            bd.cpu_model, bd.logical_cpus, bd.arch, cd.cpu_model, cd.logical_cpus, cd.arch
        ));
    }
    if !bd.power_source.is_empty() && !cd.power_source.is_empty() && bd.power_source != cd.power_source {
        // Battery versus mains changes clocks and power limits on most edge devices.
        let kind = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
        if kind(&bd.power_source) != kind(&cd.power_source) {
            out.push(format!("power source: {} in base, {} in current", bd.power_source, cd.power_source));
        }
    }
    if bd.gpus != cd.gpus {
        out.push(format!("GPUs: {:?} in base, {:?} in current", bd.gpus, cd.gpus));
    }
    let (bs, cs) = (&base.manifest.suite, &current.manifest.suite);
    if bs.sha256 != cs.sha256 {
        out.push(format!(
            "suite: {} ({}) in base, {} ({}) in current",
            bs.name,
            short(&bs.sha256),
            cs.name,
            short(&cs.sha256)
        ));
    }
    if base.manifest.profile != current.manifest.profile {
        out.push(format!("build profile: {} in base, {} in current", base.manifest.profile, current.manifest.profile));
    }
    out
}

/// The first 12 characters (hashes are shown shortened; results files from elsewhere may hold anything).
fn short(s: &str) -> String {
    s.chars().take(12).collect()
}

/// Several baseline runs of the same settings as one: each cell's samples pooled over the runs where it was measured
/// (same backend options), summaries recomputed. Pooled samples carry the drift between runs, which one run's
/// samples cannot show, so the noise term of the threshold sees it. Refuses runs that [`mismatches`] tells apart.
pub fn pool_baselines(mut runs: Vec<RunResults>) -> Result<RunResults, Vec<String>> {
    let Some(mut pooled) = (!runs.is_empty()).then(|| runs.remove(0)) else {
        return Err(vec!["no baseline given".into()]);
    };
    let found: Vec<String> = runs.iter().flat_map(|r| mismatches(&pooled, r)).collect();
    if !found.is_empty() {
        return Err(found.into_iter().map(|m| format!("baselines differ: {m}")).collect());
    }
    for r in &runs {
        pooled.run_id = format!("{}+{}", pooled.run_id, r.run_id);
        for extra in r.cells.iter().filter(|c| c.status == CellStatus::Ok) {
            match pooled.cells.iter_mut().find(|c| c.key == extra.key) {
                Some(c) if c.status == CellStatus::Ok && !load_options_differ(c, extra) => {
                    for (k, m) in &extra.metrics {
                        if let Some(pm) = c.metrics.get_mut(k) {
                            pm.samples.extend_from_slice(&m.samples);
                            pm.summary = crate::summarize(&pm.samples);
                        }
                    }
                }
                Some(c) if c.status != CellStatus::Ok => *c = extra.clone(),
                Some(_) => {}
                None => pooled.cells.push(extra.clone()),
            }
        }
    }
    Ok(pooled)
}

fn load_options_differ(b: &CellResult, c: &CellResult) -> bool {
    b.load_options.as_ref().map(|o| &o.options) != c.load_options.as_ref().map(|o| &o.options)
}

/// Compares `current` against `base`. Refuses (Err with every reason) when [`mismatches`] finds any, unless
/// `allow_mismatch`.
pub fn compare_runs(
    base: &RunResults,
    current: &RunResults,
    thresholds: &Thresholds,
    allow_mismatch: bool,
) -> Result<RunComparison, Vec<String>> {
    let found = mismatches(base, current);
    if !found.is_empty() && !allow_mismatch {
        return Err(found);
    }
    let by_key: BTreeMap<&CellKey, &CellResult> = base.cells.iter().map(|c| (&c.key, c)).collect();
    let mut rows = Vec::new();
    for cur in &current.cells {
        let Some(b) = by_key.get(&cur.key) else {
            rows.push(Row {
                key: cur.key.clone(),
                metric: "*".into(),
                better: None,
                outcome: Outcome::Skipped { reason: "not in the base run".into() },
            });
            continue;
        };
        rows.extend(compare_cell(b, cur, thresholds));
    }
    let current_keys: std::collections::BTreeSet<&CellKey> = current.cells.iter().map(|c| &c.key).collect();
    for b in base.cells.iter().filter(|b| !current_keys.contains(&b.key)) {
        let outcome = match b.status {
            CellStatus::Ok => {
                Outcome::Broken { reason: "measured in the base run, missing from the current run".into() }
            }
            _ => Outcome::Skipped { reason: "not in the current run".into() },
        };
        rows.push(Row { key: b.key.clone(), metric: "*".into(), better: None, outcome });
    }
    Ok(RunComparison {
        base_run: base.run_id.clone(),
        current_run: current.run_id.clone(),
        mismatches_allowed: found,
        rows,
    })
}

fn compare_cell(b: &CellResult, c: &CellResult, thresholds: &Thresholds) -> Vec<Row> {
    let row = |metric: &str, better, outcome| Row { key: c.key.clone(), metric: metric.into(), better, outcome };
    match (&b.status, &c.status) {
        (CellStatus::Ok, CellStatus::Ok) => {}
        (CellStatus::Ok, CellStatus::Failed { kind, message }) => {
            return vec![row(
                "*",
                None,
                Outcome::Broken { reason: format!("failed now ({}): {message}", format!("{kind:?}").to_lowercase()) },
            )]
        }
        (CellStatus::Ok, CellStatus::Skipped { reason }) => {
            return vec![row("*", None, Outcome::Broken { reason: format!("measured before, skipped now: {reason}") })]
        }
        (_, _) => {
            return vec![row("*", None, Outcome::Skipped { reason: "not measured in the base run".into() })];
        }
    }
    if load_options_differ(b, c) {
        return vec![row("*", None, Outcome::Skipped { reason: "backend options differ between the runs".into() })];
    }
    // A metric the base measured and the current run did not (absent, or no samples) is a regression unless its
    // rule says it may vanish: otherwise a run that silently stopped measuring something would pass the gate.
    let vanished = |name: &str, why: &str| {
        if thresholds.rule(name).optional {
            Outcome::Skipped { reason: format!("{why} (optional in the thresholds)") }
        } else {
            Outcome::Broken { reason: format!("measured in the base run, {why}") }
        }
    };
    let mut rows = Vec::new();
    for (name, cm) in &c.metrics {
        let outcome = match b.metrics.get(name) {
            None => Outcome::Skipped { reason: "metric not in the base run".into() },
            Some(bm) if bm.samples.is_empty() => Outcome::Skipped { reason: "no samples in the base run".into() },
            Some(_) if cm.samples.is_empty() => vanished(name, "no samples in the current run"),
            Some(bm) if crate::median(&bm.samples) == 0.0 => Outcome::Skipped { reason: "base median is 0".into() },
            Some(bm) => Outcome::Compared(compare(&bm.samples, &cm.samples, cm.better, thresholds.rule(name))),
        };
        rows.push(row(name, Some(cm.better), outcome));
    }
    for (name, bm) in b.metrics.iter().filter(|(k, m)| !c.metrics.contains_key(*k) && !m.samples.is_empty()) {
        rows.push(row(name, Some(bm.better), vanished(name, "missing from the current run")));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(id: &str, decode: &[f64]) -> RunResults {
        let metric = edgebench_core::results::Metric {
            unit: "tok/s".into(),
            better: edgebench_core::metrics::Better::Higher,
            samples: decode.to_vec(),
            summary: crate::summarize(decode),
        };
        let cell = CellResult {
            metrics: [("decode_tps".to_string(), metric)].into_iter().collect(),
            wall_s: 1.0,
            ..CellResult::new(
                CellKey {
                    model: "m".into(),
                    backend: "b".into(),
                    device: "cpu".into(),
                    threads: 1,
                    workload: "w".into(),
                },
                CellStatus::Ok,
            )
        };
        RunResults {
            schema_version: edgebench_core::results::SCHEMA_VERSION,
            run_id: id.into(),
            started_at: String::new(),
            finished_at: None,
            manifest: Default::default(),
            device: Default::default(),
            models: Default::default(),
            cells: vec![cell],
        }
    }

    #[test]
    fn baselines_pool_their_samples_and_must_match() {
        let pooled = pool_baselines(vec![run_with("a", &[10.0, 10.2]), run_with("b", &[11.0])]).unwrap();
        assert_eq!(pooled.run_id, "a+b");
        let m = &pooled.cells[0].metrics["decode_tps"];
        assert_eq!(m.samples, vec![10.0, 10.2, 11.0]);
        assert_eq!(m.summary.median, 10.2);
        let mut other = run_with("c", &[1.0]);
        other.device.cpu_model = "another CPU".into();
        let err = pool_baselines(vec![run_with("a", &[1.0]), other]).unwrap_err();
        assert!(err[0].contains("baselines differ: device"), "{err:?}");
        assert!(pool_baselines(vec![]).is_err());
        let (mut ac, mut bat) = (run_with("a", &[1.0]), run_with("b", &[1.0]));
        ac.device.power_source = "AC".into();
        bat.device.power_source = "battery (discharging, 80%)".into();
        assert!(mismatches(&ac, &bat)[0].starts_with("power source: AC in base"));
        let mut bat2 = bat.clone();
        bat2.device.power_source = "battery (discharging, 41%)".into();
        assert!(mismatches(&bat, &bat2).is_empty(), "the charge level alone is no mismatch");
    }

    #[test]
    fn shipped_thresholds_parse_and_bad_ones_are_named() {
        let t = Thresholds::parse(DEFAULT_THRESHOLDS).unwrap();
        assert!(t.rule("decode_tps").floor > 0.0);
        assert_eq!(t.rule("some_future_metric"), t.default);
        let err = Thresholds::parse("[default]\nfloor = 2.0\nnoise_multiple = 1.0\n").unwrap_err();
        assert!(err.contains("default"), "{err}");
        let err = Thresholds::parse("[default]\nfloor = 0.1\nnoise_multiple = 1.0\nfloo = 1\n").unwrap_err();
        assert!(err.contains("floo"), "{err}");
    }

    const DEFAULT: &str = "[default]\nfloor = 0.05\nnoise_multiple = 1.0\n";

    #[test]
    fn unknown_metrics_and_non_finite_values_are_refused() {
        let err =
            Thresholds::parse(&format!("{DEFAULT}[metric.decode_tsp]\nfloor = 0.1\nnoise_multiple = 1\n")).unwrap_err();
        assert!(
            err.starts_with("unknown metric [metric.decode_tsp]; known metrics: prefill_tps, decode_tps,"),
            "{err}"
        );
        assert!(err.ends_with("ppl_ratio"), "{err}");
        let err = Thresholds::parse(&format!(
            "{DEFAULT}[metric.a]\nfloor = 0.1\nnoise_multiple = 1\n{}",
            "[metric.\"b\\u001b\"]\nfloor = 0.1\nnoise_multiple = 1\n"
        ))
        .unwrap_err();
        assert!(err.starts_with("unknown metrics [metric.a], [metric.b\\u{1b}];"), "{err}");
        for (rule, want) in [
            (
                "floor = 0.1\nnoise_multiple = inf",
                "[metric.load_ms] noise_multiple = inf: must be a finite number >= 0",
            ),
            ("floor = 0.1\nnoise_multiple = nan", "[metric.load_ms] noise_multiple = NaN"),
            ("floor = nan\nnoise_multiple = 1", "[metric.load_ms] floor = NaN: must be a number in [0, 1)"),
            ("floor = 0.1\nnoise_multiple = 1\nabs_floor = inf", "[metric.load_ms] abs_floor = inf"),
            ("floor = 0.1\nnoise_multiple = 1\nabs_floor = -1", "[metric.load_ms] abs_floor = -1"),
        ] {
            let err = Thresholds::parse(&format!("{DEFAULT}[metric.load_ms]\n{rule}\n")).unwrap_err();
            assert!(err.starts_with(want), "{rule}: {err}");
        }
        let err = Thresholds::parse("[default]\nfloor = 0.05\nnoise_multiple = inf\n").unwrap_err();
        assert!(err.starts_with("[default] noise_multiple = inf"), "{err}");
        let t = Thresholds::parse(&format!(
            "{DEFAULT}[metric.load_ms]\nfloor = 0.2\nnoise_multiple = 1\noptional = true\n"
        ))
        .unwrap();
        assert!(t.rule("load_ms").optional && !t.rule("decode_tps").optional);
    }

    fn verdicts(base: &RunResults, current: &RunResults, thresholds: &str) -> Vec<(String, Outcome)> {
        let t = Thresholds::parse(thresholds).unwrap();
        compare_runs(base, current, &t, false).unwrap().rows.into_iter().map(|r| (r.metric, r.outcome)).collect()
    }

    #[test]
    fn a_metric_that_vanished_is_a_regression_unless_optional() {
        let base = run_with("a", &[10.0, 10.2, 10.1]);
        let mut gone = base.clone();
        gone.cells[0].metrics.clear();
        let rows = verdicts(&base, &gone, DEFAULT);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].1.is_regression(), "{rows:?}");
        assert!(matches!(&rows[0].1, Outcome::Broken { reason } if reason.contains("missing from the current run")));
        // No samples left counts the same; a metric new in the current run is only skipped.
        let mut empty = base.clone();
        let m = empty.cells[0].metrics.get_mut("decode_tps").unwrap();
        m.samples.clear();
        m.summary = crate::summarize(&[]);
        let rows = verdicts(&base, &empty, DEFAULT);
        assert!(matches!(&rows[0].1, Outcome::Broken { reason } if reason.contains("no samples in the current run")));
        let rows = verdicts(&gone, &base, DEFAULT);
        assert!(matches!(&rows[0].1, Outcome::Skipped { .. }), "{rows:?}");
        // `optional = true`: skipped, naming why.
        let optional = format!("{DEFAULT}[metric.decode_tps]\nfloor = 0.03\nnoise_multiple = 0.5\noptional = true\n");
        for current in [&gone, &empty] {
            let rows = verdicts(&base, current, &optional);
            assert!(
                matches!(&rows[0].1, Outcome::Skipped { reason } if reason.contains("optional in the thresholds")),
                "{rows:?}"
            );
        }
        // Optional or not, a cell that failed or was skipped now is a regression.
        for status in [
            CellStatus::Failed { kind: edgebench_core::results::FailureKind::Panic, message: "boom".into() },
            CellStatus::Skipped { reason: "unsupported".into() },
        ] {
            let mut failed = gone.clone();
            failed.cells[0].status = status;
            let rows = verdicts(&base, &failed, &optional);
            assert_eq!(rows.len(), 1);
            assert!(matches!(&rows[0].1, Outcome::Broken { .. }), "{rows:?}");
        }
    }
}

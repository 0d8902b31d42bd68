//! The constraint logic on fixture results: unfavourable bounds, unknowns, the Pareto front, ties, evidence,
//! failed cells, throttling, and the budget changes that would change the pick.

use std::collections::BTreeMap;

use edgebench_core::drift::{Drift, DriftResult, DriftStats, Estimate};
use edgebench_core::metrics::Better;
use edgebench_core::recommend::{Budget, Evidence, Objective, Recommendation, Verdict};
use edgebench_core::results::{
    CellKey, CellResult, CellStatus, DeviceFingerprint, FailureKind, Metric, ModelInfo, RunResults, Summary,
};
use edgebench_core::{BackendFacts, DeviceRequest, LoadOptions};

use super::{recommend, Source};

fn device(cpu: &str) -> DeviceFingerprint {
    DeviceFingerprint {
        cpu_model: cpu.into(),
        arch: "x86_64".into(),
        logical_cpus: 2,
        ram_bytes: 24 << 30,
        energy_meters: vec!["rapl: unavailable (no powercap)".into()],
        ..DeviceFingerprint::default()
    }
}

fn metric(median: f64, ci: [f64; 2]) -> Metric {
    Metric {
        unit: String::new(),
        better: Better::Higher,
        samples: vec![ci[0], median, ci[1]],
        summary: Summary { n: 3, median, min: ci[0], max: ci[1], median_ci95: Some(ci), ..Summary::default() },
    }
}

/// A chat cell: decode median and interval, peak RSS, KLD ± err (None: no drift check).
fn cell(model: &str, backend: &str, decode: (f64, [f64; 2]), rss: f64, kld: Option<(f64, f64)>) -> CellResult {
    let mut c = CellResult::new(
        CellKey {
            model: model.into(),
            backend: backend.into(),
            device: "cpu".into(),
            threads: 2,
            workload: "chat".into(),
        },
        CellStatus::Ok,
    );
    c.metrics.insert("decode_tps".into(), metric(decode.0, decode.1));
    c.metrics.insert("ttft_ms".into(), metric(20.0, [19.0, 22.0]));
    c.metrics.insert("peak_rss_mib".into(), metric(rss, [rss, rss]));
    c.load_options = Some(LoadOptions { threads: 2, device: DeviceRequest::cpu(), options: BTreeMap::new() });
    c.backend = Some(BackendFacts { kv_cache: Some("f16".into()), ..BackendFacts::default() });
    c.drift = kld.map(|(value, err)| {
        Drift::Measured(Box::new(DriftResult {
            stats: DriftStats { kld: Estimate { value, err }, tokens: 128, ..DriftStats::default() },
            ..DriftResult::default()
        }))
    });
    c
}

fn results(dev: DeviceFingerprint, cells: Vec<CellResult>) -> RunResults {
    let mut models = BTreeMap::new();
    for c in &cells {
        models.insert(
            c.key.model.clone(),
            ModelInfo {
                id: c.key.model.clone(),
                sha256: format!("sha-{}", c.key.model),
                kv_values_per_token: Some(11520),
                tensor_types: [("Q4_1".to_string(), 210)].into(),
                ..ModelInfo::default()
            },
        );
    }
    RunResults {
        schema_version: 1,
        run_id: "r".into(),
        started_at: String::new(),
        finished_at: None,
        manifest: Default::default(),
        device: dev,
        models,
        cells,
    }
}

fn answer(runs: &[RunResults], budget: Budget, objective: Objective) -> Recommendation {
    let sources: Vec<Source<'_>> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| Source { path: format!("f{i}.json"), sha256: format!("{i:064}"), results: r })
        .collect();
    recommend(&sources, &device("EPYC"), &budget, objective, None)
}

fn pick(r: &Recommendation) -> &str {
    r.pick.map_or("none", |p| r.candidates[p].label.as_str())
}

fn find<'a>(r: &'a Recommendation, label: &str) -> &'a edgebench_core::recommend::Candidate {
    r.candidates.iter().find(|c| c.label.starts_with(label)).unwrap_or_else(|| panic!("no {label}"))
}

#[test]
fn constraints_use_the_unfavourable_bound() {
    // Median 25 t/s passes a 24 t/s floor; its lower limit 23 does not.
    let run = results(device("EPYC"), vec![cell("m", "a", (25.0, [23.0, 26.0]), 100.0, Some((0.010, 0.002)))]);
    let r = answer(
        std::slice::from_ref(&run),
        Budget { min_decode_tps: Some(24.0), ..Budget::default() },
        Objective::Speed,
    );
    let c = find(&r, "m a");
    assert!(
        matches!(&c.checks[0].verdict, Verdict::Fail { by } if by.contains("23") && by.contains("short")),
        "{:?}",
        c.checks
    );
    assert_eq!(pick(&r), "none");
    // KLD 0.010 passes 0.011; with its error (0.012) it does not.
    let r = answer(std::slice::from_ref(&run), Budget { max_kld: Some(0.011), ..Budget::default() }, Objective::Speed);
    assert!(matches!(find(&r, "m a").checks[0].verdict, Verdict::Fail { .. }));
    // Memory: 100 MiB peak + 11520 values × 2 B × 4096 tokens = 90 MiB of KV cache.
    let r = answer(
        std::slice::from_ref(&run),
        Budget { ram_mib: Some(180.0), ctx: Some(4096), ..Budget::default() },
        Objective::Speed,
    );
    let ram = find(&r, "m a").ram_mib.as_ref().unwrap().value;
    assert!((ram - 190.0).abs() < 1e-9, "{ram}");
    assert!(matches!(find(&r, "m a").checks[0].verdict, Verdict::Fail { .. }));
}

#[test]
fn unknown_is_never_a_pass() {
    let run = results(
        device("EPYC"),
        vec![
            cell("m", "a", (30.0, [29.0, 31.0]), 100.0, None),
            cell("m", "b", (20.0, [19.0, 21.0]), 100.0, Some((0.01, 0.0))),
        ],
    );
    let budget = Budget { max_kld: Some(0.1), max_j_per_token: Some(1.0), ..Budget::default() };
    let r = answer(std::slice::from_ref(&run), budget, Objective::Speed);
    for c in &r.candidates {
        let energy = c.checks.iter().find(|k| k.flag == "--max-j-per-token").unwrap();
        assert!(matches!(&energy.verdict, Verdict::Unknown { why } if why.contains("rapl")), "{energy:?}");
        assert!(!c.feasible());
    }
    assert!(matches!(&find(&r, "m a").checks[0].verdict, Verdict::Unknown { .. }));
    assert_eq!(pick(&r), "none");
    assert!(r
        .missing
        .iter()
        .any(|m| m.command.as_deref().is_some_and(|c| c.contains("--drift short") && c.contains("--backend a"))));
    assert!(r.missing.iter().any(|m| m.command.is_none() && m.what.contains("j_per_token")));
    // Without the energy budget, b is feasible and a is not (drift unknown).
    let r = answer(&[run], Budget { max_kld: Some(0.1), ..Budget::default() }, Objective::Speed);
    assert_eq!(pick(&r), "m b cpu t2");
}

#[test]
fn the_front_drops_dominated_candidates_and_the_pick_trades_against_it() {
    let run = results(
        device("EPYC"),
        vec![
            cell("q4", "fast", (100.0, [98.0, 102.0]), 150.0, Some((0.30, 0.01))),
            cell("q8", "exact", (60.0, [58.0, 61.0]), 200.0, Some((0.02, 0.001))),
            // Slower and more drift than `fast`, more memory: dominated.
            cell("q4", "slow", (50.0, [48.0, 52.0]), 160.0, Some((0.35, 0.01))),
        ],
    );
    let r = answer(std::slice::from_ref(&run), Budget::default(), Objective::Speed);
    let front: Vec<&str> = r.front.iter().map(|&i| r.candidates[i].label.as_str()).collect();
    assert_eq!(front.len(), 2, "{front:?}");
    assert!(!front.iter().any(|l| l.contains("slow")));
    assert_eq!(pick(&r), "q4 fast cpu t2");
    let vs =
        r.trade_offs.iter().find(|t| t.starts_with("vs q8 exact")).expect("trade-off against the other front member");
    assert!(vs.contains("faster decode") && vs.contains("more drift") && vs.contains("less memory"), "{vs}");
    let r = answer(&[run], Budget::default(), Objective::Quality);
    assert_eq!(pick(&r), "q8 exact cpu t2");
}

#[test]
fn a_tie_on_the_objective_is_decided_by_the_next_figure() {
    let pick_of = |a: (f64, [f64; 2]), b: (f64, [f64; 2])| {
        let run = results(
            device("EPYC"),
            vec![cell("m", "a", a, 150.0, Some((0.30, 0.0))), cell("m", "b", b, 150.0, Some((0.05, 0.0)))],
        );
        let r = answer(&[run], Budget::default(), Objective::Speed);
        (pick(&r).to_string(), r.trade_offs.iter().any(|t| t.starts_with("tie on speed")))
    };
    // Overlapping 95% intervals: a tie, and the candidate with less drift wins.
    assert_eq!(pick_of((100.0, [99.5, 101.0]), (100.0, [99.0, 101.0])), ("m b cpu t2".into(), true));
    // 3% slower on the lower limit, but the intervals overlap: still a tie.
    assert_eq!(pick_of((100.0, [95.0, 105.0]), (97.0, [93.0, 101.0])), ("m b cpu t2".into(), true));
    // Within 1%, but the intervals are apart: the faster one wins on speed.
    assert_eq!(pick_of((100.0, [99.8, 100.2]), (99.5, [99.3, 99.6])), ("m a cpu t2".into(), false));
}

#[test]
fn candidates_measured_elsewhere_never_outrank_those_measured_here() {
    let here = results(device("EPYC"), vec![cell("m", "a", (50.0, [49.0, 51.0]), 150.0, Some((0.1, 0.0)))]);
    let other = results(device("Xeon"), vec![cell("m", "a", (90.0, [89.0, 91.0]), 150.0, Some((0.1, 0.0)))]);
    let r = answer(&[other, here], Budget::default(), Objective::Speed);
    assert_eq!(pick(&r), "m a cpu t2");
    assert_eq!(r.candidates[0].evidence, Evidence::Here);
    assert!(matches!(&r.candidates[1].evidence, Evidence::Elsewhere { device } if device.contains("Xeon")));
    assert!(r.candidates[1].label.contains("[on Xeon"));
}

#[test]
fn a_failed_cell_rejects_its_candidate_with_the_reason() {
    let mut oom = cell("m", "native", (0.0, [0.0, 0.0]), 0.0, None);
    oom.metrics.clear();
    oom.status =
        CellStatus::Failed { kind: FailureKind::OutOfMemory, message: "killed by its cgroup's OOM killer".into() };
    let run = results(device("EPYC"), vec![oom, cell("m", "llamacpp", (4.0, [3.0, 5.0]), 90.0, Some((0.01, 0.0)))]);
    let r = answer(&[run], Budget::default(), Objective::Speed);
    assert_eq!(pick(&r), "m llamacpp cpu t2");
    let c = find(&r, "m native");
    assert!(matches!(&c.checks[0].verdict, Verdict::Fail { by } if by.contains("out_of_memory")), "{:?}", c.checks);
}

#[test]
fn a_throttling_device_derates_decode() {
    let mut c = cell("m", "a", (100.0, [90.0, 110.0]), 150.0, Some((0.1, 0.0)));
    c.sustained = Some(edgebench_core::energy::SustainedResult { decode_tps_ratio: Some(0.8), ..Default::default() });
    let r = answer(
        &[results(device("EPYC"), vec![c])],
        Budget { min_decode_tps: Some(80.0), ..Budget::default() },
        Objective::Speed,
    );
    let d = find(&r, "m a").decode_tps.clone().unwrap();
    assert!((d.value - 72.0).abs() < 1e-9 && d.how.contains("derated"), "{d:?}");
    assert_eq!(pick(&r), "none");
}

#[test]
fn the_budget_change_that_admits_a_better_candidate_is_named() {
    let run = results(
        device("EPYC"),
        vec![
            cell("q4", "fast", (100.0, [98.0, 102.0]), 150.0, Some((0.30, 0.01))),
            cell("q8", "exact", (60.0, [58.0, 61.0]), 200.0, Some((0.02, 0.001))),
        ],
    );
    let r = answer(&[run], Budget { max_kld: Some(0.05), ..Budget::default() }, Objective::Speed);
    assert_eq!(pick(&r), "q8 exact cpu t2");
    let relax = r.changes.iter().find(|c| c.change.starts_with("--max-kld 0.31")).expect("a relaxed drift budget");
    assert!(relax.then.contains("q4 fast"), "{relax:?}");
    let tighten = r.changes.iter().find(|c| c.change.starts_with("--ram-mib")).expect("a tightened memory budget");
    assert!(tighten.then.contains("rejects the pick"), "{tighten:?}");
    assert!(r.candidates[0].command.starts_with("edgebench run --suite "), "{}", r.candidates[0].command);
}

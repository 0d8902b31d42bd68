//! Snapshot of the terminal table on fixture results.

use std::collections::BTreeMap;

use edgebench_core::metrics::{self, MetricDef};
use edgebench_core::results::*;

fn metric(def: MetricDef, samples: &[f64], summary: Summary) -> (String, Metric) {
    (def.key.into(), Metric { unit: def.unit.into(), better: def.better, samples: samples.to_vec(), summary })
}

fn summary(median: f64, ci: Option<[f64; 2]>, p99: f64) -> Summary {
    Summary { n: 3, median, mean: median, median_ci95: ci, p99, ..Summary::default() }
}

fn cell(backend: &str, status: CellStatus, metrics: Vec<(String, Metric)>, flags: Vec<String>) -> CellResult {
    CellResult {
        metrics: metrics.into_iter().collect::<BTreeMap<_, _>>(),
        validity: Validity { flags, ..Validity::default() },
        wall_s: 1.0,
        ..CellResult::new(
            CellKey {
                model: "m".into(),
                backend: backend.into(),
                device: "cpu".into(),
                threads: 2,
                workload: "chat".into(),
            },
            status,
        )
    }
}

pub(crate) fn fixture() -> RunResults {
    let ok = cell(
        "candle",
        CellStatus::Ok,
        vec![
            metric(metrics::PREFILL_TPS, &[40.0], summary(41.25, Some([40.5, 42.0]), 42.0)),
            metric(metrics::DECODE_TPS, &[8.0], summary(8.123, Some([8.1, 8.2]), 8.2)),
            metric(metrics::TTFT_MS, &[900.0], summary(912.4, Some([900.0, 930.0]), 930.0)),
            metric(metrics::ITL_MS, &[120.0], summary(121.0, None, 140.55)),
            metric(metrics::PEAK_RSS_MIB, &[310.0], summary(310.4, None, 310.4)),
        ],
        vec!["high_cv:decode_tps(12%)".into()],
    );
    let skipped = cell(
        "cuda",
        CellStatus::Skipped { reason: "not compiled in: rebuild with --features cuda".into() },
        vec![],
        vec![],
    );
    let failed = cell(
        "mock",
        CellStatus::Failed { kind: FailureKind::Panic, message: "panicked at src/lib.rs:1: boom".into() },
        vec![metric(metrics::LOAD_MS, &[1.0], summary(1.0, None, 1.0))],
        vec![],
    );
    RunResults {
        schema_version: SCHEMA_VERSION,
        run_id: "fixture".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        manifest: Manifest::default(),
        device: DeviceFingerprint { cpu_model: "Test CPU".into(), logical_cpus: 2, ..DeviceFingerprint::default() },
        models: [(
            "m".to_string(),
            ModelInfo { id: "m".into(), sha256: "0123456789abcdef".into(), ..ModelInfo::default() },
        )]
        .into_iter()
        .collect(),
        cells: vec![ok, skipped, failed],
    }
}

fn speed(prefill: f64, decode: f64, ttft: f64, itl: f64, rss: f64) -> Vec<(String, Metric)> {
    let ci = |m: f64, h: f64| summary(m, Some([m - h, m + h]), m);
    vec![
        metric(metrics::PREFILL_TPS, &[prefill], ci(prefill, prefill * 0.009)),
        metric(metrics::DECODE_TPS, &[decode], ci(decode, decode * 0.013)),
        metric(metrics::TTFT_MS, &[ttft], ci(ttft, ttft * 0.011)),
        metric(metrics::ITL_MS, &[itl], summary(itl * 0.8, None, itl)),
        metric(metrics::PEAK_RSS_MIB, &[rss], summary(rss, None, rss)),
    ]
}

fn measured_drift(kld: f64, top1: f64) -> edgebench_core::drift::Drift {
    use edgebench_core::drift::*;
    let e = |value: f64| Estimate { value, err: 0.0 };
    let mut stats = DriftStats { tokens: 128, ..DriftStats::default() };
    stats.kld = e(kld);
    stats.same_top1 = e(top1);
    Drift::Measured(Box::new(DriftResult {
        level: DriftLevel::Short,
        reference: "candle (requantize=f32) on cpu, model smollm2-135m-instruct-q4_1 (sha256 b179c9523d0e)".into(),
        eval_set: "built-in: 4 chat prompts, each continued greedily by the reference for up to 32 tokens".into(),
        stats,
        ..DriftResult::default()
    }))
}

/// What the README's main job prints on a 2-CPU machine: four backends, two of them converting the embedding.
fn default_run() -> RunResults {
    let mut r = fixture();
    let model = "smollm2-135m-instruct-q4_1";
    r.models =
        [(model.to_string(), ModelInfo { id: model.into(), sha256: "b179c9523d0e11".into(), ..ModelInfo::default() })]
            .into_iter()
            .collect();
    let energy = edgebench_core::energy::EnergyResult {
        note: "unavailable: no energy meter could be read (rapl: /sys/class/powercap is missing (no RAPL: not an \
               Intel/AMD host, or a VM); nvml: NVML not loadable (no NVIDIA driver here?); battery: no battery under \
               /sys/class/power_supply; hwmon: no power or energy sensor under /sys/class/hwmon)"
            .into(),
        ..Default::default()
    };
    let converted = "Q8_0 → f32 (dequantized: the same values, 32 bits each): 1 tensor(s), e.g. token_embd.weight";
    let rows = [
        ("candle", speed(25.0, 22.53, 1600.0, 46.8, 153.0), 0.0031, 0.961, None, vec!["high_cv:load_ms(34%)"]),
        ("native", speed(738.2, 213.11, 54.0, 5.2, 152.0), 0.0030, 0.984, None, vec![]),
        ("ort", speed(1458.0, 43.78, 87.0, 24.1, 411.0), 0.0, 1.0, Some(converted), vec![]),
        ("tract", speed(87.1, 11.54, 459.0, 100.0, 617.0), 0.0, 1.0, Some(converted), vec!["busy_machine(0.31 cpus)"]),
    ];
    r.cells = rows
        .into_iter()
        .map(|(backend, metrics, kld, top1, conv, flags)| {
            let mut c = cell(backend, CellStatus::Ok, metrics, flags.into_iter().map(String::from).collect());
            c.key.model = model.into();
            c.drift = Some(measured_drift(kld, top1));
            c.energy = Some(energy.clone());
            c.backend = Some(edgebench_core::BackendFacts {
                converted: conv.map(String::from),
                weights: Some(edgebench_core::WeightsCheck {
                    fingerprint: "wfp1:6c975fb4b274aa".into(),
                    source: "wfp1:6c975fb4b274aa".into(),
                    how: "x".into(),
                }),
                ..Default::default()
            });
            c
        })
        .collect();
    r
}

/// A run in which nothing finished: one cell skipped, two crashed before their meters started.
fn all_failed() -> RunResults {
    let mut r = fixture();
    r.cells.remove(0);
    let mut crashed = r.cells[1].clone();
    crashed.key.backend = "native".into();
    crashed.status = CellStatus::Failed { kind: FailureKind::Timeout, message: "no event for 600 s".into() };
    r.cells.push(crashed);
    r.manifest.suite.resolved = serde_json::json!({ "drift": "short" });
    r
}

fn widest_line(s: &str) -> usize {
    s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn terminal_table_snapshot() {
    insta::assert_snapshot!(super::terminal_table(&fixture()));
}

#[test]
fn wide_table_snapshot() {
    insta::assert_snapshot!(super::terminal_table_with(&fixture(), super::Width::Wide));
}

#[test]
fn default_run_fits_120_columns_and_says_everything_once() {
    let t = super::terminal_table(&default_run());
    assert!(widest_line(&t) <= super::COMPACT_COLUMNS, "{} columns:\n{t}", widest_line(&t));
    // The conversion is one marked note shared by both rows, not repeated per row or by the weights lines.
    assert_eq!(t.matches("Q8_0 → f32").count(), 1, "{t}");
    assert!(t.contains("ort [2]") && t.contains("tract [2]"), "{t}");
    assert!(t.contains("[2] ort, tract: converted: Q8_0 → f32"), "{t}");
    assert!(t.contains("ok high_cv [1]") && t.contains("[1] candle cpu t2 chat: high_cv:load_ms(34%)"), "{t}");
    assert!(t.contains("every cell: device cpu · 2 threads · workload chat"), "{t}");
    assert!(!t.contains("┆ thr"), "constant columns move under the table:\n{t}");
    insta::assert_snapshot!(t);
    let wide = super::terminal_table_with(&default_run(), super::Width::Wide);
    assert!(wide.contains("┆ thr") && wide.contains("ok; high_cv:load_ms(34%)"), "{wide}");
    assert!(widest_line(&wide) > super::COMPACT_COLUMNS, "--wide keeps every detail on its row");
}

/// On a loaded machine every cell carries several flags: the rows get taller, the table no wider.
#[test]
fn a_busy_machines_flags_keep_the_table_within_120_columns() {
    let mut r = default_run();
    for c in &mut r.cells {
        c.validity.flags.extend(
            ["busy_machine(0.52 cpus)", "oversubscribed", "high_cv:decode_tps(12%)", "sampler_cost(3.1% of a core)"]
                .map(String::from),
        );
    }
    let t = super::terminal_table(&r);
    assert!(widest_line(&t) <= super::COMPACT_COLUMNS, "{} columns:\n{t}", widest_line(&t));
    assert!(t.contains("busy_machine") && t.contains("oversubscribed") && t.contains("sampler_cost"), "{t}");
    assert!(t.contains("ok high_cv "), "the first line of a status is filled before the next:\n{t}");
    assert!(t.contains("[1] candle cpu t2 chat: high_cv:load_ms(34%), busy_machine(0.52 cpus)"), "{t}");
}

#[test]
fn all_failed_run_says_what_is_true() {
    let t = super::terminal_table(&all_failed());
    assert!(!t.contains("predate"), "{t}");
    assert!(t.contains("energy: not measured: no cell got as far as reading its meters (2 failed, 1 skipped)"), "{t}");
    assert!(t.contains("drift: not measured: no cell ran to the end of its workload (2 failed, 1 skipped)"), "{t}");
    assert!(t.contains("weights: not checked: no cell ran to the end of its workload"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn strings_from_files_cannot_drive_the_terminal() {
    let mut r = fixture();
    r.cells[2].status = CellStatus::Failed { kind: FailureKind::Panic, message: "boom\x1b[2J\x1b]0;pwned\x07".into() };
    for w in [super::Width::Compact, super::Width::Wide] {
        let t = super::terminal_table_with(&r, w);
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
        assert!(t.contains("boom\\u{1b}[2J"), "{t}");
    }
}

/// A GPU run: the GPU memory column appears, with a note on how each device's figure was measured (or why not).
#[test]
fn gpu_cells_show_device_memory_and_how_it_was_measured() {
    use edgebench_core::device_memory::{DeviceMemory, DeviceMemoryReading, DeviceMemorySource};
    let mut r = fixture();
    r.cells.truncate(1);
    let mut gpu = r.cells[0].clone();
    gpu.key.device = "cuda:0".into();
    let (k, m) = metric(metrics::PEAK_DEVICE_MIB, &[1234.0], summary(1234.4, None, 1234.4));
    gpu.metrics.insert(k, m);
    gpu.device_memory = Some(DeviceMemoryReading::Measured(DeviceMemory {
        device: "cuda:0, Test GPU".into(),
        source: DeviceMemorySource::DeviceDelta,
        peak_mib: 1234.4,
        used_before_mib: 10.0,
        used_peak_mib: 1244.4,
        total_mib: 81559.0,
        samples: 300,
        interval_ms: 20.0,
        sampler_core_share: 0.01,
        failed_samples: 0,
        sample_error: None,
    }));
    let mut unmeasured = gpu.clone();
    unmeasured.key.device = "cuda:1".into();
    unmeasured.metrics.remove(metrics::PEAK_DEVICE_MIB.key);
    unmeasured.device_memory =
        Some(DeviceMemoryReading::Unavailable { reason: "NVML has no GPU 1: \x1b[31mInvalid argument".into() });
    r.cells.extend([gpu, unmeasured]);
    let s = super::terminal_table(&r);
    assert!(s.contains("GPU mem"), "{s}");
    assert!(!s.contains('\x1b'), "{s}");
    assert!(!super::terminal_table(&fixture()).contains("GPU mem"), "a CPU-only run has no GPU column");
    insta::assert_snapshot!(s);
}

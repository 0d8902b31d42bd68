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

#[test]
fn terminal_table_snapshot() {
    insta::assert_snapshot!(super::terminal_table(&fixture()));
}

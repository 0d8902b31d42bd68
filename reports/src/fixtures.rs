//! Fixture results for the renderers' tests: two backends with every metric (energy, drift, thermal and sustained
//! figures included, to exercise every chart and note), a skipped cell and a failed one.

use std::collections::BTreeMap;

use edgebench_core::drift::{Distribution, Drift, DriftLevel, DriftResult, DriftStats, Estimate};
use edgebench_core::energy::{Availability, EnergyResult, SamplerCost, SustainedResult, Window};
use edgebench_core::metrics::{self, Better};
use edgebench_core::results::*;
use edgebench_core::thermal::{ThermalResult, Trend};

fn metric(key: &str, unit: &str, better: Better, samples: &[f64]) -> (String, Metric) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let ci = (samples.len() > 1).then(|| [sorted[0], sorted[sorted.len() - 1]]);
    let summary = Summary {
        n: samples.len(),
        median,
        mean,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        p50: median,
        p90: sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)],
        p99: sorted[sorted.len() - 1],
        median_ci95: ci,
        ..Summary::default()
    };
    (key.into(), Metric { unit: unit.into(), better, samples: samples.to_vec(), summary })
}

fn cell(backend: &str, status: CellStatus, metrics: Vec<(String, Metric)>) -> CellResult {
    CellResult {
        metrics: metrics.into_iter().collect::<BTreeMap<_, _>>(),
        wall_s: 1.0,
        ..CellResult::new(
            CellKey {
                model: "smollm2".into(),
                backend: backend.into(),
                device: "cpu".into(),
                threads: 2,
                workload: "chat".into(),
            },
            status,
        )
    }
}

fn speed(prefill: f64, decode: f64, itl: &[f64], rss: f64) -> Vec<(String, Metric)> {
    let m = |d: metrics::MetricDef, s: &[f64]| metric(d.key, d.unit, d.better, s);
    vec![
        m(metrics::PREFILL_TPS, &[prefill * 0.98, prefill, prefill * 1.01]),
        m(metrics::DECODE_TPS, &[decode * 0.99, decode, decode * 1.02]),
        m(metrics::TTFT_MS, &[1000.0 * 40.0 / prefill, 1000.0 * 41.0 / prefill, 1000.0 * 42.0 / prefill]),
        m(metrics::ITL_MS, itl),
        m(metrics::PEAK_RSS_MIB, &[rss]),
    ]
}

/// A full drift result with figures derived from `kld` (synthetic, for layout).
fn drift(kld: f64, top1: f64) -> Drift {
    let e = |value: f64, err: f64| Estimate { value, err };
    let dist = |s: f64| Distribution {
        max: 20.0 * s,
        p99_9: 15.0 * s,
        p99: 8.0 * s,
        p95: 4.0 * s,
        p90: 3.0 * s,
        p75: 1.5 * s,
        median: s,
        p25: 0.5 * s,
        p10: 0.2 * s,
        p5: 0.1 * s,
        p1: 0.01 * s,
        p0_1: -0.001 * s,
        min: -0.002 * s,
    };
    Drift::Measured(Box::new(DriftResult {
        level: DriftLevel::Full,
        reference: "candle (requantize=f32) on cpu, model smollm2 (sha256 b179c9523d0e)".into(),
        reference_key: "5904972886cb".into(),
        eval_set: "built-in: 8 chat prompts, 64 tokens each continued greedily by the reference and scored".into(),
        sequences: 8,
        seconds: 3.5,
        stats: DriftStats {
            tokens: 512,
            ppl: e(2.1 + kld, 0.12),
            ppl_ref: e(2.1, 0.12),
            ln_prob_correlation: Some(0.997),
            ln_ppl_ratio: e(kld / 2.0, 0.004),
            ppl_ratio: e(1.0 + kld / 2.0, 0.004),
            ppl_diff: e(kld, 0.01),
            kld: e(kld, kld / 10.0),
            kld_distribution: dist(kld),
            delta_p: e(-0.001, 0.0017),
            delta_p_distribution: dist(0.01),
            delta_p_rms: e(0.0195, 0.0019),
            same_top1: e(top1, 0.0134),
        },
    }))
}

/// A run on a device whose CPU is called `cpu`.
pub fn run(id: &str, cpu: &str) -> RunResults {
    let mut candle = speed(25.0, 23.0, &[42.0, 43.5, 41.8, 44.0, 50.3, 42.2], 150.0);
    candle.push(metric(crate::html::DRIFT_METRIC, "nats", Better::Lower, &[0.004]));
    let mut llama = speed(295.0, 139.0, &[7.1, 7.3, 7.0, 8.6, 7.2, 7.2], 179.0);
    llama.push(metric(crate::html::DRIFT_METRIC, "nats", Better::Lower, &[0.003]));
    llama.push(metric(crate::html::ENERGY_METRIC, "J/token", Better::Lower, &[0.21, 0.2, 0.22]));
    let mut candle = cell("candle", CellStatus::Ok, candle);
    candle.thermal = Some(ThermalResult {
        availability: Availability::Available,
        samples: 30,
        cpu_mhz: Some(Trend { start: 2400.0, end: 1800.0, min: 1800.0, max: 2400.0 }),
        sensors: Vec::new(),
        throttle_events: None,
        throttled: Some("CPU frequency fell from 2400 to 1800 MHz".into()),
    });
    candle.drift = Some(drift(0.004, 0.98));
    let mut llama = cell("llamacpp", CellStatus::Ok, llama);
    llama.drift = Some(drift(0.003, 0.99));
    llama.energy = Some(EnergyResult {
        meters: Vec::new(),
        primary: vec!["rapl:package-0".into()],
        note: "sum of the CPU packages (RAPL)".into(),
        idle_s: 3.0,
        sampler: SamplerCost { interval_ms: 100.0, samples: 40, cpu_s: 0.004, wall_s: 4.0 },
    });
    llama.sustained = Some(SustainedResult {
        duration_s: 300.0,
        start: Window { decode_tps: Some(140.0), decode_w: Some(28.0), ..Window::default() },
        end: Window { decode_tps: Some(126.0), decode_w: Some(25.2), ..Window::default() },
        decode_tps_ratio: Some(0.9),
        decode_w_ratio: Some(0.9),
    });
    let cells = vec![
        candle,
        llama,
        cell("ort", CellStatus::Skipped { reason: "not compiled in: rebuild with --features ort".into() }, vec![]),
        cell(
            "mock",
            CellStatus::Failed { kind: FailureKind::Panic, message: "panicked: <boom> & \"bang\"".into() },
            vec![],
        ),
    ];
    RunResults {
        schema_version: SCHEMA_VERSION,
        run_id: id.into(),
        started_at: "2026-11-22T06:00:00Z".into(),
        finished_at: None,
        manifest: Manifest {
            edgebench_version: "0.1.0".into(),
            git_commit: "abc123".into(),
            profile: "release".into(),
            suite: SuiteRef { name: "quick".into(), sha256: "feedfacecafe0000".into(), ..SuiteRef::default() },
            command_line: vec!["edgebench".into(), "run".into()],
            ..Manifest::default()
        },
        device: DeviceFingerprint {
            cpu_model: cpu.into(),
            logical_cpus: 2,
            arch: "x86_64".into(),
            ..DeviceFingerprint::default()
        },
        models: BTreeMap::new(),
        cells,
    }
}

pub use edgebench_testkit::chromium::render_in_chromium;

//! Tidy rows, one per cell × metric (a cell without metrics still gets one row, saying how it ended): the shape
//! analysts load, written as CSV or Parquet by `export`. Beside the measured metrics, a CPU decode cell of a run with
//! memory bandwidth readings gets `decode_bandwidth_pct`, its share of the ceiling ([`crate::bandwidth`]).

use edgebench_core::metrics;
use edgebench_core::results::RunResults;

use crate::table::cell_status_text;

/// One tidy row: a cell × metric, for analysts (CSV, Parquet).
#[derive(Debug, Clone, PartialEq)]
pub struct TidyRow {
    /// Run id.
    pub run_id: String,
    /// CPU model of the run's device.
    pub device_cpu: String,
    /// Model id.
    pub model: String,
    /// Backend.
    pub backend: String,
    /// Device the cell ran on (`cpu`, `cuda:0`).
    pub device: String,
    /// Threads.
    pub threads: u32,
    /// Workload.
    pub workload: String,
    /// `ok`, `skipped(…)`, `failed(…)`.
    pub status: String,
    /// Metric key.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// `higher` or `lower`.
    pub better: String,
    /// Samples.
    pub n: u32,
    /// Median.
    pub median: f64,
    /// 95% interval of the median (NaN when not computed).
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub stddev: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Every metric of every cell of every run; cells without metrics (skipped, failed early) give one row with
/// metric `""` so their status is not lost.
pub fn tidy_rows(runs: &[RunResults]) -> Vec<TidyRow> {
    let mut out = Vec::new();
    for r in runs {
        for c in &r.cells {
            let base = |metric: &str| TidyRow {
                run_id: r.run_id.clone(),
                device_cpu: r.device.cpu_model.clone(),
                model: c.key.model.clone(),
                backend: c.key.backend.clone(),
                device: c.key.device.clone(),
                threads: c.key.threads as u32,
                workload: c.key.workload.clone(),
                status: cell_status_text(c),
                metric: metric.into(),
                unit: String::new(),
                better: String::new(),
                n: 0,
                median: f64::NAN,
                ci_low: f64::NAN,
                ci_high: f64::NAN,
                mean: f64::NAN,
                stddev: f64::NAN,
                p90: f64::NAN,
                p99: f64::NAN,
            };
            if c.metrics.is_empty() {
                out.push(base(""));
            }
            // A CPU decode cell of a run that read the memory bandwidth: its share of the ceiling, the decode
            // figures scaled by one positive factor (so every statistic scales with them).
            let share = crate::bandwidth::share_per_tps(r, c).and_then(|f| {
                let d = c.metrics.get(metrics::DECODE_TPS.key)?;
                Some((crate::bandwidth::SHARE_METRIC.to_string(), "%".to_string(), d, f))
            });
            let measured = c.metrics.iter().map(|(k, m)| (k.clone(), m.unit.clone(), m, 1.0));
            for (k, unit, m, f) in measured.chain(share) {
                let s = &m.summary;
                let [lo, hi] = s.median_ci95.unwrap_or([f64::NAN, f64::NAN]);
                out.push(TidyRow {
                    unit,
                    better: format!("{:?}", m.better).to_lowercase(),
                    n: s.n as u32,
                    median: s.median * f,
                    ci_low: lo * f,
                    ci_high: hi * f,
                    mean: s.mean * f,
                    stddev: s.stddev * f,
                    p90: s.p90 * f,
                    p99: s.p99 * f,
                    ..base(&k)
                });
            }
        }
    }
    out
}

//! Results as Markdown (a pull-request comment or a README table): one row per cell, one column per metric present,
//! then the devices the runs came from. Tidy rows for CSV / Parquet are built here too (one per cell × metric).

use edgebench_core::results::{CellStatus, RunResults};

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
            for (k, m) in &c.metrics {
                let s = &m.summary;
                let [lo, hi] = s.median_ci95.unwrap_or([f64::NAN, f64::NAN]);
                out.push(TidyRow {
                    unit: m.unit.clone(),
                    better: format!("{:?}", m.better).to_lowercase(),
                    n: s.n as u32,
                    median: s.median,
                    ci_low: lo,
                    ci_high: hi,
                    mean: s.mean,
                    stddev: s.stddev,
                    p90: s.p90,
                    p99: s.p99,
                    ..base(k)
                });
            }
        }
    }
    out
}

/// The runs as one Markdown table plus a line per device.
pub fn markdown_report(runs: &[RunResults]) -> String {
    let keys = crate::html::metric_keys(runs);
    let mut out = String::from("| # | model | backend | device | thr | workload |");
    for k in &keys {
        out.push_str(&format!(" {k} |"));
    }
    out.push_str(" status |\n|---|---|---|---|---:|---|");
    out.push_str(&"---:|".repeat(keys.len()));
    out.push_str("---|\n");
    for (i, r) in runs.iter().enumerate() {
        for c in &r.cells {
            let k = &c.key;
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |",
                i + 1,
                k.model,
                k.backend,
                k.device,
                k.threads,
                k.workload
            ));
            for key in &keys {
                out.push_str(&format!(" {} |", crate::html::cell_value(c, key)));
            }
            let status = cell_status_text(c).replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;");
            out.push_str(&format!(
                " {} |\n",
                if c.status == CellStatus::Ok { status } else { format!("**{status}**") }
            ));
        }
    }
    out.push('\n');
    for (i, r) in runs.iter().enumerate() {
        let d = &r.device;
        out.push_str(&format!(
            "{}. `{}`: {} ({} logical CPUs, {}), edgebench {} ({}), suite {}\n",
            i + 1,
            r.run_id,
            d.cpu_model,
            d.logical_cpus,
            d.arch,
            r.manifest.edgebench_version,
            r.manifest.git_commit,
            r.manifest.suite.name
        ));
    }
    out.push_str("\nValues: median ±half-width of its 95% bootstrap interval over repetitions.\n");
    for (i, r) in runs.iter().enumerate() {
        for n in crate::energy::notes(r).into_iter().chain(crate::drift::notes(r)).chain(crate::weights::notes(r)) {
            out.push_str(&format!("\n- run {}: {}", i + 1, n.replace('|', "\\|")));
        }
    }
    out.push('\n');
    if let Some(stats) = crate::drift::markdown_stats(runs) {
        out.push_str("\n### Accuracy drift against the reference (llama-perplexity `--kl-divergence` statistics)\n\n");
        out.push_str(&stats);
    }
    out
}

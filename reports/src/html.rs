//! The self-contained HTML report: device fingerprints and manifests of every run, a compact table of every metric
//! of every cell, SVG charts (throughput with whiskers, TTFT, inter-token latency distribution, peak RAM, energy per
//! token, speed against drift with the Pareto front) and each cell's facts in an expandable section. Rendered by
//! minijinja from `templates/report.html` with HTML auto-escaping; no script, no external resource: one file to
//! attach or publish.

use std::collections::BTreeSet;

use edgebench_core::metrics;
use edgebench_core::results::{CellResult, CellStatus, RunResults};
use serde::Serialize;

use crate::charts::{self, Bar, BoxRow, Point};
use crate::table::cell_status_text;

const TEMPLATE: &str = include_str!("../templates/report.html");

/// Metric key of energy per decoded token, when an energy meter produced it.
pub const ENERGY_METRIC: &str = "decode_j_per_token";
/// Metric key of accuracy drift (mean KL divergence against the reference), when measured.
pub const DRIFT_METRIC: &str = "kld_mean";

/// Every cell of every run with a chart label.
fn labelled(runs: &[RunResults]) -> Vec<(String, &CellResult)> {
    let models: BTreeSet<&str> = runs.iter().flat_map(|r| r.cells.iter().map(|c| c.key.model.as_str())).collect();
    let mut out = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        for c in &r.cells {
            let k = &c.key;
            let mut label = k.label();
            if models.len() > 1 {
                label = format!("{} {label}", k.model);
            }
            if runs.len() > 1 {
                label = format!("[{}] {label}", i + 1);
            }
            out.push((label, c));
        }
    }
    out
}

fn bar(label: &str, series: usize, c: &CellResult, key: &str) -> Option<Bar> {
    let m = c.metrics.get(key)?;
    (c.status == CellStatus::Ok).then(|| Bar {
        label: label.into(),
        series,
        value: m.summary.median,
        ci: m.summary.median_ci95,
    })
}

/// One chart of the report: drawn, failed, or absent with the reason.
#[derive(Serialize)]
struct Chart {
    title: String,
    /// The SVG from plotters (its text already escaped by plotters), inserted as markup.
    svg: Option<String>,
    error: Option<String>,
    /// Caption under a drawn chart, or why an absent one is absent.
    caption: String,
}

fn figure(title: &str, svg: Result<String, String>, caption: &str) -> Chart {
    match svg {
        Ok(svg) => Chart { title: title.into(), svg: Some(svg), error: None, caption: caption.into() },
        Err(e) => Chart { title: title.into(), svg: None, error: Some(e), caption: String::new() },
    }
}

/// `draw(title)` with `caption`, or, when `absent_why.0`, a box saying `absent_why.1`.
fn chart(
    title: &str,
    absent_why: (bool, &str),
    draw: impl FnOnce(&str) -> Result<String, String>,
    caption: &str,
) -> Chart {
    match absent_why {
        (true, why) => absent(title, why),
        (false, _) => figure(title, draw(title), caption),
    }
}

fn absent(title: &str, why: &str) -> Chart {
    Chart { title: title.into(), svg: None, error: None, caption: why.into() }
}

/// All metric keys present, the known ones first in table order, then any others alphabetically.
pub(crate) fn metric_keys(runs: &[RunResults]) -> Vec<String> {
    let present: BTreeSet<String> =
        runs.iter().flat_map(|r| r.cells.iter().flat_map(|c| c.metrics.keys().cloned())).collect();
    let mut keys: Vec<String> =
        metrics::ALL.iter().map(|d| d.key.to_string()).filter(|k| present.contains(k)).collect();
    let others: Vec<String> = present.into_iter().filter(|k| !keys.contains(k)).collect();
    keys.extend(others);
    keys
}

pub(crate) fn cell_value(c: &CellResult, key: &str) -> String {
    match c.metrics.get(key) {
        None => "—".into(),
        Some(m) => {
            let s = &m.summary;
            let digits = match s.median.abs() {
                // Ratios near 1 (perplexity against the reference) differ in the third decimal.
                _ if m.unit == "ratio" => 4,
                a if a >= 100.0 => 1,
                a if a >= 1.0 || a == 0.0 => 2,
                _ => 4,
            };
            // A median that is zero up to rounding (a KL divergence of −1e-7) prints as 0, not −0.0000.
            let median = if format!("{:.*}", digits, s.median.abs()).trim_matches(['0', '.']).is_empty() {
                0.0
            } else {
                s.median
            };
            match s.median_ci95 {
                Some([lo, hi]) => format!("{:.*} ±{:.*}", digits, median, digits, (s.median - lo).max(hi - s.median)),
                None => format!("{:.*}", digits, median),
            }
        }
    }
}

#[derive(Serialize)]
struct RunRow {
    n: usize,
    id: String,
    started_at: String,
    device: String,
    isa: String,
    build: String,
    suite: String,
    command: String,
    notes: Vec<String>,
}

fn run_rows(runs: &[RunResults]) -> Vec<RunRow> {
    runs.iter()
        .enumerate()
        .map(|(i, r)| {
            let d = &r.device;
            let m = &r.manifest;
            let device = format!(
                "{} — {} logical CPUs, {} GiB, {}; {} {}; governor {}; {}{}",
                d.cpu_model,
                d.logical_cpus,
                d.ram_bytes / (1 << 30),
                d.arch,
                d.os,
                d.kernel,
                d.cpu_governor.as_deref().unwrap_or("n/a"),
                d.virtualization,
                if d.gpus.is_empty() { String::new() } else { format!("; GPUs: {}", d.gpus.join(", ")) }
            );
            let device =
                if d.power_source.is_empty() { device } else { format!("{device}; power: {}", d.power_source) };
            RunRow {
                n: i + 1,
                id: r.run_id.clone(),
                started_at: r.started_at.clone(),
                device,
                isa: d.isa_features.join(" "),
                build: format!(
                    "edgebench {} ({}), {} {}, {}",
                    m.edgebench_version, m.git_commit, m.profile, m.target, m.rustc
                ),
                suite: format!("{} ({})", m.suite.name, m.suite.sha256.chars().take(12).collect::<String>()),
                command: m.command_line.join(" "),
                notes: crate::energy::notes(r)
                    .into_iter()
                    .chain(crate::gpu_memory::notes(r))
                    .chain(crate::bandwidth::notes(r))
                    .chain(crate::drift::notes(r))
                    .chain(crate::weights::notes(r))
                    .collect(),
            }
        })
        .collect()
}

#[derive(Serialize)]
struct MetricColumn {
    key: String,
    unit: String,
}

#[derive(Serialize)]
struct CellRow {
    anchor: String,
    label: String,
    model: String,
    values: Vec<String>,
    /// `ok`, `skipped`, `failed` and the short flags.
    status_short: String,
    /// The status with its reason and every flag in full.
    status_full: String,
    bad: bool,
    /// (name, value) pairs of the expandable details.
    facts: Vec<(String, String)>,
}

fn cell_row(i: usize, label: String, c: &CellResult, keys: &[String]) -> CellRow {
    let mut short: Vec<String> = crate::table::short_status(c).into_iter().map(String::from).collect();
    if c.backend.as_ref().is_some_and(|b| b.converted.is_some()) {
        short.push("converted".into());
    }
    let mut facts = vec![("status".to_string(), cell_status_text(c))];
    if !c.validity.flags.is_empty() {
        facts.push(("flags".into(), c.validity.flags.join(", ")));
    }
    if let Some(b) = &c.backend {
        facts.push(("versions".into(), b.versions.join(", ")));
        facts.push(("kernel path".into(), b.kernel_path.clone()));
        facts.push(("threads used".into(), b.threads.to_string()));
        if let Some(conv) = &b.converted {
            facts.push(("converted".into(), conv.clone()));
        }
        if let Some(w) = &b.weights {
            let verdict = if w.fingerprint == w.source { "identical to the file's" } else { "DIFFER from the file's" };
            facts.push(("weights".into(), format!("{verdict}: {} ({}); file {}", w.fingerprint, w.how, w.source)));
        }
        for n in &b.notes {
            facts.push(("note".into(), n.clone()));
        }
    }
    if let Some(o) = &c.load_options {
        if !o.options.is_empty() {
            let opts: Vec<String> = o.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
            facts.push(("backend options".into(), opts.join(", ")));
        }
    }
    facts.push(("wall time".into(), format!("{:.1} s", c.wall_s)));
    CellRow {
        anchor: format!("cell-{}", i + 1),
        label,
        model: c.key.model.clone(),
        values: keys.iter().map(|k| cell_value(c, k)).collect(),
        status_short: short.join(" "),
        status_full: crate::table::wide_status(c),
        bad: !matches!(c.status, CellStatus::Ok),
        facts,
    }
}

#[derive(Serialize)]
struct DriftRow {
    name: String,
    values: Vec<String>,
}

#[derive(Serialize)]
struct DriftSection {
    labels: Vec<String>,
    rows: Vec<DriftRow>,
}

fn charts(runs: &[RunResults]) -> Vec<Chart> {
    let cells = labelled(runs);
    let mut h = Vec::new();
    let mut tput = Vec::new();
    for (label, c) in &cells {
        tput.extend(bar(label, 0, c, "prefill_tps"));
        tput.extend(bar(label, 1, c, "decode_tps"));
    }
    h.push(if tput.is_empty() {
        absent("Throughput", "no cell measured throughput")
    } else {
        figure(
            "Throughput",
            charts::bars("Throughput", "tokens/s", &["prefill", "decode"], &tput),
            "median with 95% interval",
        )
    });
    for (key, title, unit) in [("ttft_ms", "Time to first token", "ms"), ("peak_rss_mib", "Peak RAM", "MiB")] {
        let rows: Vec<Bar> = cells.iter().filter_map(|(l, c)| bar(l, 0, c, key)).collect();
        h.push(if rows.is_empty() {
            absent(title, "not measured in these results")
        } else {
            figure(title, charts::bars(title, unit, &[title], &rows), "median with 95% interval where repeated")
        });
    }
    let itl: Vec<BoxRow> = cells
        .iter()
        .filter_map(|(l, c)| {
            let m = c.metrics.get("itl_ms").filter(|m| !m.samples.is_empty())?;
            Some(BoxRow { label: l.clone(), samples: m.samples.iter().map(|&x| x as f32).collect() })
        })
        .collect();
    h.push(chart(
        "Inter-token latency",
        (itl.is_empty(), "no decode steps in these results"),
        |t| charts::boxes(t, "ms per decode step", &itl),
        "quartiles; whiskers at 1.5 IQR",
    ));
    let energy: Vec<Bar> = cells.iter().filter_map(|(l, c)| bar(l, 0, c, ENERGY_METRIC)).collect();
    h.push(if energy.is_empty() {
        let why = runs
            .iter()
            .flat_map(|r| &r.cells)
            .find_map(|c| c.energy.as_ref().map(|e| e.note.clone()))
            .unwrap_or_else(|| "these results carry no energy-meter readings".into());
        absent("Energy per token", &format!("not measured (never estimated): {why}"))
    } else {
        figure(
            "Energy per decoded token",
            charts::bars("Energy per decoded token", "J/token", &["decode"], &energy),
            "gross joules of the primary meters per decode step (idle power included); median with 95% interval",
        )
    });
    let points: Vec<Point> = cells
        .iter()
        .filter_map(|(l, c)| {
            let x = c.metrics.get(DRIFT_METRIC)?.summary.median;
            let y = c.metrics.get("decode_tps")?.summary.median;
            Some(Point { label: l.clone(), x, y })
        })
        .collect();
    h.push(chart(
        "Speed against drift",
        (points.is_empty(), "no accuracy-drift figures in these results"),
        |t| charts::pareto(t, "mean KL divergence vs reference (nats)", "decode tokens/s", &points),
        "ringed: the Pareto front (no other cell is both faster and closer to the reference)",
    ));
    h
}

/// The whole report for one or more results files (devices, commits) side by side.
pub fn html_report(runs: &[RunResults]) -> String {
    let title = if runs.len() == 1 {
        format!("edgebench — {}", runs[0].run_id)
    } else {
        format!("edgebench — {} runs", runs.len())
    };
    let keys = metric_keys(runs);
    let metrics: Vec<MetricColumn> = keys
        .iter()
        .map(|k| {
            let unit = metrics::lookup(k)
                .map(|d| d.unit.to_string())
                .or_else(|| runs.iter().flat_map(|r| &r.cells).find_map(|c| c.metrics.get(k).map(|m| m.unit.clone())));
            MetricColumn { key: k.clone(), unit: unit.unwrap_or_default() }
        })
        .collect();
    let cells: Vec<CellRow> =
        labelled(runs).into_iter().enumerate().map(|(i, (label, c))| cell_row(i, label, c, &keys)).collect();
    let several_models = cells.iter().map(|c| c.model.as_str()).collect::<BTreeSet<_>>().len() > 1;
    let drift = crate::drift::html_rows(runs).map(|crate::drift::StatsTable { labels, rows }| DriftSection {
        labels,
        rows: rows.into_iter().map(|(name, values)| DriftRow { name, values }).collect(),
    });
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("report.html", TEMPLATE).expect("the report template parses");
    env.get_template("report.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                title,
                runs => run_rows(runs),
                metrics,
                cells,
                several_models,
                drift,
                charts => charts(runs),
            })
        })
        .expect("the report template renders every result")
}

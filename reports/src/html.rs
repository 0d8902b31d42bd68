//! The self-contained HTML report: device fingerprints and manifests of every run, a table of every metric of every
//! cell, and SVG charts (throughput with whiskers, TTFT, inter-token latency distribution, peak RAM, energy per token,
//! speed against drift with the Pareto front). No script, no external resource: one file to attach or publish.

use std::collections::BTreeSet;

use edgebench_core::metrics;
use edgebench_core::results::{CellResult, CellStatus, RunResults};

use crate::charts::{self, Bar, BoxRow, Point};
use crate::table::cell_status_text;

/// Metric key of energy per decoded token, when an energy meter produced it.
pub const ENERGY_METRIC: &str = "decode_j_per_token";
/// Metric key of accuracy drift (mean KL divergence against the reference), when measured.
pub const DRIFT_METRIC: &str = "kld_mean";

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Every cell of every run with a chart label.
fn labelled(runs: &[RunResults]) -> Vec<(String, &CellResult)> {
    let models: BTreeSet<&str> = runs.iter().flat_map(|r| r.cells.iter().map(|c| c.key.model.as_str())).collect();
    let mut out = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        for c in &r.cells {
            let k = &c.key;
            let mut label = format!("{} {}t {}", k.backend, k.threads, k.workload);
            if k.device != "cpu" {
                label = format!("{label} {}", k.device);
            }
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

fn figure(svg: Result<String, String>, caption: &str) -> String {
    match svg {
        Ok(svg) => format!("<figure>{svg}<figcaption>{}</figcaption></figure>\n", esc(caption)),
        Err(e) => format!("<p class=\"note\">chart failed: {}</p>\n", esc(&e)),
    }
}

fn absent(title: &str, why: &str) -> String {
    format!("<figure class=\"absent\"><h3>{}</h3><p class=\"note\">{}</p></figure>\n", esc(title), esc(why))
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
            match s.median_ci95 {
                Some([lo, hi]) => format!("{:.*} ±{:.*}", digits, s.median, digits, (s.median - lo).max(hi - s.median)),
                None => format!("{:.*}", digits, s.median),
            }
        }
    }
}

fn runs_section(runs: &[RunResults]) -> String {
    let mut h = String::from("<h2>Runs</h2>\n<table><tr><th>#</th><th>run</th><th>device</th><th>build</th><th>suite</th><th>command</th></tr>\n");
    for (i, r) in runs.iter().enumerate() {
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
        let device = if d.power_source.is_empty() { device } else { format!("{device}; power: {}", d.power_source) };
        let build =
            format!("edgebench {} ({}), {} {}, {}", m.edgebench_version, m.git_commit, m.profile, m.target, m.rustc);
        let suite = format!("{} ({})", m.suite.name, m.suite.sha256.chars().take(12).collect::<String>());
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}<br><small>{}</small></td><td>{}<br><small>ISA: {}</small></td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n",
            i + 1,
            esc(&r.run_id),
            esc(&r.started_at),
            esc(&device),
            esc(&d.isa_features.join(" ")),
            esc(&build),
            esc(&suite),
            esc(&m.command_line.join(" "))
        ));
    }
    h.push_str("</table>\n");
    for (i, r) in runs.iter().enumerate() {
        let notes: Vec<String> =
            crate::energy::notes(r).into_iter().chain(crate::drift::notes(r)).chain(crate::weights::notes(r)).collect();
        if !notes.is_empty() {
            h.push_str(&format!("<p class=\"note\">Run {}:</p>\n<ul class=\"note\">\n", i + 1));
            for n in notes {
                h.push_str(&format!("<li>{}</li>\n", esc(&n)));
            }
            h.push_str("</ul>\n");
        }
    }
    h
}

fn results_section(runs: &[RunResults]) -> String {
    let keys = metric_keys(runs);
    let mut h = String::from("<h2>Results</h2>\n<table><tr><th>cell</th><th>model</th>");
    for k in &keys {
        let unit = metrics::lookup(k)
            .map(|d| d.unit.to_string())
            .or_else(|| runs.iter().flat_map(|r| &r.cells).find_map(|c| c.metrics.get(k).map(|m| m.unit.clone())));
        h.push_str(&format!("<th>{}<br><small>{}</small></th>", esc(k), esc(&unit.unwrap_or_default())));
    }
    h.push_str("<th>status / flags</th><th>backend</th></tr>\n");
    for (label, c) in labelled(runs) {
        h.push_str(&format!("<tr><td>{}</td><td>{}</td>", esc(&label), esc(&c.key.model)));
        for k in &keys {
            h.push_str(&format!("<td class=\"num\">{}</td>", esc(&cell_value(c, k))));
        }
        let backend = c.backend.as_ref().map_or(String::new(), |b| {
            let mut s = format!("{} · {}", b.versions.join(", "), b.kernel_path);
            if let Some(conv) = &b.converted {
                s.push_str(&format!(" · converted: {conv}"));
            }
            s
        });
        let class = if matches!(c.status, CellStatus::Ok) { "" } else { " class=\"bad\"" };
        h.push_str(&format!(
            "<td{class}>{}</td><td><small>{}</small></td></tr>\n",
            esc(&cell_status_text(c)),
            esc(&backend)
        ));
    }
    h.push_str("</table>\n<p class=\"note\">median ±half-width of its 95% bootstrap interval over repetitions.</p>\n");
    if let Some(crate::drift::StatsTable { labels, rows }) = crate::drift::html_rows(runs) {
        h.push_str("<h2>Accuracy drift</h2>\n<p class=\"note\">against the reference, with llama-perplexity's \
            <code>--kl-divergence</code> definitions (Q: the cell's backend; base: the reference)</p>\n<table><tr><th>statistic</th>");
        for l in &labels {
            h.push_str(&format!("<th>{}</th>", esc(l)));
        }
        h.push_str("</tr>\n");
        for (name, values) in rows {
            h.push_str(&format!("<tr><td>{}</td>", esc(&name)));
            for v in values {
                h.push_str(&format!("<td class=\"num\">{}</td>", esc(&v)));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    h
}

fn charts_section(runs: &[RunResults]) -> String {
    let cells = labelled(runs);
    let mut h = String::from("<h2>Charts</h2>\n");
    let mut tput = Vec::new();
    for (label, c) in &cells {
        tput.extend(bar(label, 0, c, "prefill_tps"));
        tput.extend(bar(label, 1, c, "decode_tps"));
    }
    h.push_str(&if tput.is_empty() {
        absent("Throughput", "no cell measured throughput")
    } else {
        figure(charts::bars("Throughput", "tokens/s", &["prefill", "decode"], &tput), "median with 95% interval")
    });
    for (key, title, unit) in [("ttft_ms", "Time to first token", "ms"), ("peak_rss_mib", "Peak RAM", "MiB")] {
        let rows: Vec<Bar> = cells.iter().filter_map(|(l, c)| bar(l, 0, c, key)).collect();
        h.push_str(&if rows.is_empty() {
            absent(title, "not measured in these results")
        } else {
            figure(charts::bars(title, unit, &[title], &rows), "median with 95% interval where repeated")
        });
    }
    let itl: Vec<BoxRow> = cells
        .iter()
        .filter_map(|(l, c)| {
            let m = c.metrics.get("itl_ms").filter(|m| !m.samples.is_empty())?;
            Some(BoxRow { label: l.clone(), samples: m.samples.iter().map(|&x| x as f32).collect() })
        })
        .collect();
    h.push_str(&if itl.is_empty() {
        absent("Inter-token latency", "no decode steps in these results")
    } else {
        figure(charts::boxes("Inter-token latency", "ms per decode step", &itl), "quartiles; whiskers at 1.5 IQR")
    });
    let energy: Vec<Bar> = cells.iter().filter_map(|(l, c)| bar(l, 0, c, ENERGY_METRIC)).collect();
    h.push_str(&if energy.is_empty() {
        let why = runs
            .iter()
            .flat_map(|r| &r.cells)
            .find_map(|c| c.energy.as_ref().map(|e| e.note.clone()))
            .unwrap_or_else(|| "these results carry no energy-meter readings".into());
        absent("Energy per token", &format!("not measured (never estimated): {why}"))
    } else {
        figure(
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
    h.push_str(&if points.is_empty() {
        absent("Speed against drift", "no accuracy-drift figures in these results")
    } else {
        figure(
            charts::pareto("Speed against drift", "mean KL divergence vs reference (nats)", "decode tokens/s", &points),
            "ringed: the Pareto front (no other cell is both faster and closer to the reference)",
        )
    });
    h
}

/// The whole report for one or more results files (devices, commits) side by side.
pub fn html_report(runs: &[RunResults]) -> String {
    let title = if runs.len() == 1 {
        format!("edgebench — {}", runs[0].run_id)
    } else {
        format!("edgebench — {} runs", runs.len())
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>{STYLE}</style></head>\n<body>\n<h1>{t}</h1>\n{}{}{}</body></html>\n",
        runs_section(runs),
        results_section(runs),
        charts_section(runs),
        t = esc(&title)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}\
td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;white-space:nowrap}\
td.bad{color:#a00}.note{color:#666;font-size:13px}figure{margin:1.5em 0}figure.absent{border:1px dashed #bbb;padding:.5em 1em}\
figcaption{color:#666;font-size:13px}td{max-width:30em;overflow-wrap:anywhere}figure{overflow-x:auto}";

//! The summary table `edgebench run` ends with: one row per cell.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use edgebench_core::metrics;
use edgebench_core::results::{CellResult, CellStatus, RunResults};

/// `median ±half-width of its 95% CI` with `digits` decimals; `—` when not measured.
pub fn fmt_metric(cell: &CellResult, key: &str, digits: usize, pick_p99: bool) -> String {
    let Some(m) = cell.metrics.get(key) else {
        return "—".into();
    };
    let s = &m.summary;
    if pick_p99 {
        return format!("{:.*}", digits, s.p99);
    }
    match s.median_ci95 {
        Some([lo, hi]) => {
            let half = (s.median - lo).max(hi - s.median);
            format!("{:.*} ±{:.*}", digits, s.median, digits, half)
        }
        None => format!("{:.*}", digits, s.median),
    }
}

/// `backend device tN workload`: a cell named in a note under a table.
pub(crate) fn cell_label(c: &CellResult) -> String {
    format!("{} {} t{} {}", c.key.backend, c.key.device, c.key.threads, c.key.workload)
}

/// `ok`, `skipped(reason)` or `failed(kind: message)`, shortened for a table.
pub fn cell_status_text(cell: &CellResult) -> String {
    let short = |s: &str| {
        let s = s.lines().next().unwrap_or("");
        if s.chars().count() > 90 {
            format!("{}…", s.chars().take(89).collect::<String>())
        } else {
            s.to_string()
        }
    };
    match &cell.status {
        CellStatus::Ok => "ok".into(),
        CellStatus::Skipped { reason } => format!("skipped({})", short(reason)),
        CellStatus::Failed { kind, message } => {
            let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            format!("failed({kind}: {})", short(message))
        }
    }
}

/// The run's summary table (UTF-8 box drawing, no colour).
pub fn terminal_table(results: &RunResults) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    // With several models in one run, each row names its model.
    let several = results.models.len() > 1;
    let mut header = if several { vec!["model"] } else { vec![] };
    header.extend([
        "backend",
        "device",
        "thr",
        "workload",
        "prefill t/s",
        "decode t/s",
        "TTFT ms",
        "ITL p99 ms",
        "peak RAM MiB",
        "J/tok decode",
        "KLD / top-1",
        "status / flags",
    ]);
    t.set_header(header);
    for c in &results.cells {
        let mut status = cell_status_text(c);
        if !c.validity.flags.is_empty() {
            status = format!("{status}; {}", c.validity.flags.join(", "));
        }
        if let Some(conv) = c.backend.as_ref().and_then(|f| f.converted.as_ref()) {
            status = format!("{status}; converted: {conv}");
        }
        let mut row = if several { vec![Cell::new(&c.key.model)] } else { vec![] };
        row.extend([
            Cell::new(&c.key.backend),
            Cell::new(&c.key.device),
            Cell::new(c.key.threads).set_alignment(CellAlignment::Right),
            Cell::new(&c.key.workload),
            Cell::new(fmt_metric(c, metrics::PREFILL_TPS.key, 1, false)).set_alignment(CellAlignment::Right),
            Cell::new(fmt_metric(c, metrics::DECODE_TPS.key, 2, false)).set_alignment(CellAlignment::Right),
            Cell::new(fmt_metric(c, metrics::TTFT_MS.key, 0, false)).set_alignment(CellAlignment::Right),
            Cell::new(fmt_metric(c, metrics::ITL_MS.key, 1, true)).set_alignment(CellAlignment::Right),
            Cell::new(fmt_metric(c, metrics::PEAK_RSS_MIB.key, 0, false)).set_alignment(CellAlignment::Right),
            Cell::new(fmt_metric(c, metrics::DECODE_J_PER_TOKEN.key, 3, false)).set_alignment(CellAlignment::Right),
            Cell::new(crate::drift::column(c)).set_alignment(CellAlignment::Right),
            Cell::new(status),
        ]);
        t.add_row(row);
    }
    let models: Vec<String> = results
        .models
        .values()
        .map(|m| {
            let from = m.requantized_from.as_ref().map(|f| {
                let ty = f.split_whitespace().next().unwrap_or(f);
                format!(", requantized from {ty} by edgebench")
            });
            let from = from.unwrap_or_default();
            format!("{} ({}{from})", m.id, &m.sha256[..12.min(m.sha256.len())])
        })
        .collect();
    let mut out = format!(
        "{t}\nmodel: {}\ndevice: {} ({} logical CPUs)\nvalues: median ±95% CI half-width over repetitions; ITL p99 over all decode steps\n",
        models.join(", "),
        results.device.cpu_model,
        results.device.logical_cpus
    );
    for n in crate::energy::notes(results)
        .into_iter()
        .chain(crate::drift::notes(results))
        .chain(crate::weights::notes(results))
    {
        out.push_str(&n);
        out.push('\n');
    }
    if let Some(stats) = crate::drift::terminal_stats(results) {
        out.push_str(&stats);
    }
    out
}

#[cfg(test)]
mod tests;

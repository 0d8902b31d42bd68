//! The summary table `edgebench run` ends with: one row per cell, 120 columns wide for a default run (`Width::Compact`)
//! or every column and the whole status text (`Width::Wide`), then the notes that explain it.

use std::collections::BTreeSet;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use edgebench_core::metrics;
use edgebench_core::results::{CellResult, CellStatus, RunResults};

use crate::text::{terminal_safe, wrap};

/// Widest line of a compact table and of its notes for a default run (one model, device, thread count, workload).
pub const COMPACT_COLUMNS: usize = 120;

/// How much a terminal table shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Width {
    /// Columns whose value is the same on every row move into a line under the table; the status column holds the
    /// status word, short flags and marks such as `[1]`, each explained once under the table; notes wrap at
    /// [`COMPACT_COLUMNS`].
    #[default]
    Compact,
    /// Every column on every row and the whole status text on each row (`--wide`).
    Wide,
}

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

/// Like [`fmt_metric`] with three significant digits of the median (`738`, `22.5`, `1458`, `4.21`), for compact
/// columns: two backends' figures within 1% of each other are within their intervals anyway.
fn fmt_sig(cell: &CellResult, key: &str) -> String {
    let digits = cell.metrics.get(key).map_or(0, |m| match m.summary.median.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    });
    fmt_metric(cell, key, digits, false)
}

/// `backend device tN workload`: a cell named in a note under a table.
pub(crate) fn cell_label(c: &CellResult) -> String {
    c.key.label()
}

/// `2 failed, 1 skipped`: how the cells of a run ended, for notes about a run in which nothing finished.
pub(crate) fn outcome_counts(r: &RunResults) -> String {
    let mut parts = Vec::new();
    for word in ["ok", "failed", "skipped"] {
        let n = r.cells.iter().filter(|c| status_word(c) == word).count();
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    parts.join(", ")
}

fn first_line(s: &str, max: usize) -> String {
    let s = s.lines().next().unwrap_or("");
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    } else {
        s.to_string()
    }
}

fn failure_kind(cell: &CellResult) -> String {
    match &cell.status {
        CellStatus::Failed { kind, .. } => {
            serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// `ok`, `skipped(reason)` or `failed(kind: message)`, shortened for a table.
pub fn cell_status_text(cell: &CellResult) -> String {
    status_text(cell, 90)
}

fn status_text(cell: &CellResult, max: usize) -> String {
    match &cell.status {
        CellStatus::Ok => "ok".into(),
        CellStatus::Skipped { reason } => format!("skipped({})", first_line(reason, max)),
        CellStatus::Failed { message, .. } => format!("failed({}: {})", failure_kind(cell), first_line(message, max)),
    }
}

/// The status word and each flag's short name once: `ok high_cv busy_machine`.
pub(crate) fn short_status(c: &CellResult) -> Vec<&str> {
    let mut words = vec![status_word(c)];
    for f in &c.validity.flags {
        let s = short_flag(f);
        if !words.contains(&s) {
            words.push(s);
        }
    }
    words
}

fn status_word(cell: &CellResult) -> &'static str {
    match cell.status {
        CellStatus::Ok => "ok",
        CellStatus::Skipped { .. } => "skipped",
        CellStatus::Failed { .. } => "failed",
    }
}

/// A flag's name without its details: `high_cv:load_ms(34%)` → `high_cv`.
fn short_flag(flag: &str) -> &str {
    flag.split([':', '(']).next().unwrap_or(flag)
}

/// Notes referred to from rows by `[n]`: each distinct text once, with the cells it is about.
#[derive(Default)]
struct Marks {
    notes: Vec<(String, Vec<String>)>,
}

impl Marks {
    /// Registers `text` for `cell` and returns its mark number (1-based).
    fn mark(&mut self, text: String, cell: String) -> usize {
        if let Some(i) = self.notes.iter().position(|(t, _)| *t == text) {
            if !self.notes[i].1.contains(&cell) {
                self.notes[i].1.push(cell);
            }
            return i + 1;
        }
        self.notes.push((text, vec![cell]));
        self.notes.len()
    }

    fn lines(&self) -> Vec<String> {
        self.notes
            .iter()
            .enumerate()
            .map(|(i, (text, cells))| format!("[{}] {}: {text}", i + 1, cells.join(", ")))
            .collect()
    }
}

/// The compact status column: the status word, each short flag once, and marks of the notes that give the details.
fn compact_status(c: &CellResult, label: &str, marks: &mut Marks) -> String {
    let words = short_status(c);
    let mut refs = Vec::new();
    if !matches!(c.status, CellStatus::Ok) {
        refs.push(marks.mark(status_text(c, 200), label.to_string()));
    }
    let detailed: Vec<&str> = c.validity.flags.iter().map(String::as_str).filter(|f| short_flag(f) != *f).collect();
    if !detailed.is_empty() {
        refs.push(marks.mark(detailed.join(", "), label.to_string()));
    }
    let mut s = words.join(" ");
    if !refs.is_empty() {
        let refs: Vec<String> = refs.iter().map(usize::to_string).collect();
        s.push_str(&format!(" [{}]", refs.join(",")));
    }
    wrap(&s, STATUS_COLUMNS, "")
}

/// Widest line of the compact status column (`ok busy_machine [1]`): more flags go on further lines of the cell, so
/// a loaded machine's `ok busy_machine oversubscribed [1]` makes the row taller, not the table wider.
const STATUS_COLUMNS: usize = 19;

/// The status with its whole reason, every flag and the conversion, as `--wide` shows it.
pub(crate) fn wide_status(c: &CellResult) -> String {
    let mut status = cell_status_text(c);
    if !c.validity.flags.is_empty() {
        status = format!("{status}; {}", c.validity.flags.join(", "));
    }
    if let Some(conv) = c.backend.as_ref().and_then(|f| f.converted.as_ref()) {
        status = format!("{status}; converted: {conv}");
    }
    status
}

/// The identity columns a row may carry, and which of them this table shows.
struct IdColumns {
    model: bool,
    device: bool,
    threads: bool,
    workload: bool,
}

impl IdColumns {
    fn of(results: &RunResults, width: Width) -> Self {
        let varies = |f: fn(&CellResult) -> String| results.cells.iter().map(f).collect::<BTreeSet<_>>().len() > 1;
        let wide = width == Width::Wide;
        Self {
            // With several models in one run, each row names its model.
            model: results.models.len() > 1 || varies(|c| c.key.model.clone()),
            device: wide || varies(|c| c.key.device.clone()),
            threads: wide || varies(|c| c.key.threads.to_string()),
            workload: wide || varies(|c| c.key.workload.clone()),
        }
    }

    /// `cells: device cpu · 2 threads · workload chat`: the values of the columns left out (every row shares them).
    fn shared_line(&self, results: &RunResults) -> Option<String> {
        let c = results.cells.first()?;
        let mut parts = Vec::new();
        if !self.device {
            parts.push(format!("device {}", c.key.device));
        }
        if !self.threads {
            parts.push(format!("{} thread{}", c.key.threads, if c.key.threads == 1 { "" } else { "s" }));
        }
        if !self.workload {
            parts.push(format!("workload {}", c.key.workload));
        }
        (!parts.is_empty()).then(|| format!("every cell: {}", parts.join(" · ")))
    }
}

/// The run's summary table (UTF-8 box drawing, no colour), compact.
pub fn terminal_table(results: &RunResults) -> String {
    terminal_table_with(results, Width::Compact)
}

/// The run's summary table at the given width, with the notes under it.
pub fn terminal_table_with(results: &RunResults, width: Width) -> String {
    let ids = IdColumns::of(results, width);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = Vec::new();
    for (shown, name) in [(ids.model, "model"), (true, "backend"), (ids.device, "device"), (ids.threads, "thr")] {
        if shown {
            header.push(name);
        }
    }
    if ids.workload {
        header.push("workload");
    }
    header.extend(["prefill\nt/s", "decode\nt/s", "TTFT\nms", "ITL p99\nms", "peak RAM\nMiB"]);
    // GPU memory only in runs with GPU cells.
    let gpu_memory = results.cells.iter().any(|c| c.metrics.contains_key(metrics::PEAK_DEVICE_MIB.key));
    if gpu_memory {
        header.push("GPU mem\nMiB");
    }
    header.extend(["J/tok\ndecode", "KLD /\ntop-1", "status"]);
    t.set_header(header);
    let mut marks = Marks::default();
    for c in &results.cells {
        let label = cell_label(c);
        let mut row = Vec::new();
        if ids.model {
            row.push(Cell::new(terminal_safe(&c.key.model)));
        }
        // A backend that ran the weights in another representation than the file's says so beside its name.
        let conversion = c.backend.as_ref().and_then(|f| f.converted.as_ref());
        row.push(Cell::new(match (width, conversion) {
            (Width::Compact, Some(conv)) => {
                let n = marks.mark(format!("converted: {conv}"), c.key.backend.clone());
                format!("{} [{n}]", c.key.backend)
            }
            _ => c.key.backend.clone(),
        }));
        if ids.device {
            row.push(Cell::new(&c.key.device));
        }
        if ids.threads {
            row.push(Cell::new(c.key.threads).set_alignment(CellAlignment::Right));
        }
        if ids.workload {
            row.push(Cell::new(&c.key.workload));
        }
        let (prefill, decode) = match width {
            Width::Compact => (fmt_sig(c, metrics::PREFILL_TPS.key), fmt_sig(c, metrics::DECODE_TPS.key)),
            Width::Wide => {
                (fmt_metric(c, metrics::PREFILL_TPS.key, 1, false), fmt_metric(c, metrics::DECODE_TPS.key, 2, false))
            }
        };
        let status = match width {
            Width::Compact => compact_status(c, &label, &mut marks),
            Width::Wide => wide_status(c),
        };
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        row.extend([
            right(prefill),
            right(decode),
            right(fmt_metric(c, metrics::TTFT_MS.key, 0, false)),
            right(fmt_metric(c, metrics::ITL_MS.key, 1, true)),
            right(fmt_metric(c, metrics::PEAK_RSS_MIB.key, 0, false)),
        ]);
        if gpu_memory {
            row.push(right(fmt_metric(c, metrics::PEAK_DEVICE_MIB.key, 0, false)));
        }
        row.extend([
            right(fmt_metric(c, metrics::DECODE_J_PER_TOKEN.key, 3, false)),
            right(crate::drift::column(c)),
            Cell::new(terminal_safe(&status)),
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
    let mut notes = Vec::new();
    if width == Width::Compact {
        notes.extend(marks.lines());
    }
    notes.push(format!("model: {}", models.join(", ")));
    notes.extend(ids.shared_line(results));
    notes.push(format!("device: {} ({} logical CPUs)", results.device.cpu_model, results.device.logical_cpus));
    if let Some(l) = &results.device.limits {
        let per_cell: Vec<String> = results
            .cells
            .iter()
            .filter_map(|c| {
                let g = c.cgroup.as_ref()?;
                Some(format!(
                    "{} {} major faults, page cache {}, peak {}{}",
                    c.key.label(),
                    g.major_faults,
                    edgebench_core::text::bytes_iec(g.page_cache_bytes),
                    edgebench_core::text::bytes_iec(g.peak_bytes),
                    if g.oom_kills > 0 { ", OOM-killed" } else { "" }
                ))
            })
            .collect();
        notes.push(format!(
            "limits: {} per cell ({}; a memory limit's cells start with the model file out of the page cache){}{}",
            l.describe(),
            l.mechanism,
            if per_cell.is_empty() { "" } else { ": " },
            per_cell.join("; ")
        ));
    }
    for r in &results.manifest.resumed {
        notes.push(format!(
            "resumed at {}: {} cell(s) kept from before, {} left to measure then",
            r.at, r.kept_cells, r.planned_cells
        ));
    }
    notes.push("values: median ±95% CI half-width over repetitions; ITL p99 over all decode steps".into());
    notes.extend(crate::energy::notes(results));
    notes.extend(crate::gpu_memory::notes(results));
    notes.extend(crate::bandwidth::notes(results));
    notes.extend(crate::drift::notes(results));
    match width {
        // Conversions are marked notes already.
        Width::Compact => notes.extend(crate::weights::verdicts(results)),
        Width::Wide => notes.extend(crate::weights::notes(results)),
    }
    let mut out = format!("{t}\n");
    for n in notes {
        let n = terminal_safe(&n);
        match width {
            Width::Compact => out.push_str(&wrap(&n, COMPACT_COLUMNS, "    ")),
            Width::Wide => out.push_str(&n),
        }
        out.push('\n');
    }
    if let Some(stats) = crate::drift::terminal_stats(results) {
        out.push_str(&stats);
    }
    // Every string from the results file (names, device, messages) made inert, whichever part printed it.
    terminal_safe(&out)
}

#[cfg(test)]
mod tests;

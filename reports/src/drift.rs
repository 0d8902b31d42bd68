//! Accuracy drift in reports: the table column beside speed, notes on the reference and evaluation set, and the
//! full statistics laid out with llama-perplexity's `--kl-divergence` row names (one column per cell).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use edgebench_core::accuracy::{Drift, DriftLevel, DriftStats, Estimate};
use edgebench_core::results::{CellResult, RunResults};

fn label(c: &CellResult) -> String {
    format!("{} {} t{} {}", c.key.backend, c.key.device, c.key.threads, c.key.workload)
}

/// The table cell: `mean KLD / same top-1 %`, `skipped`, `failed`, or `—` when the run asked for no check.
pub fn column(c: &CellResult) -> String {
    match &c.drift {
        None => "—".into(),
        Some(Drift::Measured(d)) => {
            format!("{:.4} / {:.1}%", d.stats.kld.value, 100.0 * d.stats.same_top1.value)
        }
        Some(Drift::Skipped { .. }) => "skipped".into(),
        Some(Drift::Failed { .. }) => "failed".into(),
    }
}

/// Notes for one run: what the figures are measured against, and why any cell has none.
pub fn notes(r: &RunResults) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: Vec<(String, String, usize)> = Vec::new();
    for c in &r.cells {
        match &c.drift {
            Some(Drift::Measured(d)) => {
                let k = (d.reference.clone(), d.eval_set.clone(), d.stats.tokens);
                if !seen.contains(&k) {
                    let level = match d.level {
                        DriftLevel::Full => "full statistics",
                        _ => "short check (wide uncertainty; --suite accuracy for the full statistics)",
                    };
                    out.push(format!(
                        "drift: KLD / top-1 = mean KL(reference ‖ backend) in nats / same most-likely token, over {} \
                         scored tokens, {level}; reference: {}; evaluation set: {}",
                        d.stats.tokens, d.reference, d.eval_set
                    ));
                    seen.push(k);
                }
            }
            Some(Drift::Skipped { reason }) => out.push(format!("drift: not measured for {}: {reason}", label(c))),
            Some(Drift::Failed { message }) => out.push(format!("drift: failed for {}: {message}", label(c))),
            None => {}
        }
    }
    out
}

type RowFn = fn(&DriftStats) -> String;
type Row = (&'static str, RowFn);

fn kld_fmt(v: f64) -> String {
    format!("{v:.6}")
}

fn dp_fmt(v: f64) -> String {
    format!("{:.3}%", 100.0 * v)
}

fn pm(e: Estimate, digits: usize) -> String {
    format!("{:.*} ± {:.*}", digits, e.value, digits, e.err)
}

fn pct(e: Estimate) -> String {
    format!("{:.3} ± {:.3} %", 100.0 * e.value, 100.0 * e.err)
}

macro_rules! dist_rows {
    ($field:ident, $unit:literal, $fmt:expr) => {
        [
            (concat!("Maximum ", $unit), (|s: &DriftStats| $fmt(s.$field.max)) as RowFn),
            (concat!("99.9%   ", $unit), (|s: &DriftStats| $fmt(s.$field.p99_9)) as RowFn),
            (concat!("99.0%   ", $unit), (|s: &DriftStats| $fmt(s.$field.p99)) as RowFn),
            (concat!("95.0%   ", $unit), (|s: &DriftStats| $fmt(s.$field.p95)) as RowFn),
            (concat!("90.0%   ", $unit), (|s: &DriftStats| $fmt(s.$field.p90)) as RowFn),
            (concat!("Median  ", $unit), (|s: &DriftStats| $fmt(s.$field.median)) as RowFn),
            (concat!("10.0%   ", $unit), (|s: &DriftStats| $fmt(s.$field.p10)) as RowFn),
            (concat!(" 5.0%   ", $unit), (|s: &DriftStats| $fmt(s.$field.p5)) as RowFn),
            (concat!(" 1.0%   ", $unit), (|s: &DriftStats| $fmt(s.$field.p1)) as RowFn),
            (concat!(" 0.1%   ", $unit), (|s: &DriftStats| $fmt(s.$field.p0_1)) as RowFn),
            (concat!("Minimum ", $unit), (|s: &DriftStats| $fmt(s.$field.min)) as RowFn),
        ]
    };
}

fn rows() -> Vec<Row> {
    let mut r: Vec<Row> = vec![
        ("tokens scored", |s| s.tokens.to_string()),
        ("Mean PPL(Q)", |s| pm(s.ppl, 6)),
        ("Mean PPL(base)", |s| pm(s.ppl_ref, 6)),
        ("Cor(ln(PPL(Q)), ln(PPL(base)))", |s| {
            s.ln_prob_correlation.map_or("n/a".into(), |c| format!("{:.2}%", 100.0 * c))
        }),
        ("Mean ln(PPL(Q)/PPL(base))", |s| pm(s.ln_ppl_ratio, 6)),
        ("Mean PPL(Q)/PPL(base)", |s| pm(s.ppl_ratio, 6)),
        ("Mean PPL(Q)-PPL(base)", |s| pm(s.ppl_diff, 6)),
        ("Mean    KLD", |s| pm(s.kld, 6)),
    ];
    r.extend(dist_rows!(kld_distribution, "KLD", kld_fmt));
    r.push(("Mean    Δp", |s| pct(s.delta_p)));
    r.extend(dist_rows!(delta_p_distribution, "Δp", dp_fmt));
    r.push(("RMS Δp", |s| pct(s.delta_p_rms)));
    r.push(("Same top p", |s| pct(s.same_top1)));
    // The Δp distribution also has quartiles, as llama-perplexity prints.
    let at = r.iter().position(|(n, _)| n.starts_with("Median  Δp")).expect("median row");
    r.insert(at, ("75.0%   Δp", |s| dp_fmt(s.delta_p_distribution.p75)));
    r.insert(at + 2, ("25.0%   Δp", |s| dp_fmt(s.delta_p_distribution.p25)));
    r
}

/// Cells with measured drift, labelled (with the model when there are several, the run when there are several).
fn measured(runs: &[RunResults]) -> Vec<(String, &DriftStats)> {
    let many = runs.len() > 1;
    let models: std::collections::BTreeSet<&str> =
        runs.iter().flat_map(|r| r.cells.iter().map(|c| c.key.model.as_str())).collect();
    runs.iter()
        .enumerate()
        .flat_map(|(i, r)| {
            let models = &models;
            r.cells.iter().filter_map(move |c| match &c.drift {
                Some(Drift::Measured(d)) => {
                    let mut l = label(c);
                    if models.len() > 1 {
                        l = format!("{} {l}", c.key.model);
                    }
                    Some((if many { format!("[{}] {l}", i + 1) } else { l }, &d.stats))
                }
                _ => None,
            })
        })
        .collect()
}

/// The full statistics as a terminal table (statistic rows × cells), when any cell measured a full check.
pub fn terminal_stats(r: &RunResults) -> Option<String> {
    let full = r.cells.iter().any(|c| matches!(&c.drift, Some(Drift::Measured(d)) if d.level == DriftLevel::Full));
    if !full {
        return None;
    }
    let cells = measured(std::slice::from_ref(r));
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["statistic (llama-perplexity --kl-divergence)".to_string()];
    header.extend(cells.iter().map(|(l, _)| l.clone()));
    t.set_header(header);
    for (name, f) in rows() {
        let mut row = vec![Cell::new(name)];
        row.extend(cells.iter().map(|(_, s)| Cell::new(f(s)).set_alignment(CellAlignment::Right)));
        t.add_row(row);
    }
    Some(format!("{t}\n"))
}

/// The full statistics as a Markdown table, when any cell measured drift.
pub fn markdown_stats(runs: &[RunResults]) -> Option<String> {
    let cells = measured(runs);
    if cells.is_empty() {
        return None;
    }
    let mut out = String::from("| statistic |");
    for (l, _) in &cells {
        out.push_str(&format!(" {l} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(cells.len()));
    out.push('\n');
    for (name, f) in rows() {
        out.push_str(&format!("| {} |", name.split_whitespace().collect::<Vec<_>>().join(" ")));
        for (_, s) in &cells {
            out.push_str(&format!(" {} |", f(s)));
        }
        out.push('\n');
    }
    Some(out)
}

/// The statistics of every cell with drift, for the HTML report.
pub struct StatsTable {
    /// One label per cell (column).
    pub labels: Vec<String>,
    /// (statistic, value per cell).
    pub rows: Vec<(String, Vec<String>)>,
}

/// The full statistics as a [`StatsTable`], when any cell measured drift.
pub fn html_rows(runs: &[RunResults]) -> Option<StatsTable> {
    let cells = measured(runs);
    if cells.is_empty() {
        return None;
    }
    let labels = cells.iter().map(|(l, _)| l.clone()).collect();
    let rows = rows()
        .into_iter()
        .map(|(name, f)| {
            (name.split_whitespace().collect::<Vec<_>>().join(" "), cells.iter().map(|(_, s)| f(s)).collect())
        })
        .collect();
    Some(StatsTable { labels, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::run;

    #[test]
    fn column_and_notes_say_what_was_measured_and_why_not() {
        let mut r = run("r1", "AMD EPYC");
        assert_eq!(column(&r.cells[0]), "0.0040 / 98.0%");
        assert_eq!(column(&r.cells[2]), "—");
        let notes = notes(&r);
        assert_eq!(notes.len(), 1, "one reference and set: one note, {notes:?}");
        assert!(notes[0].contains("512 scored tokens, full statistics") && notes[0].contains("requantize=f32"));
        r.cells[1].drift = Some(Drift::Skipped { reason: "no reference: candle not compiled in".into() });
        r.cells[0].drift = Some(Drift::Failed { message: "sequence 2: context full".into() });
        assert_eq!((column(&r.cells[1]).as_str(), column(&r.cells[0]).as_str()), ("skipped", "failed"));
        let notes = super::notes(&r);
        assert!(notes.iter().any(|n| n.contains("not measured for llamacpp cpu t2 chat: no reference")));
        assert!(notes.iter().any(|n| n.contains("failed for candle cpu t2 chat: sequence 2")));
        assert!(terminal_stats(&r).is_none() && markdown_stats(&[r]).is_none());
    }

    #[test]
    fn statistics_use_llama_perplexity_row_names() {
        let t = terminal_stats(&run("r1", "AMD EPYC")).unwrap();
        for row in ["Mean PPL(Q)", "Cor(ln(PPL(Q)), ln(PPL(base)))", "99.9%   KLD", "RMS Δp", "Same top p"] {
            assert!(t.contains(row), "{row} missing");
        }
        assert!(t.contains("98.000 ± 1.340 %"), "{t}");
        insta::assert_snapshot!(t);
    }
}

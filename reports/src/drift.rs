//! Accuracy drift in reports: the table column beside speed, notes on the reference and evaluation set, and the
//! full statistics laid out with llama-perplexity's `--kl-divergence` row names (one column per cell).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use edgebench_core::drift::{Distribution, Drift, DriftLevel, DriftStats, Estimate};
use edgebench_core::results::{CellResult, RunResults};

use crate::table::cell_label as label;

/// The table cell: `mean KLD / same top-1 %`, `skipped`, `failed`, or `—` when the run asked for no check.
pub fn column(c: &CellResult) -> String {
    match &c.drift {
        None => "—".into(),
        Some(Drift::Measured(d)) => {
            // A mean KL that is zero up to rounding can come out at −1e-7; it prints as 0.0000, not −0.0000.
            let kld = if d.stats.kld.value.abs() < 5e-5 { 0.0 } else { d.stats.kld.value };
            format!("{kld:.4} / {:.1}%", 100.0 * d.stats.same_top1.value)
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
    let asked = r.manifest.suite.resolved.get("drift").and_then(|v| v.as_str()) != Some("off");
    let finished = r.cells.iter().any(|c| c.status == edgebench_core::results::CellStatus::Ok);
    if asked && out.is_empty() && !finished && !r.cells.is_empty() {
        out.push(format!(
            "drift: not measured: no cell ran to the end of its workload ({})",
            crate::table::outcome_counts(r)
        ));
    }
    out
}

type Row = (String, Box<dyn Fn(&DriftStats) -> String>);

fn pm(e: Estimate, digits: usize) -> String {
    format!("{:.*} ± {:.*}", digits, e.value, digits, e.err)
}

fn pct(e: Estimate) -> String {
    format!("{:.3} ± {:.3} %", 100.0 * e.value, 100.0 * e.err)
}

type Pick = fn(&Distribution) -> f64;

/// Order statistics as llama-perplexity prints them: (row prefix, value, printed for Δp only).
const ORDER_STATS: &[(&str, Pick, bool)] = &[
    ("Maximum", |d| d.max, false),
    ("99.9%  ", |d| d.p99_9, false),
    ("99.0%  ", |d| d.p99, false),
    ("95.0%  ", |d| d.p95, false),
    ("90.0%  ", |d| d.p90, false),
    ("75.0%  ", |d| d.p75, true),
    ("Median ", |d| d.median, false),
    ("25.0%  ", |d| d.p25, true),
    ("10.0%  ", |d| d.p10, false),
    (" 5.0%  ", |d| d.p5, false),
    (" 1.0%  ", |d| d.p1, false),
    (" 0.1%  ", |d| d.p0_1, false),
    ("Minimum", |d| d.min, false),
];

fn order_rows(unit: &str, of: fn(&DriftStats) -> &Distribution, fmt: fn(f64) -> String, quartiles: bool) -> Vec<Row> {
    ORDER_STATS
        .iter()
        .filter(|(_, _, q)| quartiles || !q)
        .map(|&(name, pick, _)| -> Row { (format!("{name} {unit}"), Box::new(move |s| fmt(pick(of(s))))) })
        .collect()
}

fn row(name: &str, f: impl Fn(&DriftStats) -> String + 'static) -> Row {
    (name.to_string(), Box::new(f))
}

fn rows() -> Vec<Row> {
    let mut r = vec![
        row("tokens scored", |s| s.tokens.to_string()),
        row("Mean PPL(Q)", |s| pm(s.ppl, 6)),
        row("Mean PPL(base)", |s| pm(s.ppl_ref, 6)),
        row("Cor(ln(PPL(Q)), ln(PPL(base)))", |s| {
            s.ln_prob_correlation.map_or("n/a".into(), |c| format!("{:.2}%", 100.0 * c))
        }),
        row("Mean ln(PPL(Q)/PPL(base))", |s| pm(s.ln_ppl_ratio, 6)),
        row("Mean PPL(Q)/PPL(base)", |s| pm(s.ppl_ratio, 6)),
        row("Mean PPL(Q)-PPL(base)", |s| pm(s.ppl_diff, 6)),
        row("Mean    KLD", |s| pm(s.kld, 6)),
    ];
    r.extend(order_rows("KLD", |s| &s.kld_distribution, |v| format!("{v:.6}"), false));
    r.push(row("Mean    Δp", |s| pct(s.delta_p)));
    r.extend(order_rows("Δp", |s| &s.delta_p_distribution, |v| format!("{:.3}%", 100.0 * v), true));
    r.push(row("RMS Δp", |s| pct(s.delta_p_rms)));
    r.push(row("Same top p", |s| pct(s.same_top1)));
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
        let mut cols = vec![Cell::new(name)];
        cols.extend(cells.iter().map(|(_, s)| Cell::new(f(s)).set_alignment(CellAlignment::Right)));
        t.add_row(cols);
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
        out.push_str(&format!(" {} |", crate::text::markdown_safe(l)));
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

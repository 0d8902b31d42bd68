//! Renders a run comparison (`edgebench compare` / `gate`) as a terminal table or as Markdown for a pull request.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use edgebench_core::comparison::{Comparison, Outcome, Row, RunComparison, Verdict};

/// Output flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Box-drawn table for a terminal.
    Terminal,
    /// GitHub-flavoured Markdown.
    Markdown,
}

fn num(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.4}"),
    }
}

fn pct(r: f64) -> String {
    format!("{:+.1}%", (r - 1.0) * 100.0)
}

/// Verdict words as they appear in tables.
pub fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Compared(c) => match c.verdict {
            Verdict::Improved => "improved".into(),
            Verdict::Regressed => "REGRESSED".into(),
            Verdict::NoSignificantChange => "no significant change".into(),
        },
        Outcome::Skipped { reason } => format!("skipped({reason})"),
        Outcome::Broken { reason } => format!("REGRESSED: {reason}"),
    }
}

fn cells(row: &Row) -> Vec<String> {
    let k = &row.key;
    let mut v =
        vec![k.backend.clone(), k.device.clone(), k.threads.to_string(), k.workload.clone(), row.metric.clone()];
    match &row.outcome {
        Outcome::Compared(Comparison { base_median, current_median, ratio, ratio_ci, threshold, .. }) => v.extend([
            num(*base_median),
            num(*current_median),
            format!("{} [{}, {}]", pct(*ratio), pct(ratio_ci[0]), pct(ratio_ci[1])),
            format!("±{:.1}%", threshold * 100.0),
        ]),
        _ => v.extend(["".into(), "".into(), "".into(), "".into()]),
    }
    v.push(outcome_text(&row.outcome));
    v
}

const HEADER: &[&str] =
    &["backend", "device", "thr", "workload", "metric", "base", "current", "change [95% CI]", "threshold", "verdict"];

/// One line: counts of each outcome.
pub fn summary_line(c: &RunComparison) -> String {
    let count = |f: &dyn Fn(&Outcome) -> bool| c.rows.iter().filter(|r| f(&r.outcome)).count();
    let regressed = c.regressions().count();
    let improved = count(&|o| matches!(o, Outcome::Compared(Comparison { verdict: Verdict::Improved, .. })));
    let same = count(&|o| matches!(o, Outcome::Compared(Comparison { verdict: Verdict::NoSignificantChange, .. })));
    let skipped = count(&|o| matches!(o, Outcome::Skipped { .. }));
    format!("{regressed} regressed, {improved} improved, {same} without significant change, {skipped} skipped")
}

/// The comparison as a table with a header naming both runs and a summary line.
pub fn comparison_report(c: &RunComparison, style: Style) -> String {
    let rows: Vec<Vec<String>> = c.rows.iter().map(cells).collect();
    let mut out = String::new();
    match style {
        Style::Terminal => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED).set_header(HEADER);
            for r in rows {
                t.add_row(r);
            }
            for col in [2, 5, 6] {
                if let Some(c) = t.column_mut(col) {
                    c.set_cell_alignment(CellAlignment::Right);
                }
            }
            out.push_str(&format!("base {} → current {}\n{t}\n", c.base_run, c.current_run));
        }
        Style::Markdown => {
            let verdict = if c.regressions().count() > 0 { "❌ regression" } else { "✅ no regression" };
            out.push_str(&format!(
                "### edgebench: {verdict}\n\nbase `{}` → current `{}`\n\n",
                crate::text::markdown_safe(&c.base_run),
                crate::text::markdown_safe(&c.current_run)
            ));
            out.push_str(&format!("| {} |\n", HEADER.join(" | ")));
            out.push_str(&format!(
                "|{}\n",
                ["---|", "---|", "---:|", "---|", "---|", "---:|", "---:|", "---|", "---:|", "---|"].concat()
            ));
            for r in rows {
                let escaped: Vec<String> = r.iter().map(|s| crate::text::markdown_safe(s)).collect();
                out.push_str(&format!("| {} |\n", escaped.join(" | ")));
            }
            out.push('\n');
        }
    }
    for m in &c.mismatches_allowed {
        out.push_str(&format!("warning: compared despite a mismatch: {m}\n"));
    }
    out.push_str(&summary_line(c));
    out.push('\n');
    // Strings from the results files (model, backend, workload names, run ids) cannot drive the terminal.
    crate::text::terminal_safe(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgebench_core::metrics::Better;
    use edgebench_core::results::CellKey;

    fn key(workload: &str) -> CellKey {
        CellKey {
            model: "m".into(),
            backend: "candle".into(),
            device: "cpu".into(),
            threads: 2,
            workload: workload.into(),
        }
    }

    fn fixture() -> RunComparison {
        let cmp = |b: f64, c: f64, lo: f64, hi: f64, verdict| {
            Outcome::Compared(Comparison {
                base_median: b,
                current_median: c,
                ratio: c / b,
                ratio_ci: [lo, hi],
                threshold: 0.03,
                verdict,
            })
        };
        let row = |w: &str, metric: &str, outcome| Row {
            key: key(w),
            metric: metric.into(),
            better: Some(Better::Higher),
            outcome,
        };
        RunComparison {
            base_run: "base-run".into(),
            current_run: "current-run".into(),
            mismatches_allowed: vec![],
            rows: vec![
                row("tg128", "decode_tps", cmp(23.4, 20.1, 0.84, 0.88, Verdict::Regressed)),
                row("pp512", "prefill_tps", cmp(25.8, 25.9, 0.99, 1.01, Verdict::NoSignificantChange)),
                row("pp512", "ttft_ms", cmp(1589.0, 1201.0, 0.74, 0.77, Verdict::Improved)),
                row("chat", "*", Outcome::Broken { reason: "failed now (panic): boom | bang".into() }),
                row("chat2", "*", Outcome::Skipped { reason: "not in the base run".into() }),
            ],
        }
    }

    #[test]
    fn terminal_snapshot() {
        insta::assert_snapshot!(comparison_report(&fixture(), Style::Terminal));
    }

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(comparison_report(&fixture(), Style::Markdown));
    }

    /// Names and messages from results files reach neither the terminal nor a Markdown comment as control
    /// sequences or table syntax.
    #[test]
    fn hostile_names_are_made_inert() {
        let mut c = fixture();
        c.current_run = "run\x1b]0;pwned\x07".into();
        c.rows[0].key.model = "m\x1b[2J|<script>`".into();
        c.rows[3].outcome = Outcome::Broken { reason: "failed\x1b[31m | x\ny".into() };
        for style in [Style::Terminal, Style::Markdown] {
            let out = comparison_report(&c, style);
            let raw: Vec<&str> = out.lines().filter(|l| l.contains('\x1b') || l.contains('\x07')).collect();
            assert!(raw.is_empty(), "{raw:?}");
            assert!(out.contains("\\u{1b}[31m") && out.contains("\\u{1b}]0;pwned\\u{7}"), "{out}");
        }
        let md = comparison_report(&c, Style::Markdown);
        assert!(md.contains("failed\\u{1b}[31m \\| x y"), "{md}");
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| cell")).collect();
        for r in &rows {
            assert_eq!(r.replace("\\|", "").matches('|').count(), 11, "one cell per column: {r}");
        }
    }
}

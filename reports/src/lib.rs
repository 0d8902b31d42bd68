//! Renderers: pure functions from results to bytes — the terminal table, comparisons, Markdown, a self-contained
//! HTML report with SVG charts (plotters), and CSV / Parquet exports (polars, feature `polars`).

pub mod bandwidth;
pub mod charts;
pub mod compare;
pub mod drift;
pub mod energy;
pub mod export;
#[cfg(test)]
mod fixtures;
pub mod gpu_memory;
pub mod html;
pub mod markdown;
pub mod recommend;
pub mod rows;
mod table;
pub mod text;
pub mod weights;

pub use table::{cell_status_text, fmt_metric, terminal_table, terminal_table_with, Width, COMPACT_COLUMNS};

#[cfg(test)]
mod tests {
    use super::fixtures::run;

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(super::markdown::markdown_report(&[
            run("r1", "AMD EPYC"),
            run("r2", "Raspberry Pi 5")
        ]));
    }

    #[test]
    fn terminal_and_markdown_make_strings_from_files_inert() {
        let mut r = run("r\x1b]0;title\x07", "EPYC\x1b[2J");
        r.cells[0].key.model = "evil\x1b[2J|<b>".into();
        r.cells[0].key.workload = "chat\x07".into();
        r.cells[0].status = edgebench_core::results::CellStatus::Failed {
            kind: edgebench_core::results::FailureKind::Error,
            message: "boom\x1b[31m | red\nnext".into(),
        };
        let table = super::terminal_table(&r);
        let md = super::markdown::markdown_report(std::slice::from_ref(&r));
        for out in [&table, &md] {
            let raw: Vec<&str> = out.lines().filter(|l| l.contains('\x1b') || l.contains('\x07')).collect();
            assert!(raw.is_empty(), "{raw:?}");
            assert!(out.contains("\\u{1b}[31m") && out.contains("chat\\u{7}"), "{out}");
        }
        assert!(md.contains("evil\\u{1b}[2J\\|&lt;b&gt;") && !md.contains("<b>"), "{md}");
        let header_cols = md.lines().next().unwrap().matches('|').count();
        for row in md.lines().take_while(|l| !l.is_empty()).filter(|l| l.starts_with("| ") && !l.starts_with("| #")) {
            assert_eq!(row.replace("\\|", "").matches('|').count(), header_cols, "one cell per column: {row}");
        }
    }

    #[test]
    fn html_snapshot_escapes_and_draws_every_chart() {
        let html = super::html::html_report(&[run("r1", "AMD EPYC"), run("r2", "Raspberry Pi 5")]);
        assert_eq!(html.matches("<svg").count(), 6, "throughput, TTFT, RAM, ITL, energy, drift");
        assert!(html.contains("panicked: &lt;boom&gt; &amp; &quot;bang&quot;") && !html.contains("<boom>"));
        assert!(html.contains("[2] llamacpp cpu t2 chat") && html.contains("Raspberry Pi 5"));
        insta::assert_snapshot!(html);
    }

    #[test]
    fn absent_metrics_say_so_instead_of_drawing_zeros() {
        let mut r = run("r1", "x");
        for c in &mut r.cells {
            c.metrics.retain(|k, _| k != super::html::ENERGY_METRIC && k != super::html::DRIFT_METRIC);
        }
        let html = super::html::html_report(&[r]);
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("not measured (never estimated)"));
        assert!(html.contains("no accuracy-drift figures"));
    }

    /// Opens the HTML report in headless Chromium (Debian package `chromium`): it must render (a non-trivial
    /// screenshot), keep all six charts in the DOM, and log nothing to the console.
    #[test]
    #[ignore = "needs /usr/bin/chromium; .ci/run installs it and runs this with --ignored"]
    fn html_report_renders_in_headless_chromium() {
        let html = super::html::html_report(&[run("r1", "AMD EPYC"), run("r2", "Pi")]);
        let shown = crate::fixtures::render_in_chromium(&html, "1200,2400");
        assert_eq!(shown.dom.matches("<svg").count(), 6, "charts in the rendered DOM");
        assert!(shown.dom.contains("Speed against drift") && shown.dom.contains("[2] llamacpp cpu t2 chat"));
        assert!(shown.console.is_empty(), "console messages: {:?}", shown.console);
        assert!(
            shown.png.starts_with(b"\x89PNG") && shown.png.len() > 50_000,
            "screenshot of {} bytes",
            shown.png.len()
        );
    }

    #[test]
    fn a_rounding_level_negative_median_prints_as_zero() {
        let mut r = run("r1", "x");
        for (median, shown) in [(-1e-7, "0.0000"), (-0.25, "-0.2500")] {
            r.cells[0].metrics.get_mut(super::html::DRIFT_METRIC).unwrap().summary.median = median;
            assert_eq!(super::html::cell_value(&r.cells[0], super::html::DRIFT_METRIC), shown);
        }
    }

    #[test]
    fn tidy_rows_cover_every_metric_and_every_metricless_cell() {
        let rows = super::rows::tidy_rows(&[run("r1", "x")]);
        // candle 6 metrics, llamacpp 7, skipped and failed one row each.
        assert_eq!(rows.len(), 15);
        assert!(rows.iter().any(|r| r.backend == "ort" && r.metric.is_empty() && r.status.starts_with("skipped")));
    }
}

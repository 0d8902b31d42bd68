//! Stored summaries checked against the raw samples beside them, so `report` (which shows summaries) and `gate`
//! (which uses samples) never read two different stories from one results file.

use edgebench_core::results::{RunResults, Summary};
use edgebench_core::text::terminal_safe;

/// Relative tolerance for float fields: JSON round trips may move a value by an ulp or so, never by this much.
const REL_TOL: f64 = 1e-9;

/// Recomputes each metric's summary from its samples as [`crate::summarize`] does. Any stored summary that
/// contradicts its samples is an error naming the cell and metric (all of them, one line each); otherwise every
/// stored summary is replaced by the recomputed one.
///
/// Compared exactly: `n`, `outliers`, which intervals are present. Compared within a relative 1e-9 (of the larger
/// value or, for fields in the samples' unit, of the largest sample): the other fields. Except the bootstrap interval
/// of the median: it depends on a pseudo-random stream that the `rand` crate does not promise across versions or
/// platforms (`SmallRng` differs on 32-bit targets), and its 2,000 resamples would make reading a long run slow
/// (about 1.5 s per 10,000-sample metric in a test build), so it is not recomputed: a stored one only has to be
/// possible (present from 3 samples on, within [min, max] and around the median) and is kept.
pub fn check_summaries(results: &mut RunResults) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let mut fresh = Vec::new();
    for (ci, cell) in results.cells.iter().enumerate() {
        for (name, m) in &cell.metrics {
            let mut s = crate::summarize_with(&m.samples, false);
            let wrong = contradictions(&m.summary, &s, &m.samples);
            if wrong.is_empty() {
                s.median_ci95 = m.summary.median_ci95;
                fresh.push((ci, name.clone(), s));
            } else {
                errors.push(format!(
                    "cell {} ({}), metric {}: stored summary contradicts the {} sample(s): {}",
                    terminal_safe(&cell.key.label()),
                    terminal_safe(&cell.key.model),
                    terminal_safe(name),
                    m.samples.len(),
                    shorten(&wrong)
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (ci, name, s) in fresh {
        if let Some(m) = results.cells[ci].metrics.get_mut(&name) {
            m.summary = s;
        }
    }
    Ok(())
}

/// `stored` against `computed` from `samples`: one "field stored X, samples give Y" per disagreement.
fn contradictions(stored: &Summary, computed: &Summary, samples: &[f64]) -> Vec<String> {
    let scale = samples.iter().copied().filter(|x| x.is_finite()).fold(0.0f64, |a, x| a.max(x.abs()));
    let mut out = Vec::new();
    if stored.n != computed.n {
        out.push(format!("n stored {}, samples give {}", stored.n, computed.n));
    }
    if stored.outliers != computed.outliers {
        out.push(format!("outliers stored {}, samples give {}", stored.outliers, computed.outliers));
    }
    let fields = [
        ("median", stored.median, computed.median, scale),
        ("mean", stored.mean, computed.mean, scale),
        ("stddev", stored.stddev, computed.stddev, scale),
        ("min", stored.min, computed.min, scale),
        ("max", stored.max, computed.max, scale),
        ("p50", stored.p50, computed.p50, scale),
        ("p90", stored.p90, computed.p90, scale),
        ("p99", stored.p99, computed.p99, scale),
        ("cv", stored.cv, computed.cv, 1.0),
    ];
    for (field, a, b, scale) in fields {
        if !close(a, b, scale) {
            out.push(format!("{field} stored {a}, samples give {b}"));
        }
    }
    match (stored.mean_ci95, computed.mean_ci95) {
        (None, None) => {}
        (Some(a), Some(b)) if close(a[0], b[0], scale) && close(a[1], b[1], scale) => {}
        (a, b) => out.push(format!("mean_ci95 stored {a:?}, samples give {b:?}")),
    }
    match (stored.median_ci95, computed.n >= 3) {
        (None, false) => {}
        (Some([lo, hi]), true) => {
            let tol = REL_TOL * scale;
            let inside = |x: f64| computed.min - tol <= x && x <= computed.max + tol;
            if !(inside(lo) && inside(hi) && lo <= computed.median + tol && computed.median <= hi + tol) {
                out.push(format!(
                    "median_ci95 stored [{lo}, {hi}], not an interval around the median {} within [{}, {}]",
                    computed.median, computed.min, computed.max
                ));
            }
        }
        (None, true) => out.push(format!("median_ci95 stored None, {} samples give one", computed.n)),
        (Some(a), false) => out.push(format!("median_ci95 stored {a:?}, {} sample(s) give none", computed.n)),
    }
    out
}

/// The first three disagreements, and how many more.
fn shorten(wrong: &[String]) -> String {
    match wrong.len() {
        0..=3 => wrong.join(", "),
        n => format!("{}, and {} more", wrong[..3].join(", "), n - 3),
    }
}

/// Equal within [`REL_TOL`] of the larger magnitude or of `scale`; NaN equals NaN (never in JSON, but harmless).
fn close(a: f64, b: f64, scale: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= REL_TOL * a.abs().max(b.abs()).max(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgebench_core::metrics::Better;
    use edgebench_core::results::{CellKey, CellResult, CellStatus, Metric};

    fn run(samples: &[&[f64]]) -> RunResults {
        let metrics = samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let m = Metric {
                    unit: "ms".into(),
                    better: Better::Lower,
                    samples: s.to_vec(),
                    summary: crate::summarize(s),
                };
                (format!("m{i}"), m)
            })
            .collect();
        let key = CellKey {
            model: "tiny\x1b[2J".into(),
            backend: "mock".into(),
            device: "cpu".into(),
            threads: 1,
            workload: "gen".into(),
        };
        RunResults {
            schema_version: edgebench_core::results::SCHEMA_VERSION,
            run_id: "r".into(),
            started_at: String::new(),
            finished_at: None,
            manifest: Default::default(),
            device: Default::default(),
            models: Default::default(),
            cells: vec![CellResult { metrics, ..CellResult::new(key, CellStatus::Ok) }],
        }
    }

    const A: &[f64] = &[10.0, 11.0, 10.5, 12.0, 9.5];

    #[test]
    fn consistent_summaries_pass_and_are_replaced_by_the_recomputed_ones() {
        let mut r = run(&[A, &[7.0], &[]]);
        let want = r.clone();
        check_summaries(&mut r).unwrap();
        assert_eq!(r, want);
        // An ulp of JSON round-trip noise, and a bootstrap interval from another generator, are no contradiction.
        let m = r.cells[0].metrics.get_mut("m0").unwrap();
        m.summary.mean = f64::from_bits(m.summary.mean.to_bits() + 1);
        m.summary.median_ci95 = Some([9.5, 12.0]);
        check_summaries(&mut r).unwrap();
        let m = r.cells[0].metrics.get_mut("m0").unwrap();
        assert_eq!(m.summary.median_ci95, Some([9.5, 12.0]), "a possible bootstrap interval is kept");
        m.summary.median_ci95 = want.cells[0].metrics["m0"].summary.median_ci95;
        assert_eq!(r, want, "the rest of the stored summary is replaced by the recomputed one");
    }

    #[test]
    fn contradictions_name_the_cell_metric_and_fields() {
        let mut r = run(&[A, A, &[3.0]]);
        let ms = &mut r.cells[0].metrics;
        ms.get_mut("m0").unwrap().summary.median = 99.0;
        ms.get_mut("m1").unwrap().summary.n = 4;
        ms.get_mut("m1").unwrap().summary.median_ci95 = Some([1.0, 2.0]);
        ms.get_mut("m2").unwrap().summary.mean_ci95 = Some([1.0, 2.0]);
        let before = r.clone();
        let err = check_summaries(&mut r).unwrap_err();
        assert_eq!(r, before, "nothing is replaced when anything contradicts");
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(err[0].starts_with("cell mock cpu t1 gen (tiny\\u{1b}[2J), metric m0:"), "{err:?}");
        assert!(err[0].contains("median stored 99, samples give 10.5"), "{err:?}");
        assert!(
            err[1].contains("n stored 4, samples give 5") && err[1].contains("median_ci95 stored [1, 2]"),
            "{err:?}"
        );
        assert!(
            err[2].contains("metric m2") && err[2].contains("mean_ci95 stored Some([1.0, 2.0]), samples give None")
        );
    }

    #[test]
    fn every_field_is_checked() {
        type Edit = fn(&mut Summary);
        let edits: [(&str, Edit); 14] = [
            ("n", |s| s.n += 1),
            ("p50", |s| s.p50 *= 1.01),
            ("median_ci95", |s| s.median_ci95 = None),
            ("median_ci95", |s| s.median_ci95 = Some([12.0, 13.0])),
            ("median", |s| s.median *= 1.01),
            ("mean", |s| s.mean *= 1.01),
            ("stddev", |s| s.stddev *= 1.01),
            ("min", |s| s.min -= 0.1),
            ("max", |s| s.max += 0.1),
            ("p90", |s| s.p90 *= 1.01),
            ("p99", |s| s.p99 *= 1.01),
            ("cv", |s| s.cv *= 1.01),
            ("outliers", |s| s.outliers += 1),
            ("mean_ci95", |s| s.mean_ci95 = None),
        ];
        for (field, edit) in edits {
            let mut r = run(&[A]);
            edit(&mut r.cells[0].metrics.get_mut("m0").unwrap().summary);
            let err = check_summaries(&mut r).unwrap_err();
            assert!(err[0].contains(&format!("{field} stored")), "{field}: {err:?}");
        }
    }
}

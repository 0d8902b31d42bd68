//! `edgebench compare` and `edgebench gate`: two results files, per-metric verdicts, exit 1 on a regression (gate).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use edgebench_core::comparison::Outcome;
use edgebench_reports::compare::{comparison_report, Style};
use edgebench_runner::results_io;
use edgebench_stats::gate::{compare_runs, pool_baselines, Thresholds, DEFAULT_THRESHOLDS};

use crate::cli::{ComparisonOptions, ReportFormat};

/// Compares `current` with `base`; as a gate, returns exit code 1 when anything regressed.
pub fn compare(bases: &[PathBuf], current: &Path, opts: &ComparisonOptions, gate: bool) -> anyhow::Result<ExitCode> {
    let thresholds = match &opts.thresholds {
        Some(p) => {
            let text = edgebench_core::limits::read_text(p, edgebench_core::limits::THRESHOLDS_FILE, "thresholds file")
                .context("reading --thresholds")?;
            Thresholds::parse(&text).map_err(|e| anyhow::anyhow!("--thresholds {}: {e}", p.display()))?
        }
        None => Thresholds::parse(DEFAULT_THRESHOLDS).map_err(|e| anyhow::anyhow!("shipped thresholds: {e}"))?,
    };
    let runs = bases
        .iter()
        .map(|p| results_io::read(p).with_context(|| format!("base results {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let base = bases.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let b = match pool_baselines(runs) {
        Ok(b) => b,
        Err(why) => bail!("refusing to pool the baselines {base}:\n  {}", why.join("\n  ")),
    };
    let c = results_io::read(current).context("current results")?;
    let cmp = match compare_runs(&b, &c, &thresholds, opts.allow_mismatch) {
        Ok(cmp) => cmp,
        Err(why) => bail!(
            "refusing to compare {} with {}:\n  {}\n(pass --allow-mismatch to compare anyway)",
            base,
            current.display(),
            why.join("\n  ")
        ),
    };
    match opts.format {
        ReportFormat::Table => print!("{}", comparison_report(&cmp, Style::Terminal)),
        ReportFormat::Markdown => print!("{}", comparison_report(&cmp, Style::Markdown)),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&cmp)?),
    }
    let compared = cmp.rows.iter().filter(|r| matches!(r.outcome, Outcome::Compared(_))).count();
    if gate && compared == 0 && cmp.regressions().count() == 0 {
        bail!("nothing was compared: every cell or metric was skipped (see the table), so the gate cannot pass");
    }
    let regressed = cmp.regressions().count();
    if gate && regressed > 0 {
        eprintln!("gate: {regressed} regression(s)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

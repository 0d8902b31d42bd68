//! `edgebench compare` and `edgebench gate`: two results files, per-metric verdicts, exit 1 on a regression (gate).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use edgebench_core::comparison::Outcome;
use edgebench_reports::compare::{comparison_report, Style};
use edgebench_runner::results_io;
use edgebench_stats::gate::{compare_runs, pool_baselines, Thresholds, DEFAULT_THRESHOLDS};

use crate::cli::{ComparisonOptions, ReportFormat};

/// Fleets: each device of `current` against the same device of one base fleet index; a device that failed now, or
/// whose comparison is refused, counts against the gate; exit 1 when any device regressed.
fn compare_fleets(
    bases: &[PathBuf],
    current: &Path,
    opts: &ComparisonOptions,
    thresholds: &Thresholds,
    gate: bool,
) -> anyhow::Result<ExitCode> {
    let [base] = bases else { bail!("a fleet index is compared with one base fleet index (--baseline FLEET.json)") };
    if !edgebench_fleet::collect::is_index(base) {
        bail!("{} is a fleet index, so the base must be one too ({} is not)", current.display(), base.display());
    }
    let base_runs = edgebench_fleet::load_index(base)?;
    let cur_runs = edgebench_fleet::load_index(current)?;
    let failed = |r: &edgebench_core::results::RunResults| {
        r.cells.iter().all(|c| c.status != edgebench_core::results::CellStatus::Ok) && r.run_id.ends_with(": not run")
    };
    let (mut regressed, mut compared) = (0usize, 0usize);
    for (name, c) in &cur_runs {
        let heading = |s: &str| match opts.format {
            ReportFormat::Markdown => println!("\n#### device {name}: {s}\n"),
            _ => println!("\n== device {name}: {s}"),
        };
        let Some((_, b)) = base_runs.iter().find(|(n, _)| n == name) else {
            heading("not in the base fleet; not gated");
            continue;
        };
        if failed(c) {
            let why = c.cells.first().map(edgebench_reports::cell_status_text).unwrap_or_default();
            heading(&format!("REGRESSED: no results this time ({why})"));
            regressed += 1;
            continue;
        }
        if failed(b) {
            heading("the base has no results for it; not gated");
            continue;
        }
        let pooled =
            pool_baselines(vec![b.clone()]).map_err(|why| anyhow::anyhow!("device {name}: {}", why.join("; ")))?;
        match compare_runs(&pooled, c, thresholds, opts.allow_mismatch) {
            Ok(cmp) => {
                heading("compared");
                match opts.format {
                    ReportFormat::Table => print!("{}", comparison_report(&cmp, Style::Terminal)),
                    ReportFormat::Markdown => print!("{}", comparison_report(&cmp, Style::Markdown)),
                    ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&cmp)?),
                }
                compared += cmp.rows.iter().filter(|r| matches!(r.outcome, Outcome::Compared(_))).count();
                regressed += cmp.regressions().count();
            }
            Err(why) => {
                heading(&format!("REFUSED: {}", why.join("; ")));
                regressed += 1;
            }
        }
    }
    if gate && compared == 0 && regressed == 0 {
        bail!("nothing was compared on any device, so the gate cannot pass");
    }
    if gate && regressed > 0 {
        eprintln!("gate: {regressed} regression(s) across the fleet");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

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
    if edgebench_fleet::collect::is_index(current) {
        return compare_fleets(bases, current, opts, &thresholds, gate);
    }
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

//! `edgebench recommend`: read results files, answer "what should I ship on this device" under a budget, print it
//! (table, Markdown, JSON, HTML); `--measure-missing [--run]` lists or makes the runs that fill the unknowns.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use edgebench_core::recommend::{Budget, Objective, Recommendation};
use edgebench_runner::results_io;
use edgebench_stats::recommend::{recommend as answer, Source};

use crate::cli::{ObjectiveArg, RecommendArgs, RecommendFormat};

fn check_budget(a: &RecommendArgs) -> anyhow::Result<Budget> {
    let positive = |flag: &str, v: Option<f64>| -> anyhow::Result<Option<f64>> {
        match v {
            Some(x) if !(x.is_finite() && x > 0.0) => bail!("flag {flag} {x}: must be a positive number"),
            _ => Ok(v),
        }
    };
    if a.ctx == Some(0) {
        bail!("flag --ctx 0: a context holds at least one token");
    }
    Ok(Budget {
        ram_mib: positive("--ram-mib", a.ram_mib)?,
        min_decode_tps: positive("--min-decode-tps", a.min_decode_tps)?,
        max_ttft_ms: positive("--max-ttft-ms", a.max_ttft_ms)?,
        max_kld: positive("--max-kld", a.max_kld)?,
        max_j_per_token: positive("--max-j-per-token", a.max_j_per_token)?,
        ctx: a.ctx,
    })
}

fn compute(paths: &[PathBuf], a: &RecommendArgs, budget: &Budget) -> anyhow::Result<Recommendation> {
    let mut read = Vec::new();
    for p in paths {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let sha = edgebench_models::registry::sha256_hex(&bytes);
        if edgebench_fleet::collect::is_index(p) {
            // A fleet index: one source per device (its results file is pinned by the index's SHA-256).
            for (device, results) in edgebench_fleet::load_index(p)? {
                read.push((format!("{} ({device})", p.display()), sha.clone(), results));
            }
            continue;
        }
        let results = results_io::read(p).with_context(|| format!("reading {}", p.display()))?;
        read.push((p.display().to_string(), sha, results));
    }
    if let Some(w) = &a.workload {
        if !read.iter().any(|(_, _, r)| r.cells.iter().any(|c| &c.key.workload == w)) {
            bail!("flag --workload {w}: no cell of that workload in the results files");
        }
    }
    let sources: Vec<Source<'_>> = read
        .iter()
        .map(|(path, sha256, results)| Source { path: path.clone(), sha256: sha256.clone(), results })
        .collect();
    let here = edgebench_probes::device::fingerprint(&edgebench_probes::energy::EnergySpec::default());
    let objective = match a.objective {
        ObjectiveArg::Speed => Objective::Speed,
        ObjectiveArg::Quality => Objective::Quality,
        ObjectiveArg::Memory => Objective::Memory,
        ObjectiveArg::Energy => Objective::Energy,
    };
    Ok(answer(&sources, &here, budget, objective, a.workload.as_deref()))
}

/// Answers `a` (exit 0 with a pick, 1 without one).
pub fn recommend(a: &RecommendArgs) -> anyhow::Result<ExitCode> {
    let budget = check_budget(a)?;
    let mut paths = a.results.clone();
    if let Some(out) = &a.out {
        let inputs: Vec<_> = paths.iter().map(|p| ("results file".to_string(), p.clone())).collect();
        super::refuse_input_as_output("--out", out, &inputs)?;
    }
    let mut r = compute(&paths, a, &budget)?;
    if a.measure_missing {
        let runs: Vec<(&str, &[String])> =
            r.missing.iter().filter_map(|m| m.command.as_deref().map(|c| (c, m.argv.as_slice()))).collect();
        for m in &r.missing {
            match &m.command {
                Some(c) => println!("# {}\n{c}", m.what),
                None => println!("# {} (no run can fill this here)", m.what),
            }
        }
        if r.missing.is_empty() {
            println!("# nothing the answer needs is unknown");
        }
        if !a.run || runs.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        let dir = a.out.as_ref().and_then(|o| o.parent().map(PathBuf::from)).filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or_else(|| PathBuf::from("results"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let exe = std::env::current_exe().context("locating the edgebench binary")?;
        let stamp = edgebench_runner::run::new_run_id();
        for (i, (c, argv)) in runs.iter().enumerate() {
            let out = dir.join(format!("missing-{stamp}-{}.json", i + 1));
            let mut args = argv.to_vec();
            args.extend(["--out".to_string(), out.display().to_string()]);
            eprintln!("running: {c} --out {}", out.display());
            let status =
                std::process::Command::new(&exe).args(&args).status().with_context(|| format!("running {c}"))?;
            if status.code() == Some(2) || status.code().is_none() {
                bail!("{c}: failed ({status}); results measured so far are in {}", out.display());
            }
            paths.push(out);
        }
        r = compute(&paths, a, &budget)?;
    }
    let write = |default: Option<&str>, text: &str| -> anyhow::Result<()> {
        match a.out.clone().or_else(|| default.map(PathBuf::from)) {
            Some(p) => {
                std::fs::write(&p, text).with_context(|| format!("writing --out {}", p.display()))?;
                println!("{}", p.display());
            }
            None => print!("{text}"),
        }
        Ok(())
    };
    match a.format {
        RecommendFormat::Table => write(None, &edgebench_reports::recommend::text(&r))?,
        RecommendFormat::Markdown => write(None, &edgebench_reports::recommend::markdown(&r))?,
        RecommendFormat::Json => write(None, &(serde_json::to_string_pretty(&r)? + "\n"))?,
        RecommendFormat::Html => write(Some("recommend.html"), &edgebench_reports::recommend::html(&r))?,
    }
    Ok(if r.pick.is_some() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

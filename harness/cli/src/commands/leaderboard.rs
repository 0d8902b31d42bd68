//! `edgebench keygen`, `edgebench submit` and `edgebench leaderboard verify | build | sample`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use edgebench_core::text::terminal_safe;
use edgebench_leaderboard::tiers::Tier;
use edgebench_leaderboard::verify::Verification;

use crate::cli::SubmitArgs;

/// Writes a key pair.
pub fn keygen(key: &Path) -> anyhow::Result<ExitCode> {
    let id = edgebench_leaderboard::keys::keygen(key)?;
    println!("private key: {} (keep it secret)", key.display());
    println!("public key:  {} (key id {id})", edgebench_leaderboard::keys::public_path(key).display());
    Ok(ExitCode::SUCCESS)
}

/// Signs a results file into a leaderboard checkout.
pub fn submit(a: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let sha = crate::build_info::binary_sha256().context("this edgebench binary cannot read itself to hash it")?;
    let signer = match &a.signer {
        Some(s) => s.clone(),
        None => a
            .key
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .context("--signer: the key file has no name to use; pass --signer NAME")?,
    };
    let req = edgebench_leaderboard::submit::Request {
        results: &a.results,
        key: &a.key,
        signer: &signer,
        leaderboard: &a.leaderboard,
        device: a.device_name.as_deref(),
        reproduces: a.reproduces.as_deref().zip(a.beacon.as_deref()),
        edgebench: (env!("CARGO_PKG_VERSION"), &sha),
    };
    let (results, envelope) = edgebench_leaderboard::submit::submit(&req)?;
    println!("{}", results.display());
    println!("{}", envelope.display());
    Ok(ExitCode::SUCCESS)
}

fn print(v: &Verification) {
    for e in &v.entries {
        let who = e.signer.as_deref().or(e.key_id.as_deref()).unwrap_or("-");
        println!("{:<8} {}  ({})", e.tier.label(), terminal_safe(&e.rel), terminal_safe(who));
        for r in &e.reasons {
            println!("           {}", terminal_safe(r));
        }
    }
    for r in &v.reproductions {
        println!("{:<8} {}", if r.ok { "repro" } else { "rejected" }, terminal_safe(&r.rel));
        for x in &r.reasons {
            println!("           {}", terminal_safe(x));
        }
    }
    for u in &v.unmet_claims {
        println!("UNMET    {}", terminal_safe(u));
    }
    println!("{}", v.counts());
}

/// Verifies a leaderboard: exit 1 when anything is rejected or a recorded tier is no longer reached.
pub fn verify(dir: &Path, record: bool, json: Option<&Path>) -> anyhow::Result<ExitCode> {
    let v = edgebench_leaderboard::verify::verify(dir)?;
    print(&v);
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_string_pretty(&v)? + "\n")
            .with_context(|| format!("--json {}", p.display()))?;
    }
    if record {
        v.recorded().write(dir)?;
        println!("recorded: {}", dir.join("tiers.json").display());
    }
    // After --record the recorded tiers are the ones reached; only rejections still fail.
    let failed = if record {
        v.entries.iter().any(|e| e.tier == Tier::Rejected) || v.reproductions.iter().any(|r| !r.ok)
    } else {
        v.failed()
    };
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Builds the site.
pub fn build(dir: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let v = edgebench_leaderboard::verify::verify(dir)?;
    let policy = edgebench_leaderboard::policy::Policy::read(dir)?;
    super::refuse_input_as_output("--out", out, &[("DIR".into(), dir.to_path_buf())])?;
    let files = edgebench_leaderboard::site::build(&v, &policy, out)?;
    print(&v);
    println!("site: {} ({} pages)", out.join("index.html").display(), files.len());
    Ok(ExitCode::SUCCESS)
}

/// Prints the cells to re-run for tier 3.
pub fn sample(dir: &Path, submission: &str, beacon: &str) -> anyhow::Result<ExitCode> {
    let v = edgebench_leaderboard::verify::verify(dir)?;
    let policy = edgebench_leaderboard::policy::Policy::read(dir)?;
    let e = v
        .entries
        .iter()
        .find(|e| e.rel == submission)
        .with_context(|| format!("{submission}: not a submission of {}", dir.display()))?;
    let (Some(r), Some(sha)) = (&e.results, &e.results_sha256) else {
        anyhow::bail!("{submission} is rejected: {}", e.reasons.join("; "));
    };
    let groups = edgebench_leaderboard::reproduce::sample(r, sha, beacon, policy.reproduction.cells);
    for g in &groups {
        println!("re-run: {} (sha256 {}) {} {} t{}", g.model, g.model_sha256, g.backend, g.device, g.threads);
    }
    for c in edgebench_leaderboard::reproduce::commands(r, &groups) {
        println!("{c}");
    }
    println!(
        "then, per results file: edgebench submit repro-N.json --key MAINTAINER_KEY --signer NAME --leaderboard {} \
         --reproduces {submission} --beacon {beacon}",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

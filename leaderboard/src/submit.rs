//! `edgebench submit`: a results file copied into a leaderboard checkout as `submissions/<device>/<run>.json`, beside
//! its signed envelope; or, for a maintainer's re-run, into `reproductions/<device>/<run>/`.

use std::path::{Path, PathBuf};

use crate::envelope::{self, Predicate, Reproduces};
use crate::scan::safe_name;
use crate::{io_err, LeaderboardError};

/// What to sign.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The results file (`edgebench run --out`).
    pub results: &'a Path,
    /// The private key (PKCS#8 PEM).
    pub key: &'a Path,
    /// The signer's name, as the leaderboard lists the key.
    pub signer: &'a str,
    /// The leaderboard checkout to write into.
    pub leaderboard: &'a Path,
    /// Device folder name (default: from the CPU model).
    pub device: Option<&'a str>,
    /// For a reproduction: the submission (`submissions/<device>/<run>.json`) and the beacon that chose its cells.
    pub reproduces: Option<(&'a str, &'a str)>,
    /// This edgebench's version and binary SHA-256.
    pub edgebench: (&'a str, &'a str),
}

/// A name made of the plain characters of `s` (others become `-`), at most 96 long.
pub fn slug(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '-' }).collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').chars().take(96).collect::<String>();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// Signs and writes; returns the results file and envelope written. Never overwrites.
pub fn submit(req: &Request) -> Result<(PathBuf, PathBuf), LeaderboardError> {
    let key = crate::keys::read_signing_key(req.key)?;
    let bytes = std::fs::read(req.results).map_err(io_err(req.results))?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| crate::invalid(req.results, "not UTF-8 text"))?;
    let r = edgebench_runner::results_io::parse(req.results, &text)
        .map_err(|e| crate::invalid(req.results, e.to_string()))?;
    if r.finished_at.is_none() {
        return Err(crate::invalid(
            req.results,
            "the run did not finish (no finished_at): finish it with `edgebench run --resume` first",
        ));
    }
    let device = match req.device {
        Some(d) if safe_name(d) => d.to_string(),
        Some(d) => return Err(LeaderboardError::Usage(format!("--device {d:?}: use letters, digits, . _ - only"))),
        None => slug(&format!("{}-{}cpu", r.device.cpu_model, r.device.logical_cpus)),
    };
    let run = slug(&r.run_id);
    let (folder, reproduces) = match req.reproduces {
        None => (req.leaderboard.join("submissions").join(&device), None),
        Some((sub, beacon)) => {
            let parts: Vec<&str> = sub.split('/').collect();
            let ["submissions", d, f] = parts.as_slice() else {
                return Err(LeaderboardError::Usage(format!(
                    "--reproduces {sub:?}: expected submissions/<device>/<run>.json"
                )));
            };
            let Some(r) = f.strip_suffix(".json").filter(|r| safe_name(d) && safe_name(r)) else {
                return Err(LeaderboardError::Usage(format!(
                    "--reproduces {sub:?}: expected submissions/<device>/<run>.json"
                )));
            };
            let target = req.leaderboard.join(sub);
            let sha = crate::sha256_hex(&std::fs::read(&target).map_err(io_err(&target))?);
            (
                req.leaderboard.join("reproductions").join(d).join(r),
                Some(Reproduces { results_sha256: sha, beacon: beacon.to_string() }),
            )
        }
    };
    let name = format!("{run}.json");
    let dest = folder.join(&name);
    let env_path = folder.join(format!("{run}.dsse.json"));
    for p in [&dest, &env_path] {
        if p.exists() {
            return Err(LeaderboardError::Usage(format!("{} exists: a submission is never overwritten", p.display())));
        }
    }
    let predicate = Predicate {
        kind: if reproduces.is_some() { "reproduction" } else { "submission" }.into(),
        signer: req.signer.into(),
        edgebench_version: req.edgebench.0.into(),
        edgebench_sha256: req.edgebench.1.into(),
        reproduces,
    };
    let st = envelope::statement(&name, &crate::sha256_hex(&bytes), predicate);
    let env = envelope::sign(&st, &key);
    std::fs::create_dir_all(&folder).map_err(io_err(&folder))?;
    std::fs::write(&dest, &bytes).map_err(io_err(&dest))?;
    std::fs::write(&env_path, serde_json::to_string_pretty(&env).expect("json") + "\n").map_err(io_err(&env_path))?;
    Ok((dest, env_path))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_plain_names() {
        for s in ["AMD EPYC 9R14 96-Core Processor-2cpu", "../../etc", "2026-12-03T10:00:00Z-ab12", "", "ü"] {
            assert!(crate::scan::safe_name(&super::slug(s)), "{s:?} -> {:?}", super::slug(s));
        }
        assert_eq!(super::slug("../../etc"), "etc");
    }
}

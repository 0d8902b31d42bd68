//! Tier 3's sample: which of a submission's cells a maintainer re-runs, chosen by SHA-256 of the submission's results
//! SHA-256 and a beacon (a value published after the submission, e.g. a later commit of the leaderboard), so neither
//! the submitter nor the maintainer picks them; and the `edgebench run` command that re-runs them.

use std::collections::BTreeSet;

use edgebench_core::results::{CellStatus, RunResults};
use serde::Serialize;

/// A re-run unit: one model × backend × device × threads, every workload of the suite.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Group {
    /// Model id in the submission.
    pub model: String,
    /// Its file's SHA-256.
    pub model_sha256: String,
    /// Backend.
    pub backend: String,
    /// Device.
    pub device: String,
    /// Threads.
    pub threads: usize,
}

/// The submission's measured groups, sorted.
pub fn groups(r: &RunResults) -> Vec<Group> {
    let set: BTreeSet<Group> = r
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Ok)
        .map(|c| Group {
            model: c.key.model.clone(),
            model_sha256: crate::model_sha(r, &c.key.model).to_string(),
            backend: c.key.backend.clone(),
            device: c.key.device.clone(),
            threads: c.key.threads,
        })
        .collect();
    set.into_iter().collect()
}

/// `n` groups chosen by the seed `sha256(results_sha256 "\n" beacon)` (all of them when there are fewer), in the order
/// drawn.
pub fn sample(r: &RunResults, results_sha256: &str, beacon: &str, n: usize) -> Vec<Group> {
    let mut pool = groups(r);
    let mut state = crate::sha256_hex(format!("{results_sha256}\n{beacon}").as_bytes());
    let mut out = Vec::new();
    while out.len() < n && !pool.is_empty() {
        let x = u64::from_str_radix(&state[..16], 16).expect("hex");
        out.push(pool.remove((x % pool.len() as u64) as usize));
        state = crate::sha256_hex(state.as_bytes());
    }
    out
}

/// The command that re-runs `groups` with the submission's suite (one command per group: threads and devices differ).
pub fn commands(r: &RunResults, groups: &[Group]) -> Vec<String> {
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            format!(
                "edgebench run --suite {} --model {} --backend {} --device {} --threads {} --out repro-{}.json",
                r.manifest.suite.name,
                g.model,
                g.backend,
                g.device,
                g.threads,
                i + 1
            )
        })
        .collect()
}

//! `policy.toml`: what the leaderboard registers (models by SHA-256 with their canonical weight fingerprint, greedy
//! reference outputs and drift class; suites by SHA-256; accepted edgebench versions), the plausible memory
//! bandwidth per CPU family, and the thresholds of tiers 2 and 3. Unknown keys are errors.

use std::path::Path;

use serde::Deserialize;

use crate::{invalid, LeaderboardError};

/// The policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// edgebench versions whose results are accepted.
    pub edgebench_versions: Vec<String>,
    /// When not empty, only binaries with these SHA-256s (as the results manifest records them).
    #[serde(default)]
    pub edgebench_binaries: Vec<String>,
    /// Largest results file accepted, bytes (default [`DEFAULT_MAX_RESULTS_BYTES`]).
    #[serde(default = "default_max")]
    pub max_results_bytes: u64,
    /// Registered models.
    #[serde(default)]
    pub model: Vec<ModelPolicy>,
    /// Registered suites.
    #[serde(default)]
    pub suite: Vec<SuitePolicy>,
    /// Plausible memory bandwidth per CPU family (first match wins).
    #[serde(default)]
    pub bandwidth: Vec<Bandwidth>,
    /// ISA facts per CPU family: features a CPU of that name must or cannot report (every matching entry applies).
    #[serde(default)]
    pub isa: Vec<IsaRule>,
    /// Tier 2's rule.
    #[serde(default)]
    pub corroboration: Corroboration,
    /// Tier 3's rule.
    #[serde(default)]
    pub reproduction: Reproduction,
}

/// Default [`Policy::max_results_bytes`]: 16 MiB (a 100-cell run with every sample is a few MiB).
pub const DEFAULT_MAX_RESULTS_BYTES: u64 = 16 << 20;

fn default_max() -> u64 {
    DEFAULT_MAX_RESULTS_BYTES
}

/// A registered model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPolicy {
    /// Shown name.
    pub name: String,
    /// SHA-256 of the GGUF file.
    pub sha256: String,
    /// Canonical weight fingerprint (`wfp1:…`) of its tensors.
    pub weight_fingerprint: String,
    /// Largest mean KL divergence (nats) against the reference a cell may show when its greedy output differs from
    /// the registered one (the model's drift class).
    pub max_kld: f64,
    /// Greedy outputs of exact backends, per workload name.
    #[serde(default)]
    pub greedy: Vec<Greedy>,
}

/// A reference greedy output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Greedy {
    /// Workload name.
    pub workload: String,
    /// The text.
    pub output: String,
}

/// A registered suite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuitePolicy {
    /// Suite name.
    pub name: String,
    /// SHA-256 of the suite file's text (as the results manifest records it).
    pub sha256: String,
}

/// A CPU family's plausible memory bandwidth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bandwidth {
    /// Case-insensitive substring of the CPU model.
    pub cpu: String,
    /// Highest plausible read bandwidth (GB/s), caches included.
    pub gb_per_s: f64,
    /// Where the figure comes from.
    pub source: String,
}

/// What a CPU family's ISA has and lacks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsaRule {
    /// Case-insensitive substring of the CPU model.
    pub cpu: String,
    /// Features every CPU of the family reports.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Features no CPU of the family has.
    #[serde(default)]
    pub forbids: Vec<String>,
    /// Where the fact comes from.
    pub source: String,
}

/// Tier 2: corroboration by other keys on the same device model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corroboration {
    /// Independent keys (this submission's included) that must agree.
    pub min_keys: usize,
    /// Largest robust z-score, |log x − median| / (1.4826 × MAD), of a submission's decode and prefill speed among
    /// the device model's submissions.
    pub max_robust_z: f64,
    /// Run-to-run allowance: each 95% interval of the median (which holds one run's repetition noise only) is widened
    /// by this fraction on both sides before two submissions' intervals are tested for overlap. Four back-to-back
    /// quick-suite runs (native and ort) on this project's shared 2-vCPU VM had medians up to 1.16× apart for
    /// native and 1.33× for ort's decode.
    pub tolerance: f64,
}

impl Default for Corroboration {
    fn default() -> Self {
        Corroboration { min_keys: 2, max_robust_z: 3.5, tolerance: 0.10 }
    }
}

/// Tier 3: a maintainer's re-run of a sample of the submission's cells.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reproduction {
    /// Cells (model × backend × device × threads, every workload) to re-run.
    pub cells: usize,
    /// Smallest relative change `edgebench compare` calls significant here (re-runs are on another day, maybe
    /// another unit of the device model).
    pub floor: f64,
    /// Multiple of the measured coefficient of variation added to the floor (as in `ci/thresholds.toml`).
    pub noise_multiple: f64,
}

impl Default for Reproduction {
    fn default() -> Self {
        Reproduction { cells: 2, floor: 0.10, noise_multiple: 0.5 }
    }
}

impl Policy {
    /// Reads and checks `DIR/policy.toml`.
    pub fn read(dir: &Path) -> Result<Policy, LeaderboardError> {
        let path = dir.join("policy.toml");
        let text = crate::read_small(&path, crate::CONFIG_FILE_LIMIT, "policy")?;
        let p: Policy = toml::from_str(&text).map_err(|e| invalid(&path, e.to_string()))?;
        if p.corroboration.min_keys < 2 {
            return Err(invalid(&path, "corroboration.min_keys must be at least 2 (independent keys)"));
        }
        if !(0.0..1.0).contains(&p.corroboration.tolerance) {
            return Err(invalid(&path, "corroboration.tolerance must be in [0, 1)"));
        }
        if p.reproduction.cells == 0 {
            return Err(invalid(&path, "reproduction.cells must be at least 1"));
        }
        for b in &p.bandwidth {
            if !(b.gb_per_s.is_finite() && b.gb_per_s > 0.0) {
                return Err(invalid(&path, format!("bandwidth {:?}: gb_per_s must be positive", b.cpu)));
            }
        }
        Ok(p)
    }

    /// The registered model with this file SHA-256.
    pub fn model(&self, sha256: &str) -> Option<&ModelPolicy> {
        self.model.iter().find(|m| m.sha256 == sha256)
    }

    /// The plausible bandwidth of this CPU, if the table has its family.
    pub fn bandwidth_for(&self, cpu_model: &str) -> Option<&Bandwidth> {
        let c = cpu_model.to_lowercase();
        self.bandwidth.iter().find(|b| c.contains(&b.cpu.to_lowercase()))
    }
}

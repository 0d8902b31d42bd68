//! Accuracy drift in the results: llama-perplexity's `--kl-divergence` statistics of a cell's backend against a
//! reference run of the same model, over a named evaluation set.

use serde::{Deserialize, Serialize};

/// A mean (or derived figure) with its standard error, as llama-perplexity prints `value ± err`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    /// The figure.
    pub value: f64,
    /// Its standard error (0 below 11 samples, as llama-perplexity reports).
    pub err: f64,
}

/// Order statistics of per-token values (linear interpolation between neighbours; the median averages the two
/// middle values), the rows llama-perplexity prints.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Distribution {
    /// Largest value.
    pub max: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 75th percentile.
    pub p75: f64,
    /// Median.
    pub median: f64,
    /// 25th percentile.
    pub p25: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 1st percentile.
    pub p1: f64,
    /// 0.1th percentile.
    pub p0_1: f64,
    /// Smallest value.
    pub min: f64,
}

/// The statistics of one candidate against the reference over the scored tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DriftStats {
    /// Tokens scored.
    pub tokens: usize,
    /// Perplexity of the candidate on the scored tokens.
    pub ppl: Estimate,
    /// Perplexity of the reference.
    pub ppl_ref: Estimate,
    /// Pearson correlation of the per-token ln-probabilities of the scored tokens (candidate vs reference);
    /// `None` when either has no variance.
    pub ln_prob_correlation: Option<f64>,
    /// Mean ln(PPL(candidate) / PPL(reference)).
    pub ln_ppl_ratio: Estimate,
    /// PPL(candidate) / PPL(reference).
    pub ppl_ratio: Estimate,
    /// PPL(candidate) − PPL(reference).
    pub ppl_diff: Estimate,
    /// Mean KL(reference ‖ candidate) per token, nats.
    pub kld: Estimate,
    /// Distribution of per-token KL divergence.
    pub kld_distribution: Distribution,
    /// Mean Δp = p_candidate(token) − p_reference(token), as a fraction (×100 for %).
    pub delta_p: Estimate,
    /// Distribution of Δp.
    pub delta_p_distribution: Distribution,
    /// Root mean square of Δp.
    pub delta_p_rms: Estimate,
    /// Share of tokens where both pick the same most likely token, as a fraction.
    pub same_top1: Estimate,
}

/// How much of the evaluation set a cell scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DriftLevel {
    /// No drift check.
    Off,
    /// A short check beside speed figures (a few hundred tokens at most).
    #[default]
    Short,
    /// The whole evaluation set.
    Full,
}

impl DriftLevel {
    /// Parses `off`, `short`, `full`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "short" => Ok(Self::Short),
            "full" => Ok(Self::Full),
            _ => Err(format!("drift level {s:?} (expected off, short or full)")),
        }
    }
}

/// Drift of one cell: measured, or why not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Drift {
    /// Measured.
    Measured(Box<DriftResult>),
    /// Not measured, with the reason (shown in place of the figures, never as zeros).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The check started and failed (the cell's speed figures stand).
    Failed {
        /// The error.
        message: String,
    },
}

/// A measured drift check.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DriftResult {
    /// `short` or `full`.
    pub level: DriftLevel,
    /// What the reference is: backend, weights, model file.
    pub reference: String,
    /// Cache key of the reference log-probabilities (SHA-256 over model, reference settings and evaluation set).
    pub reference_key: String,
    /// The evaluation set: what was scored and how it was cut.
    pub eval_set: String,
    /// Sequences teacher-forced through the candidate.
    pub sequences: usize,
    /// Seconds the candidate spent on them (not a speed metric: every logit row is returned).
    pub seconds: f64,
    /// The statistics.
    pub stats: DriftStats,
}

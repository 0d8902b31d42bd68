//! The vocabulary of comparing two runs: verdicts, the per-metric rule, and one row per cell × metric. Computed by
//! `edgebench-stats` (numbers) and `edgebench-runner` (matching cells); rendered by `edgebench-reports`.

use serde::{Deserialize, Serialize};

use crate::metrics::Better;
use crate::results::CellKey;

/// What a comparison concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval lies beyond the threshold on the good side.
    Improved,
    /// The whole interval lies beyond the threshold on the bad side.
    Regressed,
    /// The interval reaches inside the threshold.
    NoSignificantChange,
}

/// The rule for one metric: relative threshold = max(`floor`, `noise_multiple` × the larger coefficient of variation
/// of the two runs), so a noisier run needs a bigger change before anything is called.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Smallest relative change ever called (0.05 = 5%).
    pub floor: f64,
    /// Multiple of the measured coefficient of variation.
    pub noise_multiple: f64,
    /// Smallest absolute change of the median ever called, in the metric's unit (0 = none). For metrics near zero,
    /// such as KL divergence, where a relative change says little.
    #[serde(default)]
    pub abs_floor: f64,
    /// The metric may vanish: when the base run has it and the current run's cell does not, the row is skipped
    /// instead of counting as a regression (default false: a metric that vanished is a regression).
    #[serde(default)]
    pub optional: bool,
}

/// One metric of one cell, base against current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Median of the base samples.
    pub base_median: f64,
    /// Median of the current samples.
    pub current_median: f64,
    /// current median / base median.
    pub ratio: f64,
    /// Bootstrap 95% interval of the ratio (equal to the ratio when both sides have one sample).
    pub ratio_ci: [f64; 2],
    /// Relative threshold applied.
    pub threshold: f64,
    /// Conclusion.
    pub verdict: Verdict,
}

/// What happened to one metric of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Both runs measured it.
    Compared(Comparison),
    /// Not comparable, with the reason (skipped or failed cell, metric missing on one side).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The cell ran in the base but failed or vanished in the current run, or one of its metrics vanished (unless
    /// its rule says `optional`): a regression of its own kind.
    Broken {
        /// What happened.
        reason: String,
    },
}

impl Outcome {
    /// Whether this outcome fails a gate.
    pub fn is_regression(&self) -> bool {
        matches!(self, Outcome::Broken { .. } | Outcome::Compared(Comparison { verdict: Verdict::Regressed, .. }))
    }
}

/// One row: a cell × metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Cell coordinates.
    pub key: CellKey,
    /// Metric key.
    pub metric: String,
    /// Which direction is better.
    pub better: Option<Better>,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunComparison {
    /// Base run id.
    pub base_run: String,
    /// Current run id.
    pub current_run: String,
    /// Differences in model, device or settings that were allowed through.
    pub mismatches_allowed: Vec<String>,
    /// Rows in the current run's cell order, base-only cells last.
    pub rows: Vec<Row>,
}

impl RunComparison {
    /// Rows that fail a gate.
    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.outcome.is_regression())
    }
}

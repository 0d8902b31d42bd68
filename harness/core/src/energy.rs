//! Results-schema parts for energy and sustained runs: what each meter saw during a cell. Values here are measured
//! or absent; an unavailable meter carries its reason, never a zero or an estimate.

use serde::{Deserialize, Serialize};

/// Whether a meter or probe could be read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Availability {
    /// Read during the cell.
    Available,
    /// Not read, with the reason and, where there is one, the fix.
    Unavailable {
        /// Why (e.g. "permission denied reading …/energy_uj: root-only since Linux 5.10; …").
        reason: String,
    },
}

impl Availability {
    /// True when available.
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available)
    }
}

/// One energy meter as seen by one cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MeterResult {
    /// Stable name, e.g. `rapl:package-0`, `nvml:0`, `battery:BAT0`, `hwmon:ina3221/VDD_IN`, `external`.
    pub name: String,
    /// Where the figures come from (file, library or command).
    pub source: String,
    /// What it measures: `cpu-package`, `dram`, `platform`, `gpu`, `system`, `rail`, `device`.
    pub scope: String,
    /// Whether it could be read.
    #[serde(flatten)]
    pub availability: Availability,
    /// Average power over the idle baseline before the cell, watts.
    pub idle_w: Option<f64>,
    /// Gross joules of each measured repetition's prefill.
    #[serde(default)]
    pub prefill_j: Vec<f64>,
    /// Gross joules of each measured repetition's decode steps.
    #[serde(default)]
    pub decode_j: Vec<f64>,
    /// A reading that failed during the cell (the figures then stop at that point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Cost of the sampling thread that reads meters and sensors beside the workload.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SamplerCost {
    /// Sampling period, ms.
    pub interval_ms: f64,
    /// Samples taken.
    pub samples: usize,
    /// CPU seconds the sampling thread used (its own thread CPU clock).
    pub cpu_s: f64,
    /// Seconds the thread ran.
    pub wall_s: f64,
}

impl SamplerCost {
    /// Share of one core the sampler used (cpu_s / wall_s).
    pub fn core_share(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.cpu_s / self.wall_s
        } else {
            0.0
        }
    }
}

/// Energy of a cell.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EnergyResult {
    /// Every meter found or looked for, available or not.
    pub meters: Vec<MeterResult>,
    /// Meters whose sum gives the `*_j_per_token` metrics (empty: no headline figure, and why is in `note`).
    pub primary: Vec<String>,
    /// Why no headline figure exists, or how the primary meters were chosen.
    pub note: String,
    /// Length of the idle baseline, seconds (0 when none was taken).
    pub idle_s: f64,
    /// The sampling thread's cost.
    pub sampler: SamplerCost,
}

/// Figures of one window of a sustained run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Window {
    /// Seconds from the cell's first measured repetition to the window's start.
    pub from_s: f64,
    /// Seconds to its end.
    pub to_s: f64,
    /// Repetitions in the window.
    pub repetitions: usize,
    /// Median decode tokens/s of those repetitions.
    pub decode_tps: Option<f64>,
    /// Average gross decode power of the primary meters, watts.
    pub decode_w: Option<f64>,
}

/// Start versus end of a cell that ran for a set duration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SustainedResult {
    /// Measured span, seconds.
    pub duration_s: f64,
    /// The first window.
    pub start: Window,
    /// The last window.
    pub end: Window,
    /// end.decode_tps / start.decode_tps.
    pub decode_tps_ratio: Option<f64>,
    /// end.decode_w / start.decode_w.
    pub decode_w_ratio: Option<f64>,
}

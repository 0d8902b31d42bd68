//! Results-schema parts for thermal state: CPU frequency and temperature sensors during a cell, and whether the CPU
//! throttled. Measured or absent; an unreadable source carries its reason.

use serde::{Deserialize, Serialize};

use crate::energy::Availability;

/// Start, end and range of a sampled quantity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Trend {
    /// Median of the first quarter of samples.
    pub start: f64,
    /// Median of the last quarter of samples.
    pub end: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

/// One temperature sensor during a cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SensorResult {
    /// `zone:x86_pkg_temp`, `hwmon:k10temp/Tctl`.
    pub name: String,
    /// Degrees Celsius over the cell.
    pub celsius: Trend,
    /// Lowest throttling trip point (passive/hot/critical, or hwmon max/crit), °C.
    pub trip_c: Option<f64>,
}

/// Frequency and temperatures during a cell, and whether the CPU throttled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThermalResult {
    /// Whether any frequency or temperature source could be read.
    #[serde(flatten)]
    pub availability: Availability,
    /// Samples taken.
    pub samples: usize,
    /// Mean current frequency over the CPUs, MHz.
    pub cpu_mhz: Option<Trend>,
    /// Temperature sensors.
    pub sensors: Vec<SensorResult>,
    /// Kernel throttle events counted during the cell (x86 `thermal_throttle/*_throttle_count`), when exposed.
    pub throttle_events: Option<u64>,
    /// Why the cell counts as throttled; absent when it does not (or when nothing could be read).
    pub throttled: Option<String>,
}

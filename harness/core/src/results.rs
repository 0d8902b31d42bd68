//! The results file: one JSON document per run, rewritten after every cell. Documented in
//! `docs/results-schema.md`; bump [`SCHEMA_VERSION`] on any incompatible change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::Better;
use crate::{BackendFacts, LoadOptions};

/// Version of the results schema written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResults {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// Unique id of the run (UTC start time plus a random suffix).
    pub run_id: String,
    /// UTC start, RFC 3339.
    pub started_at: String,
    /// UTC end, RFC 3339; absent while the run is in progress or if it was interrupted.
    pub finished_at: Option<String>,
    /// How the run was made.
    pub manifest: Manifest,
    /// The machine it ran on.
    pub device: DeviceFingerprint,
    /// Models by id.
    pub models: BTreeMap<String, ModelInfo>,
    /// One entry per planned cell, in plan order; cells not yet run are absent.
    pub cells: Vec<CellResult>,
}

/// Build and settings of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// edgebench version.
    pub edgebench_version: String,
    /// Git commit the binary was built from (`unknown` outside a checkout), `-dirty` when modified.
    pub git_commit: String,
    /// `rustc --version` of the build.
    pub rustc: String,
    /// Target triple.
    pub target: String,
    /// Profile (`release` or `debug`).
    pub profile: String,
    /// CPU features the binary was compiled for (`target_feature`), which fix candle's SIMD path.
    pub cpu_features_compiled: Vec<String>,
    /// Library versions of each compiled-in backend.
    pub backend_versions: BTreeMap<String, Vec<String>>,
    /// Suite name, its file and the SHA-256 of its text.
    pub suite: SuiteRef,
    /// The command line.
    pub command_line: Vec<String>,
    /// SHA-256 of the edgebench binary that ran (absent in files written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_sha256: Option<String>,
    /// Each time `edgebench run --resume` continued this run: when, with what command, and what it kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed: Vec<Resumption>,
}

/// One continuation of an interrupted run (`edgebench run --resume`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resumption {
    /// UTC time it started, RFC 3339.
    pub at: String,
    /// The command line that continued the run.
    pub command_line: Vec<String>,
    /// Cells already in the file, kept as measured.
    pub kept_cells: usize,
    /// Cells this continuation had left to measure.
    pub planned_cells: usize,
}

/// Which suite a run used.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SuiteRef {
    /// Suite name.
    pub name: String,
    /// Path it was read from.
    pub path: String,
    /// SHA-256 of the suite file's text.
    pub sha256: String,
    /// The suite as run, after command-line overrides.
    pub resolved: serde_json::Value,
}

/// The machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeviceFingerprint {
    /// CPU brand string.
    pub cpu_model: String,
    /// CPU architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// Physical cores, when known.
    pub physical_cores: Option<usize>,
    /// Logical CPUs available to this process.
    pub logical_cpus: usize,
    /// ISA features the CPU reports (runtime detection).
    pub isa_features: Vec<String>,
    /// Total RAM in bytes.
    pub ram_bytes: u64,
    /// OS name and version.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// cpufreq governor, when exposed.
    pub cpu_governor: Option<String>,
    /// Hypervisor, if this is a virtual machine (`none` on bare metal).
    pub virtualization: String,
    /// GPUs found (name per device).
    pub gpus: Vec<String>,
    /// Host name.
    pub hostname: String,
    /// Power source: `AC`, `battery (discharging, 73%)`, or `unknown (why)`.
    #[serde(default)]
    pub power_source: String,
    /// Energy meters looked for, each `name: available` or `name: unavailable (reason)`.
    #[serde(default)]
    pub energy_meters: Vec<String>,
    /// Temperature sensors and CPU-frequency sources found.
    #[serde(default)]
    pub thermal_sensors: Vec<String>,
    /// Limits every cell ran under (`edgebench run --memory-limit / --cpu-quota`): the device the results describe
    /// is this machine cut down to them. Absent for an unconstrained run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceLimits>,
    /// Streaming read bandwidth per thread count, measured before and after the cells (`run --memory-bandwidth`):
    /// the ceiling of memory-bound decode. Empty when not measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_bandwidth: Vec<MemoryBandwidth>,
}

/// This machine's streaming read bandwidth at one thread count: a buffer far larger than the last-level cache summed
/// by `threads` threads, each its own contiguous part; the fastest of the probe's loops, read before and after the
/// cells.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryBandwidth {
    /// Reading threads.
    pub threads: usize,
    /// The ceiling the reports use, in GiB (2³⁰ bytes) a second: the mean of `passes_gib_s`.
    pub gib_s: f64,
    /// Each probe's reading, the median of its fastest loop's repetitions: before the cells, then after them (absent
    /// when the run was interrupted).
    pub passes_gib_s: Vec<f64>,
    /// The loop that read fastest and the pages it read, e.g. `prefetching, 2 MiB huge pages`.
    pub method: String,
    /// Buffer size in MiB.
    pub buffer_mib: u64,
    /// Repetitions per loop.
    pub repetitions: usize,
}

/// Resource limits of a constrained run, enforced per cell by a control group of its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// Memory limit in bytes (anonymous memory and page cache together, as the kernel charges them).
    pub memory_bytes: Option<u64>,
    /// CPU quota in CPUs (1.5: one and a half CPUs' time per period).
    pub cpu_quota: Option<f64>,
    /// How the limits were enforced, e.g. `cgroup v1 (memory, cpu)`.
    pub mechanism: String,
}

impl ResourceLimits {
    /// `memory 1 GiB, cpu 1.5`: how the limits are named in tables and device labels.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.memory_bytes {
            parts.push(format!("memory {}", crate::text::bytes_iec(b)));
        }
        if let Some(q) = self.cpu_quota {
            parts.push(format!("cpu {q}"));
        }
        parts.join(", ")
    }
}

/// What a cell's own control group recorded (constrained runs only).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CgroupReading {
    /// Highest memory charged to the cell (anonymous and page cache), bytes.
    pub peak_bytes: u64,
    /// Page cache charged to the cell when it ended, bytes (file pages it read, mmap'd weights among them).
    pub page_cache_bytes: u64,
    /// Of which mapped into the process, bytes.
    pub mapped_file_bytes: u64,
    /// Major page faults (a page read from storage) of the cell's processes.
    pub major_faults: u64,
    /// Kills by the control group's OOM killer.
    pub oom_kills: u64,
    /// Times the memory limit was hit (the kernel then reclaimed, e.g. evicted page cache).
    pub limit_hits: u64,
    /// Whether the model file's pages were dropped from the page cache before the cell (a memory limit's cells
    /// start cold, so the pages they read are charged to their own group, not to whoever cached them first).
    #[serde(default)]
    pub model_evicted: bool,
}

/// A model as run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// Registry id or file name.
    pub id: String,
    /// File path.
    pub path: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// File size in bytes.
    pub file_bytes: u64,
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// Total weights.
    pub parameters: u64,
    /// Key and value numbers cached per token over all layers (2 × layers × KV width), from the file's
    /// hyper-parameters; times the backend's KV element size it is the cache's bytes per token of context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_values_per_token: Option<u64>,
    /// Weight bytes one decode step reads: every tensor once except the input embedding table (one row a token),
    /// which counts in full when it is also the output projection (tied); from the file's tensor table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_weight_bytes: Option<u64>,
    /// Tensor count per ggml type, e.g. `{"Q4_1": 210, "F32": 61, "Q8_0": 1}`.
    pub tensor_types: BTreeMap<String, usize>,
    /// For a file `edgebench models quantize` wrote: the source's weight type and the source file, e.g.
    /// `Q4_1 (SmolLM2-135M-Instruct.Q4_1.gguf, sha256 b179…)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requantized_from: Option<String>,
}

/// The coordinates of a cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    /// Model id.
    pub model: String,
    /// Backend name.
    pub backend: String,
    /// Device (`cpu`, `cuda:0`).
    pub device: String,
    /// Compute threads.
    pub threads: usize,
    /// Workload name.
    pub workload: String,
}

impl CellKey {
    /// `backend device tN workload`: how a cell is named in tables, notes, charts and progress lines (the model is
    /// shown apart, once per table). The one place a cell label is formatted.
    pub fn label(&self) -> String {
        format!("{} {} t{} {}", self.backend, self.device, self.threads, self.workload)
    }
}

/// How a cell ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CellStatus {
    /// Measured.
    Ok,
    /// Not run, with the reason (unsupported backend/model/device, not compiled in).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Started but did not finish.
    Failed {
        /// Classification.
        kind: FailureKind,
        /// Details: panic message, signal, last stderr lines.
        message: String,
    },
}

/// How a child process failed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A Rust panic.
    Panic,
    /// Killed by a signal (abort, segfault, …).
    Signal,
    /// Killed for memory (SIGKILL while the memory cgroup or kernel reported OOM, or an allocation failure).
    OutOfMemory,
    /// Ran past the cell's time limit and was killed.
    Timeout,
    /// The backend or harness returned an error.
    Error,
    /// The child broke the JSON-lines protocol.
    Protocol,
}

/// Summary statistics of a sample.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Sample count.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n-1); 0 for n < 2.
    pub stddev: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// 50th, 90th, 99th percentiles (linear interpolation).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 95% confidence interval of the median (percentile bootstrap); `None` below 3 samples.
    pub median_ci95: Option<[f64; 2]>,
    /// 95% confidence interval of the mean (Student t); `None` below 2 samples.
    pub mean_ci95: Option<[f64; 2]>,
    /// Coefficient of variation (stddev / mean).
    pub cv: f64,
    /// Samples outside the Tukey fences (1.5 IQR).
    pub outliers: usize,
}

/// One metric of one cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metric {
    /// Unit of the samples.
    pub unit: String,
    /// Which direction is better.
    pub better: Better,
    /// Raw samples in measurement order.
    pub samples: Vec<f64>,
    /// Statistics of `samples`.
    pub summary: Summary,
}

/// Conditions a cell ran under, and the flags they raise.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Validity {
    /// Busy CPUs (of all) in the second before the cell started, from /proc/stat.
    pub busy_cpus_before: Option<f64>,
    /// Average CPUs kept busy by other processes while the cell ran (machine busy time minus the child's).
    pub foreign_cpus_during: Option<f64>,
    /// 1-minute load average before and after.
    pub loadavg_before: Option<f64>,
    /// 1-minute load average after the cell.
    pub loadavg_after: Option<f64>,
    /// Flags: `busy_machine`, `high_cv:<metric>`, `oversubscribed`, …
    pub flags: Vec<String>,
}

/// The result of one cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellResult {
    /// Coordinates.
    pub key: CellKey,
    /// How it ended.
    #[serde(flatten)]
    pub status: CellStatus,
    /// The workload as run (prompt, token counts, repetitions, warm-up).
    pub workload: serde_json::Value,
    /// Load options passed to the backend.
    pub load_options: Option<LoadOptions>,
    /// What the backend said about itself.
    pub backend: Option<BackendFacts>,
    /// Metrics by key (see [`crate::metrics`]).
    pub metrics: BTreeMap<String, Metric>,
    /// Machine conditions and flags.
    pub validity: Validity,
    /// Greedy output text of the first repetition, for a human check of coherence.
    pub sample_output: Option<String>,
    /// Wall time of the whole child process, seconds.
    pub wall_s: f64,
    /// Last lines of the child's stderr (on failure, or when it wrote any).
    pub stderr_tail: Option<String>,
    /// Energy meters during the cell (absent in files written before energy was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<crate::energy::EnergyResult>,
    /// CPU frequency, temperatures and throttling during the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thermal: Option<crate::thermal::ThermalResult>,
    /// Start versus end, for cells that ran for a set duration (the `sustained` suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustained: Option<crate::energy::SustainedResult>,
    /// Accuracy drift against the reference (absent when the run asked for none, or in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::drift::Drift>,
    /// The cell's control group (runs with `--memory-limit` / `--cpu-quota` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupReading>,
    /// GPU memory over the cell (cells on a `cuda:N` device only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_memory: Option<crate::device_memory::DeviceMemoryReading>,
}

impl CellResult {
    /// A result with its coordinates and status only: no workload, facts, metrics, flags or probe readings yet.
    pub fn new(key: CellKey, status: CellStatus) -> CellResult {
        CellResult {
            key,
            status,
            workload: serde_json::Value::Null,
            load_options: None,
            backend: None,
            metrics: BTreeMap::new(),
            validity: Validity::default(),
            sample_output: None,
            wall_s: 0.0,
            stderr_tail: None,
            energy: None,
            thermal: None,
            sustained: None,
            drift: None,
            cgroup: None,
            device_memory: None,
        }
    }

    /// Median of a metric, if measured.
    pub fn median(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).map(|m| m.summary.median)
    }
}

impl MemoryBandwidth {
    /// Adds a later probe's reading of the same thread count: `gib_s` becomes the mean of every pass, `method` the
    /// fastest pass's.
    pub fn add_pass(&mut self, later: &MemoryBandwidth) {
        let fastest = self.passes_gib_s.iter().copied().fold(f64::MIN, f64::max);
        self.passes_gib_s.extend(&later.passes_gib_s);
        if later.gib_s > fastest {
            self.method = later.method.clone();
        }
        self.gib_s = self.passes_gib_s.iter().sum::<f64>() / self.passes_gib_s.len().max(1) as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryBandwidth;

    #[test]
    fn a_later_pass_moves_the_ceiling_to_the_mean_and_the_method_to_the_fastest() {
        let pass = |gib_s: f64, method: &str| MemoryBandwidth {
            threads: 2,
            gib_s,
            passes_gib_s: vec![gib_s],
            method: method.into(),
            buffer_mib: 512,
            repetitions: 5,
        };
        let mut b = pass(20.0, "plain");
        b.add_pass(&pass(18.0, "prefetching"));
        assert_eq!((b.gib_s, &b.passes_gib_s[..], b.method.as_str()), (19.0, &[20.0, 18.0][..], "plain"));
        b.add_pass(&pass(25.0, "prefetching"));
        assert_eq!((b.gib_s, b.method.as_str()), (21.0, "prefetching"));
    }
}

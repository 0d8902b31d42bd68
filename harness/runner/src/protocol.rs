//! The JSON-lines protocol between the parent runner and a cell's child process. stdout carries only these lines;
//! logs go to stderr.

use std::collections::BTreeMap;

use edgebench_core::results::CellKey;
use edgebench_core::{BackendFacts, DeviceRequest, LoadOptions, ModelSpec};
use edgebench_drift::reference::ReferenceSpec;
use serde::{Deserialize, Serialize};

use crate::workload::Workload;
use edgebench_probes::energy::EnergySpec;

/// What a child process is asked to do (JSON on its stdin).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Measure one cell.
    Cell(CellSpec),
    /// Build (or find cached) the drift reference of a model, so a reference backend that crashes ends only its
    /// child.
    Reference(ReferenceSpec),
}

impl Job {
    /// Compute threads the job's backend may use (the child's `RAYON_NUM_THREADS` / `OMP_NUM_THREADS`).
    pub fn threads(&self) -> usize {
        match self {
            Job::Cell(c) => c.key.threads,
            Job::Reference(r) => r.load.threads,
        }
    }
}

/// Everything a child needs to run one cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellSpec {
    /// Coordinates: model, backend, device, threads, workload. The one place a cell's threads and device live.
    pub key: CellKey,
    /// Model file, with the SHA-256 computed when it was resolved.
    pub model: ModelSpec,
    /// Backend options (`--backend-opt`), checked by the backend's typed options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// What to run.
    pub workload: Workload,
    /// Measured repetitions.
    pub repetitions: usize,
    /// Unrecorded repetitions first.
    pub warmup: usize,
    /// Times the model is loaded (each timed; the last load runs the workload).
    pub load_repetitions: usize,
    /// Keep repeating (beyond `repetitions`) until the measured repetitions span this many seconds.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Energy meters, idle baseline and sampling period.
    #[serde(default)]
    pub energy: EnergySpec,
    /// The accuracy drift check after the timed repetitions.
    #[serde(default)]
    pub drift: DriftPlan,
}

impl CellSpec {
    /// The options `Backend::load` gets, made from the key's threads and device and the backend options; an
    /// error when the key's device is not one [`DeviceRequest::parse`] reads.
    pub fn load(&self) -> Result<LoadOptions, String> {
        Ok(LoadOptions {
            threads: self.key.threads,
            device: DeviceRequest::parse(&self.key.device)?,
            options: self.options.clone(),
        })
    }
}

/// What a cell does about accuracy drift.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(tag = "plan", rename_all = "snake_case")]
pub enum DriftPlan {
    /// Nothing (the run asked for no drift check).
    #[default]
    Off,
    /// Record that no check ran, and why (e.g. the reference could not be built).
    Skip {
        /// Why.
        reason: String,
    },
    /// Score the loaded model against this cached reference file.
    Check {
        /// The reference file.
        reference: std::path::PathBuf,
    },
}

/// One timed repetition of a workload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Repetition {
    /// A warm-up repetition (not summarized).
    pub warmup: bool,
    /// Index among repetitions of its kind.
    pub index: usize,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Seconds of the prompt's forward call.
    pub prefill_s: f64,
    /// Seconds from the start of prefill to the first sampled token.
    pub ttft_s: f64,
    /// Seconds of each decode step (forward + sampling).
    pub itl_s: Vec<f64>,
    /// Sampled token ids, first token included.
    pub generated: Vec<u32>,
    /// Seconds from the child's start to this repetition's start.
    #[serde(default)]
    pub started_s: f64,
}

/// A line from the child.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The child starts a phase: `prepare`, `load 1/1`, `warm-up 1/2`, `repetition 3/5`, `weights`, `drift`. For
    /// progress display only; no figure depends on it.
    Phase {
        /// What starts.
        phase: String,
    },
    /// One timed load.
    Loaded {
        /// Seconds of `Backend::load`.
        load_s: f64,
        /// What the backend says about itself (boxed: the largest part of any event by far).
        facts: Box<BackendFacts>,
    },
    /// One repetition.
    Repetition(Repetition),
    /// Text of the first measured repetition's output.
    Output {
        /// Decoded text, cut at the first end-of-turn token.
        text: String,
    },
    /// The backend cannot run this cell.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Energy meters over the cell (sent before `Done`).
    Energy(edgebench_core::energy::EnergyResult),
    /// Frequency and temperatures over the cell (sent before `Done`).
    Thermal(edgebench_core::thermal::ThermalResult),
    /// GPU memory over the cell, `cuda:N` cells only (sent before `Done`).
    DeviceMemory(edgebench_core::device_memory::DeviceMemoryReading),
    /// Accuracy drift against the reference (sent before `Done`).
    Drift(edgebench_core::drift::Drift),
    /// Fingerprints of the weights that ran and of the file (sent before `Done`, after the memory reading).
    Weights(edgebench_core::WeightsCheck),
    /// A reference job finished: the reference file is cached at `path`.
    Reference {
        /// The cached reference file.
        path: std::path::PathBuf,
        /// Evaluation sequences in it.
        sequences: usize,
        /// Scored tokens over all sequences.
        scored: usize,
    },
    /// A reference job refused its input (an evaluation text too short or unreadable): an error of the run's
    /// flags, not of the backend.
    Refused {
        /// Why.
        message: String,
    },
    /// The cell failed with an error (not a crash).
    Error {
        /// The error chain.
        message: String,
    },
    /// Final accounting; the cell succeeded.
    Done {
        /// VmHWM, KiB.
        peak_rss_kib: u64,
        /// RssAnon at the end, KiB.
        rss_anon_kib: u64,
        /// RssFile at the end, KiB.
        rss_file_kib: u64,
        /// User + system CPU seconds of the child.
        cpu_s: f64,
    },
}

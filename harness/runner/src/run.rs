//! One run from start to finish, the entry point the CLI calls: the drift reference of each model (each in a child
//! process, like a cell), the plan, every cell in a child, and the results file rewritten after each one.
//!
//! ```text
//! Run::new(suite, axes, child).drift(request).execute(out, progress)
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use edgebench_core::drift::DriftLevel;
use edgebench_core::results::{DeviceFingerprint, Manifest, RunResults, SCHEMA_VERSION};
use edgebench_core::LoadOptions;
use edgebench_drift::reference::ReferenceSpec;
use edgebench_drift::EvalSource;
use edgebench_models::ResolvedModel;

use crate::protocol::{CellSpec, DriftPlan};
use crate::results_io::ResultsIoError;
use crate::runner::{self, ChildCommand, Progress, ReferenceRefused};
use crate::suite::{Axes, Suite};

/// How every model's drift reference is made: by which backend, with which options, over which evaluation set.
#[derive(Debug, Clone)]
pub struct DriftRequest {
    /// Short or full (`Off` plans no check).
    pub level: DriftLevel,
    /// Built-in prompts or a text file.
    pub eval: EvalSource,
    /// The reference backend's name.
    pub backend: String,
    /// Its load options (threads, device, `requantize=f32` for the default candle reference).
    pub load: LoadOptions,
    /// A model to use as every model's reference (`--reference-model`); by default a requantized variant is
    /// compared with the model it was made from, and any other model with itself.
    pub model: Option<ResolvedModel>,
}

impl DriftRequest {
    /// The reference spec of `m`'s cells.
    pub fn reference_of(&self, m: &ResolvedModel) -> ReferenceSpec {
        let r = self.model.as_ref().or(m.source.as_deref()).unwrap_or(m);
        ReferenceSpec {
            backend: self.backend.clone(),
            load: self.load.clone(),
            model: r.spec.clone(),
            eval: self.eval.clone(),
            level: self.level,
        }
    }
}

/// Errors that end a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The results file could not be written (what was measured before stays in the last file written).
    #[error(transparent)]
    Results(#[from] ResultsIoError),
    /// A drift reference refused its input (the evaluation text).
    #[error(transparent)]
    Refused(#[from] ReferenceRefused),
}

/// A run: a suite crossed with its axes, executed cell by cell in child processes.
pub struct Run {
    suite: Suite,
    suite_ref: edgebench_core::results::SuiteRef,
    axes: Axes,
    child: ChildCommand,
    drift: Option<DriftRequest>,
    timeout: Duration,
    manifest: Manifest,
    device: DeviceFingerprint,
    id: String,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A new run id: the start time and 16 bits that differ between runs started in the same second.
pub fn new_run_id() -> String {
    let ts: String = now_rfc3339().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{ts}-{:04x}", (nanos ^ std::process::id()) & 0xffff)
}

impl Run {
    /// A run of `suite` (the one loaded from `suite_ref`, flags applied) over `axes`; each cell runs as `child`.
    /// Reads the device fingerprint now, so [`Run::device`] can serve estimates before anything runs.
    pub fn new(suite: Suite, suite_ref: edgebench_core::results::SuiteRef, axes: Axes, child: ChildCommand) -> Self {
        let device = edgebench_probes::device::fingerprint(&axes.energy);
        let timeout = Duration::from_secs(suite.timeout_s);
        Run {
            suite,
            suite_ref,
            axes,
            child,
            drift: None,
            timeout,
            manifest: Manifest::default(),
            device,
            id: new_run_id(),
        }
    }

    /// Checks every cell against a drift reference made as `request` says.
    pub fn drift(mut self, request: DriftRequest) -> Self {
        self.drift = (request.level != DriftLevel::Off).then_some(request);
        self
    }

    /// Wall-clock limit of each child process.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The manifest (build facts, command line) recorded in the results; the suite reference is set by the run.
    pub fn manifest(mut self, manifest: Manifest) -> Self {
        self.manifest = manifest;
        self
    }

    /// This run's id (the default results file name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The machine the run measures.
    pub fn device(&self) -> &DeviceFingerprint {
        &self.device
    }

    /// The suite as run.
    pub fn suite(&self) -> &Suite {
        &self.suite
    }

    /// The axes as run.
    pub fn axes(&self) -> &Axes {
        &self.axes
    }

    /// The cells, in the order they run (drift plans are filled in by [`Run::execute`]).
    pub fn cells(&self) -> Vec<CellSpec> {
        crate::suite::plan(&self.suite, &self.axes, &BTreeMap::new())
    }

    /// Builds the drift references (one child each), then runs every cell, rewriting `out` after each one, and
    /// returns the results as written last.
    pub fn execute(self, out: &Path, progress: &mut dyn FnMut(Progress<'_>)) -> Result<RunResults, RunError> {
        let started_at = now_rfc3339();
        let mut plans = BTreeMap::new();
        if let Some(d) = &self.drift {
            for m in &self.axes.models {
                let spec = d.reference_of(m);
                progress(Progress::Reference { model: &m.spec.id, line: &spec.describe() });
                let plan = runner::run_reference(&self.child, &spec, self.timeout, &mut |line| {
                    progress(Progress::Reference { model: &m.spec.id, line })
                })?;
                if let DriftPlan::Skip { reason } = &plan {
                    progress(Progress::Reference { model: &m.spec.id, line: reason });
                }
                plans.insert(m.spec.id.clone(), plan);
            }
        }
        let cells = crate::suite::plan(&self.suite, &self.axes, &plans);
        let mut manifest = self.manifest;
        manifest.suite = self.suite_ref;
        let mut results = RunResults {
            schema_version: SCHEMA_VERSION,
            run_id: self.id,
            started_at,
            finished_at: None,
            manifest,
            device: self.device,
            models: self.axes.models.iter().map(|m| (m.info.id.clone(), m.info.clone())).collect(),
            cells: Vec::new(),
        };
        runner::run_all(&self.child, &cells, self.timeout, &mut results, out, progress)?;
        results.finished_at = Some(now_rfc3339());
        crate::results_io::write_atomic(out, &results)?;
        Ok(results)
    }
}

//! One run from start to finish, the entry point the CLI calls: the drift reference of each model (each in a child
//! process, like a cell), the plan, every cell in a child, and the results file rewritten after each one; or the
//! continuation of an interrupted run, measuring only the cells its file lacks.
//!
//! ```text
//! let (file, prior) = ResultsFile::open(out, Existing::Refuse)?;
//! Run::new(suite, suite_ref, axes, child).drift(request).execute(&file, prior, progress)
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use edgebench_core::drift::DriftLevel;
use edgebench_core::results::{DeviceFingerprint, Manifest, Resumption, RunResults, SCHEMA_VERSION};
use edgebench_core::LoadOptions;
use edgebench_drift::reference::ReferenceSpec;
use edgebench_drift::EvalSource;
use edgebench_models::ResolvedModel;

use crate::outfile::ResultsFile;
use crate::protocol::{CellSpec, DriftPlan};
use crate::results_io::ResultsIoError;
use crate::runner::{self, ChildCommand, Progress, ReferenceRefused, Stopped};
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

/// Errors that end a run. Those that come after measuring carry the results as they stand in memory, so the caller
/// can show every figure, including one the file could not take.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The results file could not be written. The file holds everything up to the last successful write.
    #[error("{source}")]
    Write {
        /// The write error (it names the file).
        source: ResultsIoError,
        /// Every result measured, the unsaved ones included.
        results: Box<RunResults>,
        /// Results at the end of `results.cells` that are not in the file.
        unsaved: usize,
    },
    /// SIGINT, SIGTERM or SIGHUP: the cell in flight was discarded and its processes ended.
    #[error("interrupted by {}", crate::interrupt::name(*signal))]
    Interrupted {
        /// The signal.
        signal: i32,
        /// The results, all saved.
        results: Box<RunResults>,
    },
    /// A drift reference refused its input (the evaluation text).
    #[error(transparent)]
    Refused(#[from] ReferenceRefused),
    /// `--resume` of a file made with other settings.
    #[error("cannot resume {path}: it was made with other settings:\n  {}\n(pass --force to replace it, or choose another --out)", reasons.join("\n  "))]
    Resume {
        /// The results file.
        path: std::path::PathBuf,
        /// What differs.
        reasons: Vec<String>,
    },
}

/// Why the results in `prior` cannot be continued by a run of `fresh`'s settings over `cells`: another build,
/// suite, machine, model file, or cells this run would not make the same way (backend options, or a drift reference
/// other than `reference_keys`, the key of each model's reference this run would check against).
pub fn resume_mismatches(
    prior: &RunResults,
    fresh: &RunResults,
    cells: &[CellSpec],
    reference_keys: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let (pm, fm) = (&prior.manifest, &fresh.manifest);
    let build = |m: &Manifest| format!("edgebench {} ({}, {})", m.edgebench_version, m.git_commit, m.profile);
    if build(pm) != build(fm) {
        out.push(format!("made by {}, this is {}", build(pm), build(fm)));
    }
    if pm.suite.resolved != fm.suite.resolved {
        out.push(format!(
            "suite settings differ (suite {} as run then, {} now; flags such as --repetitions change them)",
            pm.suite.name, fm.suite.name
        ));
    }
    let (pd, fd) = (&prior.device, &fresh.device);
    if (&pd.cpu_model, pd.logical_cpus, &pd.arch) != (&fd.cpu_model, fd.logical_cpus, &fd.arch) {
        out.push(format!(
            "measured on {} ({} CPUs), this machine is {} ({} CPUs)",
            pd.cpu_model, pd.logical_cpus, fd.cpu_model, fd.logical_cpus
        ));
    }
    if pd.limits != fd.limits {
        let show = |l: &Option<edgebench_core::results::ResourceLimits>| {
            l.as_ref().map_or("no limits".to_string(), |l| l.describe())
        };
        out.push(format!("measured with {}, this run has {}", show(&pd.limits), show(&fd.limits)));
    }
    for (id, m) in &fresh.models {
        if let Some(p) = prior.models.get(id) {
            if p.sha256 != m.sha256 {
                out.push(format!("model {id}: file SHA-256 {} then, {} now", p.sha256, m.sha256));
            }
        }
    }
    for c in &prior.cells {
        match cells.iter().find(|s| s.key == c.key) {
            None => out.push(format!(
                "cell {} is not in this run's plan (other --model, --backend, --threads?)",
                c.key.label()
            )),
            Some(s) if c.load_options.is_some() && s.load().ok() != c.load_options => {
                out.push(format!("cell {}: backend options differ", c.key.label()))
            }
            Some(_) => {}
        }
        if let Some(edgebench_core::drift::Drift::Measured(d)) = &c.drift {
            if reference_keys.get(&c.key.model) != Some(&d.reference_key) {
                out.push(format!(
                    "cell {}: its drift was checked against another reference ({}; see --reference-backend, \
                     --reference-opt, --reference-model, --eval-text)",
                    c.key.label(),
                    d.reference
                ));
            }
        }
    }
    out
}

/// One pass of the memory bandwidth probe at `threads`, reported as progress lines (`when`: before or after the
/// cells); `None`, said so, when its buffers cannot be allocated.
fn probe_bandwidth(
    threads: &[usize],
    when: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Option<Vec<edgebench_core::results::MemoryBandwidth>> {
    use edgebench_probes::bandwidth::{buffer_bytes, measure};
    let bytes = match buffer_bytes() {
        Ok(b) => b,
        Err(why) => {
            progress(Progress::Note { line: &format!("memory bandwidth {when}: not measured: {why}") });
            return None;
        }
    };
    progress(Progress::Note {
        line: &format!("memory bandwidth {when}: reading {} MiB at {threads:?} thread(s)", bytes >> 20),
    });
    let Some(readings) = measure(threads, bytes, 5) else {
        progress(Progress::Note {
            line: &format!(
                "memory bandwidth {when}: not measured, a {} MiB buffer could not be allocated",
                bytes >> 20
            ),
        });
        return None;
    };
    for r in &readings {
        progress(Progress::Note {
            line: &format!("memory bandwidth {when}: {} thread(s) {:.1} GiB/s ({})", r.threads, r.gib_s, r.method),
        });
    }
    Some(readings)
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
    bandwidth: bool,
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
        let mut device = edgebench_probes::device::fingerprint(&axes.energy);
        device.limits = child.constrain.as_ref().map(|e| e.describe());
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
            bandwidth: false,
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

    /// Reads the streaming read bandwidth at each thread count of the CPU cells to run, before them and after them
    /// (`edgebench_probes::bandwidth::measure`), into the device fingerprint. A resumed run replaces the readings of
    /// those thread counts and keeps the others.
    pub fn memory_bandwidth(mut self) -> Self {
        self.bandwidth = true;
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

    /// Builds the drift references (one child each), then runs every cell, rewriting `file` after each one, and
    /// returns the results as written last. With `prior` (the file's results, `--resume`), checks that they were
    /// made with these settings, keeps them and measures only the cells they lack.
    pub fn execute(
        self,
        file: &ResultsFile,
        prior: Option<RunResults>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<RunResults, RunError> {
        crate::interrupt::install();
        let started_at = now_rfc3339();
        let mut manifest = self.manifest;
        manifest.suite = self.suite_ref;
        let fresh = RunResults {
            schema_version: SCHEMA_VERSION,
            run_id: self.id,
            started_at: started_at.clone(),
            finished_at: None,
            manifest,
            device: self.device,
            models: self.axes.models.iter().map(|m| (m.info.id.clone(), m.info.clone())).collect(),
            cells: Vec::new(),
        };
        let all = crate::suite::plan(&self.suite, &self.axes, &BTreeMap::new());
        let mut results = match prior {
            None => fresh,
            Some(mut prior) => {
                let keys: BTreeMap<String, String> = match &self.drift {
                    Some(d) => self.axes.models.iter().map(|m| (m.spec.id.clone(), d.reference_of(m).key())).collect(),
                    None => BTreeMap::new(),
                };
                let reasons = resume_mismatches(&prior, &fresh, &all, &keys);
                if !reasons.is_empty() {
                    return Err(RunError::Resume { path: file.path().to_path_buf(), reasons });
                }
                let kept = prior.cells.len();
                prior.finished_at = None;
                prior.models.extend(fresh.models);
                prior.manifest.resumed.push(Resumption {
                    at: started_at,
                    command_line: fresh.manifest.command_line,
                    kept_cells: kept,
                    planned_cells: all.len() - kept,
                });
                prior
            }
        };
        let done = |k: &edgebench_core::results::CellKey| results.cells.iter().any(|c| &c.key == k);
        let todo_models: Vec<&ResolvedModel> =
            self.axes.models.iter().filter(|m| all.iter().any(|c| c.key.model == m.spec.id && !done(&c.key))).collect();
        let mut plans = BTreeMap::new();
        if let Some(d) = &self.drift {
            for m in todo_models {
                let spec = d.reference_of(m);
                progress(Progress::Reference { model: &m.spec.id, line: &spec.describe() });
                let plan = runner::run_reference(&self.child, &spec, self.timeout, &mut |line| {
                    progress(Progress::Reference { model: &m.spec.id, line })
                })?;
                if let Some(signal) = crate::interrupt::requested() {
                    return Err(RunError::Interrupted { signal, results: Box::new(results) });
                }
                if let DriftPlan::Skip { reason } = &plan {
                    progress(Progress::Reference { model: &m.spec.id, line: reason });
                }
                plans.insert(m.spec.id.clone(), plan);
            }
        }
        let cells: Vec<CellSpec> =
            crate::suite::plan(&self.suite, &self.axes, &plans).into_iter().filter(|c| !done(&c.key)).collect();
        let order = |k: &edgebench_core::results::CellKey| all.iter().position(|c| &c.key == k);
        // The probe reads host memory with CPU threads: the ceiling of CPU cells only.
        let mut threads: Vec<usize> = cells.iter().filter(|c| c.key.device == "cpu").map(|c| c.key.threads).collect();
        threads.sort_unstable();
        threads.dedup();
        if self.bandwidth && !threads.is_empty() {
            if let Some(readings) = probe_bandwidth(&threads, "before the cells", progress) {
                let bw = &mut results.device.memory_bandwidth;
                bw.retain(|b| !threads.contains(&b.threads));
                bw.extend(readings);
                bw.sort_by_key(|b| b.threads);
            }
        }
        let saved_before = results.cells.len();
        let stopped = runner::run_all(&self.child, &cells, self.timeout, &mut results, file, progress);
        match stopped {
            Ok(()) if self.bandwidth && !threads.is_empty() => {
                for later in probe_bandwidth(&threads, "after the cells", progress).unwrap_or_default() {
                    if let Some(b) = results.device.memory_bandwidth.iter_mut().find(|b| b.threads == later.threads) {
                        b.add_pass(&later);
                    }
                }
            }
            Ok(()) => {}
            Err(Stopped::Interrupted(signal)) => {
                return Err(RunError::Interrupted { signal, results: Box::new(results) })
            }
            Err(Stopped::Write(source)) => {
                // The first write (before any cell) failing means nothing new is unsaved but the file was not made.
                let unsaved = if results.cells.len() > saved_before { 1 } else { 0 };
                return Err(RunError::Write { source, results: Box::new(results), unsaved });
            }
        }
        // A continued run's cells are put back in plan order.
        results.cells.sort_by_key(|c| order(&c.key));
        results.finished_at = Some(now_rfc3339());
        file.write(&results).map_err(|source| RunError::Write {
            source,
            results: Box::new(results.clone()),
            unsaved: 0,
        })?;
        Ok(results)
    }
}

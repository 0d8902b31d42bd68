//! The parent side: runs each cell in a fresh child process, watches it, classifies failures, aggregates samples
//! into metrics and writes the results file after every cell.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgebench_core::device_memory::{DeviceMemory, DeviceMemoryReading};
use edgebench_core::drift::Drift;
use edgebench_core::metrics::{self, MetricDef};
use edgebench_core::results::{CellResult, CellStatus, FailureKind, Metric, RunResults, Validity};

use crate::protocol::{CellSpec, DriftPlan, Event, Job, Repetition};
use edgebench_probes::process as probes;

/// Flags a cell when another process kept more than this many CPUs busy while it ran.
pub const BUSY_CPUS_THRESHOLD: f64 = 0.25;
/// Flags a metric whose coefficient of variation exceeds this.
pub const HIGH_CV_THRESHOLD: f64 = 0.10;
/// Flags a cell whose meter/sensor sampling thread used more than this share of a core.
pub const SAMPLER_CORE_SHARE_LIMIT: f64 = 0.01;
const STDERR_TAIL_BYTES: usize = 4000;

/// How to start a cell's child: a program and the arguments before it (e.g. the edgebench binary and `cell`).
#[derive(Debug, Clone)]
pub struct ChildCommand {
    /// Program to run.
    pub program: PathBuf,
    /// Arguments; the cell spec goes to stdin.
    pub args: Vec<String>,
    /// Limits each cell's child runs under, in a control group of its own (`--memory-limit`, `--cpu-quota`); the
    /// drift reference's child runs unconstrained.
    pub constrain: Option<edgebench_probes::cgroup::Enforcer>,
}

/// Progress notifications for a user interface.
pub enum Progress<'a> {
    /// A line about a model's drift reference (what it is, its child's progress, its outcome).
    Reference {
        /// The model whose cells it serves.
        model: &'a str,
        /// The line.
        line: &'a str,
    },
    /// A line about the run as a whole (the memory bandwidth probe).
    Note {
        /// The line.
        line: &'a str,
    },
    /// A cell is starting.
    Started {
        /// Index in the plan.
        index: usize,
        /// Cells in the plan.
        total: usize,
        /// The cell.
        spec: &'a CellSpec,
    },
    /// The running cell's child started a phase (`load 1/1`, `repetition 3/5`, …).
    Phase {
        /// Index in the plan.
        index: usize,
        /// The phase, as the child named it.
        phase: &'a str,
    },
    /// A cell finished; the results file is rewritten next.
    Finished {
        /// Index in the plan.
        index: usize,
        /// Its result.
        result: &'a CellResult,
    },
}

/// Why [`run_all`] stopped before its last cell.
#[derive(Debug)]
pub enum Stopped {
    /// The results file could not be written; the last result is in memory (and was reported) but not saved.
    Write(crate::results_io::ResultsIoError),
    /// SIGINT, SIGTERM or SIGHUP arrived; the cell in flight was discarded, every finished one is saved.
    Interrupted(i32),
}

/// Runs every cell, appending each result to `results`, reporting it, then rewriting `file`.
pub fn run_all(
    child: &ChildCommand,
    cells: &[CellSpec],
    timeout: Duration,
    results: &mut RunResults,
    file: &crate::outfile::ResultsFile,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(), Stopped> {
    file.write(results).map_err(Stopped::Write)?;
    for (index, spec) in cells.iter().enumerate() {
        progress(Progress::Started { index, total: cells.len(), spec });
        let result = run_cell(child, spec, timeout, &mut |phase| progress(Progress::Phase { index, phase }));
        if let Some(sig) = crate::interrupt::requested() {
            return Err(Stopped::Interrupted(sig));
        }
        results.cells.push(result);
        // Reported before it is saved: a write that fails loses nothing the user has not seen.
        progress(Progress::Finished { index, result: results.cells.last().expect("just pushed") });
        file.write(results).map_err(Stopped::Write)?;
    }
    Ok(())
}

struct ChildRun {
    events: Vec<Event>,
    stray_lines: usize,
    status: Option<std::process::ExitStatus>,
    timed_out: bool,
    stderr: String,
    wall_s: f64,
}

/// Reads `stderr` to its end keeping only the last [`STDERR_TAIL_BYTES`] (a child may print without end).
fn stderr_tail(mut stderr: impl Read) -> String {
    let (mut kept, mut buf) = (Vec::new(), [0u8; 8192]);
    while let Ok(n @ 1..) = stderr.read(&mut buf) {
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_TAIL_BYTES {
            kept.drain(..kept.len() - STDERR_TAIL_BYTES);
        }
    }
    let s = String::from_utf8_lossy(&kept).into_owned();
    let cut = s.len().saturating_sub(STDERR_TAIL_BYTES);
    let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
    s[cut..].to_string()
}

/// Ends every process of the group `pgid` (a child and whatever it started: meter commands, their `sleep`s).
fn kill_group(pgid: u32) {
    // SAFETY: kill with a negative pid signals a process group; a group that is gone gives ESRCH, ignored.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

/// A control group name unique to this process and cell.
fn cell_group_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("edgebench-{}-cell{n}", std::process::id())
}

/// How often the wait loop looks for SIGINT/SIGTERM while a child is silent.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);

fn spawn_and_watch(
    child: &ChildCommand,
    job: &Job,
    timeout: Duration,
    group: Option<&edgebench_probes::cgroup::CellGroup>,
    on_phase: &mut dyn FnMut(&str),
) -> std::io::Result<ChildRun> {
    use std::os::unix::process::CommandExt;
    let threads = job.threads().to_string();
    let mut cmd = Command::new(&child.program);
    cmd.args(&child.args)
        .env("RAYON_NUM_THREADS", &threads)
        .env("OMP_NUM_THREADS", &threads)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout or an interrupt ends the child and everything it started, and a Ctrl-C
        // at the terminal reaches only the parent, which decides.
        .process_group(0);
    probes::die_with_parent(&mut cmd);
    if let Some(g) = group {
        let procs: Vec<std::ffi::CString> = g
            .procs_files()
            .iter()
            .map(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()))
            .collect::<Result<_, _>>()?;
        // SAFETY: join_in_child makes only async-signal-safe calls on strings made before the fork.
        unsafe { cmd.pre_exec(move || edgebench_probes::cgroup::join_in_child(&procs)) };
    }
    let mut proc = cmd.spawn()?;
    let pgid = proc.id();
    let t0 = Instant::now();
    let spec_json = serde_json::to_vec(job).expect("jobs serialize");
    if let Some(mut stdin) = proc.stdin.take() {
        // A child that dies before reading its spec is classified below from its exit status.
        let _ = stdin.write_all(&spec_json);
    }
    let stdout = proc.stdout.take().expect("piped");
    let stderr = proc.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in edgebench_core::limits::bounded_lines(BufReader::new(stdout), edgebench_core::limits::LINE) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || stderr_tail(stderr));
    // A deadline past what an Instant can hold is no deadline (flags bound the timeout long before that).
    let deadline = t0.checked_add(timeout);
    let (mut events, mut stray_lines, mut timed_out, mut overlong) = (Vec::new(), 0, false, None);
    loop {
        let left = deadline.map_or(INTERRUPT_POLL, |d| d.saturating_duration_since(Instant::now()));
        if crate::interrupt::requested().is_some() {
            break;
        }
        match rx.recv_timeout(left.min(INTERRUPT_POLL)) {
            Ok(Ok(line)) => match serde_json::from_str::<Event>(&line) {
                Ok(Event::Phase { phase }) => on_phase(&phase),
                Ok(e) => events.push(e),
                Err(_) => stray_lines += 1,
            },
            Ok(Err(e)) => {
                overlong = Some(e.to_string());
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out = true;
                    break;
                }
            }
        }
    }
    if timed_out || overlong.is_some() || crate::interrupt::requested().is_some() {
        kill_group(pgid);
    }
    let status = proc.wait().ok();
    // Whatever the child left running (a meter command's `sleep`) ends with it.
    kill_group(pgid);
    let wall_s = t0.elapsed().as_secs_f64();
    let _ = reader.join();
    let mut stderr = err_reader.join().unwrap_or_default();
    if let Some(e) = overlong {
        stderr.push_str(&format!("\nedgebench: stopped reading the child's output: {e}"));
    }
    Ok(ChildRun { events, stray_lines, status, timed_out, stderr, wall_s })
}

fn classify(run: &ChildRun, oom_before: Option<u64>, timeout: Duration) -> CellStatus {
    let done = run.events.iter().any(|e| matches!(e, Event::Done { .. }));
    if let Some(reason) = run.events.iter().find_map(|e| match e {
        Event::Skipped { reason } => Some(reason.clone()),
        _ => None,
    }) {
        return CellStatus::Skipped { reason };
    }
    let failed = |kind, message: String| CellStatus::Failed { kind, message };
    if run.timed_out {
        return failed(FailureKind::Timeout, format!("no result within {} s; killed", timeout.as_secs()));
    }
    let oom_now = probes::cgroup_oom_kills();
    let alloc_failed = run.stderr.contains("memory allocation of");
    match run.status {
        Some(st) if st.signal().is_some() => {
            let sig = st.signal().unwrap_or(0);
            let oom = matches!((oom_before, oom_now), (Some(a), Some(b)) if b > a);
            if oom || alloc_failed {
                failed(FailureKind::OutOfMemory, format!("{} ({}); out of memory", crate::interrupt::name(sig), sig))
            } else if sig == libc::SIGKILL {
                failed(FailureKind::Signal, "SIGKILL from outside edgebench (possibly the kernel OOM killer)".into())
            } else {
                failed(FailureKind::Signal, format!("{} ({sig})", crate::interrupt::name(sig)))
            }
        }
        Some(st) if st.code() == Some(101) && run.stderr.contains("panicked at") => {
            let msg: Vec<&str> = run.stderr.lines().skip_while(|l| !l.contains("panicked at")).take(2).collect();
            failed(FailureKind::Panic, msg.join(" "))
        }
        _ => {
            if let Some(message) = run.events.iter().find_map(|e| match e {
                Event::Error { message } => Some(message.clone()),
                _ => None,
            }) {
                failed(FailureKind::Error, message)
            } else if done && run.status.is_some_and(|s| s.success()) {
                CellStatus::Ok
            } else {
                let code = run.status.and_then(|s| s.code());
                failed(FailureKind::Protocol, format!("child exited (code {code:?}) without a final result line"))
            }
        }
    }
}

fn metric(def: MetricDef, samples: Vec<f64>) -> (String, Metric) {
    let summary = edgebench_stats::summarize(&samples);
    (def.key.to_string(), Metric { unit: def.unit.into(), better: def.better, samples, summary })
}

/// The measured (not warm-up) repetitions, in order.
fn measured(events: &[Event]) -> Vec<&Repetition> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Repetition(r) if !r.warmup => Some(r),
            _ => None,
        })
        .collect()
}

/// Turns a child's events into metrics (partial runs keep what they measured).
pub fn aggregate(events: &[Event]) -> BTreeMap<String, Metric> {
    let mut m = BTreeMap::new();
    let loads: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Loaded { load_s, .. } => Some(load_s * 1e3),
            _ => None,
        })
        .collect();
    let reps = measured(events);
    let mut put = |def: MetricDef, v: Vec<f64>| {
        if !v.is_empty() {
            let (k, x) = metric(def, v);
            m.insert(k, x);
        }
    };
    put(metrics::LOAD_MS, loads);
    // A one-token prompt is a decode step, not a prefill: prefill metrics need at least two prompt tokens.
    let prefill: Vec<&&Repetition> = reps.iter().filter(|r| r.prompt_tokens >= 2).collect();
    put(metrics::PREFILL_TPS, prefill.iter().map(|r| r.prompt_tokens as f64 / r.prefill_s).collect());
    put(metrics::TTFT_MS, prefill.iter().map(|r| r.ttft_s * 1e3).collect());
    let decoding: Vec<&&Repetition> = reps.iter().filter(|r| !r.itl_s.is_empty()).collect();
    put(metrics::DECODE_TPS, decoding.iter().map(|r| r.itl_s.len() as f64 / r.itl_s.iter().sum::<f64>()).collect());
    put(metrics::ITL_MS, decoding.iter().flat_map(|r| r.itl_s.iter().map(|s| s * 1e3)).collect());
    if let Some(kib) = events.iter().find_map(|e| match e {
        Event::Done { peak_rss_kib, .. } => Some(*peak_rss_kib),
        _ => None,
    }) {
        put(metrics::PEAK_RSS_MIB, vec![kib as f64 / 1024.0]);
    }
    if let Some((anon, file)) = events.iter().find_map(|e| match e {
        Event::Done { rss_anon_kib, rss_file_kib, .. } => Some((*rss_anon_kib, *rss_file_kib)),
        _ => None,
    }) {
        put(metrics::RSS_ANON_MIB, vec![anon as f64 / 1024.0]);
        put(metrics::RSS_FILE_MIB, vec![file as f64 / 1024.0]);
    }
    if let Some(DeviceMemoryReading::Measured(d)) = events.iter().find_map(|e| match e {
        Event::DeviceMemory(x) => Some(x),
        _ => None,
    }) {
        put(metrics::PEAK_DEVICE_MIB, vec![d.peak_mib]);
    }
    if let Some(energy) = events.iter().find_map(|e| match e {
        Event::Energy(x) => Some(x),
        _ => None,
    }) {
        for (def, samples) in crate::meters::energy_metrics(energy, &reps) {
            put(def, samples);
        }
    }
    if let Some(Drift::Measured(d)) = events.iter().find_map(|e| match e {
        Event::Drift(x) => Some(x),
        _ => None,
    }) {
        put(metrics::KLD_MEAN, vec![d.stats.kld.value]);
        put(metrics::SAME_TOP1_PCT, vec![100.0 * d.stats.same_top1.value]);
        put(metrics::PPL_RATIO, vec![d.stats.ppl_ratio.value]);
    }
    m
}

/// Runs one cell in a child process and builds its result. Never fails: a child that cannot even start is a
/// failed cell. `on_phase` hears each phase the child starts.
pub fn run_cell(
    child: &ChildCommand,
    spec: &CellSpec,
    timeout: Duration,
    on_phase: &mut dyn FnMut(&str),
) -> CellResult {
    let busy_before = probes::busy_cpus(Duration::from_millis(250));
    let load_before = probes::loadavg1();
    let machine0 = probes::machine_cpu_seconds();
    let oom_before = probes::cgroup_oom_kills();
    let group = match child.constrain.as_ref().map(|e| e.group(&cell_group_name())).transpose() {
        Ok(g) => g,
        Err(e) => {
            let mut result = CellResult::new(spec.key.clone(), CellStatus::Ok);
            result.status = CellStatus::Failed { kind: FailureKind::Error, message: format!("not run: {e}") };
            return result;
        }
    };
    let evicted = child.constrain.as_ref().is_some_and(|e| e.limits_memory())
        && edgebench_probes::cgroup::evict_from_page_cache(&spec.model.path).is_ok();
    let run = spawn_and_watch(child, &Job::Cell(spec.clone()), timeout, group.as_ref(), on_phase);
    let reading = group.as_ref().map(|g| edgebench_core::results::CgroupReading { model_evicted: evicted, ..g.read() });
    drop(group);
    let machine1 = probes::machine_cpu_seconds();
    let mut result = CellResult {
        workload: serde_json::to_value(&spec.workload).unwrap_or_default(),
        load_options: spec.load().ok(),
        validity: Validity { busy_cpus_before: busy_before, loadavg_before: load_before, ..Validity::default() },
        ..CellResult::new(spec.key.clone(), CellStatus::Ok)
    };
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            result.status = CellStatus::Failed {
                kind: FailureKind::Error,
                message: format!("cannot start {}: {e}", child.program.display()),
            };
            return result;
        }
    };
    result.status = classify(&run, oom_before, timeout);
    if let (Some(r), Some(limits)) = (&reading, child.constrain.as_ref()) {
        let killed =
            matches!(result.status, CellStatus::Failed { kind: FailureKind::Signal | FailureKind::OutOfMemory, .. });
        if killed && r.oom_kills > 0 {
            result.status = CellStatus::Failed {
                kind: FailureKind::OutOfMemory,
                message: format!(
                    "killed by its cgroup's OOM killer ({}; peak {})",
                    limits.describe().describe(),
                    edgebench_core::text::bytes_iec(r.peak_bytes)
                ),
            };
        }
    }
    result.cgroup = reading;
    result.wall_s = run.wall_s;
    result.metrics = aggregate(&run.events);
    result.energy = run.events.iter().find_map(|e| match e {
        Event::Energy(x) => Some(x.clone()),
        _ => None,
    });
    result.thermal = run.events.iter().find_map(|e| match e {
        Event::Thermal(x) => Some(x.clone()),
        _ => None,
    });
    result.device_memory = run.events.iter().find_map(|e| match e {
        Event::DeviceMemory(x) => Some(x.clone()),
        _ => None,
    });
    result.drift = run.events.iter().find_map(|e| match e {
        Event::Drift(x) => Some(x.clone()),
        _ => None,
    });
    if spec.duration_s.is_some() {
        result.sustained = crate::meters::sustained(&measured(&run.events), result.energy.as_ref());
    }
    result.backend = run.events.iter().rev().find_map(|e| match e {
        Event::Loaded { facts, .. } => Some((**facts).clone()),
        _ => None,
    });
    if let Some(b) = result.backend.as_mut() {
        b.weights = run.events.iter().find_map(|e| match e {
            Event::Weights(w) => Some(w.clone()),
            _ => None,
        });
    }
    result.sample_output = run.events.iter().find_map(|e| match e {
        Event::Output { text } => Some(text.clone()),
        _ => None,
    });
    let stderr = run.stderr.trim();
    result.stderr_tail = (!stderr.is_empty()).then(|| stderr.to_string());
    result.validity.loadavg_after = probes::loadavg1();
    let child_cpu = run.events.iter().find_map(|e| match e {
        Event::Done { cpu_s, .. } => Some(*cpu_s),
        _ => None,
    });
    if let (Some((b0, _)), Some((b1, _)), Some(cpu)) = (machine0, machine1, child_cpu) {
        if run.wall_s > 0.0 {
            result.validity.foreign_cpus_during = Some(((b1 - b0 - cpu) / run.wall_s).max(0.0));
        }
    }
    result.validity.flags = flags(&result, spec, &run.events, run.stray_lines);
    result
}

fn flags(r: &CellResult, spec: &CellSpec, events: &[Event], stray_lines: usize) -> Vec<String> {
    let mut f = Vec::new();
    let v = &r.validity;
    let busy = v.busy_cpus_before.unwrap_or(0.0).max(v.foreign_cpus_during.unwrap_or(0.0));
    if busy > BUSY_CPUS_THRESHOLD {
        f.push(format!("busy_machine({busy:.2} cpus)"));
    }
    if spec.key.threads as f64 + busy > probes::logical_cpus() as f64 + BUSY_CPUS_THRESHOLD {
        f.push("oversubscribed".into());
    }
    if let Some(facts) = &r.backend {
        if facts.threads != spec.key.threads {
            f.push(format!("threads_mismatch(asked {}, backend used {})", spec.key.threads, facts.threads));
        }
    }
    for (k, m) in &r.metrics {
        // ITL samples are single steps; net energy is a difference near zero when the load adds little power. Neither
        // one's CV says whether the cell was stable.
        let skip = k == metrics::ITL_MS.key || k.contains("_net_");
        if m.summary.n >= 3 && m.summary.cv > HIGH_CV_THRESHOLD && !skip {
            f.push(format!("high_cv:{k}({:.0}%)", m.summary.cv * 100.0));
        }
    }
    if let Some(why) = r.thermal.as_ref().and_then(|t| t.throttled.as_ref()) {
        f.push(format!("throttled({why})"));
    }
    if let Some(e) = &r.energy {
        if e.sampler.core_share() > SAMPLER_CORE_SHARE_LIMIT {
            f.push(format!("sampler_cost({:.1}% of a core)", e.sampler.core_share() * 100.0));
        }
        for phase in crate::meters::below_resolution(e, &measured(events)) {
            f.push(format!("energy_below_resolution:{phase}"));
        }
    }
    if let Some(DeviceMemoryReading::Measured(d)) = &r.device_memory {
        f.extend(device_memory_flags(d));
    }
    if stray_lines > 0 {
        f.push(format!("stray_stdout_lines({stray_lines})"));
    }
    f
}

/// Flags of a GPU memory reading: a sampler that cost more than `SAMPLER_CORE_SHARE_LIMIT` of a core, samples NVML
/// refused (the peak is over the others).
fn device_memory_flags(d: &DeviceMemory) -> Vec<String> {
    let mut f = Vec::new();
    if d.sampler_core_share > SAMPLER_CORE_SHARE_LIMIT {
        f.push(format!("sampler_cost(GPU memory: {:.1}% of a core)", d.sampler_core_share * 100.0));
    }
    if d.failed_samples > 0 {
        let why = d.sample_error.as_deref().unwrap_or("no reason given");
        let all = d.samples + d.failed_samples;
        f.push(format!("device_memory_gaps({} of {all} samples failed: {why})", d.failed_samples));
    }
    f
}

/// Why a drift reference job stopped the run: its input (the evaluation text) is unusable, which no other backend
/// or model would change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReferenceRefused(pub String);

/// Builds (or finds cached) a drift reference in a child process and returns the drift plan of the cells it
/// serves: `Check` with the cached file, or `Skip` with the reason when the reference backend failed, crashed or
/// timed out. `on_line` hears the child's progress. Unusable input (an evaluation text too short or unreadable) is
/// an error.
pub fn run_reference(
    child: &ChildCommand,
    spec: &edgebench_drift::reference::ReferenceSpec,
    timeout: Duration,
    on_line: &mut dyn FnMut(&str),
) -> Result<DriftPlan, ReferenceRefused> {
    let oom_before = probes::cgroup_oom_kills();
    let run = match spawn_and_watch(child, &Job::Reference(spec.clone()), timeout, None, on_line) {
        Ok(r) => r,
        Err(e) => {
            return Ok(DriftPlan::Skip {
                reason: format!("no reference: cannot start {}: {e}", child.program.display()),
            })
        }
    };
    if let Some(message) = run.events.iter().find_map(|e| match e {
        Event::Refused { message } => Some(message.clone()),
        _ => None,
    }) {
        return Err(ReferenceRefused(message));
    }
    let built = run.events.iter().find_map(|e| match e {
        Event::Reference { path, sequences, scored } => Some((path.clone(), *sequences, *scored)),
        _ => None,
    });
    Ok(match (classify(&run, oom_before, timeout), built) {
        (CellStatus::Ok, Some((path, sequences, scored))) => {
            on_line(&format!(
                "{sequences} sequences, {scored} scored tokens ({:.1} s); cached at {}",
                run.wall_s,
                path.display()
            ));
            DriftPlan::Check { reference: path }
        }
        (CellStatus::Skipped { reason }, _) => DriftPlan::Skip { reason: format!("no reference: {reason}") },
        (CellStatus::Failed { kind, message }, _) => {
            let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            DriftPlan::Skip { reason: format!("reference could not be built ({kind}): {message}") }
        }
        (CellStatus::Ok, None) => {
            DriftPlan::Skip { reason: "reference could not be built: its child reported no reference file".into() }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgebench_core::device_memory::DeviceMemorySource;

    #[test]
    fn gpu_memory_flags_name_refused_samples_and_sampler_cost() {
        let mut d = DeviceMemory {
            device: "cuda:0, GPU".into(),
            source: DeviceMemorySource::Process,
            peak_mib: 840.0,
            used_before_mib: 0.0,
            used_peak_mib: 900.0,
            total_mib: 143_771.0,
            samples: 48,
            interval_ms: 20.0,
            sampler_core_share: 0.008,
            failed_samples: 0,
            sample_error: None,
        };
        assert!(device_memory_flags(&d).is_empty());
        (d.failed_samples, d.sample_error, d.sampler_core_share) = (2, Some("Unknown Error".into()), 0.03);
        assert_eq!(
            device_memory_flags(&d),
            ["sampler_cost(GPU memory: 3.0% of a core)", "device_memory_gaps(2 of 50 samples failed: Unknown Error)"]
        );
    }
}

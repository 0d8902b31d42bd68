//! `edgebench run`: resolve models, backends, threads; plan the suite; run each cell in a child; print the table.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use edgebench_core::drift::DriftLevel;
use edgebench_core::results::{CellStatus, SuiteRef};
use edgebench_core::{DeviceRequest, LoadOptions};
use edgebench_drift::EvalSource;
use edgebench_models::registry;
use edgebench_probes::process as probes;
use edgebench_reports::text::terminal_safe;
use edgebench_runner::outfile::{Existing, ResultsFile};
use edgebench_runner::run::{DriftRequest, Run, RunError};
use edgebench_runner::runner::{ChildCommand, Progress};
use edgebench_runner::{estimate, suite};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backends;
use crate::cli::{Format, RunArgs};

/// What the run will do, before it measures anything: cells along each axis and the work in each cell.
fn plan_text(
    s: &suite::Suite,
    axes: &suite::Axes,
    cells: &[edgebench_runner::protocol::CellSpec],
    out: &std::path::Path,
) -> String {
    let list = |v: Vec<String>| v.join(", ");
    let n = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    let about = if s.about.is_empty() { String::new() } else { format!(" ({})", s.about) };
    let mut t = format!(
        "suite {}{about}: {} = {} × {} ({}) × {} ({}) × {} ({}) × {} ({})\n",
        s.name,
        n(cells.len(), "cell", "cells"),
        n(axes.models.len(), "model", "models"),
        n(axes.backends.len(), "backend", "backends"),
        list(axes.backends.clone()),
        n(axes.devices.len(), "device", "devices"),
        list(axes.devices.iter().map(|d| d.to_string()).collect()),
        n(axes.threads.len(), "thread count", "thread counts"),
        list(axes.threads.iter().map(usize::to_string).collect()),
        n(s.workloads.len(), "workload", "workloads"),
        list(s.workloads.iter().map(|w| format!("{}: {} generated tokens", w.name, w.gen_tokens)).collect()),
    );
    let reps = match s.duration_s {
        Some(d) => format!("repetitions for at least {d:.0} s (at least {})", s.repetitions),
        None => n(s.repetitions, "measured repetition", "measured repetitions"),
    };
    t.push_str(&format!(
        "each cell: a fresh process; {}, {} warm-up, {reps}{}; results → {}\n",
        n(s.load_repetitions, "timed load", "timed loads"),
        s.warmup,
        match s.drift {
            edgebench_core::drift::DriftLevel::Off => String::new(),
            level => format!(
                ", then a {} drift check",
                serde_json::to_value(level).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            ),
        },
        out.display()
    ));
    t
}

fn key_values(opts: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    opts.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("--backend-opt {kv:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// The drift request the flags ask for (checked here, so a bad flag fails before anything runs).
fn drift_request(a: &RunArgs, level: DriftLevel, threads: &[usize]) -> anyhow::Result<DriftRequest> {
    if a.eval_ctx < 4 {
        bail!("--eval-ctx {}: must be at least 4 tokens", a.eval_ctx);
    }
    if a.eval_chunks == Some(0) {
        bail!("--eval-chunks must be at least 1");
    }
    let eval = match &a.eval_text {
        None => EvalSource::Builtin,
        Some(p) => EvalSource::Text {
            path: p.clone(),
            sha256: registry::sha256_hex(
                &edgebench_core::limits::read_bytes(p, edgebench_core::limits::EVAL_TEXT, "evaluation text")
                    .map_err(|e| anyhow::anyhow!("--eval-text {e}"))?,
            ),
            ctx: a.eval_ctx,
            max_chunks: if level == DriftLevel::Short { Some(1) } else { a.eval_chunks },
        },
    };
    let mut options = key_values(&a.reference_opt).context("flag --reference-opt")?;
    if options.is_empty() && a.reference_backend == "candle" {
        options.insert("requantize".into(), "f32".into());
    }
    let model = a.reference_model.as_deref().map(|m| edgebench_models::resolve(Some(m), &mut log)).transpose()?;
    Ok(DriftRequest {
        level,
        eval,
        backend: a.reference_backend.clone(),
        load: LoadOptions {
            threads: threads.iter().copied().max().unwrap_or(1),
            device: DeviceRequest::cpu(),
            options,
        },
        model,
    })
}

/// The longest idle baseline before a cell (`--idle-s`), seconds.
const MAX_IDLE_S: f64 = 600.0;

/// The results on stdout, as `--format` and `--wide` ask.
fn print_table(results: &edgebench_core::results::RunResults, a: &RunArgs) {
    match a.format {
        Format::Table => {
            let width = if a.wide { edgebench_reports::Width::Wide } else { edgebench_reports::Width::Compact };
            print!("{}", edgebench_reports::terminal_table_with(results, width))
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(results).expect("results serialize")),
    }
}

fn log(line: &str) {
    eprintln!("{line}");
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = suite::load(&a.suite).context("flag --suite")?;
    let mut s = loaded.suite.clone();
    if let Some(r) = a.repetitions {
        if r == 0 {
            bail!("--repetitions must be at least 1");
        }
        s.repetitions = r;
    }
    if let Some(w) = a.warmup {
        s.warmup = w;
    }
    if let Some(d) = a.duration_s {
        if !(d > 0.0 && d <= suite::MAX_DURATION_S) {
            bail!("--duration-s {d}: must be a positive number of seconds, at most {} (a day)", suite::MAX_DURATION_S);
        }
        s.duration_s = Some(d);
    }
    if !(0.0..=MAX_IDLE_S).contains(&a.idle_s) {
        bail!("--idle-s {}: must be between 0 and {MAX_IDLE_S} seconds", a.idle_s);
    }
    let energy = edgebench_probes::energy::EnergySpec {
        sysfs_root: super::sysfs_root(),
        command: a.energy_cmd.clone(),
        primary: a.energy_meter.clone(),
        idle_s: a.idle_s,
        ..Default::default()
    };
    // A sustained cell runs for its duration plus loads and warm-up; the suite's limit may be shorter.
    let min_timeout = s.duration_s.map_or(0, |d| (d * 1.5) as u64 + 120);
    if let Some(t) = a.timeout.filter(|t| !(1..=suite::MAX_TIMEOUT_S).contains(t)) {
        bail!("--timeout {t}: must be between 1 and {} seconds (a week)", suite::MAX_TIMEOUT_S);
    }
    let timeout = Duration::from_secs(a.timeout.unwrap_or(s.timeout_s.max(min_timeout)));

    let backend_names = if a.backend.is_empty() { backends::default_set() } else { a.backend.clone() };
    if backend_names.is_empty() {
        bail!("no backend compiled in besides mock: rebuild with --features candle, or pass --backend mock");
    }
    for b in &backend_names {
        backends::get(b)?;
    }
    let devices = a
        .device
        .iter()
        .map(|d| DeviceRequest::parse(d).map_err(|e| anyhow::anyhow!("--device: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = super::backend_opts::route(&a.backend_opt, &backend_names)?;
    // Default: the CPUs not busy with other work, and no more than a --cpu-quota grants (rounded up).
    let quota_cpus = a.cpu_quota.map_or(usize::MAX, |q| (q.ceil() as usize).max(1));
    let threads = if a.threads.is_empty() { vec![probes::free_cpus().min(quota_cpus)] } else { a.threads.clone() };
    if threads.contains(&0) {
        bail!("--threads: thread counts must be at least 1");
    }

    let names = if a.model.is_empty() { &s.models } else { &a.model };
    let model_args: Vec<Option<&str>> =
        if names.is_empty() { vec![None] } else { names.iter().map(|m| Some(m.as_str())).collect() };
    let mut models = Vec::new();
    for m in model_args {
        models.push(edgebench_models::resolve(m, &mut log)?);
    }

    if let Some(d) = a.drift {
        s.drift = d;
    }
    let drift = if s.drift == DriftLevel::Off { None } else { Some(drift_request(&a, s.drift, &threads)?) };

    let axes = suite::Axes { models, backends: backend_names, devices, threads, options, energy };
    let suite_ref = SuiteRef {
        name: s.name.clone(),
        path: loaded.origin.clone(),
        sha256: registry::sha256_hex(loaded.text.as_bytes()),
        resolved: serde_json::to_value(&s)?,
    };
    let constrain = if a.memory_limit.is_some() || a.cpu_quota.is_some() {
        let limits = edgebench_probes::cgroup::Limits { memory_bytes: a.memory_limit, cpu_quota: a.cpu_quota };
        let flags = match (a.memory_limit, a.cpu_quota) {
            (Some(_), Some(_)) => "--memory-limit / --cpu-quota",
            (Some(_), None) => "--memory-limit",
            _ => "--cpu-quota",
        };
        let e = edgebench_probes::cgroup::Enforcer::new(std::path::Path::new("/sys/fs/cgroup"), limits)
            .with_context(|| format!("flag {flags}: refused, the run would not be constrained"))?;
        eprintln!("limits: {} per cell, enforced by {}", e.describe().describe(), e.describe().mechanism);
        Some(e)
    } else {
        None
    };
    let child = ChildCommand {
        program: std::env::current_exe().context("locating the edgebench binary")?,
        args: vec!["cell".into()],
        constrain,
    };
    let mut run = Run::new(s, suite_ref, axes, child).timeout(timeout).manifest(crate::build_info::manifest());
    if let Some(d) = drift {
        run = run.drift(d);
    }
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("results").join(format!("{}.json", run.id())));
    let mut inputs: Vec<(String, PathBuf)> = vec![("--suite".into(), PathBuf::from(&loaded.origin))];
    inputs.extend(run.axes().models.iter().map(|m| (format!("model {}", m.spec.id), m.spec.path.clone())));
    inputs.extend(a.eval_text.iter().map(|p| ("--eval-text".to_string(), p.clone())));
    super::refuse_input_as_output("--out", &out, &inputs)?;
    let existing = match (a.resume, a.force) {
        (true, _) => Existing::Resume,
        (_, true) => Existing::Replace,
        _ => Existing::Refuse,
    };
    let (file, kept) = ResultsFile::open(&out, existing).context("flag --out")?;
    let mut cells = run.cells();
    eprint!("{}", plan_text(run.suite(), run.axes(), &cells, &out));
    match &kept {
        Some(k) => {
            cells.retain(|c| !k.cells.iter().any(|d| d.key == c.key));
            eprintln!(
                "resuming {} (run {}): {} cell(s) kept as measured, {} to measure",
                out.display(),
                terminal_safe(&k.run_id),
                k.cells.len(),
                cells.len()
            );
        }
        None if a.resume => eprintln!("--resume: {} does not exist yet; starting it", out.display()),
        None => {}
    }
    let earlier_dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let earlier = estimate::earlier_results(earlier_dir, &out);
    let prior = estimate::prior_wall_s(&cells, &run.device().cpu_model, &earlier);
    let known = prior.iter().flatten().count();
    match estimate::remaining_s(&prior, 0, &[]) {
        Some(left) if known > 0 => eprintln!(
            "estimate: about {} ({known} of {} cells timed in earlier results in {} on this CPU; the rest at their \
             mean)",
            estimate::human(left),
            cells.len(),
            earlier_dir.display()
        ),
        _ => eprintln!(
            "estimate: none yet (no earlier results of these cells in {} on this CPU); given after the first cell",
            earlier_dir.display()
        ),
    }
    if a.memory_bandwidth {
        run = run.memory_bandwidth();
    }
    let bar = ProgressBar::new(cells.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:20} {pos}/{len} {prefix} {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut done_wall_s: Vec<f64> = Vec::new();
    let mut current = String::new();
    let left_prefix = |left: Option<f64>| left.map(|s| format!("~{} left", estimate::human(s))).unwrap_or_default();
    bar.set_prefix(left_prefix(estimate::remaining_s(&prior, 0, &[])));
    let outcome = run.execute(&file, kept, &mut |p| match p {
        Progress::Note { line } => {
            let line = terminal_safe(line);
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        Progress::Reference { model, line } => {
            let line = format!("drift reference for {}: {}", terminal_safe(model), terminal_safe(line));
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        Progress::Started { spec, .. } => {
            current = spec.key.label();
            bar.set_message(format!("{current}: starting"));
        }
        Progress::Phase { phase, .. } => bar.set_message(format!("{current}: {}", terminal_safe(phase))),
        Progress::Finished { index, result } => {
            bar.inc(1);
            done_wall_s.push(result.wall_s);
            bar.set_prefix(left_prefix(estimate::remaining_s(&prior, index + 1, &done_wall_s)));
            let line = format!(
                "  {}: {} ({:.1} s)",
                result.key.label(),
                terminal_safe(&edgebench_reports::cell_status_text(result)),
                result.wall_s
            );
            // A hidden bar (stderr not a terminal, as in CI logs) prints nothing, not even its log lines.
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
    });
    bar.finish_and_clear();
    let results = match outcome {
        Ok(r) => r,
        Err(RunError::Write { source, results, unsaved }) => {
            print_table(&results, &a);
            eprintln!("error: writing the results failed: {source}");
            eprintln!(
                "the run stopped: {} cell(s) are saved in {}{}; free the space (or fix the cause) and rerun the same \
                 command with --resume to measure the rest",
                results.cells.len() - unsaved,
                out.display(),
                if unsaved > 0 {
                    format!(", {unsaved} measured and shown above could not be saved")
                } else {
                    String::new()
                },
            );
            return Ok(ExitCode::from(2));
        }
        Err(RunError::Interrupted { signal, results }) => {
            print_table(&results, &a);
            eprintln!(
                "interrupted by {}: {} cell(s) are saved in {}; the cell in flight was discarded and its processes \
                 ended; rerun the same command with --resume to measure the rest",
                edgebench_runner::interrupt::name(signal),
                results.cells.len(),
                out.display()
            );
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e).context(format!("results file {}", out.display())),
    };

    print_table(&results, &a);
    eprintln!("results: {}", out.display());
    let failed = results.cells.iter().filter(|c| matches!(c.status, CellStatus::Failed { .. })).count();
    if failed > 0 {
        eprintln!("{failed} cell(s) failed; their details are in the results file");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

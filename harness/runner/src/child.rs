//! The body of a cell's child process: check support, build the tokenizer, time loads, run the workload, report
//! memory. Speaks only JSON lines on `out`.

use std::io::Write;
use std::time::Instant;

use edgebench_core::drift::Drift;
use edgebench_core::{Backend, BackendError, LoadedModel, Prepared, WeightsCheck};
use edgebench_drift::reference::{self, ReferenceError, ReferenceSpec};
use edgebench_drift::EvalError;
use edgebench_gguf::GgufFile;

use crate::meters::CellMeters;
use crate::protocol::{CellSpec, DriftPlan, Event, Job};
use crate::workload::{run_repetition_marked, Phase};
use edgebench_core::sampler::Sampler;
use edgebench_models::tokenizer::Tokenizer;
use edgebench_probes::energy::monitor::Mark;
use edgebench_probes::gpu_memory::GpuMemoryWatch;

/// Between two NVML samples of a GPU cell's device memory.
const GPU_MEMORY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

fn emit(out: &mut dyn Write, e: &Event) {
    let line = serde_json::to_string(e).expect("events serialize");
    // A parent that stopped reading has already decided this cell's fate; nothing useful remains to do.
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

fn phase(out: &mut dyn Write, phase: String) {
    emit(out, &Event::Phase { phase });
}

/// Runs one job and returns the process exit code: 0 done or skipped, 2 error.
pub fn run_job(job: &Job, backend: &dyn Backend, out: &mut dyn Write) -> i32 {
    match job {
        Job::Cell(spec) => run(spec, backend, out),
        Job::Reference(spec) => build_reference(spec, backend, out),
    }
}

/// Builds (or finds cached) a drift reference and reports its file; exit code as [`run`].
pub fn build_reference(spec: &ReferenceSpec, backend: &dyn Backend, out: &mut dyn Write) -> i32 {
    report(reference_inner(spec, backend, out), out)
}

/// Runs one cell and returns the process exit code: 0 done or skipped, 2 error.
pub fn run(spec: &CellSpec, backend: &dyn Backend, out: &mut dyn Write) -> i32 {
    report(run_inner(spec, backend, out), out)
}

/// Why a job stopped early.
enum Outcome {
    /// The backend cannot run it: a skipped cell (exit 0).
    Skipped(String),
    /// The run's own input is unusable (an evaluation text): the parent stops the run.
    Refused(String),
    /// Anything else (exit 2).
    Error(String),
}

impl From<BackendError> for Outcome {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotCompiled { .. } | BackendError::Unsupported(_) => Outcome::Skipped(e.to_string()),
            e => Outcome::Error(e.to_string()),
        }
    }
}

/// Emits a job's final line and returns the exit code.
fn report(result: Result<(), Outcome>, out: &mut dyn Write) -> i32 {
    let (event, code) = match result {
        Ok(()) => return 0,
        Err(Outcome::Skipped(reason)) => (Event::Skipped { reason }, 0),
        Err(Outcome::Refused(message)) => (Event::Refused { message }, 2),
        Err(Outcome::Error(message)) => (Event::Error { message }, 2),
    };
    emit(out, &event);
    code
}

fn reference_inner(spec: &ReferenceSpec, backend: &dyn Backend, out: &mut dyn Write) -> Result<(), Outcome> {
    backend.check(&spec.model, &spec.load)?;
    let (path, header) =
        reference::ensure(spec, backend, &mut |line| phase(&mut *out, line.into())).map_err(|e| match e {
            ReferenceError::Eval(e @ (EvalError::TooShort { .. } | EvalError::Read { .. })) => {
                Outcome::Refused(e.to_string())
            }
            ReferenceError::Eval(EvalError::Backend(b)) => Outcome::from(b),
            e => Outcome::Error(e.to_string()),
        })?;
    let scored = header.sequences.iter().map(|s| s.scored()).sum();
    emit(out, &Event::Reference { path, sequences: header.sequences.len(), scored });
    let (peak_rss_kib, rss_anon_kib, rss_file_kib) = edgebench_probes::process::self_memory_kib();
    emit(
        out,
        &Event::Done { peak_rss_kib, rss_anon_kib, rss_file_kib, cpu_s: edgebench_probes::process::self_cpu_seconds() },
    );
    Ok(())
}

fn run_inner(spec: &CellSpec, backend: &dyn Backend, out: &mut dyn Write) -> Result<(), Outcome> {
    let load = spec.load().map_err(Outcome::Error)?;
    phase(out, "prepare".into());
    // Options parsed and support checked once here: an unsupported request is a skipped cell.
    let prepared = backend.prepare(&spec.model, &load)?;
    // The one time the child opens the file itself (backends open it in their timed loads): its header gives the
    // tokenizer and chat template now, its tensors the source fingerprint after the workload.
    let mut file = GgufFile::open(&spec.model.path).map_err(|e| Outcome::Error(e.to_string()))?;
    let tok =
        Tokenizer::from_gguf(&file.gguf).map_err(|e| Outcome::Error(format!("{}: {e}", spec.model.path.display())))?;
    let template = file.gguf.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string);
    // Not held through the measured repetitions, where it would count in the cell's memory.
    file.gguf.release_metadata();
    let prompt = spec.workload.prompt_ids(&tok, template.as_deref()).map_err(|e| Outcome::Error(e.to_string()))?;
    let prompt_note = spec.workload.prompt_note(template.as_deref());

    let started = Instant::now();
    let mut meters = CellMeters::start(&spec.energy, &spec.key.device);
    meters.idle_baseline(spec.energy.idle_s);
    let gpu_memory = GpuMemoryWatch::start(&spec.key.device, GPU_MEMORY_INTERVAL);
    let result = run_measured(spec, prepared.as_ref(), &tok, &prompt, prompt_note, &mut meters, started, out);
    // Energy and device memory measured up to a failure are still reported.
    let (energy, thermal) = meters.finish();
    emit(out, &Event::Energy(energy));
    emit(out, &Event::Thermal(thermal));
    if let Some(w) = gpu_memory {
        emit(out, &Event::DeviceMemory(w.finish()));
    }
    let model = result?;
    // Read with the model still resident, so RssAnon / RssFile show where its weights live, and before the drift
    // check, whose logit rows are not part of serving the workload.
    let (peak_rss_kib, rss_anon_kib, rss_file_kib) = edgebench_probes::process::self_memory_kib();
    // After the memory reading: hashing every weight needs buffers the workload does not.
    phase(out, "weights".into());
    emit(out, &Event::Weights(weights_check(model.as_ref(), &file)?));
    match &spec.drift {
        DriftPlan::Off => {}
        DriftPlan::Skip { reason } => emit(out, &Event::Drift(Drift::Skipped { reason: reason.clone() })),
        DriftPlan::Check { reference } => {
            phase(out, "drift".into());
            emit(out, &Event::Drift(edgebench_drift::check::run(model.as_ref(), &tok, reference)));
        }
    }
    drop(model);
    emit(
        out,
        &Event::Done { peak_rss_kib, rss_anon_kib, rss_file_kib, cpu_s: edgebench_probes::process::self_cpu_seconds() },
    );
    Ok(())
}

/// The fingerprint of the weights the loaded model runs beside the file's (both untimed).
fn weights_check(m: &dyn LoadedModel, file: &GgufFile) -> Result<WeightsCheck, Outcome> {
    let source = edgebench_gguf::fingerprint::of_file(file).map_err(|e| Outcome::Error(e.to_string()))?;
    Ok(match m.weights_fingerprint()? {
        Some((fingerprint, how)) => WeightsCheck { fingerprint, source, how },
        None if m.facts().converted.is_some() => {
            return Err(Outcome::Error(
                "the backend converted weights at load but reports no fingerprint of them".into(),
            ))
        }
        None => WeightsCheck { fingerprint: source.clone(), source, how: "runs the file's tensors as stored".into() },
    })
}

/// Loads the model and runs every repetition, reading the meters at each phase boundary of measured repetitions.
#[allow(clippy::too_many_arguments)]
fn run_measured(
    spec: &CellSpec,
    prepared: &dyn Prepared,
    tok: &Tokenizer,
    prompt: &[u32],
    prompt_note: Option<String>,
    meters: &mut CellMeters,
    started: Instant,
    out: &mut dyn Write,
) -> Result<Box<dyn LoadedModel>, Outcome> {
    let mut model: Option<Box<dyn LoadedModel>> = None;
    for l in 0..spec.load_repetitions {
        drop(model.take());
        phase(out, format!("load {}/{}", l + 1, spec.load_repetitions));
        let t = Instant::now();
        let m = prepared.load()?;
        let load_s = t.elapsed().as_secs_f64();
        let mut facts = m.facts();
        facts.notes.extend(prepared.notes().iter().cloned());
        facts.notes.extend(prompt_note.clone());
        emit(out, &Event::Loaded { load_s, facts: Box::new(facts) });
        model = Some(m);
    }
    let model = model.expect("load_repetitions >= 1");
    let vocab = model.facts().vocab_size;
    if vocab < tok.vocab().tokens.len() {
        return Err(Outcome::Error(format!(
            "backend reports {vocab} logits but the tokenizer has {} tokens",
            tok.vocab().tokens.len()
        )));
    }
    let mut first_measured: Option<Instant> = None;
    let mut i = 0;
    loop {
        let warmup = i < spec.warmup;
        let measured = i.saturating_sub(spec.warmup);
        let enough_time = match (spec.duration_s, first_measured) {
            (Some(d), Some(t)) => t.elapsed().as_secs_f64() >= d,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if !warmup && measured >= spec.repetitions && enough_time {
            break;
        }
        phase(
            out,
            match (warmup, spec.duration_s) {
                (true, _) => format!("warm-up {}/{}", i + 1, spec.warmup),
                (false, None) => format!("repetition {}/{}", measured + 1, spec.repetitions),
                (false, Some(d)) => {
                    format!("repetition {} (at least {}, for {d:.0} s)", measured + 1, spec.repetitions)
                }
            },
        );
        let mut session = model.new_session()?;
        let started_s = started.elapsed().as_secs_f64();
        if !warmup {
            first_measured.get_or_insert_with(Instant::now);
        }
        let mut at: Vec<Mark> = Vec::with_capacity(3);
        let mut on_phase = |p: Phase| {
            if !warmup && meters.any() {
                debug_assert_eq!(at.len(), p as usize, "phases arrive in order");
                at.push(meters.mark());
            }
        };
        let mut rep = run_repetition_marked(
            session.as_mut(),
            prompt,
            spec.workload.gen_tokens,
            Sampler::Greedy,
            vocab,
            &mut on_phase,
        )
        .map_err(|e| match e {
            crate::workload::WorkloadError::Backend(b) => Outcome::from(b),
            e => Outcome::Error(e.to_string()),
        })?;
        if let [a, b, c] = &at[..] {
            meters.record(a, b, c);
        }
        rep.warmup = warmup;
        rep.index = if warmup { i } else { measured };
        rep.started_s = started_s;
        if i == spec.warmup {
            let end = rep.generated.iter().position(|&t| tok.is_end(t)).unwrap_or(rep.generated.len());
            emit(out, &Event::Output { text: tok.decode(&rep.generated[..end]) });
        }
        emit(out, &Event::Repetition(rep));
        i += 1;
    }
    Ok(model)
}

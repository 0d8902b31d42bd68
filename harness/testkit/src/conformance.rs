//! The conformance suite every backend runs: properties of the session contract that must hold whatever the
//! kernels. Each check returns `Err(description)`; `run_all` runs them all and reports every failure.

use edgebench_core::tolerance::{LOGITS_BATCH_VARIANT, LOGITS_BATCH_VS_INCREMENTAL, LOGITS_REPEAT};
use edgebench_core::{Backend, BackendError, DeviceRequest, LoadOptions, LoadedModel, ModelSpec};

/// A named check.
pub type Check = (&'static str, fn(&dyn LoadedModel) -> Result<(), String>);

/// Every check, in order.
pub const CHECKS: &[Check] = &[
    ("logits have vocab_size entries", logits_len),
    ("forward_all rows equal step-by-step logits", forward_all_rows),
    ("fresh sessions repeat bit-identically", repeatable),
    ("one batch equals incremental steps", batch_vs_incremental),
    ("sessions are independent", independent_sessions),
    ("position counts tokens", position),
    ("bad input is an error", bad_input),
];

fn e(err: BackendError) -> String {
    err.to_string()
}

const PROMPT: &[u32] = &[5, 17, 42, 3, 99, 7, 64];

fn logits_len(m: &dyn LoadedModel) -> Result<(), String> {
    let mut s = m.new_session().map_err(e)?;
    let l = s.forward(PROMPT).map_err(e)?;
    let v = m.facts().vocab_size;
    if l.len() != v {
        return Err(format!("{} logits, vocab_size {v}", l.len()));
    }
    if l.iter().any(|x| !x.is_finite()) {
        return Err("non-finite logits".into());
    }
    Ok(())
}

/// Logits of a batch against incremental steps: to `LOGITS_BATCH_VS_INCREMENTAL`, or as distributions
/// (`LOGITS_BATCH_VARIANT`) where the backend declares its runtime batch-variant.
fn same_rows(m: &dyn LoadedModel, batch: &[f32], steps: &[f32]) -> Result<(), String> {
    match m.batch_variance() {
        None => LOGITS_BATCH_VS_INCREMENTAL.check(batch, steps).map(|_| ()),
        Some(why) => {
            let v = m.facts().vocab_size;
            let mut cmp = edgebench_stats::drift::LogitComparison::default();
            for (a, b) in batch.chunks(v).zip(steps.chunks(v)) {
                cmp.add(b, a);
            }
            LOGITS_BATCH_VARIANT
                .check(cmp.mean_kld(), cmp.top1_agreement())
                .map_err(|f| format!("{f} (declared batch-variant: {why})"))
        }
    }
}

fn forward_all_rows(m: &dyn LoadedModel) -> Result<(), String> {
    let v = m.facts().vocab_size;
    let mut a = m.new_session().map_err(e)?;
    a.forward(&PROMPT[..2]).map_err(e)?;
    let rows = a.forward_all(&PROMPT[2..]).map_err(e)?;
    if rows.len() != (PROMPT.len() - 2) * v {
        return Err(format!("{} values for {} tokens × vocab_size {v}", rows.len(), PROMPT.len() - 2));
    }
    if a.position() != PROMPT.len() {
        return Err(format!("position {} after {} tokens", a.position(), PROMPT.len()));
    }
    let mut b = m.new_session().map_err(e)?;
    b.forward(&PROMPT[..2]).map_err(e)?;
    let mut steps = Vec::with_capacity(rows.len());
    for (i, &t) in PROMPT[2..].iter().enumerate() {
        let step = b.forward(&[t]).map_err(e)?;
        if m.batch_variance().is_none() {
            same_rows(m, &rows[i * v..(i + 1) * v], &step).map_err(|m| format!("row {i}: {m}"))?;
        }
        steps.extend(step);
    }
    // A batch-variant runtime is judged over all rows together.
    same_rows(m, &rows, &steps)
}

fn repeatable(m: &dyn LoadedModel) -> Result<(), String> {
    let run = || -> Result<Vec<f32>, String> {
        let mut s = m.new_session().map_err(e)?;
        s.forward(PROMPT).map_err(e)?;
        s.forward(&[11]).map_err(e)
    };
    LOGITS_REPEAT.check(&run()?, &run()?).map(|_| ())
}

fn batch_vs_incremental(m: &dyn LoadedModel) -> Result<(), String> {
    let mut a = m.new_session().map_err(e)?;
    let batch = a.forward(PROMPT).map_err(e)?;
    let mut b = m.new_session().map_err(e)?;
    b.forward(&PROMPT[..3]).map_err(e)?;
    b.forward(&PROMPT[3..5]).map_err(e)?;
    b.forward(&PROMPT[5..6]).map_err(e)?;
    let inc = b.forward(&PROMPT[6..]).map_err(e)?;
    same_rows(m, &batch, &inc)
}

fn independent_sessions(m: &dyn LoadedModel) -> Result<(), String> {
    let mut alone = m.new_session().map_err(e)?;
    alone.forward(PROMPT).map_err(e)?;
    let want = alone.forward(&[8]).map_err(e)?;
    drop(alone);
    let mut a = m.new_session().map_err(e)?;
    let mut b = m.new_session().map_err(e)?;
    a.forward(PROMPT).map_err(e)?;
    b.forward(&[1, 2, 3, 4]).map_err(e)?;
    let got = a.forward(&[8]).map_err(e)?;
    LOGITS_REPEAT.check(&want, &got).map(|_| ())
}

fn position(m: &dyn LoadedModel) -> Result<(), String> {
    let mut s = m.new_session().map_err(e)?;
    s.forward(PROMPT).map_err(e)?;
    s.forward(&[1]).map_err(e)?;
    match s.position() {
        8 => Ok(()),
        p => Err(format!("position {p} after 8 tokens")),
    }
}

fn bad_input(m: &dyn LoadedModel) -> Result<(), String> {
    let f = m.facts();
    let mut s = m.new_session().map_err(e)?;
    if s.forward(&[]).is_ok() {
        return Err("forward(&[]) succeeded".into());
    }
    if s.forward(&[f.vocab_size as u32]).is_ok() {
        return Err("a token id equal to vocab_size was accepted".into());
    }
    let too_long = vec![1u32; f.context_length + 1];
    match m.new_session().map_err(e)?.forward(&too_long) {
        Err(BackendError::ContextFull { .. }) => Ok(()),
        other => Err(format!("context_length + 1 tokens gave {:?} instead of ContextFull", other.map(|l| l.len()))),
    }
}

/// Loads `model` on the CPU with `threads` and runs every check; returns all failures.
pub fn run_all(backend: &dyn Backend, model: &ModelSpec, threads: usize) -> Result<(), String> {
    let opts = LoadOptions { threads, device: DeviceRequest::cpu(), options: Default::default() };
    run_all_with(backend, model, threads, &opts)
}

/// [`run_all`] with the backend options (and device) of `opts`; `threads` overrides its thread count.
pub fn run_all_with(
    backend: &dyn Backend,
    model: &ModelSpec,
    threads: usize,
    opts: &LoadOptions,
) -> Result<(), String> {
    let opts = LoadOptions { threads, ..opts.clone() };
    let m = backend.load(model, &opts).map_err(|err| format!("load: {err}"))?;
    let failures: Vec<String> =
        CHECKS.iter().filter_map(|(name, check)| check(m.as_ref()).err().map(|why| format!("{name}: {why}"))).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} conformance failure(s) for {}:\n  {}", failures.len(), backend.name(), failures.join("\n  ")))
    }
}

//! The drift check a cell's child runs after its timed repetitions: every sequence of the cached reference
//! teacher-forced through the cell's loaded model, scored against the reference's rows.

use std::path::Path;
use std::time::Instant;

use edgebench_core::drift::{Drift, DriftResult};
use edgebench_core::LoadedModel;
use edgebench_stats::drift::Accumulator;

use crate::eval::{teacher_force, tokenizer_hash};
use crate::reference::read;
use edgebench_models::tokenizer::Tokenizer;

/// Scores `model` against the reference file at `path`. Never panics on bad input: a mismatched reference is
/// `Skipped` with the reason, a backend error `Failed`.
pub fn run(model: &dyn LoadedModel, tok: &Tokenizer, path: &Path) -> Drift {
    let reference = match read(path) {
        Ok(r) => r,
        Err(e) => return Drift::Failed { message: e.to_string() },
    };
    let h = &reference.header;
    if h.tokenizer != tokenizer_hash(tok) {
        return Drift::Skipped {
            reason: format!("the reference ({}) uses a different tokenizer from this model", h.reference),
        };
    }
    let vocab = model.facts().vocab_size;
    if vocab != h.vocab {
        return Drift::Skipped { reason: format!("{vocab} logits per position, the reference has {}", h.vocab) };
    }
    let started = Instant::now();
    let mut acc = Accumulator::default();
    let mut rows = reference.rows.iter();
    for (i, seq) in h.sequences.iter().enumerate().filter(|(_, s)| s.scored() > 0) {
        let logits = match model.new_session().and_then(|mut s| teacher_force(s.as_mut(), seq)) {
            Ok(l) => l,
            Err(e) => return Drift::Failed { message: format!("sequence {}: {e}", i + 1) },
        };
        if logits.len() != seq.scored() * vocab {
            return Drift::Failed {
                message: format!("sequence {}: {} logits for {} scored tokens", i + 1, logits.len(), seq.scored()),
            };
        }
        for (row, r) in logits.chunks_exact(vocab).zip(rows.by_ref()) {
            if let Err(e) = acc.add(r, row) {
                return Drift::Failed { message: format!("sequence {}: {e}", i + 1) };
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    match acc.finish() {
        Some(stats) => Drift::Measured(Box::new(DriftResult {
            level: h.level,
            reference: h.reference.clone(),
            reference_key: h.key.clone(),
            eval_set: h.eval_set.clone(),
            sequences: h.sequences.len(),
            seconds,
            stats,
        })),
        None => Drift::Skipped { reason: "the evaluation set has no scored tokens".into() },
    }
}

//! What the ort and tract backends share around their runtimes: one call's inputs (tokens, positions, logit rows,
//! causal mask), the mapping of export errors to backend errors, and the fingerprint of the file a
//! runtime loaded.

use std::path::Path;

use edgebench_core::BackendError;

use crate::io::{causal_bias, causal_bias_window};
use crate::OnnxError;

/// The inputs of one call to the graph, as flat row-major vectors.
pub struct Step {
    /// `input_ids`, `[1, seq]`.
    pub ids: Vec<i64>,
    /// `position_ids`, `[1, seq]`.
    pub positions: Vec<i64>,
    /// `logits_index`, `[rows]`.
    pub rows: Vec<i64>,
    /// New tokens.
    pub seq: usize,
    /// Cached plus new tokens.
    pub total: usize,
}

impl Step {
    /// The call appending `tokens` after `past` cached ones; `all` asks for every row's logits. The harness's
    /// checked session has refused empty input, ids outside the vocabulary and a full context.
    pub fn new(past: usize, tokens: &[u32], all: bool) -> Self {
        let seq = tokens.len();
        Self {
            ids: tokens.iter().map(|&t| t as i64).collect(),
            positions: (past..past + seq).map(|p| p as i64).collect(),
            rows: if all { (0..seq as i64).collect() } else { vec![seq as i64 - 1] },
            seq,
            total: past + seq,
        }
    }

    /// The primitive graph's `attention_bias`, `[seq, past + seq]` (the fused graph masks inside its attention).
    pub fn bias(&self) -> Vec<f32> {
        causal_bias(self.total - self.seq, self.seq)
    }

    /// The primitive graph's `attention_bias_sliding` for layers whose window is `window`.
    pub fn bias_sliding(&self, window: usize) -> Vec<f32> {
        causal_bias_window(self.total - self.seq, self.seq, Some(window))
    }
}

/// The ONNX backends' untimed `prepare`: the export of `model` found in the cache under `root` or written now,
/// handed to the timed load, with a note saying which.
pub fn prepare_export(
    root: &Path,
    model: &edgebench_core::ModelSpec,
    opts: crate::ExportOptions,
) -> Result<edgebench_core::Preparation<std::path::PathBuf>, BackendError> {
    let (path, note) = crate::cache::prepare(root, model, opts).map_err(export_error(&model.path))?;
    Ok(edgebench_core::Preparation { value: path, notes: vec![note] })
}

/// An export or cache failure as the harness sees it: `Unsupported` stays a skipped cell, the rest name the model.
pub fn export_error(model: &Path) -> impl FnOnce(OnnxError) -> BackendError + '_ {
    move |e| match e {
        OnnxError::Unsupported(m) => BackendError::Unsupported(m),
        e => BackendError::Load { path: model.display().to_string(), message: e.to_string() },
    }
}

/// The weight fingerprint of the ONNX file at `path` (the one a runtime loaded), with how it was obtained.
pub fn loaded_fingerprint(path: &Path, runtime: &str) -> Result<Option<(String, String)>, BackendError> {
    let err = |e: OnnxError| BackendError::Load { path: path.display().to_string(), message: e.to_string() };
    let m = crate::fingerprint::read_model(path).map_err(err)?;
    let fp = crate::fingerprint::fingerprint(&m, path).map_err(err)?;
    Ok(Some((fp, format!("decoded from the initializers of the ONNX file {runtime} loaded"))))
}

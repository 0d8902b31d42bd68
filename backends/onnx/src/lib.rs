//! edgebench's GGUF → ONNX exporter and what the ONNX backends (ort, tract) share: the graph's input and output
//! names (`io`), the cache of exported files (`cache`), and the fingerprint of the weights an ONNX file carries
//! (`fingerprint`), compared against the GGUF's own so "the same model" is checked, not assumed.
//!
//! Both graphs interpret every architecture `edgebench_gguf::arch::ModelDesc` describes (`export::RUNS`): llama,
//! qwen2, qwen3, gemma3 and phi3 blocks, written as `primitive` (standard operators, tract) or `fused` (ONNX Runtime's
//! contrib operators), their shared pieces in `block`.
//!
//! How each GGUF type is carried is decided in one place, `weights`: Q4_0 as com.microsoft `MatMulNBits` (4 bits,
//! blocks of 32, default zero point 8: exactly `d·(q−8)`); Q4_1 and Q4_K as `MatMulNBits` with the default zero
//! point 8 (`d·(q−8)`, Q4_K's per-32 scale `d·sc`) plus the per-block minimum recentred (`m + 8d`; Q4_K's
//! `−dmin·m + 8·d·sc`; zero points 0 and the minimum as it is where f32 cannot hold that exactly) as a second, f32
//! product of the activations' block sums (exact); Q8_0, Q5_0 and Q6_K as 8-bit `MatMulNBits` (zero points 128, 16
//! and 32; Q6_K in blocks of 16 with scales `d·sc`: exact) where products quantize activations to int8
//! (`accuracy_level=4`), otherwise dequantized to f32 — the same values, labelled "converted: <type> → f32"; F32 and
//! F16 as f32 `Gemm` weights (exact); other types dequantized where the reference decoder reads them. The embedding
//! table is an f32 `Gather` table (the same values), except in the fused graph (ONNX Runtime only), which looks Q4_0
//! and quantized Q8_0 tables up with `GatherBlockQuantized` in the bytes the output product's `MatMulNBits` reads
//! (`export::Ctx::embedding`).

pub mod backend;
mod block;
pub mod cache;
pub mod export;
pub mod fingerprint;
mod fused;
pub mod io;
mod primitive;
mod proto;
pub mod qdq;
pub mod scan;
pub mod weights;

use std::path::PathBuf;

pub use export::{export, ExportOptions, Exported};
pub use tract_onnx::pb;

/// Errors of export, cache and fingerprint.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The GGUF file is unreadable or malformed.
    #[error(transparent)]
    Gguf(#[from] edgebench_gguf::GgufError),
    /// The model is valid but this exporter cannot write it.
    #[error("cannot export to ONNX: {0}")]
    Unsupported(String),
    /// An ONNX file is not one this exporter wrote, or is damaged.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file system error.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> OnnxError + '_ {
    move |source| OnnxError::Io { path: path.to_path_buf(), source }
}

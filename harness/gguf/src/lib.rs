//! GGUF files: a reader that validates every field before use, a writer, reference (de)quantizers, the model
//! description every engine interprets ([`arch`]) and tiny synthetic models of each architecture for tests.
//!
//! The reader never panics on input, never allocates from an unchecked count and never reads past the end: every
//! count is bounded by the bytes that remain, every size is computed with checked arithmetic.

pub mod arch;
pub mod bytelevel;
mod error;
pub mod fingerprint;
pub mod quant;
mod reader;
pub mod requant;
pub mod synth;
mod types;
mod value;
mod writer;

pub use error::GgufError;
pub use reader::{parse, Gguf, GgufFile, TensorInfo};
pub use types::GgmlType;
pub use value::{Value, ValueType};
pub use writer::{GgufWriter, WriterTensor};

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the tensor data region when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a ggml tensor has.
pub const MAX_DIMS: usize = 4;

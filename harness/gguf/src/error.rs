//! Typed errors of the GGUF reader and writer; each names the field or tensor at fault and the byte offset.

use std::path::PathBuf;

/// Everything that can be wrong with a GGUF file.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    InFile { path: PathBuf, source: Box<GgufError> },
    #[error("truncated: {what} needs {need} bytes at offset {at}, file has {len}")]
    Truncated { what: String, at: u64, need: u64, len: u64 },
    #[error("not a GGUF file: magic is {found:?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported GGUF version {version} (supported: 2, 3)")]
    UnsupportedVersion { version: u32 },
    #[error("{what} count {count} at offset {at} cannot fit in the {remaining} bytes that remain")]
    CountTooLarge { what: String, count: u64, at: u64, remaining: u64 },
    #[error("string at offset {at} is not valid UTF-8")]
    InvalidUtf8 { at: u64 },
    #[error("unknown metadata value type {code} for key {key:?} at offset {at}")]
    UnknownValueType { key: String, code: u32, at: u64 },
    #[error("metadata key {key:?} has nested arrays, which edgebench does not accept")]
    NestedArray { key: String },
    #[error("duplicate metadata key {key:?}")]
    DuplicateKey { key: String },
    #[error("duplicate tensor name {name:?}")]
    DuplicateTensor { name: String },
    #[error("tensor {tensor:?} has unknown or unsupported ggml type id {code}")]
    UnknownTensorType { tensor: String, code: u32 },
    #[error("tensor {tensor:?} has {n_dims} dimensions (at most {max})")]
    TooManyDims { tensor: String, n_dims: u32, max: usize },
    #[error("tensor {tensor:?} has a zero dimension")]
    ZeroDim { tensor: String },
    #[error("tensor {tensor:?}: element count or byte size overflows")]
    DimOverflow { tensor: String },
    #[error("tensor {tensor:?}: first dimension {ne0} is not a multiple of the {ty} block size {block}")]
    PartialBlock { tensor: String, ne0: u64, ty: String, block: u64 },
    #[error("general.alignment is {alignment}: it must be a non-zero power of two")]
    BadAlignment { alignment: u64 },
    #[error("metadata key {key:?} has type {found}, expected {expected}")]
    WrongType { key: String, found: String, expected: String },
    #[error("tensor {tensor:?} data offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor { tensor: String, offset: u64, alignment: u64 },
    #[error("tensor {tensor:?} data [{start}, {end}) lies past the end of the file ({len} bytes)")]
    TensorOutOfBounds { tensor: String, start: u64, end: u64, len: u64 },
    #[error("tensors {a:?} and {b:?} overlap in the data region")]
    OverlappingTensors { a: String, b: String },
    #[error("no tensor named {name:?}")]
    MissingTensor { name: String },
    #[error("missing metadata key {key:?}")]
    MissingKey { key: String },
    #[error("invalid model: {0}")]
    Invalid(String),
}

impl GgufError {
    /// Attaches the file path to an error raised while parsing that file.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            e @ (GgufError::Io { .. } | GgufError::InFile { .. }) => e,
            e => GgufError::InFile { path: path.into(), source: Box::new(e) },
        }
    }
}

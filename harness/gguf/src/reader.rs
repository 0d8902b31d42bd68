//! Validating GGUF parser over a byte slice, and `GgufFile`, which maps a file and parses its header.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{GgmlType, GgufError, Value, ValueType, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};

type Result<T> = std::result::Result<T, GgufError>;

/// One tensor's header entry, validated against the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous (row) dimension.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Offset of the data from the start of the data region.
    pub offset: u64,
    /// Number of elements.
    pub n_elements: u64,
    /// Bytes of data.
    pub n_bytes: u64,
}

/// A parsed and validated GGUF header.
#[derive(Debug, Clone)]
pub struct Gguf {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Alignment of the data region and of every tensor offset.
    pub alignment: u64,
    /// Absolute offset of the data region.
    pub data_offset: u64,
    /// Length of the whole file in bytes.
    pub file_len: u64,
    key_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what.to_string(),
                at: self.pos as u64,
                need: n,
                len: self.buf.len() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a count of items of at least `min_bytes` each and checks they can fit in what remains.
    fn count(&mut self, what: &str, min_bytes: u64) -> Result<u64> {
        let at = self.pos as u64;
        let count = self.u64(what)?;
        let fits = count.checked_mul(min_bytes).is_some_and(|b| b <= self.remaining());
        if !fits {
            return Err(GgufError::CountTooLarge { what: what.into(), count, at, remaining: self.remaining() });
        }
        Ok(count)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.count(&format!("{what} length"), 1)?;
        let at = self.pos as u64;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { at })
    }

    fn value(&mut self, ty: ValueType, key: &str, in_array: bool) -> Result<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(key)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(key)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            ValueType::U32 => Value::U32(self.u32(key)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            ValueType::Bool => Value::Bool(self.array::<1>(key)?[0] != 0),
            ValueType::String => Value::String(self.string(key)?),
            ValueType::U64 => Value::U64(self.u64(key)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            ValueType::Array => {
                if in_array {
                    return Err(GgufError::NestedArray { key: key.into() });
                }
                let at = self.pos as u64;
                let code = self.u32(key)?;
                let elem = ValueType::from_code(code).ok_or_else(|| GgufError::UnknownValueType {
                    key: key.into(),
                    code,
                    at,
                })?;
                if elem == ValueType::Array {
                    return Err(GgufError::NestedArray { key: key.into() });
                }
                let n = self.count(&format!("array {key:?} element"), elem.min_bytes())?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem, key, true)?);
                }
                Value::Array(elem, items)
            }
        })
    }
}

/// Parses and validates a whole GGUF file held in memory (or mapped).
pub fn parse(buf: &[u8]) -> Result<Gguf> {
    let mut c = Cursor { buf, pos: 0 };
    let magic: [u8; 4] = c.array("magic")?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = c.u32("version")?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion { version });
    }
    // A tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
    let n_tensors_at = c.pos as u64;
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.count("metadata key-value", 8 + 4 + 1)?;
    if n_tensors.checked_mul(24).is_none_or(|b| b > c.remaining()) {
        return Err(GgufError::CountTooLarge {
            what: "tensor".into(),
            count: n_tensors,
            at: n_tensors_at,
            remaining: c.remaining(),
        });
    }

    let mut metadata = Vec::with_capacity(n_kv as usize);
    let mut key_index = HashMap::with_capacity(n_kv as usize);
    for _ in 0..n_kv {
        let key = c.string("metadata key")?;
        let at = c.pos as u64;
        let code = c.u32("metadata value type")?;
        let ty =
            ValueType::from_code(code).ok_or_else(|| GgufError::UnknownValueType { key: key.clone(), code, at })?;
        let value = c.value(ty, &key, false)?;
        if key_index.insert(key.clone(), metadata.len()).is_some() {
            return Err(GgufError::DuplicateKey { key });
        }
        metadata.push((key, value));
    }

    let alignment = match key_index.get("general.alignment").map(|&i| &metadata[i].1) {
        None => DEFAULT_ALIGNMENT,
        Some(v) => {
            let a = v.as_u64().ok_or_else(|| GgufError::WrongType {
                key: "general.alignment".into(),
                found: format!("{:?}", v.value_type()),
                expected: "unsigned integer".into(),
            })?;
            if a == 0 || !a.is_power_of_two() {
                return Err(GgufError::BadAlignment { alignment: a });
            }
            a
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut tensor_index = HashMap::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = c.string("tensor name")?;
        let n_dims = c.u32("tensor dimension count")?;
        if n_dims as usize > MAX_DIMS {
            return Err(GgufError::TooManyDims { tensor: name, n_dims, max: MAX_DIMS });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64("tensor dimension")?);
        }
        let code = c.u32("tensor type")?;
        let offset = c.u64("tensor offset")?;
        let ty = GgmlType::from_id(code).ok_or_else(|| GgufError::UnknownTensorType { tensor: name.clone(), code })?;
        if dims.contains(&0) {
            return Err(GgufError::ZeroDim { tensor: name });
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| GgufError::DimOverflow { tensor: name.clone() })?;
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % ty.block_size() != 0 {
            return Err(GgufError::PartialBlock { tensor: name, ne0, ty: ty.to_string(), block: ty.block_size() });
        }
        let n_bytes = ty.bytes_for(n_elements).ok_or_else(|| GgufError::DimOverflow { tensor: name.clone() })?;
        if offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor { tensor: name, offset, alignment });
        }
        if tensor_index.insert(name.clone(), tensors.len()).is_some() {
            return Err(GgufError::DuplicateTensor { name });
        }
        tensors.push(TensorInfo { name, dims, ty, offset, n_elements, n_bytes });
    }

    let file_len = buf.len() as u64;
    let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
    for t in &tensors {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        match (start, end) {
            (Some(_), Some(end)) if end <= file_len => {}
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: t.name.clone(),
                    start: data_offset.saturating_add(t.offset),
                    end: data_offset.saturating_add(t.offset).saturating_add(t.n_bytes),
                    len: file_len,
                })
            }
        }
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.offset);
    for w in by_offset.windows(2) {
        if w[1].offset < w[0].offset + w[0].n_bytes {
            return Err(GgufError::OverlappingTensors { a: w[0].name.clone(), b: w[1].name.clone() });
        }
    }

    Ok(Gguf { version, metadata, tensors, alignment, data_offset, file_len, key_index, tensor_index })
}

impl Gguf {
    /// Frees the metadata (a tokenizer's tables are most of a header's memory) and keeps the tensor table, for a
    /// reader that still reads tensors but no longer needs keys; [`Gguf::get`] then finds nothing.
    pub fn release_metadata(&mut self) {
        self.metadata = Vec::new();
        self.key_index = HashMap::new();
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| GgufError::MissingKey { key: key.into() })
    }

    fn wrong(&self, key: &str, expected: &str) -> GgufError {
        GgufError::WrongType {
            key: key.into(),
            found: self.get(key).map(|v| format!("{:?}", v.value_type())).unwrap_or_default(),
            expected: expected.into(),
        }
    }

    /// A required unsigned integer.
    pub fn u64(&self, key: &str) -> Result<u64> {
        self.require(key)?.as_u64().ok_or_else(|| self.wrong(key, "unsigned integer"))
    }

    /// A required number.
    pub fn f64(&self, key: &str) -> Result<f64> {
        self.require(key)?.as_f64().ok_or_else(|| self.wrong(key, "number"))
    }

    /// A required string.
    pub fn str(&self, key: &str) -> Result<&str> {
        self.require(key)?.as_str().ok_or_else(|| self.wrong(key, "string"))
    }

    /// A required array.
    pub fn array(&self, key: &str) -> Result<&[Value]> {
        self.require(key)?.as_array().ok_or_else(|| self.wrong(key, "array"))
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> Result<&str> {
        self.str("general.architecture")
    }

    /// A tensor info by name.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| GgufError::MissingTensor { name: name.into() })
    }

    /// Total number of weights over all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_elements).sum()
    }

    /// Weight bytes one decode step reads: every tensor once, except the input embedding table `token_embd.weight`
    /// (one row a token), which counts in full only when the file has no `output.weight` (tied: it is then also
    /// the output projection). Times decode tokens/s it is the weight bandwidth a backend reaches.
    pub fn decode_weight_bytes(&self) -> u64 {
        let tied = !self.tensor_index.contains_key("output.weight");
        self.tensors.iter().filter(|t| t.name != "token_embd.weight" || tied).map(|t| t.n_bytes).sum()
    }

    /// Tensor count per type, most common first.
    pub fn type_histogram(&self) -> Vec<(GgmlType, usize)> {
        let mut counts: HashMap<GgmlType, usize> = HashMap::new();
        for t in &self.tensors {
            *counts.entry(t.ty).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.id().cmp(&b.0.id())));
        v
    }

    /// The data of tensor `t` inside `buf`, the bytes this header was parsed from.
    pub fn tensor_data<'a>(&self, buf: &'a [u8], t: &TensorInfo) -> &'a [u8] {
        let start = (self.data_offset + t.offset) as usize;
        &buf[start..start + t.n_bytes as usize]
    }
}

/// A GGUF file on disk: validated header plus positioned reads of tensor data.
///
/// The header is parsed from a read-only memory map; tensor data is read with `pread` into buffers the caller
/// owns, so mapped file pages do not stay resident in the process once loading is done.
#[derive(Debug)]
pub struct GgufFile {
    /// Where the file is.
    pub path: PathBuf,
    /// The validated header.
    pub gguf: Gguf,
    file: File,
}

impl GgufFile {
    /// Opens and validates `path`; every error names the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io { path: path.clone(), source };
        let file = File::open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let gguf = if len < 64 {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, 0).map_err(io)?;
            parse(&buf)
        } else {
            // SAFETY: the map is read-only and lives only for this parse; a file truncated concurrently could
            // fault, which is the documented hazard of mapping files and out of scope for a benchmark tool.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
            parse(&map)
        }
        .map_err(|e| e.in_file(&path))?;
        Ok(Self { path, gguf, file })
    }

    /// Fills `buf` from the tensor data section at `offset` (relative to its start).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, self.gguf.data_offset + offset)
            .map_err(|source| GgufError::Io { path: self.path.clone(), source })
    }

    /// Reads the data of one tensor.
    pub fn read_tensor(&self, t: &TensorInfo) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; t.n_bytes as usize];
        self.file
            .read_exact_at(&mut buf, self.gguf.data_offset + t.offset)
            .map_err(|source| GgufError::Io { path: self.path.clone(), source })?;
        Ok(buf)
    }
}

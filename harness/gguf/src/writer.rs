//! GGUF writer: metadata and tensors out to bytes, with the alignment padding readers expect.

use std::io::Write;
use std::path::Path;

use crate::{GgmlType, GgufError, Value, DEFAULT_ALIGNMENT, MAGIC};

/// A tensor to write: ggml-order dimensions and already-encoded data.
#[derive(Debug, Clone)]
pub struct WriterTensor {
    /// Tensor name.
    pub name: String,
    /// Dimensions in ggml order (`dims[0]` contiguous).
    pub dims: Vec<u64>,
    /// Element type of `data`.
    pub ty: GgmlType,
    /// Encoded data; its length must match `dims` and `ty`.
    pub data: Vec<u8>,
}

/// Builds a GGUF (version 3) file.
#[derive(Debug, Clone, Default)]
pub struct GgufWriter {
    /// Metadata in the order it will be written.
    pub metadata: Vec<(String, Value)>,
    /// Tensors in the order they will be written.
    pub tensors: Vec<WriterTensor>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a metadata entry.
    pub fn kv(&mut self, key: &str, value: Value) -> &mut Self {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        self
    }

    /// Adds a tensor.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> &mut Self {
        self.tensors.push(WriterTensor { name: name.into(), dims: dims.to_vec(), ty, data });
        self
    }

    fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// Encodes the file; checks each tensor's data length against its dimensions and type.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let align = self.alignment();
        if align == 0 || !align.is_power_of_two() {
            return Err(GgufError::BadAlignment { alignment: align });
        }
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut out, k);
            out.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let n: u64 = t.dims.iter().product();
            if t.ty.bytes_for(n) != Some(t.data.len() as u64) {
                return Err(GgufError::Invalid(format!(
                    "tensor {:?}: {} bytes of data for {n} {} elements",
                    t.name,
                    t.data.len(),
                    t.ty
                )));
            }
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + t.data.len() as u64).div_ceil(align) * align;
        }
        pad(&mut out, align);
        let data_start = out.len() as u64;
        for (t, off) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + off) as usize, 0);
            out.extend_from_slice(&t.data);
        }
        pad(&mut out, align);
        Ok(out)
    }

    /// Writes the file to `path` (via a temporary file and rename, so a crash leaves no half file).
    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        let bytes = self.to_bytes()?;
        let io = |source| GgufError::Io { path: path.to_path_buf(), source };
        let tmp = path.with_extension("gguf.partial");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

fn pad(out: &mut Vec<u8>, align: u64) {
    let len = (out.len() as u64).div_ceil(align) * align;
    out.resize(len as usize, 0);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(ty, items) => {
            out.extend_from_slice(&(*ty as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, i);
            }
        }
    }
}

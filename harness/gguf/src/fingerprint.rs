//! Weight fingerprints: a SHA-256 of the dequantized values of every tensor, so two engines that claim to run
//! "the same model" can be checked to run the same numbers whatever container or block layout holds them.
//!
//! Definition (version 1): for each tensor, its digest is the SHA-256 of every dequantized value as f32 bits (LE) in
//! GGUF element order. The fingerprint is the SHA-256 of, for each tensor in byte order of its GGUF name: the name's
//! length (u64 LE) and bytes, the number of dimensions (u64 LE), each dimension in GGUF order (innermost first, u64
//! LE), and the tensor's digest. Tensor digests can be computed in any order (an engine hashes what it holds while
//! loading); the fingerprints are equal exactly when the names, shapes and the bits of every value are.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::{quant, GgufError, GgufFile};

/// Prefix of every fingerprint, naming the definition above.
pub const SCHEME: &str = "wfp1";

/// Values dequantized at a time by [`add_file`] (whole rows; 1 MiB of f32).
const CHUNK_VALUES: u64 = 1 << 18;

/// The digest of one tensor's values.
pub fn tensor_digest(values: &[f32]) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut buf = Vec::with_capacity(values.len().min(1 << 16) * 4);
    for chunk in values.chunks(1 << 16) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|v| v.to_bits().to_le_bytes()));
        h.update(&buf);
    }
    h.finalize().into()
}

/// Collects tensors in any order into a fingerprint.
#[derive(Default)]
pub struct Fingerprinter {
    tensors: BTreeMap<String, (Vec<u64>, [u8; 32])>,
}

impl Fingerprinter {
    /// An empty fingerprint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one tensor by its values, which must match the shape; a name may come once.
    pub fn tensor(&mut self, name: &str, dims: &[u64], values: &[f32]) -> Result<(), GgufError> {
        let n: u64 = dims.iter().product();
        if n != values.len() as u64 {
            return Err(GgufError::Invalid(format!(
                "fingerprint: tensor {name:?} has shape {dims:?} but {} values",
                values.len()
            )));
        }
        self.digest(name, dims, tensor_digest(values))
    }

    /// Adds one tensor by its digest ([`tensor_digest`]).
    pub fn digest(&mut self, name: &str, dims: &[u64], digest: [u8; 32]) -> Result<(), GgufError> {
        if self.tensors.insert(name.to_string(), (dims.to_vec(), digest)).is_some() {
            return Err(GgufError::Invalid(format!("fingerprint: tensor {name:?} added twice")));
        }
        Ok(())
    }

    /// Whether `name` was added.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The fingerprint: `wfp1:` and 64 hex digits.
    pub fn finish(self) -> String {
        let mut h = Sha256::new();
        for (name, (dims, digest)) in &self.tensors {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update((dims.len() as u64).to_le_bytes());
            for d in dims {
                h.update(d.to_le_bytes());
            }
            h.update(digest);
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        format!("{SCHEME}:{hex}")
    }

    /// Tensors added so far.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether no tensor was added.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// Adds every tensor of `file` not yet in `fp`, dequantized with the reference decoders of [`quant`].
pub fn add_file(fp: &mut Fingerprinter, file: &GgufFile) -> Result<(), GgufError> {
    for t in &file.gguf.tensors {
        if fp.contains(&t.name) {
            continue;
        }
        // Rows at a time, so the check costs a few MiB whatever the tensor's size (a cell run under a memory
        // limit must not be killed by its own fingerprint); the digest is the one over the whole tensor.
        let row = t.dims.first().copied().unwrap_or(1).max(1);
        let rows = t.n_elements / row;
        let per_chunk = (CHUNK_VALUES / row).max(1);
        let mut h = Sha256::new();
        let mut buf = Vec::new();
        let mut done = 0;
        while done < rows {
            let n = per_chunk.min(rows - done);
            let bytes =
                t.ty.bytes_for(n * row).ok_or_else(|| GgufError::Invalid(format!("tensor {:?}: size", t.name)))?;
            let at =
                t.ty.bytes_for(done * row).ok_or_else(|| GgufError::Invalid(format!("tensor {:?}: size", t.name)))?;
            buf.resize(bytes as usize, 0);
            file.read_at(&mut buf, t.offset + at)?;
            let values = quant::dequantize(t.ty, &buf, (n * row) as usize).map_err(|e| e.in_file(&file.path))?;
            h.update(values.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect::<Vec<u8>>());
            done += n;
        }
        if rows * row != t.n_elements {
            return Err(GgufError::Invalid(format!(
                "tensor {:?}: {} values are not whole rows of {row}",
                t.name, t.n_elements
            )));
        }
        fp.digest(&t.name, &t.dims, h.finalize().into())?;
    }
    Ok(())
}

/// SHA-256 of a file's bytes, hex (the identity of a model file, as opposed to the fingerprint of its values).
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The fingerprint of every tensor of a GGUF file, dequantized with the reference decoders of [`quant`].
pub fn of_file(file: &GgufFile) -> Result<String, GgufError> {
    let mut fp = Fingerprinter::new();
    add_file(&mut fp, file)?;
    Ok(fp.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_of_name_shape_or_value_bits_changes_the_fingerprint() {
        let fp = |name: &str, dims: &[u64], v: &[f32]| {
            let mut f = Fingerprinter::new();
            f.tensor(name, dims, v).unwrap();
            f.finish()
        };
        let base = fp("a", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        assert!(base.starts_with("wfp1:") && base.len() == 5 + 64);
        assert_eq!(base, fp("a", &[2, 2], &[1.0, 2.0, 3.0, 4.0]));
        assert_ne!(base, fp("b", &[2, 2], &[1.0, 2.0, 3.0, 4.0]));
        assert_ne!(base, fp("a", &[4, 1], &[1.0, 2.0, 3.0, 4.0]));
        assert_ne!(base, fp("a", &[2, 2], &[1.0, 2.0, 3.0, 4.000001]));
        assert_ne!(fp("a", &[1], &[0.0]), fp("a", &[1], &[-0.0]));
    }

    #[test]
    fn order_of_adding_does_not_matter_but_duplicates_and_wrong_counts_are_refused() {
        let mut a = Fingerprinter::new();
        a.tensor("b", &[1], &[0.5]).unwrap();
        a.tensor("a", &[1], &[0.25]).unwrap();
        let mut b = Fingerprinter::new();
        b.tensor("a", &[1], &[0.25]).unwrap();
        b.digest("b", &[1], tensor_digest(&[0.5])).unwrap();
        assert_eq!(a.finish(), b.finish());
        let mut f = Fingerprinter::new();
        f.tensor("b", &[1], &[0.0]).unwrap();
        assert!(f.tensor("b", &[1], &[0.0]).is_err());
        assert!(f.tensor("c", &[2], &[0.0]).is_err());
    }

    #[test]
    fn a_file_whose_metadata_was_released_keeps_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        crate::synth::tiny_model(&crate::synth::TinyConfig::default()).unwrap().write(&path).unwrap();
        let mut f = GgufFile::open(&path).unwrap();
        let before = of_file(&f).unwrap();
        assert!(f.gguf.get("general.architecture").is_some());
        f.gguf.release_metadata();
        assert!(f.gguf.get("general.architecture").is_none() && f.gguf.metadata.is_empty());
        assert_eq!(of_file(&f).unwrap(), before);
    }
}

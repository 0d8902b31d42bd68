//! Requantizing a whole GGUF file: every 2-D weight decoded with the scalar reference dequantizer and re-encoded to
//! one target type (like `llama-quantize --pure`), except that a K-quant target falls back where a row is not whole
//! super-blocks of 256, as llama.cpp's quantizer does (Q4_K to Q5_0, Q6_K to Q8_0); 1-D tensors (norms) keep their
//! type; metadata is copied, with the file type updated and where the file came from recorded.

use std::collections::BTreeMap;

use crate::quant::{dequantize, quantize};
use crate::{GgmlType, GgufError, GgufFile, GgufWriter, Value};

/// Metadata key: the predominant weight type of the source file (e.g. `Q4_1`).
pub const KEY_FROM: &str = "edgebench.requantized_from";
/// Metadata key: the source file's name and SHA-256, and the tool that converted it.
pub const KEY_SOURCE: &str = "edgebench.requantized_source";

/// Types [`requantize`] writes.
pub const TARGETS: &[GgmlType] = &[
    GgmlType::Q8_0,
    GgmlType::Q6K,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q5K,
    GgmlType::Q4K,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::F16,
    GgmlType::F32,
];

/// The type a tensor with rows of `row` values gets for target `to`: `to`, or llama.cpp's fallback for a K-quant
/// whose super-block of 256 does not divide the row (`llama_tensor_get_type`: Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0).
pub fn target_for_row(to: GgmlType, row: u64) -> GgmlType {
    match to {
        GgmlType::Q4K if !row.is_multiple_of(256) => GgmlType::Q5_0,
        GgmlType::Q5K if !row.is_multiple_of(256) => GgmlType::Q5_1,
        GgmlType::Q6K if !row.is_multiple_of(256) => GgmlType::Q8_0,
        t => t,
    }
}

/// llama.cpp's `general.file_type` (`llama_ftype`) for a file whose weights are all `ty`.
pub fn llama_file_type(ty: GgmlType) -> Option<u32> {
    Some(match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::Q5_0 => 8,
        GgmlType::Q5_1 => 9,
        // llama.cpp's nearest "mostly" types: Q4_K_S and Q6_K.
        GgmlType::Q4K => 14,
        GgmlType::Q5K => 16,
        GgmlType::Q6K => 18,
        _ => return None,
    })
}

/// The type most 2-D weights of a file have (by element count), e.g. `Q4_1` for a Q4_1 file with a Q8_0 embedding.
pub fn predominant_weight_type(file: &GgufFile) -> Option<GgmlType> {
    let mut by_type: BTreeMap<GgmlType, u64> = BTreeMap::new();
    for t in file.gguf.tensors.iter().filter(|t| t.dims.len() == 2) {
        *by_type.entry(t.ty).or_default() += t.n_elements;
    }
    by_type.into_iter().max_by_key(|&(_, n)| n).map(|(t, _)| t)
}

/// What a conversion did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequantReport {
    /// Tensors converted, by `FROM→TO`.
    pub converted: BTreeMap<String, usize>,
    /// Tensors written as they were, with the reason.
    pub kept: Vec<(String, String)>,
}

/// Converts every 2-D weight of `file` to `to`; `source` (file name, SHA-256) is recorded under [`KEY_SOURCE`].
pub fn requantize(file: &GgufFile, to: GgmlType, source: &str) -> Result<(GgufWriter, RequantReport), GgufError> {
    let ftype = llama_file_type(to).filter(|_| TARGETS.contains(&to)).ok_or_else(|| {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name()).collect();
        GgufError::Invalid(format!("cannot requantize to {to} ({})", names.join(", ")))
    })?;
    let from = predominant_weight_type(file).ok_or_else(|| GgufError::Invalid("the file has no 2-D weights".into()))?;
    let mut w = GgufWriter::new();
    for (k, v) in &file.gguf.metadata {
        w.kv(k, v.clone());
    }
    w.kv("general.file_type", Value::U32(ftype));
    w.kv(KEY_FROM, Value::String(from.name().to_string()));
    w.kv(KEY_SOURCE, Value::String(source.to_string()));
    let mut report = RequantReport::default();
    for t in &file.gguf.tensors {
        let data = file.read_tensor(t)?;
        let row = t.dims.first().copied().unwrap_or(0);
        let to = target_for_row(to, row);
        let keep = |why: &str| (t.name.clone(), why.to_string());
        let reason = if t.dims.len() != 2 {
            Some(keep("not a 2-D weight"))
        } else if t.ty == to {
            Some(keep("already the target type"))
        } else if row % to.block_size() != 0 {
            Some(keep(&format!("rows of {row} are not whole {to} blocks of {}", to.block_size())))
        } else {
            None
        };
        match reason {
            Some(k) => {
                report.kept.push(k);
                w.tensor(&t.name, &t.dims, t.ty, data);
            }
            None => {
                let x = dequantize(t.ty, &data, t.n_elements as usize)
                    .map_err(|e| GgufError::Invalid(format!("tensor {}: {e}", t.name)))?;
                w.tensor(&t.name, &t.dims, to, quantize(to, &x)?);
                *report.converted.entry(format!("{}→{}", t.ty, to)).or_default() += 1;
            }
        }
    }
    Ok((w, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{tiny_model, TinyConfig};

    fn tiny(dir: &std::path::Path) -> GgufFile {
        let p = dir.join("tiny.gguf");
        tiny_model(&TinyConfig::default()).unwrap().write(&p).unwrap();
        GgufFile::open(&p).unwrap()
    }

    #[test]
    fn converts_every_weight_and_records_where_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let src = tiny(dir.path());
        assert_eq!(predominant_weight_type(&src), Some(GgmlType::Q4_1));
        let (w, report) = requantize(&src, GgmlType::Q8_0, "tiny.gguf sha256 00").unwrap();
        let out = dir.path().join("q8.gguf");
        w.write(&out).unwrap();
        let q8 = GgufFile::open(&out).unwrap();
        assert_eq!(q8.gguf.str(KEY_FROM).unwrap(), "Q4_1");
        assert_eq!(q8.gguf.u64("general.file_type").unwrap(), 7);
        assert!(q8.gguf.str(KEY_SOURCE).unwrap().contains("tiny.gguf"));
        for t in &q8.gguf.tensors {
            let want = if t.dims.len() == 2 { GgmlType::Q8_0 } else { src.gguf.tensor(&t.name).unwrap().ty };
            assert_eq!(t.ty, want, "{}", t.name);
        }
        // The embedding was Q8_0 already; every Q4_1 matrix converted.
        assert_eq!(report.converted.keys().collect::<Vec<_>>(), ["Q4_1→Q8_0"]);
        assert!(report.kept.iter().any(|(n, why)| n == "token_embd.weight" && why.contains("already")));
        // Q4_1 values re-encoded as Q8_0 decode to within Q8_0's half step of the originals.
        let (a, b) = (src.gguf.tensor("blk.0.attn_q.weight").unwrap(), q8.gguf.tensor("blk.0.attn_q.weight").unwrap());
        let x = dequantize(a.ty, &src.read_tensor(a).unwrap(), a.n_elements as usize).unwrap();
        let y = dequantize(b.ty, &q8.read_tensor(b).unwrap(), b.n_elements as usize).unwrap();
        for (xb, yb) in x.chunks(32).zip(y.chunks(32)) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(xb.iter().zip(yb).all(|(p, q)| (p - q).abs() <= amax / 127.0 * 0.5 + amax * 1e-3 + 1e-7));
        }
    }

    #[test]
    fn refuses_what_it_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let e = requantize(&tiny(dir.path()), GgmlType::Q3K, "x").unwrap_err().to_string();
        assert!(e.contains("cannot requantize to Q3_K") && e.contains("Q4_K"), "{e}");
    }

    /// K-quant targets write rows of whole super-blocks as the target and fall back as llama.cpp does elsewhere.
    #[test]
    fn k_quant_targets_fall_back_where_rows_are_not_whole_super_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wide.gguf");
        // Rows of 256 (n_embd) and 128 (n_ff, the down projection's input).
        let cfg = TinyConfig { n_embd: 256, n_ff: 128, n_head: 4, n_head_kv: 2, ..TinyConfig::default() };
        tiny_model(&cfg).unwrap().write(&p).unwrap();
        let src = GgufFile::open(&p).unwrap();
        for (to, fallback) in
            [(GgmlType::Q4K, GgmlType::Q5_0), (GgmlType::Q5K, GgmlType::Q5_1), (GgmlType::Q6K, GgmlType::Q8_0)]
        {
            let (w, report) = requantize(&src, to, "wide.gguf").unwrap();
            let out = dir.path().join(format!("{to}.gguf"));
            w.write(&out).unwrap();
            let q = GgufFile::open(&out).unwrap();
            assert_eq!(q.gguf.tensor("blk.0.attn_q.weight").unwrap().ty, to);
            assert_eq!(q.gguf.tensor("blk.0.ffn_down.weight").unwrap().ty, fallback, "rows of 128");
            assert!(report.converted.keys().any(|k| k.ends_with(&format!("→{fallback}"))), "{report:?}");
            let (a, b) =
                (src.gguf.tensor("blk.1.ffn_up.weight").unwrap(), q.gguf.tensor("blk.1.ffn_up.weight").unwrap());
            let x = dequantize(a.ty, &src.read_tensor(a).unwrap(), a.n_elements as usize).unwrap();
            let y = dequantize(b.ty, &q.read_tensor(b).unwrap(), b.n_elements as usize).unwrap();
            let (num, den) = x
                .iter()
                .zip(&y)
                .fold((0f64, 0f64), |(n, d), (p, q)| (n + ((p - q) as f64).powi(2), d + (*p as f64).powi(2)));
            assert!((num / den).sqrt() < 0.1, "{to}: relative RMS error {}", (num / den).sqrt());
        }
    }
}

//! How each GGUF weight type is carried in the ONNX graph (`encode`), and the values an ONNX file's initializers
//! stand for under ONNX's own semantics (`decode_nbits4`), which the fingerprint uses. The decoder follows the
//! com.microsoft `MatMulNBits` definition, not the GGUF layout, so a packing mistake in `encode` changes the
//! fingerprint instead of hiding.

use edgebench_gguf::{quant, GgmlType};
use half::f16;

use crate::OnnxError;

/// Weights per quantization block, in GGUF and in the exported `MatMulNBits` nodes.
pub const BLOCK: usize = 32;

/// A linear weight of `n` output rows and `k` inputs, as carried in the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Carried {
    /// `MatMulNBits` (bits 4, block 32): codes `[n, k/32, 16]` (element `i` of a block in byte `i/2`, low nibble
    /// first), f32 scales `[n·k/32]`, packed 4-bit zero points `[n·⌈(k/32)/2⌉]` (absent: 8), and an optional f32
    /// per-block minimum `[n, k/32]` added to every weight of its block. Weight = `(code − zero) · scale + min`.
    Nbits4 {
        /// Packed codes.
        codes: Vec<u8>,
        /// One scale per block.
        scales: Vec<f32>,
        /// Packed zero points, or `None` for the default 8.
        zero_points: Option<Vec<u8>>,
        /// One minimum per block (Q4_1), or `None`.
        mins: Option<Vec<f32>>,
    },
    /// `MatMulNBits` (bits 8, block 32) for Q8_0: codes `[n, k/32, 32]` (the signed 8-bit value plus 128, one
    /// byte each), f32 scales `[n·k/32]`, zero points 128 `[n·k/32]`. Weight = `(code − 128) · scale` = `q · d`,
    /// the GGUF's value bit for bit.
    Nbits8 {
        /// One byte per weight.
        codes: Vec<u8>,
        /// One scale per block.
        scales: Vec<f32>,
    },
    /// Plain f32 values, `[n, k]` row-major.
    Float(Vec<f32>),
}

/// Encodes Q8_0 data of `n` rows of `k` values as 8-bit `MatMulNBits` inputs (`Carried::Nbits8`).
pub fn encode_q8_0(data: &[u8], n: usize, k: usize) -> Result<Carried, OnnxError> {
    if !k.is_multiple_of(BLOCK) {
        return Err(OnnxError::Unsupported(format!("Q8_0 rows of {k} values (not whole blocks of {BLOCK})")));
    }
    if data.len() != n * (k / BLOCK) * 34 {
        return Err(OnnxError::Unsupported(format!("Q8_0 data of {} bytes for {n}×{k}", data.len())));
    }
    let mut codes = Vec::with_capacity(n * k);
    let mut scales = Vec::with_capacity(n * k / BLOCK);
    for b in data.chunks_exact(34) {
        scales.push(f16::from_le_bytes([b[0], b[1]]).to_f32());
        codes.extend(b[2..].iter().map(|&q| (q as i8 as i16 + 128) as u8));
    }
    Ok(Carried::Nbits8 { codes, scales })
}

/// The weights `[n, k]` that 8-bit `MatMulNBits` inputs (codes, scales, one zero point per block) stand for.
pub fn decode_nbits8(codes: &[u8], scales: &[f32], zero_points: &[u8], n: usize, k: usize) -> Result<Vec<f32>, String> {
    if !k.is_multiple_of(BLOCK) {
        return Err(format!("K={k} is not whole blocks of {BLOCK}"));
    }
    let nb = k / BLOCK;
    if codes.len() != n * k || scales.len() != n * nb || zero_points.len() != n * nb {
        return Err(format!(
            "{} code bytes, {} scales and {} zero points for N={n}, K={k}",
            codes.len(),
            scales.len(),
            zero_points.len()
        ));
    }
    Ok(codes
        .chunks_exact(BLOCK)
        .zip(scales.iter().zip(zero_points))
        .flat_map(|(c, (&s, &z))| c.iter().map(move |&q| (q as f32 - z as f32) * s))
        .collect())
}

/// How a type is carried, for reports: `None` when exact in its own representation, else the conversion.
pub fn conversion(ty: GgmlType) -> Option<String> {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::F32 | GgmlType::F16 => None,
        other => Some(format!("{other} → f32 (dequantized: the same values, 32 bits each)")),
    }
}

/// Encodes GGUF tensor data of type `ty` holding `n` rows of `k` values.
pub fn encode(ty: GgmlType, data: &[u8], n: usize, k: usize) -> Result<Carried, OnnxError> {
    let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            if !k.is_multiple_of(BLOCK) {
                return Err(OnnxError::Unsupported(format!("{ty} rows of {k} values (not whole blocks of {BLOCK})")));
            }
            let nb = k / BLOCK;
            let block_bytes = if ty == GgmlType::Q4_0 { 18 } else { 20 };
            if data.len() != n * nb * block_bytes {
                return Err(OnnxError::Unsupported(format!("{ty} data of {} bytes for {n}×{k}", data.len())));
            }
            let mut codes = Vec::with_capacity(n * nb * 16);
            let mut scales = Vec::with_capacity(n * nb);
            let mut mins = Vec::new();
            for b in data.chunks_exact(block_bytes) {
                scales.push(h(&b[..2]));
                let qs = if ty == GgmlType::Q4_1 {
                    mins.push(h(&b[2..4]));
                    &b[4..]
                } else {
                    &b[2..]
                };
                // GGUF: byte j holds element j (low nibble) and element j+16 (high nibble).
                let q = |i: usize| if i < 16 { qs[i] & 0xf } else { qs[i - 16] >> 4 };
                codes.extend((0..16).map(|j| q(2 * j) | (q(2 * j + 1) << 4)));
            }
            Ok(if ty == GgmlType::Q4_1 {
                Carried::Nbits4 { codes, scales, zero_points: Some(vec![0; n * nb.div_ceil(2)]), mins: Some(mins) }
            } else {
                Carried::Nbits4 { codes, scales, zero_points: None, mins: None }
            })
        }
        other => Ok(Carried::Float(quant::dequantize(other, data, n * k)?)),
    }
}

/// The weights `[n, k]` that `MatMulNBits` inputs stand for (plus the per-block minimum of a Q4_1 export).
pub fn decode_nbits4(
    codes: &[u8],
    scales: &[f32],
    zero_points: Option<&[u8]>,
    mins: Option<&[f32]>,
    n: usize,
    k: usize,
) -> Result<Vec<f32>, String> {
    if !k.is_multiple_of(BLOCK) {
        return Err(format!("K={k} is not whole blocks of {BLOCK}"));
    }
    let nb = k / BLOCK;
    let zp_row = nb.div_ceil(2);
    if codes.len() != n * nb * 16 || scales.len() != n * nb {
        return Err(format!("{} code bytes and {} scales for N={n}, K={k}", codes.len(), scales.len()));
    }
    if zero_points.is_some_and(|z| z.len() != n * zp_row) || mins.is_some_and(|m| m.len() != n * nb) {
        return Err(format!("zero points or minimums do not match N={n}, K={k}"));
    }
    let mut out = Vec::with_capacity(n * k);
    for row in 0..n {
        for blk in 0..nb {
            let zero = match zero_points {
                Some(z) => (z[row * zp_row + blk / 2] >> (4 * (blk % 2))) & 0xf,
                None => 8,
            } as f32;
            let scale = scales[row * nb + blk];
            let min = mins.map(|m| m[row * nb + blk]);
            let block = &codes[(row * nb + blk) * 16..][..16];
            for i in 0..BLOCK {
                let code = ((block[i / 2] >> (4 * (i % 2))) & 0xf) as f32;
                let w = (code - zero) * scale;
                out.push(match min {
                    Some(m) => w + m,
                    None => w,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Encoding then decoding under MatMulNBits semantics gives the GGUF reference values bit for bit.
        #[test]
        fn nbits4_carries_q4_0_and_q4_1_exactly(seed in 0u64..1000, rows in 1usize..4, blocks in 1usize..4) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let k = blocks * BLOCK;
            let x: Vec<f32> = (0..rows * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            for ty in [GgmlType::Q4_0, GgmlType::Q4_1] {
                let data = quant::quantize(ty, &x).unwrap();
                let reference = quant::dequantize(ty, &data, x.len()).unwrap();
                let Carried::Nbits4 { codes, scales, zero_points, mins } = encode(ty, &data, rows, k).unwrap() else {
                    panic!("{ty} is carried as MatMulNBits")
                };
                let got = decode_nbits4(&codes, &scales, zero_points.as_deref(), mins.as_deref(), rows, k).unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&got), bits(&reference));
            }
        }
    }

    proptest! {
        /// Q8_0 as 8-bit MatMulNBits decodes to the GGUF reference values bit for bit.
        #[test]
        fn nbits8_carries_q8_0_exactly(seed in 0u64..1000, rows in 1usize..4, blocks in 1usize..4) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let k = blocks * BLOCK;
            let x: Vec<f32> = (0..rows * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let data = quant::quantize(GgmlType::Q8_0, &x).unwrap();
            let reference = quant::dequantize(GgmlType::Q8_0, &data, x.len()).unwrap();
            let Carried::Nbits8 { codes, scales } = encode_q8_0(&data, rows, k).unwrap() else { panic!() };
            let zero = vec![128u8; scales.len()];
            let got = decode_nbits8(&codes, &scales, &zero, rows, k).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got), bits(&reference));
        }
    }

    #[test]
    fn other_types_are_dequantized_and_labelled() {
        assert!(conversion(GgmlType::Q8_0).unwrap().contains("Q8_0 → f32"));
        assert_eq!(conversion(GgmlType::Q4_1), None);
        let x: Vec<f32> = (0..64).map(|i| i as f32 / 10.0).collect();
        let data = quant::quantize(GgmlType::Q8_0, &x).unwrap();
        let Carried::Float(v) = encode(GgmlType::Q8_0, &data, 2, 32).unwrap() else { panic!() };
        assert_eq!(v, quant::dequantize(GgmlType::Q8_0, &data, 64).unwrap());
        assert!(matches!(encode(GgmlType::Q4_0, &[0; 18], 1, 16), Err(OnnxError::Unsupported(_))));
    }
}

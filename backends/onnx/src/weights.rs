//! How each GGUF weight type is carried in the ONNX graph (`encode`, `encode_nbits8`), and the values an ONNX file's
//! initializers stand for under ONNX's own semantics (`decode_nbits4`, `decode_nbits8`), which the fingerprint uses.
//! The decoders follow the com.microsoft `MatMulNBits` definition, not the GGUF layout, so a packing mistake in an
//! encoder changes the fingerprint instead of hiding.
//!
//! Exact carriage, type by type (weight = `(code − zero) · scale [+ min]`, f32 arithmetic, the GGUF reference
//! decoder's value bit for bit): Q4_0 4-bit (zero 8, scale d); Q4_1 4-bit (zero 8, scale d, min m + 8d); Q4_K 4-bit
//! per 32 values (zero 8, scale d·sc, min −dmin·m + 8·d·sc); Q4_1 and Q4_K with zero 0 and the minimum as it is
//! where some block's recentred minimum would not give its values bit for bit; Q8_0 8-bit (code q+128, zero 128,
//! scale d); Q5_0 8-bit (codes 0..31, zero 16, scale d); Q6_K 8-bit in blocks of 16 (codes 0..63, zero 32, scale d·sc).

use edgebench_gguf::{quant, GgmlType};
use half::f16;

use crate::OnnxError;

/// Weights per quantization block, in GGUF and in the exported `MatMulNBits` nodes (Q6_K's: `Q6K_BLOCK`).
pub const BLOCK: usize = 32;

/// Weights per block of a Q6_K matrix carried as 8-bit `MatMulNBits` (one signed scale per 16 values).
pub const Q6K_BLOCK: usize = 16;

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
        /// One minimum per block (Q4_1, Q4_K), or `None`.
        mins: Option<Vec<f32>>,
    },
    /// `MatMulNBits` (bits 8, blocks of `block`): codes `[n, k/block, block]` (one byte each), f32 scales
    /// `[n·k/block]`, one zero point byte per block `[n·k/block]`. Weight = `(code − zero) · scale`.
    Nbits8 {
        /// One byte per weight.
        codes: Vec<u8>,
        /// One scale per block.
        scales: Vec<f32>,
        /// One zero point per block.
        zero_points: Vec<u8>,
        /// Weights per block.
        block: usize,
    },
    /// Plain f32 values, `[n, k]` row-major.
    Float(Vec<f32>),
}

fn whole(ty: GgmlType, data: &[u8], n: usize, k: usize) -> Result<(), OnnxError> {
    let b = ty.block_size() as usize;
    if !k.is_multiple_of(b) || !k.is_multiple_of(BLOCK) {
        return Err(OnnxError::Unsupported(format!("{ty} rows of {k} values (not whole blocks of {b})")));
    }
    if ty.bytes_for((n * k) as u64) != Some(data.len() as u64) {
        return Err(OnnxError::Unsupported(format!("{ty} data of {} bytes for {n}×{k}", data.len())));
    }
    Ok(())
}

/// Whether `encode_nbits8` carries type `ty` exactly.
pub fn has_nbits8(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q8_0 | GgmlType::Q5_0 | GgmlType::Q6K)
}

/// Encodes Q8_0, Q5_0 or Q6_K data of `n` rows of `k` values as 8-bit `MatMulNBits` inputs (`Carried::Nbits8`).
pub fn encode_nbits8(ty: GgmlType, data: &[u8], n: usize, k: usize) -> Result<Carried, OnnxError> {
    whole(ty, data, n, k)?;
    let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut codes = Vec::with_capacity(n * k);
    let mut scales = Vec::new();
    let mut zero_points = Vec::new();
    let block = match ty {
        GgmlType::Q8_0 => {
            for b in data.chunks_exact(34) {
                scales.push(h(&b[..2]));
                codes.extend(b[2..].iter().map(|&q| (q as i8 as i16 + 128) as u8));
            }
            zero_points.resize(scales.len(), 128);
            BLOCK
        }
        GgmlType::Q5_0 => {
            for b in data.chunks_exact(22) {
                scales.push(h(&b[..2]));
                codes.extend(quant::q5_values(&b[2..]));
            }
            zero_points.resize(scales.len(), 16);
            BLOCK
        }
        GgmlType::Q6K => {
            // 256 values: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 signed scales, f16 d. Value at
            // `128·half + 32·j + l` takes its low nibble from byte `64·half + 32·(j%2) + l` (high nibble when j ≥ 2),
            // its high bits from bits `2j` of byte `128 + 32·half + l`, and its scale from sub-block `pos / 16`.
            for b in data.chunks_exact(210) {
                let d = h(&b[208..210]);
                scales.extend((0..16).map(|i| d * b[192 + i] as i8 as f32));
                for half in 0..2 {
                    let (ql, qh) = (&b[64 * half..64 * half + 64], &b[128 + 32 * half..128 + 32 * half + 32]);
                    for j in 0..4 {
                        codes.extend((0..32).map(|l| {
                            let low = ql[32 * (j % 2) + l] >> (4 * (j / 2)) & 0xf;
                            low | (((qh[l] >> (2 * j)) & 3) << 4)
                        }));
                    }
                }
            }
            zero_points.resize(scales.len(), 32);
            Q6K_BLOCK
        }
        other => return Err(OnnxError::Unsupported(format!("{other} has no 8-bit MatMulNBits form"))),
    };
    Ok(Carried::Nbits8 { codes, scales, zero_points, block })
}

/// The weights `[n, k]` that 8-bit `MatMulNBits` inputs (codes, scales, one zero point per block of `block`)
/// stand for.
pub fn decode_nbits8(
    codes: &[u8],
    scales: &[f32],
    zero_points: &[u8],
    n: usize,
    k: usize,
    block: usize,
) -> Result<Vec<f32>, String> {
    if block == 0 || !k.is_multiple_of(block) {
        return Err(format!("K={k} is not whole blocks of {block}"));
    }
    let nb = k / block;
    if codes.len() != n * k || scales.len() != n * nb || zero_points.len() != n * nb {
        return Err(format!(
            "{} code bytes, {} scales and {} zero points for N={n}, K={k}",
            codes.len(),
            scales.len(),
            zero_points.len()
        ));
    }
    Ok(codes
        .chunks_exact(block)
        .zip(scales.iter().zip(zero_points))
        .flat_map(|(c, (&s, &z))| c.iter().map(move |&q| (q as f32 - z as f32) * s))
        .collect())
}

/// How a type is carried, for reports: `None` when exact in its own representation whatever the graph, else the
/// conversion (8-bit types are exact only where the exporter writes them as 8-bit `MatMulNBits`).
pub fn conversion(ty: GgmlType) -> Option<String> {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4K | GgmlType::F32 | GgmlType::F16 => None,
        other => Some(format!("{other} → f32 (dequantized: the same values, 32 bits each)")),
    }
}

/// Scale and minimum `j` (of 8) of a Q4_K block: 6 bits each, packed in its 12 bytes (ggml's `get_scale_min_k4`).
fn q4_k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Encodes GGUF tensor data of type `ty` holding `n` rows of `k` values: 4-bit types as `Carried::Nbits4`, the
/// rest as f32 (`encode_nbits8` writes the 8-bit form where the exporter wants it).
pub fn encode(ty: GgmlType, data: &[u8], n: usize, k: usize) -> Result<Carried, OnnxError> {
    let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    // Two 4-bit codes per byte, element `i` of a block of 32 in byte `i/2`, low nibble first.
    let pack = |q: &dyn Fn(usize) -> u8| (0..16).map(move |j| q(2 * j) | (q(2 * j + 1) << 4)).collect::<Vec<u8>>();
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            whole(ty, data, n, k)?;
            let nb = k / BLOCK;
            let block_bytes = if ty == GgmlType::Q4_0 { 18 } else { 20 };
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
                codes.extend(pack(&|i| if i < 16 { qs[i] & 0xf } else { qs[i - 16] >> 4 }));
            }
            Ok(if ty == GgmlType::Q4_1 {
                with_mins(codes, scales, mins, n, nb)
            } else {
                Carried::Nbits4 { codes, scales, zero_points: None, mins: None }
            })
        }
        GgmlType::Q4K => {
            whole(ty, data, n, k)?;
            let nb = k / BLOCK;
            let mut codes = Vec::with_capacity(n * nb * 16);
            let mut scales = Vec::with_capacity(n * nb);
            let mut mins = Vec::with_capacity(n * nb);
            for b in data.chunks_exact(144) {
                let (d, dmin) = (h(&b[..2]), h(&b[2..4]));
                // Each run of 64 values: the low nibbles of 32 bytes (sub-block 2·run), then their high nibbles.
                for (run, q) in b[16..144].chunks_exact(32).enumerate() {
                    for (sub, shift) in [(2 * run, 0), (2 * run + 1, 4)] {
                        let (sc, m) = q4_k_scale_min(sub, &b[4..16]);
                        scales.push(d * sc as f32);
                        mins.push(-(dmin * m as f32));
                        codes.extend(pack(&|i| (q[i] >> shift) & 0xf));
                    }
                }
            }
            Ok(with_mins(codes, scales, mins, n, nb))
        }
        other => Ok(Carried::Float(quant::dequantize(other, data, n * k)?)),
    }
}

/// A 4-bit matrix whose weights are `code · scale + min` (Q4_1, Q4_K), carried with `MatMulNBits`' default zero
/// point 8 and the minimum recentred to `min + 8 · scale` where that gives every code's value bit for bit in every
/// block (ONNX Runtime's kernels skip their zero-point work then), else with zero points 0 and the minimums as they are.
fn with_mins(codes: Vec<u8>, scales: Vec<f32>, mins: Vec<f32>, n: usize, nb: usize) -> Carried {
    let recentred: Option<Vec<f32>> = scales.iter().zip(&mins).map(|(&s, &m)| recentre(s, m)).collect();
    match recentred {
        Some(mins) => Carried::Nbits4 { codes, scales, zero_points: None, mins: Some(mins) },
        None => Carried::Nbits4 { codes, scales, zero_points: Some(vec![0; n * nb.div_ceil(2)]), mins: Some(mins) },
    }
}

/// `min + 8 · scale` if `(code − 8) · scale + it` equals `code · scale + min` in f32, bits and all, for every 4-bit
/// code; `None` where f32 cannot hold the sum or a rounding or a zero's sign would differ.
fn recentre(scale: f32, min: f32) -> Option<f32> {
    let m8 = min + 8.0 * scale;
    (0..16u8).all(|q| ((q as f32 - 8.0) * scale + m8).to_bits() == (q as f32 * scale + min).to_bits()).then_some(m8)
}

/// The 4-bit code at element `i` of `bytes`, two a byte, low nibble first (`MatMulNBits`' and ONNX `INT4`'s packing).
pub(crate) fn nibble(bytes: &[u8], i: usize) -> u8 {
    (bytes[i / 2] >> (4 * (i % 2))) & 0xf
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
                Some(z) => nibble(&z[row * zp_row..], blk),
                None => 8,
            } as f32;
            let scale = scales[row * nb + blk];
            let min = mins.map(|m| m[row * nb + blk]);
            let block = &codes[(row * nb + blk) * 16..][..16];
            for i in 0..BLOCK {
                let code = nibble(block, i) as f32;
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
                // Ordinary blocks take the default zero point (ONNX Runtime's faster kernels).
                prop_assert!(zero_points.is_none(), "{} kept explicit zero points", ty);
            }
        }
    }

    /// A Q4_1 block whose recentred minimum f32 cannot hold (`d` = 1, `m` = 2⁻²⁴: `m + 8` rounds to 8) makes the
    /// whole matrix keep zero points 0 and its minimums as they are, still bit for bit; without it, zero point 8.
    #[test]
    fn q4_1_falls_back_to_zero_points_0_where_recentring_would_round() {
        let block = |d: f32, m: f32, q: u8| {
            let mut b = f16::from_f32(d).to_le_bytes().to_vec();
            b.extend(f16::from_f32(m).to_le_bytes());
            b.extend([q | (15 - q) << 4; 16]);
            b
        };
        let ordinary = block(0.125, -1.0, 3);
        let tiny_min = block(1.0, 2f32.powi(-24), 0);
        for (data, explicit_zero) in [(ordinary.clone(), false), ([ordinary, tiny_min].concat(), true)] {
            let rows = data.len() / 20;
            let reference = quant::dequantize(GgmlType::Q4_1, &data, rows * BLOCK).unwrap();
            let Carried::Nbits4 { codes, scales, zero_points, mins } =
                encode(GgmlType::Q4_1, &data, rows, BLOCK).unwrap()
            else {
                panic!("Q4_1 is carried as MatMulNBits")
            };
            assert_eq!(zero_points.is_some(), explicit_zero);
            let got = decode_nbits4(&codes, &scales, zero_points.as_deref(), mins.as_deref(), rows, BLOCK).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&reference));
        }
    }

    proptest! {
        /// Q8_0, Q5_0 and Q6_K as 8-bit MatMulNBits, and Q4_K as 4-bit MatMulNBits with block minimums, decode to
        /// the GGUF reference values bit for bit.
        #[test]
        fn nbits8_and_q4_k_carry_their_types_exactly(seed in 0u64..1000, rows in 1usize..4, blocks in 1usize..3) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let k = blocks * 256;
            let x: Vec<f32> = (0..rows * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            for ty in [GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q6K] {
                let data = quant::quantize(ty, &x).unwrap();
                let reference = quant::dequantize(ty, &data, x.len()).unwrap();
                let Carried::Nbits8 { codes, scales, zero_points, block } = encode_nbits8(ty, &data, rows, k).unwrap()
                else {
                    panic!("{ty} has an 8-bit form")
                };
                prop_assert_eq!(block, if ty == GgmlType::Q6K { Q6K_BLOCK } else { BLOCK });
                let got = decode_nbits8(&codes, &scales, &zero_points, rows, k, block).unwrap();
                prop_assert_eq!(bits(&got), bits(&reference), "{}", ty);
            }
            let data = quant::quantize(GgmlType::Q4K, &x).unwrap();
            let reference = quant::dequantize(GgmlType::Q4K, &data, x.len()).unwrap();
            let Carried::Nbits4 { codes, scales, zero_points, mins } = encode(GgmlType::Q4K, &data, rows, k).unwrap()
            else {
                panic!("Q4_K is carried as MatMulNBits")
            };
            let got = decode_nbits4(&codes, &scales, zero_points.as_deref(), mins.as_deref(), rows, k).unwrap();
            prop_assert_eq!(bits(&got), bits(&reference));
            prop_assert!(zero_points.is_none(), "Q4_K kept explicit zero points");
        }
    }

    #[test]
    fn other_types_are_dequantized_and_labelled() {
        assert!(conversion(GgmlType::Q8_0).unwrap().contains("Q8_0 → f32"));
        assert!(conversion(GgmlType::Q6K).unwrap().contains("Q6_K → f32"));
        assert_eq!((conversion(GgmlType::Q4_1), conversion(GgmlType::Q4K)), (None, None));
        let x: Vec<f32> = (0..64).map(|i| i as f32 / 10.0).collect();
        let data = quant::quantize(GgmlType::Q8_0, &x).unwrap();
        let Carried::Float(v) = encode(GgmlType::Q8_0, &data, 2, 32).unwrap() else { panic!() };
        assert_eq!(v, quant::dequantize(GgmlType::Q8_0, &data, 64).unwrap());
        assert!(matches!(encode(GgmlType::Q4_0, &[0; 18], 1, 16), Err(OnnxError::Unsupported(_))));
        assert!(matches!(encode_nbits8(GgmlType::Q4_1, &[0; 20], 1, 32), Err(OnnxError::Unsupported(_))));
        assert!(matches!(encode_nbits8(GgmlType::Q6K, &[0; 209], 1, 256), Err(OnnxError::Unsupported(_))));
    }
}

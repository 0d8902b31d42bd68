//! Scalar reference quantizers and dequantizers for the block formats edgebench writes and checks
//! (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), following ggml's reference rounding; Q4_K and Q6_K (the weights of
//! the common Q4_K_M files) are decoded, and encoded in ggml's layout with simpler scale choices (for tests).

use half::{bf16, f16};

use crate::{GgmlType, GgufError};

fn unsupported(ty: GgmlType, op: &str) -> GgufError {
    GgufError::Invalid(format!("{op} {ty} is not implemented by the reference quantizer"))
}

fn check_len(ty: GgmlType, n: usize) -> Result<(), GgufError> {
    if !(n as u64).is_multiple_of(ty.block_size()) {
        return Err(GgufError::Invalid(format!("{n} values are not whole {ty} blocks of {}", ty.block_size())));
    }
    Ok(())
}

/// Encodes `x` as `ty`. `x.len()` must be a whole number of blocks.
pub fn quantize(ty: GgmlType, x: &[f32]) -> Result<Vec<u8>, GgufError> {
    check_len(ty, x.len())?;
    let mut out = Vec::with_capacity(ty.bytes_for(x.len() as u64).unwrap_or(0) as usize);
    match ty {
        GgmlType::F32 => x.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => x.iter().for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        GgmlType::BF16 => x.iter().for_each(|v| out.extend_from_slice(&bf16::from_f32(*v).to_le_bytes())),
        GgmlType::Q8_0 => {
            for b in x.chunks_exact(32) {
                let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(b.iter().map(|v| (v * id).round() as i8 as u8));
            }
        }
        GgmlType::Q4_0 => {
            for b in x.chunks_exact(32) {
                // ggml: the scale comes from the value of largest magnitude, with its sign, mapped to -8.
                let max = b.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                let q = |v: f32| ((v * id + 8.5) as i8).clamp(0, 15) as u8;
                out.extend((0..16).map(|j| q(b[j]) | (q(b[j + 16]) << 4)));
            }
        }
        GgmlType::Q4_1 => {
            for b in x.chunks_exact(32) {
                let min = b.iter().copied().fold(f32::INFINITY, f32::min);
                let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
                let q = |v: f32| (((v - min) * id + 0.5) as i8).clamp(0, 15) as u8;
                out.extend((0..16).map(|j| q(b[j]) | (q(b[j + 16]) << 4)));
            }
        }
        GgmlType::Q5_0 => {
            for b in x.chunks_exact(32) {
                // ggml: as Q4_0, the signed largest magnitude mapped to -16.
                let max = b.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -16.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q: Vec<u8> = b.iter().map(|&v| ((v * id + 16.5) as i8).clamp(0, 31) as u8).collect();
                push_q5(&mut out, &[f16::from_f32(d)], &q);
            }
        }
        GgmlType::Q5_1 => {
            for b in x.chunks_exact(32) {
                let min = b.iter().copied().fold(f32::INFINITY, f32::min);
                let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 31.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q: Vec<u8> = b.iter().map(|&v| (((v - min) * id + 0.5) as i8).clamp(0, 31) as u8).collect();
                push_q5(&mut out, &[f16::from_f32(d), f16::from_f32(min)], &q);
            }
        }
        GgmlType::Q4K => x.chunks_exact(256).for_each(|b| quantize_q4_k(b, &mut out)),
        GgmlType::Q5K => x.chunks_exact(256).for_each(|b| quantize_qk_k(b, &mut out, true)),
        GgmlType::Q6K => x.chunks_exact(256).for_each(|b| quantize_q6_k(b, &mut out)),
        other => return Err(unsupported(other, "quantizing to")),
    }
    Ok(out)
}

/// ggml's `nearest_int`: round half away from zero.
fn nearest(v: f32) -> i32 {
    v.round() as i32
}

/// One Q4_K super-block, as ggml's `quantize_row_q4_K_ref` lays it out and packs its 6-bit scales and minimums;
/// each 32-value sub-block's (scale, minimum) comes from its range (`(max − min)/15`, minimum `−min` with `min ≤ 0`),
/// without the iterative refinement of ggml's `make_qkx2_quants`.
fn quantize_q4_k(x: &[f32], out: &mut Vec<u8>) {
    quantize_qk_k(x, out, false)
}

/// The Q4_K encoder with `five`: Q5_K (codes 0..=31 from each sub-block's range over 31 steps, their fifth bits in
/// 32 bytes before the low nibbles, bit `2c` / `2c + 1` of byte `l` for value `l` of run `c`'s halves).
fn quantize_qk_k(x: &[f32], out: &mut Vec<u8>, five: bool) {
    let levels = if five { 31.0 } else { 15.0 };
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    for (j, b) in x.chunks_exact(32).enumerate() {
        let min = b.iter().copied().fold(f32::INFINITY, f32::min).min(0.0);
        let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (scales[j], mins[j]) = if max > min { ((max - min) / levels, -min) } else { (0.0, -min) };
    }
    let max_scale = scales.iter().copied().fold(0f32, f32::max);
    let max_min = mins.iter().copied().fold(0f32, f32::max);
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let ls = nearest(inv_scale * scales[j]).min(63) as u8;
        let lm = nearest(inv_min * mins[j]).min(63) as u8;
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let (d, dmin) = (f16::from_f32(max_scale / 63.0), f16::from_f32(max_min / 63.0));
    let mut l = [0u8; 256];
    for (j, b) in x.chunks_exact(32).enumerate() {
        let (sc, m) = q4_k_scale_min(j, &packed);
        let step = d.to_f32() * sc as f32;
        if step == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for (i, &v) in b.iter().enumerate() {
            l[32 * j + i] = nearest((v + dm) / step).clamp(0, levels as i32) as u8;
        }
    }
    out.extend_from_slice(&d.to_le_bytes());
    out.extend_from_slice(&dmin.to_le_bytes());
    out.extend_from_slice(&packed);
    if five {
        out.extend((0..32).map(|i| (0..8).fold(0u8, |h, sub| h | ((l[32 * sub + i] >> 4) << sub))));
    }
    for run in l.chunks_exact(64) {
        out.extend((0..32).map(|i| (run[i] & 0xf) | ((run[i + 32] & 0xf) << 4)));
    }
}

/// One Q6_K super-block, as ggml's `quantize_row_q6_K_ref` lays it out and scales it (one signed 8-bit scale per 16
/// values relative to the block's largest, f16 `d`); each sub-block's scale is its signed largest magnitude over
/// −32, without the refinement of ggml's `make_qx_quants`.
fn quantize_q6_k(x: &[f32], out: &mut Vec<u8>) {
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs) = (0f32, 0f32);
    for (ib, b) in x.chunks_exact(16).enumerate() {
        let max = b.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        scales[ib] = max / -32.0;
        if scales[ib].abs() > max_abs {
            (max_abs, max_scale) = (scales[ib].abs(), scales[ib]);
        }
    }
    let mut block = [0u8; 210];
    if max_abs >= 1e-15 {
        let iscale = -128.0 / max_scale;
        let d = f16::from_f32(1.0 / iscale);
        let mut l = [0u8; 256];
        for (ib, b) in x.chunks_exact(16).enumerate() {
            let sc = nearest(iscale * scales[ib]).min(127) as i8;
            block[192 + ib] = sc as u8;
            let step = d.to_f32() * sc as f32;
            for (i, &v) in b.iter().enumerate() {
                l[16 * ib + i] = if step == 0.0 { 32 } else { (nearest(v / step).clamp(-32, 31) + 32) as u8 };
            }
        }
        for half in 0..2 {
            let l = &l[128 * half..128 * half + 128];
            for i in 0..32 {
                block[64 * half + i] = (l[i] & 0xf) | ((l[i + 64] & 0xf) << 4);
                block[64 * half + i + 32] = (l[i + 32] & 0xf) | ((l[i + 96] & 0xf) << 4);
                block[128 + 32 * half + i] =
                    (l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) | ((l[i + 96] >> 4) << 6);
            }
        }
        block[208..210].copy_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&block);
}

/// Decodes `n` values of type `ty` from `data`.
pub fn dequantize(ty: GgmlType, data: &[u8], n: usize) -> Result<Vec<f32>, GgufError> {
    check_len(ty, n)?;
    if ty.bytes_for(n as u64) != Some(data.len() as u64) {
        return Err(GgufError::Invalid(format!("{} bytes do not hold {n} {ty} values", data.len())));
    }
    let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut out = Vec::with_capacity(n);
    match ty {
        GgmlType::F32 => out.extend(data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        GgmlType::F16 => out.extend(data.chunks_exact(2).map(h)),
        GgmlType::BF16 => out.extend(data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())),
        GgmlType::Q8_0 => {
            for b in data.chunks_exact(34) {
                let d = h(&b[..2]);
                out.extend(b[2..].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Q4_0 => {
            for b in data.chunks_exact(18) {
                let d = h(&b[..2]);
                let qs = &b[2..];
                out.extend(qs.iter().map(|q| ((q & 0xf) as f32 - 8.0) * d));
                out.extend(qs.iter().map(|q| ((q >> 4) as f32 - 8.0) * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in data.chunks_exact(20) {
                let (d, m) = (h(&b[..2]), h(&b[2..4]));
                let qs = &b[4..];
                out.extend(qs.iter().map(|q| (q & 0xf) as f32 * d + m));
                out.extend(qs.iter().map(|q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Q5_0 => {
            for b in data.chunks_exact(22) {
                let d = h(&b[..2]);
                out.extend(q5_values(&b[2..]).iter().map(|&q| (q as f32 - 16.0) * d));
            }
        }
        GgmlType::Q5_1 => {
            for b in data.chunks_exact(24) {
                let (d, m) = (h(&b[..2]), h(&b[2..4]));
                out.extend(q5_values(&b[4..]).iter().map(|&q| q as f32 * d + m));
            }
        }
        GgmlType::Q4K => data.chunks_exact(144).for_each(|b| dequantize_q4_k(b, &mut out)),
        GgmlType::Q5K => data.chunks_exact(176).for_each(|b| dequantize_q5_k(b, &mut out)),
        GgmlType::Q6K => data.chunks_exact(210).for_each(|b| dequantize_q6_k(b, &mut out)),
        other => return Err(unsupported(other, "dequantizing")),
    }
    Ok(out)
}

/// Appends one Q5 block: its f16 header values, then the fifth bits of its 32 values `q` (0..=31) as a
/// little-endian u32 (bit `j` for value `j`), then their low nibbles packed as Q4_0's (value `j` low, `j + 16` high).
fn push_q5(out: &mut Vec<u8>, header: &[f16], q: &[u8]) {
    header.iter().for_each(|h| out.extend_from_slice(&h.to_le_bytes()));
    let qh = q.iter().enumerate().fold(0u32, |acc, (j, &v)| acc | (((v >> 4) as u32 & 1) << j));
    out.extend_from_slice(&qh.to_le_bytes());
    out.extend((0..16).map(|j| (q[j] & 0xf) | ((q[j + 16] & 0xf) << 4)));
}

/// The 32 unsigned 5-bit values (0..=31) of a Q5_0 / Q5_1 block's bits (`qh` then the nibbles).
pub fn q5_values(b: &[u8]) -> [u8; 32] {
    let qh = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let qs = &b[4..20];
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = (qs[j] & 0xf) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

/// Scale and minimum `j` (of 8) of a Q4_K block: 6 bits each, packed in 12 bytes.
fn q4_k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// One Q5_K super-block (256 values): as Q4_K (f16 `d`, `dmin`, 8 six-bit (scale, minimum) pairs), then 32 bytes of
/// fifth bits (bit `2r` of byte `l` for value `l` of 64-value run `r`'s first half, bit `2r + 1` for its second
/// half), then 128 bytes of low 4 bits laid out as Q4_K's.
fn dequantize_q5_k(b: &[u8], out: &mut Vec<f32>) {
    let h = |i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    let (d, dmin) = (h(0), h(2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for (run, q) in qs.chunks_exact(32).enumerate() {
        let (sc1, m1) = q4_k_scale_min(2 * run, scales);
        let (sc2, m2) = q4_k_scale_min(2 * run + 1, scales);
        let (d1, min1, d2, min2) = (d * sc1 as f32, dmin * m1 as f32, d * sc2 as f32, dmin * m2 as f32);
        let hi = |l: usize, bit: usize| if qh[l] >> bit & 1 == 1 { 16.0 } else { 0.0 };
        out.extend(q.iter().enumerate().map(|(l, &v)| d1 * ((v & 0xf) as f32 + hi(l, 2 * run)) - min1));
        out.extend(q.iter().enumerate().map(|(l, &v)| d2 * ((v >> 4) as f32 + hi(l, 2 * run + 1)) - min2));
    }
}

/// One Q4_K super-block (256 values): f16 scale `d` and minimum scale `dmin`, 8 six-bit (scale, minimum) pairs, then
/// 128 bytes of 4-bit values; each 64-value run takes the low nibbles of 32 bytes, then their high nibbles.
fn dequantize_q4_k(b: &[u8], out: &mut Vec<f32>) {
    let h = |i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    let (d, dmin) = (h(0), h(2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (run, q) in qs.chunks_exact(32).enumerate() {
        let (sc1, m1) = q4_k_scale_min(2 * run, scales);
        let (sc2, m2) = q4_k_scale_min(2 * run + 1, scales);
        let (d1, min1, d2, min2) = (d * sc1 as f32, dmin * m1 as f32, d * sc2 as f32, dmin * m2 as f32);
        out.extend(q.iter().map(|&v| d1 * (v & 0xf) as f32 - min1));
        out.extend(q.iter().map(|&v| d2 * (v >> 4) as f32 - min2));
    }
}

/// One Q6_K super-block (256 values): 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed 8-bit scales, f16
/// `d`; values are `d × scale × (q − 32)`, laid out in two halves of 128.
fn dequantize_q6_k(b: &[u8], out: &mut Vec<f32>) {
    let d = f16::from_le_bytes([b[208], b[209]]).to_f32();
    let mut y = [0f32; 256];
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = |i: usize| b[192 + 8 * half + i] as i8 as f32;
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q = |low: u8, shift: u32| ((low | (((qh[l] >> shift) & 3) << 4)) as i32 - 32) as f32;
            y[l] = d * sc(is) * q(ql[l] & 0xf, 0);
            y[l + 32] = d * sc(is + 2) * q(ql[l + 32] & 0xf, 2);
            y[l + 64] = d * sc(is + 4) * q(ql[l] >> 4, 4);
            y[l + 96] = d * sc(is + 6) * q(ql[l + 32] >> 4, 6);
        }
    }
    out.extend_from_slice(&y);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The K-quant encoders write blocks the reference decoders read back close to the input: within a step of
        /// the super-block's scale plus the 6- or 8-bit rounding of the sub-block scales (Q4_K: (max − min)/15 per
        /// 32 values, at most 2·amax/15; Q6_K: amax/32, the positive extreme clamped a step short).
        #[test]
        fn k_quants_round_trip_within_a_step(x in prop::collection::vec(-4.0f32..4.0, 512)) {
            for (ty, bound) in [(GgmlType::Q4K, 0.1f32), (GgmlType::Q5K, 0.06), (GgmlType::Q6K, 0.05)] {
                let data = quantize(ty, &x).unwrap();
                prop_assert_eq!(data.len() as u64, ty.bytes_for(512).unwrap());
                let y = dequantize(ty, &data, x.len()).unwrap();
                for (xb, yb) in x.chunks(256).zip(y.chunks(256)) {
                    let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                    for (a, b) in xb.iter().zip(yb) {
                        prop_assert!((a - b).abs() <= bound * amax + 1e-6, "{ty}: {a} -> {b} (amax {amax})");
                    }
                }
            }
        }
    }

    #[test]
    fn k_quants_of_zeros_and_partial_blocks() {
        for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
            let zeros = dequantize(ty, &quantize(ty, &[0.0; 256]).unwrap(), 256).unwrap();
            assert!(zeros.iter().all(|v| *v == 0.0), "{ty}");
            assert!(quantize(ty, &[0.0; 32]).is_err(), "{ty}: 32 values are not a super-block");
        }
    }

    /// Worst-case round-trip error per block, relative to the block's range (half a quantization step).
    fn step(ty: GgmlType, block: &[f32]) -> f32 {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (lo, hi) = block.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        match ty {
            GgmlType::Q8_0 => amax / 127.0,
            GgmlType::Q4_0 => amax / 8.0,
            GgmlType::Q4_1 => (hi - lo) / 15.0,
            GgmlType::Q5_0 => amax / 16.0,
            GgmlType::Q5_1 => (hi - lo) / 31.0,
            _ => amax * 1e-2,
        }
    }

    proptest! {
        #[test]
        fn round_trip_within_half_a_step(x in prop::collection::vec(-4.0f32..4.0, 64)) {
            for ty in [
                GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::F16,
                GgmlType::BF16,
            ] {
                let y = dequantize(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
                for (xb, yb) in x.chunks(32).zip(y.chunks(32)) {
                    // Half a step, plus the f16 rounding (2^-11 relative) of the stored scale, which multiplies
                    // codes up to 15 (for Q4_1: 15·d = max − min ≤ 2·amax), and of the stored minimum (≤ amax):
                    // 3·amax·2^-11. Q4_0 maps the signed extreme to -8, so the opposite extreme clamps at +7 and
                    // may be a whole step off.
                    let steps = if matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0) { 1.0 } else { 0.5 };
                    let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let tol = step(ty, xb) * steps + 3.0 * amax * 2f32.powi(-11) + 1e-6;
                    for (a, b) in xb.iter().zip(yb) {
                        prop_assert!((a - b).abs() <= tol, "{ty}: {a} -> {b} (tol {tol})");
                    }
                }
            }
        }
    }

    /// The Q5 bit layout against a block written by hand: value `j` takes bit `j` of `qh` as its fifth bit.
    #[test]
    fn q5_0_layout() {
        let mut b = vec![0u8, 0x3c]; // d = 1.0
        b.extend_from_slice(&(0x8000_0001u32).to_le_bytes()); // fifth bits of values 0 and 31
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(GgmlType::Q5_0, &b, 32).unwrap();
        assert_eq!((y[0], y[1], y[15]), (16.0 - 16.0, 1.0 - 16.0, 15.0 - 16.0));
        assert_eq!((y[16], y[30], y[31]), (15.0 - 16.0, 1.0 - 16.0, 16.0 - 16.0));
        assert_eq!(quantize(GgmlType::Q5_0, &y).unwrap().len(), 22);
    }

    #[test]
    fn f32_is_exact_and_partial_blocks_are_refused() {
        let x: Vec<f32> = (0..32).map(|i| i as f32 * 0.37 - 3.0).collect();
        assert_eq!(dequantize(GgmlType::F32, &quantize(GgmlType::F32, &x).unwrap(), 32).unwrap(), x);
        assert!(quantize(GgmlType::Q8_0, &x[..31]).is_err());
        assert!(dequantize(GgmlType::Q4_1, &[0u8; 19], 32).is_err());
    }
}

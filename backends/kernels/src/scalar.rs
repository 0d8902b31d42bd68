//! The scalar reference of every kernel: the exact sums the SIMD kernels compute, written plainly. Integer block
//! products are exact; only the order of the f32 additions differs from the SIMD versions.

use crate::acts::{ActRow, QK};
use crate::formats::{f16_at, q4k_scale_min, WeightType};

/// Quantizes 32 values to 8 bits: `d = max|x| / 127`, `q = round_ties_even(x / d)`; returns `(d, d·Σq)`.
pub fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, f32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    (d, quantize_block_with(x, q, d))
}

/// Quantizes 32 values to 8 bits with a given scale `d` (at least `max|x| / 127`): `q = round_ties_even(x / d)`;
/// returns `d·Σq`.
pub fn quantize_block_with(x: &[f32], q: &mut [i8], d: f32) -> f32 {
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, v) in q.iter_mut().zip(x) {
        let r = (v * id).round_ties_even() as i32;
        *q = r as i8;
        sum += r;
    }
    d * sum as f32
}

fn idot_u(u: impl Iterator<Item = u8>, a: &[i8]) -> i32 {
    u.zip(a).map(|(u, &a)| u as i32 * a as i32).sum()
}

/// The product of one weight row (`w`, one row of `ty` blocks) with one activation row.
pub fn dot(ty: WeightType, w: &[u8], a: &ActRow<'_>) -> f32 {
    let bb = ty.block_bytes();
    let blocks = w.chunks_exact(bb);
    match ty {
        WeightType::F32 => {
            w.chunks_exact(4).zip(a.x).map(|(b, x)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * x).sum()
        }
        WeightType::F16 => w.chunks_exact(2).zip(a.x).map(|(b, x)| f16_at(b) * x).sum(),
        WeightType::Q4_0 | WeightType::Q4_1 | WeightType::Q5_0 | WeightType::Q5_1 => {
            let min = matches!(ty, WeightType::Q4_1 | WeightType::Q5_1);
            let five = matches!(ty, WeightType::Q5_0 | WeightType::Q5_1);
            let off = if min { 4 } else { 2 };
            let mut acc = 0f32;
            for (b, blk) in blocks.enumerate() {
                let dw = f16_at(blk);
                let offset = if five { -16.0 } else { -8.0 };
                let m = if min { f16_at(&blk[2..]) } else { offset * dw };
                let u: Vec<u8> = if five {
                    edgebench_gguf::quant::q5_values(&blk[off..off + 20]).to_vec()
                } else {
                    let qs = &blk[off..off + 16];
                    qs.iter().map(|v| v & 0xF).chain(qs.iter().map(|v| v >> 4)).collect()
                };
                let isum = idot_u(u.into_iter(), &a.qs[b * QK..(b + 1) * QK]);
                acc += dw * a.ds[2 * b] * isum as f32 + m * a.ds[2 * b + 1];
            }
            acc
        }
        WeightType::Q8_0 => {
            let mut acc = 0f32;
            for (b, blk) in blocks.enumerate() {
                let isum: i32 =
                    blk[2..34].iter().zip(&a.qs[b * QK..(b + 1) * QK]).map(|(&w, &x)| w as i8 as i32 * x as i32).sum();
                acc += f16_at(blk) * a.ds[2 * b] * isum as f32;
            }
            acc
        }
        WeightType::Q4K | WeightType::Q5K => {
            let five = ty == WeightType::Q5K;
            let qs_at = if five { 48 } else { 16 };
            let mut acc = 0f32;
            for (sb, blk) in blocks.enumerate() {
                let (d, dmin) = (f16_at(blk), f16_at(&blk[2..]));
                let (scales, qs) = (&blk[4..16], &blk[qs_at..qs_at + 128]);
                for c in 0..4 {
                    let raw = &qs[c * 32..(c + 1) * 32];
                    for half in 0..2 {
                        let sub = 2 * c + half;
                        // Q5_K's fifth bit of value l of this half: bit `sub` of byte l of the 32 at 16.
                        let u = raw.iter().enumerate().map(|(l, v)| {
                            let low = if half == 0 { v & 0xF } else { v >> 4 };
                            low | if five { ((blk[16 + l] >> sub) & 1) << 4 } else { 0 }
                        });
                        let b = sb * 8 + sub;
                        let (sc, m) = q4k_scale_min(sub, scales);
                        let isum = idot_u(u, &a.qs[b * QK..(b + 1) * QK]);
                        acc += d * sc as f32 * a.ds[2 * b] * isum as f32 - dmin * m as f32 * a.ds[2 * b + 1];
                    }
                }
            }
            acc
        }
        WeightType::Q6K => {
            let mut acc = 0f32;
            for (sb, blk) in blocks.enumerate() {
                let (ql, qh, sc, d) = (&blk[..128], &blk[128..192], &blk[192..208], f16_at(&blk[208..]));
                for h in 0..2 {
                    let (ql, qh, sc) = (&ql[64 * h..], &qh[32 * h..], &sc[8 * h..]);
                    for t in 0..4 {
                        let b = sb * 8 + h * 4 + t;
                        let qa = &a.qs[b * QK..(b + 1) * QK];
                        for g in 0..2 {
                            let mut isum = 0i32;
                            for l in 16 * g..16 * g + 16 {
                                let lo = (ql[l + 32 * (t % 2)] >> (4 * (t / 2))) & 0xF;
                                let q = (lo | (((qh[l] >> (2 * t)) & 3) << 4)) as i32 - 32;
                                isum += q * qa[l] as i32;
                            }
                            acc += d * sc[2 * t + g] as i8 as f32 * a.ds[2 * b] * isum as f32;
                        }
                    }
                }
            }
            acc
        }
    }
}

/// Σ a_i·b_i over f32 slices of equal length.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// y_i += alpha·x_i.
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// `out[t] = scale · (q · keys[t·stride ..][..q.len()])` for every `t < out.len()` (attention scores).
pub fn scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
    for (t, o) in out.iter_mut().enumerate() {
        *o = scale * dot_f32(q, &keys[t * stride..][..q.len()]);
    }
}

/// `out = Σ_t p[t] · vals[t·stride ..][..out.len()]` (attention's weighted sum of values).
pub fn weighted_sum(p: &[f32], vals: &[f32], stride: usize, out: &mut [f32]) {
    out.fill(0.0);
    for (t, &w) in p.iter().enumerate() {
        axpy(out, w, &vals[t * stride..][..out.len()]);
    }
}

/// `p = exp(p − max p) / Σ exp(p − max p)` in place.
pub fn softmax(p: &mut [f32]) {
    let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in p.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    p.iter_mut().for_each(|v| *v *= inv);
}

/// `√(2/π)`, GELU's tanh-approximation constant.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// `out = silu(gate) · up` (SwiGLU): `g · σ(g) · u`.
pub fn swiglu(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

/// `out = gelu(gate) · up` (GeGLU) with GELU's tanh approximation (ggml's `gelu`):
/// `0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))`, computed as `g · σ(2·√(2/π)·(g + 0.044715·g³))`.
pub fn geglu(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        let z = 2.0 * SQRT_2_OVER_PI * g * (1.0 + 0.044715 * g * g);
        *o = g / (1.0 + (-z).exp()) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gated_activations() {
        let mut g = [9.0; 3];
        swiglu(&mut g, &[0.0, 10.0, -10.0], &[5.0, 2.0, 2.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 20.0).abs() < 1e-3 && g[2].abs() < 1e-3);
        geglu(&mut g, &[0.0, 10.0, -10.0], &[5.0, 2.0, 2.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 20.0).abs() < 1e-3 && g[2].abs() < 1e-3);
        let mut one = [1.0];
        geglu(&mut one, &[1.0], &[1.0]);
        assert!((one[0] - 0.841_192).abs() < 1e-5, "gelu_tanh(1) = {}", one[0]);
    }
}

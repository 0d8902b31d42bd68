//! The small element-wise operations of a transformer block (RMSNorm, rotary embedding in both pairings,
//! soft-capping), plain loops over rows; the heavy work (and the gated activations) is in the kernels.

use edgebench_gguf::arch::RopeStyle;

/// `out = x / sqrt(mean(x²) + eps) · w` for each row of `x` (row width `w.len()`); the sum of squares in f64, as
/// ggml accumulates it.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let e = w.len();
    for (xr, or) in x.chunks_exact(e).zip(out.chunks_exact_mut(e)) {
        let ss: f64 = xr.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let scale = 1.0 / ((ss / e as f64) as f32 + eps).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * scale * g;
        }
    }
}

/// In-place [`rms_norm`] of each `w.len()`-wide row of `x` (per-head Q/K norms, post-norms).
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let mut tmp = vec![0f32; w.len()];
    for row in x.chunks_exact_mut(w.len()) {
        rms_norm(row, w, eps, &mut tmp);
        row.copy_from_slice(&tmp);
    }
}

/// cos and sin of every rotation angle for `n` positions from `pos`: `n × head_dim/2` values each, angle
/// `(p / scale) · base^(−2i/head_dim) / factor_i` (`factors`: Llama 3.1's per-frequency divisors, else 1).
pub fn rope_tables(
    pos: usize,
    n: usize,
    head_dim: usize,
    base: f32,
    scale: f32,
    factors: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let inv: Vec<f32> =
        (0..half).map(|i| base.powf(-((2 * i) as f32) / head_dim as f32) / factors.map_or(1.0, |f| f[i])).collect();
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for p in pos..pos + n {
        for &f in &inv {
            let a = p as f32 / scale * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    (cos, sin)
}

/// Rotates the pairs of every head of every row: adjacent `(x[2i], x[2i+1])` (ggml's "normal" rope, which llama
/// GGUF files are converted for) or halves `(x[i], x[i + d/2])` (ggml's "neox"). `x` is `n` rows of
/// `heads × head_dim`.
pub fn rope(x: &mut [f32], heads: usize, head_dim: usize, cos: &[f32], sin: &[f32], style: RopeStyle) {
    let half = head_dim / 2;
    for (i, row) in x.chunks_exact_mut(heads * head_dim).enumerate() {
        let (c, s) = (&cos[i * half..(i + 1) * half], &sin[i * half..(i + 1) * half]);
        for head in row.chunks_exact_mut(head_dim) {
            for k in 0..half {
                let (ia, ib) = match style {
                    RopeStyle::Adjacent => (2 * k, 2 * k + 1),
                    RopeStyle::Halves => (k, k + half),
                };
                let (a, b) = (head[ia], head[ib]);
                head[ia] = a * c[k] - b * s[k];
                head[ib] = a * s[k] + b * c[k];
            }
        }
    }
}

/// `cap · tanh(x / cap)` of every value.
pub fn softcap(x: &mut [f32], cap: f32) {
    x.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_normalizes_each_row() {
        let x = [3.0, 4.0, 0.0, 0.0, 1.0, 1.0];
        let mut out = [0f32; 6];
        rms_norm(&x, &[1.0, 2.0], 1e-6, &mut out);
        let r = (12.5f32).sqrt();
        assert!((out[0] - 3.0 / r).abs() < 1e-6 && (out[1] - 8.0 / r).abs() < 1e-6);
        assert_eq!(out[2..4], [0.0, 0.0]);
        assert!((out[4] - 1.0).abs() < 1e-6 && (out[5] - 2.0).abs() < 1e-6);
    }

    #[test]
    fn rope_rotates_pairs_by_position() {
        let (cos, sin) = rope_tables(1, 1, 4, 10000.0, 1.0, None);
        let mut x = [1.0, 0.0, 1.0, 0.0];
        rope(&mut x, 1, 4, &cos, &sin, RopeStyle::Adjacent);
        // pair 0 turns by 1 radian, pair 1 by 1/100 radian.
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[1] - 1f32.sin()).abs() < 1e-6);
        assert!((x[2] - 0.01f32.cos()).abs() < 1e-6 && (x[3] - 0.01f32.sin()).abs() < 1e-6);
        let (cos0, sin0) = rope_tables(0, 1, 4, 10000.0, 1.0, None);
        let mut y = [0.3, -0.2, 0.5, 0.7];
        rope(&mut y, 1, 4, &cos0, &sin0, RopeStyle::Halves);
        assert_eq!(y, [0.3, -0.2, 0.5, 0.7], "position 0 is the identity");
        // Halves pair dimension 0 with 2 (turned by 1 radian) and 1 with 3 (by 1/100).
        let mut z = [1.0, 1.0, 0.0, 0.0];
        rope(&mut z, 1, 4, &cos, &sin, RopeStyle::Halves);
        assert!((z[0] - 1f32.cos()).abs() < 1e-6 && (z[2] - 1f32.sin()).abs() < 1e-6);
        assert!((z[1] - 0.01f32.cos()).abs() < 1e-6 && (z[3] - 0.01f32.sin()).abs() < 1e-6);
        // A divisor of 100 on the fast frequency slows it to the slow one's angle.
        let (cf, sf) = rope_tables(1, 1, 4, 10000.0, 1.0, Some(&[100.0, 1.0]));
        assert!((cf[0] - cf[1]).abs() < 1e-6 && (sf[0] - sf[1]).abs() < 1e-6);
    }

    #[test]
    fn softcap_bounds() {
        let mut x = [0.0, 100.0, -3.0];
        softcap(&mut x, 30.0);
        assert!(x[0] == 0.0 && x[1] < 30.0 && x[1] > 29.9 && (x[2] + 30.0 * 0.1f32.tanh()).abs() < 1e-5);
    }
}

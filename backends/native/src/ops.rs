//! The small element-wise operations of a llama block (RMSNorm, rotary embedding, SiLU gating), plain loops over
//! rows; the heavy work is in the kernels.

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

/// cos and sin of every rotation angle for `n` positions from `pos`: `n × head_dim/2` values each, angle
/// `(p / scale) · base^(−2i/head_dim)`.
pub fn rope_tables(pos: usize, n: usize, head_dim: usize, base: f32, scale: f32) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let inv: Vec<f32> = (0..half).map(|i| base.powf(-((2 * i) as f32) / head_dim as f32)).collect();
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

/// Rotates adjacent pairs `(x[2i], x[2i+1])` of every head of every row (ggml's "normal" rope, which llama GGUF
/// files are converted for). `x` is `n` rows of `heads × head_dim`.
pub fn rope(x: &mut [f32], heads: usize, head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for (i, row) in x.chunks_exact_mut(heads * head_dim).enumerate() {
        let (c, s) = (&cos[i * half..(i + 1) * half], &sin[i * half..(i + 1) * half]);
        for head in row.chunks_exact_mut(head_dim) {
            for (k, pair) in head.chunks_exact_mut(2).enumerate() {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * c[k] - b * s[k];
                pair[1] = a * s[k] + b * c[k];
            }
        }
    }
}

/// `out = silu(gate) · up`.
pub fn swiglu(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
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
        let (cos, sin) = rope_tables(1, 1, 4, 10000.0, 1.0);
        let mut x = [1.0, 0.0, 1.0, 0.0];
        rope(&mut x, 1, 4, &cos, &sin);
        // pair 0 turns by 1 radian, pair 1 by 1/100 radian.
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[1] - 1f32.sin()).abs() < 1e-6);
        assert!((x[2] - 0.01f32.cos()).abs() < 1e-6 && (x[3] - 0.01f32.sin()).abs() < 1e-6);
        let (cos0, sin0) = rope_tables(0, 1, 4, 10000.0, 1.0);
        let mut y = [0.3, -0.2, 0.5, 0.7];
        rope(&mut y, 1, 4, &cos0, &sin0);
        assert_eq!(y, [0.3, -0.2, 0.5, 0.7], "position 0 is the identity");
    }

    #[test]
    fn swiglu_gates() {
        let mut g = [9.0; 3];
        swiglu(&mut g, &[0.0, 10.0, -10.0], &[5.0, 2.0, 2.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 20.0).abs() < 1e-3 && g[2].abs() < 1e-3);
    }
}

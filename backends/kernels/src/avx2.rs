//! x86-64 AVX2 + FMA + F16C kernels: 4-bit and 8-bit weights against 8-bit activations with `vpmaddubsw`, floats
//! with FMA. Each tile reads one weight row once for up to four activation rows (prefill reuses the unpacked
//! weights; decode is the one-row case). The scalar reference in [`crate::scalar`] defines the result.

use std::arch::x86_64::*;

use crate::acts::{ActRow, QK};
use crate::formats::{q4k_scale_min, WeightType};

/// # Safety
/// The CPU has avx2, fma and f16c; `w` and every row of `acts` have the shapes [`crate::KernelSet::dot_tile`] checks.
pub unsafe fn dot_tile(ty: WeightType, w: &[u8], acts: &[ActRow<'_>], out: &mut [f32]) {
    macro_rules! tiles {
        ($f:ident $(, $c:expr)?) => {
            // SAFETY: forwarded from the caller.
            unsafe {
                match acts.len() {
                    1 => out.copy_from_slice(&$f::<1 $(, $c)?>(w, acts.try_into().unwrap())),
                    2 => out.copy_from_slice(&$f::<2 $(, $c)?>(w, acts.try_into().unwrap())),
                    3 => out.copy_from_slice(&$f::<3 $(, $c)?>(w, acts.try_into().unwrap())),
                    _ => out.copy_from_slice(&$f::<4 $(, $c)?>(w, acts.try_into().unwrap())),
                }
            }
        };
    }
    match ty {
        WeightType::Q4_0 => tiles!(q4_tile, false),
        WeightType::Q4_1 => tiles!(q4_tile, true),
        WeightType::Q8_0 => tiles!(q8_tile),
        WeightType::Q4K => tiles!(q4k_tile),
        WeightType::Q6K => tiles!(q6k_tile),
        WeightType::F32 => tiles!(float_tile, false),
        WeightType::F16 => tiles!(float_tile, true),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16(p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(p: *const i8) -> __m256i {
    // SAFETY: the caller points at 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// Sum of the 32 products u8 × i8, as 8 lanes of i32.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(u: __m256i, a: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), _mm256_set1_epi16(1))
}

/// Q4_0 (`MIN` false) and Q4_1 (`MIN` true): Σ_b d·d_a·Σ u·q_a + m·s_a, with m = −8·d for Q4_0.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_tile<const N: usize, const MIN: bool>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let (bs, off) = if MIN { (20, 4) } else { (18, 2) };
    let nb = w.len() / bs;
    let mask = _mm256_set1_epi8(0x0F);
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    let mut corr = [0f32; N];
    for b in 0..nb {
        // SAFETY: block b lies inside w; activation rows hold nb blocks (checked by dot_tile's caller).
        unsafe {
            let blk = w.as_ptr().add(b * bs);
            let dw = f16(blk);
            let m = if MIN { f16(blk.add(2)) } else { -8.0 * dw };
            let raw = _mm_loadu_si128(blk.add(off).cast());
            let u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), mask);
            for j in 0..N {
                let p = dot_u8_i8(u, load32(a[j].qs.as_ptr().add(b * QK)));
                let sc = _mm256_set1_ps(dw * *a[j].d.get_unchecked(b));
                acc[j][b & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, acc[j][b & 1]);
                corr[j] += m * *a[j].s.get_unchecked(b);
            }
        }
    }
    std::array::from_fn(|j| hsum(_mm256_add_ps(acc[j][0], acc[j][1])) + corr[j])
}

/// Q8_0: Σ_b d·d_a·Σ q·q_a, signed × signed through |q| and sign-adjusted activations.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_tile<const N: usize>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let nb = w.len() / 34;
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    for b in 0..nb {
        // SAFETY: as in q4_tile.
        unsafe {
            let blk = w.as_ptr().add(b * 34);
            let dw = f16(blk);
            let q = load32(blk.add(2).cast());
            let uq = _mm256_sign_epi8(q, q);
            for j in 0..N {
                let sa = _mm256_sign_epi8(load32(a[j].qs.as_ptr().add(b * QK)), q);
                let p = dot_u8_i8(uq, sa);
                let sc = _mm256_set1_ps(dw * *a[j].d.get_unchecked(b));
                acc[j][b & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, acc[j][b & 1]);
            }
        }
    }
    std::array::from_fn(|j| hsum(_mm256_add_ps(acc[j][0], acc[j][1])))
}

/// Q4_K: per sub-block of 32, d·sc·d_a·Σ u·q_a − dmin·m·s_a.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_tile<const N: usize>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let mask = _mm256_set1_epi8(0x0F);
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    let mut corr = [0f32; N];
    for (sb, blk) in w.chunks_exact(144).enumerate() {
        // SAFETY: as in q4_tile; blk is one whole super-block.
        unsafe {
            let (d, dmin) = (f16(blk.as_ptr()), f16(blk.as_ptr().add(2)));
            let sm: [(u8, u8); 8] = std::array::from_fn(|i| q4k_scale_min(i, &blk[4..16]));
            for c in 0..4 {
                let raw = load32(blk.as_ptr().add(16 + 32 * c).cast());
                let halves = [_mm256_and_si256(raw, mask), _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask)];
                for (h, u) in halves.into_iter().enumerate() {
                    let sub = 2 * c + h;
                    let b = sb * 8 + sub;
                    let (dw, mw) = (d * sm[sub].0 as f32, dmin * sm[sub].1 as f32);
                    for j in 0..N {
                        let p = dot_u8_i8(u, load32(a[j].qs.as_ptr().add(b * QK)));
                        let sc = _mm256_set1_ps(dw * *a[j].d.get_unchecked(b));
                        acc[j][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, acc[j][h]);
                        corr[j] -= mw * *a[j].s.get_unchecked(b);
                    }
                }
            }
        }
    }
    std::array::from_fn(|j| hsum(_mm256_add_ps(acc[j][0], acc[j][1])) + corr[j])
}

/// Q6_K: per group of 16, d·sc·d_a·Σ (q − 32)·q_a.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_tile<const N: usize>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let (m4, m2, k32) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(3), _mm256_set1_epi8(32));
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    for (sb, blk) in w.chunks_exact(210).enumerate() {
        // SAFETY: as in q4_tile; blk is one whole super-block.
        unsafe {
            let d = f16(blk.as_ptr().add(208));
            for h in 0..2 {
                let ql0 = load32(blk.as_ptr().add(64 * h).cast());
                let ql1 = load32(blk.as_ptr().add(64 * h + 32).cast());
                let qh = load32(blk.as_ptr().add(128 + 32 * h).cast());
                let hi = |s: i32| -> __m256i {
                    let v = match s {
                        0 => qh,
                        2 => _mm256_srli_epi16(qh, 2),
                        4 => _mm256_srli_epi16(qh, 4),
                        _ => _mm256_srli_epi16(qh, 6),
                    };
                    _mm256_slli_epi16(_mm256_and_si256(v, m2), 4)
                };
                let qs = [
                    _mm256_or_si256(_mm256_and_si256(ql0, m4), hi(0)),
                    _mm256_or_si256(_mm256_and_si256(ql1, m4), hi(2)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), hi(4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), hi(6)),
                ];
                for (t, q) in qs.into_iter().enumerate() {
                    let sc = |g: usize| *blk.get_unchecked(192 + 8 * h + 2 * t + g) as i8 as i16;
                    let scv = _mm256_set_m128i(_mm_set1_epi16(sc(1)), _mm_set1_epi16(sc(0)));
                    let b = sb * 8 + h * 4 + t;
                    for j in 0..N {
                        let qa = load32(a[j].qs.as_ptr().add(b * QK));
                        let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, qa), _mm256_maddubs_epi16(k32, qa));
                        let p = _mm256_madd_epi16(p16, scv);
                        let s = _mm256_set1_ps(d * *a[j].d.get_unchecked(b));
                        acc[j][t & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[j][t & 1]);
                    }
                }
            }
        }
    }
    std::array::from_fn(|j| hsum(_mm256_add_ps(acc[j][0], acc[j][1])))
}

/// F32 (`HALF` false) and F16 (`HALF` true) weights against f32 activations.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float_tile<const N: usize, const HALF: bool>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let k = if HALF { w.len() / 2 } else { w.len() / 4 };
    let main = k / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); N];
    let mut i = 0;
    while i < main {
        // SAFETY: i + 8 <= k values lie inside w and every activation row.
        unsafe {
            let wv = if HALF {
                _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(2 * i).cast()))
            } else {
                _mm256_loadu_ps(w.as_ptr().add(4 * i).cast())
            };
            for j in 0..N {
                acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a[j].x.as_ptr().add(i)), acc[j]);
            }
        }
        i += 8;
    }
    std::array::from_fn(|j| {
        let tail: f32 = (main..k)
            .map(|i| {
                let wi = if HALF {
                    crate::formats::f16_at(&w[2 * i..])
                } else {
                    f32::from_le_bytes(w[4 * i..4 * i + 4].try_into().unwrap())
                };
                wi * a[j].x[i]
            })
            .sum();
        hsum(acc[j]) + tail
    })
}

/// AVX2 version of [`crate::scalar::quantize_block`], bit-identical to it.
///
/// # Safety
/// The CPU has avx2, fma and f16c; `x` and `q` hold 32 values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, f32) {
    assert!(x.len() >= QK && q.len() >= QK);
    // SAFETY: 32 values are readable in x and writable in q (asserted).
    unsafe {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
        let sign = _mm256_set1_ps(-0.0);
        let abs = |v: __m256| _mm256_andnot_ps(sign, v);
        let m = _mm256_max_ps(_mm256_max_ps(abs(v[0]), abs(v[1])), _mm256_max_ps(abs(v[2]), abs(v[3])));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
        let r: [__m256i; 4] = std::array::from_fn(|i| {
            _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
        });
        let sum = _mm256_add_epi32(_mm256_add_epi32(r[0], r[1]), _mm256_add_epi32(r[2], r[3]));
        let s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        let total = _mm_cvtsi128_si32(s);
        // i32 → i16 → i8 with saturation; packs interleave 128-bit lanes, the permute restores the order.
        let p16a = _mm256_packs_epi32(r[0], r[1]);
        let p16b = _mm256_packs_epi32(r[2], r[3]);
        let p8 = _mm256_packs_epi16(p16a, p16b);
        let p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(q.as_mut_ptr().cast(), p8);
        (d, d * total as f32)
    }
}

/// AVX2 version of [`crate::scalar::dot_f32`].
///
/// # Safety
/// The CPU has avx2 and fma; `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let main = n / 16 * 16;
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i < main {
        // SAFETY: i + 16 <= n for both slices.
        unsafe {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i + 8)), _mm256_loadu_ps(b.as_ptr().add(i + 8)), s1);
        }
        i += 16;
    }
    hsum(_mm256_add_ps(s0, s1)) + (main..n).map(|i| a[i] * b[i]).sum::<f32>()
}

/// AVX2 version of [`crate::scalar::axpy`].
///
/// # Safety
/// The CPU has avx2 and fma; `y.len() == x.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    let n = y.len();
    let main = n / 8 * 8;
    let av = _mm256_set1_ps(alpha);
    let mut i = 0;
    while i < main {
        // SAFETY: i + 8 <= n for both slices.
        unsafe {
            let p = y.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(p)));
        }
        i += 8;
    }
    for i in main..n {
        y[i] += alpha * x[i];
    }
}

//! x86-64 AVX-VNNI kernels (the 256-bit `vpdpbusd` of CPUs with VNNI but no AVX-512, e.g. Alder Lake and later
//! client cores): the 4-row interleaved Q4_0, Q4_1 and Q8_0 products of the AVX2 path with each block's byte
//! products summed by one `vpdpbusd` where AVX2 needs `vpmaddubsw` and `vpmaddwd`. The integer sums are the same
//! (no AVX2 step saturates on these ranges), so results equal the AVX2 path's. Every other type and layout runs the
//! AVX2 kernels. The scalar reference in [`crate::scalar`] defines the result.

use std::arch::x86_64::*;

use std::ops::Range;

use crate::acts::{ActRow, QK};
use crate::avx2::{fold4, hadd4, load32, x4_loop};
use crate::formats::WeightType;
use crate::matmul::{OutMatrix, WeightMatrix};

/// Weight rows per cache block, as in the AVX2 loops.
const ROW_BLOCK: usize = 64;

/// Weight rows `rows` of `w` against every activation row, into `out`.
///
/// # Safety
/// The CPU has the features [`crate::Isa::AvxVnni`] checks; shapes as [`crate::matmul_rows`] checks; no other
/// thread writes these elements of `out`.
pub unsafe fn matmul(w: &WeightMatrix<'_>, rows: Range<usize>, acts: &[ActRow<'_>], out: &OutMatrix) {
    // SAFETY: forwarded from the caller; this path's CPU has avx2, fma and f16c too.
    unsafe {
        match (w.layout, w.ty) {
            (crate::Layout::Interleaved4, WeightType::Q4_0) => rows_x4_q4_0(w, rows, acts, out),
            (crate::Layout::Interleaved4, WeightType::Q4_1) => rows_x4_q4_1(w, rows, acts, out),
            (crate::Layout::Interleaved4, _) => rows_x4_q8_0(w, rows, acts, out),
            _ => crate::avx2::matmul(w, rows, acts, out),
        }
    }
}

x4_loop!("avxvnni,avx2,fma,f16c", pre = true, rows_x4_q4_0, q4_x4, false);
x4_loop!("avxvnni,avx2,fma,f16c", pre = true, rows_x4_q4_1, q4_x4, true);
x4_loop!("avxvnni,avx2,fma,f16c", pre = true, rows_x4_q8_0, q8_x4);

/// Four interleaved Q4_0 / Q4_1 rows against `NA` activation rows, as the AVX2 kernel: two rows' 4-bit values per
/// register, the activation block's halves broadcast to both lanes; two `vpdpbusd` per register pair.
#[inline]
#[target_feature(enable = "avxvnni,avx2,fma,f16c")]
unsafe fn q4_x4<const NA: usize, const MIN: bool>(
    data: &[u8],
    a: &[ActRow<'_>; NA],
    pre: Option<&[__m256i]>,
) -> [[f32; 4]; NA] {
    let (cb, qoff) = if MIN { (80, 16) } else { (72, 8) };
    let nb = data.len() / cb;
    let mask = _mm256_set1_epi8(0x0F);
    let perm = _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3);
    let zero = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); NA];
    let mut cor = [_mm_setzero_ps(); NA];
    for b in 0..nb {
        // SAFETY: chunk b lies inside data; activation rows hold nb blocks (checked by the caller).
        unsafe {
            let ch = data.as_ptr().add(b * cb);
            let d4 = _mm_cvtph_ps(_mm_loadl_epi64(ch.cast()));
            let m4 =
                if MIN { _mm_cvtph_ps(_mm_loadl_epi64(ch.add(8).cast())) } else { _mm_mul_ps(d4, _mm_set1_ps(-8.0)) };
            // Scales in the order the horizontal sums leave the rows: [r0 r0 r2 r2 | r1 r1 r3 r3].
            let dperm = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4), perm);
            let (x01, x23) = (load32(ch.add(qoff).cast()), load32(ch.add(qoff + 32).cast()));
            let (lo01, hi01) = (_mm256_and_si256(x01, mask), _mm256_and_si256(_mm256_srli_epi16(x01, 4), mask));
            let (lo23, hi23) = (_mm256_and_si256(x23, mask), _mm256_and_si256(_mm256_srli_epi16(x23, 4), mask));
            for j in 0..NA {
                let (alo, ahi) = match pre {
                    Some(p) => (*p.get_unchecked((j * nb + b) * 2), *p.get_unchecked((j * nb + b) * 2 + 1)),
                    None => {
                        let av = load32(a[j].qs.as_ptr().add(b * QK));
                        (_mm256_permute4x64_epi64(av, 0x44), _mm256_permute4x64_epi64(av, 0xEE))
                    }
                };
                let p01 = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(zero, lo01, alo), hi01, ahi);
                let p23 = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(zero, lo23, alo), hi23, ahi);
                let h = _mm256_hadd_epi32(p01, p23);
                let da = _mm256_broadcast_ss(&*a[j].ds.as_ptr().add(2 * b));
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), _mm256_mul_ps(dperm, da), acc[j]);
                cor[j] = _mm_fmadd_ps(m4, _mm_broadcast_ss(&*a[j].ds.as_ptr().add(2 * b + 1)), cor[j]);
            }
        }
    }
    std::array::from_fn(|j| {
        let s = _mm_hadd_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1)); // [r0 r2 r1 r3]
        let v = _mm_add_ps(_mm_shuffle_ps(s, s, 0xD8), cor[j]);
        let mut o = [0f32; 4];
        // SAFETY: o holds four f32.
        unsafe { _mm_storeu_ps(o.as_mut_ptr(), v) };
        o
    })
}

/// Four interleaved Q8_0 rows against `NA` activation rows: signed × signed as |w| × (a with w's sign), one
/// `vpdpbusd` per row.
#[inline]
#[target_feature(enable = "avxvnni,avx2,fma,f16c")]
unsafe fn q8_x4<const NA: usize>(data: &[u8], a: &[ActRow<'_>; NA], _pre: Option<&[__m256i]>) -> [[f32; 4]; NA] {
    let nb = data.len() / 136;
    let zero = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); NA];
    for b in 0..nb {
        // SAFETY: as in q4_x4.
        unsafe {
            let ch = data.as_ptr().add(b * 136);
            let d4 = _mm_cvtph_ps(_mm_loadl_epi64(ch.cast()));
            let d8 = _mm256_set_m128(d4, d4);
            let w: [__m256i; 4] = std::array::from_fn(|r| load32(ch.add(8 + 32 * r).cast()));
            let u: [__m256i; 4] = std::array::from_fn(|r| _mm256_sign_epi8(w[r], w[r]));
            for j in 0..NA {
                let av = load32(a[j].qs.as_ptr().add(b * QK));
                let p: [__m256i; 4] =
                    std::array::from_fn(|r| _mm256_dpbusd_avx_epi32(zero, u[r], _mm256_sign_epi8(av, w[r])));
                let da = _mm256_broadcast_ss(&*a[j].ds.as_ptr().add(2 * b));
                acc[j] = _mm256_fmadd_ps(hadd4(p), _mm256_mul_ps(d8, da), acc[j]);
            }
        }
    }
    std::array::from_fn(|j| fold4(acc[j], _mm_setzero_ps()))
}

//! x86-64 AVX-VNNI kernels (the 256-bit `vpdpbusd` of CPUs with VNNI but no AVX-512, e.g. Alder Lake and later
//! client cores): the 4-row interleaved Q4_0, Q4_1 and Q8_0 products of the AVX2 path with each block's byte
//! products summed by one `vpdpbusd` where AVX2 needs `vpmaddubsw` and `vpmaddwd`. The integer sums are the same
//! (no AVX2 step saturates on these ranges), so results equal the AVX2 path's. Every other type and layout runs the
//! AVX2 kernels. The scalar reference in [`crate::scalar`] defines the result.

use std::arch::x86_64::*;

use std::ops::Range;

use crate::acts::{ActRow, QK};
use crate::avx2::{fold4, hadd4, load32, x4_kernels, x4_loop};
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

/// Σ lo·alo + hi·ahi per four bytes (u8 × i8), two `vpdpbusd`.
#[inline]
#[target_feature(enable = "avxvnni,avx2,fma,f16c")]
fn pair_vnni(lo: __m256i, alo: __m256i, hi: __m256i, ahi: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo, alo), hi, ahi)
}

/// Σ u·a per four bytes (u8 × i8), one `vpdpbusd`.
#[inline]
#[target_feature(enable = "avxvnni,avx2,fma,f16c")]
fn dot_vnni(u: __m256i, a: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, a)
}

x4_kernels!("avxvnni,avx2,fma,f16c", pair_vnni, dot_vnni);

//! x86-64 AVX-VNNI kernels (the 256-bit `vpdpbusd` of CPUs with VNNI but no AVX-512, e.g. Alder Lake and later
//! client cores): the 4-row interleaved Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 products of the AVX2 path with each block's
//! byte products summed by one `vpdpbusd` where AVX2 needs `vpmaddubsw` and `vpmaddwd`. The integer sums are the same
//! (no AVX2 step saturates on these ranges), so results equal the AVX2 path's. Every other type and layout runs the
//! AVX2 kernels. The scalar reference in [`crate::scalar`] defines the result.

use std::arch::x86_64::*;

use std::ops::Range;

use crate::acts::{ActRow, QK};
use crate::avx2::{fold4, hadd4, load32, x4_kernels, x4_path};
use crate::formats::WeightType;
use crate::matmul::{OutMatrix, WeightMatrix};

x4_path!("avxvnni,avx2,fma,f16c", pre = true, "AvxVnni");

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

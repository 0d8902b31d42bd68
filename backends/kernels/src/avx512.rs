//! x86-64 AVX-512 kernels with VNNI (`vpdpbusd`): the 16-row interleaved Q4_0, Q4_1, Q8_0, Q4_K, Q5_K and Q6_K products (one
//! 32-bit lane per row), the 4-row interleaved Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 products (one 512-bit register holding four weight
//! rows of a block). Every other type and layout runs the AVX2 kernels (a CPU with this path has AVX2). The scalar
//! reference in [`crate::scalar`] defines the result.

use std::arch::x86_64::*;

use std::ops::Range;

use crate::acts::{ActRow, QK};
use crate::avx2::{paired_blocks, prefetch_ahead, x4_path};
use crate::formats::WeightType;
use crate::matmul::{OutMatrix, WeightMatrix};

// AVX2's loops over groups of four rows around this module's kernels, which broadcast each activation half as they
// go (no precomputed broadcasts).
x4_path!(
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    pre = false,
    "Avx512Vnni",
    crate::Layout::Interleaved16,
    WeightType::Q4_0 => rows_x16::<X16_Q4_0>,
    crate::Layout::Interleaved16,
    WeightType::Q4_1 => rows_x16::<X16_Q4_1>,
    crate::Layout::Interleaved16,
    WeightType::Q8_0 => rows_x16::<X16_Q8_0>,
    crate::Layout::Interleaved16,
    WeightType::Q4K => rows_x16::<X16_Q4K>,
    crate::Layout::Interleaved16,
    WeightType::Q5K => rows_x16::<X16_Q5K>,
    crate::Layout::Interleaved16,
    WeightType::Q6K => rows_x16::<X16_Q6K>
);

/// Which 16-row kernel a loop runs.
const X16_Q4_0: u8 = 0;
const X16_Q4_1: u8 = 1;
const X16_Q8_0: u8 = 2;
const X16_Q4K: u8 = 3;
const X16_Q6K: u8 = 4;
const X16_Q5K: u8 = 5;

/// `acc + s · d16 · ad`: sixteen rows' integer sums times their weight scales and one activation scale.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn scale_add(acc: __m512, s: __m512i, d16: __m512, ad: f32) -> __m512 {
    _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(d16, _mm512_set1_ps(ad)), acc)
}

/// The 16-row kernel `K` against `NA` activation rows.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn x16<const NA: usize, const K: u8>(data: &[u8], a: &[ActRow<'_>; NA]) -> [__m512; NA] {
    // SAFETY: forwarded.
    unsafe {
        match K {
            X16_Q4_0 => q4_x16::<NA, false>(data, a),
            X16_Q4_1 => q4_x16::<NA, true>(data, a),
            X16_Q8_0 => q8_x16::<NA>(data, a),
            X16_Q6K => q6k_x16::<NA>(data, a),
            X16_Q5K => q4k_x16::<NA, true>(data, a),
            _ => q4k_x16::<NA, false>(data, a),
        }
    }
}

/// Sixteen 16-row interleaved Q4_K rows (Q5_K with `FIVE`) against `NA` activation rows, one lane per row. Per
/// super-block: the rows' packed 6-bit scales and minimums unpack with word operations in every lane at once (ggml's
/// packing, as [`crate::formats::q4k_scales_mins`]); per sub-block, eight chunks give four codes of each row (low or
/// high nibbles of the pair's 32 bytes; for Q5_K bit `sub` of the matching fifth-bit chunk, tested into a byte mask,
/// adds 16), eight `vpdpbusd` sum them
/// against the activation, and the row's sub-block scale multiplies the sum in integers when the activations share
/// one scale per 256 (`super256`: one conversion per super-block) or in floats per sub-block otherwise; the minimums
/// come off in floats with the activation's per-sub-block sums.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4k_x16<const NA: usize, const FIVE: bool>(data: &[u8], a: &[ActRow<'_>; NA]) -> [__m512; NA] {
    let cb = 16 * if FIVE { 176 } else { 144 };
    // d, dmin, then three chunks of packed scales, for Q5_K eight chunks of fifth bits, then the codes.
    const QH_AT: usize = 256;
    let qs_at = if FIVE { QH_AT + 8 * 64 } else { QH_AT };
    let nsb = data.len() / cb;
    let (low4, low6, low2) =
        (_mm512_set1_epi32(0x0f0f_0f0f), _mm512_set1_epi32(0x3f3f_3f3f), _mm512_set1_epi32(0x0303_0303));
    let (nib, five) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x10));
    let byte = _mm512_set1_epi32(0xFF);
    let sup = a.iter().all(|r| r.super256);
    let mut acc = [_mm512_setzero_ps(); NA];
    for sb in 0..nsb {
        // SAFETY: super-block sb lies inside data; activation rows hold nsb · 256 values (checked by the caller).
        unsafe {
            let ch = data.as_ptr().add(sb * cb);
            if NA == 1 {
                prefetch_ahead(ch, QH_AT);
            }
            let d16 = _mm512_cvtph_ps(_mm256_loadu_si256(ch.cast()));
            let dmin16 = _mm512_cvtph_ps(_mm256_loadu_si256(ch.add(32).cast()));
            let w0 = _mm512_loadu_si512(ch.add(64).cast());
            let w1 = _mm512_loadu_si512(ch.add(128).cast());
            let w2 = _mm512_loadu_si512(ch.add(192).cast());
            // Bytes j of [sc_lo | sc_hi] are sub-block j's scale (j < 4 in sc_lo), likewise the minimums.
            let sc = [
                _mm512_and_si512(w0, low6),
                _mm512_or_si512(
                    _mm512_and_si512(w2, low4),
                    _mm512_slli_epi32::<4>(_mm512_and_si512(_mm512_srli_epi32::<6>(w0), low2)),
                ),
            ];
            let mn = [
                _mm512_and_si512(w1, low6),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi32::<4>(w2), low4),
                    _mm512_slli_epi32::<4>(_mm512_and_si512(_mm512_srli_epi32::<6>(w1), low2)),
                ),
            ];
            let mut isum = [_mm512_setzero_si512(); NA];
            // One activation row loads each code chunk once for both nibble halves; a tile of several keeps one
            // sub-block's eight chunks in registers at a time (both halves' sixteen would spill).
            let per_pass = if NA == 1 { 2 } else { 1 };
            for first in (0..8).step_by(per_pass) {
                let pair = first / 2;
                let mut v = [[_mm512_setzero_si512(); 8]; 2];
                for k in 0..8 {
                    let x = _mm512_loadu_si512(ch.add(qs_at + 64 * (8 * pair + k)).cast());
                    let h = if FIVE { _mm512_loadu_si512(ch.add(QH_AT + 64 * k).cast()) } else { x };
                    if NA == 1 {
                        prefetch_ahead(ch.wrapping_add(qs_at + 64 * (8 * pair + k)), 64);
                        if FIVE && pair == 0 {
                            prefetch_ahead(ch.wrapping_add(QH_AT + 64 * k), 64);
                        }
                    }
                    for (vp, sub) in v.iter_mut().zip(first..first + per_pass) {
                        let c = if sub % 2 == 0 { x } else { _mm512_srli_epi16::<4>(x) };
                        vp[k] = _mm512_and_si512(c, nib);
                        if FIVE {
                            // Bit 4 of a code is clear, so adding 0x10 sets it.
                            let hit = _mm512_test_epi8_mask(h, _mm512_set1_epi8((1u8 << sub) as i8));
                            vp[k] = _mm512_mask_add_epi8(vp[k], hit, vp[k], five);
                        }
                    }
                }
                for (p, v) in v.iter().take(per_pass).enumerate() {
                    let sub = first + p;
                    let b = sb * 8 + sub;
                    let shift = _mm_cvtsi32_si128(8 * (sub as i32 % 4));
                    let scale = _mm512_and_si512(_mm512_srl_epi32(sc[sub / 4], shift), byte);
                    let min = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srl_epi32(mn[sub / 4], shift), byte));
                    let min = _mm512_mul_ps(min, dmin16);
                    for j in 0..NA {
                        let qa = a[j].qs.as_ptr().add(b * QK).cast::<i32>();
                        let (mut s0, mut s1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                        for k in (0..8).step_by(2) {
                            s0 = _mm512_dpbusd_epi32(s0, v[k], _mm512_set1_epi32(qa.add(k).read_unaligned()));
                            s1 = _mm512_dpbusd_epi32(s1, v[k + 1], _mm512_set1_epi32(qa.add(k + 1).read_unaligned()));
                        }
                        let s = _mm512_mullo_epi32(_mm512_add_epi32(s0, s1), scale);
                        if sup {
                            isum[j] = _mm512_add_epi32(isum[j], s);
                        } else {
                            acc[j] = scale_add(acc[j], s, d16, *a[j].ds.get_unchecked(2 * b));
                        }
                        acc[j] = _mm512_fnmadd_ps(min, _mm512_set1_ps(*a[j].ds.get_unchecked(2 * b + 1)), acc[j]);
                    }
                }
            }
            if sup {
                for j in 0..NA {
                    acc[j] = scale_add(acc[j], isum[j], d16, *a[j].ds.get_unchecked(2 * sb * 8));
                }
            }
        }
    }
    acc
}

/// Sixteen 16-row interleaved Q6_K rows against `NA` activation rows, one lane per row. Per half super-block and
/// low-bit run (`t` and `t + 2` share their low-bit bytes as low and high nibbles, all four `t` the high-bit bytes),
/// each chunk of four values of each row is made whole (six bits, 0..=63) with one shift and mask per part, and
/// `vpdpbusd` sums it against the activation; per group of 16 values the `32 · Σq` of the activation
/// ([`ActRow::sums16`]) comes off and the row's signed group scale multiplies the sum in integers, converted once per
/// super-block when the activations share one scale per 256, per block of 32 otherwise.
#[inline]
#[allow(clippy::needless_range_loop)] // k and j index several arrays at once
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q6k_x16<const NA: usize>(data: &[u8], a: &[ActRow<'_>; NA]) -> [__m512; NA] {
    const CB: usize = 16 * 210;
    const QL: usize = 32;
    const QH: usize = QL + 64 * 32;
    const SC: usize = QH + 64 * 16;
    let nsb = data.len() / CB;
    let (m4, m2) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x30));
    let sup = a.iter().all(|r| r.super256);
    let mut acc = [_mm512_setzero_ps(); NA];
    for sb in 0..nsb {
        // SAFETY: super-block sb lies inside data; activation rows hold nsb · 256 values and nsb · 16 group sums
        // (checked by the caller).
        unsafe {
            let ch = data.as_ptr().add(sb * CB);
            if NA == 1 {
                prefetch_ahead(ch, QL);
                prefetch_ahead(ch.wrapping_add(SC), 4 * 64);
            }
            let d16 = _mm512_cvtph_ps(_mm256_loadu_si256(ch.cast()));
            let scw: [__m512i; 4] = std::array::from_fn(|c| _mm512_loadu_si512(ch.add(SC + 64 * c).cast()));
            let mut isum = [_mm512_setzero_si512(); NA];
            for h in 0..2 {
                for p in 0..2 {
                    for g in 0..2 {
                        // Sums of values 16g..16g+16 of blocks t = p (k = 0) and t = p + 2 (k = 1) of this half.
                        let mut s = [[_mm512_setzero_si512(); 2]; NA];
                        for c in 4 * g..4 * g + 4 {
                            let ql = _mm512_loadu_si512(ch.add(QL + 64 * (16 * h + 8 * p + c)).cast());
                            let qh = _mm512_loadu_si512(ch.add(QH + 64 * (8 * h + c)).cast());
                            if NA == 1 {
                                prefetch_ahead(ch.wrapping_add(QL + 64 * (16 * h + 8 * p + c)), 64);
                                if p == 0 {
                                    prefetch_ahead(ch.wrapping_add(QH + 64 * (8 * h + c)), 64);
                                }
                            }
                            // High bits 2t..2t+2 moved to bits 4..6 (16-bit shifts: what crosses a byte is masked).
                            let (hi0, hi1) = if p == 0 {
                                (_mm512_slli_epi16::<4>(qh), qh)
                            } else {
                                (_mm512_slli_epi16::<2>(qh), _mm512_srli_epi16::<2>(qh))
                            };
                            let code = [
                                _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(hi0, m2)),
                                _mm512_or_si512(
                                    _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4),
                                    _mm512_and_si512(hi1, m2),
                                ),
                            ];
                            for j in 0..NA {
                                for (k, code) in code.iter().enumerate() {
                                    let b = sb * 8 + 4 * h + p + 2 * k;
                                    let qa = a[j].qs.as_ptr().add(b * QK + 4 * c).cast::<i32>().read_unaligned();
                                    s[j][k] = _mm512_dpbusd_epi32(s[j][k], *code, _mm512_set1_epi32(qa));
                                }
                            }
                        }
                        for k in 0..2 {
                            let t = p + 2 * k;
                            let grp = 8 * h + 2 * t + g;
                            let sc = _mm512_srai_epi32::<24>(_mm512_sll_epi32(
                                scw[grp / 4],
                                _mm_cvtsi32_si128(24 - 8 * (grp as i32 % 4)),
                            ));
                            let b = sb * 8 + 4 * h + t;
                            for j in 0..NA {
                                let off = _mm512_set1_epi32(32 * *a[j].sums16.get_unchecked(sb * 16 + grp));
                                let v = _mm512_mullo_epi32(_mm512_sub_epi32(s[j][k], off), sc);
                                if sup {
                                    isum[j] = _mm512_add_epi32(isum[j], v);
                                } else {
                                    acc[j] = scale_add(acc[j], v, d16, *a[j].ds.get_unchecked(2 * b));
                                }
                            }
                        }
                    }
                }
            }
            if sup {
                for j in 0..NA {
                    acc[j] = scale_add(acc[j], isum[j], d16, *a[j].ds.get_unchecked(2 * sb * 8));
                }
            }
        }
    }
    acc
}

/// Weight rows `rows` of a 16-row interleaved matrix against every activation row, through kernel `K`: groups of
/// sixteen rows in cache blocks of `ROW_BLOCK` rows, activations in tiles of four (single rows for the rest), each
/// tile's sixteen results per activation row stored as one run.
///
/// # Safety
/// As `matmul`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows_x16<const K: u8>(w: &WeightMatrix<'_>, rows: Range<usize>, acts: &[ActRow<'_>], out: &OutMatrix) {
    let n = acts.len();
    let gb = 16 * w.ty.row_bytes(w.cols);
    let mut lanes = [0f32; 16];
    let (mut g0, g_end) = (rows.start / 16, rows.end / 16);
    while g0 < g_end {
        let g1 = (g0 + ROW_BLOCK / 16).min(g_end);
        let mut j0 = 0;
        while j0 < n {
            let four = n - j0 >= 4;
            for g in g0..g1 {
                let data = &w.data[g * gb..(g + 1) * gb];
                let (v, na) = if four {
                    let a: &[ActRow<'_>; 4] = acts[j0..j0 + 4].try_into().unwrap();
                    // SAFETY: shapes checked by the caller; data is one whole group.
                    (unsafe { x16::<4, K>(data, a) }, 4)
                } else {
                    let a: &[ActRow<'_>; 1] = acts[j0..j0 + 1].try_into().unwrap();
                    // SAFETY: as above.
                    let [v] = unsafe { x16::<1, K>(data, a) };
                    ([v, v, v, v], 1)
                };
                for (dj, acc) in v.iter().take(na).enumerate() {
                    // SAFETY: lanes holds sixteen f32.
                    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *acc) };
                    out.set_run(j0 + dj, 16 * g, &lanes);
                }
            }
            j0 += if four { 4 } else { 1 };
        }
        g0 = g1;
    }
}

/// Sixteen 16-row interleaved Q4_0 / Q4_1 rows ([`crate::repack::interleave16`]) against `NA` activation rows, one
/// lane per row: per block, four registers hold four quant bytes of each row, and each `vpdpbusd` multiplies their
/// low (or high) nibbles with four activation bytes broadcast to every lane, so a block ends in one integer sum per
/// row and one conversion, one scale product and two FMAs finish it for all sixteen rows.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_x16<const NA: usize, const MIN: bool>(data: &[u8], a: &[ActRow<'_>; NA]) -> [__m512; NA] {
    let (cb, qoff) = if MIN { (320, 64) } else { (288, 32) };
    let nb = data.len() / cb;
    let mask = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); NA];
    for b in 0..nb {
        // SAFETY: chunk b lies inside data; activation rows hold nb blocks (checked by the caller).
        unsafe {
            let ch = data.as_ptr().add(b * cb);
            if NA == 1 {
                prefetch_ahead(ch, cb);
            }
            let d16 = _mm512_cvtph_ps(_mm256_loadu_si256(ch.cast()));
            let m16 = if MIN {
                _mm512_cvtph_ps(_mm256_loadu_si256(ch.add(32).cast()))
            } else {
                _mm512_mul_ps(d16, _mm512_set1_ps(-8.0))
            };
            let (mut lo, mut hi) = ([_mm512_setzero_si512(); 4], [_mm512_setzero_si512(); 4]);
            for c in 0..4 {
                let x = _mm512_loadu_si512(ch.add(qoff + 64 * c).cast());
                lo[c] = _mm512_and_si512(x, mask);
                hi[c] = _mm512_and_si512(_mm512_srli_epi16::<4>(x), mask);
            }
            for j in 0..NA {
                // Activation bytes 4c..4c+4 meet chunk c's low nibbles, bytes 16+4c.. its high ones.
                let qa = a[j].qs.as_ptr().add(b * QK).cast::<i32>();
                let (mut s0, mut s1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                for c in 0..4 {
                    s0 = _mm512_dpbusd_epi32(s0, lo[c], _mm512_set1_epi32(qa.add(c).read_unaligned()));
                    s1 = _mm512_dpbusd_epi32(s1, hi[c], _mm512_set1_epi32(qa.add(4 + c).read_unaligned()));
                }
                acc[j] = scale_add(acc[j], _mm512_add_epi32(s0, s1), d16, *a[j].ds.get_unchecked(2 * b));
                acc[j] = _mm512_fmadd_ps(m16, _mm512_set1_ps(*a[j].ds.get_unchecked(2 * b + 1)), acc[j]);
            }
        }
    }
    acc
}

/// Lanes `[r0 ×4, r1 ×4, r2 ×4, r3 ×4]` of the four rows' f16 scales at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn scales16(p: *const u8) -> (__m128, __m512) {
    // SAFETY: the caller points at four readable f16 values.
    let d4 = _mm_cvtph_ps(unsafe { _mm_loadl_epi64(p.cast()) });
    let rep4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    (d4, _mm512_permutexvar_ps(rep4, _mm512_castps128_ps512(d4)))
}

/// The four row sums of a 16-lane accumulator laid out as [`scales16`]'s, plus a four-lane offset.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn fold16(acc: __m512, cor: __m128) -> [f32; 4] {
    let (a0, a1) = (_mm512_castps512_ps128(acc), _mm512_extractf32x4_ps::<1>(acc));
    let (a2, a3) = (_mm512_extractf32x4_ps::<2>(acc), _mm512_extractf32x4_ps::<3>(acc));
    let v = _mm_add_ps(_mm_hadd_ps(_mm_hadd_ps(a0, a1), _mm_hadd_ps(a2, a3)), cor);
    let mut out = [0f32; 4];
    // SAFETY: out holds four f32.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// Four interleaved Q4_0 / Q4_1 (Q5_0 / Q5_1 with `FIVE`: each nibble's fifth bit set from a mask) rows against `NA`
/// activation rows: the four rows' 64 bytes of 4-bit values in one register, each activation half broadcast to the
/// four 128-bit lanes, two `vpdpbusd` per block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_x4<const NA: usize, const MIN: bool, const FIVE: bool>(
    data: &[u8],
    a: &[ActRow<'_>; NA],
    _pre: Option<&[__m256i]>,
) -> [[f32; 4]; NA] {
    let (qh, offset) = (if MIN { 16 } else { 8 }, if FIVE { -16.0 } else { -8.0 });
    let qoff = qh + if FIVE { 16 } else { 0 };
    let cb = qoff + 64;
    let nb = data.len() / cb;
    let five = _mm512_set1_epi8(0x10);
    let mask = _mm512_set1_epi8(0x0F);
    let (mut acc0, mut acc1) = ([_mm512_setzero_ps(); NA], [_mm512_setzero_ps(); NA]);
    let mut cor = [_mm_setzero_ps(); NA];
    macro_rules! block {
        ($b:expr, $acc:ident) => {{
            let b = $b;
            // SAFETY: chunk b lies inside data; activation rows hold nb blocks (checked by the caller).
            unsafe {
                let ch = data.as_ptr().add(b * cb);
                if NA == 1 {
                    prefetch_ahead(ch, cb);
                }
                let (d4, d16) = scales16(ch);
                let m4 = if MIN {
                    _mm_cvtph_ps(_mm_loadl_epi64(ch.add(8).cast()))
                } else {
                    _mm_mul_ps(d4, _mm_set1_ps(offset))
                };
                let x = _mm512_loadu_si512(ch.add(qoff).cast());
                let (mut lo, mut hi) = (_mm512_and_si512(x, mask), _mm512_and_si512(_mm512_srli_epi16::<4>(x), mask));
                if FIVE {
                    // The four rows' fifth bits of each nibble half are one 64-bit mask (repack's order); bit 4 of a
                    // nibble is clear, so adding 0x10 sets it.
                    let bits = |o: usize| (ch.add(qh + o) as *const u64).read_unaligned();
                    lo = _mm512_mask_add_epi8(lo, bits(0), lo, five);
                    hi = _mm512_mask_add_epi8(hi, bits(8), hi, five);
                }
                for j in 0..NA {
                    let qa = a[j].qs.as_ptr().add(b * QK);
                    let alo = _mm512_broadcast_i32x4(_mm_loadu_si128(qa.cast()));
                    let ahi = _mm512_broadcast_i32x4(_mm_loadu_si128(qa.add(16).cast()));
                    let p = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, alo), hi, ahi);
                    let da = _mm512_set1_ps(*a[j].ds.get_unchecked(2 * b));
                    $acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(d16, da), $acc[j]);
                    cor[j] = _mm_fmadd_ps(m4, _mm_set1_ps(*a[j].ds.get_unchecked(2 * b + 1)), cor[j]);
                }
            }
        }};
    }
    paired_blocks!(nb, block; acc0; acc1);
    std::array::from_fn(|j| fold16(_mm512_add_ps(acc0[j], acc1[j]), cor[j]))
}

/// Sixteen 16-row interleaved Q8_0 rows against `NA` activation rows, one lane per row: per block, eight registers
/// hold four quant bytes of each row, made unsigned by flipping their sign bit (`w + 128`, so `vpdpbusd` multiplies
/// them with the signed activations), and the `128 · Σa` this adds comes off with the block's activation sum, as
/// Q4_0's offset of 8 does.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q8_x16<const NA: usize>(data: &[u8], a: &[ActRow<'_>; NA]) -> [__m512; NA] {
    const CB: usize = 16 * 34;
    let nb = data.len() / CB;
    let flip = _mm512_set1_epi8(i8::MIN);
    let mut acc = [_mm512_setzero_ps(); NA];
    for b in 0..nb {
        // SAFETY: chunk b lies inside data; activation rows hold nb blocks (checked by the caller).
        unsafe {
            let ch = data.as_ptr().add(b * CB);
            if NA == 1 {
                prefetch_ahead(ch, CB);
            }
            let d16 = _mm512_cvtph_ps(_mm256_loadu_si256(ch.cast()));
            let m16 = _mm512_mul_ps(d16, _mm512_set1_ps(-128.0));
            let mut u = [_mm512_setzero_si512(); 8];
            for (c, u) in u.iter_mut().enumerate() {
                *u = _mm512_xor_si512(_mm512_loadu_si512(ch.add(32 + 64 * c).cast()), flip);
            }
            for j in 0..NA {
                let qa = a[j].qs.as_ptr().add(b * QK).cast::<i32>();
                let (mut s0, mut s1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                for c in (0..8).step_by(2) {
                    s0 = _mm512_dpbusd_epi32(s0, u[c], _mm512_set1_epi32(qa.add(c).read_unaligned()));
                    s1 = _mm512_dpbusd_epi32(s1, u[c + 1], _mm512_set1_epi32(qa.add(c + 1).read_unaligned()));
                }
                acc[j] = scale_add(acc[j], _mm512_add_epi32(s0, s1), d16, *a[j].ds.get_unchecked(2 * b));
                acc[j] = _mm512_fmadd_ps(m16, _mm512_set1_ps(*a[j].ds.get_unchecked(2 * b + 1)), acc[j]);
            }
        }
    }
    acc
}

/// Four interleaved Q8_0 rows against `NA` activation rows: signed × signed as |w| × (a with w's sign), two rows'
/// 32 bytes per register, each row's eight partial sums folded to four lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q8_x4<const NA: usize>(data: &[u8], a: &[ActRow<'_>; NA], _pre: Option<&[__m256i]>) -> [[f32; 4]; NA] {
    let nb = data.len() / 136;
    // [r0 0..3, r1 0..3, r2 0..3, r3 0..3] and the lanes 4..7 of each row, from (rows 0,1) and (rows 2,3).
    let lo_idx = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    let hi_idx = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    let zero = _mm512_setzero_si512();
    let (mut acc0, mut acc1) = ([_mm512_setzero_ps(); NA], [_mm512_setzero_ps(); NA]);
    macro_rules! block {
        ($b:expr, $acc:ident) => {{
            let b = $b;
            // SAFETY: as in q4_x4.
            unsafe {
                let ch = data.as_ptr().add(b * 136);
                if NA == 1 {
                    prefetch_ahead(ch, 136);
                }
                let (_, d16) = scales16(ch);
                let w01 = _mm512_loadu_si512(ch.add(8).cast());
                let w23 = _mm512_loadu_si512(ch.add(72).cast());
                let (u01, u23) = (_mm512_abs_epi8(w01), _mm512_abs_epi8(w23));
                let (n01, n23) = (_mm512_movepi8_mask(w01), _mm512_movepi8_mask(w23));
                for j in 0..NA {
                    let av = _mm512_broadcast_i64x4(_mm256_loadu_si256(a[j].qs.as_ptr().add(b * QK).cast()));
                    let p01 = _mm512_dpbusd_epi32(zero, u01, _mm512_mask_sub_epi8(av, n01, zero, av));
                    let p23 = _mm512_dpbusd_epi32(zero, u23, _mm512_mask_sub_epi8(av, n23, zero, av));
                    let p = _mm512_add_epi32(
                        _mm512_permutex2var_epi32(p01, lo_idx, p23),
                        _mm512_permutex2var_epi32(p01, hi_idx, p23),
                    );
                    let da = _mm512_set1_ps(*a[j].ds.get_unchecked(2 * b));
                    $acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(d16, da), $acc[j]);
                }
            }
        }};
    }
    paired_blocks!(nb, block; acc0; acc1);
    std::array::from_fn(|j| fold16(_mm512_add_ps(acc0[j], acc1[j]), _mm_setzero_ps()))
}

//! x86-64 AVX2 + FMA + F16C kernels: 4-bit and 8-bit weights against 8-bit activations with `vpmaddubsw`, floats
//! with FMA. Each tile reads one weight row once for up to four activation rows (prefill reuses the unpacked
//! weights; decode is the one-row case). The scalar reference in [`crate::scalar`] defines the result.

use std::arch::x86_64::*;

use std::ops::Range;

use crate::acts::{ActRow, QK};
use crate::formats::{q4k_scales_mins, WeightType};
use crate::matmul::{OutMatrix, WeightMatrix};

/// Weight rows per cache block (for a 576-wide Q4_1 row, 64 rows are 23 KiB).
const ROW_BLOCK: usize = 64;

/// One weight row against 1 to 4 activation rows.
///
/// # Safety
/// The CPU has avx2, fma and f16c; `w` and every row of `acts` have the shapes [`crate::KernelSet::dot_tile`] checks.
pub unsafe fn dot_tile(ty: WeightType, w: &[u8], acts: &[ActRow<'_>], out: &mut [f32]) {
    let m = WeightMatrix { layout: crate::Layout::Plain, ty, rows: 1, cols: acts[0].x.len(), data: w };
    let mut tmp = [0f32; 4];
    // SAFETY: forwarded; tmp holds acts.len() ≤ 4 columns of one row, one writer.
    unsafe { matmul(&m, 0..1, acts, &OutMatrix::new(&mut tmp, 1)) };
    out.copy_from_slice(&tmp[..acts.len()]);
}

/// Weight rows `rows` of `w` against every activation row, into `out`: rows in cache blocks, activations in tiles
/// of four, each type's tile inlined into its own loop.
///
/// # Safety
/// As [`dot_tile`], for every row; no other thread writes these elements of `out`.
pub unsafe fn matmul(w: &WeightMatrix<'_>, rows: Range<usize>, acts: &[ActRow<'_>], out: &OutMatrix) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if w.layout == crate::Layout::Interleaved4 {
            return match w.ty {
                WeightType::Q4_0 => rows_x4_q4_0(w, rows, acts, out),
                WeightType::Q4_1 => rows_x4_q4_1(w, rows, acts, out),
                WeightType::Q5_0 => rows_x4_q5_0(w, rows, acts, out),
                WeightType::Q5_1 => rows_x4_q5_1(w, rows, acts, out),
                _ => rows_x4_q8_0(w, rows, acts, out),
            };
        }
        match w.ty {
            WeightType::Q4_0 => rows_q4_0(w, rows, acts, out),
            WeightType::Q4_1 => rows_q4_1(w, rows, acts, out),
            WeightType::Q8_0 => rows_q8_0(w, rows, acts, out),
            // Q5 rows in file order (interleave off, or a row count not a multiple of four): the scalar reference.
            WeightType::Q5_0 | WeightType::Q5_1 => {
                crate::matmul::generic_rows(&crate::KernelSet::scalar(), w, rows, acts, out)
            }
            WeightType::Q4K if acts.iter().all(|a| a.super256) => rows_q4k_s(w, rows, acts, out),
            WeightType::Q6K if acts.iter().all(|a| a.super256) => rows_q6k_s(w, rows, acts, out),
            WeightType::Q5K if acts.iter().all(|a| a.super256) => rows_q5k_s(w, rows, acts, out),
            WeightType::Q4K => rows_q4k(w, rows, acts, out),
            WeightType::Q5K => rows_q5k(w, rows, acts, out),
            WeightType::Q6K => rows_q6k(w, rows, acts, out),
            WeightType::F32 => rows_f32(w, rows, acts, out),
            WeightType::F16 => rows_f16(w, rows, acts, out),
        }
    }
}

/// Weight rows `r0..r1` against the `$n` activation rows from `j0`, through a general tile kernel.
macro_rules! tile_rows {
    ($tile:ident $(, $c:expr)?; $n:literal, $w:expr, $acts:expr, $out:expr, $j0:expr, $r0:expr, $r1:expr) => {{
        let j0: usize = $j0;
        let a: &[ActRow<'_>; $n] = $acts[j0..j0 + $n].try_into().unwrap();
        for r in $r0..$r1 {
            // SAFETY: shapes checked by the caller.
            let v = unsafe { $tile::<$n $(, $c)?>($w.row(r), a) };
            for (dj, x) in v.into_iter().enumerate() {
                $out.set(j0 + dj, r, x);
            }
        }
    }};
}

/// The last one to three activation rows, from `j0`.
macro_rules! tail_rows {
    ($tile:ident $(, $c:expr)?; $w:expr, $acts:expr, $out:expr, $j0:expr, $r0:expr, $r1:expr) => {
        match $acts.len() - $j0 {
            3 => tile_rows!($tile $(, $c)?; 3, $w, $acts, $out, $j0, $r0, $r1),
            2 => tile_rows!($tile $(, $c)?; 2, $w, $acts, $out, $j0, $r0, $r1),
            1 => tile_rows!($tile $(, $c)?; 1, $w, $acts, $out, $j0, $r0, $r1),
            _ => {}
        }
    };
}

/// The loop of the other types: rows in cache blocks, activations in tiles of four, then the rest.
macro_rules! row_loop {
    ($name:ident, $tile:ident $(, $c:expr)?) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $name(w: &WeightMatrix<'_>, rows: Range<usize>, acts: &[ActRow<'_>], out: &OutMatrix) {
            let mut r0 = rows.start;
            while r0 < rows.end {
                let r1 = (r0 + ROW_BLOCK).min(rows.end);
                let mut j0 = 0;
                while j0 + 4 <= acts.len() {
                    tile_rows!($tile $(, $c)?; 4, w, acts, out, j0, r0, r1);
                    j0 += 4;
                }
                tail_rows!($tile $(, $c)?; w, acts, out, j0, r0, r1);
                r0 = r1;
            }
        }
    };
}

/// The loop of the 32-value block types: full tiles of four activation rows go through a `gemm4` kernel that
/// sums the four rows' integer products horizontally into one vector (one conversion and one FMA per block for all
/// four), with the tile's scales packed once per call; remaining rows use the general tile.
macro_rules! gemm_loop {
    ($name:ident, $gemm4:ident, $tile:ident $(, $c:expr)?) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $name(w: &WeightMatrix<'_>, rows: Range<usize>, acts: &[ActRow<'_>], out: &OutMatrix) {
            let n = acts.len();
            let nb = w.cols / QK;
            let full = n / 4;
            let packed: Vec<[f32; 8]> = (0..full)
                .flat_map(|t| {
                    let a = &acts[4 * t..4 * t + 4];
                    (0..nb).map(move |b| std::array::from_fn(|i| a[i % 4].ds[2 * b + i / 4]))
                })
                .collect();
            let mut r0 = rows.start;
            while r0 < rows.end {
                let r1 = (r0 + ROW_BLOCK).min(rows.end);
                for t in 0..full {
                    let a: &[ActRow<'_>; 4] = acts[4 * t..4 * t + 4].try_into().unwrap();
                    let pk = &packed[t * nb..(t + 1) * nb];
                    for r in r0..r1 {
                        // SAFETY: shapes checked by the caller; pk holds nb blocks.
                        let v = unsafe { $gemm4 $(::<{ $c }>)? (w.row(r), a, pk) };
                        for (dj, x) in v.into_iter().enumerate() {
                            out.set(4 * t + dj, r, x);
                        }
                    }
                }
                tail_rows!($tile $(, $c)?; w, acts, out, 4 * full, r0, r1);
                r0 = r1;
            }
        }
    };
}

gemm_loop!(rows_q4_0, q4_gemm4, q4_tile, false);
gemm_loop!(rows_q4_1, q4_gemm4, q4_tile, true);
gemm_loop!(rows_q8_0, q8_gemm4, q8_tile);
row_loop!(rows_q4k, q4k_tile, false);
row_loop!(rows_q5k, q4k_tile, true);
row_loop!(rows_q6k, q6k_tile);
row_loop!(rows_q4k_s, q4k_tile_s, false);
row_loop!(rows_q5k_s, q4k_tile_s, true);
row_loop!(rows_q6k_s, q6k_tile_s);
row_loop!(rows_f32, float_tile, false);
row_loop!(rows_f16, float_tile, true);

/// Runs `$block!(b, even accumulators…)` and `$block!(b + 1, odd accumulators…)` over blocks `0..nb` in pairs (an
/// odd last block goes to the even ones), so consecutive blocks do not wait on each other's additions.
macro_rules! paired_blocks {
    ($nb:expr, $block:ident; $($even:ident),+; $($odd:ident),+) => {{
        let nb: usize = $nb;
        let mut b = 0;
        while b + 2 <= nb {
            $block!(b, $($even),+);
            $block!(b + 1, $($odd),+);
            b += 2;
        }
        if b < nb {
            $block!(b, $($even),+);
        }
    }};
}
pub(crate) use paired_blocks;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Lane 1 of `v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lane1(v: __m128) -> f32 {
    _mm_cvtss_f32(_mm_movehdup_ps(v))
}

/// The f16 at `p` as f32, in lanes 0 (and, with `pair`, the next f16 in lane 1).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16s(p: *const u8, pair: bool) -> __m128 {
    // SAFETY: the caller points at 2 (4 with `pair`) readable bytes.
    let bits = unsafe {
        if pair {
            p.cast::<i32>().read_unaligned()
        } else {
            p.cast::<u16>().read_unaligned() as i32
        }
    };
    _mm_cvtph_ps(_mm_cvtsi32_si128(bits))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn load32(p: *const i8) -> __m256i {
    // SAFETY: the caller points at 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The block's `(d, s)` activation pair in lanes 0 and 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn ds(a: &ActRow<'_>, b: usize) -> __m128 {
    // SAFETY: the caller checked that the row holds block b.
    unsafe { _mm_castpd_ps(_mm_load_sd(a.ds.as_ptr().add(2 * b).cast())) }
}

/// How far ahead of its reads a one-row (matrix-vector, decode) kernel prefetches: a matrix is one long run of cache
/// lines, and on the AVX-512 machine this project measured, the hardware prefetcher alone left such kernels well
/// below the memory's read bandwidth (the 16-row Q4_K one at about half).
pub(crate) const PF_BYTES: usize = 16384;

/// Prefetches into L1 the `len` bytes [`PF_BYTES`] past `p`; an address past the matrix is harmless (a prefetch
/// never faults and reads nothing architecturally).
#[inline]
pub(crate) fn prefetch_ahead(p: *const u8, len: usize) {
    for l in (0..len).step_by(64) {
        // SAFETY: see above; SSE is part of x86-64.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PF_BYTES + l).cast()) };
    }
}

/// Sum of the 32 products u8 × i8, as 8 lanes of i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(u: __m256i, a: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), _mm256_set1_epi16(1))
}

/// Q4_0 (`MIN` false) and Q4_1 (`MIN` true): Σ_b d·d_a·Σ u·q_a + m·s_a, with m = −8·d for Q4_0. Blocks go in
/// pairs into two accumulators so consecutive blocks do not wait on each other's additions.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_tile<const N: usize, const MIN: bool>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let (bs, off) = if MIN { (20, 4) } else { (18, 2) };
    let nb = w.len() / bs;
    let mask = _mm256_set1_epi8(0x0F);
    let (mut acc0, mut acc1) = ([_mm256_setzero_ps(); N], [_mm256_setzero_ps(); N]);
    let (mut cor0, mut cor1) = ([_mm_setzero_ps(); N], [_mm_setzero_ps(); N]);
    macro_rules! block {
        ($b:expr, $acc:ident, $cor:ident) => {{
            let b = $b;
            // SAFETY: block b lies inside w; activation rows hold nb blocks (checked by the caller).
            unsafe {
                let blk = w.as_ptr().add(b * bs);
                // [d, m] for Q4_1; [d, d] for Q4_0 (its offset is −8·d·s, scaled at the end).
                let dm = if MIN { f16s(blk, true) } else { _mm_moveldup_ps(f16s(blk, false)) };
                let raw = _mm_loadu_si128(blk.add(off).cast());
                let u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), mask);
                for j in 0..N {
                    let prod = _mm_mul_ps(dm, ds(&a[j], b)); // [d·d_a, m·s_a]
                    $cor[j] = _mm_add_ps($cor[j], prod);
                    let p = dot_u8_i8(u, load32(a[j].qs.as_ptr().add(b * QK)));
                    $acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcastss_ps(prod), $acc[j]);
                }
            }
        }};
    }
    paired_blocks!(nb, block; acc0, cor0; acc1, cor1);
    std::array::from_fn(|j| {
        let c = lane1(_mm_add_ps(cor0[j], cor1[j]));
        hsum(_mm256_add_ps(acc0[j], acc1[j])) + if MIN { c } else { -8.0 * c }
    })
}

/// Lanes `[j0, j1, j2, j3 | j0, j1, j2, j3]` of four rows' 8-lane integer sums, each lane a partial sum.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hadd4(p: [__m256i; 4]) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3])))
}

/// The four sums of an accumulator laid out as [`hadd4`]'s, plus a four-lane offset.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn fold4(acc: __m256, cor: __m128) -> [f32; 4] {
    let v = _mm_add_ps(_mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)), cor);
    let mut out = [0f32; 4];
    // SAFETY: out holds four f32.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// Q4_0 / Q4_1 against a full tile of four activation rows; `pk[b]` = the tile's `[d0..d3, s0..s3]` for block b.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_gemm4<const MIN: bool>(w: &[u8], a: &[ActRow<'_>; 4], pk: &[[f32; 8]]) -> [f32; 4] {
    let (bs, off) = if MIN { (20, 4) } else { (18, 2) };
    let nb = w.len() / bs;
    let mask = _mm256_set1_epi8(0x0F);
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let (mut cor0, mut cor1) = (_mm_setzero_ps(), _mm_setzero_ps());
    macro_rules! block {
        ($b:expr, $acc:ident, $cor:ident) => {{
            let b = $b;
            // SAFETY: block b lies inside w and every activation row; pk holds nb entries.
            unsafe {
                let blk = w.as_ptr().add(b * bs);
                let dm = f16s(blk, MIN);
                let d = _mm256_broadcastss_ps(dm);
                let m = if MIN { _mm_movehdup_ps(dm) } else { _mm_mul_ss(dm, _mm_set_ss(-8.0)) };
                let raw = _mm_loadu_si128(blk.add(off).cast());
                let u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), mask);
                let p: [__m256i; 4] = std::array::from_fn(|j| dot_u8_i8(u, load32(a[j].qs.as_ptr().add(b * QK))));
                let pkb = pk.get_unchecked(b).as_ptr();
                let da = _mm256_broadcast_ps(&*pkb.cast::<__m128>());
                $acc = _mm256_fmadd_ps(hadd4(p), _mm256_mul_ps(d, da), $acc);
                $cor = _mm_fmadd_ps(_mm_broadcastss_ps(m), _mm_loadu_ps(pkb.add(4)), $cor);
            }
        }};
    }
    paired_blocks!(nb, block; acc0, cor0; acc1, cor1);
    fold4(_mm256_add_ps(acc0, acc1), _mm_add_ps(cor0, cor1))
}

/// Q8_0 against a full tile of four activation rows (scales as in [`q4_gemm4`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_gemm4(w: &[u8], a: &[ActRow<'_>; 4], pk: &[[f32; 8]]) -> [f32; 4] {
    let nb = w.len() / 34;
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    macro_rules! block {
        ($b:expr, $acc:ident) => {{
            let b = $b;
            // SAFETY: as in q4_gemm4.
            unsafe {
                let blk = w.as_ptr().add(b * 34);
                let d = _mm256_broadcastss_ps(f16s(blk, false));
                let q = load32(blk.add(2).cast());
                let uq = _mm256_sign_epi8(q, q);
                let p: [__m256i; 4] =
                    std::array::from_fn(|j| dot_u8_i8(uq, _mm256_sign_epi8(load32(a[j].qs.as_ptr().add(b * QK)), q)));
                let da = _mm256_broadcast_ps(&*pk.get_unchecked(b).as_ptr().cast::<__m128>());
                $acc = _mm256_fmadd_ps(hadd4(p), _mm256_mul_ps(d, da), $acc);
            }
        }};
    }
    paired_blocks!(nb, block; acc0; acc1);
    fold4(_mm256_add_ps(acc0, acc1), _mm_setzero_ps())
}

/// Q8_0: Σ_b d·d_a·Σ q·q_a, signed × signed through |q| and sign-adjusted activations.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_tile<const N: usize>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let nb = w.len() / 34;
    let (mut acc0, mut acc1) = ([_mm256_setzero_ps(); N], [_mm256_setzero_ps(); N]);
    macro_rules! block {
        ($b:expr, $acc:ident) => {{
            let b = $b;
            // SAFETY: as in q4_tile.
            unsafe {
                let blk = w.as_ptr().add(b * 34);
                let d = f16s(blk, false);
                let q = load32(blk.add(2).cast());
                let uq = _mm256_sign_epi8(q, q);
                for j in 0..N {
                    let sa = _mm256_sign_epi8(load32(a[j].qs.as_ptr().add(b * QK)), q);
                    let p = dot_u8_i8(uq, sa);
                    let sc = _mm256_broadcastss_ps(_mm_mul_ss(d, ds(&a[j], b)));
                    $acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, $acc[j]);
                }
            }
        }};
    }
    paired_blocks!(nb, block; acc0; acc1);
    std::array::from_fn(|j| hsum(_mm256_add_ps(acc0[j], acc1[j])))
}

/// Q4_K (Q5_K with `FIVE`): per sub-block of 32, d·sc·d_a·Σ u·q_a − dmin·m·s_a.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_tile<const N: usize, const FIVE: bool>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let (bytes, qs) = k_layout(FIVE);
    let (mut acc0, mut acc1) = ([_mm256_setzero_ps(); N], [_mm256_setzero_ps(); N]);
    let mut corr = [0f32; N];
    for (sb, blk) in w.chunks_exact(bytes).enumerate() {
        // SAFETY: as in q4_tile; blk is one whole super-block.
        unsafe {
            let dd = f16s(blk.as_ptr(), true);
            let (d, dmin) = (_mm_cvtss_f32(dd), lane1(dd));
            let sm = q4k_scales_mins(&blk[4..16]);
            for c in 0..4 {
                let (lo, hi) = k_codes::<FIVE>(blk, qs, c);
                let (s0, s1) = (2 * c, 2 * c + 1);
                let (b0, b1) = (sb * 8 + s0, sb * 8 + s1);
                for j in 0..N {
                    let (p0, p1) = (
                        dot_u8_i8(lo, load32(a[j].qs.as_ptr().add(b0 * QK))),
                        dot_u8_i8(hi, load32(a[j].qs.as_ptr().add(b1 * QK))),
                    );
                    let (da0, da1) = (ds(&a[j], b0), ds(&a[j], b1));
                    let sc0 = _mm256_set1_ps(d * sm[s0] as f32 * _mm_cvtss_f32(da0));
                    let sc1 = _mm256_set1_ps(d * sm[s1] as f32 * _mm_cvtss_f32(da1));
                    acc0[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), sc0, acc0[j]);
                    acc1[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), sc1, acc1[j]);
                    corr[j] -= dmin * (sm[8 + s0] as f32 * lane1(da0) + sm[8 + s1] as f32 * lane1(da1));
                }
            }
        }
    }
    std::array::from_fn(|j| hsum(_mm256_add_ps(acc0[j], acc1[j])) + corr[j])
}

/// Super-block bytes and where the 4-bit codes start: Q4_K (144, 16) or, with `five`, Q5_K (176, 48: its 32 bytes of
/// fifth bits come first, at 16).
#[inline]
fn k_layout(five: bool) -> (usize, usize) {
    if five {
        (176, 48)
    } else {
        (144, 16)
    }
}

/// The codes of 64-value run `c` of a Q4_K / Q5_K super-block: its first and second 32 values, each byte 0..=15 (or,
/// for Q5_K, 0..=31 with the fifth bit from bit `2c` / `2c + 1` of the fifth-bit bytes).
///
/// # Safety
/// `blk` is one whole super-block of that type; the CPU has avx2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_codes<const FIVE: bool>(blk: &[u8], qs: usize, c: usize) -> (__m256i, __m256i) {
    let mask = _mm256_set1_epi8(0x0F);
    // SAFETY: the run lies inside the super-block (the caller's contract).
    let raw = unsafe { load32(blk.as_ptr().add(qs + 32 * c).cast()) };
    let (mut lo, mut hi) = (_mm256_and_si256(raw, mask), _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask));
    if FIVE {
        // SAFETY: the 32 fifth-bit bytes are at 16.
        let qh = unsafe { load32(blk.as_ptr().add(16).cast()) };
        let one = _mm256_set1_epi8(1);
        // Bit k of every byte, moved to bit 4 (a shift within 16-bit lanes, then one bit kept per byte).
        let bit = |k: usize| {
            let v = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(k as i32)), one);
            _mm256_slli_epi16(v, 4)
        };
        lo = _mm256_or_si256(lo, bit(2 * c));
        hi = _mm256_or_si256(hi, bit(2 * c + 1));
    }
    (lo, hi)
}

/// Q4_K (Q5_K with `FIVE`) against activations with one scale per 256 values (`ActRow::super256`, ggml's Q8_K): per super-block,
/// d·d_a·Σ_i sc_i·(u_i·q_a_i), the sub-block scales applied in integers (`vpmaddwd`), minus dmin·Σ_i m_i·s_i
/// accumulated in a vector (the eight `s_i` gathered from the activation's `(d, s)` pairs with one shuffle).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_tile_s<const N: usize, const FIVE: bool>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let (bytes, qs) = k_layout(FIVE);
    // The order the shuffle below leaves the eight `s_i` in, for the minimums to match.
    let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    // vpshufb masks that repeat 16-bit element `i` of a 128-bit lane, for the scales of sub-blocks 2c and 2c + 1.
    let rep = |i: i8| _mm256_set1_epi16(i16::from_le_bytes([(2 * i) as u8, (2 * i + 1) as u8]));
    let mut acc = [_mm256_setzero_ps(); N];
    let mut macc = [_mm256_setzero_ps(); N];
    for (sb, blk) in w.chunks_exact(bytes).enumerate() {
        // SAFETY: as in q4_tile; blk is one whole super-block, each activation row holds its 256 values.
        unsafe {
            let dd = f16s(blk.as_ptr(), true);
            let (d, dmin) = (_mm_cvtss_f32(dd), lane1(dd));
            let sm = q4k_scales_mins(&blk[4..16]);
            let packed = _mm_loadu_si128(sm.as_ptr().cast());
            // Eight scales as i16 in both 128-bit lanes; minimums as f32 times dmin, in `order`.
            let sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(packed));
            let mins =
                _mm256_permutevar8x32_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(packed, 8))), order);
            let mins = _mm256_mul_ps(mins, _mm256_set1_ps(dmin));
            let mut isum = [_mm256_setzero_si256(); N];
            for c in 0..4 {
                let (lo, hi) = k_codes::<FIVE>(blk, qs, c);
                let sc0 = _mm256_shuffle_epi8(sc16, rep(2 * c as i8));
                let sc1 = _mm256_shuffle_epi8(sc16, rep(2 * c as i8 + 1));
                let b0 = sb * 8 + 2 * c;
                for j in 0..N {
                    let q0 = load32(a[j].qs.as_ptr().add(b0 * QK));
                    let q1 = load32(a[j].qs.as_ptr().add((b0 + 1) * QK));
                    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, q0), sc0);
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, q1), sc1);
                    isum[j] = _mm256_add_epi32(isum[j], _mm256_add_epi32(p0, p1));
                }
            }
            for j in 0..N {
                let ds = a[j].ds.as_ptr().add(2 * sb * 8);
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(d * *ds), acc[j]);
                let (v0, v1) = (_mm256_loadu_ps(ds), _mm256_loadu_ps(ds.add(8)));
                let s8 = _mm256_shuffle_ps(v0, v1, 0b11_01_11_01); // [s0 s1 s4 s5 | s2 s3 s6 s7]
                macc[j] = _mm256_fmadd_ps(mins, s8, macc[j]);
            }
        }
    }
    std::array::from_fn(|j| hsum(acc[j]) - hsum(macc[j]))
}

/// Half `h` (128 values) of a Q6_K super-block: its four runs of 32 six-bit codes (0..=63, the low four bits from
/// `ql`, the high two from `qh`) and, per run, its two group scales as i16 (one per 128-bit lane).
///
/// # Safety
/// `blk` is one whole super-block (210 bytes); the CPU has avx2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_half(blk: &[u8], h: usize) -> ([__m256i; 4], [__m256i; 4]) {
    let (m4, m2) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(3));
    // SAFETY: the offsets lie inside one super-block (the caller's contract).
    unsafe {
        let ql0 = load32(blk.as_ptr().add(64 * h).cast());
        let ql1 = load32(blk.as_ptr().add(64 * h + 32).cast());
        let qh = load32(blk.as_ptr().add(128 + 32 * h).cast());
        let hi = |v: __m256i| _mm256_slli_epi16(_mm256_and_si256(v, m2), 4);
        let qs = [
            _mm256_or_si256(_mm256_and_si256(ql0, m4), hi(qh)),
            _mm256_or_si256(_mm256_and_si256(ql1, m4), hi(_mm256_srli_epi16(qh, 2))),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), hi(_mm256_srli_epi16(qh, 4))),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), hi(_mm256_srli_epi16(qh, 6))),
        ];
        let sc = |t: usize, g: usize| *blk.get_unchecked(192 + 8 * h + 2 * t + g) as i8 as i16;
        let scv = std::array::from_fn(|t| _mm256_set_m128i(_mm_set1_epi16(sc(t, 1)), _mm_set1_epi16(sc(t, 0))));
        (qs, scv)
    }
}

/// Q6_K against activations with one scale per 256 values: per super-block, d·d_a·Σ_g sc_g·((q − 32)·q_a) with the
/// group scales applied in integers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_tile_s<const N: usize>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let k32 = _mm256_set1_epi8(32);
    let mut acc = [_mm256_setzero_ps(); N];
    for (sb, blk) in w.chunks_exact(210).enumerate() {
        // SAFETY: as in q4_tile; blk is one whole super-block, each activation row holds its 256 values.
        unsafe {
            let d = _mm_cvtss_f32(f16s(blk.as_ptr().add(208), false));
            let mut isum = [_mm256_setzero_si256(); N];
            for h in 0..2 {
                let (qs, scv) = q6k_half(blk, h);
                for j in 0..N {
                    for t in 0..4 {
                        let qa = load32(a[j].qs.as_ptr().add((sb * 8 + h * 4 + t) * QK));
                        let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(qs[t], qa), _mm256_maddubs_epi16(k32, qa));
                        isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(p16, scv[t]));
                    }
                }
            }
            for j in 0..N {
                let da = *a[j].ds.as_ptr().add(2 * sb * 8);
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(d * da), acc[j]);
            }
        }
    }
    std::array::from_fn(|j| hsum(acc[j]))
}

/// Q6_K: per group of 16, d·sc·d_a·Σ (q − 32)·q_a.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_tile<const N: usize>(w: &[u8], a: &[ActRow<'_>; N]) -> [f32; N] {
    let k32 = _mm256_set1_epi8(32);
    let (mut acc0, mut acc1) = ([_mm256_setzero_ps(); N], [_mm256_setzero_ps(); N]);
    for (sb, blk) in w.chunks_exact(210).enumerate() {
        // SAFETY: as in q4_tile; blk is one whole super-block.
        unsafe {
            let d = _mm_cvtss_f32(f16s(blk.as_ptr().add(208), false));
            for h in 0..2 {
                let (qs, scv) = q6k_half(blk, h);
                for j in 0..N {
                    let part = |t: usize| {
                        let b = sb * 8 + h * 4 + t;
                        let qa = load32(a[j].qs.as_ptr().add(b * QK));
                        let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(qs[t], qa), _mm256_maddubs_epi16(k32, qa));
                        let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, scv[t]));
                        (p, _mm256_set1_ps(d * _mm_cvtss_f32(ds(&a[j], b))))
                    };
                    let (p0, s0) = part(0);
                    let (p1, s1) = part(1);
                    let (p2, s2) = part(2);
                    let (p3, s3) = part(3);
                    acc0[j] = _mm256_fmadd_ps(p2, s2, _mm256_fmadd_ps(p0, s0, acc0[j]));
                    acc1[j] = _mm256_fmadd_ps(p3, s3, _mm256_fmadd_ps(p1, s1, acc1[j]));
                }
            }
        }
    }
    std::array::from_fn(|j| hsum(_mm256_add_ps(acc0[j], acc1[j])))
}

/// F32 (`HALF` false) and F16 (`HALF` true) weights against f32 activations.
#[inline]
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
    // SAFETY: 32 values are readable in x (asserted).
    let amax = unsafe {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
        let sign = _mm256_set1_ps(-0.0);
        let abs = |v: __m256| _mm256_andnot_ps(sign, v);
        let m = _mm256_max_ps(_mm256_max_ps(abs(v[0]), abs(v[1])), _mm256_max_ps(abs(v[2]), abs(v[3])));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
    };
    let d = amax / 127.0;
    // SAFETY: as asserted.
    (d, unsafe { quantize_block_with(x, q, d) })
}

/// AVX2 version of [`crate::scalar::quantize_block_with`] (bit-identical).
///
/// # Safety
/// The CPU has avx2; `x` and `q` hold at least 32 values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_block_with(x: &[f32], q: &mut [i8], d: f32) -> f32 {
    assert!(x.len() >= QK && q.len() >= QK);
    // SAFETY: 32 values are readable in x and writable in q (asserted).
    unsafe {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
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
        d * total as f32
    }
}

/// AVX2 version of [`crate::scalar::scores`] for head widths that are multiples of 8: eight keys per step, one
/// query slice against eight key slices, then one transposing reduction for the eight sums.
///
/// # Safety
/// The CPU has avx2 and fma; `q.len() % 8 == 0`; every key row lies inside `keys`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
    let hd = q.len();
    let n = out.len();
    let sv = _mm256_set1_ps(scale);
    let mut t = 0;
    while t + 8 <= n {
        let mut acc = [_mm256_setzero_ps(); 8];
        for c in (0..hd).step_by(8) {
            // SAFETY: keys t..t+8 lie inside `keys` (checked by the caller), c + 8 <= hd.
            unsafe {
                let qc = _mm256_loadu_ps(q.as_ptr().add(c));
                for (u, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(qc, _mm256_loadu_ps(keys.as_ptr().add((t + u) * stride + c)), *a);
                }
            }
        }
        let u0 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
        let u1 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
        let v = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
        // SAFETY: t + 8 <= n.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(t), _mm256_mul_ps(v, sv)) };
        t += 8;
    }
    for (t, o) in out.iter_mut().enumerate().skip(t) {
        let k = &keys[t * stride..][..hd];
        let mut s = _mm256_setzero_ps();
        for c in (0..hd).step_by(8) {
            // SAFETY: c + 8 <= hd values in q and k.
            unsafe { s = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(c)), _mm256_loadu_ps(k.as_ptr().add(c)), s) };
        }
        *o = scale * hsum(s);
    }
}

/// e^x for eight lanes: n = round(x·log2 e), r = x − n·ln 2 (in two parts), a degree-6 polynomial for e^r, times
/// 2^n through the exponent bits; inputs clamped to ±87.3 (relative error about 2e-7).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3)), _mm256_set1_ps(87.3));
    let n = _mm256_round_ps(
        _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
    );
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_2e-4);
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0));
    let pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    _mm256_mul_ps(y, _mm256_castsi256_ps(pow2))
}

/// AVX2 versions of [`crate::scalar::swiglu`] (`GELU` false) and [`crate::scalar::geglu`] (`GELU` true):
/// `g · σ(z) · u` with `z = g` or GELU's `2·√(2/π)·(g + 0.044715·g³)`, eight lanes at a time through [`exp8`].
///
/// # Safety
/// The CPU has avx2 and fma; the three slices have one length.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn glu<const GELU: bool>(out: &mut [f32], gate: &[f32], up: &[f32]) {
    let n = out.len();
    let main = n / 8 * 8;
    let (one, c, k) = (_mm256_set1_ps(1.0), _mm256_set1_ps(2.0 * 0.797_884_6), _mm256_set1_ps(0.044715));
    let mut i = 0;
    while i < main {
        // SAFETY: i + 8 <= n for all three slices (equal lengths).
        unsafe {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let z =
                if GELU { _mm256_mul_ps(_mm256_mul_ps(c, g), _mm256_fmadd_ps(_mm256_mul_ps(k, g), g, one)) } else { g };
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), z));
            let y = _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up.as_ptr().add(i)));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), y);
        }
        i += 8;
    }
    let (o, g, u) = (&mut out[main..], &gate[main..], &up[main..]);
    if GELU {
        crate::scalar::geglu(o, g, u)
    } else {
        crate::scalar::swiglu(o, g, u)
    }
}

/// AVX2 version of [`crate::scalar::softmax`].
///
/// # Safety
/// The CPU has avx2 and fma.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn softmax(p: &mut [f32]) {
    let n = p.len();
    let main = n / 8 * 8;
    let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mv = _mm256_set1_ps(max);
    let mut sum = _mm256_setzero_ps();
    let mut i = 0;
    while i < main {
        // SAFETY: i + 8 <= n.
        unsafe {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.as_ptr().add(i)), mv));
            _mm256_storeu_ps(p.as_mut_ptr().add(i), e);
            sum = _mm256_add_ps(sum, e);
        }
        i += 8;
    }
    let mut total = hsum(sum);
    for v in &mut p[main..] {
        *v = (*v - max).exp();
        total += *v;
    }
    let inv = 1.0 / total;
    p.iter_mut().for_each(|v| *v *= inv);
}

/// AVX2 version of [`crate::scalar::weighted_sum`] for head widths that are multiples of 8.
///
/// # Safety
/// The CPU has avx2 and fma; `out.len() % 8 == 0`; every value row lies inside `vals`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn weighted_sum(p: &[f32], vals: &[f32], stride: usize, out: &mut [f32]) {
    let hd = out.len();
    for c in (0..hd).step_by(32) {
        let w = (hd - c).min(32) / 8;
        let mut acc = [_mm256_setzero_ps(); 4];
        for (t, &pt) in p.iter().enumerate() {
            let v = &vals[t * stride + c..][..w * 8];
            let b = _mm256_set1_ps(pt);
            for (l, a) in acc.iter_mut().enumerate().take(w) {
                // SAFETY: l < w, so 8 values at 8·l lie inside v.
                *a = _mm256_fmadd_ps(b, unsafe { _mm256_loadu_ps(v.as_ptr().add(8 * l)) }, *a);
            }
        }
        for (l, a) in acc.iter().enumerate().take(w) {
            // SAFETY: c + 8·l + 8 <= hd.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c + 8 * l), *a) };
        }
    }
}

/// The loop over an interleaved matrix: groups of four rows in cache blocks, activations in tiles of four (then
/// one at a time), each kernel call producing a 4-row × tile block of results. With `pre = true` (the AVX2
/// kernels), each activation block's two 16-byte halves are broadcast to both 256-bit lanes once per call and handed
/// to the tile-of-four kernel, not once per group. `$feat` is the target features of the path whose kernels it calls
/// (the AVX-512 module uses it too).
macro_rules! x4_loop {
    ($feat:literal, pre = $pre:literal, $name:ident, $kern:ident $(, $c:expr)*) => {
        #[target_feature(enable = $feat)]
        unsafe fn $name(w: &WeightMatrix<'_>, rows: Range<usize>, acts: &[ActRow<'_>], out: &OutMatrix) {
            let n = acts.len();
            let nb = w.cols / QK;
            let gb = 4 * w.ty.row_bytes(w.cols);
            let pre: Vec<__m256i> = if $pre {
                (0..n / 4 * 4)
                    .flat_map(|j| (0..nb).map(move |b| (j, b)))
                    .flat_map(|(j, b)| {
                        // SAFETY: block b lies inside activation row j (checked by the caller).
                        let av = unsafe { crate::avx2::load32(acts[j].qs.as_ptr().add(b * QK)) };
                        [_mm256_permute4x64_epi64(av, 0x44), _mm256_permute4x64_epi64(av, 0xEE)]
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let (mut g0, g_end) = (rows.start / 4, rows.end / 4);
            while g0 < g_end {
                let g1 = (g0 + ROW_BLOCK / 4).min(g_end);
                let mut j0 = 0;
                while j0 < n {
                    let four = n - j0 >= 4;
                    for g in g0..g1 {
                        let data = &w.data[g * gb..(g + 1) * gb];
                        if four {
                            let a: &[ActRow<'_>; 4] = acts[j0..j0 + 4].try_into().unwrap();
                            let p = $pre.then(|| &pre[j0 * nb * 2..(j0 + 4) * nb * 2]);
                            // SAFETY: shapes checked by the caller; data is one whole group; p covers the tile.
                            let v = unsafe { $kern::<4 $(, $c)*>(data, a, p) };
                            for (dj, rv) in v.into_iter().enumerate() {
                                for (dr, x) in rv.into_iter().enumerate() {
                                    out.set(j0 + dj, 4 * g + dr, x);
                                }
                            }
                        } else {
                            let a: &[ActRow<'_>; 1] = acts[j0..j0 + 1].try_into().unwrap();
                            // SAFETY: as above.
                            let v = unsafe { $kern::<1 $(, $c)*>(data, a, None) };
                            for (dr, x) in v[0].into_iter().enumerate() {
                                out.set(j0, 4 * g + dr, x);
                            }
                        }
                    }
                    j0 += if four { 4 } else { 1 };
                }
                g0 = g1;
            }
        }
    };
}

x4_loop!("avx2,fma,f16c", pre = true, rows_x4_q4_0, q4_x4, false, false);
x4_loop!("avx2,fma,f16c", pre = true, rows_x4_q4_1, q4_x4, true, false);
x4_loop!("avx2,fma,f16c", pre = true, rows_x4_q5_0, q4_x4, false, true);
x4_loop!("avx2,fma,f16c", pre = true, rows_x4_q5_1, q4_x4, true, true);
x4_loop!("avx2,fma,f16c", pre = true, rows_x4_q8_0, q8_x4);
pub(crate) use x4_loop;

/// A path whose own kernels are the 4-row interleaved Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 products (its `q4_x4` and
/// `q8_x4`) and which runs the AVX2 kernels for every other type and layout: its cache blocking, its row loops and its `matmul`.
/// The AVX-512 and AVX-VNNI modules are such paths.
macro_rules! x4_path {
    ($feat:literal, pre = $pre:literal, $isa:literal $(, $lay:path, $ty:path => $f:path)*) => {
        /// Weight rows per cache block, as in the AVX2 loops.
        const ROW_BLOCK: usize = 64;

        #[doc = concat!("Weight rows `rows` of `w` against every activation row, into `out`.\n\n# Safety\nThe CPU has \
                         the features [`crate::Isa::", $isa, "`] checks; shapes as [`crate::matmul_rows`] checks; no \
                         other thread writes these elements of `out`.")]
        pub unsafe fn matmul(w: &WeightMatrix<'_>, rows: Range<usize>, acts: &[ActRow<'_>], out: &OutMatrix) {
            // SAFETY: forwarded from the caller; this path's CPU has avx2, fma and f16c too.
            unsafe {
                match (w.layout, w.ty) {
                    $(($lay, $ty) => $f(w, rows, acts, out),)*
                    (crate::Layout::Interleaved4, WeightType::Q4_0) => rows_x4_q4_0(w, rows, acts, out),
                    (crate::Layout::Interleaved4, WeightType::Q4_1) => rows_x4_q4_1(w, rows, acts, out),
                    (crate::Layout::Interleaved4, WeightType::Q5_0) => rows_x4_q5_0(w, rows, acts, out),
                    (crate::Layout::Interleaved4, WeightType::Q5_1) => rows_x4_q5_1(w, rows, acts, out),
                    (crate::Layout::Interleaved4, _) => rows_x4_q8_0(w, rows, acts, out),
                    _ => crate::avx2::matmul(w, rows, acts, out),
                }
            }
        }

        crate::avx2::x4_loop!($feat, pre = $pre, rows_x4_q4_0, q4_x4, false, false);
        crate::avx2::x4_loop!($feat, pre = $pre, rows_x4_q4_1, q4_x4, true, false);
        crate::avx2::x4_loop!($feat, pre = $pre, rows_x4_q5_0, q4_x4, false, true);
        crate::avx2::x4_loop!($feat, pre = $pre, rows_x4_q5_1, q4_x4, true, true);
        crate::avx2::x4_loop!($feat, pre = $pre, rows_x4_q8_0, q8_x4);
    };
}
pub(crate) use x4_path;

/// The tile kernels of the interleaved layout for one 256-bit path (`$feat`): `q4_x4` (four interleaved Q4_0 / Q4_1
/// rows against `NA` activation rows: two rows' 4-bit values per register, the activation block's halves broadcast
/// to both lanes, one conversion and one FMA per block for four rows) and `q8_x4` (four interleaved Q8_0 rows,
/// signed × signed as |w| × (a with w's sign)). The path supplies its byte products as i32 lanes: `$pair(lo, alo, hi,
/// ahi)` = Σ lo·alo + hi·ahi per four bytes, `$dot(u, a)` = Σ u·a per four bytes. The AVX-VNNI module uses it too.
macro_rules! x4_kernels {
    ($feat:literal, $pair:path, $dot:path) => {
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn q4_x4<const NA: usize, const MIN: bool, const FIVE: bool>(
            data: &[u8],
            a: &[ActRow<'_>; NA],
            pre: Option<&[__m256i]>,
        ) -> [[f32; 4]; NA] {
            let (qh, offset) = (if MIN { 16 } else { 8 }, if FIVE { -16.0 } else { -8.0 });
            let qoff = qh + if FIVE { 16 } else { 0 };
            let cb = qoff + 64;
            let nb = data.len() / cb;
            let mask = _mm256_set1_epi8(0x0F);
            let perm = _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3);
            let mut acc = [_mm256_setzero_ps(); NA];
            let mut cor = [_mm_setzero_ps(); NA];
            for b in 0..nb {
                // SAFETY: chunk b lies inside data; activation rows hold nb blocks (checked by the caller).
                unsafe {
                    let ch = data.as_ptr().add(b * cb);
                    if NA == 1 {
                        crate::avx2::prefetch_ahead(ch, cb);
                    }
                    let d4 = _mm_cvtph_ps(_mm_loadl_epi64(ch.cast()));
                    let m4 = if MIN {
                        _mm_cvtph_ps(_mm_loadl_epi64(ch.add(8).cast()))
                    } else {
                        _mm_mul_ps(d4, _mm_set1_ps(offset))
                    };
                    // Scales in the order the horizontal sums leave the rows: [r0 r0 r2 r2 | r1 r1 r3 r3].
                    let dperm = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4), perm);
                    let (x01, x23) = (load32(ch.add(qoff).cast()), load32(ch.add(qoff + 32).cast()));
                    let (mut lo01, mut hi01) =
                        (_mm256_and_si256(x01, mask), _mm256_and_si256(_mm256_srli_epi16(x01, 4), mask));
                    let (mut lo23, mut hi23) =
                        (_mm256_and_si256(x23, mask), _mm256_and_si256(_mm256_srli_epi16(x23, 4), mask));
                    if FIVE {
                        // Two rows' fifth bits of one nibble half are one 32-bit word (repack's order).
                        let word = |o: usize| (ch.add(qh + o) as *const u32).read_unaligned();
                        lo01 = _mm256_or_si256(lo01, crate::avx2::fifth_bits(word(0)));
                        lo23 = _mm256_or_si256(lo23, crate::avx2::fifth_bits(word(4)));
                        hi01 = _mm256_or_si256(hi01, crate::avx2::fifth_bits(word(8)));
                        hi23 = _mm256_or_si256(hi23, crate::avx2::fifth_bits(word(12)));
                    }
                    for j in 0..NA {
                        let (alo, ahi) = match pre {
                            Some(p) => (*p.get_unchecked((j * nb + b) * 2), *p.get_unchecked((j * nb + b) * 2 + 1)),
                            None => {
                                let av = load32(a[j].qs.as_ptr().add(b * QK));
                                (_mm256_permute4x64_epi64(av, 0x44), _mm256_permute4x64_epi64(av, 0xEE))
                            }
                        };
                        let h = _mm256_hadd_epi32($pair(lo01, alo, hi01, ahi), $pair(lo23, alo, hi23, ahi));
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

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn q8_x4<const NA: usize>(
            data: &[u8],
            a: &[ActRow<'_>; NA],
            _pre: Option<&[__m256i]>,
        ) -> [[f32; 4]; NA] {
            let nb = data.len() / 136;
            let mut acc = [_mm256_setzero_ps(); NA];
            for b in 0..nb {
                // SAFETY: as in q4_x4.
                unsafe {
                    let ch = data.as_ptr().add(b * 136);
                    if NA == 1 {
                        crate::avx2::prefetch_ahead(ch, 136);
                    }
                    let d4 = _mm_cvtph_ps(_mm_loadl_epi64(ch.cast()));
                    let d8 = _mm256_set_m128(d4, d4);
                    let w: [__m256i; 4] = std::array::from_fn(|r| load32(ch.add(8 + 32 * r).cast()));
                    let u: [__m256i; 4] = std::array::from_fn(|r| _mm256_sign_epi8(w[r], w[r]));
                    for j in 0..NA {
                        let av = load32(a[j].qs.as_ptr().add(b * QK));
                        let p: [__m256i; 4] = std::array::from_fn(|r| $dot(u[r], _mm256_sign_epi8(av, w[r])));
                        let da = _mm256_broadcast_ss(&*a[j].ds.as_ptr().add(2 * b));
                        acc[j] = _mm256_fmadd_ps(hadd4(p), _mm256_mul_ps(d8, da), acc[j]);
                    }
                }
            }
            std::array::from_fn(|j| fold4(acc[j], _mm_setzero_ps()))
        }
    };
}
pub(crate) use x4_kernels;

/// `0x10` in byte `k` where bit `k` of `bits` is set, else 0: 32 fifth bits of Q5 values as a byte mask (each byte
/// gets its word's byte `k / 8`, every bit but bit `k % 8` is forced on, and a compare keeps the all-ones bytes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn fifth_bits(bits: u32) -> __m256i {
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
    );
    let on =
        _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe)), _mm256_set1_epi64x(-1));
    _mm256_and_si256(on, _mm256_set1_epi8(0x10))
}

/// Σ lo·alo + hi·ahi per four bytes (u8 × i8): the two byte products summed in i16 (at most 2·15·127·2 = 7620), then
/// widened.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pair_u8_i8(lo: __m256i, alo: __m256i, hi: __m256i, ahi: __m256i) -> __m256i {
    let p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, alo), _mm256_maddubs_epi16(hi, ahi));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

x4_kernels!("avx2,fma,f16c", pair_u8_i8, dot_u8_i8);

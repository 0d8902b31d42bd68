//! Attention over one KV head's cache for a group of query rows (the query heads sharing that KV head, times a block
//! of positions): the cache's storage types (f32 or f16), the scalar references and the AVX2 kernels. Keys are
//! stored transposed (component `c` of position `t` at `c·stride + t`) so eight positions' scores accumulate in one
//! register without a horizontal sum, and each key or value is loaded once for every query row of the group.

use half::f16;

/// One KV head's keys or values as the cache stores them.
#[derive(Debug, Clone, Copy)]
pub enum KvSlice<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 values (llama.cpp's default KV cache type).
    F16(&'a [f16]),
}

impl KvSlice<'_> {
    /// Elements.
    pub fn len(&self) -> usize {
        match self {
            KvSlice::F32(s) => s.len(),
            KvSlice::F16(s) => s.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, i: usize) -> f32 {
        match self {
            KvSlice::F32(s) => s[i],
            KvSlice::F16(s) => s[i].to_f32(),
        }
    }
}

/// Scalar reference of [`crate::KernelSet::scores_t`].
pub fn scores_t(q: &[f32], hd: usize, keys: KvSlice<'_>, stride: usize, n: usize, scale: f32, out: &mut [f32]) {
    for (r, qr) in q.chunks_exact(hd).enumerate() {
        for t in 0..n {
            let mut s = 0f32;
            for (c, &qc) in qr.iter().enumerate() {
                s = qc.mul_add(keys.get(c * stride + t), s);
            }
            out[r * n + t] = scale * s;
        }
    }
}

/// Scalar reference of [`crate::KernelSet::weighted_sum_rows`].
pub fn weighted_sum_rows(p: &[f32], n: usize, vals: KvSlice<'_>, hd: usize, out: &mut [f32]) {
    for (r, o) in out.chunks_exact_mut(hd).enumerate() {
        o.fill(0.0);
        for t in 0..n {
            let w = p[r * n + t];
            for (c, oc) in o.iter_mut().enumerate() {
                *oc = w.mul_add(vals.get(t * hd + c), *oc);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    //! AVX2 + FMA + F16C versions, one per storage type (the loads differ), rows in register tiles of 8, 4, 2, 1.

    use std::arch::x86_64::*;

    use half::f16;

    macro_rules! kernels {
        ($ty:ty, $scores:ident, $scores_tile:ident, $wsum:ident, $wsum_tile:ident, $load:ident) => {
            /// `R` query rows × 8 positions per step over transposed keys; the tail positions one at a time.
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn $scores_tile<const R: usize>(
                q: &[f32],
                hd: usize,
                keys: &[$ty],
                stride: usize,
                n: usize,
                scale: f32,
                out: &mut [f32],
            ) {
                let sv = _mm256_set1_ps(scale);
                let mut t = 0;
                while t + 8 <= n {
                    let mut acc = [_mm256_setzero_ps(); R];
                    for c in 0..hd {
                        // SAFETY: c·stride + t + 8 <= keys.len() (checked by the dispatcher for c < hd, t + 8 <= n).
                        let k = unsafe { $load(keys.as_ptr().add(c * stride + t)) };
                        for (r, a) in acc.iter_mut().enumerate() {
                            // SAFETY: r·hd + c < R·hd <= q.len() (checked by the dispatcher).
                            let qv = unsafe { *q.as_ptr().add(r * hd + c) };
                            *a = _mm256_fmadd_ps(_mm256_set1_ps(qv), k, *a);
                        }
                    }
                    for (r, a) in acc.iter().enumerate() {
                        // SAFETY: r·n + t + 8 <= R·n = out.len().
                        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(r * n + t), _mm256_mul_ps(*a, sv)) };
                    }
                    t += 8;
                }
                for t in t..n {
                    for r in 0..R {
                        let mut s = 0f32;
                        for c in 0..hd {
                            s = q[r * hd + c].mul_add(f32::from(keys[c * stride + t]), s);
                        }
                        out[r * n + t] = scale * s;
                    }
                }
            }

            /// Scores of every row of `q` (`hd` each), tiles of 8, 4, 2 and 1 rows.
            ///
            /// # Safety
            /// The CPU has avx2, fma and f16c; `(hd − 1)·stride + n <= keys.len()`; `out.len() == rows·n`.
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $scores(
                q: &[f32],
                hd: usize,
                keys: &[$ty],
                stride: usize,
                n: usize,
                scale: f32,
                out: &mut [f32],
            ) {
                let rows = q.len() / hd;
                let mut r = 0;
                while r < rows {
                    let (qr, o) = (&q[r * hd..], &mut out[r * n..]);
                    // SAFETY: the caller's contract, for the rows of this tile.
                    r += unsafe {
                        match rows - r {
                            8.. => {
                                $scores_tile::<8>(qr, hd, keys, stride, n, scale, o);
                                8
                            }
                            4.. => {
                                $scores_tile::<4>(qr, hd, keys, stride, n, scale, o);
                                4
                            }
                            2.. => {
                                $scores_tile::<2>(qr, hd, keys, stride, n, scale, o);
                                2
                            }
                            _ => {
                                $scores_tile::<1>(qr, hd, keys, stride, n, scale, o);
                                1
                            }
                        }
                    };
                }
            }

            /// `R` rows × 8 value components per pass over the positions.
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn $wsum_tile<const R: usize>(p: &[f32], n: usize, vals: &[$ty], hd: usize, out: &mut [f32]) {
                for c in (0..hd).step_by(8) {
                    let mut acc = [_mm256_setzero_ps(); R];
                    for t in 0..n {
                        // SAFETY: t·hd + c + 8 <= n·hd <= vals.len() (checked by the dispatcher; hd % 8 == 0).
                        let v = unsafe { $load(vals.as_ptr().add(t * hd + c)) };
                        for (r, a) in acc.iter_mut().enumerate() {
                            // SAFETY: r·n + t < R·n <= p.len() (checked by the dispatcher).
                            let pv = unsafe { *p.as_ptr().add(r * n + t) };
                            *a = _mm256_fmadd_ps(_mm256_set1_ps(pv), v, *a);
                        }
                    }
                    for (r, a) in acc.iter().enumerate() {
                        // SAFETY: r·hd + c + 8 <= R·hd = out.len().
                        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(r * hd + c), *a) };
                    }
                }
            }

            /// Weighted sums of values for every row of `p` (`n` each), tiles of 8, 4, 2 and 1 rows.
            ///
            /// # Safety
            /// The CPU has avx2, fma and f16c; `hd % 8 == 0`; `n·hd <= vals.len()`; `out.len() == rows·hd`.
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $wsum(p: &[f32], n: usize, vals: &[$ty], hd: usize, out: &mut [f32]) {
                let rows = out.len() / hd;
                let mut r = 0;
                while r < rows {
                    let (pr, o) = (&p[r * n..], &mut out[r * hd..]);
                    // SAFETY: the caller's contract, for the rows of this tile.
                    r += unsafe {
                        match rows - r {
                            8.. => {
                                $wsum_tile::<8>(pr, n, vals, hd, o);
                                8
                            }
                            4.. => {
                                $wsum_tile::<4>(pr, n, vals, hd, o);
                                4
                            }
                            2.. => {
                                $wsum_tile::<2>(pr, n, vals, hd, o);
                                2
                            }
                            _ => {
                                $wsum_tile::<1>(pr, n, vals, hd, o);
                                1
                            }
                        }
                    };
                }
            }
        };
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load_f32(p: *const f32) -> __m256 {
        // SAFETY: the caller's eight values.
        unsafe { _mm256_loadu_ps(p) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load_f16(p: *const f16) -> __m256 {
        // SAFETY: the caller's eight values (16 bytes).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    kernels!(f32, scores_t_f32, scores_tile_f32, weighted_sum_rows_f32, wsum_tile_f32, load_f32);
    kernels!(f16, scores_t_f16, scores_tile_f16, weighted_sum_rows_f16, wsum_tile_f16, load_f16);
}

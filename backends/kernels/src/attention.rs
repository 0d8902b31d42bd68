//! Attention over one KV head's cache for a group of query rows (the query heads sharing that KV head, times a block
//! of positions): the cache's storage types (f32 or f16), its key layout, the scalar references and the AVX2 kernels.
//! Keys are stored in tiles of [`KEY_TILE`] positions, each tile transposed (see [`key_index`]): eight positions'
//! scores accumulate in one register without a horizontal sum, and a tile is one contiguous run of memory, so a
//! decode step's keys stream in order like its values. Each key or value is loaded once for every query row of the
//! group.

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

/// Positions per key tile. A cache holds whole tiles, so a kernel may read a tile's positions past the last one
/// filled.
pub const KEY_TILE: usize = 32;

/// Where component `c` of position `t` sits in one KV head's keys of `hd` components: tile `t / KEY_TILE` after the
/// whole tiles before it, then component-major within the tile.
#[inline]
pub fn key_index(c: usize, t: usize, hd: usize) -> usize {
    (t / KEY_TILE) * hd * KEY_TILE + c * KEY_TILE + t % KEY_TILE
}

/// Keys (elements) a cache needs for `n` positions of `hd` components: whole tiles.
pub fn key_len(n: usize, hd: usize) -> usize {
    n.div_ceil(KEY_TILE) * KEY_TILE * hd
}

/// Scalar reference of [`crate::KernelSet::scores_t`].
pub fn scores_t(q: &[f32], hd: usize, keys: KvSlice<'_>, n: usize, scale: f32, out: &mut [f32]) {
    for (r, qr) in q.chunks_exact(hd).enumerate() {
        for t in 0..n {
            let mut s = 0f32;
            for (c, &qc) in qr.iter().enumerate() {
                s = qc.mul_add(keys.get(key_index(c, t, hd)), s);
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
    //! AVX2 + FMA + F16C versions, one per storage type (the loads differ). A register tile is `R` query rows
    //! times `W` vectors of 8 (positions for scores, value components for sums), with `R·W` about 8 so that few rows
    //! (one position of decode: a single query head) still keep several independent accumulators in flight.

    use std::arch::x86_64::*;

    use half::f16;

    macro_rules! kernels {
        ($ty:ty, $scores:ident, $scores_tile:ident, $wsum:ident, $wsum_tile:ident, $load:ident) => {
            /// `R` query rows × `P` vectors of 8 positions per step (`8P` divides [`super::KEY_TILE`], so a step
            /// stays in one tile), then the positions left 8 at a time, the last vector's lanes past `n` (still in
            /// the tile) dropped.
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn $scores_tile<const R: usize, const P: usize>(
                q: &[f32],
                hd: usize,
                keys: &[$ty],
                n: usize,
                scale: f32,
                out: &mut [f32],
            ) {
                const { assert!(super::KEY_TILE % (8 * P) == 0) };
                let sv = _mm256_set1_ps(scale);
                let mut t = 0;
                while t + 8 * P <= n {
                    // SAFETY: the tile holding positions t..t + 8P is in `keys` (checked by the dispatcher).
                    let base = unsafe { keys.as_ptr().add(super::key_index(0, t, hd)) };
                    let mut acc = [[_mm256_setzero_ps(); P]; R];
                    for c in 0..hd {
                        let mut k = [_mm256_setzero_ps(); P];
                        for (j, kj) in k.iter_mut().enumerate() {
                            // SAFETY: component c of the step's positions, inside their tile.
                            *kj = unsafe { $load(base.add(c * super::KEY_TILE + 8 * j)) };
                        }
                        for (r, a) in acc.iter_mut().enumerate() {
                            // SAFETY: r·hd + c < R·hd <= q.len() (checked by the dispatcher).
                            let qv = _mm256_set1_ps(unsafe { *q.as_ptr().add(r * hd + c) });
                            for (aj, kj) in a.iter_mut().zip(&k) {
                                *aj = _mm256_fmadd_ps(qv, *kj, *aj);
                            }
                        }
                    }
                    for (r, a) in acc.iter().enumerate() {
                        for (j, aj) in a.iter().enumerate() {
                            // SAFETY: r·n + t + 8P <= R·n = out.len().
                            unsafe {
                                _mm256_storeu_ps(out.as_mut_ptr().add(r * n + t + 8 * j), _mm256_mul_ps(*aj, sv))
                            };
                        }
                    }
                    t += 8 * P;
                }
                while t < n {
                    // SAFETY: as above, for the (whole) tile holding positions t..t + 8.
                    let base = unsafe { keys.as_ptr().add(super::key_index(0, t, hd)) };
                    let mut acc = [_mm256_setzero_ps(); R];
                    for c in 0..hd {
                        // SAFETY: as above.
                        let k = unsafe { $load(base.add(c * super::KEY_TILE)) };
                        for (r, a) in acc.iter_mut().enumerate() {
                            // SAFETY: as above.
                            let qv = _mm256_set1_ps(unsafe { *q.as_ptr().add(r * hd + c) });
                            *a = _mm256_fmadd_ps(qv, k, *a);
                        }
                    }
                    let m = (n - t).min(8);
                    for (r, a) in acc.iter().enumerate() {
                        let mut lanes = [0f32; 8];
                        // SAFETY: eight f32 into `lanes`.
                        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_mul_ps(*a, sv)) };
                        out[r * n + t..][..m].copy_from_slice(&lanes[..m]);
                    }
                    t += 8;
                }
            }

            /// Scores of every row of `q` (`hd` each), tiles of 8, 4, 2 and 1 rows (1, 2, 4 and 4 vectors of
            /// positions).
            ///
            /// # Safety
            /// The CPU has avx2, fma and f16c; `super::key_len(n, hd) <= keys.len()`; `out.len() == rows·n`.
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $scores(q: &[f32], hd: usize, keys: &[$ty], n: usize, scale: f32, out: &mut [f32]) {
                let rows = q.len() / hd;
                let mut r = 0;
                while r < rows {
                    let (qr, o) = (&q[r * hd..], &mut out[r * n..]);
                    // SAFETY: the caller's contract, for the rows of this tile.
                    r += unsafe {
                        match rows - r {
                            8.. => {
                                $scores_tile::<8, 1>(qr, hd, keys, n, scale, o);
                                8
                            }
                            4.. => {
                                $scores_tile::<4, 2>(qr, hd, keys, n, scale, o);
                                4
                            }
                            2.. => {
                                $scores_tile::<2, 4>(qr, hd, keys, n, scale, o);
                                2
                            }
                            _ => {
                                $scores_tile::<1, 4>(qr, hd, keys, n, scale, o);
                                1
                            }
                        }
                    };
                }
            }

            /// `R` rows × `C` vectors of 8 value components per pass over the positions, from component `c` while
            /// `8C` more fit; returns the first component left.
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn $wsum_tile<const R: usize, const C: usize>(
                p: &[f32],
                n: usize,
                vals: &[$ty],
                hd: usize,
                mut c: usize,
                out: &mut [f32],
            ) -> usize {
                while c + 8 * C <= hd {
                    let mut acc = [[_mm256_setzero_ps(); C]; R];
                    for t in 0..n {
                        let mut v = [_mm256_setzero_ps(); C];
                        for (j, vj) in v.iter_mut().enumerate() {
                            // SAFETY: t·hd + c + 8C <= n·hd <= vals.len() (checked by the dispatcher).
                            *vj = unsafe { $load(vals.as_ptr().add(t * hd + c + 8 * j)) };
                        }
                        for (r, a) in acc.iter_mut().enumerate() {
                            // SAFETY: r·n + t < R·n <= p.len() (checked by the dispatcher).
                            let pv = _mm256_set1_ps(unsafe { *p.as_ptr().add(r * n + t) });
                            for (aj, vj) in a.iter_mut().zip(&v) {
                                *aj = _mm256_fmadd_ps(pv, *vj, *aj);
                            }
                        }
                    }
                    for (r, a) in acc.iter().enumerate() {
                        for (j, aj) in a.iter().enumerate() {
                            // SAFETY: r·hd + c + 8C <= R·hd = out.len().
                            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(r * hd + c + 8 * j), *aj) };
                        }
                    }
                    c += 8 * C;
                }
                c
            }

            /// Weighted sums of values for every row of `p` (`n` each), tiles of 8, 4, 2 and 1 rows (1, 2, 4 and 8
            /// vectors of components, then one vector for what is left).
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
                                $wsum_tile::<8, 1>(pr, n, vals, hd, 0, o);
                                8
                            }
                            4.. => {
                                let c = $wsum_tile::<4, 2>(pr, n, vals, hd, 0, o);
                                $wsum_tile::<4, 1>(pr, n, vals, hd, c, o);
                                4
                            }
                            2.. => {
                                let c = $wsum_tile::<2, 4>(pr, n, vals, hd, 0, o);
                                $wsum_tile::<2, 1>(pr, n, vals, hd, c, o);
                                2
                            }
                            _ => {
                                let c = $wsum_tile::<1, 8>(pr, n, vals, hd, 0, o);
                                $wsum_tile::<1, 1>(pr, n, vals, hd, c, o);
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

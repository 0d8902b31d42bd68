//! Run-time choice of the kernel path: the best instruction set this CPU has, or one named explicitly (for tests,
//! benches and the backend's `kernels=` option). A [`KernelSet`] for a SIMD path exists only on a CPU that has it.

use std::fmt;

use crate::acts::ActRow;
use crate::attention::KvSlice;
use crate::formats::WeightType;
use edgebench_gguf::arch::Activation;

/// An instruction-set path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust: the reference, on any CPU.
    Scalar,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// x86-64 AVX-512 (F, BW, VL) with VNNI, on top of AVX2: its own kernels for the 4-row interleaved Q4_0, Q4_1,
    /// Q5_0, Q5_1 and Q8_0 products; every other type and layout runs the AVX2 kernels.
    Avx512Vnni,
    /// x86-64 AVX-VNNI (256-bit `vpdpbusd`, on CPUs with VNNI but no AVX-512), on top of AVX2: its own kernels for
    /// the 4-row interleaved Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 products; every other type and layout runs the AVX2
    /// kernels.
    AvxVnni,
    /// aarch64 NEON (Q4_0, Q4_1, Q8_0; other types fall back to scalar). Not compiled or tested on the development
    /// machine (x86-64).
    Neon,
}

impl Isa {
    /// Name used in options and results.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2+fma",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::AvxVnni => "avxvnni",
            Isa::Neon => "neon",
        }
    }

    /// Parses `scalar`, `avx2` / `avx2+fma`, `avx512` / `avx512vnni`, `avxvnni`, `neon`.
    pub fn parse(s: &str) -> Option<Isa> {
        match s {
            "scalar" => Some(Isa::Scalar),
            "avx2" | "avx2+fma" => Some(Isa::Avx2),
            "avx512" | "avx512vnni" => Some(Isa::Avx512Vnni),
            "avxvnni" => Some(Isa::AvxVnni),
            "neon" => Some(Isa::Neon),
            _ => None,
        }
    }

    /// Whether this is one of the x86-64 paths built on AVX2 (AVX2, AVX-512 VNNI, AVX-VNNI).
    pub fn is_x86_simd(self) -> bool {
        matches!(self, Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni)
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                Isa::Avx2.available()
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => Isa::Avx2.available() && std::is_x86_feature_detected!("avxvnni"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Whether the path has a SIMD kernel for `ty` (its own or, for AVX-512, AVX2's); otherwise the scalar
    /// reference runs for that type.
    pub fn covers(self, ty: WeightType) -> bool {
        match self {
            Isa::Scalar | Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni => true,
            Isa::Neon => matches!(ty, WeightType::Q4_0 | WeightType::Q4_1 | WeightType::Q8_0),
        }
    }

    /// The path that runs `ty` in `layout` on this path, as results name it: AVX-512 and AVX-VNNI run their own
    /// kernels for the interleaved Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 products and AVX2's for the rest (Q5 weights in
    /// file order run the scalar kernel); a path without a kernel runs the scalar one.
    pub fn path_for(self, ty: WeightType, layout: crate::Layout) -> Isa {
        if layout == crate::Layout::Interleaved16 && self.interleaves16() && crate::repack::supported16(ty) {
            return self;
        }
        let interleaved = layout == crate::Layout::Interleaved4 && crate::repack::supported(ty);
        match self {
            // Q5 weights have kernels on the interleaved layout only.
            Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni
                if matches!(ty, WeightType::Q5_0 | WeightType::Q5_1) && !interleaved =>
            {
                Isa::Scalar
            }
            Isa::Avx512Vnni | Isa::AvxVnni
                if !(layout == crate::Layout::Interleaved4 && crate::repack::supported(ty)) =>
            {
                Isa::Avx2
            }
            isa if isa.covers(ty) => isa,
            _ => Isa::Scalar,
        }
    }

    /// Whether the path runs 4-row interleaved matrices ([`crate::repack`]).
    pub fn interleaves(self) -> bool {
        matches!(self, Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni)
    }

    /// Whether the path runs 16-row interleaved Q4_0 / Q4_1 / Q8_0 / Q4_K / Q5_K / Q6_K matrices ([`crate::repack::interleave16`]).
    pub fn interleaves16(self) -> bool {
        self == Isa::Avx512Vnni
    }

    /// Every path, best first.
    pub const ALL: [Isa; 5] = [Isa::Avx512Vnni, Isa::AvxVnni, Isa::Avx2, Isa::Neon, Isa::Scalar];
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A kernel path this CPU can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSet {
    isa: Isa,
}

impl KernelSet {
    /// The best path this CPU has.
    pub fn best() -> Self {
        Isa::ALL.into_iter().find(|i| i.available()).map_or(Self::scalar(), |isa| Self { isa })
    }

    /// The scalar reference.
    pub fn scalar() -> Self {
        Self { isa: Isa::Scalar }
    }

    /// A named path, if this CPU has it.
    pub fn new(isa: Isa) -> Result<Self, String> {
        if isa.available() {
            Ok(Self { isa })
        } else {
            Err(format!("kernel path {isa} is not available on this CPU"))
        }
    }

    /// The path.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// `out[j] = w · acts[j]` for one weight row `w` of type `ty` and 1 to 4 activation rows (quantized rows for
    /// block types). Panics when the shapes disagree.
    pub fn dot_tile(&self, ty: WeightType, w: &[u8], acts: &[ActRow<'_>], out: &mut [f32]) {
        assert!((1..=4).contains(&acts.len()) && out.len() == acts.len(), "1 to 4 activation rows");
        assert_eq!(w.len() % ty.block_bytes(), 0, "whole {} blocks", ty.name());
        check_acts(ty, w.len() / ty.block_bytes() * ty.block_len(), acts);
        // SAFETY: shapes checked just above.
        unsafe { self.dot_tile_unchecked(ty, w, acts, out) }
    }

    /// `out[t] = scale · (q · keys[t·stride ..][..q.len()])` for every `t < out.len()`: one query's attention scores
    /// over a cache of key rows.
    pub fn scores(&self, q: &[f32], keys: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
        let n = out.len();
        assert!(n == 0 || (n - 1) * stride + q.len() <= keys.len(), "key rows out of range");
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path is available; rows in range (asserted); width a multiple of 8 (checked).
            Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni if q.len().is_multiple_of(8) => unsafe {
                crate::avx2::scores(q, keys, stride, scale, out)
            },
            _ => crate::scalar::scores(q, keys, stride, scale, out),
        }
    }

    /// `out = act(gate) · up`: SwiGLU (`Activation::Silu`) or GeGLU (`Activation::GeluTanh`, GELU's tanh form).
    pub fn glu(&self, act: Activation, out: &mut [f32], gate: &[f32], up: &[f32]) {
        assert!(gate.len() == out.len() && up.len() == out.len(), "gate, up and out differ in length");
        let gelu = act == Activation::GeluTanh;
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path is available; lengths checked.
            Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni if gelu => unsafe { crate::avx2::glu::<true>(out, gate, up) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni => unsafe { crate::avx2::glu::<false>(out, gate, up) },
            _ if gelu => crate::scalar::geglu(out, gate, up),
            _ => crate::scalar::swiglu(out, gate, up),
        }
    }

    /// Softmax in place: `p = exp(p − max p) / Σ exp(p − max p)`.
    pub fn softmax(&self, p: &mut [f32]) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path is available.
            Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni => unsafe { crate::avx2::softmax(p) },
            _ => crate::scalar::softmax(p),
        }
    }

    /// `out = Σ_t p[t] · vals[t·stride ..][..out.len()]`: attention's weighted sum of value rows.
    pub fn weighted_sum(&self, p: &[f32], vals: &[f32], stride: usize, out: &mut [f32]) {
        let n = p.len();
        assert!(n == 0 || (n - 1) * stride + out.len() <= vals.len(), "value rows out of range");
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in scores.
            Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni if out.len().is_multiple_of(8) => unsafe {
                crate::avx2::weighted_sum(p, vals, stride, out)
            },
            _ => crate::scalar::weighted_sum(p, vals, stride, out),
        }
    }

    /// Attention scores of several query rows against one KV head's keys in tiles (component `c` of position `t`
    /// at [`crate::attention::key_index`]): `out[r·n + t] = scale · (q[r·hd ..][..hd] · key t)` for every row `r` of
    /// `q` and position `t < n`. Each key is loaded once for all rows (the query heads of a GQA group, times a block
    /// of positions).
    pub fn scores_t(&self, q: &[f32], hd: usize, keys: KvSlice<'_>, n: usize, scale: f32, out: &mut [f32]) {
        assert!(hd > 0 && q.len().is_multiple_of(hd), "query rows of {hd}");
        assert_eq!(out.len(), q.len() / hd * n, "one score per row and position");
        assert!(crate::attention::key_len(n, hd) <= keys.len(), "key positions out of range (whole tiles)");
        match (self.isa, keys) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path is available (it implies f16c); shapes asserted above.
            (Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni, KvSlice::F32(k)) => unsafe {
                crate::attention::avx2::scores_t_f32(q, hd, k, n, scale, out)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            (Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni, KvSlice::F16(k)) => unsafe {
                crate::attention::avx2::scores_t_f16(q, hd, k, n, scale, out)
            },
            _ => crate::attention::scores_t(q, hd, keys, n, scale, out),
        }
    }

    /// `out[r·hd ..][..hd] = Σ_t p[r·n + t] · value t` for every row `r` of `p` (`n` probabilities each) over one KV
    /// head's values (position `t` at `t·hd ..`); each value is loaded once for all rows.
    pub fn weighted_sum_rows(&self, p: &[f32], n: usize, vals: KvSlice<'_>, hd: usize, out: &mut [f32]) {
        assert!(hd > 0 && out.len().is_multiple_of(hd), "output rows of {hd}");
        assert_eq!(p.len(), out.len() / hd * n, "one probability per row and position");
        assert!(n * hd <= vals.len(), "value positions out of range");
        match (self.isa, vals) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path is available; shapes asserted above; width a multiple of 8 (checked).
            (Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni, KvSlice::F32(v)) if hd.is_multiple_of(8) => unsafe {
                crate::attention::avx2::weighted_sum_rows_f32(p, n, v, hd, out)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            (Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni, KvSlice::F16(v)) if hd.is_multiple_of(8) => unsafe {
                crate::attention::avx2::weighted_sum_rows_f16(p, n, v, hd, out)
            },
            _ => crate::attention::weighted_sum_rows(p, n, vals, hd, out),
        }
    }

    /// Weight rows `rows` against every activation row (shapes checked by the caller).
    ///
    /// # Safety
    /// Shapes as [`crate::matmul_rows`] checks; no concurrent writer of the same elements of `out`.
    pub(crate) unsafe fn matmul_unchecked(
        &self,
        w: &crate::WeightMatrix<'_>,
        rows: std::ops::Range<usize>,
        acts: &[ActRow<'_>],
        out: &crate::OutMatrix,
    ) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path is available (checked when made); the rest is the caller's contract.
            Isa::Avx2 => unsafe { crate::avx2::matmul(w, rows, acts, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx512Vnni => unsafe { crate::avx512::matmul(w, rows, acts, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::AvxVnni => unsafe { crate::avxvnni::matmul(w, rows, acts, out) },
            // SAFETY: the caller's contract.
            _ => unsafe { crate::matmul::generic_rows(self, w, rows, acts, out) },
        }
    }

    /// [`KernelSet::dot_tile`] without the shape checks, for loops that checked once.
    ///
    /// # Safety
    /// `w` is whole blocks of `ty`; every activation row passes [`check_acts`] for `w`'s length; 1 to 4 rows.
    pub(crate) unsafe fn dot_tile_unchecked(&self, ty: WeightType, w: &[u8], acts: &[ActRow<'_>], out: &mut [f32]) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path was checked to be available when this KernelSet was made; shapes by the caller.
            Isa::Avx2 | Isa::Avx512Vnni | Isa::AvxVnni => unsafe { crate::avx2::dot_tile(ty, w, acts, out) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: as above.
            Isa::Neon if self.isa.covers(ty) => unsafe { crate::neon::dot_tile(ty, w, acts, out) },
            _ => {
                for (o, a) in out.iter_mut().zip(acts) {
                    *o = crate::scalar::dot(ty, w, a);
                }
            }
        }
    }
}

/// Panics unless every activation row has `k` values and, for block types, `k` quantized values, `k / 32`
/// `(d, s)` pairs and `k / 16` group sums.
pub(crate) fn check_acts(ty: WeightType, k: usize, acts: &[ActRow<'_>]) {
    for a in acts {
        assert_eq!(a.x.len(), k, "activation length");
        if ty.quantized() {
            assert!(a.qs.len() == k && a.ds.len() == 2 * (k / 32) && a.sums16.len() == k / 16, "quantized activations");
        }
    }
}

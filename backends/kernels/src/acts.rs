//! Activations as the kernels read them: f32 rows, and the same rows quantized to 8 bits in blocks of 32 with a
//! per-block scale `d` and `s = d·Σq` (what the offset terms of Q4_0, Q4_1 and the K-quants need), stored as
//! interleaved `(d, s)` pairs so a kernel loads both with one 8-byte load.

use crate::dispatch::{Isa, KernelSet};

/// Values per activation block.
pub const QK: usize = 32;

/// One activation row, borrowed from [`QuantActs`].
#[derive(Debug, Clone, Copy)]
pub struct ActRow<'a> {
    /// The f32 values (`k`).
    pub x: &'a [f32],
    /// 8-bit values (`k`), empty when the row was not quantized.
    pub qs: &'a [i8],
    /// `(d, d·Σq)` per block: `2 · k / 32` values.
    pub ds: &'a [f32],
}

/// `n` activation rows of `k` values, kept as f32 and (on request) quantized. Buffers are reused across calls.
#[derive(Debug, Default, Clone)]
pub struct QuantActs {
    n: usize,
    k: usize,
    quantized: bool,
    x: Vec<f32>,
    qs: Vec<i8>,
    ds: Vec<f32>,
}

impl QuantActs {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `n` rows of `k` values from `x` (row-major) and, when `quantize`, quantizes them (`k` a multiple of 32).
    pub fn set(&mut self, ks: &KernelSet, x: &[f32], n: usize, k: usize, quantize: bool) {
        assert_eq!(x.len(), n * k, "activation shape");
        self.n = n;
        self.k = k;
        self.x.clear();
        self.x.extend_from_slice(x);
        self.quantized = quantize;
        if quantize {
            assert_eq!(k % QK, 0, "quantized activations need whole blocks of {QK}");
            let nb = n * k / QK;
            self.qs.resize(n * k, 0);
            self.ds.resize(2 * nb, 0.0);
            for b in 0..nb {
                let xs = &x[b * QK..(b + 1) * QK];
                let qs = &mut self.qs[b * QK..(b + 1) * QK];
                let (d, s) = match ks.isa() {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: a KernelSet with the Avx2 path exists only where the CPU has avx2, fma and f16c.
                    Isa::Avx2 => unsafe { crate::avx2::quantize_block(xs, qs) },
                    _ => crate::scalar::quantize_block(xs, qs),
                };
                self.ds[2 * b] = d;
                self.ds[2 * b + 1] = s;
            }
        }
    }

    /// Rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Values per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Whether the 8-bit rows are present.
    pub fn is_quantized(&self) -> bool {
        self.quantized
    }

    /// Row `j`.
    pub fn row(&self, j: usize) -> ActRow<'_> {
        let (k, nb) = (self.k, self.k / QK);
        let x = &self.x[j * k..(j + 1) * k];
        if self.quantized {
            ActRow {
                x,
                qs: &self.qs[j * k..(j + 1) * k],
                ds: &self.ds[2 * j * nb..2 * (j + 1) * nb],
            }
        } else {
            ActRow { x, qs: &[], ds: &[] }
        }
    }
}

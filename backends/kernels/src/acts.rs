//! Activations as the kernels read them: f32 rows, and the same rows quantized to 8 bits in blocks of 32 with a
//! per-block scale `d` and `s = d·Σq` (what the offset terms of Q4_0, Q4_1 and the K-quants need), stored as
//! interleaved `(d, s)` pairs so a kernel loads both with one 8-byte load, and `Σq` per 16 values (Q6_K's scale
//! groups). For K-quant weights the scale may be shared by the eight blocks of each 256 values
//! ([`ActQuant::Super256`], as ggml's Q8_K), so their kernels apply the weights' sub-block scales in integers and
//! convert once per 256 values.

use crate::dispatch::KernelSet;

/// Values per activation block.
pub const QK: usize = 32;

/// Values per K-quant super-block (one shared activation scale under [`ActQuant::Super256`]).
pub const QK_K: usize = 256;

/// How activation rows are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActQuant {
    /// Kept as f32 only (float weights).
    None,
    /// 8 bits, a scale per 32 values (ggml's Q8_0 / Q8_1 activations).
    Block32,
    /// 8 bits, one scale per 256 values repeated for its eight blocks of 32 (ggml's Q8_K, for K-quant weights);
    /// rows a whole number of 256.
    Super256,
}

/// One activation row, borrowed from [`QuantActs`].
#[derive(Debug, Clone, Copy)]
pub struct ActRow<'a> {
    /// The f32 values (`k`).
    pub x: &'a [f32],
    /// 8-bit values (`k`), empty when the row was not quantized.
    pub qs: &'a [i8],
    /// `(d, d·Σq)` per block: `2 · k / 32` values.
    pub ds: &'a [f32],
    /// Whether `d` is shared by each run of eight blocks ([`ActQuant::Super256`]).
    pub super256: bool,
    /// `Σq` per 16 values (`k / 16`; Q6_K's scale groups), empty when the row was not quantized.
    pub sums16: &'a [i32],
}

/// `n` activation rows of `k` values, kept as f32 and (on request) quantized. Buffers are reused across calls.
#[derive(Debug, Default, Clone)]
pub struct QuantActs {
    n: usize,
    k: usize,
    quantized: bool,
    super256: bool,
    x: Vec<f32>,
    qs: Vec<i8>,
    ds: Vec<f32>,
    sums16: Vec<i32>,
}

impl QuantActs {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `n` rows of `k` values from `x` (row-major) and, when `quantize`, quantizes them (`k` a multiple of 32).
    pub fn set(&mut self, ks: &KernelSet, x: &[f32], n: usize, k: usize, quantize: bool) {
        assert_eq!(x.len(), n * k, "activation shape");
        let w = self.writer(ks, n, k, quantize);
        for j in 0..n {
            // SAFETY: one thread writes every row, once.
            unsafe { w.write(j, |row| row.copy_from_slice(&x[j * k..(j + 1) * k])) };
        }
    }

    /// Sizes the buffers for `n` rows of `k` values and returns a writer through which several threads can fill
    /// (and quantize) disjoint rows; `quantize` picks [`ActQuant::Block32`] or [`ActQuant::None`].
    pub fn writer(&mut self, ks: &KernelSet, n: usize, k: usize, quantize: bool) -> RowWriter<'_> {
        self.writer_with(ks, n, k, if quantize { ActQuant::Block32 } else { ActQuant::None })
    }

    /// [`QuantActs::writer`] with the quantization named.
    pub fn writer_with(&mut self, ks: &KernelSet, n: usize, k: usize, mode: ActQuant) -> RowWriter<'_> {
        let quantize = mode != ActQuant::None;
        assert!(!quantize || k.is_multiple_of(QK), "quantized activations need whole blocks of {QK}");
        assert!(mode != ActQuant::Super256 || k.is_multiple_of(QK_K), "shared scales need whole runs of {QK_K}");
        self.n = n;
        self.k = k;
        self.quantized = quantize;
        self.super256 = mode == ActQuant::Super256;
        self.x.resize(n * k, 0.0);
        if quantize {
            self.qs.resize(n * k, 0);
            self.ds.resize(2 * n * k / QK, 0.0);
            self.sums16.resize(n * k / 16, 0);
        }
        RowWriter {
            x: self.x.as_mut_ptr(),
            qs: self.qs.as_mut_ptr(),
            ds: self.ds.as_mut_ptr(),
            sums16: self.sums16.as_mut_ptr(),
            n,
            k,
            quantize,
            super256: self.super256,
            ks: *ks,
            _acts: std::marker::PhantomData,
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
            let (qs, ds) = (&self.qs[j * k..(j + 1) * k], &self.ds[2 * j * nb..2 * (j + 1) * nb]);
            let sums16 = &self.sums16[j * k / 16..(j + 1) * k / 16];
            ActRow { x, qs, ds, super256: self.super256, sums16 }
        } else {
            ActRow { x, qs: &[], ds: &[], super256: false, sums16: &[] }
        }
    }
}

/// Fills the rows of a [`QuantActs`] from several threads ([`QuantActs::writer`]).
pub struct RowWriter<'a> {
    x: *mut f32,
    qs: *mut i8,
    ds: *mut f32,
    sums16: *mut i32,
    n: usize,
    k: usize,
    quantize: bool,
    super256: bool,
    ks: KernelSet,
    _acts: std::marker::PhantomData<&'a mut QuantActs>,
}

// SAFETY: the writer only hands out disjoint rows (the `write` contract) of buffers it borrows mutably.
unsafe impl Send for RowWriter<'_> {}
// SAFETY: as above.
unsafe impl Sync for RowWriter<'_> {}

impl RowWriter<'_> {
    /// Lets `fill` write row `j`'s f32 values, then quantizes the row.
    ///
    /// # Safety
    /// No other thread writes row `j` at the same time.
    pub unsafe fn write(&self, j: usize, fill: impl FnOnce(&mut [f32])) {
        assert!(j < self.n, "row {j} of {}", self.n);
        let k = self.k;
        // SAFETY: row j is in bounds (asserted) and has one writer (the caller's contract).
        let x = unsafe { std::slice::from_raw_parts_mut(self.x.add(j * k), k) };
        fill(x);
        if self.quantize {
            let nb = k / QK;
            // SAFETY: as above, for row j's quantized values, its nb (d, s) pairs and its k / 16 group sums.
            let (qs, ds, sums16) = unsafe {
                (
                    std::slice::from_raw_parts_mut(self.qs.add(j * k), k),
                    std::slice::from_raw_parts_mut(self.ds.add(2 * j * nb), 2 * nb),
                    std::slice::from_raw_parts_mut(self.sums16.add(j * k / 16), k / 16),
                )
            };
            let simd = self.ks.isa().is_x86_simd();
            // The shared scale of each run of 256 (`None`: each block its own).
            let mut shared = None;
            for b in 0..nb {
                if self.super256 && b % 8 == 0 {
                    let amax = x[b * QK..b * QK + QK_K].iter().fold(0f32, |m, v| m.max(v.abs()));
                    shared = Some(amax / 127.0);
                }
                let (xs, q) = (&x[b * QK..(b + 1) * QK], &mut qs[b * QK..(b + 1) * QK]);
                let (d, s) = match shared {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: a KernelSet with these paths exists only where the CPU has avx2, fma and f16c.
                    Some(d) if simd => (d, unsafe { crate::avx2::quantize_block_with(xs, q, d) }),
                    Some(d) => (d, crate::scalar::quantize_block_with(xs, q, d)),
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: as above.
                    None if simd => unsafe { crate::avx2::quantize_block(xs, q) },
                    None => crate::scalar::quantize_block(xs, q),
                };
                ds[2 * b] = d;
                ds[2 * b + 1] = s;
            }
            for (s, q) in sums16.iter_mut().zip(qs.chunks_exact(16)) {
                *s = q.iter().map(|&v| v as i32).sum();
            }
        }
    }
}

//! Matrix products over a range of weight rows: the unit of work the native backend's threads split. Weight rows
//! are walked in blocks small enough to stay in cache while every activation row (in tiles of four) passes over
//! them, so a prefill reads each weight byte from memory once.

use std::ops::Range;

use crate::acts::{ActRow, QuantActs};
use crate::dispatch::KernelSet;
use crate::formats::WeightType;

/// Weight rows per cache block (for a 576-wide Q4_1 row, 64 rows are 23 KiB).
const ROW_BLOCK: usize = 64;

/// How a matrix's blocks are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As in the file: row after row.
    Plain,
    /// Rows interleaved in groups of four ([`crate::repack`]); run only by the AVX2 and AVX-512 paths.
    Interleaved4,
    /// Q4_0 / Q4_1 / Q8_0 / Q4_K / Q5_K / Q6_K rows interleaved in groups of sixteen, four bytes of each row side by side
    /// ([`crate::repack::interleave16`]); run only by the AVX-512 VNNI path.
    Interleaved16,
}

impl Layout {
    /// Rows per group: a range of rows handed to a kernel starts and ends on a multiple of it.
    pub fn group_rows(self) -> usize {
        match self {
            Layout::Plain => 1,
            Layout::Interleaved4 => 4,
            Layout::Interleaved16 => 16,
        }
    }
}

/// A row-major weight matrix in one of the kernel formats: `rows` rows of `cols` values.
#[derive(Debug, Clone, Copy)]
pub struct WeightMatrix<'a> {
    /// Block order.
    pub layout: Layout,
    /// Block format.
    pub ty: WeightType,
    /// Output features.
    pub rows: usize,
    /// Input features (a whole number of blocks).
    pub cols: usize,
    /// `rows × row_bytes` bytes.
    pub data: &'a [u8],
}

impl<'a> WeightMatrix<'a> {
    /// Checks the shape against the data.
    pub fn new(ty: WeightType, rows: usize, cols: usize, data: &'a [u8]) -> Result<Self, String> {
        if !cols.is_multiple_of(ty.block_len()) {
            return Err(format!("{cols} columns are not whole {} blocks of {}", ty.name(), ty.block_len()));
        }
        if data.len() != rows * ty.row_bytes(cols) {
            return Err(format!("{} bytes do not hold {rows}×{cols} {} values", data.len(), ty.name()));
        }
        Ok(Self { layout: Layout::Plain, ty, rows, cols, data })
    }

    /// Row `r`'s bytes (plain layout only).
    pub fn row(&self, r: usize) -> &'a [u8] {
        assert_eq!(self.layout, Layout::Plain, "rows of an interleaved matrix are not contiguous");
        let rb = self.ty.row_bytes(self.cols);
        &self.data[r * rb..(r + 1) * rb]
    }
}

/// Where a product's results go: element (activation row `j`, weight row `r`) at `ptr[j * stride + r]`.
/// Threads write disjoint weight-row ranges of one output through copies of this handle.
#[derive(Debug, Clone, Copy)]
pub struct OutMatrix {
    ptr: *mut f32,
    len: usize,
    stride: usize,
}

// SAFETY: the handle is a pointer into a buffer that outlives every use ([`OutMatrix::new`]'s contract); writers use
// disjoint elements ([`matmul_rows`]'s contract).
unsafe impl Send for OutMatrix {}
// SAFETY: as above.
unsafe impl Sync for OutMatrix {}

impl OutMatrix {
    /// A handle on `buf`, rows of `stride` values.
    ///
    /// # Safety
    /// `buf` must outlive every write through the handle and not be read while writes are in flight.
    pub unsafe fn new(buf: &mut [f32], stride: usize) -> Self {
        Self { ptr: buf.as_mut_ptr(), len: buf.len(), stride }
    }

    /// Writes elements (activation row `j`, weight rows `r0..r0 + v.len()`).
    #[inline]
    pub(crate) fn set_run(&self, j: usize, r0: usize, v: &[f32]) {
        let i = j * self.stride + r0;
        assert!(i + v.len() <= self.len && r0 + v.len() <= self.stride, "output run out of range");
        // SAFETY: in bounds (asserted); the buffer is alive and these elements have one writer ([`matmul_rows`]).
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), self.ptr.add(i), v.len()) }
    }

    /// Writes element (activation row `j`, weight row `r`).
    #[inline]
    pub(crate) fn set(&self, j: usize, r: usize, v: f32) {
        let i = j * self.stride + r;
        assert!(i < self.len, "output index out of range");
        // SAFETY: in bounds (asserted); the buffer is alive and this element has one writer ([`matmul_rows`]).
        unsafe { self.ptr.add(i).write(v) }
    }
}

/// Computes weight rows `rows` of `w · acts[j]` for every activation row `j` into `out`.
///
/// # Safety
/// No other call may write the same (row, activation) elements of `out` concurrently.
pub unsafe fn matmul_rows(ks: &KernelSet, w: &WeightMatrix<'_>, rows: Range<usize>, acts: &QuantActs, out: &OutMatrix) {
    assert_eq!(acts.k(), w.cols, "activation width");
    assert!(rows.end <= w.rows, "row range");
    assert!(!w.ty.quantized() || acts.is_quantized(), "{} weights need quantized activations", w.ty.name());
    match w.layout {
        Layout::Plain => {}
        Layout::Interleaved4 => assert!(ks.isa().interleaves(), "4-row interleaving runs on the x86 SIMD paths only"),
        Layout::Interleaved16 => assert!(ks.isa().interleaves16(), "16-row interleaving runs on the avx512 path only"),
    }
    let g = w.layout.group_rows();
    assert!(rows.start.is_multiple_of(g) && rows.end.is_multiple_of(g), "interleaved rows go in groups of {g}");
    let act_rows: Vec<ActRow<'_>> = (0..acts.n()).map(|j| acts.row(j)).collect();
    crate::dispatch::check_acts(w.ty, w.cols, &act_rows);
    // SAFETY: shapes checked above; disjoint writes are the caller's contract.
    unsafe { ks.matmul_unchecked(w, rows, &act_rows, out) }
}

/// The portable loop: rows in cache blocks, activations in tiles of four, one [`KernelSet::dot_tile`] per tile.
///
/// # Safety
/// Shapes as [`matmul_rows`] checks; disjoint writes.
pub(crate) unsafe fn generic_rows(
    ks: &KernelSet,
    w: &WeightMatrix<'_>,
    rows: Range<usize>,
    acts: &[ActRow<'_>],
    out: &OutMatrix,
) {
    let n = acts.len();
    let mut tile = [0f32; 4];
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + ROW_BLOCK).min(rows.end);
        for j0 in (0..n).step_by(4) {
            let a = &acts[j0..(j0 + 4).min(n)];
            for r in r0..r1 {
                // SAFETY: whole rows of w (checked by WeightMatrix::new), activations checked by the caller.
                unsafe { ks.dot_tile_unchecked(w.ty, w.row(r), a, &mut tile[..a.len()]) };
                for (dj, v) in tile[..a.len()].iter().enumerate() {
                    out.set(j0 + dj, r, *v);
                }
            }
        }
        r0 = r1;
    }
}

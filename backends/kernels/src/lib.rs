//! edgebench's own CPU kernels: the products of quantized weight rows with activations, for every weight type the
//! native backend runs, with a scalar reference for each and run-time CPU-feature dispatch.
//!
//! Activations are quantized to 8 bits in blocks of 32 ([`QuantActs`]) for the block-quantized weight types (as
//! llama.cpp does), and used as f32 for F16 and F32 weights. Every SIMD kernel computes the same sum as its scalar
//! reference in [`scalar`] up to float summation order; the property tests bound the difference with the tolerance
//! named in `edgebench_core::tolerance`.

pub mod acts;
pub mod attention;
pub mod dispatch;
pub mod formats;
pub mod matmul;
pub mod repack;
pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "x86_64")]
pub mod avxvnni;
#[cfg(target_arch = "aarch64")]
pub mod neon;

pub use acts::{ActQuant, ActRow, QuantActs, RowWriter};
pub use attention::KvSlice;
pub use dispatch::{Isa, KernelSet};
pub use formats::WeightType;
pub use matmul::{matmul_rows, Layout, OutMatrix, WeightMatrix};

#[cfg(test)]
mod tests;

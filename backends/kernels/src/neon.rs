//! aarch64 NEON kernels for Q4_0, Q4_1 and Q8_0 against 8-bit activations: widening 8-bit multiplies, one row at a
//! time. Kept small on purpose: the development machine is x86-64 and cannot compile or run this file, so it is
//! untested there (the README says so). Other weight types use the scalar reference on aarch64.

use std::arch::aarch64::*;

use crate::acts::{ActRow, QK};
use crate::formats::{f16_at, WeightType};

/// # Safety
/// The CPU has NEON; `ty` is Q4_0, Q4_1 or Q8_0; shapes as [`crate::KernelSet::dot_tile`] checks.
pub unsafe fn dot_tile(ty: WeightType, w: &[u8], acts: &[ActRow<'_>], out: &mut [f32]) {
    for (o, a) in out.iter_mut().zip(acts) {
        // SAFETY: forwarded from the caller.
        *o = unsafe { dot1(ty, w, a) };
    }
}

#[target_feature(enable = "neon")]
fn idot16(w: int8x16_t, a: int8x16_t) -> int32x4_t {
    let p0 = vmull_s8(vget_low_s8(w), vget_low_s8(a));
    let p1 = vmull_high_s8(w, a);
    vaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1))
}

#[target_feature(enable = "neon")]
unsafe fn dot1(ty: WeightType, w: &[u8], a: &ActRow<'_>) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in w.chunks_exact(ty.block_bytes()).enumerate() {
        let dw = f16_at(blk);
        // SAFETY: the activation row holds this block's 32 values; blk is one whole weight block.
        let (isum, m) = unsafe {
            let qa = a.qs.as_ptr().add(b * QK);
            let (a0, a1) = (vld1q_s8(qa), vld1q_s8(qa.add(16)));
            match ty {
                WeightType::Q8_0 => {
                    let w0 = vld1q_s8(blk.as_ptr().add(2).cast());
                    let w1 = vld1q_s8(blk.as_ptr().add(18).cast());
                    (vaddvq_s32(vaddq_s32(idot16(w0, a0), idot16(w1, a1))), 0.0)
                }
                _ => {
                    let min = ty == WeightType::Q4_1;
                    let raw = vld1q_u8(blk.as_ptr().add(if min { 4 } else { 2 }));
                    let lo = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0F)));
                    let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(raw));
                    let m = if min { f16_at(&blk[2..]) } else { -8.0 * dw };
                    (vaddvq_s32(vaddq_s32(idot16(lo, a0), idot16(hi, a1))), m)
                }
            }
        };
        acc += dw * a.ds[2 * b] * isum as f32 + m * a.ds[2 * b + 1];
    }
    acc
}

//! The weight block formats the kernels read, as stored in GGUF files (ggml's layouts), and their sizes.

use edgebench_gguf::GgmlType;

/// A weight type with a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WeightType {
    /// 32-bit floats.
    F32,
    /// IEEE half floats.
    F16,
    /// Blocks of 32: f16 scale `d`, 16 bytes of 4-bit values `u`; value = d·(u − 8).
    Q4_0,
    /// Blocks of 32: f16 scale `d`, f16 minimum `m`, 16 bytes of 4-bit values `u`; value = d·u + m.
    Q4_1,
    /// Blocks of 32: f16 scale `d`, the fifth bits of the 32 values (u32, bit `j` for value `j`), 16 bytes of low
    /// 4 bits as Q4_0's; value = d·(u − 16).
    Q5_0,
    /// Blocks of 32: f16 scale `d`, f16 minimum `m`, then as Q5_0; value = d·u + m.
    Q5_1,
    /// Blocks of 32: f16 scale `d`, 32 signed bytes `q`; value = d·q.
    Q8_0,
    /// Super-blocks of 256: f16 `d`, f16 `dmin`, 12 bytes of 6-bit scales and minimums for 8 sub-blocks of 32,
    /// 128 bytes of 4-bit values; value = d·sc·u − dmin·m.
    Q4K,
    /// Super-blocks of 256: as Q4_K (f16 `d`, `dmin`, 12 bytes of scales and minimums), then 32 bytes of fifth bits
    /// (bit `2c` / `2c + 1` of byte `l` for value `l` of 64-value run `c`'s halves), then 128 bytes of low 4 bits;
    /// value = d·sc·u − dmin·m.
    Q5K,
    /// Super-blocks of 256: 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed 8-bit scales (one per 16
    /// values), f16 `d`; value = d·sc·(q − 32).
    Q6K,
}

impl WeightType {
    /// Every type with a kernel.
    pub const ALL: &[WeightType] = &[
        Self::F32,
        Self::F16,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q4K,
        Self::Q5K,
        Self::Q6K,
    ];

    /// The kernel type for a GGUF tensor type, if there is one.
    pub fn from_ggml(t: GgmlType) -> Option<Self> {
        Some(match t {
            GgmlType::F32 => Self::F32,
            GgmlType::F16 => Self::F16,
            GgmlType::Q4_0 => Self::Q4_0,
            GgmlType::Q4_1 => Self::Q4_1,
            GgmlType::Q5_0 => Self::Q5_0,
            GgmlType::Q5_1 => Self::Q5_1,
            GgmlType::Q8_0 => Self::Q8_0,
            GgmlType::Q4K => Self::Q4K,
            GgmlType::Q5K => Self::Q5K,
            GgmlType::Q6K => Self::Q6K,
            _ => return None,
        })
    }

    /// The GGUF tensor type.
    pub fn ggml(self) -> GgmlType {
        match self {
            Self::F32 => GgmlType::F32,
            Self::F16 => GgmlType::F16,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4_1 => GgmlType::Q4_1,
            Self::Q5_0 => GgmlType::Q5_0,
            Self::Q5_1 => GgmlType::Q5_1,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4K => GgmlType::Q4K,
            Self::Q5K => GgmlType::Q5K,
            Self::Q6K => GgmlType::Q6K,
        }
    }

    /// Values per block.
    pub fn block_len(self) -> usize {
        self.ggml().block_size() as usize
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.ggml().block_bytes() as usize
    }

    /// Bytes of one row of `cols` values (`cols` a whole number of blocks).
    pub fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_len() * self.block_bytes()
    }

    /// Whether the kernels take 8-bit quantized activations (block formats) or f32 activations (float formats).
    pub fn quantized(self) -> bool {
        !matches!(self, Self::F32 | Self::F16)
    }

    /// Name as ggml spells it.
    pub fn name(self) -> &'static str {
        self.ggml().name()
    }
}

/// Reads the little-endian f16 at `b[0..2]` as f32.
#[inline]
pub fn f16_at(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// All eight 6-bit scales and minimums of a Q4_K super-block's 12 scale bytes at once, with word operations on the
/// packed bytes: `[scales 0..8, minimums 0..8]`, equal to [`q4k_scale_min`] for each sub-block.
#[inline]
pub fn q4k_scales_mins(q: &[u8]) -> [u8; 16] {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (a, b, c) = (w(0), w(1), w(2));
    let scales_hi = (c & LOW4) | (((a >> 6) & LOW2) << 4);
    let mins_hi = ((c >> 4) & LOW4) | (((b >> 6) & LOW2) << 4);
    let mut out = [0u8; 16];
    for (i, v) in [a & LOW6, scales_hi, b & LOW6, mins_hi].into_iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) of a Q4_K super-block's 12 scale bytes (ggml's packing).
#[inline]
pub fn q4k_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_scales_unpack_alike_one_by_one_and_all_at_once() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1000 {
            let q: Vec<u8> = (0..12)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (state >> 56) as u8
                })
                .collect();
            let all = q4k_scales_mins(&q);
            for j in 0..8 {
                assert_eq!(q4k_scale_min(j, &q), (all[j], all[8 + j]), "sub-block {j} of {q:?}");
            }
        }
    }
}

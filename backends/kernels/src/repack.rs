//! The interleaved weight layout for AVX2: rows in groups of four, block by block. For each group and block
//! column, the four rows' f16 scales (then, for Q4_1 / Q5_1, their four minimums; then, for Q5_0 / Q5_1, the low
//! and the high 16 bits of their fifth-bit words, four of each) come first, then the four rows' quant bytes. The bytes
//! are the file's, only reordered: a group's scales load and convert with one instruction, two rows' 4-bit values
//! fill one 256-bit register and the four rows' fifth bits of one nibble half make one 64-bit mask, so one
//! activation block serves four rows at a time.
//!
//! The AVX-512 path has a second layout for Q4_0, Q4_1, Q8_0, Q4_K, Q5_K and Q6_K ([`interleave16`]): rows in groups
//! of sixteen, so that one 512-bit register holds four bytes of each of sixteen rows and every 32-bit lane of a
//! `vpdpbusd` sums one row.

use crate::formats::WeightType;

/// Whether `ty` has an interleaved layout.
pub fn supported(ty: WeightType) -> bool {
    matches!(ty, WeightType::Q4_0 | WeightType::Q4_1 | WeightType::Q5_0 | WeightType::Q5_1 | WeightType::Q8_0)
}

/// Bytes of the per-row header fields of one block (scale, minimum, fifth bits; each moved as 2-byte fields), and
/// where the quant bytes start.
fn parts(ty: WeightType) -> (usize, usize) {
    match ty {
        WeightType::Q4_1 => (4, 4),
        WeightType::Q5_0 => (6, 6),
        WeightType::Q5_1 => (8, 8),
        _ => (2, 2),
    }
}

/// Interleaves `data` (`rows × cols` of `ty`, file layout); `None` when the type has no interleaved layout or
/// `rows` is not a multiple of four.
pub fn interleave(ty: WeightType, rows: usize, cols: usize, data: &[u8]) -> Option<Vec<u8>> {
    if !supported(ty) || !rows.is_multiple_of(4) || data.len() != rows * ty.row_bytes(cols) {
        return None;
    }
    let (bb, nb) = (ty.block_bytes(), cols / ty.block_len());
    let (head, _) = parts(ty);
    let qbytes = bb - head;
    let mut out = Vec::with_capacity(data.len());
    for g in 0..rows / 4 {
        for b in 0..nb {
            let blk = |r: usize| &data[(4 * g + r) * nb * bb + b * bb..][..bb];
            for field in (0..head).step_by(2) {
                for r in 0..4 {
                    out.extend_from_slice(&blk(r)[field..field + 2]);
                }
            }
            for r in 0..4 {
                out.extend_from_slice(&blk(r)[head..head + qbytes]);
            }
        }
    }
    Some(out)
}

/// Row `r` of an interleaved matrix in file layout, appended to `out`.
pub fn row(ty: WeightType, cols: usize, data: &[u8], r: usize, out: &mut Vec<u8>) {
    let (bb, nb) = (ty.block_bytes(), cols / ty.block_len());
    let (head, _) = parts(ty);
    let qbytes = bb - head;
    let (g, k) = (r / 4, r % 4);
    for b in 0..nb {
        let chunk = &data[(g * nb + b) * 4 * bb..][..4 * bb];
        for field in 0..head / 2 {
            out.extend_from_slice(&chunk[field * 8 + 2 * k..][..2]);
        }
        out.extend_from_slice(&chunk[4 * head + k * qbytes..][..qbytes]);
    }
}

/// Whether `ty` has the 16-row layout.
pub fn supported16(ty: WeightType) -> bool {
    matches!(
        ty,
        WeightType::Q4_0 | WeightType::Q4_1 | WeightType::Q8_0 | WeightType::Q4K | WeightType::Q5K | WeightType::Q6K
    )
}

/// Where a block's f16 header fields start in the file layout: first, except Q6_K's `d`, which closes its block.
fn head_at(ty: WeightType) -> usize {
    if ty == WeightType::Q6K {
        ty.block_bytes() - 2
    } else {
        0
    }
}

/// Where the bytes after the header ([`quant_bytes`]) start in the file layout.
fn quant_at(ty: WeightType) -> usize {
    if ty == WeightType::Q6K {
        0
    } else {
        ty.block_bytes() - quant_bytes(ty)
    }
}

/// Bytes besides a block's f16 header fields (`d`; Q4_1's `m`; Q4_K's and Q5_K's `dmin`), moved as 4-byte words: the
/// quant bytes, and for Q4_K first its 12 packed scale bytes (Q5_K: those, then its 32 bytes of fifth bits); for
/// Q6_K its 128 bytes of low bits, 64 of high bits and 16 scales, in that order.
fn quant_bytes(ty: WeightType) -> usize {
    match ty {
        WeightType::Q4_1 | WeightType::Q4K | WeightType::Q5K => ty.block_bytes() - 4,
        _ => ty.block_bytes() - 2,
    }
}

/// Interleaves `data` (`rows × cols` of `ty`, file layout) by sixteen rows; `None` when the type has no such layout
/// or `rows` is not a multiple of sixteen. A block column of a group holds the sixteen f16 scales, for Q4_1 the
/// sixteen f16 minimums (for Q4_K and Q5_K the sixteen `dmin`), then chunks of 64 bytes, chunk `c` holding the bytes
/// `4c..4c+4` after the header of rows 0 to 15 in turn (four chunks for Q4_0 / Q4_1, eight for Q8_0; for Q4_K three
/// of packed scales then 32 of quants; for Q5_K three of scales, 8 of fifth bits, 32 of quants; for Q6_K, whose `d`
/// moves to the front, 32 of low bits, 16 of high bits, 4 of scales). A 4-bit quant byte `i` of Q4_0 / Q4_1 holds
/// value `i` (low nibble) and `i + 16` (high nibble), so chunk `c`'s low nibbles are values `4c..4c+4` of each row
/// and its high nibbles `16+4c..20+4c`.
pub fn interleave16(ty: WeightType, rows: usize, cols: usize, data: &[u8]) -> Option<Vec<u8>> {
    if !supported16(ty) || !rows.is_multiple_of(16) || data.len() != rows * ty.row_bytes(cols) {
        return None;
    }
    let (bb, nb) = (ty.block_bytes(), cols / ty.block_len());
    let (head, h0, q0) = (bb - quant_bytes(ty), head_at(ty), quant_at(ty));
    let mut out = Vec::with_capacity(data.len());
    for g in 0..rows / 16 {
        for b in 0..nb {
            let blk = |r: usize| &data[(16 * g + r) * nb * bb + b * bb..][..bb];
            for field in (h0..h0 + head).step_by(2) {
                for r in 0..16 {
                    out.extend_from_slice(&blk(r)[field..field + 2]);
                }
            }
            for c in 0..quant_bytes(ty) / 4 {
                for r in 0..16 {
                    out.extend_from_slice(&blk(r)[q0 + 4 * c..][..4]);
                }
            }
        }
    }
    Some(out)
}

/// Row `r` of a 16-row interleaved matrix in file layout, appended to `out`.
pub fn row16(ty: WeightType, cols: usize, data: &[u8], r: usize, out: &mut Vec<u8>) {
    let (bb, nb) = (ty.block_bytes(), cols / ty.block_len());
    let head = bb - quant_bytes(ty);
    let (g, k) = (r / 16, r % 16);
    for b in 0..nb {
        let chunk = &data[(g * nb + b) * 16 * bb..][..16 * bb];
        let (mut fields, mut quants) = (Vec::with_capacity(head), Vec::with_capacity(bb - head));
        for field in 0..head / 2 {
            fields.extend_from_slice(&chunk[field * 32 + 2 * k..][..2]);
        }
        for c in 0..quant_bytes(ty) / 4 {
            quants.extend_from_slice(&chunk[16 * head + 64 * c + 4 * k..][..4]);
        }
        let (first, second) = if head_at(ty) == 0 { (fields, quants) } else { (quants, fields) };
        out.extend_from_slice(&first);
        out.extend_from_slice(&second);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pack = fn(WeightType, usize, usize, &[u8]) -> Option<Vec<u8>>;
    type Unpack = fn(WeightType, usize, &[u8], usize, &mut Vec<u8>);

    /// Packs a patterned `rows × cols` matrix of `ty` and checks that every row reads back as stored; returns the
    /// source and the packed bytes.
    fn round_trip(ty: WeightType, rows: usize, cols: usize, pack: Pack, unpack: Unpack) -> (Vec<u8>, Vec<u8>) {
        let data: Vec<u8> = (0..rows * ty.row_bytes(cols)).map(|i| (i * 7 + i / 13) as u8).collect();
        let x = pack(ty, rows, cols, &data).unwrap();
        assert_eq!(x.len(), data.len());
        assert_ne!(x, data);
        for r in 0..rows {
            let mut got = Vec::new();
            unpack(ty, cols, &x, r, &mut got);
            assert_eq!(got, &data[r * ty.row_bytes(cols)..(r + 1) * ty.row_bytes(cols)], "{} row {r}", ty.name());
        }
        (data, x)
    }

    #[test]
    fn interleaving_round_trips_every_row() {
        for ty in [WeightType::Q4_0, WeightType::Q4_1, WeightType::Q5_0, WeightType::Q5_1, WeightType::Q8_0] {
            round_trip(ty, 8, 96, interleave, row);
        }
        assert!(interleave(WeightType::Q4_1, 6, 32, &[0; 120]).is_none(), "rows not a multiple of four");
        assert!(interleave(WeightType::Q6K, 4, 256, &[0; 840]).is_none());
    }

    #[test]
    fn interleaving_by_sixteen_round_trips_every_row() {
        for ty in
            [WeightType::Q4_0, WeightType::Q4_1, WeightType::Q8_0, WeightType::Q4K, WeightType::Q5K, WeightType::Q6K]
        {
            assert_eq!(quant_bytes(ty) % 4, 0, "{} moves whole words", ty.name());
            let (data, x) = round_trip(ty, 32, 3 * ty.block_len(), interleave16, row16);
            // Row 5's scale is the sixth f16 of the first block column; its quant bytes 4..8 open chunk 1's sixth lane.
            let (bb, head) = (ty.block_bytes(), ty.block_bytes() - quant_bytes(ty));
            assert_eq!(x[10..12], data[5 * 3 * bb + head_at(ty)..][..2]);
            assert_eq!(x[16 * head + 64 + 20..][..4], data[5 * 3 * bb + quant_at(ty) + 4..][..4]);
        }
        assert!(interleave16(WeightType::Q4_0, 8, 32, &[0; 144]).is_none(), "rows not a multiple of sixteen");
        assert!(interleave16(WeightType::Q5_0, 16, 32, &[0; 352]).is_none());
    }
}

//! The native engine's KV cache: f16 (llama.cpp's default) or f32 values; per layer and KV head, keys in transposed
//! tiles of positions (the layout `edgebench_kernels::attention` reads) and values by position, with room doubled
//! when a call outruns it.

use edgebench_kernels::attention::{key_index, key_len, KEY_TILE};
use edgebench_kernels::KvSlice;
use half::{f16, slice::HalfFloatSliceExt};

/// The KV cache's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvType {
    /// f16, llama.cpp's default.
    F16,
    /// f32.
    F32,
}

/// One layer's keys or values for every KV head.
pub(crate) enum KvBuf {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl KvBuf {
    fn new(ty: KvType, len: usize) -> Self {
        match ty {
            KvType::F16 => KvBuf::F16(vec![f16::ZERO; len]),
            KvType::F32 => KvBuf::F32(vec![0.0; len]),
        }
    }

    fn copy_to(&self, other: &mut KvBuf, from: usize, to: usize, len: usize) {
        match (self, other) {
            (KvBuf::F16(a), KvBuf::F16(b)) => b[to..to + len].copy_from_slice(&a[from..from + len]),
            (KvBuf::F32(a), KvBuf::F32(b)) => b[to..to + len].copy_from_slice(&a[from..from + len]),
            _ => unreachable!("one type per cache"),
        }
    }
}

/// A session's KV cache: per layer, each KV head's keys in tiles of [`KEY_TILE`] positions, transposed within a
/// tile (`edgebench_kernels::attention::key_index`: a block of positions' scores is one vector product per
/// component, and a tile is contiguous), and its values by position (`[kv_head][capacity][head_dim]`); room for
/// `capacity` positions (whole tiles), grown by doubling.
pub(crate) struct KvCache {
    ty: KvType,
    /// Positions each layer's buffers hold.
    capacity: usize,
    /// Per layer: keys.
    k: Vec<KvBuf>,
    /// Per layer: values.
    v: Vec<KvBuf>,
}

impl KvCache {
    /// An empty cache of `ty` for `layers` blocks.
    pub(crate) fn new(layers: usize, ty: KvType) -> Self {
        let empty = |_| KvBuf::new(ty, 0);
        Self { ty, capacity: 0, k: (0..layers).map(empty).collect(), v: (0..layers).map(empty).collect() }
    }

    /// Room for at least `positions`, keeping the first `filled`.
    pub(crate) fn reserve(&mut self, positions: usize, filled: usize, kv_heads: usize, hd: usize) {
        if positions <= self.capacity {
            return;
        }
        // Whole key tiles: the attention kernels may read a tile's positions past the last one filled.
        let cap = positions.max(2 * self.capacity).max(64).next_multiple_of(KEY_TILE);
        let keys = key_len(filled, hd);
        for (k, v) in self.k.iter_mut().zip(&mut self.v) {
            let (mut k2, mut v2) = (KvBuf::new(self.ty, kv_heads * hd * cap), KvBuf::new(self.ty, kv_heads * cap * hd));
            for g in 0..kv_heads {
                k.copy_to(&mut k2, g * self.capacity * hd, g * cap * hd, keys);
                v.copy_to(&mut v2, g * self.capacity * hd, g * cap * hd, filled * hd);
            }
            (*k, *v) = (k2, v2);
        }
        self.capacity = cap;
    }

    /// Stores `n` new positions at `pos` from rows of `kvd = kv_heads · hd` keys and values.
    pub(crate) fn store(&mut self, layer: usize, kn: &[f32], vn: &[f32], pos: usize, kv_heads: usize, hd: usize) {
        for (g, mut group) in self.groups_mut(layer, kv_heads, hd).into_iter().enumerate() {
            group.store(g, kn, vn, pos, kv_heads);
        }
    }

    /// Layer `layer`'s cache split by KV head, each part writable on its own (threads may own different heads).
    pub(crate) fn groups_mut(&mut self, layer: usize, kv_heads: usize, hd: usize) -> Vec<GroupMut<'_>> {
        let (cap, len) = (self.capacity, self.capacity * hd);
        match (&mut self.k[layer], &mut self.v[layer]) {
            (KvBuf::F16(k), KvBuf::F16(v)) => k[..kv_heads * len]
                .chunks_exact_mut(len)
                .zip(v[..kv_heads * len].chunks_exact_mut(len))
                .map(|(k, v)| GroupMut { k: BufMut::F16(k), v: BufMut::F16(v), cap, hd })
                .collect(),
            (KvBuf::F32(k), KvBuf::F32(v)) => k[..kv_heads * len]
                .chunks_exact_mut(len)
                .zip(v[..kv_heads * len].chunks_exact_mut(len))
                .map(|(k, v)| GroupMut { k: BufMut::F32(k), v: BufMut::F32(v), cap, hd })
                .collect(),
            _ => unreachable!("one type per cache"),
        }
    }
}

/// One KV head's part of a layer's keys or values, writable.
enum BufMut<'a> {
    F16(&'a mut [f16]),
    F32(&'a mut [f32]),
}

impl BufMut<'_> {
    fn view(&self) -> KvSlice<'_> {
        match self {
            BufMut::F16(b) => KvSlice::F16(b),
            BufMut::F32(b) => KvSlice::F32(b),
        }
    }
}

/// One KV head's keys (transposed tiles) and values (by position) in one layer, for `capacity` positions.
pub(crate) struct GroupMut<'a> {
    k: BufMut<'a>,
    v: BufMut<'a>,
    cap: usize,
    hd: usize,
}

impl<'a> GroupMut<'a> {
    /// Stores this head's (`g` of `kv_heads`) part of `n` new positions at `pos`, from rows of `kv_heads · hd` keys
    /// and values.
    pub(crate) fn store(&mut self, g: usize, kn: &[f32], vn: &[f32], pos: usize, kv_heads: usize) {
        let (hd, kvd) = (self.hd, kv_heads * self.hd);
        debug_assert!(pos + kn.len() / kvd <= self.cap, "room reserved first");
        let mut k16 = match self.k {
            BufMut::F16(_) => vec![f16::ZERO; hd],
            BufMut::F32(_) => Vec::new(),
        };
        for (t, (kr, vr)) in kn.chunks_exact(kvd).zip(vn.chunks_exact(kvd)).enumerate() {
            let (p, kr, vr) = (pos + t, &kr[g * hd..][..hd], &vr[g * hd..][..hd]);
            match (&mut self.k, &mut self.v) {
                (BufMut::F16(k), BufMut::F16(v)) => {
                    // One vector conversion per row (F16C where the CPU has it), then the keys scattered.
                    k16.convert_from_f32_slice(kr);
                    for (c, &x) in k16.iter().enumerate() {
                        k[key_index(c, p, hd)] = x;
                    }
                    v[p * hd..][..hd].convert_from_f32_slice(vr);
                }
                (BufMut::F32(k), BufMut::F32(v)) => {
                    for (c, &x) in kr.iter().enumerate() {
                        k[key_index(c, p, hd)] = x;
                    }
                    v[p * hd..][..hd].copy_from_slice(vr);
                }
                _ => unreachable!("one type per cache"),
            }
        }
    }

    /// This head's keys and values, read-only for as long as the cache was lent.
    pub(crate) fn into_views(self) -> (KvSlice<'a>, KvSlice<'a>) {
        let view = |b: BufMut<'a>| match b {
            BufMut::F16(b) => KvSlice::F16(b),
            BufMut::F32(b) => KvSlice::F32(b),
        };
        (view(self.k), view(self.v))
    }

    /// This head's keys, as the attention kernels read them.
    pub(crate) fn keys(&self) -> KvSlice<'_> {
        self.k.view()
    }

    /// This head's values.
    pub(crate) fn values(&self) -> KvSlice<'_> {
        self.v.view()
    }
}

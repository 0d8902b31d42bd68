//! Loading a GGUF into the native engine through the architecture description ([`edgebench_gguf::arch`]): each
//! weight matrix kept in its file format (the kernels read ggml's blocks as stored), fused QKV and gate/up matrices
//! split by rows, norms and biases as f32.

use std::collections::BTreeMap;
use std::path::Path;

use edgebench_core::BackendError;
use edgebench_gguf::arch::{names, ParamsError};
use edgebench_gguf::{quant, GgufFile};
use edgebench_kernels::{repack, Layout, WeightMatrix, WeightType};

use crate::arena::{Arena, Bytes};

pub use edgebench_gguf::arch::ModelDesc as Hparams;

/// One weight matrix in its file format.
pub struct Weight {
    /// Block order (file order, or interleaved by four or sixteen rows for the SIMD kernels).
    pub layout: Layout,
    /// Block format.
    pub ty: WeightType,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// The tensor's bytes as stored (in huge-page memory, `arena.rs`).
    pub data: Bytes,
}

impl Weight {
    /// The kernels' view.
    pub fn matrix(&self) -> WeightMatrix<'_> {
        WeightMatrix { layout: self.layout, ty: self.ty, rows: self.rows, cols: self.cols, data: &self.data }
    }

    /// Row `r` in file layout (for embedding lookups).
    pub fn row(&self, r: usize) -> std::borrow::Cow<'_, [u8]> {
        match self.layout {
            Layout::Plain => std::borrow::Cow::Borrowed(self.matrix().row(r)),
            Layout::Interleaved4 | Layout::Interleaved16 => {
                let mut out = Vec::with_capacity(self.ty.row_bytes(self.cols));
                match self.layout {
                    Layout::Interleaved16 => repack::row16(self.ty, self.cols, &self.data, r, &mut out),
                    _ => repack::row(self.ty, self.cols, &self.data, r, &mut out),
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }
}

/// One transformer block.
pub struct Layer {
    /// RMSNorm before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection.
    pub wq: Weight,
    /// Key projection.
    pub wk: Weight,
    /// Value projection.
    pub wv: Weight,
    /// Q, K and V biases (qwen2).
    pub bias: Option<[Vec<f32>; 3]>,
    /// Per-head RMSNorm weights of Q and K (qwen3, gemma3).
    pub qk_norm: Option<[Vec<f32>; 2]>,
    /// Attention output projection.
    pub wo: Weight,
    /// RMSNorms of the attention and MLP outputs (gemma3).
    pub post_norms: Option<[Vec<f32>; 2]>,
    /// RMSNorm before the MLP.
    pub ffn_norm: Vec<f32>,
    /// Gate projection.
    pub gate: Weight,
    /// Up projection.
    pub up: Weight,
    /// Down projection.
    pub down: Weight,
}

impl Layer {
    fn matrices(&self) -> [&Weight; 7] {
        [&self.wq, &self.wk, &self.wv, &self.wo, &self.gate, &self.up, &self.down]
    }
}

/// All weights of a model.
pub struct Weights {
    /// Hyper-parameters and block variations.
    pub hp: Hparams,
    /// Token embedding table (`vocab` rows of `n_embd`).
    pub embd: Weight,
    /// Blocks.
    pub layers: Vec<Layer>,
    /// Final RMSNorm.
    pub output_norm: Vec<f32>,
    /// Output projection; `None` when tied to the embedding table.
    pub output: Option<Weight>,
    /// Rope frequency divisors (`rope_freqs.weight`), when the file has them.
    pub rope_freqs: Option<Vec<f32>>,
    /// Tensor count per type (for the facts).
    pub types: BTreeMap<WeightType, usize>,
    /// Matrices stored interleaved by four rows.
    pub interleaved: usize,
    /// Matrices stored interleaved by sixteen rows.
    pub interleaved16: usize,
}

impl Weights {
    /// The output projection (the embedding table when tied).
    pub fn output(&self) -> &Weight {
        self.output.as_ref().unwrap_or(&self.embd)
    }

    /// Every matrix held.
    pub fn matrices(&self) -> impl Iterator<Item = &Weight> {
        self.layers.iter().flat_map(Layer::matrices).chain([&self.embd]).chain(self.output.as_ref())
    }
}

/// The layout a matrix runs in and its bytes in that layout. Takes the file-order bytes by value so that, when
/// repacked, they are freed before the caller copies the result into the arena (two copies of the largest tensor
/// at a time, not three).
fn repacked(
    ty: WeightType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
    interleave: bool,
    by16: bool,
) -> (Layout, Vec<u8>) {
    if interleave && by16 {
        if let Some(x) = repack::interleave16(ty, rows, cols, &data) {
            return (Layout::Interleaved16, x);
        }
    }
    if interleave {
        if let Some(x) = repack::interleave(ty, rows, cols, &data) {
            return (Layout::Interleaved4, x);
        }
    }
    (Layout::Plain, data)
}

/// Reads and checks every tensor of a file the architecture description accepts; with `interleave`, reorders the
/// blocks of every matrix that has an interleaved layout ([`repack`]), by sixteen rows where `by16` and the type
/// and row count allow it, else by four.
pub fn load(path: &Path, interleave: bool, by16: bool) -> Result<Weights, BackendError> {
    let load_err = |m: String| BackendError::Load { path: path.display().to_string(), message: m };
    let file = GgufFile::open(path).map_err(|e| load_err(e.to_string()))?;
    let hp = Hparams::from_gguf(&file.gguf).map_err(|e| match e {
        ParamsError::Unsupported(m) => BackendError::Unsupported(format!("{m} (native backend)")),
        ParamsError::Invalid(m) => load_err(m),
    })?;
    if hp.n_embd % 32 != 0 || hp.n_ff % 32 != 0 || hp.q_dim() % 32 != 0 {
        return Err(BackendError::Unsupported(format!(
            "widths {}, {} and {} are not all multiples of 32 (the native backend quantizes activations in blocks \
             of 32)",
            hp.n_embd,
            hp.n_ff,
            hp.q_dim()
        )));
    }
    let g = &file.gguf;
    let mut types = BTreeMap::new();
    let mut arena = Arena::default();
    // Rows `first..first + rows` of the matrix `name` of `total` rows (all of it unless fused).
    let mut weight =
        |name: &str, first: usize, rows: usize, total: usize, cols: usize| -> Result<Weight, BackendError> {
            let info = g.tensor(name).map_err(|e| load_err(e.to_string()))?;
            if info.dims != [cols as u64, total as u64] {
                return Err(load_err(format!("tensor {name} has shape {:?}, expected [{cols}, {total}]", info.dims)));
            }
            let ty = WeightType::from_ggml(info.ty).ok_or_else(|| {
                BackendError::Unsupported(format!(
                "tensor {name} has type {} (native kernels: F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)",
                info.ty
            ))
            })?;
            if !cols.is_multiple_of(ty.block_len()) {
                return Err(load_err(format!("tensor {name}: {cols} columns are not whole {} blocks", ty.name())));
            }
            let data = file.read_tensor(info).map_err(|e| load_err(e.to_string()))?;
            let rb = data.len() / total;
            let data = if (first, rows) == (0, total) { data } else { data[first * rb..(first + rows) * rb].to_vec() };
            if first == 0 {
                *types.entry(ty).or_insert(0) += 1;
            }
            let (layout, data) = repacked(ty, rows, cols, data, interleave, by16);
            // The file-order copy just freed may sit in malloc's heap, still resident; give it back before the
            // arena copy, or the peak RSS holds one more copy of the largest tensor (glibc only returns large
            // blocks on its own).
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only releases free memory.
            unsafe {
                libc::malloc_trim(0);
            }
            let data = arena
                .copy(&data)
                .ok_or_else(|| load_err(format!("out of memory: {} bytes for tensor {name}", data.len())))?;
            Ok(Weight { layout, ty, rows, cols, data })
        };
    let (e, q, kv, ff) = (hp.n_embd, hp.q_dim(), hp.kv_dim(), hp.n_ff);
    let mut layers = Vec::with_capacity(hp.n_layer);
    for i in 0..hp.n_layer {
        let w = |n: &str| names::blk(i, &format!("{n}.weight"));
        let (wq, wk, wv) = if hp.fused_qkv {
            let (n, t) = (w("attn_qkv"), q + 2 * kv);
            (weight(&n, 0, q, t, e)?, weight(&n, q, kv, t, e)?, weight(&n, q + kv, kv, t, e)?)
        } else {
            (
                weight(&w("attn_q"), 0, q, q, e)?,
                weight(&w("attn_k"), 0, kv, kv, e)?,
                weight(&w("attn_v"), 0, kv, kv, e)?,
            )
        };
        let wo = weight(&w("attn_output"), 0, e, e, q)?;
        let (gate, up) = if hp.fused_gate_up {
            let n = w("ffn_up");
            (weight(&n, 0, ff, 2 * ff, e)?, weight(&n, ff, ff, 2 * ff, e)?)
        } else {
            (weight(&w("ffn_gate"), 0, ff, ff, e)?, weight(&w("ffn_up"), 0, ff, ff, e)?)
        };
        let down = weight(&w("ffn_down"), 0, e, e, ff)?;
        let none = Vec::new;
        layers.push(Layer {
            attn_norm: none(),
            wq,
            wk,
            wv,
            bias: None,
            qk_norm: None,
            wo,
            post_norms: None,
            ffn_norm: none(),
            gate,
            up,
            down,
        });
    }
    let embd = weight(names::TOKEN_EMBD, 0, hp.vocab, hp.vocab, e)?;
    let output = match g.tensor(names::OUTPUT) {
        Ok(_) => Some(weight(names::OUTPUT, 0, hp.vocab, hp.vocab, e)?),
        Err(_) => None,
    };
    let vector = |name: &str, n: usize| -> Result<Vec<f32>, BackendError> {
        let info = g.tensor(name).map_err(|e| load_err(e.to_string()))?;
        if info.n_elements != n as u64 {
            return Err(load_err(format!("tensor {name} has {} values, expected {n}", info.n_elements)));
        }
        let data = file.read_tensor(info).map_err(|e| load_err(e.to_string()))?;
        quant::dequantize(info.ty, &data, n).map_err(|err| load_err(format!("tensor {name}: {err}")))
    };
    for (i, l) in layers.iter_mut().enumerate() {
        let v = |n: &str, len: usize| vector(&names::blk(i, n), len);
        l.attn_norm = v("attn_norm.weight", e)?;
        l.ffn_norm = v("ffn_norm.weight", e)?;
        if hp.qkv_bias {
            l.bias = Some(if hp.fused_qkv {
                let b = v("attn_qkv.bias", q + 2 * kv)?;
                [b[..q].to_vec(), b[q..q + kv].to_vec(), b[q + kv..].to_vec()]
            } else {
                [v("attn_q.bias", q)?, v("attn_k.bias", kv)?, v("attn_v.bias", kv)?]
            });
        }
        if hp.qk_norm {
            l.qk_norm = Some([v("attn_q_norm.weight", hp.head_dim)?, v("attn_k_norm.weight", hp.head_dim)?]);
        }
        if hp.post_norms {
            l.post_norms = Some([v("post_attention_norm.weight", e)?, v("post_ffw_norm.weight", e)?]);
        }
    }
    let output_norm = vector(names::OUTPUT_NORM, e)?;
    let rope_freqs = if hp.rope_freq_factors { Some(vector(names::ROPE_FREQS, hp.head_dim / 2)?) } else { None };
    let mut w = Weights { hp, embd, layers, output_norm, output, rope_freqs, types, interleaved: 0, interleaved16: 0 };
    w.interleaved = w.matrices().filter(|m| m.layout == Layout::Interleaved4).count();
    w.interleaved16 = w.matrices().filter(|m| m.layout == Layout::Interleaved16).count();
    Ok(w)
}

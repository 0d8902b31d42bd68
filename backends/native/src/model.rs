//! Loading a llama-architecture GGUF into the native engine: hyper-parameters from `llama.*` metadata, each weight
//! matrix kept in its file format (the kernels read ggml's blocks as stored), norms as f32.

use std::collections::BTreeMap;
use std::path::Path;

use edgebench_core::BackendError;
use edgebench_gguf::llama::ParamsError;
use edgebench_gguf::{quant, GgufFile};
use edgebench_kernels::{repack, Layout, WeightMatrix, WeightType};

pub use edgebench_gguf::llama::LlamaParams as Hparams;

/// One weight matrix in its file format.
pub struct Weight {
    /// Block order (file order, or interleaved by four rows for the AVX2 kernels).
    pub layout: Layout,
    /// Block format.
    pub ty: WeightType,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// The tensor's bytes as stored.
    pub data: Vec<u8>,
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
            Layout::Interleaved4 => {
                let mut out = Vec::with_capacity(self.ty.row_bytes(self.cols));
                repack::row(self.ty, self.cols, &self.data, r, &mut out);
                std::borrow::Cow::Owned(out)
            }
        }
    }
}

/// One transformer block.
pub struct Layer {
    /// RMSNorm before attention.
    pub attn_norm: Vec<f32>,
    /// Query, key, value and output projections.
    pub wq: Weight,
    /// Key projection.
    pub wk: Weight,
    /// Value projection.
    pub wv: Weight,
    /// Attention output projection.
    pub wo: Weight,
    /// RMSNorm before the MLP.
    pub ffn_norm: Vec<f32>,
    /// SwiGLU gate.
    pub gate: Weight,
    /// SwiGLU up projection.
    pub up: Weight,
    /// Down projection.
    pub down: Weight,
}

/// All weights of a model.
pub struct Weights {
    /// Hyper-parameters.
    pub hp: Hparams,
    /// Token embedding table (`vocab` rows of `n_embd`).
    pub embd: Weight,
    /// Blocks.
    pub layers: Vec<Layer>,
    /// Final RMSNorm.
    pub output_norm: Vec<f32>,
    /// Output projection; `None` when tied to the embedding table.
    pub output: Option<Weight>,
    /// Tensor count per type (for the facts).
    pub types: BTreeMap<WeightType, usize>,
    /// Matrices stored interleaved.
    pub interleaved: usize,
}

impl Weights {
    /// The output projection (the embedding table when tied).
    pub fn output(&self) -> &Weight {
        self.output.as_ref().unwrap_or(&self.embd)
    }
}

/// Reads and checks every tensor of a llama-architecture file; with `interleave`, reorders the blocks of every
/// matrix that has an interleaved layout ([`repack`]).
pub fn load(path: &Path, interleave: bool) -> Result<Weights, BackendError> {
    let load_err = |m: String| BackendError::Load { path: path.display().to_string(), message: m };
    let file = GgufFile::open(path).map_err(|e| load_err(e.to_string()))?;
    let hp = Hparams::from_gguf(&file.gguf).map_err(|e| match e {
        ParamsError::Unsupported(m) => BackendError::Unsupported(format!("{m} (native backend)")),
        ParamsError::Invalid(m) => load_err(m),
    })?;
    if hp.n_embd % 32 != 0 || hp.n_ff % 32 != 0 {
        return Err(BackendError::Unsupported(format!(
            "widths {} and {} are not multiples of 32 (the native backend quantizes activations in blocks of 32)",
            hp.n_embd, hp.n_ff
        )));
    }
    let g = &file.gguf;
    let mut types = BTreeMap::new();
    let mut weight = |name: &str, rows: usize, cols: usize| -> Result<Weight, BackendError> {
        let info = g.tensor(name).map_err(|e| load_err(e.to_string()))?;
        if info.dims != [cols as u64, rows as u64] {
            return Err(load_err(format!("tensor {name} has shape {:?}, expected [{cols}, {rows}]", info.dims)));
        }
        let ty = WeightType::from_ggml(info.ty).ok_or_else(|| {
            BackendError::Unsupported(format!(
                "tensor {name} has type {} (native kernels: F32, F16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K)",
                info.ty
            ))
        })?;
        if !cols.is_multiple_of(ty.block_len()) {
            return Err(load_err(format!("tensor {name}: {cols} columns are not whole {} blocks", ty.name())));
        }
        *types.entry(ty).or_insert(0) += 1;
        let data = file.read_tensor(info).map_err(|e| load_err(e.to_string()))?;
        if interleave {
            if let Some(x) = repack::interleave(ty, rows, cols, &data) {
                return Ok(Weight { layout: Layout::Interleaved4, ty, rows, cols, data: x });
            }
        }
        Ok(Weight { layout: Layout::Plain, ty, rows, cols, data })
    };
    let (e, kv, ff) = (hp.n_embd, hp.n_head_kv * hp.head_dim, hp.n_ff);
    let mut layers = Vec::with_capacity(hp.n_layer);
    for i in 0..hp.n_layer {
        let w = |n: &str| format!("blk.{i}.{n}.weight");
        let (wq, wk, wv, wo) = (
            weight(&w("attn_q"), e, e)?,
            weight(&w("attn_k"), kv, e)?,
            weight(&w("attn_v"), kv, e)?,
            weight(&w("attn_output"), e, e)?,
        );
        let (gate, up, down) =
            (weight(&w("ffn_gate"), ff, e)?, weight(&w("ffn_up"), ff, e)?, weight(&w("ffn_down"), e, ff)?);
        layers.push(Layer { attn_norm: Vec::new(), wq, wk, wv, wo, ffn_norm: Vec::new(), gate, up, down });
    }
    let embd = weight("token_embd.weight", hp.vocab, e)?;
    let output = match g.tensor("output.weight") {
        Ok(_) => Some(weight("output.weight", hp.vocab, e)?),
        Err(_) => None,
    };
    let vector = |name: &str| -> Result<Vec<f32>, BackendError> {
        let info = g.tensor(name).map_err(|e| load_err(e.to_string()))?;
        if info.n_elements != e as u64 {
            return Err(load_err(format!("tensor {name} has {} values, expected {e}", info.n_elements)));
        }
        let data = file.read_tensor(info).map_err(|e| load_err(e.to_string()))?;
        quant::dequantize(info.ty, &data, e).map_err(|err| load_err(format!("tensor {name}: {err}")))
    };
    for (i, l) in layers.iter_mut().enumerate() {
        l.attn_norm = vector(&format!("blk.{i}.attn_norm.weight"))?;
        l.ffn_norm = vector(&format!("blk.{i}.ffn_norm.weight"))?;
    }
    let output_norm = vector("output_norm.weight")?;
    let interleaved = layers
        .iter()
        .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down])
        .chain([&embd].into_iter().chain(output.as_ref()))
        .filter(|w| w.layout == Layout::Interleaved4)
        .count();
    Ok(Weights { hp, embd, layers, output_norm, output, types, interleaved })
}

//! The llama architecture's hyper-parameters, read from `llama.*` metadata and checked once for every engine that
//! runs such files.

use crate::Gguf;

/// Why a file's metadata cannot be run as llama.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// A valid file this code does not run (another architecture, partial rotary embeddings, …).
    #[error("{0}")]
    Unsupported(String),
    /// Missing or inconsistent metadata.
    #[error("{0}")]
    Invalid(String),
}

/// Hyper-parameters of a llama-architecture model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaParams {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Feed-forward width.
    pub n_ff: usize,
    /// Context length.
    pub n_ctx: usize,
    /// RoPE frequency base (default 10000).
    pub rope_base: f32,
    /// RoPE linear scaling factor (positions are divided by it; 1 when absent).
    pub rope_scale: f32,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Vocabulary size (rows of `token_embd.weight`).
    pub vocab: usize,
}

impl LlamaParams {
    /// Reads and checks the metadata of a llama file.
    pub fn from_gguf(g: &Gguf) -> Result<Self, ParamsError> {
        let invalid = |e: crate::GgufError| ParamsError::Invalid(e.to_string());
        let arch = g.architecture().map_err(invalid)?;
        if arch != "llama" {
            return Err(ParamsError::Unsupported(format!("architecture {arch:?} (llama is supported)")));
        }
        let u = |k: &str| g.u64(&format!("llama.{k}")).map(|v| v as usize).map_err(invalid);
        let (n_embd, n_head) = (u("embedding_length")?, u("attention.head_count")?);
        let n_head_kv = g.u64("llama.attention.head_count_kv").map(|v| v as usize).unwrap_or(n_head);
        if n_head == 0 || n_head_kv == 0 || n_embd % n_head != 0 || n_head % n_head_kv != 0 {
            return Err(ParamsError::Invalid(format!(
                "inconsistent heads: {n_embd} / {n_head} heads / {n_head_kv} kv heads"
            )));
        }
        let head_dim = n_embd / n_head;
        let rope_dim = g.u64("llama.rope.dimension_count").map(|v| v as usize).unwrap_or(head_dim);
        if rope_dim != head_dim || head_dim % 2 != 0 {
            return Err(ParamsError::Unsupported(format!("partial rotary embedding ({rope_dim} of {head_dim})")));
        }
        if let Ok(kind) = g.str("llama.rope.scaling.type") {
            if kind != "none" && kind != "linear" {
                return Err(ParamsError::Unsupported(format!("rope scaling {kind:?} (none and linear are supported)")));
            }
        }
        let embd = g.tensor("token_embd.weight").map_err(invalid)?;
        Ok(Self {
            n_layer: u("block_count")?,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: u("feed_forward_length")?,
            n_ctx: u("context_length")?,
            rope_base: g.f64("llama.rope.freq_base").unwrap_or(10000.0) as f32,
            rope_scale: g.f64("llama.rope.scaling.factor").ok().filter(|f| *f > 0.0).unwrap_or(1.0) as f32,
            eps: g.f64("llama.attention.layer_norm_rms_epsilon").map_err(invalid)? as f32,
            vocab: embd.dims.get(1).copied().unwrap_or(0) as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{tiny_llama, TinyConfig};
    use crate::Value;

    fn params(edit: impl FnOnce(&mut crate::GgufWriter)) -> Result<LlamaParams, ParamsError> {
        let mut w = tiny_llama(&TinyConfig::default()).unwrap();
        edit(&mut w);
        LlamaParams::from_gguf(&crate::parse(&w.to_bytes().unwrap()).unwrap())
    }

    #[test]
    fn reads_the_tiny_model_and_refuses_what_it_cannot_run() {
        let p = params(|_| {}).unwrap();
        let c = TinyConfig::default();
        assert_eq!((p.n_layer, p.n_embd, p.n_head, p.n_head_kv), (2, c.n_embd as usize, 4, 2));
        assert_eq!((p.head_dim, p.n_ff, p.rope_scale), (16, c.n_ff as usize, 1.0));
        let heads = params(|w| {
            w.kv("llama.attention.head_count_kv", Value::U32(3));
        });
        assert!(matches!(heads, Err(ParamsError::Invalid(m)) if m.contains("inconsistent heads")));
        let rope = params(|w| {
            w.kv("llama.rope.dimension_count", Value::U32(8));
        });
        assert!(matches!(rope, Err(ParamsError::Unsupported(m)) if m.contains("partial rotary")));
        let yarn = params(|w| {
            w.kv("llama.rope.scaling.type", Value::String("yarn".into()));
        });
        assert!(matches!(yarn, Err(ParamsError::Unsupported(m)) if m.contains("yarn")));
        let linear = params(|w| {
            w.kv("llama.rope.scaling.type", Value::String("linear".into()));
            w.kv("llama.rope.scaling.factor", Value::F32(4.0));
        });
        assert_eq!(linear.unwrap().rope_scale, 4.0);
        let arch = params(|w| {
            w.kv("general.architecture", Value::String("gpt2".into()));
        });
        assert!(matches!(arch, Err(ParamsError::Unsupported(m)) if m.contains("gpt2")));
    }
}

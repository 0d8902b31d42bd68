//! Tiny llama-architecture GGUF models with random weights and a small byte-level BPE vocabulary, so tests of the
//! whole pipeline need no download.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{bytelevel, quant, GgmlType, GgufError, GgufWriter, Value, ValueType};

/// Control tokens of the tiny vocabulary, at ids 0, 1, 2.
pub const CONTROL_TOKENS: &[&str] = &["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Merges of the tiny vocabulary (in the byte-level alphabet), highest priority first.
pub const MERGES: &[&str] = &["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "Ġ w"];

/// A ChatML template in minijinja/Jinja syntax, for the tiny model.
pub const CHAT_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Shape and encoding of a tiny model.
#[derive(Debug, Clone)]
pub struct TinyConfig {
    /// Transformer blocks.
    pub n_layer: u64,
    /// Hidden size (a multiple of 32 for block-quantized types).
    pub n_embd: u64,
    /// Attention heads.
    pub n_head: u64,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: u64,
    /// MLP hidden size.
    pub n_ff: u64,
    /// Context length.
    pub n_ctx: u64,
    /// Type of the 2-D weight matrices.
    pub weight_type: GgmlType,
    /// Type of the token embedding (tied with the output projection).
    pub embd_type: GgmlType,
    /// Seed of the random weights.
    pub seed: u64,
}

impl Default for TinyConfig {
    fn default() -> Self {
        Self {
            n_layer: 2,
            n_embd: 64,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 128,
            n_ctx: 256,
            weight_type: GgmlType::Q4_1,
            embd_type: GgmlType::Q8_0,
            seed: 7,
        }
    }
}

/// The tiny vocabulary: control tokens, the 256 byte tokens, then one token per merge.
pub fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = CONTROL_TOKENS.iter().map(|s| s.to_string()).collect();
    v.extend((0u8..=255).map(|b| bytelevel::byte_to_char(b).to_string()));
    v.extend(MERGES.iter().map(|m| m.replace(' ', "")));
    v
}

/// Builds the GGUF writer for a tiny model (callers may add or change entries before writing).
pub fn tiny_llama(cfg: &TinyConfig) -> Result<GgufWriter, GgufError> {
    let vocab = vocabulary();
    let n_vocab = vocab.len() as u64;
    let head_dim = cfg.n_embd / cfg.n_head;
    let kv_dim = head_dim * cfg.n_head_kv;
    let mut w = GgufWriter::new();
    let s = |x: &str| Value::String(x.into());
    w.kv("general.architecture", s("llama"))
        .kv("general.name", s("edgebench tiny llama"))
        .kv("llama.block_count", Value::U32(cfg.n_layer as u32))
        .kv("llama.context_length", Value::U32(cfg.n_ctx as u32))
        .kv("llama.embedding_length", Value::U32(cfg.n_embd as u32))
        .kv("llama.feed_forward_length", Value::U32(cfg.n_ff as u32))
        .kv("llama.attention.head_count", Value::U32(cfg.n_head as u32))
        .kv("llama.attention.head_count_kv", Value::U32(cfg.n_head_kv as u32))
        .kv("llama.rope.freq_base", Value::F32(10000.0))
        .kv("llama.rope.dimension_count", Value::U32(head_dim as u32))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("llama.vocab_size", Value::U32(n_vocab as u32))
        .kv("tokenizer.ggml.model", s("gpt2"))
        .kv("tokenizer.ggml.pre", s("smollm"))
        .kv("tokenizer.ggml.tokens", Value::Array(ValueType::String, vocab.iter().map(|t| s(t)).collect()))
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(
                ValueType::I32,
                (0..n_vocab).map(|i| Value::I32(if i < CONTROL_TOKENS.len() as u64 { 3 } else { 1 })).collect(),
            ),
        )
        .kv("tokenizer.ggml.merges", Value::Array(ValueType::String, MERGES.iter().map(|m| s(m)).collect()))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(2))
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(false))
        .kv("tokenizer.chat_template", s(CHAT_TEMPLATE));

    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let mut add = |w: &mut GgufWriter, name: &str, dims: &[u64], ty: GgmlType, scale: f32| {
        let n: u64 = dims.iter().product();
        let x: Vec<f32> = if dims.len() == 1 {
            (0..n).map(|_| 1.0 + rng.random_range(-0.1..0.1)).collect()
        } else {
            (0..n).map(|_| rng.random_range(-scale..scale)).collect()
        };
        quant::quantize(ty, &x).map(|data| {
            w.tensor(name, dims, ty, data);
        })
    };
    let e = cfg.n_embd;
    add(&mut w, "token_embd.weight", &[e, n_vocab], cfg.embd_type, 0.5)?;
    for i in 0..cfg.n_layer {
        let p = |n: &str| format!("blk.{i}.{n}.weight");
        let wt = cfg.weight_type;
        let sc = 1.0 / (e as f32).sqrt();
        add(&mut w, &p("attn_norm"), &[e], GgmlType::F32, 0.0)?;
        add(&mut w, &p("attn_q"), &[e, e], wt, sc)?;
        add(&mut w, &p("attn_k"), &[e, kv_dim], wt, sc)?;
        add(&mut w, &p("attn_v"), &[e, kv_dim], wt, sc)?;
        add(&mut w, &p("attn_output"), &[e, e], wt, sc)?;
        add(&mut w, &p("ffn_norm"), &[e], GgmlType::F32, 0.0)?;
        add(&mut w, &p("ffn_gate"), &[e, cfg.n_ff], wt, sc)?;
        add(&mut w, &p("ffn_up"), &[e, cfg.n_ff], wt, sc)?;
        add(&mut w, &p("ffn_down"), &[cfg.n_ff, e], wt, 1.0 / (cfg.n_ff as f32).sqrt())?;
    }
    add(&mut w, "output_norm.weight", &[e], GgmlType::F32, 0.0)?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_model_parses_and_is_deterministic() {
        let a = tiny_llama(&TinyConfig::default()).unwrap().to_bytes().unwrap();
        let b = tiny_llama(&TinyConfig::default()).unwrap().to_bytes().unwrap();
        assert_eq!(a, b);
        let g = crate::parse(&a).unwrap();
        assert_eq!(g.architecture().unwrap(), "llama");
        assert_eq!(g.tensors.len(), 2 + 9 * 2);
        assert_eq!(g.tensor("blk.1.ffn_down.weight").unwrap().dims, vec![128, 64]);
        assert_eq!(g.array("tokenizer.ggml.tokens").unwrap().len(), vocabulary().len());
    }
}

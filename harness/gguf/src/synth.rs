//! Tiny GGUF models of every architecture [`crate::arch`] knows, with random weights and a small byte-level BPE
//! vocabulary, so tests of the whole pipeline need no download.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::arch::Arch;
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
    /// Architecture: its metadata prefix and the block variations it has (qwen2: Q/K/V biases; qwen3: Q/K norms
    /// and heads twice as wide as `n_embd / n_head`; gemma3: those plus post-norms, an 8-position window on even
    /// layers; phi3: fused QKV and gate/up).
    pub arch: Arch,
    /// Llama 3.1-style rope frequency divisors (`rope_freqs.weight`).
    pub rope_freqs: bool,
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
            arch: Arch::Llama,
            rope_freqs: false,
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

/// A tiny SentencePiece vocabulary (`tokenizer.ggml.model = "llama"`): tokens, GGUF token types (2 unknown,
/// 3 control, 6 byte, 1 normal) and scores — `<unk>`, `<s>`, `</s>`, the 256 byte-fallback tokens, then pieces of
/// "hello world" whose scores decide the merges.
pub fn spm_vocabulary() -> (Vec<String>, Vec<i32>, Vec<f32>) {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0f32; 3];
    for b in 0u8..=255 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    let pieces = [
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("▁h", -0.5),
        ("ll", -0.6),
        ("llo", -0.4),
        ("▁he", -0.3),
        ("▁hello", -0.1),
        ("w", -2.0),
        ("r", -2.0),
        ("d", -2.0),
        ("▁w", -0.7),
        ("or", -0.8),
    ];
    for (t, s) in pieces {
        tokens.push(t.into());
        types.push(1);
        scores.push(s);
    }
    (tokens, types, scores)
}

/// Window of the tiny Gemma 3's sliding layers, short so a test prompt outgrows it.
pub const TINY_WINDOW: u32 = 8;

/// Builds the GGUF writer for a tiny model (callers may add or change entries before writing).
pub fn tiny_model(cfg: &TinyConfig) -> Result<GgufWriter, GgufError> {
    let vocab = vocabulary();
    let n_vocab = vocab.len() as u64;
    let arch = cfg.arch;
    let wide = matches!(arch, Arch::Qwen3 | Arch::Gemma3);
    let head_dim = cfg.n_embd / cfg.n_head * if wide { 2 } else { 1 };
    let (q_dim, kv_dim) = (head_dim * cfg.n_head, head_dim * cfg.n_head_kv);
    let mut w = GgufWriter::new();
    let s = |x: &str| Value::String(x.into());
    let a = arch.name();
    let k = |key: &str| format!("{a}.{key}");
    w.kv("general.architecture", s(a))
        // Not the architecture's name: llama.cpp looks special tokens up by model name ("phi3" wants `</s>`).
        .kv("general.name", s(&format!("edgebench tiny {}", if arch == Arch::Llama { "llama" } else { "model" })))
        .kv(&k("block_count"), Value::U32(cfg.n_layer as u32))
        .kv(&k("context_length"), Value::U32(cfg.n_ctx as u32))
        .kv(&k("embedding_length"), Value::U32(cfg.n_embd as u32))
        .kv(&k("feed_forward_length"), Value::U32(cfg.n_ff as u32))
        .kv(&k("attention.head_count"), Value::U32(cfg.n_head as u32))
        .kv(&k("attention.head_count_kv"), Value::U32(cfg.n_head_kv as u32))
        .kv(&k("rope.freq_base"), Value::F32(if arch == Arch::Gemma3 { 1_000_000.0 } else { 10000.0 }))
        .kv(&k("rope.dimension_count"), Value::U32(head_dim as u32))
        .kv(&k("attention.layer_norm_rms_epsilon"), Value::F32(1e-5))
        .kv(&k("vocab_size"), Value::U32(n_vocab as u32));
    if wide {
        w.kv(&k("attention.key_length"), Value::U32(head_dim as u32))
            .kv(&k("attention.value_length"), Value::U32(head_dim as u32));
    }
    if arch == Arch::Gemma3 {
        w.kv(&k("attention.sliding_window"), Value::U32(TINY_WINDOW))
            .kv(&k("attention.sliding_window_pattern"), Value::U32(2));
    }
    w.kv("tokenizer.ggml.model", s("gpt2"))
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
    // Vectors are norm weights (around 1) unless `bias` (around 0).
    let mut add = |w: &mut GgufWriter, name: &str, dims: &[u64], ty: GgmlType, scale: f32| {
        let n: u64 = dims.iter().product();
        let x: Vec<f32> = if dims.len() == 1 && scale == 0.0 {
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
    if cfg.rope_freqs {
        // Divisors from 1 (fast frequencies) to 8 (slow ones), as Llama 3.1's scaling shapes them.
        let f: Vec<f32> = (0..head_dim / 2).map(|i| 1.0 + 7.0 * i as f32 / (head_dim / 2 - 1).max(1) as f32).collect();
        w.tensor("rope_freqs.weight", &[head_dim / 2], GgmlType::F32, quant::quantize(GgmlType::F32, &f)?);
    }
    for i in 0..cfg.n_layer {
        let p = |n: &str| format!("blk.{i}.{n}.weight");
        let wt = cfg.weight_type;
        let sc = 1.0 / (e as f32).sqrt();
        add(&mut w, &p("attn_norm"), &[e], GgmlType::F32, 0.0)?;
        if arch == Arch::Phi3 {
            add(&mut w, &p("attn_qkv"), &[e, q_dim + 2 * kv_dim], wt, sc)?;
        } else {
            add(&mut w, &p("attn_q"), &[e, q_dim], wt, sc)?;
            add(&mut w, &p("attn_k"), &[e, kv_dim], wt, sc)?;
            add(&mut w, &p("attn_v"), &[e, kv_dim], wt, sc)?;
        }
        if arch == Arch::Qwen2 {
            for (n, d) in [("attn_q", q_dim), ("attn_k", kv_dim), ("attn_v", kv_dim)] {
                add(&mut w, &format!("blk.{i}.{n}.bias"), &[d], GgmlType::F32, 0.2)?;
            }
        }
        if wide {
            add(&mut w, &p("attn_q_norm"), &[head_dim], GgmlType::F32, 0.0)?;
            add(&mut w, &p("attn_k_norm"), &[head_dim], GgmlType::F32, 0.0)?;
        }
        add(&mut w, &p("attn_output"), &[q_dim, e], wt, 1.0 / (q_dim as f32).sqrt())?;
        if arch == Arch::Gemma3 {
            add(&mut w, &p("post_attention_norm"), &[e], GgmlType::F32, 0.0)?;
            add(&mut w, &p("post_ffw_norm"), &[e], GgmlType::F32, 0.0)?;
        }
        add(&mut w, &p("ffn_norm"), &[e], GgmlType::F32, 0.0)?;
        if arch == Arch::Phi3 {
            add(&mut w, &p("ffn_up"), &[e, 2 * cfg.n_ff], wt, sc)?;
        } else {
            add(&mut w, &p("ffn_gate"), &[e, cfg.n_ff], wt, sc)?;
            add(&mut w, &p("ffn_up"), &[e, cfg.n_ff], wt, sc)?;
        }
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
        let a = tiny_model(&TinyConfig::default()).unwrap().to_bytes().unwrap();
        let b = tiny_model(&TinyConfig::default()).unwrap().to_bytes().unwrap();
        assert_eq!(a, b);
        let g = crate::parse(&a).unwrap();
        assert_eq!(g.architecture().unwrap(), "llama");
        assert_eq!(g.tensors.len(), 2 + 9 * 2);
        assert_eq!(g.tensor("blk.1.ffn_down.weight").unwrap().dims, vec![128, 64]);
        assert_eq!(g.array("tokenizer.ggml.tokens").unwrap().len(), vocabulary().len());
    }
}

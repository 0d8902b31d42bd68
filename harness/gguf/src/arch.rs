//! The one description of a decoder-only transformer that every engine interprets: hyper-parameters and the
//! block's variations, read once from a GGUF file's `<arch>.*` metadata and its tensor list, with the tensor names.
//!
//! What each architecture means follows llama.cpp's reading of the same files (its `llama-model.cpp` and
//! `models/<arch>.cpp`): rope style, where norms sit, which layers slide their attention window, the attention scale.

use crate::Gguf;

/// Why a file's metadata cannot be run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// A valid file this code does not run (another architecture, partial rotary embeddings, …).
    #[error("{0}")]
    Unsupported(String),
    /// Missing or inconsistent metadata.
    #[error("{0}")]
    Invalid(String),
}

/// The architectures edgebench's own engines know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama 1–3, SmolLM, TinyLlama, Mistral-style files.
    Llama,
    /// Qwen2 / Qwen2.5: Q/K/V biases, rope over halves.
    Qwen2,
    /// Qwen3: per-head RMSNorm of Q and K, rope over halves.
    Qwen3,
    /// Gemma 3: scaled embedding, Q/K norms, norms after attention and MLP, GELU gating, sliding-window layers.
    Gemma3,
    /// Phi-3 / Phi-4-mini: fused QKV and gate/up matrices, rope over halves.
    Phi3,
}

impl Arch {
    /// Every architecture, in the order tables list them.
    pub const ALL: &[Arch] = &[Self::Llama, Self::Qwen2, Self::Qwen3, Self::Gemma3, Self::Phi3];

    /// `general.architecture` as GGUF files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma3 => "gemma3",
            Self::Phi3 => "phi3",
        }
    }

    /// The architecture named `s`, if known.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == s)
    }
}

/// How rotary embedding pairs the dimensions of a head (ggml's rope modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)` (ggml "normal"; llama files are converted for it).
    Adjacent,
    /// Pairs `(i, i + d/2)` (ggml "neox"; qwen, gemma, phi).
    Halves,
}

/// The MLP's gating activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) · up` (SwiGLU).
    Silu,
    /// `gelu_tanh(gate) · up` (GeGLU, tanh approximation).
    GeluTanh,
}

/// A variation of the block beyond plain llama, named so a backend can say which ones it cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    /// Biases on the Q, K and V projections.
    QkvBias,
    /// Per-head RMSNorm of Q and K before rope.
    QkNorm,
    /// RMSNorm of the attention and MLP outputs before their residual adds.
    PostNorms,
    /// GELU (tanh) gating instead of SiLU.
    GeluGate,
    /// Embedding rows multiplied by a constant.
    EmbeddingScale,
    /// `tanh` soft-capping of the final logits.
    LogitSoftcap,
    /// Layers whose attention sees only the last `window` positions, with their own rope base.
    SlidingWindow,
    /// Rope over halves instead of adjacent pairs.
    RopeHalves,
    /// Per-frequency rope divisors (`rope_freqs.weight`, Llama 3.1's scaling).
    RopeFreqFactors,
    /// Q, K and V in one matrix (`attn_qkv`).
    FusedQkv,
    /// Gate and up in one matrix (`ffn_up` of twice the width).
    FusedGateUp,
    /// Heads whose total width differs from the embedding width (`attention.key_length`).
    WideHeads,
    /// An attention scale other than `1/sqrt(head_dim)`.
    AttentionScale,
}

impl Feature {
    /// Short name for refusals and notes.
    pub fn name(self) -> &'static str {
        match self {
            Self::QkvBias => "QKV bias",
            Self::QkNorm => "Q/K norm",
            Self::PostNorms => "post-attention/post-MLP norms",
            Self::GeluGate => "GELU gating",
            Self::EmbeddingScale => "embedding scale",
            Self::LogitSoftcap => "logit soft-capping",
            Self::SlidingWindow => "sliding-window layers",
            Self::RopeHalves => "rope over halves (neox)",
            Self::RopeFreqFactors => "rope frequency factors",
            Self::FusedQkv => "fused QKV matrix",
            Self::FusedGateUp => "fused gate/up matrix",
            Self::WideHeads => "head width × heads ≠ embedding width",
            Self::AttentionScale => "attention scale other than 1/sqrt(head_dim)",
        }
    }
}

/// Hyper-parameters and block variations of a model; every engine reads the file through this.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDesc {
    /// The architecture.
    pub arch: Arch,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Width of one head (`attention.key_length`, else `n_embd / n_head`).
    pub head_dim: usize,
    /// Feed-forward width (of each of gate and up).
    pub n_ff: usize,
    /// Context length.
    pub n_ctx: usize,
    /// RoPE frequency base of full-attention layers.
    pub rope_base: f32,
    /// RoPE linear scaling factor of full-attention layers (positions are divided by it; 1 when absent).
    pub rope_scale: f32,
    /// How rope pairs dimensions.
    pub rope_style: RopeStyle,
    /// Whether the file holds `rope_freqs.weight` (per-frequency divisors, `head_dim/2` values).
    pub rope_freq_factors: bool,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Vocabulary size (rows of `token_embd.weight`).
    pub vocab: usize,
    /// Whether Q, K and V have biases.
    pub qkv_bias: bool,
    /// Whether Q and K are RMS-normalized per head before rope.
    pub qk_norm: bool,
    /// Whether attention and MLP outputs are RMS-normalized before their residual adds.
    pub post_norms: bool,
    /// Whether Q, K and V are one matrix (`attn_qkv`).
    pub fused_qkv: bool,
    /// Whether gate and up are one matrix (`ffn_up`, gate rows first).
    pub fused_gate_up: bool,
    /// The MLP's gating activation.
    pub activation: Activation,
    /// Factor applied to embedding rows (`sqrt(n_embd)` for Gemma).
    pub embd_scale: Option<f32>,
    /// Scale of the attention scores.
    pub attn_scale: f32,
    /// Final logit soft-capping (`cap · tanh(logit / cap)`).
    pub logit_softcap: Option<f32>,
    /// Sliding-window layers: the window (a query at `p` sees keys at `p − window + 1 ..= p`), their rope base and
    /// scale, and which layers slide.
    pub sliding: Option<Sliding>,
}

/// Sliding-window attention layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Sliding {
    /// Positions a query sees, itself included.
    pub window: usize,
    /// RoPE base of sliding layers.
    pub rope_base: f32,
    /// RoPE scale of sliding layers.
    pub rope_scale: f32,
    /// For each layer, whether it slides.
    pub layers: Vec<bool>,
}

/// Tensor names, as GGUF files spell them.
pub mod names {
    /// Token embedding table.
    pub const TOKEN_EMBD: &str = "token_embd.weight";
    /// Output projection (absent when tied to the embedding).
    pub const OUTPUT: &str = "output.weight";
    /// Final norm.
    pub const OUTPUT_NORM: &str = "output_norm.weight";
    /// Rope frequency divisors.
    pub const ROPE_FREQS: &str = "rope_freqs.weight";

    /// `blk.{layer}.{name}` (e.g. `blk(3, "attn_q.weight")`).
    pub fn blk(layer: usize, name: &str) -> String {
        format!("blk.{layer}.{name}")
    }
}

impl ModelDesc {
    /// Reads and checks the metadata of a file of a known architecture.
    pub fn from_gguf(g: &Gguf) -> Result<Self, ParamsError> {
        let invalid = |e: crate::GgufError| ParamsError::Invalid(e.to_string());
        let name = g.architecture().map_err(invalid)?;
        let arch = Arch::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
            ParamsError::Unsupported(format!("architecture {name:?} (known: {})", known.join(", ")))
        })?;
        let key = |k: &str| format!("{name}.{k}");
        let u = |k: &str| g.u64(&key(k)).map(|v| v as usize).map_err(invalid);
        let opt_u = |k: &str| g.u64(&key(k)).ok().map(|v| v as usize);
        let opt_f = |k: &str| g.f64(&key(k)).ok().map(|v| v as f32);
        let has = |t: &str| g.tensor(t).is_ok();
        let (n_embd, n_head) = (u("embedding_length")?, u("attention.head_count")?);
        let n_head_kv = opt_u("attention.head_count_kv").unwrap_or(n_head);
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(ParamsError::Invalid(format!("inconsistent heads: {n_head} heads / {n_head_kv} kv heads")));
        }
        let head_dim = match opt_u("attention.key_length") {
            Some(k) => k,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => return Err(ParamsError::Invalid(format!("{n_embd} is not a whole number of {n_head} heads"))),
        };
        if opt_u("attention.value_length").is_some_and(|v| v != head_dim) {
            return Err(ParamsError::Unsupported("value heads of another width than key heads".into()));
        }
        let rope_dim = opt_u("rope.dimension_count").unwrap_or(head_dim);
        if rope_dim != head_dim || head_dim % 2 != 0 || head_dim == 0 {
            return Err(ParamsError::Unsupported(format!("partial rotary embedding ({rope_dim} of {head_dim})")));
        }
        let mut rope_scale = 1.0;
        if let Ok(kind) = g.str(&key("rope.scaling.type")) {
            match kind {
                "none" => {}
                "linear" => rope_scale = opt_f("rope.scaling.factor").filter(|f| *f > 0.0).unwrap_or(1.0),
                other => {
                    return Err(ParamsError::Unsupported(format!(
                        "rope scaling {other:?} (none and linear are supported, and Llama 3's frequency factors)"
                    )))
                }
            }
        }
        if has(&names::blk(0, "rope_factors_long.weight")) || has(&names::blk(0, "rope_factors_short.weight")) {
            return Err(ParamsError::Unsupported("long-context rope factors (longrope)".into()));
        }
        let embd = g.tensor(names::TOKEN_EMBD).map_err(invalid)?;
        let fused_qkv = has(&names::blk(0, "attn_qkv.weight"));
        let qkv_bias = has(&names::blk(0, "attn_q.bias")) || has(&names::blk(0, "attn_qkv.bias"));
        let n_layer = u("block_count")?;
        let rope_style = match arch {
            Arch::Llama => RopeStyle::Adjacent,
            _ => RopeStyle::Halves,
        };
        let (activation, embd_scale, post_norms) = match arch {
            Arch::Gemma3 => (Activation::GeluTanh, Some((n_embd as f32).sqrt()), true),
            _ => (Activation::Silu, None, false),
        };
        let attn_scale = match arch {
            // llama.cpp (models/gemma3.cpp): Gemma 3 27B (62 layers) scales by the embedding's head width.
            Arch::Gemma3 if n_layer == 62 => 1.0 / ((n_embd / n_head) as f32).sqrt(),
            _ => 1.0 / (head_dim as f32).sqrt(),
        };
        let sliding = match (arch, opt_u("attention.sliding_window")) {
            // llama.cpp disables Phi-3's window (models/phi3.cpp); llama and qwen files carry none it uses.
            (Arch::Gemma3, Some(window)) if window > 0 => {
                let layers = match g.get(&key("attention.sliding_window_pattern")) {
                    Some(crate::Value::Array(_, v)) => {
                        let l: Vec<bool> = v
                            .iter()
                            .map(|b| b.as_bool().unwrap_or_else(|| b.as_u64().is_some_and(|x| x != 0)))
                            .collect();
                        if l.len() != n_layer {
                            return Err(ParamsError::Invalid(format!(
                                "sliding_window_pattern has {} entries for {n_layer} layers",
                                l.len()
                            )));
                        }
                        l
                    }
                    other => {
                        let p = other.and_then(|v| v.as_u64()).unwrap_or(6) as usize;
                        (0..n_layer).map(|i| p == 0 || i % p < p - 1).collect()
                    }
                };
                Some(Sliding {
                    window,
                    rope_base: opt_f("rope.freq_base_swa").unwrap_or(10000.0),
                    rope_scale: 1.0,
                    layers,
                })
            }
            _ => None,
        };
        let desc = Self {
            arch,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: u("feed_forward_length")?,
            n_ctx: u("context_length")?,
            rope_base: opt_f("rope.freq_base").unwrap_or(10000.0),
            rope_scale,
            rope_style,
            rope_freq_factors: has(names::ROPE_FREQS),
            eps: g.f64(&key("attention.layer_norm_rms_epsilon")).map_err(invalid)? as f32,
            vocab: embd.dims.get(1).copied().unwrap_or(0) as usize,
            qkv_bias,
            qk_norm: has(&names::blk(0, "attn_q_norm.weight")),
            post_norms,
            fused_qkv,
            fused_gate_up: arch == Arch::Phi3 && !has(&names::blk(0, "ffn_gate.weight")),
            activation,
            embd_scale,
            attn_scale,
            logit_softcap: opt_f("final_logit_softcapping").filter(|c| *c > 0.0),
            sliding,
        };
        if desc.n_layer == 0 || desc.vocab == 0 || desc.n_ff == 0 {
            return Err(ParamsError::Invalid("zero layers, vocabulary or feed-forward width".into()));
        }
        Ok(desc)
    }

    /// Width of all query heads.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all key (or value) heads.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Whether layer `li` attends over a sliding window.
    pub fn slides(&self, li: usize) -> bool {
        self.sliding.as_ref().is_some_and(|s| s.layers.get(li).copied().unwrap_or(false))
    }

    /// The window of layer `li` (positions a query sees, itself included), `None` for full attention.
    pub fn window(&self, li: usize) -> Option<usize> {
        self.sliding.as_ref().filter(|_| self.slides(li)).map(|s| s.window)
    }

    /// Rope base and linear scale of layer `li`.
    pub fn rope(&self, li: usize) -> (f32, f32) {
        match &self.sliding {
            Some(s) if self.slides(li) => (s.rope_base, s.rope_scale),
            _ => (self.rope_base, self.rope_scale),
        }
    }

    /// The variations beyond plain llama this model uses.
    pub fn features(&self) -> Vec<Feature> {
        let mut f = Vec::new();
        let mut add = |on: bool, x: Feature| {
            if on {
                f.push(x)
            }
        };
        add(self.qkv_bias, Feature::QkvBias);
        add(self.qk_norm, Feature::QkNorm);
        add(self.post_norms, Feature::PostNorms);
        add(self.activation == Activation::GeluTanh, Feature::GeluGate);
        add(self.embd_scale.is_some(), Feature::EmbeddingScale);
        add(self.logit_softcap.is_some(), Feature::LogitSoftcap);
        add(self.sliding.is_some(), Feature::SlidingWindow);
        add(self.rope_style == RopeStyle::Halves, Feature::RopeHalves);
        add(self.rope_freq_factors, Feature::RopeFreqFactors);
        add(self.fused_qkv, Feature::FusedQkv);
        add(self.fused_gate_up, Feature::FusedGateUp);
        add(self.q_dim() != self.n_embd, Feature::WideHeads);
        add((self.attn_scale - 1.0 / (self.head_dim as f32).sqrt()).abs() > 1e-9, Feature::AttentionScale);
        f
    }

    /// `Ok` when `who` (an engine, e.g. "the candle backend") runs every variation this model uses (`runs`), else
    /// the refusal naming the rest.
    pub fn require(&self, who: &str, runs: &[Feature]) -> Result<(), ParamsError> {
        let missing: Vec<&str> = self.features().into_iter().filter(|f| !runs.contains(f)).map(Feature::name).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ParamsError::Unsupported(format!(
            "{who} does not run {} of this {} model",
            missing.join(", "),
            self.arch.name()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{tiny_model, TinyConfig};
    use crate::Value;

    fn desc_of(cfg: &TinyConfig, edit: impl FnOnce(&mut crate::GgufWriter)) -> Result<ModelDesc, ParamsError> {
        let mut w = tiny_model(cfg).unwrap();
        edit(&mut w);
        ModelDesc::from_gguf(&crate::parse(&w.to_bytes().unwrap()).unwrap())
    }

    fn params(edit: impl FnOnce(&mut crate::GgufWriter)) -> Result<ModelDesc, ParamsError> {
        desc_of(&TinyConfig::default(), edit)
    }

    #[test]
    fn reads_the_tiny_model_and_refuses_what_it_cannot_run() {
        let p = params(|_| {}).unwrap();
        let c = TinyConfig::default();
        assert_eq!((p.n_layer, p.n_embd, p.n_head, p.n_head_kv), (2, c.n_embd as usize, 4, 2));
        assert_eq!((p.head_dim, p.n_ff, p.rope_scale), (16, c.n_ff as usize, 1.0));
        assert!(p.features().is_empty(), "plain llama: {:?}", p.features());
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
        assert!(matches!(arch, Err(ParamsError::Unsupported(m)) if m.contains("gpt2") && m.contains("gemma3")));
    }

    #[test]
    fn each_architecture_reads_its_variations() {
        for &arch in Arch::ALL {
            let d = desc_of(&TinyConfig { arch, ..TinyConfig::default() }, |_| {}).unwrap();
            assert_eq!(d.arch, arch);
            let f = d.features();
            let expect: &[Feature] = match arch {
                Arch::Llama => &[],
                Arch::Qwen2 => &[Feature::QkvBias, Feature::RopeHalves],
                Arch::Qwen3 => &[Feature::QkNorm, Feature::RopeHalves, Feature::WideHeads],
                Arch::Gemma3 => &[
                    Feature::QkNorm,
                    Feature::PostNorms,
                    Feature::GeluGate,
                    Feature::EmbeddingScale,
                    Feature::SlidingWindow,
                    Feature::RopeHalves,
                    Feature::WideHeads,
                ],
                Arch::Phi3 => &[Feature::RopeHalves, Feature::FusedQkv, Feature::FusedGateUp],
            };
            assert_eq!(f, expect, "{arch:?}");
            let refused = d.require("the plain engine", &[]);
            assert_eq!(refused.is_err(), !expect.is_empty());
        }
        let gemma = TinyConfig { arch: Arch::Gemma3, n_layer: 7, ..TinyConfig::default() };
        let tiny = desc_of(&gemma, |_| {}).unwrap();
        assert_eq!(tiny.sliding.unwrap().layers, [true, false, true, false, true, false, true], "pattern 2");
        let g = desc_of(&gemma, |w| {
            w.kv("gemma3.attention.sliding_window_pattern", Value::U32(6));
        })
        .unwrap();
        let s = g.sliding.as_ref().unwrap();
        assert_eq!(s.layers, [true, true, true, true, true, false, true], "every sixth layer attends fully");
        assert_eq!((g.rope(0), g.rope(5)), ((10000.0, 1.0), (1_000_000.0, 1.0)));
        assert_eq!((g.window(0), g.window(5)), (Some(s.window), None));
        let msg = g.require("the candle backend", &[Feature::QkNorm]).unwrap_err().to_string();
        assert!(msg.contains("candle") && msg.contains("GELU gating") && !msg.contains("Q/K norm"), "{msg}");
    }
}

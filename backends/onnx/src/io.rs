//! The exported graph's interface, shared by the exporter, the ONNX backends and `ci/ort-python-parity.py`.
//!
//! Two graph variants share the outputs (`GraphVariant`). The primitive graph's inputs: `input_ids` int64
//! `[1, seq]`; `position_ids` int64 `[1, seq]`; `attention_bias` f32 `[seq, past+seq]` (0 where a query may attend,
//! −∞ elsewhere: the caller owns the causal mask); `logits_index` int64 `[rows]` (which of the `seq` positions get
//! logits: the last one while generating, all of them for teacher forcing); `attention_bias_sliding` f32
//! `[seq, past+seq]` only in models with sliding-window layers (the causal mask that also hides keys `window` or
//! more positions back, `GraphFacts::sliding_window`, for those layers); per layer `past_key_values.N.key` /
//! `.value` f32 `[1, kv_heads, past, head_dim]` (`past` may be 0).
//! Outputs: `logits` f32 `[rows, vocab]`; per layer `present.N.key` / `.value` f32 `[1, kv_heads, past+seq,
//! head_dim]`, which become the next call's past. The fused graph (ONNX Runtime's contrib operators) takes
//! `input_ids`, `logits_index` and the past KV like the primitive one, plus `seqlens_k` int32 `[1]` (cached plus
//! new tokens, minus one) and `total_sequence_length` int32 scalar in place of `position_ids` and
//! `attention_bias`: its `GroupQueryAttention` nodes derive positions and the causal mask from them.

/// Token ids.
pub const INPUT_IDS: &str = "input_ids";
/// Positions of the tokens.
pub const POSITION_IDS: &str = "position_ids";
/// Additive attention mask, `[seq, past+seq]`.
pub const ATTENTION_BIAS: &str = "attention_bias";
/// Additive mask of sliding-window layers, `[seq, past+seq]` (models with such layers only).
pub const ATTENTION_BIAS_SLIDING: &str = "attention_bias_sliding";
/// Rows of `logits` to compute.
pub const LOGITS_INDEX: &str = "logits_index";
/// Fused graph: cached plus new tokens, minus one, `[1]` int32.
pub const SEQLENS_K: &str = "seqlens_k";
/// Fused graph: cached plus new tokens, int32 scalar.
pub const TOTAL_SEQUENCE_LENGTH: &str = "total_sequence_length";
/// Logits output.
pub const LOGITS: &str = "logits";

/// `past_key_values.{layer}.key` or `.value`.
pub fn past(layer: usize, value: bool) -> String {
    format!("past_key_values.{layer}.{}", if value { "value" } else { "key" })
}

/// `present.{layer}.key` or `.value`.
pub fn present(layer: usize, value: bool) -> String {
    format!("present.{layer}.{}", if value { "value" } else { "key" })
}

/// The additive causal mask for `seq` new tokens after `past` cached ones, row-major `[seq, past+seq]`.
pub fn causal_bias(past: usize, seq: usize) -> Vec<f32> {
    causal_bias_window(past, seq, None)
}

/// The causal mask of a sliding-window layer: the query at position `p` sees keys `p − window + 1 ..= p` (all of
/// `0 ..= p` when `window` is `None`), as llama.cpp masks them.
pub fn causal_bias_window(past: usize, seq: usize, window: Option<usize>) -> Vec<f32> {
    let total = past + seq;
    let mut m = vec![0f32; seq * total];
    for (i, row) in m.chunks_exact_mut(total).enumerate() {
        let p = past + i;
        let first = window.map_or(0, |w| (p + 1).saturating_sub(w));
        row[..first].fill(f32::NEG_INFINITY);
        row[p + 1..].fill(f32::NEG_INFINITY);
    }
    m
}

/// Which graph an export holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphVariant {
    /// Standard ONNX operators only (plus `MatMulNBits`): every runtime that reads ONNX can run it (tract does).
    #[default]
    Primitive,
    /// The graph ONNX Runtime's own model builder writes for a llama model on CPU: `GroupQueryAttention` with the
    /// rotary embedding inside and no K/V head expansion, `SkipSimplifiedLayerNormalization` absorbing the
    /// residual adds, Q/K/V and gate/up products fused into one
    /// `MatMulNBits` each. ONNX Runtime only.
    Fused,
}

impl GraphVariant {
    /// The option value: `primitive` or `fused`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Primitive => "primitive",
            Self::Fused => "fused",
        }
    }
}

/// Model facts the exporter stores in the file's metadata (`edgebench.*` keys), needed to drive the graph.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GraphFacts {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Logits per row.
    pub vocab: usize,
    /// Context length of the source model.
    pub n_ctx: usize,
    /// Which graph (absent in files of exporter version 1: primitive).
    #[serde(default)]
    pub variant: GraphVariant,
    /// The window of the model's sliding-window layers, if it has any (the primitive graph then takes
    /// `attention_bias_sliding`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn causal_bias_lets_each_query_see_the_past_and_itself_only() {
        let m = super::causal_bias(2, 2);
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![0.0, 0.0, 0.0, inf, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_window_of_two_hides_keys_two_positions_back() {
        let inf = f32::NEG_INFINITY;
        // Three cached positions, two new (positions 3 and 4): each sees itself and the one before.
        let m = super::causal_bias_window(3, 2, Some(2));
        assert_eq!(m, vec![inf, inf, 0.0, 0.0, inf, inf, inf, inf, 0.0, 0.0]);
        assert_eq!(super::causal_bias_window(3, 2, Some(100)), super::causal_bias(3, 2));
    }
}

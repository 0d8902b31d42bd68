//! The exported graph's interface, shared by the exporter, the ONNX backends and `ci/ort-python-parity.py`.
//!
//! Inputs: `input_ids` int64 `[1, seq]`; `position_ids` int64 `[1, seq]`; `attention_bias` f32 `[seq, past+seq]`
//! (0 where a query may attend, −∞ elsewhere: the caller owns the causal mask); `logits_index` int64 `[rows]`
//! (which of the `seq` positions get logits: the last one while generating, all of them for teacher forcing);
//! per layer `past_key_values.N.key` / `.value` f32 `[1, kv_heads, past, head_dim]` (`past` may be 0).
//! Outputs: `logits` f32 `[rows, vocab]`; per layer `present.N.key` / `.value` f32 `[1, kv_heads, past+seq,
//! head_dim]`, which become the next call's past.

/// Token ids.
pub const INPUT_IDS: &str = "input_ids";
/// Positions of the tokens.
pub const POSITION_IDS: &str = "position_ids";
/// Additive attention mask, `[seq, past+seq]`.
pub const ATTENTION_BIAS: &str = "attention_bias";
/// Rows of `logits` to compute.
pub const LOGITS_INDEX: &str = "logits_index";
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
    let total = past + seq;
    let mut m = vec![0f32; seq * total];
    for (i, row) in m.chunks_exact_mut(total).enumerate() {
        for v in &mut row[past + i + 1..] {
            *v = f32::NEG_INFINITY;
        }
    }
    m
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
}

#[cfg(test)]
mod tests {
    #[test]
    fn causal_bias_lets_each_query_see_the_past_and_itself_only() {
        let m = super::causal_bias(2, 2);
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![0.0, 0.0, 0.0, inf, 0.0, 0.0, 0.0, 0.0]);
    }
}

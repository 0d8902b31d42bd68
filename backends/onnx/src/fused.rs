//! The fused graph (`GraphVariant::Fused`): a llama block the way ONNX Runtime's own model builder writes it for
//! CPU — `SkipSimplifiedLayerNormalization` carrying the residual stream, one
//! `MatMulNBits` for Q/K/V and one for gate/up, `GroupQueryAttention` (rotary on adjacent pairs, cos/sin tables
//! as initializers, K/V heads shared without expansion, the KV cache appended inside the operator, in place when the
//! caller binds one buffer as past and present), the embedding looked up in its quantized bytes where they exist
//! (`GatherBlockQuantized`) — over the same weight initializers as the primitive graph, so the fingerprint still
//! reads the GGUF's values.

use edgebench_gguf::arch::ModelDesc as LlamaParams;

use crate::export::Ctx;
use crate::io;
use crate::pb::tensor_proto::DataType;
use crate::proto::{attr_f, attr_i, Dim};
use crate::OnnxError;

/// Rotation tables `[positions, head_dim/2]`: angle = position · base^(−2i/head_dim) / scale, computed in f64.
fn rope_tables(hp: &LlamaParams, positions: usize) -> (Vec<f32>, Vec<f32>) {
    let half = hp.head_dim / 2;
    let inv: Vec<f64> = (0..half)
        .map(|i| (hp.rope_base as f64).powf(-((2 * i) as f64) / hp.head_dim as f64) / hp.rope_scale as f64)
        .collect();
    let mut cos = Vec::with_capacity(positions * half);
    let mut sin = Vec::with_capacity(positions * half);
    for p in 0..positions {
        for f in &inv {
            let a = p as f64 * f;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (cos, sin)
}

/// `SkipSimplifiedLayerNormalization(x, residual, gamma)`: returns (normalized sum, sum).
fn skip_norm(cx: &mut Ctx<'_>, x: &str, residual: &str, gamma: &str, eps: f32) -> (String, String) {
    let mut outs = cx.b.op_in(
        "com.microsoft",
        "SkipSimplifiedLayerNormalization",
        &[x, residual, gamma],
        vec![attr_f("epsilon", eps)],
        4,
    );
    // Mean and inverse standard deviation are optional outputs nobody reads.
    let node = cx.b.nodes.last_mut().expect("a node");
    node.output[1].clear();
    node.output[2].clear();
    let sum = outs.pop().expect("four outputs");
    (outs.swap_remove(0), sum)
}

/// Builds the fused graph's inputs, nodes and outputs into `cx`.
pub(crate) fn build(cx: &mut Ctx<'_>, hp: &LlamaParams) -> Result<(), OnnxError> {
    let (e, h, kvh, d) = (hp.n_embd, hp.n_head, hp.n_head_kv, hp.head_dim);
    if d % 16 != 0 {
        return Err(OnnxError::Unsupported(format!(
            "head width {d}: ONNX Runtime's GroupQueryAttention rotates heads whose width is a multiple of 16 \
             (use graph=primitive)"
        )));
    }
    let ids = cx.b.input(io::INPUT_IDS, DataType::Int64, &[Dim::Fixed(1), Dim::Named("seq")]);
    let seqlens = cx.b.input(io::SEQLENS_K, DataType::Int32, &[Dim::Fixed(1)]);
    let total = cx.b.input(io::TOTAL_SEQUENCE_LENGTH, DataType::Int32, &[]);
    let rows = cx.b.input(io::LOGITS_INDEX, DataType::Int64, &[Dim::Named("rows")]);
    let kv_dims = |p: Dim| [Dim::Fixed(1), Dim::Fixed(kvh as i64), p, Dim::Fixed(d as i64)];
    for i in 0..hp.n_layer {
        cx.b.input(&io::past(i, false), DataType::Float, &kv_dims(Dim::Named("past")));
        cx.b.input(&io::past(i, true), DataType::Float, &kv_dims(Dim::Named("past")));
    }

    let flat = cx.b.i64s(&[-1]);
    let ids_flat = cx.b.op("Reshape", &[&ids, &flat], vec![]);
    let (embedded, table) = cx.embedding(&ids_flat, hp)?;

    let (cos, sin) = rope_tables(hp, hp.n_ctx.max(1));
    let cos = cx.b.f32s("rope.cos", &[hp.n_ctx.max(1) as i64, (d / 2) as i64], &cos);
    let sin = cx.b.f32s("rope.sin", &[hp.n_ctx.max(1) as i64, (d / 2) as i64], &sin);
    let batched = cx.b.i64s(&[1, -1, ((h + 2 * kvh) * d) as i64]);
    let unbatched = cx.b.i64s(&[-1, (h * d) as i64]);
    let split = cx.b.i64s(&[hp.n_ff as i64, hp.n_ff as i64]);

    // The first norm has no residual to absorb; ONNX Runtime's SimplifiedLayerNormalization sits in the default
    // domain, where onnx.checker refuses it, so it is written from standard operators (one norm of 61).
    let mut normed = cx.rms_norm(&embedded, "blk.0.attn_norm.weight", hp.eps, e)?;
    let mut residual = embedded;
    for i in 0..hp.n_layer {
        let blk = |n: &str| format!("blk.{i}.{n}.weight");
        let qkv = cx.linear_fused(&normed, &[blk("attn_q"), blk("attn_k"), blk("attn_v")])?;
        let qkv = cx.b.op("Reshape", &[&qkv, &batched], vec![]);
        let attn = cx.b.op_in(
            "com.microsoft",
            "GroupQueryAttention",
            &[&qkv, "", "", &io::past(i, false), &io::past(i, true), &seqlens, &total, &cos, &sin],
            vec![
                attr_i("num_heads", h as i64),
                attr_i("kv_num_heads", kvh as i64),
                attr_i("do_rotary", 1),
                attr_i("rotary_interleaved", 1),
                attr_f("scale", 1.0 / (d as f32).sqrt()),
            ],
            3,
        );
        let node = cx.b.nodes.last_mut().expect("a node");
        node.output[1] = io::present(i, false);
        node.output[2] = io::present(i, true);
        let o = cx.b.op("Reshape", &[&attn[0], &unbatched], vec![]);
        let o = cx.linear(&o, &blk("attn_output"))?;
        let g = cx.float_init(&blk("ffn_norm"), &[e as i64])?;
        (normed, residual) = skip_norm(cx, &o, &residual, &g, hp.eps);

        let gu = cx.linear_fused(&normed, &[blk("ffn_gate"), blk("ffn_up")])?;
        let halves = cx.b.op_in("", "Split", &[&gu, &split], vec![attr_i("axis", -1)], 2);
        let sg = cx.b.op("Sigmoid", &[&halves[0]], vec![]);
        let silu = cx.b.op("Mul", &[&halves[0], &sg], vec![]);
        let a = cx.b.op("Mul", &[&silu, &halves[1]], vec![]);
        let dn = cx.linear(&a, &blk("ffn_down"))?;
        let next =
            if i + 1 < hp.n_layer { format!("blk.{}.attn_norm.weight", i + 1) } else { "output_norm.weight".into() };
        let g = cx.float_init(&next, &[e as i64])?;
        (normed, residual) = skip_norm(cx, &dn, &residual, &g, hp.eps);
    }
    let x = cx.b.op("Gather", &[&normed, &rows], vec![attr_i("axis", 0)]);
    cx.logits_and_outputs(&x, table.as_deref(), hp)
}

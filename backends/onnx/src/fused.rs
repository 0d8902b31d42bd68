//! The fused graph (`GraphVariant::Fused`): a block the way ONNX Runtime's own model builder writes it for CPU —
//! `SkipSimplifiedLayerNormalization` carrying the residual stream, one `MatMulNBits` for Q/K/V and one for
//! gate/up, `GroupQueryAttention` (rotary inside on adjacent pairs or halves, cos/sin tables per rope base, the
//! sliding layers' window as `local_window_size`, K/V heads shared without expansion, the KV cache appended inside
//! the operator, in place when the caller binds one buffer as past and present), `FastGelu` for GELU gating, the
//! embedding looked up in its quantized bytes where they exist (`GatherBlockQuantized`) — over the same weight
//! initializers as the primitive graph, so the fingerprint still reads the GGUF's values. Q/K norms (written out
//! before the operator's rotary) split the packed Q/K/V into the operator's three inputs; post norms sit before the
//! residual adds the skip norms absorb.

use edgebench_gguf::arch::{names, ModelDesc, RopeStyle};

use crate::export::Ctx;
use crate::io;
use crate::pb::tensor_proto::DataType;
use crate::proto::{attr_f, attr_i, Dim};
use crate::OnnxError;

/// Rotation tables `[positions, head_dim/2]` of layer `li`: angle = position · base^(−2i/head_dim) / scale, computed
/// in f64 into initializers; with rope frequency factors, computed in the graph from the inverse frequencies divided
/// by the file's factors (constant-folded by ONNX Runtime at load).
fn rope_tables(cx: &mut Ctx<'_>, hp: &ModelDesc, li: usize, positions: usize) -> Result<(String, String), OnnxError> {
    let (base, scale) = hp.rope(li);
    let half = hp.head_dim / 2;
    if hp.rope_freq_factors {
        let p: Vec<f32> = (0..positions).map(|p| p as f32).collect();
        let p = cx.b.f32s(&format!("rope.positions.{base}.{scale}"), &[positions as i64, 1], &p);
        let inv = cx.inv_freq(hp, li)?;
        let angles = cx.b.op("Mul", &[&p, &inv], vec![]);
        return Ok((cx.b.op("Cos", &[&angles], vec![]), cx.b.op("Sin", &[&angles], vec![])));
    }
    let inv: Vec<f64> =
        (0..half).map(|i| (base as f64).powf(-((2 * i) as f64) / hp.head_dim as f64) / scale as f64).collect();
    let mut cos = Vec::with_capacity(positions * half);
    let mut sin = Vec::with_capacity(positions * half);
    for p in 0..positions {
        for f in &inv {
            let a = p as f64 * f;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    let dims = [positions as i64, half as i64];
    let names = (format!("rope.cos.{base}.{scale}"), format!("rope.sin.{base}.{scale}"));
    Ok((cx.b.f32s(&names.0, &dims, &cos), cx.b.f32s(&names.1, &dims, &sin)))
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
pub(crate) fn build(cx: &mut Ctx<'_>, hp: &ModelDesc) -> Result<(), OnnxError> {
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
    let embedded = cx.scale_embedding(embedded, hp);

    // The tables of full-attention layers, and of sliding ones (their own rope base) where there are any.
    let positions = hp.n_ctx.max(1);
    let mut tables = Vec::new();
    for slides in [false, true] {
        if let Some(li) = (0..hp.n_layer).find(|&li| hp.slides(li) == slides) {
            tables.push((slides, rope_tables(cx, hp, li, positions)?));
        }
    }
    let batched = cx.b.i64s(&[1, -1, ((h + 2 * kvh) * d) as i64]);
    let batched_q = cx.b.i64s(&[1, -1, (h * d) as i64]);
    let batched_kv = cx.b.i64s(&[1, -1, (kvh * d) as i64]);
    let unbatched = cx.b.i64s(&[-1, (h * d) as i64]);

    // The first norm has no residual to absorb; ONNX Runtime's SimplifiedLayerNormalization sits in the default
    // domain, where onnx.checker refuses it, so it is written from standard operators (as are the Q/K and post
    // norms, which ONNX Runtime's graph optimizer fuses).
    let mut normed = cx.rms_norm(&embedded, &names::blk(0, "attn_norm.weight"), hp.eps, e)?;
    let mut residual = embedded;
    for i in 0..hp.n_layer {
        let blk = |n: &str| names::blk(i, &format!("{n}.weight"));
        let (_, (cos, sin)) = tables.iter().find(|t| t.0 == hp.slides(i)).expect("a table for each kind of layer");
        let (cos, sin) = (cos.clone(), sin.clone());
        let qkv = cx.qkv_packed(&normed, hp, i)?;
        // Packed Q/K/V unless Q and K are normalized first: then the operator's separate query, key, value.
        let (q, k, v) = if hp.qk_norm {
            let [q, k, v]: [String; 3] =
                cx.split(&qkv, &[hp.q_dim(), hp.kv_dim(), hp.kv_dim()]).try_into().expect("three parts");
            let q = cx.head_norm(&q, hp, i, "attn_q_norm", h)?;
            let k = cx.head_norm(&k, hp, i, "attn_k_norm", kvh)?;
            let q = cx.b.op("Reshape", &[&q, &batched_q], vec![]);
            let k = cx.b.op("Reshape", &[&k, &batched_kv], vec![]);
            (q, k, cx.b.op("Reshape", &[&v, &batched_kv], vec![]))
        } else {
            (cx.b.op("Reshape", &[&qkv, &batched], vec![]), String::new(), String::new())
        };
        let mut attrs = vec![
            attr_i("num_heads", h as i64),
            attr_i("kv_num_heads", kvh as i64),
            attr_i("do_rotary", 1),
            attr_i("rotary_interleaved", (hp.rope_style == RopeStyle::Adjacent) as i64),
            attr_f("scale", hp.attn_scale),
        ];
        if let Some(w) = hp.window(i) {
            // ONNX Runtime ≥ 1.23 (microsoft/onnxruntime#25927): the query at p sees keys p − w + 1 ..= p, the
            // window counting the query itself, as llama.cpp's does.
            attrs.push(attr_i("local_window_size", w as i64));
        }
        let attn = cx.b.op_in(
            "com.microsoft",
            "GroupQueryAttention",
            &[&q, &k, &v, &io::past(i, false), &io::past(i, true), &seqlens, &total, &cos, &sin],
            attrs,
            3,
        );
        let node = cx.b.nodes.last_mut().expect("a node");
        node.output[1] = io::present(i, false);
        node.output[2] = io::present(i, true);
        let o = cx.b.op("Reshape", &[&attn[0], &unbatched], vec![]);
        let o = cx.linear(&o, &blk("attn_output"))?;
        let o = cx.post_norm(o, hp, i, "post_attention_norm")?;
        let g = cx.float_init(&blk("ffn_norm"), &[e as i64])?;
        (normed, residual) = skip_norm(cx, &o, &residual, &g, hp.eps);

        let (gate, up) = cx.gate_up(&normed, hp, i, true)?;
        let a = cx.gated(&gate, &up, hp.activation, true);
        let dn = cx.linear(&a, &blk("ffn_down"))?;
        let dn = cx.post_norm(dn, hp, i, "post_ffw_norm")?;
        let next = if i + 1 < hp.n_layer { names::blk(i + 1, "attn_norm.weight") } else { names::OUTPUT_NORM.into() };
        let g = cx.float_init(&next, &[e as i64])?;
        (normed, residual) = skip_norm(cx, &dn, &residual, &g, hp.eps);
    }
    let x = cx.b.op("Gather", &[&normed, &rows], vec![attr_i("axis", 0)]);
    cx.logits_and_outputs(&x, table.as_deref(), hp)
}

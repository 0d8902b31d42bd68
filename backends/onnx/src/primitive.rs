//! The primitive graph (`GraphVariant::Primitive`): standard ONNX operators only (plus `MatMulNBits`), so any runtime
//! that reads ONNX runs it (tract does): RMSNorm, rotary embedding (adjacent pairs or halves) and attention written
//! out, K/V heads expanded for grouped-query attention, the causal masks (and the sliding layers' windowed one) fed
//! by the caller, every block variation of `edgebench_gguf::arch` interpreted as the native engine does.

use edgebench_gguf::arch::{names, ModelDesc};

use crate::export::{Ctx, RopeTables};
use crate::io;
use crate::pb::tensor_proto::DataType;
use crate::proto::{attr_i, attr_ints, Dim};
use crate::OnnxError;

/// Builds the primitive graph's inputs, nodes and outputs into `cx`.
pub(crate) fn build(cx: &mut Ctx<'_>, hp: &ModelDesc) -> Result<(), OnnxError> {
    let (e, h, kvh, d) = (hp.n_embd, hp.n_head, hp.n_head_kv, hp.head_dim);
    let seq = || Dim::Named("seq");
    let total = || Dim::Named("past+seq");
    let ids = cx.b.input(io::INPUT_IDS, DataType::Int64, &[Dim::Fixed(1), seq()]);
    let pos = cx.b.input(io::POSITION_IDS, DataType::Int64, &[Dim::Fixed(1), seq()]);
    let bias = cx.b.input(io::ATTENTION_BIAS, DataType::Float, &[seq(), total()]);
    let rows = cx.b.input(io::LOGITS_INDEX, DataType::Int64, &[Dim::Named("rows")]);
    let sliding_bias = hp.sliding.is_some().then(|| {
        cx.b.input(io::ATTENTION_BIAS_SLIDING, DataType::Float, &[seq(), total()]);
        io::ATTENTION_BIAS_SLIDING.to_string()
    });
    let kv_dims = |p: Dim| [Dim::Fixed(1), Dim::Fixed(kvh as i64), p, Dim::Fixed(d as i64)];
    for i in 0..hp.n_layer {
        cx.b.input(&io::past(i, false), DataType::Float, &kv_dims(Dim::Named("past")));
        cx.b.input(&io::past(i, true), DataType::Float, &kv_dims(Dim::Named("past")));
    }

    // Embedding: an f32 table, gathered (standard operators: `embedding` writes no contrib lookup here).
    let flat = cx.b.i64s(&[-1]);
    let ids_flat = cx.b.op("Reshape", &[&ids, &flat], vec![]);
    let (x, table) = cx.embedding(&ids_flat, hp)?;
    let mut x = cx.scale_embedding(x, hp);

    // Rotation angles position · inv_freq, `[seq, head_dim/2]`: one table for full-attention layers, one for
    // sliding ones (their own base) where there are any.
    let col = cx.b.i64s(&[-1, 1]);
    let pos_col = cx.b.op("Reshape", &[&pos, &col], vec![]);
    let pos_f = cx.b.op("Cast", &[&pos_col], vec![attr_i("to", DataType::Float as i64)]);
    let mut tables: Vec<(bool, RopeTables)> = Vec::new();
    for slides in [false, true] {
        if let Some(li) = (0..hp.n_layer).find(|&li| hp.slides(li) == slides) {
            let inv = cx.inv_freq(hp, li)?;
            let angles = cx.b.op("Mul", &[&pos_f, &inv], vec![]);
            let cos = cx.b.op("Cos", &[&angles], vec![]);
            let sin = cx.b.op("Sin", &[&angles], vec![]);
            tables.push((slides, cx.rope_tables(&cos, &sin, d, hp.rope_style)));
        }
    }
    let scale = cx.b.scalar(hp.attn_scale);

    let kv_heads = cx.b.i64s(&[0, kvh as i64, d as i64]);
    let cache_shape = cx.b.i64s(&[1, kvh as i64, -1, d as i64]);
    let group = h / kvh;
    let grouped = cx.b.i64s(&[kvh as i64, 1, -1, d as i64]);
    let expand = cx.b.i64s(&[1, group as i64, 1, 1]);
    let all_heads = cx.b.i64s(&[h as i64, -1, d as i64]);
    let merged = cx.b.i64s(&[0, (h * d) as i64]);
    for i in 0..hp.n_layer {
        let blk = |n: &str| names::blk(i, &format!("{n}.weight"));
        let (_, rope) = tables.iter().find(|t| t.0 == hp.slides(i)).expect("a table for each kind of layer");
        let n1 = cx.rms_norm(&x, &blk("attn_norm"), hp.eps, e)?;
        let [q, k, v] = cx.qkv_separate(&n1, hp, i)?;
        let q = cx.head_norm(&q, hp, i, "attn_q_norm", h)?;
        let q = cx.rope(&q, rope, h, d);
        let k = cx.head_norm(&k, hp, i, "attn_k_norm", kvh)?;
        let k = cx.rope(&k, rope, kvh, d);
        let v = cx.b.op("Reshape", &[&v, &kv_heads], vec![]);
        let v = cx.b.op("Transpose", &[&v], vec![attr_ints("perm", &[1, 0, 2])]);
        let mut kv = Vec::new();
        for (t, value) in [(k, false), (v, true)] {
            let t = cx.b.op("Reshape", &[&t, &cache_shape], vec![]);
            let present =
                cx.b.op_to(&io::present(i, value), "Concat", &[&io::past(i, value), &t], vec![attr_i("axis", 2)]);
            let t = if group > 1 {
                let g = cx.b.op("Reshape", &[&present, &grouped], vec![]);
                cx.b.op("Expand", &[&g, &expand], vec![])
            } else {
                present
            };
            kv.push(cx.b.op("Reshape", &[&t, &all_heads], vec![]));
        }
        let kt = cx.b.op("Transpose", &[&kv[0]], vec![attr_ints("perm", &[0, 2, 1])]);
        let scores = cx.b.op("MatMul", &[&q, &kt], vec![]);
        let scores = cx.b.op("Mul", &[&scores, &scale], vec![]);
        let mask = match &sliding_bias {
            Some(m) if hp.slides(i) => m.as_str(),
            _ => bias.as_str(),
        };
        let scores = cx.b.op("Add", &[&scores, mask], vec![]);
        let p = cx.b.op("Softmax", &[&scores], vec![attr_i("axis", -1)]);
        let o = cx.b.op("MatMul", &[&p, &kv[1]], vec![]);
        let o = cx.b.op("Transpose", &[&o], vec![attr_ints("perm", &[1, 0, 2])]);
        let o = cx.b.op("Reshape", &[&o, &merged], vec![]);
        let o = cx.linear(&o, &blk("attn_output"))?;
        let o = cx.post_norm(o, hp, i, "post_attention_norm")?;
        x = cx.b.op("Add", &[&x, &o], vec![]);

        let n2 = cx.rms_norm(&x, &blk("ffn_norm"), hp.eps, e)?;
        let (g, u) = cx.gate_up(&n2, hp, i, false)?;
        let a = cx.gated(&g, &u, hp.activation, false);
        let dn = cx.linear(&a, &blk("ffn_down"))?;
        let dn = cx.post_norm(dn, hp, i, "post_ffw_norm")?;
        x = cx.b.op("Add", &[&x, &dn], vec![]);
    }
    let x = cx.b.op("Gather", &[&x, &rows], vec![attr_i("axis", 0)]);
    let x = cx.rms_norm(&x, names::OUTPUT_NORM, hp.eps, e)?;
    cx.logits_and_outputs(&x, table.as_deref(), hp)
}

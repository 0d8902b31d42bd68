//! The QDQ variant of the primitive graph, for NPUs that run weight products only as quantized operators (QNN's
//! HTP): each 4-bit `MatMulNBits` becomes `DequantizeLinear` of signed int4 codes in 32-value blocks along K — the
//! file's codes `q − 8` and scales, the same values — feeding a `MatMul` whose input and output pass through uint16
//! `QuantizeLinear` / `DequantizeLinear` pairs at calibrated scales (one dedicated pair per product, symmetric
//! about the zero point 32,768). Q4_1's and Q4_K's block minimums stay the float products they already are. Such a
//! graph needs opset 21 (blocked int4 `DequantizeLinear`), where `ReduceMean` takes its axes as an input.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::export::{meta, Repr, WeightEntry};
use crate::pb::{tensor_proto::DataType, ModelProto, NodeProto, TensorProto};
use crate::proto::attr_i;
use crate::weights::{nibble, BLOCK};
use crate::OnnxError;

/// The uint16 activations' zero point (symmetric quantization).
pub const ZERO_POINT: u16 = 32768;
/// The opset of the default domain the variant needs.
pub const OPSET: i64 = 21;

/// A 4-bit product the rewrite replaces: its activation input and its output, whose ranges calibration measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// The node's name.
    pub node: String,
    /// Its activation input.
    pub input: String,
    /// Its output.
    pub output: String,
}

/// What [`rewrite`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewritten {
    /// Products replaced by QDQ units.
    pub products: usize,
    /// Products kept in float (`MatMul` of the file's values, dequantized exactly to f32), by node name.
    pub float: Vec<String>,
    /// `MatMulNBits` nodes left as they were, each with why.
    pub kept: Vec<String>,
}

fn attr(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// Why a `MatMulNBits` node cannot become int4 blocks, if it cannot.
fn unsupported(n: &NodeProto) -> Option<String> {
    if attr(n, "bits") != Some(4) || attr(n, "block_size") != Some(BLOCK as i64) {
        return Some(format!("{}: not 4-bit codes in blocks of {BLOCK}", n.name));
    }
    if n.input.get(3).is_some_and(|z| !z.is_empty()) {
        return Some(format!("{}: explicit zero points (codes 0..15 do not fit signed int4)", n.name));
    }
    None
}

/// The 4-bit products [`rewrite`] replaces, in graph order.
pub fn products(m: &ModelProto) -> Vec<Product> {
    let Some(g) = m.graph.as_ref() else { return Vec::new() };
    g.node
        .iter()
        .filter(|n| n.op_type == "MatMulNBits" && unsupported(n).is_none())
        .map(|n| Product { node: n.name.clone(), input: n.input[0].clone(), output: n.output[0].clone() })
        .collect()
}

fn invalid(reason: impl Into<String>) -> OnnxError {
    OnnxError::Invalid { path: "(QDQ rewrite)".into(), reason: reason.into() }
}

/// A product's block scales `[n, k/32]`, f32 as the export writes them.
fn scale_values(t: &TensorProto, n: usize, k: usize) -> Result<Vec<f32>, OnnxError> {
    crate::fingerprint::f32s(t, n * (k / BLOCK), Path::new("(QDQ rewrite)"))
}

fn scalar(name: String, ty: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto { name, data_type: ty as i32, raw_data: raw, ..Default::default() }
}

/// `MatMulNBits` codes `[n, k/32, 16]` (two 4-bit codes a byte, zero point 8) as signed int4 `[k, n]`, packed two
/// a byte low nibble first, and its scales `[n, k/32]` as `[k/32, n]`.
pub fn int4_blocks(codes: &[u8], scales: &[f32], n: usize, k: usize) -> Result<(Vec<u8>, Vec<f32>), String> {
    let nb = k / BLOCK;
    if !k.is_multiple_of(BLOCK) || codes.len() != n * nb * 16 || scales.len() != n * nb {
        return Err(format!("{} code bytes and {} scales for N={n}, K={k}", codes.len(), scales.len()));
    }
    let mut packed = vec![0u8; (k * n).div_ceil(2)];
    for row in 0..n {
        for kk in 0..k {
            let q = nibble(&codes[row * nb * 16..], kk);
            let signed = (q as i8 - 8) as u8 & 0xf;
            let e = kk * n + row;
            packed[e / 2] |= signed << (4 * (e % 2));
        }
    }
    let mut t = vec![0f32; n * nb];
    for row in 0..n {
        for b in 0..nb {
            t[b * n + row] = scales[row * nb + b];
        }
    }
    Ok((packed, t))
}

/// `MatMulNBits` codes `[n, k/32, 16]` (zero point 8) and scales `[n, k/32]` as the f32 matrix `[k, n]` they stand
/// for, each value `(q − 8) · scale` as `decode_nbits4` computes it (the block minimum not added: its product stays).
pub fn float_transposed(codes: &[u8], scales: &[f32], n: usize, k: usize) -> Result<Vec<f32>, String> {
    let nb = k / BLOCK;
    if !k.is_multiple_of(BLOCK) || codes.len() != n * nb * 16 || scales.len() != n * nb {
        return Err(format!("{} code bytes and {} scales for N={n}, K={k}", codes.len(), scales.len()));
    }
    let mut w = vec![0f32; k * n];
    for row in 0..n {
        for kk in 0..k {
            let q = nibble(&codes[row * nb * 16..], kk);
            w[kk * n + row] = (q as f32 - 8.0) * scales[row * nb + kk / BLOCK];
        }
    }
    Ok(w)
}

/// Rewrites `m` (the primitive graph) into the QDQ variant; `range(name)` is the calibrated largest absolute value
/// of each product's input and output (see [`products`]), and the products `float(node)` names stay in float: a
/// `MatMul` of the file's values dequantized to f32 (exact), for tensors whose range uint16 cannot resolve. Updates
/// the weight map so the fingerprint reads the new initializers, and the opset.
pub fn rewrite(
    m: &mut ModelProto,
    range: impl Fn(&str) -> Option<f32>,
    float: impl Fn(&str) -> bool,
) -> Result<Rewritten, OnnxError> {
    let g = m.graph.as_mut().ok_or_else(|| invalid("no graph"))?;
    let inits: HashMap<String, usize> = g.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    let mut nodes = Vec::with_capacity(2 * g.node.len());
    let mut new_inits = Vec::new();
    let mut converted: HashMap<String, (String, String)> = HashMap::new();
    let mut floated: HashMap<String, String> = HashMap::new();
    let mut kept = Vec::new();
    let mut float_nodes = Vec::new();
    let mut products = 0;
    let zp = "qdq.zero_point.u16".to_string();
    new_inits.push(scalar(zp.clone(), DataType::Uint16, ZERO_POINT.to_le_bytes().to_vec()));
    for n in std::mem::take(&mut g.node) {
        if n.op_type == "ReduceMean" {
            nodes.push(reduce_axes_as_input(n, &mut new_inits));
            continue;
        }
        if n.op_type != "MatMulNBits" {
            nodes.push(n);
            continue;
        }
        if let Some(why) = unsupported(&n) {
            kept.push(why);
            nodes.push(n);
            continue;
        }
        let (k, rows) = (attr(&n, "K").unwrap_or(0) as usize, attr(&n, "N").unwrap_or(0) as usize);
        let (codes, scales) = (&n.input[1], &n.input[2]);
        if float(&n.name) {
            if !floated.contains_key(codes) {
                let c = inits.get(codes).map(|&i| &g.initializer[i]).ok_or_else(|| invalid(format!("no {codes}")))?;
                let s = inits.get(scales).map(|&i| &g.initializer[i]).ok_or_else(|| invalid(format!("no {scales}")))?;
                let w = float_transposed(&c.raw_data, &scale_values(s, rows, k)?, rows, k)
                    .map_err(|e| invalid(format!("{codes}: {e}")))?;
                let name = format!("{codes}.f32");
                new_inits.push(TensorProto {
                    name: name.clone(),
                    dims: vec![k as i64, rows as i64],
                    data_type: DataType::Float as i32,
                    raw_data: w.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    ..Default::default()
                });
                floated.insert(codes.clone(), name);
            }
            nodes.push(NodeProto {
                name: n.name.clone(),
                op_type: "MatMul".into(),
                input: vec![n.input[0].clone(), floated[codes].clone()],
                output: n.output.clone(),
                ..Default::default()
            });
            float_nodes.push(n.name.clone());
            continue;
        }
        if !converted.contains_key(codes) {
            let c = inits.get(codes).map(|&i| &g.initializer[i]).ok_or_else(|| invalid(format!("no {codes}")))?;
            let s = inits.get(scales).map(|&i| &g.initializer[i]).ok_or_else(|| invalid(format!("no {scales}")))?;
            let (packed, t) = int4_blocks(&c.raw_data, &scale_values(s, rows, k)?, rows, k)
                .map_err(|e| invalid(format!("{codes}: {e}")))?;
            let (cn, sn) = (format!("{codes}.int4"), format!("{scales}.blocks"));
            new_inits.push(TensorProto {
                name: cn.clone(),
                dims: vec![k as i64, rows as i64],
                data_type: DataType::Int4 as i32,
                raw_data: packed,
                ..Default::default()
            });
            new_inits.push(TensorProto {
                name: sn.clone(),
                dims: vec![(k / BLOCK) as i64, rows as i64],
                data_type: DataType::Float as i32,
                raw_data: t.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ..Default::default()
            });
            converted.insert(codes.clone(), (cn, sn));
        }
        let (cn, sn) = &converted[codes];
        let (x, y) = (&n.input[0], &n.output[0]);
        let need = |t: &str| {
            range(t)
                .filter(|r| r.is_finite() && *r > 0.0)
                .ok_or_else(|| invalid(format!("no calibrated range for {t}")))
        };
        let (rx, ry) = (need(x)?, need(y)?);
        let p = &n.name;
        let node = |op: &str, inputs: Vec<String>, output: String| NodeProto {
            name: format!("{p}.{}", output.rsplit('.').next().unwrap_or_default()),
            op_type: op.into(),
            input: inputs,
            output: vec![output],
            ..Default::default()
        };
        for (what, r) in [("in_scale", rx), ("out_scale", ry)] {
            let s = r / (ZERO_POINT - 1) as f32;
            new_inits.push(scalar(format!("{p}.{what}"), DataType::Float, s.to_le_bytes().to_vec()));
        }
        let (si, so) = (format!("{p}.in_scale"), format!("{p}.out_scale"));
        nodes.push(node("QuantizeLinear", vec![x.clone(), si.clone(), zp.clone()], format!("{p}.xq")));
        nodes.push(node("DequantizeLinear", vec![format!("{p}.xq"), si, zp.clone()], format!("{p}.xd")));
        let mut dq = node("DequantizeLinear", vec![cn.clone(), sn.clone()], format!("{p}.w"));
        dq.attribute = vec![attr_i("axis", 0), attr_i("block_size", BLOCK as i64)];
        nodes.push(dq);
        nodes.push(node("MatMul", vec![format!("{p}.xd"), format!("{p}.w")], format!("{p}.y")));
        nodes.push(node("QuantizeLinear", vec![format!("{p}.y"), so.clone(), zp.clone()], format!("{p}.yq")));
        nodes.push(node("DequantizeLinear", vec![format!("{p}.yq"), so, zp.clone()], y.clone()));
        products += 1;
    }
    let used: HashSet<&String> = nodes.iter().flat_map(|n| n.input.iter()).collect();
    let mut all: Vec<TensorProto> = std::mem::take(&mut g.initializer).into_iter().chain(new_inits).collect();
    all.retain(|t| used.contains(&t.name));
    g.initializer = all;
    g.node = nodes;
    m.ir_version = m.ir_version.max(10);
    for o in &mut m.opset_import {
        if o.domain.is_empty() {
            o.version = OPSET;
        }
    }
    let weights =
        m.metadata_props.iter_mut().find(|p| p.key == meta::WEIGHTS).ok_or_else(|| invalid("no weight map"))?;
    let mut entries: Vec<WeightEntry> =
        serde_json::from_str(&weights.value).map_err(|e| invalid(format!("{}: {e}", meta::WEIGHTS)))?;
    for e in &mut entries {
        if let Repr::Nbits4 { codes, mins, n, k, .. } = &e.repr {
            if let Some((cn, sn)) = converted.get(codes) {
                e.repr = Repr::Int4Blocks { codes: cn.clone(), scales: sn.clone(), mins: mins.clone(), n: *n, k: *k };
            } else if let Some(f) = floated.get(codes) {
                if e.rows_total != 0 {
                    return Err(invalid(format!("{}: a float product of a shared initializer", e.tensor)));
                }
                e.repr = Repr::FloatTransposed { init: f.clone(), mins: mins.clone() };
            }
        }
    }
    weights.value = serde_json::to_string(&entries).map_err(|e| invalid(e.to_string()))?;
    if let Some(c) = m.metadata_props.iter_mut().find(|p| p.key == meta::CARRIED) {
        c.value.push_str(&format!(
            "; QDQ variant: {products} of the 4-bit products' codes and scales as int4 DequantizeLinear blocks, {} as \
             f32 MatMul weights (the same values)",
            float_nodes.len()
        ));
    }
    Ok(Rewritten { products, float: float_nodes, kept })
}

/// `ReduceMean` with its `axes` attribute (opset < 18) as the node of opset 18 on: the axes an int64 input.
fn reduce_axes_as_input(mut n: NodeProto, inits: &mut Vec<TensorProto>) -> NodeProto {
    if let Some(i) = n.attribute.iter().position(|a| a.name == "axes") {
        let axes = n.attribute.remove(i).ints;
        let name = format!("{}.axes", if n.name.is_empty() { &n.output[0] } else { &n.name });
        inits.push(TensorProto {
            name: name.clone(),
            dims: vec![axes.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data: axes.iter().flat_map(|a| a.to_le_bytes()).collect(),
            ..Default::default()
        });
        n.input.push(name);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{export, ExportOptions};
    use edgebench_gguf::synth::{tiny_model, TinyConfig};
    use edgebench_gguf::{GgmlType, GgufFile};
    use prost::Message;

    /// On tiny Q4_0 and Q4_1 models every 4-bit product becomes a QDQ unit and the fingerprint of the rewritten
    /// file is the GGUF's (the int4 blocks decode to the same values); ReduceMean takes its axes as an input at
    /// opset 21; a missing range is an error naming the tensor.
    #[test]
    fn the_rewrite_replaces_every_4_bit_product_and_keeps_the_weights() {
        let dir = tempfile::tempdir().unwrap();
        for w in [GgmlType::Q4_0, GgmlType::Q4_1] {
            let path = dir.path().join(format!("tiny-{w}.gguf"));
            let cfg = TinyConfig { weight_type: w, embd_type: GgmlType::Q8_0, ..TinyConfig::default() };
            tiny_model(&cfg).unwrap().write(&path).unwrap();
            let file = GgufFile::open(&path).unwrap();
            let ex = export(&file, ExportOptions::default(), "abc").unwrap();
            let onnx = dir.path().join(format!("{w}.onnx"));
            let before = crate::fingerprint::fingerprint(&ex.model, &onnx).unwrap();
            let n_products = products(&ex.model).len();
            assert!(n_products > 0);
            let mut m = ex.model.clone();
            let err = rewrite(&mut m, |_| None, |_| false).unwrap_err().to_string();
            assert!(err.contains("no calibrated range for"), "{err}");
            let mut m = ex.model.clone();
            // The first product stays in float; the others become QDQ units.
            let first = products(&ex.model)[0].node.clone();
            let done = rewrite(&mut m, |_| Some(2.0), |node| node == first).unwrap();
            assert_eq!((done.products, done.float.clone(), done.kept.len()), (n_products - 1, vec![first], 0));
            std::fs::write(&onnx, m.encode_to_vec()).unwrap();
            let back = crate::fingerprint::read_model(&onnx).unwrap();
            assert_eq!(crate::fingerprint::fingerprint(&back, &onnx).unwrap(), before, "{w}: the same values");
            let g = back.graph.as_ref().unwrap();
            let count = |op: &str| g.node.iter().filter(|n| n.op_type == op).count();
            assert_eq!((count("MatMulNBits"), count("QuantizeLinear")), (0, 2 * (n_products - 1)));
            assert!(g
                .node
                .iter()
                .filter(|n| n.op_type == "ReduceMean")
                .all(|n| n.input.len() == 2 && n.attribute.iter().all(|a| a.name != "axes")));
            assert!(back.opset_import.iter().any(|o| o.domain.is_empty() && o.version == OPSET));
            let original = dir.path().join("original.onnx");
            std::fs::write(&original, ex.model.encode_to_vec()).unwrap();
            let flops = |p: &std::path::Path| crate::scan::weight_bytes(p).unwrap().flops_total();
            assert_eq!(flops(&onnx), flops(&original), "the products' FLOPs are still counted");
            // A blocked DequantizeLinear reading the codes in other blocks no longer decodes them.
            let mut tampered = back.clone();
            let dq = tampered
                .graph
                .as_mut()
                .unwrap()
                .node
                .iter_mut()
                .find(|n| n.op_type == "DequantizeLinear" && n.input[0].ends_with(".int4"))
                .unwrap();
            dq.attribute.retain(|a| a.name != "block_size");
            dq.attribute.push(attr_i("block_size", 64));
            let err = crate::fingerprint::fingerprint(&tampered, &onnx).unwrap_err().to_string();
            assert!(err.contains("not a blocked DequantizeLinear of these codes"), "{err}");
        }
    }

    #[test]
    fn int4_blocks_hold_the_codes_minus_8_transposed_with_their_scales() {
        let (n, k) = (3, 64);
        let nb = k / BLOCK;
        let codes: Vec<u8> = (0..n * nb * 16).map(|i| (i * 37 % 251) as u8).collect();
        let scales: Vec<f32> = (0..n * nb).map(|i| 0.5 + i as f32).collect();
        let (packed, t) = int4_blocks(&codes, &scales, n, k).unwrap();
        for row in 0..n {
            for kk in 0..k {
                let q = nibble(&codes[row * nb * 16..], kk);
                let e = kk * n + row;
                let signed = ((nibble(&packed, e) << 4) as i8) >> 4;
                assert_eq!(signed as i32, q as i32 - 8, "row {row}, k {kk}");
                assert_eq!(t[(kk / BLOCK) * n + row], scales[row * nb + kk / BLOCK]);
            }
        }
        assert!(int4_blocks(&codes, &scales, n, k + 1).is_err());
    }
}

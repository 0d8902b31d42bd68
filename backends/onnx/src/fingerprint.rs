//! Reading an exported ONNX file back: its `edgebench.*` metadata, and the fingerprint of the weight values its
//! initializers stand for (the same definition as `edgebench_gguf::fingerprint`), so a backend that runs the file
//! can say whether it runs the GGUF's numbers.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use edgebench_gguf::fingerprint::Fingerprinter;
use prost::Message;

use crate::export::{meta, Repr, WeightEntry};
use crate::io::GraphFacts;
use crate::pb::{tensor_proto::DataType, ModelProto, TensorProto};
use crate::{io_err, weights, OnnxError};

/// What an exported file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFacts {
    /// Graph facts.
    pub graph: GraphFacts,
    /// How each GGUF type is carried.
    pub carried: String,
    /// Conversions (empty: none).
    pub converted: Vec<String>,
    /// SHA-256 of the GGUF it was exported from.
    pub source_sha256: String,
    /// Exporter that wrote it.
    pub exporter: String,
}

/// Decodes an ONNX file.
pub fn read_model(path: &Path) -> Result<ModelProto, OnnxError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    ModelProto::decode(bytes.as_slice())
        .map_err(|e| OnnxError::Invalid { path: path.into(), reason: format!("not an ONNX model: {e}") })
}

fn invalid(path: &Path, reason: impl Into<String>) -> OnnxError {
    OnnxError::Invalid { path: path.into(), reason: reason.into() }
}

fn meta_value<'a>(m: &'a ModelProto, key: &str) -> Option<&'a str> {
    m.metadata_props.iter().find(|p| p.key == key).map(|p| p.value.as_str())
}

/// The `edgebench.*` metadata of a file this exporter wrote.
pub fn file_facts(m: &ModelProto, path: &Path) -> Result<FileFacts, OnnxError> {
    file_facts_from(|k| meta_value(m, k).map(str::to_string), path)
}

/// The `edgebench.*` metadata, read through `get` (e.g. a runtime's own view of the file's metadata).
pub fn file_facts_from(get: impl Fn(&str) -> Option<String>, path: &Path) -> Result<FileFacts, OnnxError> {
    let need =
        |k: &str| get(k).ok_or_else(|| invalid(path, format!("no {k} metadata: not written by edgebench export onnx")));
    let graph =
        serde_json::from_str(&need(meta::FACTS)?).map_err(|e| invalid(path, format!("{}: {e}", meta::FACTS)))?;
    Ok(FileFacts {
        graph,
        carried: need(meta::CARRIED)?,
        converted: get(meta::CONVERTED).map(|c| c.lines().map(String::from).collect()).unwrap_or_default(),
        source_sha256: need(meta::SOURCE_SHA256)?,
        exporter: need(meta::EXPORTER)?,
    })
}

fn raw<'a>(t: &'a TensorProto, ty: DataType, count: usize, path: &Path) -> Result<&'a [u8], OnnxError> {
    let width = if ty == DataType::Float { 4 } else { 1 };
    if t.data_type != ty as i32 || t.raw_data.len() != count * width {
        return Err(invalid(
            path,
            format!(
                "initializer {} is not {count} raw {ty:?} values (type {}, {} bytes)",
                t.name,
                t.data_type,
                t.raw_data.len()
            ),
        ));
    }
    Ok(&t.raw_data)
}

/// `count` raw little-endian f32 values of `t`, or an error naming `path` and the initializer.
pub(crate) fn f32s(t: &TensorProto, count: usize, path: &Path) -> Result<Vec<f32>, OnnxError> {
    Ok(raw(t, DataType::Float, count, path)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A quantized matrix's initializers as the weight map names them, and whether a lookup may read them.
#[derive(Clone, Copy)]
struct NbitsRef<'a> {
    codes: &'a String,
    scales: &'a String,
    zero_points: Option<&'a String>,
    bits: i64,
    /// Values per block.
    block: usize,
    /// The zero points are `GatherBlockQuantized`'s default (8 or 128) and there are no block minimums.
    lookup_ok: bool,
}

/// The fingerprint (`wfp1:…`) of the weight values the file's graph runs, decoded from its initializers.
///
/// Every initializer named in the weight map must feed a node (packed codes: `MatMulNBits` with matching
/// `K`/`N`, or a `GatherBlockQuantized` lookup reading them with the same scales and zero points); a tensor
/// carried twice (the tied embedding: gather table and output product) must decode to
/// the same bits both times.
pub fn fingerprint(m: &ModelProto, path: &Path) -> Result<String, OnnxError> {
    let g = m.graph.as_ref().ok_or_else(|| invalid(path, "no graph"))?;
    let entries: Vec<WeightEntry> = serde_json::from_str(
        meta_value(m, meta::WEIGHTS).ok_or_else(|| invalid(path, "no edgebench.weights metadata"))?,
    )
    .map_err(|e| invalid(path, format!("{}: {e}", meta::WEIGHTS)))?;
    let inits: HashMap<&str, &TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut consumers: HashMap<&str, Vec<&crate::pb::NodeProto>> = HashMap::new();
    let mut producers: HashMap<&str, &crate::pb::NodeProto> = HashMap::new();
    for n in &g.node {
        for i in &n.input {
            consumers.entry(i.as_str()).or_default().push(n);
        }
        for o in &n.output {
            producers.insert(o.as_str(), n);
        }
    }
    let init = |name: &str| -> Result<&TensorProto, OnnxError> {
        if !consumers.contains_key(name) {
            return Err(invalid(path, format!("initializer {name} feeds no node")));
        }
        inits.get(name).copied().ok_or_else(|| invalid(path, format!("no initializer {name}")))
    };
    let mut values: BTreeMap<String, (Vec<u64>, Vec<f32>)> = BTreeMap::new();
    for e in &entries {
        let count: u64 = e.dims.iter().product();
        // A tensor may own a slice of rows of an initializer it shares (fused Q/K/V, gate/up).
        let rows_total = if e.rows_total == 0 { None } else { Some(e.rows_total) };
        // Rows of a `MatMulNBits` weight (`n` of `k` values, `bits` wide), checked against the tensor's shape and
        // the nodes its codes feed: `MatMulNBits` (B input, zero points where named, matching K/N/bits/block size)
        // or, for a whole initializer whose zero points are the operator's default (`lookup_ok`),
        // `GatherBlockQuantized` (data input, its scales a reshape of the same scales, matching bits/block size and
        // axes): the rows of the whole initializer.
        let nbits_rows = |e: &WeightEntry, q: NbitsRef<'_>, n: usize, k: usize| {
            if (n * k) as u64 != count {
                return Err(invalid(path, format!("{}: N={n}, K={k} for shape {:?}", e.tensor, e.dims)));
            }
            let all_n = rows_total.unwrap_or(n);
            if e.row0 + n > all_n {
                return Err(invalid(path, format!("{}: rows {}+{n} outside N={all_n}", e.tensor, e.row0)));
            }
            let attr = |node: &crate::pb::NodeProto, a: &str| node.attribute.iter().find(|x| x.name == a).map(|x| x.i);
            let reshaped_scales = |name: Option<&String>| {
                name.and_then(|n| producers.get(n.as_str()))
                    .is_some_and(|p| p.op_type == "Reshape" && p.input.first() == Some(q.scales))
            };
            let fed = consumers.get(q.codes.as_str()).into_iter().flatten().all(|node| match node.op_type.as_str() {
                "MatMulNBits" => {
                    node.input.get(1) == Some(q.codes)
                        && node.input.get(2) == Some(q.scales)
                        && q.zero_points.is_none_or(|z| node.input.get(3) == Some(z))
                        && attr(node, "K") == Some(k as i64)
                        && attr(node, "N") == Some(all_n as i64)
                        && attr(node, "bits") == Some(q.bits)
                        && attr(node, "block_size") == Some(q.block as i64)
                }
                "GatherBlockQuantized" => {
                    q.lookup_ok
                        && rows_total.is_none()
                        && node.input.len() == 3
                        && node.input.first() == Some(q.codes)
                        && reshaped_scales(node.input.get(2))
                        && attr(node, "bits") == Some(q.bits)
                        && attr(node, "block_size") == Some(q.block as i64)
                        && attr(node, "gather_axis") == Some(0)
                        && attr(node, "quantize_axis") == Some(2)
                }
                _ => false,
            });
            if !fed {
                return Err(invalid(
                    path,
                    format!("{}: a node reading it is not the B input of a matching MatMulNBits node nor the data input of a matching GatherBlockQuantized one", q.codes),
                ));
            }
            Ok(all_n)
        };
        let v = match &e.repr {
            Repr::Float { init: name } => {
                let k = e.dims.first().copied().unwrap_or(0) as usize;
                let n = (count as usize).checked_div(k).unwrap_or(0);
                let all = f32s(init(name)?, rows_total.map_or(count as usize, |r| r * k), path)?;
                if e.row0 + n > rows_total.unwrap_or(n) {
                    return Err(invalid(path, format!("{}: rows {}+{n} outside the initializer", e.tensor, e.row0)));
                }
                all[e.row0 * k..(e.row0 + n) * k].to_vec()
            }
            Repr::Int4Blocks { codes, scales, mins, n, k } => {
                let (n, k) = (*n, *k);
                if !k.is_multiple_of(weights::BLOCK) || (n * k) as u64 != count {
                    return Err(invalid(path, format!("{}: N={n}, K={k} for shape {:?}", e.tensor, e.dims)));
                }
                let all_n = rows_total.unwrap_or(n);
                if e.row0 + n > all_n {
                    return Err(invalid(path, format!("{}: rows {}+{n} outside N={all_n}", e.tensor, e.row0)));
                }
                let attr =
                    |node: &crate::pb::NodeProto, a: &str| node.attribute.iter().find(|x| x.name == a).map(|x| x.i);
                let fed = consumers.get(codes.as_str()).into_iter().flatten().all(|node| {
                    node.op_type == "DequantizeLinear"
                        && node.input.first() == Some(codes)
                        && node.input.get(1) == Some(scales)
                        && node.input.get(2).is_none_or(|z| z.is_empty())
                        && attr(node, "axis") == Some(0)
                        && attr(node, "block_size") == Some(weights::BLOCK as i64)
                });
                if !fed {
                    return Err(invalid(
                        path,
                        format!(
                            "{codes}: a node reading it is not a blocked DequantizeLinear of these codes and scales"
                        ),
                    ));
                }
                let nb = k / weights::BLOCK;
                let c = raw(init(codes)?, DataType::Int4, (k * all_n).div_ceil(2), path)?;
                let sc = f32s(init(scales)?, nb * all_n, path)?;
                let mm = match mins {
                    Some(x) => Some(f32s(init(x)?, all_n * nb, path)?),
                    None => None,
                };
                let mut v = Vec::with_capacity(n * k);
                for row in e.row0..e.row0 + n {
                    for kk in 0..k {
                        let el = kk * all_n + row;
                        let code = ((weights::nibble(c, el) << 4) as i8 >> 4) as f32;
                        let w = code * sc[(kk / weights::BLOCK) * all_n + row];
                        v.push(match &mm {
                            Some(m) => w + m[row * nb + kk / weights::BLOCK],
                            None => w,
                        });
                    }
                }
                v
            }
            Repr::FloatTransposed { init: name, mins } => {
                let k = e.dims.first().copied().unwrap_or(0) as usize;
                let n = (count as usize).checked_div(k).unwrap_or(0);
                let t = f32s(init(name)?, count as usize, path)?;
                let nb = k.div_ceil(weights::BLOCK);
                let mm = match mins {
                    Some(x) => Some(f32s(init(x)?, n * nb, path)?),
                    None => None,
                };
                let mut v = vec![0f32; n * k];
                for (c, col) in t.chunks_exact(n.max(1)).enumerate() {
                    for (r, x) in col.iter().enumerate() {
                        v[r * k + c] = match &mm {
                            Some(m) => *x + m[r * nb + c / weights::BLOCK],
                            None => *x,
                        };
                    }
                }
                v
            }
            Repr::Nbits8 { codes, scales, zero_points, n, k, block } => {
                let (n, k, block) = (*n, *k, *block);
                if block == 0 || !k.is_multiple_of(block) {
                    return Err(invalid(path, format!("{}: K={k} is not whole blocks of {block}", e.tensor)));
                }
                let nb = k / block;
                let all_z = raw(init(zero_points)?, DataType::Uint8, rows_total.unwrap_or(n) * nb, path)?;
                let lookup_ok = all_z.iter().all(|&z| z == 128);
                let q = NbitsRef { codes, scales, zero_points: Some(zero_points), bits: 8, block, lookup_ok };
                let all_n = nbits_rows(e, q, n, k)?;
                let (r0, r1) = (e.row0, e.row0 + n);
                let c = &raw(init(codes)?, DataType::Uint8, all_n * k, path)?[r0 * k..r1 * k];
                let s = &f32s(init(scales)?, all_n * nb, path)?[r0 * nb..r1 * nb];
                let z = &all_z[r0 * nb..r1 * nb];
                weights::decode_nbits8(c, s, z, n, k, block).map_err(|r| invalid(path, format!("{}: {r}", e.tensor)))?
            }
            Repr::Nbits4 { codes, scales, zero_points, mins, n, k } => {
                let (n, k) = (*n, *k);
                let lookup_ok = zero_points.is_none() && mins.is_none();
                let q = NbitsRef { codes, scales, zero_points: None, bits: 4, block: weights::BLOCK, lookup_ok };
                let all_n = nbits_rows(e, q, n, k)?;
                let nb = k / weights::BLOCK;
                let zp_row = nb.div_ceil(2);
                let (r0, r1) = (e.row0, e.row0 + n);
                let c = &raw(init(codes)?, DataType::Uint8, all_n * nb * 16, path)?[r0 * nb * 16..r1 * nb * 16];
                let s = &f32s(init(scales)?, all_n * nb, path)?[r0 * nb..r1 * nb];
                let z = match zero_points {
                    Some(z) => Some(&raw(init(z)?, DataType::Uint8, all_n * zp_row, path)?[r0 * zp_row..r1 * zp_row]),
                    None => None,
                };
                let mm = match mins {
                    Some(x) => Some(f32s(init(x)?, all_n * nb, path)?[r0 * nb..r1 * nb].to_vec()),
                    None => None,
                };
                weights::decode_nbits4(c, s, z, mm.as_deref(), n, k)
                    .map_err(|r| invalid(path, format!("{}: {r}", e.tensor)))?
            }
        };
        match values.get(&e.tensor) {
            Some((_, prev)) if prev.iter().map(|f| f.to_bits()).ne(v.iter().map(|f| f.to_bits())) => {
                return Err(invalid(path, format!("the graph's copies of {} hold different values", e.tensor)));
            }
            Some(_) => {}
            None => {
                values.insert(e.tensor.clone(), (e.dims.clone(), v));
            }
        }
    }
    let mut fp = Fingerprinter::new();
    for (name, (dims, v)) in &values {
        fp.tensor(name, dims, v).map_err(|e| invalid(path, e.to_string()))?;
    }
    Ok(fp.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{export, ExportOptions};
    use crate::io::GraphVariant;
    use edgebench_gguf::arch::Arch;
    use edgebench_gguf::synth::{tiny_model, TinyConfig};
    use edgebench_gguf::{GgmlType, GgufFile};
    use prost::Message;

    fn tiny(dir: &Path, weight_type: GgmlType, embd_type: GgmlType) -> GgufFile {
        let path = dir.join(format!("tiny-{weight_type}-{embd_type}.gguf"));
        tiny_model(&TinyConfig { weight_type, embd_type, ..TinyConfig::default() }).unwrap().write(&path).unwrap();
        GgufFile::open(&path).unwrap()
    }

    /// Export, encode, decode: the metadata survives and the weights the file carries are the GGUF's, bit for bit.
    #[test]
    fn tiny_models_round_trip_with_identical_weight_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let variants = [
            ExportOptions::default(),
            ExportOptions { untied_head: true, ..ExportOptions::default() },
            ExportOptions { accuracy_level: 1, graph: GraphVariant::Fused, untied_head: false, fp16_safe_norm: false },
            // 8-bit MatMulNBits for Q8_0 (int8 activations only).
            ExportOptions { accuracy_level: 4, graph: GraphVariant::Fused, untied_head: false, fp16_safe_norm: false },
        ];
        let types = [
            (GgmlType::Q4_1, GgmlType::Q8_0),
            (GgmlType::Q4_0, GgmlType::Q4_0),
            (GgmlType::Q8_0, GgmlType::Q8_0),
            (GgmlType::F16, GgmlType::F32),
        ];
        for ((w, e), o) in types.into_iter().flat_map(|t| variants.map(|o| (t, o))) {
            let g = tiny(dir.path(), w, e);
            let ex = export(&g, o, "abc").unwrap();
            let path = dir.path().join("m.onnx");
            std::fs::write(&path, ex.model.encode_to_vec()).unwrap();
            let back = read_model(&path).unwrap();
            let f = file_facts(&back, &path).unwrap();
            assert_eq!((f.graph.n_layer, f.graph.vocab), (2, ex.facts.vocab));
            assert_eq!(f.source_sha256, "abc");
            // Q8_0 products are exact at level 4. The (tied) embedding table is f32, a conversion for Q8_0, except
            // in the fused graph where its output product keeps it quantized: there the lookup reads those bytes.
            let fused = o.graph == GraphVariant::Fused;
            let lookup = fused && (e == GgmlType::Q4_0 || (e == GgmlType::Q8_0 && o.accuracy_level == 4));
            let converted = (e == GgmlType::Q8_0 && !lookup) || (w == GgmlType::Q8_0 && o.accuracy_level != 4);
            let nodes = &back.graph.as_ref().unwrap().node;
            assert_eq!(nodes.iter().any(|n| n.op_type == "GatherBlockQuantized"), lookup, "{w}/{e} {o:?}");
            let f32_table = back.graph.as_ref().unwrap().initializer.iter().any(|t| t.name == "token_embd.weight.f32");
            assert_eq!(f32_table, !lookup, "{w}/{e} {o:?}: an f32 table beside the quantized lookup");
            assert_eq!(f.converted.is_empty(), !converted, "{w}/{e} {o:?}: {:?}", f.converted);
            assert_eq!(f.graph.variant, o.graph);
            let source = edgebench_gguf::fingerprint::of_file(&g).unwrap();
            assert_eq!(fingerprint(&back, &path).unwrap(), source, "{w}/{e} {o:?}");
            let eight_bit = back
                .graph
                .as_ref()
                .unwrap()
                .node
                .iter()
                .any(|n| n.op_type == "MatMulNBits" && n.attribute.iter().any(|a| a.name == "bits" && a.i == 8));
            assert_eq!(
                eight_bit,
                o.accuracy_level == 4 && (w == GgmlType::Q8_0 || e == GgmlType::Q8_0),
                "{w}/{e} {o:?}"
            );
        }
    }

    /// A tiny model of `arch` with `weight_type` matrices (K-quants: widths of whole 256-value super-blocks).
    fn tiny_arch(dir: &Path, arch: Arch, weight_type: GgmlType) -> GgufFile {
        let path = dir.join(format!("tiny-{}-{weight_type}.gguf", arch.name()));
        let k_quant = matches!(weight_type, GgmlType::Q4K | GgmlType::Q6K);
        let cfg = TinyConfig {
            arch,
            rope_freqs: arch == Arch::Llama,
            weight_type,
            n_embd: if k_quant { 256 } else { 64 },
            n_ff: if k_quant { 512 } else { 128 },
            ..TinyConfig::default()
        };
        tiny_model(&cfg).unwrap().write(&path).unwrap();
        GgufFile::open(&path).unwrap()
    }

    /// Every architecture's variations and every weight type the Gemma 3 Q4_K_M file holds, both graphs: the file
    /// runs the GGUF's own values (exactly: the 8-bit types at int8 activations, Q4_K always), and says which types
    /// were converted where.
    #[test]
    fn every_architecture_and_k_quant_round_trips_with_identical_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let variants = [
            ExportOptions {
                accuracy_level: 1,
                graph: GraphVariant::Primitive,
                untied_head: true,
                fp16_safe_norm: false,
            },
            ExportOptions { accuracy_level: 1, graph: GraphVariant::Fused, untied_head: false, fp16_safe_norm: false },
            ExportOptions { accuracy_level: 4, graph: GraphVariant::Fused, untied_head: false, fp16_safe_norm: false },
        ];
        let cases = Arch::ALL
            .iter()
            .flat_map(|&a| [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0].map(|t| (a, t)))
            .chain([GgmlType::Q4K, GgmlType::Q6K].map(|t| (Arch::Gemma3, t)));
        for (arch, w) in cases {
            let g = tiny_arch(dir.path(), arch, w);
            let source = edgebench_gguf::fingerprint::of_file(&g).unwrap();
            for o in variants {
                let ex = export(&g, o, "abc").unwrap();
                let path = dir.path().join("m.onnx");
                std::fs::write(&path, ex.model.encode_to_vec()).unwrap();
                let back = read_model(&path).unwrap();
                assert_eq!(fingerprint(&back, &path).unwrap(), source, "{arch:?} {w} {o:?}");
                let f = file_facts(&back, &path).unwrap();
                assert_eq!(f.graph.sliding_window.is_some(), arch == Arch::Gemma3);
                let exact = w == GgmlType::Q4_0 || w == GgmlType::Q4K || o.accuracy_level == 4;
                let weights_converted = f.converted.iter().any(|c| c.starts_with(&format!("{w} → f32")));
                assert_eq!(weights_converted, !exact, "{arch:?} {w} {o:?}: {:?}", f.converted);
                let block16 = back.graph.as_ref().unwrap().node.iter().any(|n| {
                    n.op_type == "MatMulNBits" && n.attribute.iter().any(|a| a.name == "block_size" && a.i == 16)
                });
                assert_eq!(block16, w == GgmlType::Q6K && o.accuracy_level == 4, "{arch:?} {w} {o:?}");
            }
        }
    }

    /// A K-quant's carried values are checked too: a changed Q6_K code, a Q4_K block minimum, or a Q6_K product
    /// read in blocks of 32 instead of 16.
    #[test]
    fn tampering_with_k_quants_changes_or_breaks_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.onnx");
        let int8 =
            ExportOptions { accuracy_level: 4, graph: GraphVariant::Fused, untied_head: false, fp16_safe_norm: false };
        let q6 = tiny_arch(dir.path(), Arch::Gemma3, GgmlType::Q6K);
        let model = export(&q6, int8, "x").unwrap().model;
        assert_eq!(fingerprint(&model, &p).unwrap(), edgebench_gguf::fingerprint::of_file(&q6).unwrap());
        let mut m = model.clone();
        let codes = graph(&mut m).initializer.iter_mut().find(|t| t.name == "blk.1.ffn_down.weight.codes8").unwrap();
        codes.raw_data[5] ^= 0x01;
        assert_ne!(fingerprint(&m, &p).unwrap(), edgebench_gguf::fingerprint::of_file(&q6).unwrap());
        let mut m = model.clone();
        let down = |n: &&mut crate::pb::NodeProto| n.op_type == "MatMulNBits" && n.input[1].contains("ffn_down");
        let node = graph(&mut m).node.iter_mut().find(down).unwrap();
        node.attribute.iter_mut().find(|a| a.name == "block_size").unwrap().i = 32;
        assert!(fingerprint(&m, &p).unwrap_err().to_string().contains("not the B input of a matching MatMulNBits"));

        let q4 = tiny_arch(dir.path(), Arch::Gemma3, GgmlType::Q4K);
        let mut m = export(&q4, ExportOptions::default(), "x").unwrap().model;
        assert_eq!(fingerprint(&m, &p).unwrap(), edgebench_gguf::fingerprint::of_file(&q4).unwrap());
        let mins = graph(&mut m).initializer.iter_mut().find(|t| t.name == "blk.0.attn_output.weight.mins").unwrap();
        mins.raw_data[2] ^= 0x10;
        assert_ne!(fingerprint(&m, &p).unwrap(), edgebench_gguf::fingerprint::of_file(&q4).unwrap());
    }

    fn graph(m: &mut ModelProto) -> &mut crate::pb::GraphProto {
        m.graph.as_mut().unwrap()
    }

    /// A changed code, a rewired node or a tampered copy of the tied embedding is caught.
    #[test]
    fn tampering_changes_or_breaks_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let g = tiny(dir.path(), GgmlType::Q4_0, GgmlType::Q4_0);
        let source = edgebench_gguf::fingerprint::of_file(&g).unwrap();
        let p = dir.path().join("m.onnx");
        let model = export(&g, ExportOptions::default(), "x").unwrap().model;

        let mut m = model.clone();
        let init = graph(&mut m).initializer.iter_mut().find(|t| t.name.ends_with("attn_q.weight.codes")).unwrap();
        init.raw_data[0] ^= 0x01;
        assert_ne!(fingerprint(&m, &p).unwrap(), source);

        let mut m = model.clone();
        let node = graph(&mut m).node.iter_mut().find(|n| n.op_type == "MatMulNBits").unwrap();
        node.attribute.iter_mut().find(|a| a.name == "N").unwrap().i += 1;
        assert!(fingerprint(&m, &p).unwrap_err().to_string().contains("not the B input of a matching MatMulNBits"));

        // The fused graph's quantized lookup: a changed axis or a lookup reading other scales is refused.
        let fused = ExportOptions { graph: GraphVariant::Fused, ..ExportOptions::default() };
        let lookup = export(&g, fused, "x").unwrap().model;
        assert_eq!(fingerprint(&lookup, &p).unwrap(), source);
        let mut m = lookup.clone();
        let node = graph(&mut m).node.iter_mut().find(|n| n.op_type == "GatherBlockQuantized").unwrap();
        node.attribute.iter_mut().find(|a| a.name == "quantize_axis").unwrap().i = 1;
        assert!(fingerprint(&m, &p).unwrap_err().to_string().contains("matching GatherBlockQuantized"));
        let mut m = lookup.clone();
        let scales = |t: &&crate::pb::TensorProto| t.name.ends_with(".scales") && !t.name.starts_with("token_embd");
        let other = graph(&mut m).initializer.iter().find(scales).unwrap().name.clone();
        let reshape = graph(&mut m).node.iter_mut().find(|n| n.op_type == "Reshape" && n.input[0].ends_with(".scales"));
        reshape.unwrap().input[0] = other;
        assert!(fingerprint(&m, &p).unwrap_err().to_string().contains("matching GatherBlockQuantized"));

        let mut m = model.clone();
        let table = graph(&mut m).initializer.iter_mut().find(|t| t.name == "token_embd.weight.f32").unwrap();
        table.raw_data[3] ^= 0x40;
        assert!(fingerprint(&m, &p)
            .unwrap_err()
            .to_string()
            .contains("copies of token_embd.weight hold different values"));
    }
}

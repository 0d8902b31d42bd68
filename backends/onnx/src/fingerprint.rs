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
    let need = |k: &str| {
        meta_value(m, k).ok_or_else(|| invalid(path, format!("no {k} metadata: not written by edgebench export onnx")))
    };
    let graph = serde_json::from_str(need(meta::FACTS)?).map_err(|e| invalid(path, format!("{}: {e}", meta::FACTS)))?;
    Ok(FileFacts {
        graph,
        carried: need(meta::CARRIED)?.into(),
        converted: meta_value(m, meta::CONVERTED).map(|c| c.lines().map(String::from).collect()).unwrap_or_default(),
        source_sha256: need(meta::SOURCE_SHA256)?.into(),
        exporter: need(meta::EXPORTER)?.into(),
    })
}

fn raw<'a>(t: &'a TensorProto, ty: DataType, count: usize, path: &Path) -> Result<&'a [u8], OnnxError> {
    let width = if ty == DataType::Float { 4 } else { 1 };
    if t.data_type != ty as i32 || t.raw_data.len() != count * width {
        return Err(invalid(
            path,
            format!("initializer {} is not {count} raw {ty:?} values (type {}, {} bytes)", t.name, t.data_type, t.raw_data.len()),
        ));
    }
    Ok(&t.raw_data)
}

fn f32s(t: &TensorProto, count: usize, path: &Path) -> Result<Vec<f32>, OnnxError> {
    Ok(raw(t, DataType::Float, count, path)?.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// The fingerprint (`wfp1:…`) of the weight values the file's graph runs, decoded from its initializers.
///
/// Every initializer named in the weight map must feed a node (of type `MatMulNBits` with matching `K`/`N` for
/// packed codes); a tensor carried twice (the tied embedding: gather table and output product) must decode to
/// the same bits both times.
pub fn fingerprint(m: &ModelProto, path: &Path) -> Result<String, OnnxError> {
    let g = m.graph.as_ref().ok_or_else(|| invalid(path, "no graph"))?;
    let entries: Vec<WeightEntry> = serde_json::from_str(
        meta_value(m, meta::WEIGHTS).ok_or_else(|| invalid(path, "no edgebench.weights metadata"))?,
    )
    .map_err(|e| invalid(path, format!("{}: {e}", meta::WEIGHTS)))?;
    let inits: HashMap<&str, &TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut consumers: HashMap<&str, Vec<&crate::pb::NodeProto>> = HashMap::new();
    for n in &g.node {
        for i in &n.input {
            consumers.entry(i.as_str()).or_default().push(n);
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
        let v = match &e.repr {
            Repr::Float { init: name } => f32s(init(name)?, count as usize, path)?,
            Repr::Nbits4 { codes, scales, zero_points, mins, n, k } => {
                let (n, k) = (*n, *k);
                if (n * k) as u64 != count {
                    return Err(invalid(path, format!("{}: N={n}, K={k} for shape {:?}", e.tensor, e.dims)));
                }
                let attr = |node: &crate::pb::NodeProto, a: &str| node.attribute.iter().find(|x| x.name == a).map(|x| x.i);
                let fed = consumers.get(codes.as_str()).into_iter().flatten().all(|node| {
                    node.op_type == "MatMulNBits"
                        && node.input.get(1) == Some(codes)
                        && attr(node, "K") == Some(k as i64)
                        && attr(node, "N") == Some(n as i64)
                        && attr(node, "bits") == Some(4)
                        && attr(node, "block_size") == Some(weights::BLOCK as i64)
                });
                if !fed {
                    return Err(invalid(path, format!("{codes} is not the B input of a matching MatMulNBits node")));
                }
                let nb = k / weights::BLOCK;
                let c = raw(init(codes)?, DataType::Uint8, n * nb * 16, path)?;
                let s = f32s(init(scales)?, n * nb, path)?;
                let z = match zero_points {
                    Some(z) => Some(raw(init(z)?, DataType::Uint8, n * nb.div_ceil(2), path)?),
                    None => None,
                };
                let mm = match mins {
                    Some(x) => Some(f32s(init(x)?, n * nb, path)?),
                    None => None,
                };
                weights::decode_nbits4(c, &s, z, mm.as_deref(), n, k)
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

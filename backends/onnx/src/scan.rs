//! How many weight bytes each node of an ONNX file reads, and how many FLOPs per token its weight product costs,
//! found by walking the file's protobuf fields and skipping over tensor data, so that a coverage report on a 300 MB
//! graph neither loads it nor shows up in the peak RAM of the cell that asks.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use crate::{io_err, OnnxError};

/// The weight bytes of a graph: each initializer's size (its serialized tensor record, data included) and, per
/// node name, the initializers it reads.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WeightBytes {
    /// Node name → the initializers among its inputs.
    pub by_node: HashMap<String, Vec<String>>,
    /// Initializer name → its bytes.
    pub sizes: HashMap<String, u64>,
    /// Bytes of every initializer of the graph.
    pub total: u64,
    /// Nodes in the graph.
    pub nodes: usize,
    /// Node name → FLOPs per token of its product with a weight matrix (2·K·N for `MatMul` / `Gemm` with a 2-D
    /// initializer or a `DequantizeLinear` of one, `MatMulNBits` by its `K` and `N`); nodes without one are absent.
    /// Attention's FLOPs grow with the context and read no weights: not counted.
    pub flops: HashMap<String, u64>,
}

impl WeightBytes {
    /// Bytes of the initializers read by any of `nodes`, each initializer counted once (a tied embedding table
    /// feeds two nodes).
    pub fn read_by<'a>(&self, nodes: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut seen = std::collections::HashSet::new();
        nodes
            .into_iter()
            .filter_map(|n| self.by_node.get(n))
            .flatten()
            .filter(|i| seen.insert(i.as_str()))
            .filter_map(|i| self.sizes.get(i))
            .sum()
    }
}

impl WeightBytes {
    /// FLOPs per token of every weight product in the graph.
    pub fn flops_total(&self) -> u64 {
        self.flops.values().sum()
    }

    /// FLOPs per token of the weight products among `nodes`.
    pub fn flops_of<'a>(&self, nodes: impl IntoIterator<Item = &'a str>) -> u64 {
        nodes.into_iter().filter_map(|n| self.flops.get(n)).sum()
    }
}

/// A node as the scan reads it.
#[derive(Default)]
struct ScannedNode {
    name: String,
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Integer attributes (`K`, `N`, `transB`, …).
    ints: HashMap<String, i64>,
}

/// Reads `path` (an ONNX `ModelProto`, external data not followed) and counts its weight bytes per node.
pub fn weight_bytes(path: &Path) -> Result<WeightBytes, OnnxError> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut r = Fields { r: BufReader::with_capacity(1 << 16, f), pos: 0 };
    let bad = |reason: String| OnnxError::Invalid { path: path.to_path_buf(), reason };
    let mut inits: HashMap<String, u64> = HashMap::new();
    let mut dims: HashMap<String, Vec<i64>> = HashMap::new();
    let mut nodes: Vec<ScannedNode> = Vec::new();
    let mut found_graph = false;
    while r.pos < len {
        let (field, wire) = r.key().map_err(|e| bad(format!("reading the model: {e}")))?;
        if field == 7 && wire == 2 {
            found_graph = true;
            let end = r.len_end().map_err(|e| bad(format!("reading the graph: {e}")))?;
            while r.pos < end {
                let (gf, gw) = r.key().map_err(|e| bad(format!("reading the graph: {e}")))?;
                match (gf, gw) {
                    (1, 2) => {
                        let node_end = r.len_end().map_err(|e| bad(format!("reading a node: {e}")))?;
                        nodes.push(r.node(node_end).map_err(|e| bad(format!("reading a node: {e}")))?);
                    }
                    (5, 2) => {
                        let t_end = r.len_end().map_err(|e| bad(format!("reading an initializer: {e}")))?;
                        let start = r.pos;
                        let (name, d) =
                            r.tensor_name(t_end).map_err(|e| bad(format!("reading an initializer: {e}")))?;
                        inits.insert(name.clone(), t_end - start);
                        dims.insert(name, d);
                    }
                    _ => r.skip(gw).map_err(|e| bad(format!("reading the graph: {e}")))?,
                }
            }
        } else {
            r.skip(wire).map_err(|e| bad(format!("reading the model: {e}")))?;
        }
    }
    if !found_graph {
        return Err(bad("no graph in the model".into()));
    }
    let n = nodes.len();
    // A weight a `DequantizeLinear` reads from an initializer (the QDQ variant) has that initializer's shape.
    for node in nodes.iter().filter(|n| n.op == "DequantizeLinear") {
        if let (Some(d), Some(out)) = (node.inputs.first().and_then(|i| dims.get(i)).cloned(), node.outputs.first()) {
            dims.insert(out.clone(), d);
        }
    }
    let mut flops = HashMap::new();
    for node in &nodes {
        if let Some(f) = product_flops(node, &dims) {
            flops.insert(node.name.clone(), f);
        }
    }
    let by_node = nodes
        .into_iter()
        .map(|nd| (nd.name, nd.inputs.into_iter().filter(|i| inits.contains_key(i)).collect()))
        .collect();
    Ok(WeightBytes { by_node, total: inits.values().sum(), sizes: inits, nodes: n, flops })
}

/// FLOPs per token (one row of activations) of a node's product with a weight matrix, if it has one.
fn product_flops(n: &ScannedNode, dims: &HashMap<String, Vec<i64>>) -> Option<u64> {
    let kn = match n.op.as_str() {
        "MatMulNBits" => Some((*n.ints.get("K")?, *n.ints.get("N")?)),
        "MatMul" | "Gemm" => match n.inputs.get(1).and_then(|b| dims.get(b)).map(Vec::as_slice) {
            Some(&[k, m]) => Some((k, m)),
            _ => None,
        },
        _ => None,
    }?;
    u64::try_from(kn.0).ok().zip(u64::try_from(kn.1).ok()).map(|(k, m)| 2 * k * m)
}

/// A protobuf field reader over a seekable stream, tracking its offset.
struct Fields<R> {
    r: R,
    pos: u64,
}

impl<R: Read + Seek> Fields<R> {
    fn byte(&mut self) -> std::io::Result<u8> {
        let mut b = [0u8];
        self.r.read_exact(&mut b)?;
        self.pos += 1;
        Ok(b[0])
    }

    fn varint(&mut self) -> std::io::Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "varint longer than 10 bytes"))
    }

    fn key(&mut self) -> std::io::Result<(u64, u8)> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    /// Reads a length prefix; returns the offset where that field ends.
    fn len_end(&mut self) -> std::io::Result<u64> {
        let n = self.varint()?;
        Ok(self.pos + n)
    }

    fn seek_to(&mut self, to: u64) -> std::io::Result<()> {
        self.r.seek_relative((to - self.pos) as i64)?;
        self.pos = to;
        Ok(())
    }

    fn skip(&mut self, wire: u8) -> std::io::Result<()> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.seek_to(self.pos + 8),
            2 => {
                let end = self.len_end()?;
                self.seek_to(end)
            }
            5 => self.seek_to(self.pos + 4),
            w => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unknown wire type {w}"))),
        }
    }

    fn string(&mut self) -> std::io::Result<String> {
        let end = self.len_end()?;
        let mut b = vec![0u8; (end - self.pos) as usize];
        self.r.read_exact(&mut b)?;
        self.pos = end;
        String::from_utf8(b).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "a name is not UTF-8"))
    }

    /// A `NodeProto` up to `end`: its inputs (field 1), name (3), op type (4) and integer attributes (5).
    fn node(&mut self, end: u64) -> std::io::Result<ScannedNode> {
        let mut n = ScannedNode::default();
        while self.pos < end {
            match self.key()? {
                (1, 2) => n.inputs.push(self.string()?),
                (2, 2) => n.outputs.push(self.string()?),
                (3, 2) => n.name = self.string()?,
                (4, 2) => n.op = self.string()?,
                (5, 2) => {
                    let a_end = self.len_end()?;
                    let (mut key, mut int) = (String::new(), None);
                    while self.pos < a_end {
                        match self.key()? {
                            (1, 2) => key = self.string()?,
                            (3, 0) => int = Some(self.varint()? as i64),
                            (_, w) => self.skip(w)?,
                        }
                    }
                    if let Some(v) = int {
                        n.ints.insert(key, v);
                    }
                }
                (_, w) => self.skip(w)?,
            }
        }
        Ok(n)
    }

    /// A `TensorProto` up to `end`: its name (field 8) and dims (field 1, packed or not), the data skipped.
    fn tensor_name(&mut self, end: u64) -> std::io::Result<(String, Vec<i64>)> {
        let (mut name, mut dims) = (String::new(), Vec::new());
        while self.pos < end {
            match self.key()? {
                (8, 2) => name = self.string()?,
                (1, 0) => dims.push(self.varint()? as i64),
                (1, 2) => {
                    let d_end = self.len_end()?;
                    while self.pos < d_end {
                        dims.push(self.varint()? as i64);
                    }
                }
                (_, w) => self.skip(w)?,
            }
        }
        Ok((name, dims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Builder;
    use prost::Message;

    #[test]
    fn counts_each_nodes_initializer_bytes_without_loading_the_data() {
        let mut b = Builder::default();
        let w = b.f32s("w", &[64, 32], &vec![0.5; 64 * 32]);
        let s = b.f32s("s", &[32], &[1.0; 32]);
        let x = b.input("x", crate::pb::tensor_proto::DataType::Float, &[crate::proto::Dim::Fixed(64)]);
        let y = b.op("MatMul", &[&x, &w], vec![]);
        let z = b.op("Mul", &[&y, &s], vec![]);
        let r = b.op("Relu", &[&z], vec![]);
        b.op("MatMul", &[&r, &w], vec![]);
        let graph =
            crate::pb::GraphProto { node: b.nodes, initializer: b.inits, input: b.inputs, ..Default::default() };
        let model = crate::pb::ModelProto { ir_version: 8, graph: Some(graph), ..Default::default() };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let got = weight_bytes(&path).unwrap();
        let size = |n: &str| model.graph.as_ref().unwrap().initializer.iter().find(|t| t.name == n).unwrap();
        let (wb, sb) = (size("w").encoded_len() as u64, size("s").encoded_len() as u64);
        assert!(wb > 64 * 32 * 4 && sb > 32 * 4, "{wb} {sb}");
        assert_eq!(got.total, wb + sb);
        assert_eq!(got.nodes, 4);
        assert_eq!(got.read_by(["MatMul_1"]), wb);
        assert_eq!(got.read_by(["Mul_2"]), sb);
        assert_eq!(got.read_by(["Relu_3", "nonesuch"]), 0);
        assert_eq!(got.read_by(["MatMul_1", "MatMul_4"]), wb, "a shared initializer counts once");
        assert_eq!(got.read_by(["MatMul_4", "Mul_2"]), wb + sb);
        // FLOPs per token: each MatMul with the 64×32 weight is 2·64·32; the Mul and Relu read no weight matrix.
        assert_eq!(got.flops_total(), 2 * 2 * 64 * 32);
        assert_eq!(got.flops_of(["MatMul_1", "Mul_2", "Relu_3"]), 2 * 64 * 32);

        std::fs::write(&path, &model.encode_to_vec()[..100]).unwrap();
        let e = weight_bytes(&path).unwrap_err().to_string();
        assert!(e.contains("m.onnx"), "{e}");
    }
}

//! `edgebench backends` for an accelerator's library: which of its devices are present here, each asked the way a
//! cell would (a session on a two-node graph with the CPU fallback disabled), and the provider's own reason when one
//! is absent. One library per process: the CLI runs this in a child per library.

use edgebench_core::DeviceRequest;
use edgebench_onnx::pb::{
    tensor_proto::DataType, tensor_shape_proto::dimension::Value as Dim, tensor_shape_proto::Dimension, type_proto,
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

use crate::{library, OrtBackend};

/// The devices an accelerator kind (`openvino`, `qnn`) names, in the order they are probed.
pub fn targets(kind: &str) -> &'static [&'static str] {
    edgebench_core::DeviceRequest::named_targets(kind)
}

/// `x[1,8] · W[8,8] + b`, every dimension fixed, as ONNX bytes.
pub fn tiny_model() -> Vec<u8> {
    let vi = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: [1, 8].map(|d| Dimension { value: Some(Dim::DimValue(d)), ..Default::default() }).to_vec(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let init = |name: &str, dims: Vec<i64>, n: usize| TensorProto {
        name: name.into(),
        dims,
        data_type: DataType::Float as i32,
        raw_data: (0..n).flat_map(|i| (i as f32 / n as f32).to_le_bytes()).collect(),
        ..Default::default()
    };
    let node = |op: &str, i: [&str; 2], o: &str| NodeProto {
        name: o.into(),
        op_type: op.into(),
        input: i.map(String::from).to_vec(),
        output: vec![o.into()],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            name: "probe".into(),
            node: vec![node("MatMul", ["x", "w"], "m"), node("Add", ["m", "b"], "y")],
            initializer: vec![init("w", vec![8, 8], 64), init("b", vec![8], 8)],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

impl OrtBackend {
    /// One line per device of the accelerator `kind` (`openvino`, `qnn`): the library that serves it, then each
    /// device present, or absent with the reason.
    pub fn probe(&self, kind: &str) -> Vec<String> {
        let dev = |t: &str| DeviceRequest { kind: kind.into(), index: 0, target: Some(t.into()) };
        let Some(first) = targets(kind).first() else { return vec![format!("{kind}: not an accelerator kind")] };
        let lib = match library::init(&self.library, None, &dev(first)) {
            Ok(l) => l,
            Err(e) => return vec![format!("{kind}: no library: {e}")],
        };
        let mut lines = vec![format!("{kind}: onnxruntime {} ({})", lib.version, lib.source)];
        if kind == "qnn" {
            match library::qnn_plugin(&self.library, None, lib) {
                Ok((path, origin)) => lines.push(format!("{kind}: provider plugin {} ({origin})", path.display())),
                Err(e) => {
                    lines.push(format!("{kind}: no provider: {e}"));
                    return lines;
                }
            }
        }
        let model = tiny_model();
        for t in targets(kind) {
            let device = dev(t);
            let placement = library::Placement {
                device: &device,
                threads: 1,
                allow_cpu_fallback: false,
                openvino_precision: None,
                openvino_cache: None,
                qnn_htp: Some((true, crate::QNN_SOC_MODEL, crate::QNN_HTP_ARCH)),
            };
            let mark = library::log_mark();
            let outcome = library::session_builder(lib, false)
                .map_err(|e| e.to_string())
                .and_then(|b| library::register(b, lib, &placement).map_err(|e| e.to_string()))
                .and_then(|mut b| b.commit_from_memory(&model).map_err(|e| e.to_string()));
            let emulated = kind == "qnn" && std::env::consts::ARCH == "x86_64";
            lines.push(match outcome {
                Ok(_) if emulated => format!("{device}: present (emulated: QNN's x86-64 backend, not the chip)"),
                Ok(_) => format!("{device}: present"),
                Err(e) => {
                    // The provider's own reason, where it logged one, before ONNX Runtime's consequence of it.
                    let logged: Vec<String> =
                        library::errors_since(mark).into_iter().filter(|m| !m.contains("fallback to CPU EP")).collect();
                    format!("{device}: absent: {}", if logged.is_empty() { e } else { logged.join(" | ") })
                }
            });
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_probe_graph_decodes_with_fixed_shapes() {
        use prost::Message;
        let m = edgebench_onnx::pb::ModelProto::decode(&super::tiny_model()[..]).unwrap();
        let g = m.graph.unwrap();
        assert_eq!(g.node.len(), 2);
        assert_eq!(g.initializer[0].raw_data.len(), 64 * 4);
        assert_eq!(super::targets("openvino"), ["CPU", "GPU", "NPU"]);
        assert!(super::targets("cpu").is_empty());
    }
}

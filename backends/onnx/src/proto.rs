//! A small builder over the ONNX protobuf types (tract-onnx's prost structs): nodes with generated output names,
//! initializers, attributes, typed inputs and outputs.

use crate::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, AttributeProto,
    NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// One dimension of a graph input or output: fixed, or named (a `dim_param` such as `seq` or `past+seq`).
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic size.
    Named(&'static str),
}

/// A graph under construction.
#[derive(Default)]
pub struct Builder {
    pub nodes: Vec<NodeProto>,
    pub inits: Vec<TensorProto>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    counter: usize,
}

pub fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: v, ..Default::default() }
}

pub fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f: v, ..Default::default() }
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: v.to_vec(), ..Default::default() }
}

fn value_info(name: &str, ty: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| crate::pb::tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(v) => dimension::Value::DimValue(*v),
                Dim::Named(s) => dimension::Value::DimParam((*s).into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: ty as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Builder {
    /// A node of the default domain with one output; returns the output's name.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.op_in("", op, inputs, attrs, 1).pop().expect("one output")
    }

    /// A node of `domain` with `n_out` outputs.
    pub fn op_in(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        n_out: usize,
    ) -> Vec<String> {
        self.counter += 1;
        let name = format!("{op}_{}", self.counter);
        let outputs: Vec<String> = (0..n_out).map(|i| format!("{name}:{i}")).collect();
        self.nodes.push(NodeProto {
            name,
            op_type: op.into(),
            domain: domain.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.clone(),
            attribute: attrs,
            ..Default::default()
        });
        outputs
    }

    /// A node of the default domain whose one output gets a fixed name (graph outputs).
    pub fn op_to(&mut self, out: &str, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.op(op, inputs, attrs);
        self.nodes.last_mut().expect("a node").output[0] = out.into();
        out.into()
    }

    fn init(&mut self, name: &str, ty: DataType, dims: &[i64], raw: Vec<u8>) -> String {
        self.inits.push(TensorProto {
            name: name.into(),
            data_type: ty as i32,
            dims: dims.to_vec(),
            raw_data: raw,
            ..Default::default()
        });
        name.into()
    }

    /// An f32 initializer.
    pub fn f32s(&mut self, name: &str, dims: &[i64], v: &[f32]) -> String {
        self.init(name, DataType::Float, dims, v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    /// A u8 initializer.
    pub fn u8s(&mut self, name: &str, dims: &[i64], v: Vec<u8>) -> String {
        self.init(name, DataType::Uint8, dims, v)
    }

    /// An int64 initializer with a generated name (shapes, axes, indices).
    pub fn i64s(&mut self, v: &[i64]) -> String {
        self.counter += 1;
        let name = format!("const_{}", self.counter);
        self.init(&name, DataType::Int64, &[v.len() as i64], v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    /// A scalar f32 constant with a generated name.
    pub fn scalar(&mut self, v: f32) -> String {
        self.counter += 1;
        let name = format!("const_{}", self.counter);
        self.init(&name, DataType::Float, &[], v.to_le_bytes().to_vec())
    }

    /// A graph input.
    pub fn input(&mut self, name: &str, ty: DataType, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, ty, dims));
        name.into()
    }

    /// A graph output (an existing value).
    pub fn output(&mut self, name: &str, ty: DataType, dims: &[Dim]) {
        self.outputs.push(value_info(name, ty, dims));
    }
}

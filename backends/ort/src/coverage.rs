//! What share of a graph an accelerator's execution provider took: ONNX Runtime's own record of which provider runs
//! each node (`Session_GetEpGraphAssignmentInfo`, C API 24, with `session.record_ep_graph_assignment_info`), weighed
//! by the weight bytes each node reads (`edgebench_onnx::scan`).

use std::collections::BTreeMap;
use std::ffi::{c_char, CStr};

use edgebench_core::ProviderCoverage;
use edgebench_onnx::scan::WeightBytes;
use ort::AsPointer;

/// One node as ONNX Runtime assigned it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's name in the graph ONNX Runtime partitioned (the exporter's names, or ones its optimizer made).
    pub name: String,
    /// Operator domain (empty for the default ONNX domain).
    pub domain: String,
    /// Operator type.
    pub op: String,
}

/// One subgraph ONNX Runtime gave a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Subgraph {
    /// The provider's name.
    pub provider: String,
    /// Its nodes.
    pub nodes: Vec<Node>,
}

fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: ONNX Runtime returns NUL-terminated strings owned by the session, alive while we copy them.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn check(status: ort::sys::OrtStatusPtr) -> Result<(), String> {
    if status.0.is_null() {
        return Ok(());
    }
    let api = ort::api();
    // SAFETY: a non-null status from ONNX Runtime; its message is read, then the status released once.
    let m = unsafe { text((api.GetErrorMessage)(status.0)) };
    unsafe { (api.ReleaseStatus)(status.0) };
    Err(m)
}

/// The subgraphs of `session` by provider, in ONNX Runtime's order. The session must have been created with
/// `session.record_ep_graph_assignment_info=1`.
pub fn assignment(session: &ort::session::Session) -> Result<Vec<Subgraph>, String> {
    let api = ort::api();
    let mut subgraphs: *const *const ort::sys::OrtEpAssignedSubgraph = std::ptr::null();
    let mut n = 0usize;
    // SAFETY: the session pointer is valid for the call; ONNX Runtime owns the arrays it returns, which stay valid
    // while the session lives (we copy everything out before returning).
    unsafe {
        check((api.Session_GetEpGraphAssignmentInfo)(session.ptr(), &mut subgraphs, &mut n))?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let sg = *subgraphs.add(i);
            let mut ep: *const c_char = std::ptr::null();
            check((api.EpAssignedSubgraph_GetEpName)(sg, &mut ep))?;
            let mut nodes: *const *const ort::sys::OrtEpAssignedNode = std::ptr::null();
            let mut m = 0usize;
            check((api.EpAssignedSubgraph_GetNodes)(sg, &mut nodes, &mut m))?;
            let mut list = Vec::with_capacity(m);
            for j in 0..m {
                let node = *nodes.add(j);
                let (mut name, mut domain, mut op): (*const c_char, *const c_char, *const c_char) =
                    (std::ptr::null(), std::ptr::null(), std::ptr::null());
                check((api.EpAssignedNode_GetName)(node, &mut name))?;
                check((api.EpAssignedNode_GetDomain)(node, &mut domain))?;
                check((api.EpAssignedNode_GetOperatorType)(node, &mut op))?;
                list.push(Node { name: text(name), domain: text(domain), op: text(op) });
            }
            out.push(Subgraph { provider: text(ep), nodes: list });
        }
        Ok(out)
    }
}

/// The coverage of `provider` (running `device`) in `subgraphs`, weighed by `weights`.
pub fn summarize(subgraphs: &[Subgraph], provider: &str, device: &str, weights: &WeightBytes) -> ProviderCoverage {
    let mut c = ProviderCoverage {
        provider: provider.into(),
        device: device.into(),
        weight_bytes_total: weights.total,
        flops_per_token_total: weights.flops_total(),
        nodes_in_file: weights.nodes,
        ..Default::default()
    };
    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    let mut taken = Vec::new();
    for sg in subgraphs {
        let on_device = sg.provider == provider;
        c.partitions += usize::from(on_device);
        for n in &sg.nodes {
            c.nodes += 1;
            if on_device {
                c.nodes_on_device += 1;
                taken.push(n.name.as_str());
            } else {
                let op = if n.domain.is_empty() { n.op.clone() } else { format!("{}.{}", n.domain, n.op) };
                *rejected.entry(format!("{op} (to {})", sg.provider)).or_default() += 1;
            }
        }
    }
    c.flops_per_token_on_device = weights.flops_of(taken.iter().copied());
    c.weight_bytes_on_device = weights.read_by(taken);
    c.rejected = rejected.into_iter().collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, domain: &str, op: &str) -> Node {
        Node { name: name.into(), domain: domain.into(), op: op.into() }
    }

    #[test]
    fn counts_nodes_partitions_bytes_and_rejected_operators() {
        let sgs = vec![
            Subgraph { provider: "OpenVINOExecutionProvider".into(), nodes: vec![node("MatMul_1", "", "MatMul")] },
            Subgraph {
                provider: "CPUExecutionProvider".into(),
                nodes: vec![
                    node("GroupQueryAttention_2", "com.microsoft", "GroupQueryAttention"),
                    node("GroupQueryAttention_5", "com.microsoft", "GroupQueryAttention"),
                    node("Reshape_3", "", "Reshape"),
                ],
            },
            Subgraph { provider: "OpenVINOExecutionProvider".into(), nodes: vec![node("MatMul_4", "", "MatMul")] },
        ];
        let weights = WeightBytes {
            by_node: [("MatMul_1", "w1"), ("MatMul_4", "w4"), ("GroupQueryAttention_2", "g")]
                .map(|(n, i)| (n.to_string(), vec![i.to_string()]))
                .into(),
            sizes: [("w1", 600), ("w4", 300), ("g", 100)].map(|(i, b)| (i.to_string(), b)).into(),
            total: 1000,
            nodes: 5,
            flops: [("MatMul_1", 3000), ("MatMul_4", 1000)].map(|(n, f)| (n.to_string(), f)).into(),
        };
        let c = summarize(&sgs, "OpenVINOExecutionProvider", "openvino:CPU", &weights);
        assert_eq!((c.nodes, c.nodes_on_device, c.partitions), (5, 2, 2));
        assert_eq!((c.weight_bytes_on_device, c.weight_bytes_total), (900, 1000));
        assert_eq!((c.flops_per_token_on_device, c.flops_per_token_total), (4000, 4000));
        assert_eq!(
            c.rejected,
            vec![
                ("Reshape (to CPUExecutionProvider)".to_string(), 1),
                ("com.microsoft.GroupQueryAttention (to CPUExecutionProvider)".to_string(), 2)
            ]
        );
        assert!(!c.complete());
        let s = c.summary();
        assert!(s.contains("2 of 5 nodes (40.0%)") && s.contains("in 2 partitions") && s.contains("90.0%"), "{s}");
        assert!(s.contains("2 com.microsoft.GroupQueryAttention"), "{s}");
    }
}

//! How much of a model's graph an accelerator's toolchain took: the report NPU users ask for first.

use serde::{Deserialize, Serialize};

/// Which share of a graph one execution provider (an accelerator's toolchain) runs, as the runtime partitioned it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderCoverage {
    /// The provider, by the runtime's name (e.g. `OpenVINOExecutionProvider`).
    pub provider: String,
    /// The device it ran (e.g. `openvino:CPU`).
    pub device: String,
    /// Nodes the runtime partitioned (after its basic graph rewrites, before the CPU provider's fusions).
    pub nodes: usize,
    /// Of those, nodes the provider took.
    pub nodes_on_device: usize,
    /// Nodes in the file as written.
    pub nodes_in_file: usize,
    /// Subgraphs the provider compiled (each a switch between it and the CPU when it is not the whole graph).
    pub partitions: usize,
    /// Bytes of the file's weights (initializers).
    pub weight_bytes_total: u64,
    /// Of those, bytes read by nodes the provider took.
    pub weight_bytes_on_device: u64,
    /// FLOPs per token of the graph's weight products (2·K·N per `MatMul` / `Gemm` / `MatMulNBits` with a weight
    /// matrix; attention, whose FLOPs grow with the context, is not counted). 0 in files from before it was.
    #[serde(default)]
    pub flops_per_token_total: u64,
    /// Of those, the FLOPs of nodes the provider took.
    #[serde(default)]
    pub flops_per_token_on_device: u64,
    /// Operators left to another provider, `domain.op (to provider)`, with their counts. The runtime records that
    /// the provider did not claim them, not why.
    pub rejected: Vec<(String, usize)>,
}

impl ProviderCoverage {
    /// Whether the provider took every node.
    pub fn complete(&self) -> bool {
        self.nodes > 0 && self.nodes_on_device == self.nodes
    }

    /// Share of nodes on the device, 0–1.
    pub fn node_share(&self) -> f64 {
        if self.nodes == 0 {
            0.0
        } else {
            self.nodes_on_device as f64 / self.nodes as f64
        }
    }

    /// Share of weight bytes on the device, 0–1.
    pub fn weight_share(&self) -> f64 {
        if self.weight_bytes_total == 0 {
            0.0
        } else {
            self.weight_bytes_on_device as f64 / self.weight_bytes_total as f64
        }
    }

    /// Share of the weight products' FLOPs per token on the device, 0–1.
    pub fn flops_share(&self) -> f64 {
        if self.flops_per_token_total == 0 {
            0.0
        } else {
            self.flops_per_token_on_device as f64 / self.flops_per_token_total as f64
        }
    }

    /// One line: nodes, partitions, weight bytes, FLOPs, rejected operators.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} took {} of {} nodes ({:.1}%) in {} partition{}, reading {:.1}% of the weight bytes ({} of {} MB)",
            self.provider,
            self.nodes_on_device,
            self.nodes,
            100.0 * self.node_share(),
            self.partitions,
            if self.partitions == 1 { "" } else { "s" },
            100.0 * self.weight_share(),
            self.weight_bytes_on_device / 1_000_000,
            self.weight_bytes_total / 1_000_000,
        );
        if self.flops_per_token_total > 0 {
            s.push_str(&format!(
                " and {:.1}% of the weight products' FLOPs per token ({:.1} of {:.1} MFLOP)",
                100.0 * self.flops_share(),
                self.flops_per_token_on_device as f64 / 1e6,
                self.flops_per_token_total as f64 / 1e6
            ));
        }
        if !self.rejected.is_empty() {
            let list: Vec<String> = self.rejected.iter().map(|(op, n)| format!("{n} {op}")).collect();
            s.push_str(&format!(
                "; not taken (the provider did not claim them; the runtime records no reason): {}",
                list.join(", ")
            ));
        }
        s
    }
}

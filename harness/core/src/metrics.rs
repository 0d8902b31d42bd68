//! Names, units and directions of the metrics edgebench reports, in one table.

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Larger values are better (throughput).
    Higher,
    /// Smaller values are better (latency, memory).
    Lower,
}

/// A metric's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// Key in results files.
    pub key: &'static str,
    /// Unit of its samples.
    pub unit: &'static str,
    /// Direction of improvement.
    pub better: Better,
    /// One-line definition.
    pub about: &'static str,
}

/// Model load time, one sample per load.
pub const LOAD_MS: MetricDef =
    MetricDef { key: "load_ms", unit: "ms", better: Better::Lower, about: "backend load call, file to ready weights" };
/// Time to first token.
pub const TTFT_MS: MetricDef = MetricDef {
    key: "ttft_ms",
    unit: "ms",
    better: Better::Lower,
    about: "prefill of the whole prompt plus sampling of the first token, per repetition",
};
/// Prompt processing throughput.
pub const PREFILL_TPS: MetricDef = MetricDef {
    key: "prefill_tps",
    unit: "tok/s",
    better: Better::Higher,
    about: "prompt tokens / prefill forward time, per repetition (llama-bench ppN)",
};
/// Generation throughput.
pub const DECODE_TPS: MetricDef = MetricDef {
    key: "decode_tps",
    unit: "tok/s",
    better: Better::Higher,
    about: "single-token decode steps / their total time (forward + sampling), per repetition (llama-bench tgN)",
};
/// Inter-token latency.
pub const ITL_MS: MetricDef = MetricDef {
    key: "itl_ms",
    unit: "ms",
    better: Better::Lower,
    about: "time of each decode step (forward + sampling), every step of every repetition",
};
/// Peak resident memory of the cell's child process.
pub const PEAK_RSS_MIB: MetricDef = MetricDef {
    key: "peak_rss_mib",
    unit: "MiB",
    better: Better::Lower,
    about: "VmHWM of the child process at exit: anonymous memory plus touched file-backed pages",
};

/// Anonymous resident memory at the end of the cell, model still loaded (heap: copied or converted weights, KV cache).
pub const RSS_ANON_MIB: MetricDef = MetricDef {
    key: "rss_anon_mib",
    unit: "MiB",
    better: Better::Lower,
    about: "RssAnon of the child with the model loaded, after the last repetition",
};
/// File-backed resident memory at the end of the cell (memory-mapped weights a backend touched).
pub const RSS_FILE_MIB: MetricDef = MetricDef {
    key: "rss_file_mib",
    unit: "MiB",
    better: Better::Lower,
    about: "RssFile of the child with the model loaded, after the last repetition (mmapped weights count here)",
};

/// Every metric, in report order.
pub const ALL: [MetricDef; 8] =
    [PREFILL_TPS, DECODE_TPS, TTFT_MS, ITL_MS, LOAD_MS, PEAK_RSS_MIB, RSS_ANON_MIB, RSS_FILE_MIB];

/// The definition for a key.
pub fn lookup(key: &str) -> Option<MetricDef> {
    ALL.into_iter().find(|m| m.key == key)
}

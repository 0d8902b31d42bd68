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
/// Peak GPU memory of the cell (`cuda:N` devices), sampled through NVML.
pub const PEAK_DEVICE_MIB: MetricDef = MetricDef {
    key: "peak_device_mib",
    unit: "MiB",
    better: Better::Lower,
    about: "largest NVML figure for the cell's process on its GPU, sampled over its loads and repetitions (else the device's used memory above its \
            value before the load; the cell's device_memory says which)",
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

/// Gross energy per prompt token (primary meters), per repetition.
pub const PREFILL_J_PER_TOKEN: MetricDef = MetricDef {
    key: "prefill_j_per_token",
    unit: "J/token",
    better: Better::Lower,
    about: "joules the primary meters counted during prefill / prompt tokens, idle power included",
};
/// Net energy per prompt token: the idle baseline's power × prefill time subtracted.
pub const PREFILL_NET_J_PER_TOKEN: MetricDef = MetricDef {
    key: "prefill_net_j_per_token",
    unit: "J/token",
    better: Better::Lower,
    about: "prefill joules minus idle-baseline watts × prefill seconds, / prompt tokens",
};
/// Gross energy per generated token (primary meters), per repetition.
pub const DECODE_J_PER_TOKEN: MetricDef = MetricDef {
    key: "decode_j_per_token",
    unit: "J/token",
    better: Better::Lower,
    about: "joules the primary meters counted during the decode steps / decode steps, idle power included",
};
/// Net energy per generated token.
pub const DECODE_NET_J_PER_TOKEN: MetricDef = MetricDef {
    key: "decode_net_j_per_token",
    unit: "J/token",
    better: Better::Lower,
    about: "decode joules minus idle-baseline watts × decode seconds, / decode steps",
};
/// Average power while decoding.
pub const DECODE_POWER_W: MetricDef = MetricDef {
    key: "decode_power_w",
    unit: "W",
    better: Better::Lower,
    about: "gross decode joules / decode seconds of the primary meters, per repetition",
};
/// Idle power before the cell.
pub const IDLE_POWER_W: MetricDef = MetricDef {
    key: "idle_power_w",
    unit: "W",
    better: Better::Lower,
    about: "average power of the primary meters over the idle baseline taken before the model loads",
};

/// Mean KL divergence of the cell's next-token distributions from the reference's (one sample per cell).
pub const KLD_MEAN: MetricDef = MetricDef {
    key: "kld_mean",
    unit: "nats",
    better: Better::Lower,
    about: "mean KL(reference ‖ backend) per scored token over the evaluation set (llama-perplexity's Mean KLD)",
};
/// Share of scored tokens where the backend's most likely token is the reference's.
pub const SAME_TOP1_PCT: MetricDef = MetricDef {
    key: "same_top1_pct",
    unit: "%",
    better: Better::Higher,
    about: "scored tokens whose argmax agrees with the reference's, percent (llama-perplexity's Same top p)",
};
/// Perplexity ratio against the reference.
pub const PPL_RATIO: MetricDef = MetricDef {
    key: "ppl_ratio",
    unit: "ratio",
    better: Better::Lower,
    about: "PPL(backend) / PPL(reference) on the scored tokens (llama-perplexity's Mean PPL(Q)/PPL(base))",
};

/// Every metric, in report order.
pub const ALL: &[MetricDef] = &[
    PREFILL_TPS,
    DECODE_TPS,
    TTFT_MS,
    ITL_MS,
    LOAD_MS,
    PEAK_RSS_MIB,
    PEAK_DEVICE_MIB,
    RSS_ANON_MIB,
    RSS_FILE_MIB,
    PREFILL_J_PER_TOKEN,
    PREFILL_NET_J_PER_TOKEN,
    DECODE_J_PER_TOKEN,
    DECODE_NET_J_PER_TOKEN,
    DECODE_POWER_W,
    IDLE_POWER_W,
    KLD_MEAN,
    SAME_TOP1_PCT,
    PPL_RATIO,
];

/// The definition for a key.
pub fn lookup(key: &str) -> Option<MetricDef> {
    ALL.iter().copied().find(|m| m.key == key)
}

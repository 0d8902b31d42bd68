//! Where a forward pass's time goes, by stage (feature `op-profile`, off by default: without it [`timed!`] is the
//! bare expression and nothing is counted). Each stage's wall time on the calling thread is summed over every
//! forward pass of the process; a matrix product's or the attention's time includes the wait for the pool's other
//! threads, which [`Stage::Wait`] also counts on its own. The `profile` example prints the table per token:
//! `cargo run --release -p edgebench-backend-native --features op-profile --example profile -- 2 tg`.

/// A stage of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Token embedding rows and the rope tables.
    Embed,
    /// Attention norm and the activations' quantization for Q, K, V.
    AttnNorm,
    /// The Q, K, V products.
    Qkv,
    /// Biases, Q/K norms and rope.
    Rope,
    /// Storing K and V in the cache, where it precedes the attention's pool job (a decode step whose threads own
    /// whole KV heads stores inside [`Stage::Attention`]).
    KvStore,
    /// Grouped-query attention over the cache (and the store, see [`Stage::KvStore`]); the KV store stage's time is
    /// inside it.
    Attention,
    /// Quantizing the attention output.
    AttnOutActs,
    /// The attention output product.
    Wo,
    /// FFN norm and the activations' quantization for gate and up.
    FfnNorm,
    /// The gate and up products.
    GateUp,
    /// The gated activation and its quantization.
    Glu,
    /// The down product.
    Down,
    /// Residual additions and post-norms.
    Residual,
    /// Output norm, its quantization, the output projection and soft-capping.
    Head,
    /// The calling thread waiting for the pool's other threads at the end of a job (inside the product and
    /// attention stages' time).
    Wait,
}

impl Stage {
    /// Every stage, in forward-pass order.
    pub const ALL: [Stage; 15] = [
        Stage::Embed,
        Stage::AttnNorm,
        Stage::Qkv,
        Stage::Rope,
        Stage::KvStore,
        Stage::Attention,
        Stage::AttnOutActs,
        Stage::Wo,
        Stage::FfnNorm,
        Stage::GateUp,
        Stage::Glu,
        Stage::Down,
        Stage::Residual,
        Stage::Head,
        Stage::Wait,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Embed => "embedding + rope tables",
            Stage::AttnNorm => "attn norm + quantize",
            Stage::Qkv => "Q/K/V products",
            Stage::Rope => "bias, q/k norm, rope",
            Stage::KvStore => "(attention's: KV store before it)",
            Stage::Attention => "attention",
            Stage::AttnOutActs => "quantize attn output",
            Stage::Wo => "output product (wo)",
            Stage::FfnNorm => "ffn norm + quantize",
            Stage::GateUp => "gate/up products",
            Stage::Glu => "glu + quantize",
            Stage::Down => "down product",
            Stage::Residual => "residual, post-norms",
            Stage::Head => "output head",
            Stage::Wait => "(products' and attention's: waiting for workers)",
        }
    }
}

#[cfg(feature = "op-profile")]
mod counters {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Instant;

    use super::Stage;

    static NANOS: [AtomicU64; Stage::ALL.len()] = [const { AtomicU64::new(0) }; Stage::ALL.len()];

    /// Adds its lifetime to a stage when dropped.
    pub struct Timer(Stage, Instant);

    impl Timer {
        /// Starts timing `stage`.
        pub fn start(stage: Stage) -> Timer {
            Timer(stage, Instant::now())
        }
    }

    impl Drop for Timer {
        fn drop(&mut self) {
            NANOS[self.0 as usize].fetch_add(self.1.elapsed().as_nanos() as u64, Relaxed);
        }
    }

    /// Seconds per stage since the start (or the last [`reset`]).
    pub fn snapshot() -> Vec<(Stage, f64)> {
        Stage::ALL.iter().map(|&s| (s, NANOS[s as usize].load(Relaxed) as f64 * 1e-9)).collect()
    }

    /// Zeroes every stage.
    pub fn reset() {
        NANOS.iter().for_each(|n| n.store(0, Relaxed));
    }
}

#[cfg(feature = "op-profile")]
pub use counters::{reset, snapshot, Timer};

/// A guard that adds its lifetime to `stage` when dropped (feature `op-profile`; otherwise nothing), for stages that
/// are not one expression.
#[cfg(feature = "op-profile")]
pub(crate) fn guard(stage: Stage) -> Timer {
    Timer::start(stage)
}

/// Without the feature `op-profile`: a guard that counts nothing.
#[cfg(not(feature = "op-profile"))]
pub(crate) struct Timer;

#[cfg(not(feature = "op-profile"))]
impl Drop for Timer {
    fn drop(&mut self) {}
}

/// Without the feature `op-profile`: nothing to time.
#[cfg(not(feature = "op-profile"))]
pub(crate) fn guard(_stage: Stage) -> Timer {
    Timer
}

/// `$e`, its wall time added to `$stage` when the feature `op-profile` is on.
macro_rules! timed {
    ($stage:expr, $e:expr) => {{
        #[cfg(feature = "op-profile")]
        let _timer = $crate::profile::Timer::start($stage);
        #[cfg(not(feature = "op-profile"))]
        let _ = $stage;
        $e
    }};
}
pub(crate) use timed;

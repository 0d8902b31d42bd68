//! The `edgebench` binary end to end, one module per concern; one test binary for the crate.

mod accelerators;
mod basics;
mod common;
mod constrained;
mod fleet;
mod gpu_results;
mod leaderboard;
mod model_cache;
mod no_data_loss;
mod strict_gate;

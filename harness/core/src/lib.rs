//! edgebench's vocabulary: the backend contract, model and device descriptions, and the results schema.
//!
//! This crate reads no clock and names no concrete backend; its only IO is the bounded file reader in [`limits`].

mod backend;
pub mod comparison;
mod coverage;
pub mod device_memory;
pub mod drift;
pub mod energy;
mod error;
pub mod limits;
pub mod metrics;
pub mod recommend;
pub mod results;
pub mod sampler;
pub mod text;
pub mod thermal;
pub mod tolerance;
mod typed;

pub use backend::{
    Backend, BackendFacts, DeviceRequest, LoadOptions, LoadedModel, ModelSpec, Prepared, Rows, Session, Support,
    WeightsCheck,
};
pub use coverage::ProviderCoverage;
pub use error::BackendError;
pub use typed::{parse_options, Loaded, NoOptions, Preparation, Request, TypedBackend};

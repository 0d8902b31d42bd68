//! Models: the registry of pinned models and libraries (`suites/models.toml`) and its cache, `--model` arguments
//! resolved to verified files (requantized `ID@TYPE` variants made once and cached), the GGUF tokenizer and the
//! model's chat template.

pub mod registry;
pub mod resolve;
pub mod tokenizer;

pub use resolve::{resolve, ModelError, ResolvedModel};

//! Test support shared by the backends' test suites, never compiled into the shipped binary: the conformance
//! suite every backend runs, tiny generated models, the real default model and llama.cpp's golden output.

pub mod chromium;
pub mod conformance;
pub mod fixtures;

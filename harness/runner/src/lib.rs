//! edgebench's runner: suites become plans of cells; each cell runs in a fresh child process that speaks JSON lines;
//! the parent classifies failures, aggregates samples and writes the results file after every cell.
//! Also home to the pieces the harness owns: tokenizer, sampler, workloads, probes, model registry.

pub mod accuracy;
pub mod child;
pub mod compare;
pub mod conformance;
pub mod device;
pub mod energy;
pub mod estimate;
pub mod probes;
pub mod protocol;
pub mod registry;
pub mod results_io;
pub mod runner;
pub mod sampler;
pub mod suite;
pub mod testkit;
pub mod thermal;
pub mod tokenizer;
pub mod workload;

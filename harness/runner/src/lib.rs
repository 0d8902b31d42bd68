//! edgebench's runner: suites become plans of cells; each cell runs in a fresh child process that speaks JSON lines;
//! the parent classifies failures, aggregates samples and writes the results file after every cell. The harness's
//! timed loop (workloads) lives here too; models, probes and the accuracy reference are crates of their own.

pub mod child;
pub mod estimate;
pub mod interrupt;
pub mod meters;
pub mod outfile;
pub mod protocol;
pub mod results_io;
pub mod run;
pub mod runner;
pub mod suite;
pub mod workload;

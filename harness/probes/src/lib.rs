//! Probes of the machine a run measures: CPU load and this process's memory and CPU time, the device fingerprint,
//! energy meters and thermal sensors. Reads sysfs and procfs; measures nothing about a model.

pub mod cgroup;
pub mod device;
pub mod energy;
pub mod gpu_memory;
pub mod process;
pub mod thermal;

//! Probes of the machine a run measures: CPU load and this process's memory and CPU time, the device fingerprint,
//! energy meters, thermal sensors and the streaming read bandwidth. Reads sysfs and procfs; measures nothing about a
//! model.

pub mod bandwidth;
pub mod cgroup;
pub mod device;
pub mod energy;
pub mod gpu_memory;
pub mod process;
pub mod thermal;

//! Device fleets: `edgebench fleet plan` turns a fleet file (devices, their SSH addresses and what to run on each)
//! into an Ansible inventory and the variables of `ci/fleet/playbook.yml`; Ansible copies edgebench, the models and
//! the suite to each device, runs it under the device's lock and fetches the results; `edgebench fleet collect`
//! checks what came back (results valid, device fingerprints as the fleet file says) and writes one `fleet.json`
//! index that `report` and `gate` read. edgebench generates and collects; Ansible dispatches.

pub mod collect;
pub mod file;
pub mod plan;

pub use collect::{collect, load_index, FleetIndex};
pub use file::{Device, FleetFile};
pub use plan::{plan, Plan};

/// Why a fleet step cannot go on; each names the file or device it is about.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The fleet file cannot be read or parsed.
    #[error("fleet file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A device cannot be planned (no binary for its architecture, a model that does not resolve).
    #[error("device {device}: {message}")]
    Device {
        /// The device's name.
        device: String,
        /// What is missing.
        message: String,
    },
    /// Reading or writing the fleet folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The fleet folder holds no plan, or a broken one.
    #[error("{path}: {message}")]
    Folder {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> FleetError + '_ {
    move |source| FleetError::Io { path: path.display().to_string(), source }
}

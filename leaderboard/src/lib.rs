//! Leaderboards from signed submissions. A leaderboard is a directory (a git repository): `policy.toml` (what is
//! registered), `keys/keys.toml` (accepted public keys, revocable), `submissions/<device>/<run>.json` each beside its
//! signed envelope `<run>.dsse.json`, maintainers' re-runs under `reproductions/`, and `tiers.json` (the tiers last
//! recorded). [`verify::verify`] assigns every submission a trust tier with its reasons; [`site::build`] renders the
//! static site. Nothing here trusts a number it can recompute.

pub mod envelope;
pub mod keys;
pub mod policy;
pub mod reproduce;
pub mod scan;
pub mod site;
pub mod submit;
pub mod tiers;
pub mod verify;

mod checks;

use std::path::{Path, PathBuf};

/// What went wrong with the leaderboard itself or with a command's input (a bad *submission* is never an error: it
/// is a rejected entry with its reasons).
#[derive(Debug, thiserror::Error)]
pub enum LeaderboardError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error or limit.
        message: String,
    },
    /// A file the leaderboard needs is malformed (policy, keys, tiers, a key file).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key or field.
        message: String,
    },
    /// A command's argument is unusable.
    #[error("{0}")]
    Usage(String),
}

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> LeaderboardError + '_ {
    move |e| LeaderboardError::Io { path: path.to_path_buf(), message: e.to_string() }
}

pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> LeaderboardError {
    LeaderboardError::Invalid { path: path.to_path_buf(), message: message.into() }
}

/// Lowercase hex SHA-256 of `bytes` (the registry's, so every SHA-256 edgebench writes is spelled one way).
pub use edgebench_models::registry::sha256_hex;

/// Reads a small text file the leaderboard needs (policy, keys, envelope), at most `limit` bytes.
pub(crate) fn read_small(path: &Path, limit: u64, what: &'static str) -> Result<String, LeaderboardError> {
    edgebench_core::limits::read_text(path, limit, what)
        .map_err(|e| LeaderboardError::Io { path: path.to_path_buf(), message: e.to_string() })
}

/// SHA-256 of the file behind a run's model id (empty when the run does not list it).
pub(crate) fn model_sha<'a>(r: &'a edgebench_core::results::RunResults, model: &str) -> &'a str {
    r.models.get(model).map_or("", |m| m.sha256.as_str())
}

/// Size limit of `policy.toml`, `keys/keys.toml`, `tiers.json` and a key file.
pub const CONFIG_FILE_LIMIT: u64 = 1 << 20;
/// Size limit of an envelope (`*.dsse.json`): a real one is under 2 KiB.
pub const ENVELOPE_LIMIT: u64 = 64 << 10;

//! Errors a backend reports to the harness.

/// What can go wrong inside a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend was disabled at build time.
    #[error("backend {backend:?} is not compiled in: rebuild with --features {feature}")]
    NotCompiled {
        /// Backend name.
        backend: String,
        /// Cargo feature that enables it.
        feature: String,
    },
    /// The backend cannot do what was asked (model architecture, device, option).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Loading the model failed.
    #[error("loading {path}: {message}")]
    Load {
        /// Model file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The context window is full.
    #[error("context full: {needed} positions needed, model context is {limit}")]
    ContextFull {
        /// Positions the call would need.
        needed: usize,
        /// Context length of the model.
        limit: usize,
    },
    /// Any failure while running.
    #[error("{0}")]
    Runtime(String),
}

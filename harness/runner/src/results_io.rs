//! Reading and atomically writing results files.

use std::io::Write;
use std::path::{Path, PathBuf};

use edgebench_core::results::{RunResults, SCHEMA_VERSION};

/// Errors reading or writing results.
#[derive(Debug, thiserror::Error)]
pub enum ResultsIoError {
    /// Filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Not a results file, or a malformed one.
    #[error("{path}: not an edgebench results file: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// Written by an incompatible version.
    #[error("{path}: results schema version {found}, this build reads {SCHEMA_VERSION}")]
    Version {
        /// File.
        path: PathBuf,
        /// Version found.
        found: u64,
    },
}

/// Writes `results` to `path` via a temporary file in the same directory and a rename: readers never see a
/// half-written file, and a crash keeps the previous complete version.
pub fn write_atomic(path: &Path, results: &RunResults) -> Result<(), ResultsIoError> {
    let io = |source| ResultsIoError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    // Named for its file, so the next run on it can remove what a killed write left (`outfile`).
    let mut tmp = tempfile::Builder::new()
        .prefix(&crate::outfile::temp_prefix(path))
        .suffix(crate::outfile::TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(io)?;
    serde_json::to_writer_pretty(&mut tmp, results).map_err(|e| io(e.into()))?;
    tmp.write_all(b"\n").map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Reads and checks a results file (at most [`edgebench_core::limits::RESULTS_FILE`] bytes). Each metric's summary
/// is recomputed from its samples: a stored summary that contradicts them is [`ResultsIoError::Invalid`], naming the
/// cell and metric.
pub fn read(path: &Path) -> Result<RunResults, ResultsIoError> {
    use edgebench_core::limits::{self, ReadError};
    let text = limits::read_text(path, limits::RESULTS_FILE, "results file").map_err(|e| match e {
        ReadError::Io { error, .. } => ResultsIoError::Io { path: path.into(), source: error },
        ReadError::TooLarge { limit_mib, what, .. } => ResultsIoError::Invalid {
            path: path.into(),
            message: format!("larger than the {limit_mib} MiB edgebench reads from a {what}"),
        },
        ReadError::NotText { .. } => ResultsIoError::Invalid { path: path.into(), message: "not UTF-8 text".into() },
    })?;
    parse(path, &text)
}

/// Parses and checks a results file's text as [`read`] does (`path` names it in errors). JSON nested deeper than
/// 128 levels, NaN and infinite numbers are not JSON that parses: [`ResultsIoError::Invalid`].
pub fn parse(path: &Path, text: &str) -> Result<RunResults, ResultsIoError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ResultsIoError::Invalid { path: path.into(), message: e.to_string() })?;
    let found = v.get("schema_version").and_then(|x| x.as_u64()).unwrap_or(0);
    if found != SCHEMA_VERSION as u64 {
        return Err(ResultsIoError::Version { path: path.into(), found });
    }
    let mut results: RunResults =
        serde_json::from_value(v).map_err(|e| ResultsIoError::Invalid { path: path.into(), message: e.to_string() })?;
    edgebench_stats::verify::check_summaries(&mut results)
        .map_err(|errors| ResultsIoError::Invalid { path: path.into(), message: errors.join("; ") })?;
    Ok(results)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use edgebench_core::results::{DeviceFingerprint, Manifest};

    /// A results document with no cells (shared by this crate's tests).
    pub(crate) fn empty() -> RunResults {
        RunResults {
            schema_version: SCHEMA_VERSION,
            run_id: "r".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            manifest: Manifest::default(),
            device: DeviceFingerprint::default(),
            models: Default::default(),
            cells: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_version_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/r.json");
        write_atomic(&p, &empty()).unwrap();
        assert_eq!(read(&p).unwrap(), empty());
        let mut old = empty();
        old.schema_version = 0;
        write_atomic(&p, &old).unwrap();
        assert!(matches!(read(&p), Err(ResultsIoError::Version { found: 0, .. })));
        std::fs::write(&p, "{not json").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("r.json") && e.contains("not an edgebench results file"), "{e}");
        assert!(matches!(read(&dir.path().join("missing.json")), Err(ResultsIoError::Io { .. })));
    }
}

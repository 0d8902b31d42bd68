//! The results file a run writes: an existing one is never replaced unless asked (`--force`) or continued
//! (`--resume`), it is locked while a run writes it, and temp files that a killed write left beside it are removed.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use edgebench_core::results::RunResults;

use crate::results_io::{self, ResultsIoError};

/// What to do when the results file already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse (the default: a run never destroys earlier results).
    Refuse,
    /// Replace it (`--force`).
    Replace,
    /// Continue it, measuring only the cells it lacks (`--resume`).
    Resume,
}

/// Why a results file cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutError {
    /// The file exists and the caller said neither resume nor replace.
    #[error(
        "{path} already holds results ({cells} cell(s) of run {run_id}); pass --resume to measure only the cells it \
         lacks, --force to replace it, or choose another --out"
    )]
    Exists {
        /// The file.
        path: PathBuf,
        /// Cells in it.
        cells: usize,
        /// Its run id.
        run_id: String,
    },
    /// The file exists but is not a results file this build reads; it is never replaced without `--force`.
    #[error("{0}; it is left as it is (pass --force to replace it, or choose another --out)")]
    Unreadable(ResultsIoError),
    /// Another run holds the lock.
    #[error("{path} is being written by another edgebench run{}; wait for it or choose another --out", pid.map(|p| format!(" (PID {p})")).unwrap_or_default())]
    Locked {
        /// The results file.
        path: PathBuf,
        /// The holder's PID, as it wrote it in the lock file.
        pid: Option<u32>,
    },
    /// A filesystem error on the lock file or the directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A results file held for writing: locked until dropped (the lock file beside it, `<file>.lock`, is removed then).
#[derive(Debug)]
pub struct ResultsFile {
    path: PathBuf,
    lock_path: PathBuf,
    lock: File,
}

/// The directory of `path` (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The prefix of the temp files [`results_io::write_atomic`] writes beside `path`.
pub fn temp_prefix(path: &Path) -> String {
    format!(".{}.", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
}

/// The suffix of those temp files.
pub const TEMP_SUFFIX: &str = ".edgebench-tmp";

impl ResultsFile {
    /// Locks `path` for this run and applies `existing`: returns the file and, for [`Existing::Resume`] of an
    /// existing file, the results in it. Removes temp files an earlier killed write left beside it.
    pub fn open(path: &Path, existing: Existing) -> Result<(ResultsFile, Option<RunResults>), OutError> {
        fn io(p: &Path) -> impl FnOnce(std::io::Error) -> OutError + '_ {
            move |source| OutError::Io { path: p.to_path_buf(), source }
        }
        let dir = dir_of(path);
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = loop {
            let f = File::options().create(true).truncate(false).read(true).write(true).open(&lock_path);
            let f = f.map_err(io(&lock_path))?;
            // SAFETY: flock on a descriptor we own; released when it is closed.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let pid = std::fs::read_to_string(&lock_path).ok().and_then(|s| s.trim().parse().ok());
                return Err(OutError::Locked { path: path.to_path_buf(), pid });
            }
            // The holder before us may have removed the lock file after we opened it: lock the file on disk.
            let same = match (f.metadata(), std::fs::metadata(&lock_path)) {
                (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
                _ => false,
            };
            if same {
                break f;
            }
        };
        let mut held = ResultsFile { path: path.to_path_buf(), lock_path, lock };
        held.lock.set_len(0).map_err(io(&held.lock_path))?;
        writeln!(held.lock, "{}", std::process::id()).map_err(io(&held.lock_path))?;
        remove_stale_temps(path);
        if !path.exists() {
            return Ok((held, None));
        }
        match existing {
            Existing::Replace => Ok((held, None)),
            Existing::Refuse => match results_io::read(path) {
                Ok(r) => Err(OutError::Exists { path: path.to_path_buf(), cells: r.cells.len(), run_id: r.run_id }),
                Err(e) => Err(OutError::Unreadable(e)),
            },
            Existing::Resume => match results_io::read(path) {
                Ok(r) => Ok((held, Some(r))),
                Err(e) => Err(OutError::Unreadable(e)),
            },
        }
    }

    /// The results file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `results` atomically (the previous complete version survives any failure).
    pub fn write(&self, results: &RunResults) -> Result<(), ResultsIoError> {
        results_io::write_atomic(&self.path, results)
    }
}

impl Drop for ResultsFile {
    fn drop(&mut self) {
        // Removed while still locked, so no other run can hold a lock on the file being removed (see `open`).
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Removes the temp files of `path` that a killed write left (only called with the lock held, so none is live).
fn remove_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let Ok(entries) = std::fs::read_dir(dir_of(path)) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(TEMP_SUFFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(cells: usize) -> RunResults {
        let mut r = RunResults { run_id: "r1".into(), ..crate::results_io::tests::empty() };
        for i in 0..cells {
            let key = edgebench_core::results::CellKey {
                model: "m".into(),
                backend: "mock".into(),
                device: "cpu".into(),
                threads: 1,
                workload: format!("w{i}"),
            };
            r.cells.push(edgebench_core::results::CellResult::new(key, edgebench_core::results::CellStatus::Ok));
        }
        r
    }

    #[test]
    fn existing_results_are_refused_resumed_or_replaced_and_the_lock_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        let (f, prior) = ResultsFile::open(&p, Existing::Refuse).unwrap();
        assert!(prior.is_none());
        let e = ResultsFile::open(&p, Existing::Replace).unwrap_err();
        assert!(
            matches!(e, OutError::Locked { pid: Some(pid), .. } if pid == std::process::id()),
            "a second open while held: {e}"
        );
        f.write(&results(2)).unwrap();
        drop(f);
        assert!(!dir.path().join("r.json.lock").exists(), "the lock file goes with the lock");
        let e = ResultsFile::open(&p, Existing::Refuse).unwrap_err().to_string();
        assert!(e.contains("2 cell(s) of run r1") && e.contains("--resume") && e.contains("--force"), "{e}");
        let (_, prior) = ResultsFile::open(&p, Existing::Resume).unwrap();
        assert_eq!(prior.unwrap().cells.len(), 2);
        let (_, prior) = ResultsFile::open(&p, Existing::Replace).unwrap();
        assert!(prior.is_none());
        assert_eq!(results_io::read(&p).unwrap().cells.len(), 2, "replaced only when written");
        std::fs::write(&p, "not results").unwrap();
        for mode in [Existing::Refuse, Existing::Resume] {
            let e = ResultsFile::open(&p, mode).unwrap_err().to_string();
            assert!(e.contains("not an edgebench results file") && e.contains("left as it is"), "{e}");
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "not results");
    }

    #[test]
    fn temp_files_of_a_killed_write_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        let stale = dir.path().join(format!("{}abc123{TEMP_SUFFIX}", temp_prefix(&p)));
        let other = dir.path().join(format!(".other.json.abc123{TEMP_SUFFIX}"));
        std::fs::write(&stale, "half").unwrap();
        std::fs::write(&other, "half").unwrap();
        let _held = ResultsFile::open(&p, Existing::Refuse).unwrap();
        assert!(!stale.exists());
        assert!(other.exists(), "another file's temp is that run's business");
    }
}

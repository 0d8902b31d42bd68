//! Reading sysfs attribute files under a root path (so tests can point the probes at a fake tree), with errors
//! that name the file and say how to fix a permission problem.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Why an attribute could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttrError {
    /// The file does not exist.
    #[error("{0} is missing")]
    Missing(PathBuf),
    /// The file exists but this user may not read it.
    #[error("permission denied reading {0}")]
    Permission(PathBuf),
    /// The contents are not what the kernel writes there.
    #[error("{path}: cannot parse {text:?} as {what}")]
    Garbage {
        /// The file.
        path: PathBuf,
        /// Its (trimmed) contents.
        text: String,
        /// What was expected.
        what: &'static str,
    },
    /// Another IO error.
    #[error("reading {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
}

/// `root` joined with an absolute sysfs path (`/sys/class/...`).
pub fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// The trimmed text of an attribute file.
pub fn read_str(path: &Path) -> Result<String, AttrError> {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|e| match e.kind() {
        ErrorKind::NotFound => AttrError::Missing(path.to_path_buf()),
        ErrorKind::PermissionDenied => AttrError::Permission(path.to_path_buf()),
        _ => AttrError::Io { path: path.to_path_buf(), message: e.to_string() },
    })
}

/// An unsigned integer attribute.
pub fn read_u64(path: &Path) -> Result<u64, AttrError> {
    let text = read_str(path)?;
    text.parse().map_err(|_| AttrError::Garbage { path: path.to_path_buf(), text, what: "an unsigned integer" })
}

/// A signed integer attribute (temperatures can be negative).
pub fn read_i64(path: &Path) -> Result<i64, AttrError> {
    let text = read_str(path)?;
    text.parse().map_err(|_| AttrError::Garbage { path: path.to_path_buf(), text, what: "an integer" })
}

/// Entries of `dir` whose file name starts with `prefix`, sorted by name (missing directory: none).
pub fn entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    v.sort_by_key(|p| natural_key(p));
    v
}

/// Sort key that orders `hwmon2` before `hwmon10`.
fn natural_key(p: &Path) -> (String, u64) {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let digits: String = name.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
    let num = digits.chars().rev().collect::<String>().parse().unwrap_or(0);
    (name[..name.len() - digits.len()].to_string(), num)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("energy_uj");
        assert!(matches!(read_u64(&f), Err(AttrError::Missing(p)) if p == f));
        std::fs::write(&f, "12x\n").unwrap();
        let e = read_u64(&f).unwrap_err();
        assert!(e.to_string().contains("energy_uj") && e.to_string().contains("12x"), "{e}");
        std::fs::write(&f, "-40\n").unwrap();
        assert_eq!(read_i64(&f), Ok(-40));
    }

    #[test]
    fn entries_sort_numerically() {
        let d = tempfile::tempdir().unwrap();
        for n in ["hwmon10", "hwmon2", "other"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        let names: Vec<_> = entries(d.path(), "hwmon").iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["hwmon2", "hwmon10"]);
    }
}

//! The model registry (`suites/models.toml`, embedded in the binary) and the model cache: fetch with
//! `pip download`, extract, verify size and SHA-256, store.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The registry shipped with this build.
pub const REGISTRY_TOML: &str = include_str!("../../../suites/models.toml");

/// One registry entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RegistryModel {
    /// Id used on the command line.
    pub id: String,
    /// The model `edgebench run` uses when none is named.
    #[serde(default)]
    pub default: bool,
    /// pip requirement that ships the file, pinned (`name==version`).
    pub package: String,
    /// Path of the file inside the wheel.
    pub file: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Licence of the weights.
    pub license: String,
    /// One line about the model.
    pub about: String,
    /// For a library: the `<os>-<arch>` its pinned file is built for.
    #[serde(default)]
    pub platform: Option<String>,
}

#[derive(Deserialize)]
struct RegistryFile {
    model: Vec<RegistryModel>,
    #[serde(default)]
    library: Vec<RegistryModel>,
}

/// Errors of the registry and cache.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry text is malformed.
    #[error("model registry: {0}")]
    Registry(String),
    /// No such id.
    #[error("unknown model id {id:?}; known: {known}")]
    UnknownModel {
        /// Requested id.
        id: String,
        /// Ids in the registry.
        known: String,
    },
    /// Python or pip is missing.
    #[error("cannot run {python:?} -m pip ({source}): install Python 3 with pip, or set EDGEBENCH_PYTHON")]
    NoPip {
        /// Interpreter tried.
        python: String,
        /// OS error.
        source: std::io::Error,
    },
    /// pip ran and failed.
    #[error("pip download {package} failed (exit {code:?}):\n{stderr}")]
    PipFailed {
        /// Requirement.
        package: String,
        /// Exit code.
        code: Option<i32>,
        /// Last lines of pip's stderr.
        stderr: String,
    },
    /// The wheel lacks the file.
    #[error("{wheel}: no member {member:?} (extracting it failed: {detail})")]
    NotInWheel {
        /// Wheel path.
        wheel: PathBuf,
        /// Member path.
        member: String,
        /// What the extractor said.
        detail: String,
    },
    /// Size differs from the pin: a truncated or different download.
    #[error("{path}: {got} bytes, expected {expected} (truncated or wrong download)")]
    WrongSize {
        /// File.
        path: PathBuf,
        /// Actual size.
        got: u64,
        /// Pinned size.
        expected: u64,
    },
    /// Hash differs from the pin.
    #[error("{path}: SHA-256 {got} does not match the pinned {expected}")]
    HashMismatch {
        /// File.
        path: PathBuf,
        /// Actual hash.
        got: String,
        /// Pinned hash.
        expected: String,
    },
    /// Filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io { path: path.to_path_buf(), source }
}

/// All registry entries.
pub fn registry() -> Result<Vec<RegistryModel>, RegistryError> {
    toml::from_str::<RegistryFile>(REGISTRY_TOML).map(|r| r.model).map_err(|e| RegistryError::Registry(e.to_string()))
}

/// The shared library `id` (e.g. `onnxruntime`) pinned for this platform.
pub fn library(id: &str) -> Result<RegistryModel, RegistryError> {
    let all = toml::from_str::<RegistryFile>(REGISTRY_TOML)
        .map(|r| r.library)
        .map_err(|e| RegistryError::Registry(e.to_string()))?;
    let here = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let entries: Vec<&RegistryModel> = all.iter().filter(|l| l.id == id).collect();
    if entries.is_empty() {
        return Err(RegistryError::UnknownModel {
            id: id.into(),
            known: all.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", "),
        });
    }
    entries.iter().find(|l| l.platform.as_deref() == Some(here.as_str())).map(|l| (*l).clone()).ok_or_else(|| {
        let pinned: Vec<&str> = entries.iter().filter_map(|l| l.platform.as_deref()).collect();
        RegistryError::Registry(format!(
            "no {id} library is pinned for {here} (pinned: {}); name one with --backend-opt ort_lib=PATH",
            pinned.join(", ")
        ))
    })
}

/// The entry for `id`, or the default entry when `id` is `None`.
pub fn lookup(id: Option<&str>) -> Result<RegistryModel, RegistryError> {
    let all = registry()?;
    let found = match id {
        Some(id) => all.iter().find(|m| m.id == id),
        None => all.iter().find(|m| m.default),
    };
    found.cloned().ok_or_else(|| RegistryError::UnknownModel {
        id: id.unwrap_or("<default>").into(),
        known: all.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", "),
    })
}

/// The cache root: `$EDGEBENCH_CACHE`, else `<user cache dir>/edgebench`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("EDGEBENCH_CACHE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("edgebench"),
    }
}

/// Where a registry model lives in the cache.
pub fn cached_path(m: &RegistryModel) -> PathBuf {
    cached_path_in(&cache_dir(), m)
}

fn cached_path_in(root: &Path, m: &RegistryModel) -> PathBuf {
    let name = Path::new(&m.file).file_name().map(|n| n.to_owned()).unwrap_or_else(|| m.id.clone().into());
    root.join("models").join(&m.sha256).join(name)
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, RegistryError> {
    edgebench_gguf::fingerprint::sha256_file(path).map_err(io(path))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of bytes in memory, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Checks size then hash against the pin.
pub fn verify(path: &Path, m: &RegistryModel) -> Result<(), RegistryError> {
    let got = std::fs::metadata(path).map_err(io(path))?.len();
    if got != m.bytes {
        return Err(RegistryError::WrongSize { path: path.into(), got, expected: m.bytes });
    }
    let sha = sha256_file(path)?;
    if sha != m.sha256 {
        return Err(RegistryError::HashMismatch { path: path.into(), got: sha, expected: m.sha256.clone() });
    }
    Ok(())
}

/// Cache state of a model: `Some(path)` when cached and verified.
///
/// Verification hashes the whole file; a marker beside it (size and mtime at verification) lets later calls skip
/// that while the file is unchanged. A cache where the marker cannot be written still works, re-hashing each time.
pub fn cached(m: &RegistryModel) -> Option<PathBuf> {
    cached_in(&cache_dir(), m)
}

fn cached_in(root: &Path, m: &RegistryModel) -> Option<PathBuf> {
    let p = cached_path_in(root, m);
    let md = std::fs::metadata(&p).ok()?;
    let stamp = format!("{} {:?}", md.len(), md.modified().ok());
    let marker = p.with_extension("verified");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(stamp.as_str()) {
        return Some(p);
    }
    verify(&p, m).ok()?;
    let _ = std::fs::write(&marker, stamp);
    Some(p)
}

fn python() -> String {
    std::env::var("EDGEBENCH_PYTHON").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "python3".into())
}

fn tail(s: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(s);
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Returns the cached file, fetching it with pip first when needed. `log` receives progress lines.
pub fn ensure(m: &RegistryModel, log: &mut dyn FnMut(&str)) -> Result<PathBuf, RegistryError> {
    if let Some(p) = cached(m) {
        return Ok(p);
    }
    let dest = cached_path(m);
    let dir = dest.parent().expect("cached path has a parent");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // One fetch at a time per model (parallel tests, concurrent runs): wait for the lock, then look again.
    let lock_path = dir.join(".lock");
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(RegistryError::Io { path: lock_path, source: std::io::Error::last_os_error() });
    }
    if let Some(p) = cached(m) {
        return Ok(p);
    }
    let work = tempfile::Builder::new().prefix(".fetch-").tempdir_in(dir).map_err(io(dir))?;
    let py = python();
    log(&format!("fetching {} with pip download {} …", m.id, m.package));
    let out = Command::new(&py)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "--dest"])
        .arg(work.path())
        .arg(&m.package)
        .output()
        .map_err(|source| RegistryError::NoPip { python: py.clone(), source })?;
    if !out.status.success() {
        return Err(RegistryError::PipFailed {
            package: m.package.clone(),
            code: out.status.code(),
            stderr: tail(&out.stderr, 15),
        });
    }
    let wheel = std::fs::read_dir(work.path())
        .map_err(io(work.path()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| RegistryError::PipFailed {
            package: m.package.clone(),
            code: Some(0),
            stderr: "pip succeeded but left no wheel (a source distribution is not supported)".into(),
        })?;
    let part = work.path().join("model.partial");
    // Python's zipfile streams the member out; no zip code of our own.
    let script = "import sys, zipfile, shutil\nz = zipfile.ZipFile(sys.argv[1])\nwith z.open(sys.argv[2]) as s, open(sys.argv[3], 'wb') as d:\n    shutil.copyfileobj(s, d, 1 << 20)\n";
    let out = Command::new(&py)
        .args(["-c", script])
        .arg(&wheel)
        .arg(&m.file)
        .arg(&part)
        .output()
        .map_err(|source| RegistryError::NoPip { python: py.clone(), source })?;
    if !out.status.success() {
        return Err(RegistryError::NotInWheel { wheel, member: m.file.clone(), detail: tail(&out.stderr, 1) });
    }
    verify(&part, m)?;
    std::fs::rename(&part, &dest).map_err(io(&dest))?;
    log(&format!("verified SHA-256 {} and cached {}", m.sha256, dest.display()));
    cached(m)
        .ok_or_else(|| RegistryError::Io { path: dest.clone(), source: std::io::Error::other("cached file vanished") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_has_one_default_with_a_pinned_hash() {
        let all = registry().unwrap();
        assert_eq!(all.iter().filter(|m| m.default).count(), 1);
        let d = lookup(None).unwrap();
        assert_eq!(d.id, "smollm2-135m-instruct-q4_1");
        assert_eq!(d.sha256.len(), 64);
        assert!(d.package.contains("=="), "packages are pinned");
        assert!(matches!(lookup(Some("nope")), Err(RegistryError::UnknownModel { .. })));
    }

    #[test]
    fn the_onnxruntime_library_is_pinned_for_linux_x86_64_only() {
        let here = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
        match library("onnxruntime") {
            Ok(l) => {
                assert_eq!(l.platform.as_deref(), Some(here.as_str()));
                assert!(l.package.starts_with("onnxruntime==") && l.sha256.len() == 64);
            }
            Err(e) => assert!(here != "linux-x86_64" && e.to_string().contains("ort_lib=PATH"), "{e}"),
        }
        assert!(matches!(library("nope"), Err(RegistryError::UnknownModel { .. })));
    }

    #[test]
    fn cache_accepts_verified_files_and_rejects_changed_ones() {
        let root = tempfile::tempdir().unwrap();
        let mut m = lookup(None).unwrap();
        m.bytes = 5;
        m.sha256 = sha256_hex(b"hello");
        assert_eq!(cached_in(root.path(), &m), None, "empty cache");
        let p = cached_path_in(root.path(), &m);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(cached_in(root.path(), &m), Some(p.clone()), "verified, marker written");
        assert_eq!(cached_in(root.path(), &m), Some(p.clone()), "marker hit");
        std::fs::write(&p, b"jello").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1)).unwrap();
        assert_eq!(cached_in(root.path(), &m), None, "same size, new content: the marker no longer matches");
    }

    #[test]
    fn verify_reports_size_then_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        std::fs::write(&p, b"hello").unwrap();
        let mut m = lookup(None).unwrap();
        assert!(matches!(verify(&p, &m), Err(RegistryError::WrongSize { got: 5, .. })));
        m.bytes = 5;
        assert!(matches!(verify(&p, &m), Err(RegistryError::HashMismatch { .. })));
        m.sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into();
        assert!(verify(&p, &m).is_ok());
    }
}

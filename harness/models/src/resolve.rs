//! `--model` arguments resolved to verified files: a registry id (fetched and SHA-256 checked), a GGUF path, or an
//! `ID@TYPE` requantized variant, made once and cached beside its source's cache entry.

use std::path::{Path, PathBuf};

use edgebench_core::results::ModelInfo;
use edgebench_core::ModelSpec;
use edgebench_gguf::{requant, GgmlType, GgufError, GgufFile};

use crate::registry::{self, RegistryError};

/// Errors resolving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The registry or cache failed (unknown id, pip, hash).
    #[error("flag --model: {0}")]
    Registry(#[from] RegistryError),
    /// A path argument that is no file.
    #[error("--model {0}: no such file")]
    NoSuchFile(String),
    /// The file is not a readable GGUF file.
    #[error("--model {path}: {source}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        source: GgufError,
    },
    /// `--to` names no type `models quantize` writes.
    #[error("--to {0}: expected Q8_0, Q6_K, Q5_K, Q5_0, Q5_1, Q4_K, Q4_0, Q4_1, F16 or F32")]
    BadTarget(String),
    /// Requantizing failed.
    #[error("requantizing {path}: {source}")]
    Requantize {
        /// The source file.
        path: PathBuf,
        /// What failed.
        source: GgufError,
    },
    /// Writing a derived file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// A model ready to run: its spec for backends and its description for the results.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// What a cell's backend loads (id, path, SHA-256).
    pub spec: ModelSpec,
    /// What the results say about it.
    pub info: ModelInfo,
    /// For an `ID@TYPE` variant: the model it was requantized from (the default drift reference).
    pub source: Option<Box<ResolvedModel>>,
}

fn describe(file: &GgufFile, id: &str, sha256: String) -> ModelInfo {
    let g = &file.gguf;
    ModelInfo {
        id: id.into(),
        path: file.path.display().to_string(),
        sha256,
        file_bytes: g.file_len,
        architecture: g.architecture().unwrap_or("unknown").into(),
        name: g.get("general.name").and_then(|v| v.as_str()).map(str::to_string),
        parameters: g.parameter_count(),
        kv_values_per_token: edgebench_gguf::arch::ModelDesc::from_gguf(g)
            .ok()
            .map(|d| 2 * d.n_layer as u64 * d.kv_dim() as u64),
        decode_weight_bytes: Some(g.decode_weight_bytes()),
        tensor_types: g.type_histogram().into_iter().map(|(t, n)| (t.to_string(), n)).collect(),
        requantized_from: g.get(requant::KEY_FROM).and_then(|v| v.as_str()).map(|from| {
            let src = g.get(requant::KEY_SOURCE).and_then(|v| v.as_str()).unwrap_or("source not recorded");
            format!("{from} ({src})")
        }),
    }
}

/// `ID@TYPE` or `FILE.gguf@TYPE`: a requantized variant, when TYPE names a type `models quantize` writes.
fn split_variant(arg: &str) -> Option<(&str, GgmlType)> {
    let (base, ty) = arg.rsplit_once('@')?;
    let ty = GgmlType::from_name(&ty.to_ascii_uppercase())?;
    (requant::TARGETS.contains(&ty) && !Path::new(arg).exists()).then_some((base, ty))
}

/// The type `--to` names, when `models quantize` writes it.
pub fn target_type(to: &str) -> Result<GgmlType, ModelError> {
    GgmlType::from_name(&to.to_ascii_uppercase())
        .filter(|t| requant::TARGETS.contains(t))
        .ok_or_else(|| ModelError::BadTarget(to.into()))
}

/// Writes `bytes` to `out` through a uniquely named temporary file in the same folder (`.<name>.XXXXXX.partial`),
/// synced and then renamed over `out`: an interrupted or failed write never leaves a truncated file under the final
/// name, concurrent writers of the same file cannot interleave, and the temporary file is removed on every error.
pub fn write_atomically(out: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
        move |source| ModelError::Io { path: path.to_path_buf(), source }
    }
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_stale_partials(dir, &name);
    let mut tmp = tempfile::Builder::new()
        // The writer's PID in the name tells a killed writer's leftover from a live one's.
        .prefix(&format!(".{name}.{}.", std::process::id()))
        .suffix(".partial")
        // As `File::create` would: 0666 less the umask (tempfile's default is 0600).
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(out))?;
    tmp.as_file().sync_all().map_err(io(out))?;
    tmp.persist(out).map_err(|e| ModelError::Io { path: out.to_path_buf(), source: e.error })?;
    Ok(())
}

/// Removes `.NAME.PID.*.partial` files in `dir` whose writer process is gone (killed mid-write).
fn remove_stale_partials(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&format!(".{name}.")).and_then(|r| r.strip_suffix(".partial")) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone =
            unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Requantizes `src` to `to` into `out` (written atomically: see [`write_atomically`]); `log` hears what it did.
pub fn quantize_file(
    src: &ResolvedModel,
    to: GgmlType,
    out: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(), ModelError> {
    let t = std::time::Instant::now();
    let path = &src.spec.path;
    let file = GgufFile::open(path).map_err(|source| ModelError::Gguf { path: path.clone(), source })?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let source =
        format!("{name}, sha256 {}, by edgebench {} models quantize", src.spec.sha256, env!("CARGO_PKG_VERSION"));
    let (w, report) = requant::requantize(&file, to, &source)
        .map_err(|source| ModelError::Requantize { path: path.clone(), source })?;
    let bytes = w.to_bytes().map_err(|source| ModelError::Requantize { path: out.into(), source })?;
    write_atomically(out, &bytes)?;
    let conv: Vec<String> = report.converted.iter().map(|(k, n)| format!("{n} tensors {k}")).collect();
    log(&format!(
        "requantized {} → {} in {:.1} s: {}; {} tensors kept as they were",
        path.display(),
        out.display(),
        t.elapsed().as_secs_f64(),
        if conv.is_empty() { "nothing to convert".into() } else { conv.join(", ") },
        report.kept.len()
    ));
    Ok(())
}

/// A requantized variant of a model, made once and cached beside its source's cache entry.
fn resolve_variant(base: &str, to: GgmlType, log: &mut dyn FnMut(&str)) -> Result<ResolvedModel, ModelError> {
    let src = resolve(Some(base), log)?;
    let stem = src.spec.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let out = registry::cache_dir().join("derived").join(&src.spec.sha256).join(format!("{stem}.{}.gguf", to.name()));
    if !out.is_file() {
        quantize_file(&src, to, &out, log)?;
    }
    let mut r = resolve_path(&out, &out.display().to_string())?;
    r.spec.id = format!("{}@{}", src.spec.id, to.name().to_ascii_lowercase());
    r.info.id = r.spec.id.clone();
    r.source = Some(Box::new(src));
    Ok(r)
}

/// Whether a `--model` argument names a file rather than a registry id.
pub fn looks_like_path(arg: &str) -> bool {
    arg.contains('/') || arg.ends_with(".gguf") || Path::new(arg).exists()
}

fn resolve_path(p: &Path, arg: &str) -> Result<ResolvedModel, ModelError> {
    if !p.is_file() {
        return Err(ModelError::NoSuchFile(arg.into()));
    }
    let sha = registry::sha256_file(p)?;
    let id = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| arg.into());
    checked(id, p.to_path_buf(), sha)
}

fn checked(id: String, path: PathBuf, sha256: String) -> Result<ResolvedModel, ModelError> {
    // Any architecture: each backend says whether it runs this one (a skipped cell with the reason), never the CLI.
    let file = GgufFile::open(&path).map_err(|source| ModelError::Gguf { path: path.clone(), source })?;
    let info = describe(&file, &id, sha256.clone());
    Ok(ResolvedModel { spec: ModelSpec { id, path, sha256 }, info, source: None })
}

/// Resolves `--model` (a registry id, a GGUF path, an `ID@TYPE` variant, or `None` for the default), fetching
/// registry models as needed; `log` hears downloads and requantizations.
pub fn resolve(arg: Option<&str>, log: &mut dyn FnMut(&str)) -> Result<ResolvedModel, ModelError> {
    if let Some((base, ty)) = arg.and_then(split_variant) {
        return resolve_variant(base, ty, log);
    }
    match arg {
        Some(a) if looks_like_path(a) => resolve_path(Path::new(a), a),
        other => {
            let m = registry::lookup(other)?;
            let p = registry::ensure(&m, log)?;
            checked(m.id.clone(), p, m.sha256.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn writes_are_atomic_and_leave_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub").join("m.gguf");
        write_atomically(&out, b"first").unwrap();
        write_atomically(&out, b"second").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"second");
        assert_eq!(names(out.parent().unwrap()), ["m.gguf"]);
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(umask) = status.lines().find_map(|l| l.strip_prefix("Umask:")) {
            let umask = u32::from_str_radix(umask.trim(), 8).unwrap();
            assert_eq!(mode & 0o777, 0o666 & !umask, "created like any file, not 0600: {mode:o}");
        }

        // A failing rename (OUT is a folder): an error naming OUT, and the temporary file is gone.
        let blocked = dir.path().join("blocked.gguf");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        let e = write_atomically(&blocked, b"data").unwrap_err().to_string();
        assert!(e.contains("blocked.gguf"), "{e}");
        assert_eq!(names(dir.path()), ["blocked.gguf", "sub"]);

        // What a writer killed mid-write left is removed by the next write; a live writer's file is not.
        let sub = out.parent().unwrap();
        let dead = sub.join(".m.gguf.999999999.abc123.partial");
        let live = sub.join(format!(".m.gguf.{}.abc123.partial", std::process::id()));
        std::fs::write(&dead, b"half").unwrap();
        std::fs::write(&live, b"half").unwrap();
        write_atomically(&out, b"third").unwrap();
        assert!(!dead.exists() && live.exists());
    }
}

//! Exported files, cached by content: `<cache>/onnx/<first 16 hex of the GGUF's SHA-256>-g<graph version>-acc<N>
//! [-fused][-untied]/model.onnx`. One export at a time per entry (a file lock), written to a temporary file and renamed, so a
//! reader never sees half a file.

use std::path::{Path, PathBuf};

use edgebench_gguf::GgufFile;
use prost::Message;

use crate::export::{export, ExportOptions, Exported, EXPORTER_VERSION};
use crate::io::GraphVariant;
use crate::{io_err, OnnxError};

fn sha256_file(path: &Path) -> Result<String, OnnxError> {
    edgebench_gguf::fingerprint::sha256_file(path).map_err(io_err(path))
}

/// Writes an export as `path` (temporary file and rename).
pub fn write(exported: &Exported, path: &Path) -> Result<(), OnnxError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = tempfile::Builder::new().prefix(".model-").suffix(".onnx").tempfile_in(dir).map_err(io_err(dir))?;
    std::fs::write(tmp.path(), exported.model.encode_to_vec()).map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| OnnxError::Io { path: path.into(), source: e.error })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(io_err(path))?;
    Ok(())
}

/// Exports `gguf` to `path`.
pub fn export_file(gguf: &Path, opts: ExportOptions, path: &Path) -> Result<Exported, OnnxError> {
    let sha = sha256_file(gguf)?;
    let file = GgufFile::open(gguf)?;
    let exported = export(&file, opts, &sha)?;
    write(&exported, path)?;
    Ok(exported)
}

/// The cached export of `gguf` (whose SHA-256 is `sha`, hashed here when empty), writing it first when missing.
/// Returns the file and whether it was written now.
pub fn ensure(cache_root: &Path, gguf: &Path, sha: &str, opts: ExportOptions) -> Result<(PathBuf, bool), OnnxError> {
    let sha = if sha.is_empty() { sha256_file(gguf)? } else { sha.to_string() };
    let mut variant = match opts.graph {
        GraphVariant::Primitive => String::new(),
        other => format!("-{}", other.name()),
    };
    if opts.untied_head {
        variant.push_str("-untied");
    }
    if opts.fp16_safe_norm {
        variant.push_str("-fp16norm");
    }
    let dir =
        cache_root.join("onnx").join(format!("{}-g{EXPORTER_VERSION}-acc{}{variant}", &sha[..16], opts.accuracy_level));
    let path = dir.join("model.onnx");
    if path.is_file() {
        return Ok((path, false));
    }
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let lock_path = dir.join(".lock");
    let lock = std::fs::File::create(&lock_path).map_err(io_err(&lock_path))?;
    // SAFETY: flock on a descriptor we own; released when `lock` drops.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(OnnxError::Io { path: lock_path, source: std::io::Error::last_os_error() });
    }
    if path.is_file() {
        return Ok((path, false));
    }
    let file = GgufFile::open(gguf)?;
    write(&export(&file, opts, &sha)?, &path)?;
    Ok((path, true))
}

/// The export of the model `spec` for the ONNX backends' untimed `prepare`: found in the cache under `root` or
/// written now; returns the file (which the timed load reads) and a note for the results.
pub fn prepare(
    root: &Path,
    spec: &edgebench_core::ModelSpec,
    opts: ExportOptions,
) -> Result<(PathBuf, String), OnnxError> {
    let t = std::time::Instant::now();
    let (path, written) = ensure(root, &spec.path, &spec.sha256, opts)?;
    let note = if written {
        format!("ONNX export written in {:.1} s (untimed): {}", t.elapsed().as_secs_f64(), path.display())
    } else {
        format!("ONNX export from the cache: {}", path.display())
    };
    Ok((path, note))
}

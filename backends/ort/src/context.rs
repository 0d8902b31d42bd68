//! QNN context binaries: the HTP graph QNN prepared from an export, kept as ONNX Runtime's EPContext model
//! (`ep.context_enable`) beside the export, so later loads read the prepared graph instead of preparing it again —
//! how QNN's own deployment flow ships models (offline-prepared contexts). One cache entry per export and QNN
//! configuration (device target, static window, HTP options, ONNX Runtime and QNN library); it records the coverage
//! and preparation time of the load that wrote it, since the EPContext model no longer shows the original nodes.

use std::path::{Path, PathBuf};

use edgebench_core::ProviderCoverage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The EPContext model's file name in a cache entry (QNN's binary beside it is `model_ctx_qnn.bin`).
const MODEL: &str = "model_ctx.onnx";
/// The entry's record of the load that wrote it.
const RECORD: &str = "context.json";

/// What the load that prepared a context recorded about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    /// The configuration the context was prepared for (the entry's key, spelled out).
    pub key: String,
    /// Seconds the preparing load took (ONNX Runtime's partitioning, QNN's graph preparation, writing the files).
    pub prepare_s: f64,
    /// Bytes of the EPContext model and QNN's context binary.
    pub bytes: u64,
    /// The provider's coverage of the export, as partitioned at that load.
    pub coverage: ProviderCoverage,
}

/// One cache entry: a folder beside the export.
pub(crate) struct Entry {
    dir: PathBuf,
    key: String,
}

impl Entry {
    /// The entry for the export at `export` prepared under `key` (every setting the prepared graph depends on).
    pub(crate) fn new(export: &Path, target: &str, key: String) -> Self {
        let hash = hex(&Sha256::digest(key.as_bytes())[..8]);
        let dir = export.parent().unwrap_or(Path::new(".")).join(format!("qnn-context-{target}-{hash}"));
        Self { dir, key }
    }

    /// The entry's folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The EPContext model to load on a hit.
    pub(crate) fn model(&self) -> PathBuf {
        self.dir.join(MODEL)
    }

    /// The entry's record, if a complete entry exists (its record is written last).
    pub(crate) fn read(&self) -> Option<Record> {
        let text = std::fs::read_to_string(self.dir.join(RECORD)).ok()?;
        let r: Record = serde_json::from_str(&text).ok()?;
        (r.key == self.key && self.model().is_file()).then_some(r)
    }

    /// Removes an entry that failed to load.
    pub(crate) fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// A fresh folder beside the entry for a load to write its context into (removed when dropped unless
    /// committed).
    pub(crate) fn staging(&self) -> std::io::Result<Staging> {
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new().prefix(".qnn-context-").tempdir_in(parent)?;
        Ok(Staging { tmp })
    }

    /// Records the coverage and preparation time in `staging` and moves it into place; returns the record. When
    /// another process committed the same entry first, theirs stays (the two are the same preparation).
    pub(crate) fn commit(
        &self,
        staging: Staging,
        prepare_s: f64,
        coverage: ProviderCoverage,
    ) -> std::io::Result<Record> {
        let bytes = std::fs::read_dir(staging.tmp.path())?
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        if !staging.model().is_file() {
            return Err(std::io::Error::other(format!(
                "ONNX Runtime wrote no EPContext model at {}",
                staging.model().display()
            )));
        }
        let record = Record { key: self.key.clone(), prepare_s, bytes, coverage };
        std::fs::write(staging.tmp.path().join(RECORD), serde_json::to_string_pretty(&record)?)?;
        let kept = staging.tmp.keep();
        if std::fs::rename(&kept, &self.dir).is_err() {
            let _ = std::fs::remove_dir_all(&kept);
            if self.read().is_none() {
                return Err(std::io::Error::other(format!("could not move the context into {}", self.dir.display())));
            }
        }
        Ok(record)
    }

    /// The result's note on a load that read this entry.
    pub(crate) fn hit_note(&self, r: &Record) -> String {
        format!(
            "QNN context binary {} (--backend-opt ort:qnn_context; ONNX Runtime's EPContext model), at the load these \
             facts come from: a hit, the load read the graph QNN prepared earlier ({:.1} s to prepare, {:.0} MB); \
             the coverage is the one recorded when it was prepared",
            self.dir.display(),
            r.prepare_s,
            r.bytes as f64 / 1e6
        )
    }

    /// The result's note on a load that prepared and wrote this entry.
    pub(crate) fn miss_note(&self, r: &Record, stale: Option<&str>) -> String {
        format!(
            "QNN context binary {} (--backend-opt ort:qnn_context; ONNX Runtime's EPContext model), at the load these \
             facts come from: a miss, the load prepared the graph and wrote its context ({:.1} s, {:.0} MB){}; later \
             loads read it",
            self.dir.display(),
            r.prepare_s,
            r.bytes as f64 / 1e6,
            stale.map(|e| format!(", replacing a cached one that failed to load ({e})")).unwrap_or_default()
        )
    }
}

/// A folder a preparing load writes its context into.
pub(crate) struct Staging {
    tmp: tempfile::TempDir,
}

impl Staging {
    /// Where ONNX Runtime writes the EPContext model (`ep.context_file_path`).
    pub(crate) fn model(&self) -> PathBuf {
        self.tmp.path().join(MODEL)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coverage() -> ProviderCoverage {
        ProviderCoverage { provider: "QNN".into(), nodes: 10, nodes_on_device: 8, ..Default::default() }
    }

    #[test]
    fn an_entry_is_read_only_when_committed_under_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("model.onnx");
        let e = Entry::new(&export, "htp", "window 112".into());
        assert!(e.read().is_none(), "nothing cached yet");
        let s = e.staging().unwrap();
        std::fs::write(s.model(), b"graph").unwrap();
        std::fs::write(s.tmp.path().join("model_ctx_qnn.bin"), b"binary").unwrap();
        let r = e.commit(s, 2.5, coverage()).unwrap();
        assert_eq!(r.bytes, 11);
        let back = e.read().expect("committed");
        assert_eq!(back.coverage, coverage());
        assert_eq!(back.prepare_s, 2.5);
        assert!(e.hit_note(&back).contains("a hit") && e.hit_note(&back).contains("2.5 s"));
        let other = Entry::new(&export, "htp", "window 113".into());
        assert_ne!(other.dir(), e.dir(), "another key is another entry");
        assert!(other.read().is_none());
        e.discard();
        assert!(e.read().is_none());
    }

    #[test]
    fn a_staging_folder_without_a_model_is_not_committed_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = Entry::new(&dir.path().join("model.onnx"), "htp", "k".into());
        let s = e.staging().unwrap();
        let err = e.commit(s, 1.0, coverage()).unwrap_err();
        assert!(err.to_string().contains("no EPContext model"), "{err}");
        assert!(e.read().is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the staging folder was removed");
    }

    #[test]
    fn a_second_commit_of_the_same_entry_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let e = Entry::new(&dir.path().join("model.onnx"), "htp", "k".into());
        for prepare_s in [1.0, 2.0] {
            let s = e.staging().unwrap();
            std::fs::write(s.model(), b"graph").unwrap();
            e.commit(s, prepare_s, coverage()).unwrap();
        }
        assert_eq!(e.read().unwrap().prepare_s, 1.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the second staging folder was removed");
    }
}

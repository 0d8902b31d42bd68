//! Size limits on every file edgebench reads, and the one bounded reader that enforces them.
//!
//! A results, suite or thresholds file named `/dev/zero`, or a 1 GB sparse evaluation text, must fail in a moment
//! with the limit named, not fill memory. Each limit is far above any real file of its kind.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// A suite (TOML): real ones are under 4 KiB.
pub const SUITE_FILE: u64 = 1 << 20;
/// A thresholds file (TOML): the shipped one is under 4 KiB.
pub const THRESHOLDS_FILE: u64 = 1 << 20;
/// A results file (JSON): a 100-cell run with every sample is a few MiB.
pub const RESULTS_FILE: u64 = 256 << 20;
/// An evaluation text for drift (`--eval-text`): wikitext-2's test split is 1.3 MiB.
pub const EVAL_TEXT: u64 = 64 << 20;
/// A job on a child's stdin (a cell or reference spec, JSON).
pub const JOB: u64 = 16 << 20;
/// One line a cell's child prints (a protocol event; a drift event with its figures is a few KiB).
pub const LINE: u64 = 16 << 20;
/// One line an energy meter command prints (a number and a unit).
pub const METER_LINE: u64 = 64 << 10;

/// A file larger than its limit, or unreadable.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error (shown in the message, so not also a `source` that would print it twice).
        error: std::io::Error,
    },
    /// The file holds more than `limit` bytes (`/dev/zero`, a wrong file).
    #[error("{path}: larger than the {limit_mib} MiB edgebench reads from a {what}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What kind of file it was read as.
        what: &'static str,
        /// The limit, MiB.
        limit_mib: u64,
    },
    /// The file is not UTF-8 text.
    #[error("{path}: not UTF-8 text ({what})")]
    NotText {
        /// The file.
        path: PathBuf,
        /// What kind of file it was read as.
        what: &'static str,
    },
}

/// Reads at most `limit` bytes of `path`; a longer file (or an endless one) is [`ReadError::TooLarge`].
pub fn read_bytes(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let io = |error| ReadError::Io { path: path.to_path_buf(), error };
    let too_large = || ReadError::TooLarge { path: path.to_path_buf(), what, limit_mib: limit.div_ceil(1 << 20) };
    let f = std::fs::File::open(path).map_err(io)?;
    if f.metadata().map_err(io)?.len() > limit {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// [`read_bytes`] as UTF-8 text.
pub fn read_text(path: &Path, limit: u64, what: &'static str) -> Result<String, ReadError> {
    String::from_utf8(read_bytes(path, limit, what)?).map_err(|_| ReadError::NotText { path: path.to_path_buf(), what })
}

/// Lines of `reader` (without their `\n`), each at most `limit` bytes: a longer line, or an endless one such as
/// `cat /dev/zero` prints, ends the iteration with an [`std::io::ErrorKind::InvalidData`] error instead of filling
/// memory. Invalid UTF-8 is replaced, as a child's stray output may hold anything.
pub fn bounded_lines<R: BufRead>(reader: R, limit: u64) -> impl Iterator<Item = std::io::Result<String>> {
    let mut reader = Some(reader);
    std::iter::from_fn(move || {
        let r = reader.as_mut()?;
        let mut buf = Vec::new();
        match r.by_ref().take(limit + 1).read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                } else if buf.len() as u64 > limit {
                    reader = None;
                    return Some(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a line longer than {} MiB", limit.div_ceil(1 << 20)),
                    )));
                }
                Some(Ok(String::from_utf8_lossy(&buf).into_owned()))
            }
            Err(e) => {
                reader = None;
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_and_oversized_files_are_refused_with_the_limit() {
        let e = read_text(Path::new("/dev/zero"), 1024, "suite").unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("1 MiB") && e.contains("suite"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let sparse = dir.path().join("sparse");
        std::fs::File::create(&sparse).unwrap().set_len(1 << 30).unwrap();
        assert!(matches!(read_bytes(&sparse, 1 << 20, "x"), Err(ReadError::TooLarge { .. })));
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "exactly").unwrap();
        assert_eq!(read_text(&ok, 7, "x").unwrap(), "exactly");
        assert!(matches!(read_text(&ok, 6, "x"), Err(ReadError::TooLarge { .. })));
        std::fs::write(&ok, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_text(&ok, 6, "x"), Err(ReadError::NotText { .. })));
        assert!(matches!(read_text(&dir.path().join("missing"), 6, "x"), Err(ReadError::Io { .. })));
    }

    #[test]
    fn lines_are_bounded() {
        let text = b"one\ntwo\n\nlonger line\nlast";
        let got: Vec<String> = bounded_lines(&text[..], 4).collect::<Result<_, _>>().unwrap_or_default();
        assert!(got.is_empty(), "a 11-byte line exceeds 4 bytes");
        let got: Vec<_> = bounded_lines(&text[..], 4).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().unwrap(), "one");
        assert_eq!(got[2].as_ref().unwrap(), "");
        assert!(got[3].is_err());
        let ok: Vec<String> = bounded_lines(&text[..], 64).map(Result::unwrap).collect();
        assert_eq!(ok, ["one", "two", "", "longer line", "last"]);
        let zeros = std::fs::File::open("/dev/zero").map(std::io::BufReader::new).unwrap();
        let mut it = bounded_lines(zeros, 1 << 20);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}

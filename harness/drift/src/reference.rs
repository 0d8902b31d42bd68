//! The reference: one backend (by default candle with every weight dequantized to f32) run over the evaluation
//! set, its log-probabilities kept per scored token and cached, gzip-compressed, under the model's SHA-256 and a key
//! over everything that determines them.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use edgebench_core::drift::DriftLevel;
use edgebench_core::{Backend, LoadOptions, ModelSpec};
use edgebench_gguf::GgufFile;
use edgebench_stats::drift::RefRow;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::eval::{builtin_prompts, builtin_size, continue_greedily, teacher_force, text_sequences, tokenizer_hash};
use crate::eval::{EvalError, EvalSource, Sequence, BUILTIN_PROMPTS};
use edgebench_models::tokenizer::Tokenizer;

/// Version of the cache file layout; part of every key.
pub const FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"EBREF\0\0\x01";

/// Everything that determines a reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceSpec {
    /// Backend name.
    pub backend: String,
    /// Its load options (`requantize=f32` for the default candle reference).
    pub load: LoadOptions,
    /// The model it runs (the candidate's own file, or a higher-precision one), with its SHA-256.
    pub model: ModelSpec,
    /// The evaluation set.
    pub eval: EvalSource,
    /// Short or full.
    pub level: DriftLevel,
}

impl ReferenceSpec {
    /// The cache key: SHA-256 over the format, model hash, backend, its options, the evaluation set (by content,
    /// not path) and, for the built-in set, the prompts.
    pub fn key(&self) -> String {
        let eval = match &self.eval {
            EvalSource::Builtin => {
                let (n, g) = builtin_size(self.level);
                serde_json::json!({ "builtin": BUILTIN_PROMPTS[..n], "gen_tokens": g })
            }
            EvalSource::Text { sha256, ctx, max_chunks, .. } => {
                serde_json::json!({ "text_sha256": sha256, "ctx": ctx, "max_chunks": max_chunks })
            }
        };
        let k = serde_json::json!({
            "format": FORMAT,
            "model_sha256": self.model.sha256,
            "backend": self.backend,
            "options": self.load.options,
            "device": self.load.device.to_string(),
            "eval": eval,
        });
        edgebench_models::registry::sha256_hex(k.to_string().as_bytes())
    }

    /// One line for the results: backend, options, model.
    pub fn describe(&self) -> String {
        let opts: Vec<String> = self.load.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let opts = if opts.is_empty() { String::new() } else { format!(" ({})", opts.join(", ")) };
        format!(
            "{}{opts} on {}, model {} (sha256 {})",
            self.backend,
            self.load.device,
            self.model.id,
            &self.model.sha256[..12.min(self.model.sha256.len())]
        )
    }

    /// Where its cache file lives: `<cache>/references/<model sha256>/<key>.ebref.gz`.
    pub fn cache_path(&self) -> PathBuf {
        edgebench_models::registry::cache_dir()
            .join("references")
            .join(&self.model.sha256)
            .join(format!("{}.ebref.gz", self.key()))
    }
}

/// What a reference file says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefHeader {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// [`ReferenceSpec::key`].
    pub key: String,
    /// [`ReferenceSpec::describe`], plus what the backend said it converted.
    pub reference: String,
    /// [`EvalSource::describe`].
    pub eval_set: String,
    /// Short or full.
    pub level: DriftLevel,
    /// [`tokenizer_hash`] of the reference model.
    pub tokenizer: String,
    /// Logits per position.
    pub vocab: usize,
    /// The sequences, in order; rows follow in the same order.
    pub sequences: Vec<Sequence>,
    /// Seconds the reference took to build.
    pub build_seconds: f64,
}

/// A header and one row per scored token.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceFile {
    /// What it is.
    pub header: RefHeader,
    /// Scored positions of every sequence, in order.
    pub rows: Vec<RefRow>,
}

/// Errors building, writing or reading a reference.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// File IO.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a reference this build wrote.
    #[error("{path}: not a usable reference file ({message}); delete it to rebuild")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The evaluation set could not be built.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// The model file or its tokenizer.
    #[error("reference model {path}: {message}")]
    Model {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ReferenceError + '_ {
    move |source| ReferenceError::Io { path: path.display().to_string(), source }
}

/// Runs the reference over the evaluation set. `progress` gets one line per sequence.
pub fn build(
    spec: &ReferenceSpec,
    backend: &dyn Backend,
    progress: &mut dyn FnMut(&str),
) -> Result<ReferenceFile, ReferenceError> {
    let started = Instant::now();
    let model_err = |message: String| ReferenceError::Model { path: spec.model.path.display().to_string(), message };
    let file = GgufFile::open(&spec.model.path).map_err(|e| model_err(e.to_string()))?;
    let tok = Tokenizer::from_gguf(&file.gguf).map_err(|e| model_err(e.to_string()))?;
    let template = file.gguf.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string);
    drop(file);
    let model = backend.load(&spec.model, &spec.load).map_err(EvalError::from)?;
    let facts = model.facts();
    let vocab = facts.vocab_size;
    let sequences = match &spec.eval {
        EvalSource::Text { .. } => text_sequences(&tok, &spec.eval)?,
        EvalSource::Builtin => {
            let (_, gen) = builtin_size(spec.level);
            let mut seqs = Vec::new();
            for prompt in builtin_prompts(&tok, template.as_deref(), spec.level)? {
                let mut s = model.new_session().map_err(EvalError::from)?;
                let cont = continue_greedily(s.as_mut(), &tok, &prompt, gen).map_err(EvalError::from)?;
                let first = prompt.len() - 1;
                seqs.push(Sequence { tokens: [prompt, cont].concat(), first });
            }
            seqs
        }
    };
    let mut rows = Vec::new();
    for (i, seq) in sequences.iter().enumerate() {
        progress(&format!("reference: sequence {}/{} ({} scored tokens)", i + 1, sequences.len(), seq.scored()));
        if seq.scored() == 0 {
            continue;
        }
        let mut s = model.new_session().map_err(EvalError::from)?;
        let logits = teacher_force(s.as_mut(), seq).map_err(EvalError::from)?;
        for (j, row) in logits.chunks_exact(vocab).enumerate() {
            rows.push(RefRow::from_logits(row, seq.tokens[seq.first + 1 + j]));
        }
    }
    let converted = facts.converted.map(|c| format!("; {c}")).unwrap_or_default();
    Ok(ReferenceFile {
        header: RefHeader {
            format: FORMAT,
            key: spec.key(),
            reference: format!("{}{converted}", spec.describe()),
            eval_set: spec.eval.describe(spec.level),
            level: spec.level,
            tokenizer: tokenizer_hash(&tok),
            vocab,
            sequences,
            build_seconds: started.elapsed().as_secs_f64(),
        },
        rows,
    })
}

/// The cached reference for `spec`, built and written first when absent or unreadable.
pub fn ensure(
    spec: &ReferenceSpec,
    backend: &dyn Backend,
    progress: &mut dyn FnMut(&str),
) -> Result<(PathBuf, RefHeader), ReferenceError> {
    let path = spec.cache_path();
    if path.is_file() {
        match read(&path) {
            Ok(r) if r.header.key == spec.key() => return Ok((path, r.header)),
            Ok(_) => progress(&format!("{}: key differs; rebuilding", path.display())),
            Err(e) => progress(&format!("{e}; rebuilding")),
        }
    }
    let r = build(spec, backend, progress)?;
    write(&path, &r)?;
    Ok((path, r.header))
}

/// Writes a reference file (gzip), atomically.
pub fn write(path: &Path, r: &ReferenceFile) -> Result<(), ReferenceError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    {
        let mut w = BufWriter::new(GzEncoder::new(tmp.as_file(), flate2::Compression::default()));
        let header = serde_json::to_vec(&r.header).expect("headers serialize");
        w.write_all(MAGIC).map_err(io(path))?;
        w.write_all(&(header.len() as u64).to_le_bytes()).map_err(io(path))?;
        w.write_all(&header).map_err(io(path))?;
        w.write_all(&(r.rows.len() as u64).to_le_bytes()).map_err(io(path))?;
        for row in &r.rows {
            let mut b = Vec::with_capacity(16 + 8 * row.entries.len());
            b.extend_from_slice(&row.token.to_le_bytes());
            b.extend_from_slice(&row.token_log_prob.to_le_bytes());
            b.extend_from_slice(&row.top.to_le_bytes());
            b.extend_from_slice(&(row.entries.len() as u32).to_le_bytes());
            for (i, lp) in &row.entries {
                b.extend_from_slice(&i.to_le_bytes());
                b.extend_from_slice(&lp.to_le_bytes());
            }
            w.write_all(&b).map_err(io(path))?;
        }
        w.into_inner().map_err(|e| io(path)(e.into_error()))?.finish().map_err(io(path))?;
    }
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

/// Reads a reference file, checking its layout and that its rows match its sequences.
pub fn read(path: &Path) -> Result<ReferenceFile, ReferenceError> {
    let corrupt = |m: &str| ReferenceError::Corrupt { path: path.display().to_string(), message: m.into() };
    let f = std::fs::File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    BufReader::new(GzDecoder::new(f)).read_to_end(&mut bytes).map_err(|e| corrupt(&e.to_string()))?;
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], ReferenceError> {
        let s = bytes.get(at..at + n).ok_or_else(|| corrupt("truncated"))?;
        at += n;
        Ok(s)
    };
    if take(8)? != MAGIC {
        return Err(corrupt("wrong magic bytes"));
    }
    let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize;
    let len = u64_at(take(8)?);
    let header: RefHeader = serde_json::from_slice(take(len)?).map_err(|e| corrupt(&format!("header: {e}")))?;
    if header.format != FORMAT {
        return Err(corrupt(&format!("format {} (this build reads {FORMAT})", header.format)));
    }
    let n_rows = u64_at(take(8)?);
    let expected: usize = header.sequences.iter().map(Sequence::scored).sum();
    if n_rows != expected {
        return Err(corrupt(&format!("{n_rows} rows for {expected} scored tokens")));
    }
    let word = |b: &[u8]| -> [u8; 4] { b.try_into().expect("4 bytes") };
    let mut rows = Vec::with_capacity(n_rows);
    for _ in 0..n_rows {
        let token = u32::from_le_bytes(word(take(4)?));
        let token_log_prob = f32::from_le_bytes(word(take(4)?));
        let top = u32::from_le_bytes(word(take(4)?));
        let n = u32::from_le_bytes(word(take(4)?)) as usize;
        let raw = take(8 * n)?;
        let entries: Vec<(u32, f32)> = raw
            .chunks_exact(8)
            .map(|e| (u32::from_le_bytes(word(&e[..4])), f32::from_le_bytes(word(&e[4..]))))
            .collect();
        let v = header.vocab;
        if n > v || token as usize >= v || top as usize >= v || entries.iter().any(|&(i, _)| i as usize >= v) {
            return Err(corrupt("row indexes outside the vocabulary"));
        }
        rows.push(RefRow { token, token_log_prob, top, entries });
    }
    if at != bytes.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(ReferenceFile { header, rows })
}

#[cfg(test)]
mod tests {
    use edgebench_backend_mock::MockBackend;
    use edgebench_core::drift::Drift;
    use edgebench_gguf::GgmlType;

    use super::*;
    use crate::check;
    use edgebench_testkit::fixtures::{opts, tiny_model};

    fn spec(dir: &Path, level: DriftLevel, options: &[(&str, &str)]) -> ReferenceSpec {
        ReferenceSpec {
            backend: "mock".into(),
            load: opts(options),
            model: tiny_model(dir, GgmlType::Q4_1, GgmlType::Q8_0),
            eval: EvalSource::Builtin,
            level,
        }
    }

    fn tokenizer(m: &ModelSpec) -> Tokenizer {
        Tokenizer::from_gguf(&GgufFile::open(&m.path).unwrap().gguf).unwrap()
    }

    #[test]
    fn builds_writes_and_reads_back_the_same_reference() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(dir.path(), DriftLevel::Short, &[]);
        let r = build(&s, &MockBackend, &mut |_| {}).unwrap();
        let (prompts, gen) = builtin_size(DriftLevel::Short);
        assert_eq!(r.header.sequences.len(), prompts);
        assert!(r.header.sequences.iter().all(|q| q.scored() >= 1 && q.scored() <= gen));
        assert_eq!(r.rows.len(), r.header.sequences.iter().map(Sequence::scored).sum::<usize>());
        let path = dir.path().join("ref.ebref.gz");
        write(&path, &r).unwrap();
        assert_eq!(read(&path).unwrap(), r);
    }

    #[test]
    fn the_key_follows_content_not_paths() {
        let dir = tempfile::tempdir().unwrap();
        let a = spec(dir.path(), DriftLevel::Short, &[]);
        let text = |p: &str| EvalSource::Text { path: p.into(), sha256: "ab".into(), ctx: 512, max_chunks: None };
        let (mut t1, mut t2) = (a.clone(), a.clone());
        t1.eval = text("/a.txt");
        t2.eval = text("/b.txt");
        assert_eq!(t1.key(), t2.key());
        assert_ne!(a.key(), spec(dir.path(), DriftLevel::Full, &[]).key());
        assert_ne!(a.key(), spec(dir.path(), DriftLevel::Short, &[("hot_logit", "9")]).key());
        assert_ne!(a.key(), t1.key());
    }

    #[test]
    fn damaged_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let r = build(&spec(dir.path(), DriftLevel::Short, &[]), &MockBackend, &mut |_| {}).unwrap();
        let path = dir.path().join("ref.ebref.gz");
        write(&path, &r).unwrap();
        let mut raw = Vec::new();
        GzDecoder::new(std::fs::File::open(&path).unwrap()).read_to_end(&mut raw).unwrap();
        let rewrite = |bytes: &[u8]| {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(bytes).unwrap();
            std::fs::write(&path, e.finish().unwrap()).unwrap();
        };
        rewrite(&raw[..raw.len() - 3]);
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("ref.ebref.gz") && e.contains("truncated"), "{e}");
        rewrite(b"GGUF not a reference");
        assert!(read(&path).unwrap_err().to_string().contains("magic"));
        std::fs::write(&path, b"plain bytes").unwrap();
        assert!(matches!(read(&path), Err(ReferenceError::Corrupt { .. })));
    }

    #[test]
    fn a_model_against_its_own_reference_has_zero_drift_and_a_known_change_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(dir.path(), DriftLevel::Full, &[]);
        let path = dir.path().join("ref.ebref.gz");
        write(&path, &build(&s, &MockBackend, &mut |_| {}).unwrap()).unwrap();
        let tok = tokenizer(&s.model);
        let same = MockBackend.load(&s.model, &opts(&[])).unwrap();
        let Drift::Measured(d) = check::run(same.as_ref(), &tok, &path) else { panic!("not measured") };
        assert_eq!((d.stats.kld.value, d.stats.same_top1.value, d.stats.ppl_ratio.value), (0.0, 1.0, 1.0));
        assert_eq!(d.stats.tokens, 8 * 64);

        // The mock puts one logit at `hot_logit` and the rest at 0, at the same index in both runs: with V tokens,
        // p = e^10 / (e^10 + V − 1) against q = e^8 / (e^8 + V − 1) at every position.
        let cooler = MockBackend.load(&s.model, &opts(&[("hot_logit", "8")])).unwrap();
        let Drift::Measured(d) = check::run(cooler.as_ref(), &tok, &path) else { panic!("not measured") };
        let v = cooler.facts().vocab_size as f64;
        let (p, q) = (10f64.exp() / (10f64.exp() + v - 1.0), 8f64.exp() / (8f64.exp() + v - 1.0));
        let kld = p * (p / q).ln() + (1.0 - p) * ((1.0 - p) / (1.0 - q)).ln();
        assert!((d.stats.kld.value - kld).abs() < 1e-5 * kld, "{} vs {kld}", d.stats.kld.value);
        assert_eq!(d.stats.same_top1.value, 1.0);
    }

    #[test]
    fn mismatched_references_are_skipped_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(dir.path(), DriftLevel::Short, &[]);
        let mut r = build(&s, &MockBackend, &mut |_| {}).unwrap();
        let tok = tokenizer(&s.model);
        let m = MockBackend.load(&s.model, &opts(&[])).unwrap();
        let path = dir.path().join("ref.ebref.gz");
        r.header.tokenizer = "another".into();
        write(&path, &r).unwrap();
        assert!(
            matches!(check::run(m.as_ref(), &tok, &path), Drift::Skipped { reason } if reason.contains("tokenizer"))
        );
        let wide = MockBackend.load(&s.model, &opts(&[("vocab", "70000")])).unwrap();
        r.header.tokenizer = tokenizer_hash(&tok);
        write(&path, &r).unwrap();
        assert!(
            matches!(check::run(wide.as_ref(), &tok, &path), Drift::Skipped { reason } if reason.contains("70000"))
        );
        let missing = dir.path().join("none.ebref.gz");
        assert!(
            matches!(check::run(m.as_ref(), &tok, &missing), Drift::Failed { message } if message.contains("none.ebref.gz"))
        );
    }
}

//! The mock backend: deterministic logits at a configurable cost per token, and failures on request, so the CLI,
//! runner and reports are testable end to end without a model.
//!
//! Options (`--backend-opt key=value` or a suite's `options` table):
//! - `prefill_us` / `decode_us`: microseconds slept per prompt token / per decode step (default 0);
//! - `vocab`: logits per position (default: the GGUF's vocabulary size when the model file is one, else 49152);
//! - `context`: context length (default 4096);
//! - `hot_logit`: the one non-zero logit per position (default 10; other values make a known accuracy drift);
//! - `fail`: `panic`, `abort`, `hang`, `error` or `alloc` (allocates until the process is killed);
//! - `fail_at`: `load` (default) or `forward:N` (on the N-th forward call, counting from 1).
//!
//! A GGUF model file may carry the same options as metadata keys `edgebench.mock.<option>`, so one run can mix
//! healthy and failing cells (options given on the command line win).

use std::time::Duration;

use edgebench_core::{Backend, BackendError, BackendFacts, LoadOptions, LoadedModel, ModelSpec, Session};

/// The mock backend factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct MockBackend;

#[derive(Debug, Clone)]
struct Config {
    prefill: Duration,
    decode: Duration,
    vocab: usize,
    context: usize,
    hot_logit: f32,
    fail: Option<String>,
    fail_at_forward: Option<usize>,
    threads: usize,
}

fn opt<T: std::str::FromStr>(opts: &LoadOptions, key: &str, default: T) -> Result<T, BackendError> {
    match opts.options.get(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| BackendError::Unsupported(format!("mock option {key}={v:?} is not valid"))),
    }
}

fn fail_now(mode: &str) -> BackendError {
    match mode {
        "panic" => panic!("mock backend: panic requested"),
        "abort" => std::process::abort(),
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 64 << 20]);
            }
        }
        other => BackendError::Runtime(format!("mock backend: failure {other:?} requested")),
    }
}

impl Backend for MockBackend {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn load(&self, model: &ModelSpec, opts: &LoadOptions) -> Result<Box<dyn LoadedModel>, BackendError> {
        let file = edgebench_gguf::GgufFile::open(&model.path).ok();
        let mut merged = opts.clone();
        for (k, v) in file.iter().flat_map(|f| f.gguf.metadata.iter()) {
            if let (Some(key), Some(v)) = (k.strip_prefix("edgebench.mock."), v.as_str()) {
                merged.options.entry(key.to_string()).or_insert_with(|| v.to_string());
            }
        }
        let opts = &merged;
        let fail = opts.options.get("fail").cloned();
        let fail_at = opts.options.get("fail_at").map(String::as_str).unwrap_or("load");
        let fail_at_forward = match fail_at {
            "load" => None,
            s => Some(s.strip_prefix("forward:").and_then(|n| n.parse().ok()).ok_or_else(|| {
                BackendError::Unsupported(format!("mock option fail_at={s:?}: expected load or forward:N"))
            })?),
        };
        if let (Some(mode), None) = (&fail, fail_at_forward) {
            return Err(fail_now(mode));
        }
        let cfg = Config {
            prefill: Duration::from_micros(opt(opts, "prefill_us", 0)?),
            decode: Duration::from_micros(opt(opts, "decode_us", 0)?),
            vocab: opt(opts, "vocab", file.as_ref().and_then(file_vocab).unwrap_or(49152))?,
            context: opt(opts, "context", 4096)?,
            hot_logit: opt(opts, "hot_logit", 10.0)?,
            fail,
            fail_at_forward,
            threads: opts.threads,
        };
        if cfg.vocab == 0 {
            return Err(BackendError::Unsupported("mock option vocab must be positive".into()));
        }
        Ok(Box::new(MockModel(cfg)))
    }
}

/// The vocabulary size of a GGUF model file, so mock logits line up with the harness's tokenizer.
fn file_vocab(f: &edgebench_gguf::GgufFile) -> Option<usize> {
    f.gguf.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map(|a| a.len())
}

struct MockModel(Config);

impl LoadedModel for MockModel {
    fn facts(&self) -> BackendFacts {
        BackendFacts {
            versions: vec![format!("edgebench-backend-mock {}", env!("CARGO_PKG_VERSION"))],
            kernel_path: "none (sleeps)".into(),
            threads: self.0.threads,
            vocab_size: self.0.vocab,
            context_length: self.0.context,
            converted: None,
            notes: vec!["mock backend: numbers are synthetic".into()],
            weights: None,
        }
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError> {
        Ok(Box::new(MockSession { cfg: &self.0, pos: 0, calls: 0 }))
    }
}

struct MockSession<'a> {
    cfg: &'a Config,
    pos: usize,
    calls: usize,
}

impl Session for MockSession<'_> {
    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>, BackendError> {
        self.calls += 1;
        if let (Some(mode), Some(n)) = (&self.cfg.fail, self.cfg.fail_at_forward) {
            if self.calls >= n {
                return Err(fail_now(mode));
            }
        }
        let Some(&last) = tokens.last() else {
            return Err(BackendError::Runtime("forward called with no tokens".into()));
        };
        if self.pos + tokens.len() > self.cfg.context {
            return Err(BackendError::ContextFull { needed: self.pos + tokens.len(), limit: self.cfg.context });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab) {
            return Err(BackendError::Runtime(format!("token id {bad} outside the vocabulary ({})", self.cfg.vocab)));
        }
        let per = if tokens.len() == 1 { self.cfg.decode } else { self.cfg.prefill };
        if !per.is_zero() {
            std::thread::sleep(per * tokens.len() as u32);
        }
        self.pos += tokens.len();
        let mut logits = vec![0.0f32; self.cfg.vocab];
        let hot = (last as usize).wrapping_mul(31).wrapping_add(self.pos * 17) % self.cfg.vocab;
        logits[hot] = self.cfg.hot_logit;
        Ok(logits)
    }

    fn position(&self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> LoadOptions {
        LoadOptions {
            threads: 1,
            device: edgebench_core::DeviceRequest::cpu(),
            options: kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn spec() -> ModelSpec {
        ModelSpec { id: "mock".into(), path: "/nonexistent".into(), sha256: String::new() }
    }

    #[test]
    fn deterministic_logits() {
        let m = MockBackend.load(&spec(), &opts(&[("vocab", "100")])).unwrap();
        let run = || {
            let mut s = m.new_session().unwrap();
            let a = s.forward(&[1, 2, 3]).unwrap();
            let b = s.forward(&[5]).unwrap();
            (a, b, s.position())
        };
        let (a, b, pos) = run();
        assert_eq!((a.len(), pos), (100, 4));
        assert_eq!(run().0, a);
        assert_ne!(a, b);
    }

    #[test]
    fn requested_errors_and_bad_options() {
        assert!(MockBackend.load(&spec(), &opts(&[("fail", "error")])).is_err());
        assert!(MockBackend.load(&spec(), &opts(&[("decode_us", "fast")])).is_err());
        let m = MockBackend.load(&spec(), &opts(&[("fail", "error"), ("fail_at", "forward:2")])).unwrap();
        let mut s = m.new_session().unwrap();
        assert!(s.forward(&[1]).is_ok());
        assert!(s.forward(&[1]).is_err());
    }

    #[test]
    #[should_panic(expected = "panic requested")]
    fn requested_panic() {
        let _ = MockBackend.load(&spec(), &opts(&[("fail", "panic")]));
    }
}

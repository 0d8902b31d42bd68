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

use edgebench_core::{
    BackendError, BackendFacts, Loaded, LoadedModel, ModelSpec, Request, Rows, Session, TypedBackend,
};
use serde::Deserialize;

/// The mock backend factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct MockBackend;

/// The mock backend's options (see the crate documentation); every one may also come from the model file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockOptions {
    /// Microseconds slept per prompt token.
    pub prefill_us: Option<u64>,
    /// Microseconds slept per decode step.
    pub decode_us: Option<u64>,
    /// Logits per position.
    pub vocab: Option<usize>,
    /// Context length.
    pub context: Option<usize>,
    /// The one non-zero logit per position.
    pub hot_logit: Option<f32>,
    /// A failure to cause.
    pub fail: Option<FailMode>,
    /// When: `load` or `forward:N`.
    pub fail_at: Option<String>,
}

/// A failure the mock backend causes on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// `panic!`.
    Panic,
    /// `std::process::abort`.
    Abort,
    /// Sleep forever.
    Hang,
    /// Return an error.
    Error,
    /// Allocate until the process is killed.
    Alloc,
}

#[derive(Debug, Clone)]
struct Config {
    prefill: Duration,
    decode: Duration,
    vocab: usize,
    context: usize,
    hot_logit: f32,
    fail: Option<FailMode>,
    fail_at_forward: Option<usize>,
    threads: usize,
}

fn fail_now(mode: FailMode) -> BackendError {
    match mode {
        FailMode::Panic => panic!("mock backend: panic requested"),
        FailMode::Abort => std::process::abort(),
        FailMode::Hang => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        FailMode::Alloc => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 64 << 20]);
            }
        }
        FailMode::Error => BackendError::Runtime("mock backend: failure \"error\" requested".into()),
    }
}

/// Options stored in the model file as `edgebench.mock.<option>` metadata.
fn file_options(file: Option<&edgebench_gguf::GgufFile>) -> Result<MockOptions, BackendError> {
    let kv: std::collections::BTreeMap<String, String> = file
        .iter()
        .flat_map(|f| f.gguf.metadata.iter())
        .filter_map(|(k, v)| Some((k.strip_prefix("edgebench.mock.")?.to_string(), v.as_str()?.to_string())))
        .collect();
    edgebench_core::parse_options("mock (model file metadata)", &kv)
}

impl TypedBackend for MockBackend {
    type Options = MockOptions;
    type Prepared = ();
    const NAME: &'static str = "mock";

    fn load(&self, model: &ModelSpec, req: Request<'_, MockOptions>, _: &()) -> Loaded {
        let file = edgebench_gguf::GgufFile::open(&model.path).ok();
        let (cli, f) = (req.options, file_options(file.as_ref())?);
        let fail = cli.fail.or(f.fail);
        let fail_at = cli.fail_at.clone().or(f.fail_at).unwrap_or_else(|| "load".into());
        let fail_at_forward = match fail_at.as_str() {
            "load" => None,
            s => Some(s.strip_prefix("forward:").and_then(|n| n.parse().ok()).ok_or_else(|| {
                BackendError::Unsupported(format!("mock option fail_at={s:?}: expected load or forward:N"))
            })?),
        };
        if let (Some(mode), None) = (fail, fail_at_forward) {
            return Err(fail_now(mode));
        }
        let cfg = Config {
            prefill: Duration::from_micros(cli.prefill_us.or(f.prefill_us).unwrap_or(0)),
            decode: Duration::from_micros(cli.decode_us.or(f.decode_us).unwrap_or(0)),
            vocab: cli.vocab.or(f.vocab).or_else(|| file.as_ref().and_then(file_vocab)).unwrap_or(49152),
            context: cli.context.or(f.context).unwrap_or(4096),
            hot_logit: cli.hot_logit.or(f.hot_logit).unwrap_or(10.0),
            fail,
            fail_at_forward,
            threads: req.threads,
        };
        if cfg.vocab == 0 {
            return Err(BackendError::Unsupported("mock option vocab must be positive".into()));
        }
        Ok(Box::new(MockModel(cfg)))
    }

    fn versions(&self) -> Vec<String> {
        vec![format!("edgebench-backend-mock {}", env!("CARGO_PKG_VERSION"))]
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
            kv_cache: None,
            coverage: None,
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

impl MockSession<'_> {
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>, BackendError> {
        self.calls += 1;
        if let (Some(mode), Some(n)) = (self.cfg.fail, self.cfg.fail_at_forward) {
            if self.calls >= n {
                return Err(fail_now(mode));
            }
        }
        // The harness's checked session has refused empty input, ids outside the vocabulary and a full context.
        let last = *tokens.last().expect("the harness refuses empty input");
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
}

impl Session for MockSession<'_> {
    /// Every row is computed as its own single-token step, so a batch and its tokens fed one by one agree.
    fn run(&mut self, tokens: &[u32], rows: Rows) -> Result<Vec<f32>, BackendError> {
        match rows {
            Rows::Last => self.step(tokens),
            Rows::All => tokens.iter().try_fold(Vec::new(), |mut all, &t| {
                all.extend(self.step(&[t])?);
                Ok(all)
            }),
        }
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

    use edgebench_core::{Backend, LoadOptions};

    #[test]
    fn deterministic_logits() {
        let m = Backend::load(&MockBackend, &spec(), &opts(&[("vocab", "100")])).unwrap();
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
        assert!(Backend::load(&MockBackend, &spec(), &opts(&[("fail", "error")])).is_err());
        assert!(Backend::load(&MockBackend, &spec(), &opts(&[("decode_us", "fast")])).is_err());
        let m = Backend::load(&MockBackend, &spec(), &opts(&[("fail", "error"), ("fail_at", "forward:2")])).unwrap();
        let mut s = m.new_session().unwrap();
        assert!(s.forward(&[1]).is_ok());
        assert!(s.forward(&[1]).is_err());
    }

    #[test]
    #[should_panic(expected = "panic requested")]
    fn requested_panic() {
        let _ = Backend::load(&MockBackend, &spec(), &opts(&[("fail", "panic")]));
    }
}

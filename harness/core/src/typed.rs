//! The one seam a backend implements: typed options (serde, unknown keys refused with the list of known ones), a
//! support check, an untimed `prepare` whose output `load` receives, and the load itself. The blanket
//! [`Backend`] implementation does the rest once for every backend: parses `--backend-opt` text into the typed
//! options, checks support before preparing and loading, and wraps each session in the common input checks
//! (empty input, token id outside the vocabulary, context full) so no backend repeats them.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{
    Backend, BackendError, BackendFacts, DeviceRequest, LoadOptions, LoadedModel, ModelSpec, Prepared, Rows, Session,
};

/// What a backend's `check`, `prepare` and `load` receive: the cell's threads and device and the parsed options.
#[derive(Debug)]
pub struct Request<'a, O> {
    /// Compute threads the backend may use, at least 1 (the harness sets them; backends must not exceed them).
    pub threads: usize,
    /// Target device.
    pub device: &'a DeviceRequest,
    /// The backend's options, parsed.
    pub options: &'a O,
}

impl<O> Clone for Request<'_, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O> Copy for Request<'_, O> {}

/// What `prepare` hands to the timed loads, with notes for the results.
#[derive(Debug, Clone, Default)]
pub struct Preparation<P> {
    /// What `load` needs (an export path, …).
    pub value: P,
    /// Notes for the results.
    pub notes: Vec<String>,
}

/// Options of a backend that takes none: any key is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// What a load returns.
pub type Loaded = Result<Box<dyn LoadedModel>, BackendError>;

/// A backend: implement this; the harness uses it through [`Backend`].
pub trait TypedBackend: Send + Sync {
    /// The options `--backend-opt key=value` sets: a struct with `#[serde(deny_unknown_fields)]`, whose
    /// `Default` is the backend's own defaults. Values are read from text (`true`/`false`, numbers, enum variant
    /// names).
    type Options: DeserializeOwned + Default + Debug;

    /// What `prepare` hands to `load` (`()` when nothing).
    type Prepared: Default;

    /// Short name used on the command line and in results (`candle`, `mock`, …).
    const NAME: &'static str;

    /// Whether this request can run at all (device, instruction set, library): an `Unsupported` or
    /// `NotCompiled` error is a skipped cell with its reason. The default accepts every request.
    fn check(&self, _model: &ModelSpec, _req: Request<'_, Self::Options>) -> Result<(), BackendError> {
        Ok(())
    }

    /// Untimed work before the timed loads. The default does nothing.
    fn prepare(
        &self,
        _model: &ModelSpec,
        _req: Request<'_, Self::Options>,
    ) -> Result<Preparation<Self::Prepared>, BackendError> {
        Ok(Preparation::default())
    }

    /// Loads the weights (timed by the harness).
    fn load(&self, model: &ModelSpec, req: Request<'_, Self::Options>, prepared: &Self::Prepared) -> Loaded;

    /// Devices this build can target on this machine. The default: the CPU.
    fn devices(&self) -> Vec<String> {
        vec!["cpu".into()]
    }

    /// Versions of the libraries this backend runs.
    fn versions(&self) -> Vec<String>;
}

/// Parses `--backend-opt` text into a backend's typed options; errors name the backend, the key and the known keys.
pub fn parse_options<O: DeserializeOwned>(
    backend: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<O, BackendError> {
    let text = serde_urlencoded::to_string(options).map_err(|e| BackendError::Unsupported(e.to_string()))?;
    serde_urlencoded::from_str(&text).map_err(|e| {
        let given: Vec<String> = options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        BackendError::Unsupported(format!("{backend} options {}: {e}", given.join(" ")))
    })
}

struct Ready<'a, B: TypedBackend> {
    backend: &'a B,
    model: ModelSpec,
    threads: usize,
    device: DeviceRequest,
    options: B::Options,
    prepared: Preparation<B::Prepared>,
}

impl<B: TypedBackend> Prepared for Ready<'_, B> {
    fn notes(&self) -> &[String] {
        &self.prepared.notes
    }

    fn load(&self) -> Loaded {
        let req = Request { threads: self.threads, device: &self.device, options: &self.options };
        let inner = self.backend.load(&self.model, req, &self.prepared.value)?;
        Ok(Box::new(Checked { inner }))
    }
}

/// The request's options parsed once, after the checks every backend shares (threads ≥ 1), then the backend's own
/// support check.
fn checked_options<B: TypedBackend>(b: &B, model: &ModelSpec, opts: &LoadOptions) -> Result<B::Options, BackendError> {
    if opts.threads == 0 {
        return Err(BackendError::Unsupported("threads must be at least 1".into()));
    }
    let options: B::Options = parse_options(B::NAME, &opts.options)?;
    TypedBackend::check(b, model, Request { threads: opts.threads, device: &opts.device, options: &options })?;
    Ok(options)
}

impl<B: TypedBackend> Backend for B {
    fn name(&self) -> &'static str {
        B::NAME
    }

    fn check_options(&self, options: &std::collections::BTreeMap<String, String>) -> Result<(), BackendError> {
        parse_options::<B::Options>(B::NAME, options).map(|_| ())
    }

    fn check(&self, model: &ModelSpec, opts: &LoadOptions) -> Result<(), BackendError> {
        checked_options(self, model, opts).map(|_| ())
    }

    fn prepare(&self, model: &ModelSpec, opts: &LoadOptions) -> Result<Box<dyn Prepared + '_>, BackendError> {
        let options = checked_options(self, model, opts)?;
        let req = Request { threads: opts.threads, device: &opts.device, options: &options };
        let prepared = TypedBackend::prepare(self, model, req)?;
        Ok(Box::new(Ready {
            backend: self,
            model: model.clone(),
            threads: opts.threads,
            device: opts.device.clone(),
            options,
            prepared,
        }))
    }

    fn devices(&self) -> Vec<String> {
        TypedBackend::devices(self)
    }

    fn versions(&self) -> Vec<String> {
        TypedBackend::versions(self)
    }
}

/// A loaded model whose sessions check their input before the backend sees it.
struct Checked {
    inner: Box<dyn LoadedModel>,
}

impl LoadedModel for Checked {
    fn facts(&self) -> BackendFacts {
        self.inner.facts()
    }

    fn weights_fingerprint(&self) -> Result<Option<(String, String)>, BackendError> {
        self.inner.weights_fingerprint()
    }

    fn batch_variance(&self) -> Option<String> {
        self.inner.batch_variance()
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError> {
        let facts = self.inner.facts();
        Ok(Box::new(CheckedSession {
            inner: self.inner.new_session()?,
            vocab: facts.vocab_size,
            context: facts.context_length,
        }))
    }
}

struct CheckedSession<'a> {
    inner: Box<dyn Session + 'a>,
    vocab: usize,
    context: usize,
}

impl CheckedSession<'_> {
    fn check(&self, tokens: &[u32]) -> Result<(), BackendError> {
        if tokens.is_empty() {
            return Err(BackendError::Runtime("forward called with no tokens".into()));
        }
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(BackendError::Runtime(format!("token id {t} is outside the vocabulary of {}", self.vocab)));
        }
        let needed = self.inner.position() + tokens.len();
        if needed > self.context {
            return Err(BackendError::ContextFull { needed, limit: self.context });
        }
        Ok(())
    }
}

impl Session for CheckedSession<'_> {
    fn run(&mut self, tokens: &[u32], rows: Rows) -> Result<Vec<f32>, BackendError> {
        self.check(tokens)?;
        self.inner.run(tokens, rows)
    }

    fn position(&self) -> usize {
        self.inner.position()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Opts {
        #[serde(default)]
        ctx: Option<u32>,
        #[serde(default)]
        mmap: Option<bool>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Auto,
        On,
    }

    fn parse(kv: &[(&str, &str)]) -> Result<Opts, BackendError> {
        parse_options("test", &kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn options_are_typed_and_unknown_keys_name_the_known_ones() {
        assert_eq!(parse(&[]).unwrap(), Opts::default());
        let o = parse(&[("ctx", "4096"), ("mmap", "false"), ("mode", "on")]).unwrap();
        assert_eq!(o, Opts { ctx: Some(4096), mmap: Some(false), mode: Some(Mode::On) });
        let e = parse(&[("threads", "4")]).unwrap_err().to_string();
        assert!(e.contains("test options threads=4") && e.contains("`ctx`, `mmap`, `mode`"), "{e}");
        let e = parse(&[("ctx", "many")]).unwrap_err().to_string();
        assert!(e.contains("ctx=many"), "{e}");
        let e = parse(&[("mode", "sometimes")]).unwrap_err().to_string();
        assert!(e.contains("expected `auto` or `on`"), "{e}");
        let e = parse_options::<NoOptions>("tract", &[("x".into(), "1".into())].into()).unwrap_err().to_string();
        assert!(e.contains("tract options x=1") && e.contains("unknown field `x`"), "{e}");
    }
}

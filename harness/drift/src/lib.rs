//! Accuracy drift: the evaluation sequences (built-in prompts or a text file), the full-precision reference built
//! once per model and cached, and the check that scores a loaded model against it (KL divergence, same top-1,
//! perplexity ratio).

pub mod check;
pub mod eval;
pub mod reference;

pub use eval::{EvalError, EvalSource, Sequence, DEFAULT_EVAL_CTX};

//! Workloads: what a cell asks of a session, and the timed loop that runs it. The harness owns the clock.

use std::time::Instant;

use edgebench_core::{BackendError, Session};
use serde::{Deserialize, Serialize};

use crate::protocol::Repetition;
use edgebench_core::sampler::Sampler;
use edgebench_models::tokenizer::{chat_prompt_ids, Tokenizer};

/// Text continued to build synthetic prompts (written for this project).
pub const FILLER: &str = "Small language models now run on phones, boards and laptops. Engineers who ship them \
compare runtimes by how fast a prompt is read, how quickly the first word appears, how steadily the next words \
follow, how much memory the process holds and how much energy each token costs. A fair comparison runs the same \
weights on every runtime, repeats each measurement, and reports the spread as well as the middle. ";

/// The prompt of a workload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Prompt {
    /// A user message rendered through the model's chat template.
    Chat {
        /// The user's message.
        text: String,
        /// An optional system message (the template's default applies when absent).
        #[serde(default)]
        system: Option<String>,
    },
    /// Exactly `tokens` tokens of filler text, as llama-bench's ppN uses arbitrary tokens.
    Synthetic {
        /// Prompt length in tokens.
        tokens: usize,
    },
}

/// One workload of a suite.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "WorkloadKeys")]
pub struct Workload {
    /// Name shown in tables (`chat`, `pp512`, `tg128`).
    pub name: String,
    /// The prompt.
    #[serde(flatten)]
    pub prompt: Prompt,
    /// Single-token decode steps after the prompt.
    pub gen_tokens: usize,
}

/// A workload as written, every key of every kind, so that a misspelled key or one of another kind is refused
/// (`#[serde(flatten)]` cannot refuse unknown keys).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadKeys {
    name: String,
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    tokens: Option<usize>,
    gen_tokens: usize,
}

impl TryFrom<WorkloadKeys> for Workload {
    type Error = String;

    fn try_from(k: WorkloadKeys) -> Result<Self, String> {
        let other =
            |key: &str, kind: &str| format!("workload {:?}: key `{key}` is not a key of {kind} workloads", k.name);
        let prompt = match k.kind.as_str() {
            "chat" => {
                if k.tokens.is_some() {
                    return Err(other("tokens", "chat"));
                }
                let text =
                    k.text.clone().ok_or_else(|| format!("workload {:?}: a chat workload needs `text`", k.name))?;
                Prompt::Chat { text, system: k.system.clone() }
            }
            "synthetic" => {
                if let Some(key) = [("text", k.text.is_some()), ("system", k.system.is_some())].iter().find(|x| x.1) {
                    return Err(other(key.0, "synthetic"));
                }
                let tokens =
                    k.tokens.ok_or_else(|| format!("workload {:?}: a synthetic workload needs `tokens`", k.name))?;
                Prompt::Synthetic { tokens }
            }
            kind => return Err(format!("workload {:?}: unknown kind {kind:?} (known: chat, synthetic)", k.name)),
        };
        Ok(Workload { name: k.name, prompt, gen_tokens: k.gen_tokens })
    }
}

/// Errors of a workload.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The prompt could not be built.
    #[error("prompt: {0}")]
    Prompt(String),
    /// The backend returned logits the harness cannot use.
    #[error("backend returned {got} logits; the model's vocabulary has {expected}")]
    Logits {
        /// Logits returned.
        got: usize,
        /// Vocabulary size.
        expected: usize,
    },
}

impl Workload {
    /// The prompt as token ids. A chat prompt for a model without `tokenizer.chat_template` (a base model) is its
    /// plain text (the system text, a blank line, then the user's), as llama.cpp's completion tools feed a prompt;
    /// [`Workload::prompt_note`] says so for the results.
    pub fn prompt_ids(&self, tok: &Tokenizer, chat_template: Option<&str>) -> Result<Vec<u32>, WorkloadError> {
        match &self.prompt {
            Prompt::Chat { text, system } => match chat_template {
                Some(src) => {
                    chat_prompt_ids(tok, src, system.as_deref(), text).map_err(|e| WorkloadError::Prompt(e.to_string()))
                }
                None => {
                    let plain = match system {
                        Some(s) => format!("{s}\n\n{text}"),
                        None => text.clone(),
                    };
                    Ok(tok.encode(&plain, false))
                }
            },
            Prompt::Synthetic { tokens } => {
                if *tokens == 0 {
                    return Err(WorkloadError::Prompt("a synthetic prompt needs at least one token".into()));
                }
                let unit = tok.encode(FILLER, false);
                if unit.is_empty() {
                    return Err(WorkloadError::Prompt("filler text encodes to no tokens".into()));
                }
                Ok(unit.iter().copied().cycle().take(*tokens).collect())
            }
        }
    }
}

impl Workload {
    /// What a reader of the results must know about how the prompt was built: a chat prompt given as plain text to
    /// a model without a chat template.
    pub fn prompt_note(&self, chat_template: Option<&str>) -> Option<String> {
        match (&self.prompt, chat_template) {
            (Prompt::Chat { .. }, None) => Some(format!(
                "workload {}: the model has no tokenizer.chat_template (a base model); its chat prompt was given as \
                 plain text",
                self.name
            )),
            _ => None,
        }
    }
}

/// Phase boundaries of a repetition, where energy meters are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Just before the prompt's forward call.
    PrefillStart,
    /// Just after it and the first token's sampling.
    PrefillEnd,
    /// After the last decode step.
    DecodeEnd,
}

/// Runs one repetition: prefill the prompt, sample, then `gen_tokens` single-token decode steps, each timed with
/// its sampling (as a user waits for it).
pub fn run_repetition(
    session: &mut dyn Session,
    prompt: &[u32],
    gen_tokens: usize,
    sampler: Sampler,
    vocab: usize,
) -> Result<Repetition, WorkloadError> {
    run_repetition_marked(session, prompt, gen_tokens, sampler, vocab, &mut |_| {})
}

/// [`run_repetition`], calling `on_phase` at each [`Phase`] boundary, outside the timed spans.
pub fn run_repetition_marked(
    session: &mut dyn Session,
    prompt: &[u32],
    gen_tokens: usize,
    sampler: Sampler,
    vocab: usize,
    on_phase: &mut dyn FnMut(Phase),
) -> Result<Repetition, WorkloadError> {
    let check = |l: &[f32]| {
        if l.len() == vocab {
            Ok(())
        } else {
            Err(WorkloadError::Logits { got: l.len(), expected: vocab })
        }
    };
    let pick = |l: &[f32]| sampler.sample(l).ok_or_else(|| WorkloadError::Prompt("logits are all NaN".into()));
    on_phase(Phase::PrefillStart);
    let t0 = Instant::now();
    let logits = session.forward(prompt)?;
    let prefill_s = t0.elapsed().as_secs_f64();
    check(&logits)?;
    let mut tok = pick(&logits)?;
    let ttft_s = t0.elapsed().as_secs_f64();
    on_phase(Phase::PrefillEnd);
    let mut generated = vec![tok];
    let mut itl_s = Vec::with_capacity(gen_tokens);
    for _ in 0..gen_tokens {
        let t = Instant::now();
        let logits = session.forward(&[tok])?;
        check(&logits)?;
        tok = pick(&logits)?;
        itl_s.push(t.elapsed().as_secs_f64());
        generated.push(tok);
    }
    on_phase(Phase::DecodeEnd);
    Ok(Repetition {
        warmup: false,
        index: 0,
        prompt_tokens: prompt.len(),
        prefill_s,
        ttft_s,
        itl_s,
        generated,
        started_s: 0.0,
    })
}

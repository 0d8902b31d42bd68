//! Evaluation sets of the drift check: the built-in prompts or a text cut into llama-perplexity's chunks, and the
//! teacher-forced and greedy passes the reference and every candidate run over them. Statistics are
//! llama-perplexity's (`edgebench_stats::accuracy`).

use std::path::PathBuf;

use edgebench_core::drift::DriftLevel;
use edgebench_core::limits::{self, ReadError};
use edgebench_core::{BackendError, Session};
use serde::{Deserialize, Serialize};

use edgebench_core::sampler::Sampler;
use edgebench_models::tokenizer::{chat_prompt_ids, Tokenizer};

/// Chat prompts written for this project; the reference model continues each one greedily and every candidate is
/// scored on that continuation (teacher forcing).
pub const BUILTIN_PROMPTS: &[&str] = &[
    "Describe how a bicycle gear system lets a rider climb steep hills.",
    "Write a short note to a neighbour asking to borrow a ladder on Saturday.",
    "What are three ways to keep bread fresh for longer?",
    "Explain what a compiler does, for someone who has never programmed.",
    "List the steps to repot a houseplant that has outgrown its pot.",
    "Why do some metals rust while others do not?",
    "Summarize the rules of chess in a few sentences.",
    "Give advice to a student preparing for a mathematics exam next week.",
];

/// Prompts and continuation length of the built-in set at each level: (prompts, tokens generated per prompt).
pub fn builtin_size(level: DriftLevel) -> (usize, usize) {
    match level {
        DriftLevel::Full => (8, 64),
        DriftLevel::Short | DriftLevel::Off => (4, 32),
    }
}

/// Default context of `--eval-text` chunks: llama-perplexity's default `-c`.
pub const DEFAULT_EVAL_CTX: usize = 512;

/// Where the scored tokens come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvalSource {
    /// The built-in chat prompts, continued by the reference.
    Builtin,
    /// A UTF-8 text file cut into chunks of `ctx` tokens; the second half of each chunk is scored, as
    /// llama-perplexity does.
    Text {
        /// The file.
        path: PathBuf,
        /// SHA-256 of its bytes.
        sha256: String,
        /// Tokens per chunk.
        ctx: usize,
        /// At most this many chunks (`None`: every whole chunk; a short check uses one).
        max_chunks: Option<usize>,
    },
}

impl EvalSource {
    /// What a reader of the results needs to know about the set.
    pub fn describe(&self, level: DriftLevel) -> String {
        match self {
            EvalSource::Builtin => {
                let (p, g) = builtin_size(level);
                format!(
                    "built-in: {p} chat prompts, each continued greedily by the reference for up to {g} tokens \
                     (an end-of-turn token ends it early), the continuation scored"
                )
            }
            EvalSource::Text { path, sha256, ctx, .. } => format!(
                "text {} (sha256 {}): chunks of {ctx} tokens, the second half of each scored",
                path.display(),
                &sha256[..12.min(sha256.len())]
            ),
        }
    }
}

/// One teacher-forced sequence: logits at positions `first..tokens.len() - 1` score the token after each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// Every token, prompt included.
    pub tokens: Vec<u32>,
    /// First scored position.
    pub first: usize,
}

impl Sequence {
    /// Tokens scored.
    pub fn scored(&self) -> usize {
        self.tokens.len().saturating_sub(self.first + 1)
    }
}

/// Errors building an evaluation set.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The text is too short for one chunk.
    #[error("--eval-text {path}: {tokens} tokens, fewer than one chunk of --eval-ctx {ctx}")]
    TooShort {
        /// The file.
        path: String,
        /// Tokens it holds.
        tokens: usize,
        /// Chunk length.
        ctx: usize,
    },
    /// The chunk length cannot work.
    #[error("--eval-ctx {0}: must be at least 4 tokens")]
    BadCtx(usize),
    /// The file is unreadable or not UTF-8.
    #[error("--eval-text {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The model could not run.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A built-in prompt could not be rendered.
    #[error("prompt: {0}")]
    Prompt(String),
}

/// Cuts a text into llama-perplexity's chunks: the whole text tokenized once (BOS first when the model adds one),
/// split into `ctx`-token chunks (a partial tail is dropped), the first token of each chunk replaced by BOS when the
/// model adds one, and scoring from `ctx / 2`.
pub fn text_chunks(tok: &Tokenizer, text: &str, ctx: usize, max_chunks: Option<usize>) -> Vec<Sequence> {
    let ids = tok.encode(text, false);
    let v = tok.vocab();
    ids.chunks_exact(ctx)
        .take(max_chunks.unwrap_or(usize::MAX))
        .map(|c| {
            let mut tokens = c.to_vec();
            if let (true, Some(bos)) = (v.add_bos, v.bos) {
                tokens[0] = bos;
            }
            Sequence { tokens, first: ctx / 2 }
        })
        .collect()
}

/// Reads and cuts an `--eval-text` file.
pub fn text_sequences(tok: &Tokenizer, src: &EvalSource) -> Result<Vec<Sequence>, EvalError> {
    let EvalSource::Text { path, ctx, max_chunks, .. } = src else {
        return Ok(Vec::new());
    };
    let shown = path.display().to_string();
    if *ctx < 4 {
        return Err(EvalError::BadCtx(*ctx));
    }
    // Bounded: `/dev/zero` or a 1 GB sparse file fails at once with the limit named, before anything is tokenized.
    let bytes = limits::read_bytes(path, limits::EVAL_TEXT, "evaluation text").map_err(|e| EvalError::Read {
        path: shown.clone(),
        message: match e {
            ReadError::Io { error, .. } => error.to_string(),
            ReadError::TooLarge { what, limit_mib, .. } => {
                format!("larger than the {limit_mib} MiB edgebench reads from an {what}")
            }
            ReadError::NotText { what, .. } => format!("not UTF-8 ({what})"),
        },
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| EvalError::Read { path: shown.clone(), message: format!("not UTF-8 ({e})") })?;
    let seqs = text_chunks(tok, &text, *ctx, *max_chunks);
    if seqs.is_empty() {
        return Err(EvalError::TooShort { path: shown, tokens: tok.encode(&text, false).len(), ctx: *ctx });
    }
    Ok(seqs)
}

/// The built-in prompts as token ids (through the chat template when the model has one).
pub fn builtin_prompts(tok: &Tokenizer, template: Option<&str>, level: DriftLevel) -> Result<Vec<Vec<u32>>, EvalError> {
    let (n, _) = builtin_size(level);
    BUILTIN_PROMPTS[..n]
        .iter()
        .map(|text| match template {
            Some(src) => chat_prompt_ids(tok, src, None, text).map_err(|e| EvalError::Prompt(e.to_string())),
            None => Ok(tok.encode(text, false)),
        })
        .collect()
}

/// Greedy continuation of `prompt` by `session` (stops early at an end-of-turn token, which is kept).
pub fn continue_greedily(
    session: &mut dyn Session,
    tok: &Tokenizer,
    prompt: &[u32],
    gen_tokens: usize,
) -> Result<Vec<u32>, BackendError> {
    let mut out = Vec::with_capacity(gen_tokens);
    let mut logits = session.forward(prompt)?;
    while out.len() < gen_tokens {
        let next = Sampler::Greedy
            .sample(&logits)
            .ok_or_else(|| BackendError::Runtime("the reference returned only NaN logits".into()))?;
        out.push(next);
        if tok.is_end(next) || out.len() == gen_tokens {
            break;
        }
        logits = session.forward(&[next])?;
    }
    Ok(out)
}

/// Logit rows of `seq`'s scored positions, `seq.scored() × vocab` values: the context before `first` in one forward
/// call, then every scored position in one `forward_all`. Reference and candidates go through this same function.
pub fn teacher_force(session: &mut dyn Session, seq: &Sequence) -> Result<Vec<f32>, BackendError> {
    let end = seq.tokens.len() - 1;
    if seq.first > 0 {
        session.forward(&seq.tokens[..seq.first])?;
    }
    session.forward_all(&seq.tokens[seq.first..end])
}

/// SHA-256 over a tokenizer's vocabulary (token texts and BOS/EOS), so a reference is only used with the same one.
pub fn tokenizer_hash(tok: &Tokenizer) -> String {
    let v = tok.vocab();
    let mut bytes = Vec::new();
    for t in &v.tokens {
        bytes.extend_from_slice(t.as_bytes());
        bytes.push(0);
    }
    bytes.extend_from_slice(format!("{:?}{:?}{}", v.bos, v.eos, v.add_bos).as_bytes());
    edgebench_models::registry::sha256_hex(&bytes)
}

#[cfg(test)]
mod tests {
    use edgebench_gguf::synth::{tiny_model, TinyConfig};
    use edgebench_gguf::Value;

    use super::*;

    fn tiny_tokenizer(add_bos: bool) -> Tokenizer {
        let mut w = tiny_model(&TinyConfig::default()).unwrap();
        w.kv("tokenizer.ggml.add_bos_token", Value::Bool(add_bos));
        let g = edgebench_gguf::parse(&w.to_bytes().unwrap()).unwrap();
        Tokenizer::from_gguf(&g).unwrap()
    }

    #[test]
    fn text_is_cut_like_llama_perplexity() {
        let tok = tiny_tokenizer(false);
        let text = "the quick brown fox jumps over the lazy dog. ".repeat(20);
        let ids = tok.encode(&text, false);
        let seqs = text_chunks(&tok, &text, 16, None);
        assert_eq!(seqs.len(), ids.len() / 16, "a partial tail is dropped");
        assert!(seqs.iter().all(|s| s.tokens.len() == 16 && s.first == 8 && s.scored() == 7));
        assert_eq!(seqs[1].tokens, ids[16..32]);
        assert_eq!(text_chunks(&tok, &text, 16, Some(2)).len(), 2);

        let with_bos = tiny_tokenizer(true);
        let bos = with_bos.vocab().bos.unwrap();
        let seqs = text_chunks(&with_bos, &text, 16, None);
        assert!(seqs.iter().all(|s| s.tokens[0] == bos), "every chunk starts with BOS");
        assert_eq!(seqs[1].tokens[1..], with_bos.encode(&text, false)[17..32]);
    }

    #[test]
    fn bad_eval_text_is_a_named_error() {
        let tok = tiny_tokenizer(false);
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.txt");
        std::fs::write(&short, "too short").unwrap();
        let src = |path: PathBuf, ctx| EvalSource::Text { path, sha256: "x".into(), ctx, max_chunks: None };
        let e = text_sequences(&tok, &src(short.clone(), 512)).unwrap_err().to_string();
        assert!(e.contains("short.txt") && e.contains("fewer than one chunk"), "{e}");
        let bin = dir.path().join("bin.txt");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
        assert!(text_sequences(&tok, &src(bin, 8)).unwrap_err().to_string().contains("not UTF-8"));
        assert!(matches!(text_sequences(&tok, &src(short, 2)), Err(EvalError::BadCtx(2))));
        let missing = text_sequences(&tok, &src(dir.path().join("missing.txt"), 8)).unwrap_err().to_string();
        assert!(missing.starts_with("--eval-text ") && missing.contains("missing.txt"), "{missing}");
    }

    #[test]
    fn endless_or_huge_eval_text_fails_at_once_with_the_limit() {
        let tok = tiny_tokenizer(false);
        let src = |path: PathBuf| EvalSource::Text { path, sha256: "x".into(), ctx: 8, max_chunks: None };
        let t = std::time::Instant::now();
        let e = text_sequences(&tok, &src("/dev/zero".into())).unwrap_err();
        assert!(matches!(&e, EvalError::Read { path, .. } if path == "/dev/zero"), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("--eval-text /dev/zero") && e.contains("64 MiB") && e.contains("evaluation text"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let sparse = dir.path().join("sparse.txt");
        std::fs::File::create(&sparse).unwrap().set_len(1 << 30).unwrap();
        let e = text_sequences(&tok, &src(sparse)).unwrap_err().to_string();
        assert!(e.contains("sparse.txt") && e.contains("64 MiB"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "refused at once, took {:?}", t.elapsed());
    }
}

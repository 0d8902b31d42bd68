//! Tokenizers built from GGUF metadata: byte-level BPE (`tokenizer.ggml.model = gpt2`) and SentencePiece-style
//! llama vocabularies (`llama`), with control tokens and the model's chat template.
//!
//! The harness owns tokenization: backends only ever see token ids.

mod bpe;
mod chat;
mod spm;

use std::collections::HashMap;

use edgebench_gguf::Gguf;

pub use bpe::PreTokenizer;
pub use chat::{chat_prompt_ids, ChatMessage, ChatTemplate};

/// Errors building or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// Required metadata is missing or malformed.
    #[error("tokenizer metadata: {0}")]
    Metadata(String),
    /// The vocabulary kind or pre-tokenizer is not implemented.
    #[error("unsupported tokenizer: {0}")]
    Unsupported(String),
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    Template(String),
}

/// Token types as stored in `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Ordinary text piece.
    Normal,
    /// `<unk>`.
    Unknown,
    /// Control token (`<|im_start|>`), matched in text only when special tokens are parsed.
    Control,
    /// User-defined token, always matched verbatim.
    UserDefined,
    /// Unused slot.
    Unused,
    /// Byte-fallback token `<0xAB>`.
    Byte,
}

impl TokenType {
    fn from_code(c: i64) -> Self {
        match c {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }
}

/// The shared vocabulary tables.
#[derive(Debug, Clone)]
pub struct Vocab {
    /// Token text by id.
    pub tokens: Vec<String>,
    /// Token type by id.
    pub types: Vec<TokenType>,
    /// Id by text.
    pub index: HashMap<String, u32>,
    /// Beginning-of-sequence token.
    pub bos: Option<u32>,
    /// End-of-sequence token.
    pub eos: Option<u32>,
    /// Whether BOS is prepended to every encoding.
    pub add_bos: bool,
    /// Control and user-defined tokens, longest first, for splitting text.
    specials: Vec<(String, u32)>,
}

impl Vocab {
    /// Builds the tables; `types` may be empty (all normal).
    pub fn new(tokens: Vec<String>, types: Vec<TokenType>, bos: Option<u32>, eos: Option<u32>, add_bos: bool) -> Self {
        let types = if types.len() == tokens.len() { types } else { vec![TokenType::Normal; tokens.len()] };
        let mut index = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            index.entry(t.clone()).or_insert(i as u32);
        }
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (t, ty))| matches!(ty, TokenType::Control | TokenType::UserDefined) && !t.is_empty())
            .map(|(i, (t, _))| (t.clone(), i as u32))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Self { tokens, types, index, bos, eos, add_bos, specials }
    }

    /// Splits `text` into plain segments and special tokens. Control tokens are only recognised when
    /// `parse_special` is set; user-defined tokens always are.
    fn split_specials<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Segment<'t>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            let hit = self.specials.iter().find(|(s, id)| {
                rest.starts_with(s.as_str()) && (parse_special || self.types[*id as usize] == TokenType::UserDefined)
            });
            match hit {
                Some((s, id)) => {
                    if start < i {
                        out.push(Segment::Text(&text[start..i]));
                    }
                    out.push(Segment::Special(*id));
                    i += s.len();
                    start = i;
                }
                None => i += rest.chars().next().map_or(1, char::len_utf8),
            }
        }
        if start < text.len() {
            out.push(Segment::Text(&text[start..]));
        }
        out
    }
}

enum Segment<'t> {
    Text(&'t str),
    Special(u32),
}

/// A tokenizer for one model.
#[derive(Debug, Clone)]
pub enum Tokenizer {
    /// Byte-level BPE (GPT-2 family: SmolLM, Llama 3, Qwen, StarCoder).
    Bpe(bpe::Bpe),
    /// SentencePiece-style (Llama 1/2, Mistral, TinyLlama).
    Spm(spm::Spm),
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes.
    pub fn from_gguf(g: &Gguf) -> Result<Self, TokenizerError> {
        let meta = |e: edgebench_gguf::GgufError| TokenizerError::Metadata(e.to_string());
        let model = g.str("tokenizer.ggml.model").map_err(meta)?;
        let tokens: Vec<String> = g
            .array("tokenizer.ggml.tokens")
            .map_err(meta)?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| TokenizerError::Metadata("tokenizer.ggml.tokens holds non-strings".into()))?;
        let types = match g.get("tokenizer.ggml.token_type").and_then(|v| v.as_array()) {
            Some(a) => a.iter().map(|v| TokenType::from_code(v.as_i64().unwrap_or(1))).collect(),
            None => Vec::new(),
        };
        let id = |k: &str| g.get(k).and_then(|v| v.as_u64()).map(|v| v as u32).filter(|&v| (v as usize) < tokens.len());
        let (bos, eos) = (id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.eos_token_id"));
        let flag = |k: &str| g.get(k).and_then(|v| v.as_bool());
        match model {
            "gpt2" => {
                let merges: Vec<String> = match g.get("tokenizer.ggml.merges").and_then(|v| v.as_array()) {
                    Some(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                    None => {
                        return Err(TokenizerError::Metadata("gpt2 vocabulary without tokenizer.ggml.merges".into()))
                    }
                };
                let pre =
                    PreTokenizer::from_name(g.get("tokenizer.ggml.pre").and_then(|v| v.as_str()).unwrap_or("default"))?;
                let vocab = Vocab::new(tokens, types, bos, eos, flag("tokenizer.ggml.add_bos_token").unwrap_or(false));
                Ok(Self::Bpe(bpe::Bpe::new(vocab, &merges, pre)?))
            }
            "llama" => {
                let scores: Vec<f32> = match g.get("tokenizer.ggml.scores").and_then(|v| v.as_array()) {
                    Some(a) => a.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect(),
                    None => vec![0.0; tokens.len()],
                };
                let vocab = Vocab::new(tokens, types, bos, eos, flag("tokenizer.ggml.add_bos_token").unwrap_or(true));
                Ok(Self::Spm(spm::Spm::new(vocab, scores, flag("tokenizer.ggml.add_space_prefix").unwrap_or(true))))
            }
            other => Err(TokenizerError::Unsupported(format!("tokenizer.ggml.model = {other:?} (gpt2 and llama are)"))),
        }
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        match self {
            Self::Bpe(b) => &b.vocab,
            Self::Spm(s) => &s.vocab,
        }
    }

    /// Token ids for `text`; BOS is prepended when the model asks for it. With `parse_special`, control-token
    /// text (`<|im_start|>`) becomes the control token, as chat templates need.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let v = self.vocab();
        let mut out = Vec::new();
        if v.add_bos {
            out.extend(v.bos);
        }
        let mut first_text = true;
        for seg in v.split_specials(text, parse_special) {
            match seg {
                Segment::Special(id) => out.push(id),
                Segment::Text(t) => {
                    match self {
                        Self::Bpe(b) => b.encode_segment(t, &mut out),
                        Self::Spm(s) => s.encode_segment(t, first_text, &mut out),
                    }
                    first_text = false;
                }
            }
        }
        out
    }

    /// The bytes of one token (control tokens give their text).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        match self {
            Self::Bpe(b) => b.token_bytes(id),
            Self::Spm(s) => s.token_bytes(id),
        }
    }

    /// Text of `ids`; invalid UTF-8 (a token boundary inside a character) is replaced.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id)).collect();
        if let Self::Spm(s) = self {
            if s.add_space_prefix && bytes.first() == Some(&b' ') && ids.first().is_some_and(|&i| !s.is_special(i)) {
                bytes.remove(0);
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Whether `id` ends generation (EOS, or a control token such as `<|im_end|>`).
    pub fn is_end(&self, id: u32) -> bool {
        let v = self.vocab();
        Some(id) == v.eos || v.tokens.get(id as usize).is_some_and(|t| t == "<|im_end|>" || t == "<|eot_id|>")
    }
}

#[cfg(test)]
mod tests;

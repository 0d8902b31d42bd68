//! Byte-level BPE as GPT-2 defined it: pre-tokenize with the model family's regexes, map bytes to the byte-level
//! alphabet, then apply merges lowest rank first.

use std::collections::HashMap;

use edgebench_gguf::bytelevel;
use fancy_regex::Regex;

use super::{TokenType, TokenizerError, Vocab};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's: Llama 3's with digits one at a time.
const QWEN2: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regex chain that splits text into words before BPE, chosen by `tokenizer.ggml.pre`.
#[derive(Debug, Clone)]
pub struct PreTokenizer {
    /// The `tokenizer.ggml.pre` name it was built for.
    pub name: String,
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` value, as llama.cpp maps them.
    pub fn from_name(name: &str) -> Result<Self, TokenizerError> {
        let patterns: &[&str] = match name {
            // Digits split one by one, then GPT-2's pattern (StarCoder family, SmolLM).
            "smollm" | "starcoder" | "refact" | "codeshell" | "command-r" => &[r"\p{N}", GPT2],
            "gpt2" | "default" | "mpt" | "olmo" | "jais" => &[GPT2],
            "llama3" | "llama-bpe" | "dbrx" | "smaug-bpe" => &[LLAMA3],
            "qwen2" | "deepseek-r1-qwen" => &[QWEN2],
            other => return Err(TokenizerError::Unsupported(format!("pre-tokenizer {other:?}"))),
        };
        let regexes = patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| TokenizerError::Unsupported(format!("regex {p:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(Self { name: name.into(), regexes })
    }

    /// Splits `text` into words: each regex in turn splits every piece into its matches and the gaps between them.
    pub fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut pieces = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for p in pieces {
                let mut last = 0;
                for m in re.find_iter(p).flatten() {
                    if m.start() > last {
                        next.push(&p[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    last = m.end();
                }
                if last < p.len() {
                    next.push(&p[last..]);
                }
            }
            pieces = next;
        }
        pieces
    }
}

/// A byte-level BPE tokenizer.
#[derive(Debug, Clone)]
pub struct Bpe {
    pub(super) vocab: Vocab,
    /// (left, right) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    byte_ids: Box<[Option<u32>; 256]>,
    pre: PreTokenizer,
}

impl Bpe {
    /// Builds the merge table.
    ///
    /// Vocabularies may lack tokens for bytes that (almost) never occur in UTF-8 text: SmolLM2's lacks 21, such as
    /// 0x04 and 0xC0. Like llama.cpp and Hugging Face tokenizers, encoding drops such bytes; see
    /// [`Bpe::missing_bytes`].
    pub fn new(vocab: Vocab, merges: &[String], pre: PreTokenizer) -> Result<Self, TokenizerError> {
        let mut byte_ids = Box::new([None; 256]);
        for b in 0u8..=255 {
            byte_ids[b as usize] = vocab.index.get(&bytelevel::byte_to_char(b).to_string()).copied();
        }
        let mut table = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let (a, b) = m
                .split_once(' ')
                .ok_or_else(|| TokenizerError::Metadata(format!("merge {rank} ({m:?}) is not two tokens")))?;
            let ids = (vocab.index.get(a), vocab.index.get(b), vocab.index.get(&format!("{a}{b}")));
            if let (Some(&l), Some(&r), Some(&merged)) = ids {
                table.entry((l, r)).or_insert((rank as u32, merged));
            }
        }
        Ok(Self { vocab, merges: table, byte_ids, pre })
    }

    /// Bytes the vocabulary has no token for (dropped when encoding).
    pub fn missing_bytes(&self) -> Vec<u8> {
        (0u8..=255).filter(|&b| self.byte_ids[b as usize].is_none()).collect()
    }

    pub(super) fn encode_segment(&self, text: &str, out: &mut Vec<u32>) {
        for word in self.pre.split(text) {
            let mut syms: Vec<u32> = word.bytes().filter_map(|b| self.byte_ids[b as usize]).collect();
            loop {
                let best = syms
                    .windows(2)
                    .enumerate()
                    .filter_map(|(i, w)| self.merges.get(&(w[0], w[1])).map(|&(rank, id)| (rank, i, id)))
                    .min();
                let Some((_, i, id)) = best else { break };
                syms[i] = id;
                syms.remove(i + 1);
            }
            out.extend(syms);
        }
    }

    pub(super) fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(text) = self.vocab.tokens.get(id as usize) else {
            return Vec::new();
        };
        match self.vocab.types[id as usize] {
            TokenType::Control | TokenType::UserDefined | TokenType::Unknown => text.as_bytes().to_vec(),
            _ => {
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match bytelevel::char_to_byte(c) {
                        Some(b) => out.push(b),
                        None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                out
            }
        }
    }
}

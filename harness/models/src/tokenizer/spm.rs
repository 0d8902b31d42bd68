//! SentencePiece-style tokenization of llama GGUF vocabularies: spaces become `▁`, adjacent symbols merge by the
//! highest vocabulary score (leftmost first on ties), and pieces outside the vocabulary fall back to byte tokens.

use super::{TokenType, Vocab};

/// A SentencePiece-style tokenizer.
#[derive(Debug, Clone)]
pub struct Spm {
    pub(super) vocab: Vocab,
    scores: Vec<f32>,
    pub(super) add_space_prefix: bool,
    byte_ids: Vec<Option<u32>>,
    unk: Option<u32>,
}

impl Spm {
    /// Builds the tables.
    pub fn new(vocab: Vocab, scores: Vec<f32>, add_space_prefix: bool) -> Self {
        let byte_ids = (0u8..=255).map(|b| vocab.index.get(&format!("<0x{b:02X}>")).copied()).collect();
        let unk = vocab.types.iter().position(|t| *t == TokenType::Unknown).map(|i| i as u32);
        let scores = if scores.len() == vocab.tokens.len() { scores } else { vec![0.0; vocab.tokens.len()] };
        Self { vocab, scores, add_space_prefix, byte_ids, unk }
    }

    pub(super) fn is_special(&self, id: u32) -> bool {
        matches!(self.vocab.types.get(id as usize), Some(TokenType::Control | TokenType::UserDefined))
    }

    pub(super) fn encode_segment(&self, text: &str, first: bool, out: &mut Vec<u32>) {
        let mut s = String::with_capacity(text.len() + 3);
        if first && self.add_space_prefix {
            s.push('▁');
        }
        s.push_str(&text.replace(' ', "▁"));
        // Symbols are byte ranges of `s`, one UTF-8 character each to start with.
        let mut syms: Vec<(usize, usize)> = s.char_indices().map(|(i, c)| (i, i + c.len_utf8())).collect();
        loop {
            let mut best: Option<(f32, usize, u32)> = None;
            for i in 0..syms.len().saturating_sub(1) {
                let piece = &s[syms[i].0..syms[i + 1].1];
                if let Some(&id) = self.vocab.index.get(piece) {
                    let score = self.scores[id as usize];
                    if best.is_none_or(|(b, _, _)| score > b) {
                        best = Some((score, i, id));
                    }
                }
            }
            let Some((_, i, _)) = best else { break };
            syms[i].1 = syms[i + 1].1;
            syms.remove(i + 1);
        }
        for (a, b) in syms {
            match self.vocab.index.get(&s[a..b]) {
                Some(&id) => out.push(id),
                None => {
                    for byte in s[a..b].bytes() {
                        out.extend(self.byte_ids[byte as usize].or(self.unk));
                    }
                }
            }
        }
    }

    pub(super) fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(text) = self.vocab.tokens.get(id as usize) else {
            return Vec::new();
        };
        match self.vocab.types[id as usize] {
            TokenType::Byte => {
                let hex = text.trim_start_matches("<0x").trim_end_matches('>');
                u8::from_str_radix(hex, 16).map(|b| vec![b]).unwrap_or_default()
            }
            TokenType::Control | TokenType::UserDefined => text.as_bytes().to_vec(),
            _ => text.replace('▁', " ").into_bytes(),
        }
    }
}

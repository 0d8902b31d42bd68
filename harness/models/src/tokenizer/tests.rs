//! Tokenizer tests on the tiny synthetic vocabulary and a hand-made SentencePiece vocabulary.

use super::*;
use edgebench_gguf::synth::{tiny_model, TinyConfig, CHAT_TEMPLATE};
use proptest::prelude::*;

fn tiny_bpe() -> Tokenizer {
    let bytes = tiny_model(&TinyConfig::default()).unwrap().to_bytes().unwrap();
    Tokenizer::from_gguf(&edgebench_gguf::parse(&bytes).unwrap()).unwrap()
}

fn pieces(t: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&i| t.vocab().tokens[i as usize].clone()).collect()
}

fn tiny_spm() -> Tokenizer {
    let (tokens, types, scores) = edgebench_gguf::synth::spm_vocabulary();
    let types = types.into_iter().map(|t| TokenType::from_code(t as i64)).collect();
    let vocab = Vocab::new(tokens, types, Some(1), Some(2), true);
    Tokenizer::Spm(spm::Spm::new(vocab, scores, true))
}

#[test]
fn bpe_applies_merges_by_rank() {
    let t = tiny_bpe();
    assert_eq!(pieces(&t, &t.encode("the", false)), ["t", "he"]);
    assert_eq!(pieces(&t, &t.encode(" the", false)), ["Ġthe"]);
    assert_eq!(pieces(&t, &t.encode("in there", false)), ["in", "Ġthe", "re"]);
}

#[test]
fn smollm_pre_tokenizer_splits_digits_one_by_one() {
    let t = tiny_bpe();
    assert_eq!(pieces(&t, &t.encode("x 123", false)), ["x", "Ġ", "1", "2", "3"]);
    let pre = PreTokenizer::from_name("smollm").unwrap();
    assert_eq!(pre.split("I'm 42!  ok"), ["I", "'m", " ", "4", "2", "!", " ", " ok"]);
    assert!(PreTokenizer::from_name("no-such-pre").is_err());
}

#[test]
fn control_tokens_only_when_parsing_special() {
    let t = tiny_bpe();
    let with = t.encode("<|im_start|>user", true);
    assert_eq!(with[0], 1);
    let without = t.encode("<|im_start|>user", false);
    assert!(!without.contains(&1) && without.len() > 5);
    assert_eq!(t.decode(&with), "<|im_start|>user");
    assert_eq!(t.decode(&without), "<|im_start|>user");
    assert!(t.is_end(2));
}

#[test]
fn chat_template_renders_chatml() {
    let tmpl = ChatTemplate::new(CHAT_TEMPLATE, "", "").unwrap();
    let msg = |role: &str, content: &str| ChatMessage { role: role.into(), content: content.into() };
    let text = tmpl.render(&[msg("system", "Be brief."), msg("user", "Hi")]).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert!(ChatTemplate::new("{% for %}", "", "").is_err());
}

#[test]
fn spm_merges_by_score_with_byte_fallback() {
    let t = tiny_spm();
    let ids = t.encode("hello", true);
    assert_eq!(pieces(&t, &ids), ["<s>", "▁hello"]);
    let ids = t.encode("hello é", true);
    assert_eq!(pieces(&t, &ids), ["<s>", "▁hello", "▁", "<0xC3>", "<0xA9>"]);
    assert_eq!(t.decode(&ids[1..]), "hello é");
}

proptest! {
    #[test]
    fn bpe_round_trips_any_text(s in "\\PC{0,40}") {
        let t = tiny_bpe();
        prop_assert_eq!(t.decode(&t.encode(&s, false)), s);
    }

    #[test]
    fn bpe_round_trips_with_specials(a in "[a-z ]{0,10}", b in "\\PC{0,10}") {
        let t = tiny_bpe();
        let s = format!("{a}<|im_start|>{b}<|im_end|>");
        prop_assert_eq!(t.decode(&t.encode(&s, true)), s);
    }

    #[test]
    fn spm_round_trips_any_text(s in "[^\u{2581}]{0,30}") {
        let t = tiny_spm();
        let ids = t.encode(&s, false);
        prop_assert_eq!(t.decode(&ids[1..]), s);
    }
}

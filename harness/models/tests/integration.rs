//! Models integration tests on the real default model: tokenizer against golden ids from an independent
//! implementation, and chat template rendering.

use edgebench_gguf::GgufFile;
use edgebench_models::registry;
use edgebench_models::tokenizer::{chat_prompt_ids, ChatMessage, ChatTemplate, Tokenizer};

fn real_model() -> GgufFile {
    let m = registry::lookup(None).unwrap();
    let path = registry::ensure(&m, &mut |l| eprintln!("{l}")).expect("the default model must be fetchable");
    GgufFile::open(path).unwrap()
}

#[derive(serde::Deserialize)]
struct Golden {
    source: String,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn tokenizer_matches_hugging_face_on_the_real_vocabulary() {
    let golden: Golden = serde_json::from_str(include_str!("../../../suites/golden/smollm2-tokenizer.json")).unwrap();
    assert!(golden.source.contains("tokenizers"));
    let tok = Tokenizer::from_gguf(&real_model().gguf).unwrap();
    let mut mismatches = Vec::new();
    for c in &golden.cases {
        let ids = tok.encode(&c.text, true);
        if ids != c.ids {
            mismatches.push(format!("{:?}\n  ours {:?}\n  gold {:?}", c.text, ids, c.ids));
        }
        assert_eq!(tok.decode(&ids), c.text, "round trip");
    }
    assert!(mismatches.is_empty(), "{} of {} differ:\n{}", mismatches.len(), golden.cases.len(), mismatches.join("\n"));
}

#[test]
fn tokenizer_round_trips_text_without_missing_bytes() {
    let tok = Tokenizer::from_gguf(&real_model().gguf).unwrap();
    let Tokenizer::Bpe(bpe) = &tok else { panic!("SmolLM2 uses byte-level BPE") };
    assert_eq!(bpe.missing_bytes().len(), 21, "SmolLM2 lacks 21 byte tokens (0x04, 0xC0, 0xFF, …)");
    let text = "Grüße aus Köln — 42 °C, ½ price; 日本語のテキスト; emoji 🎉; tabs\tand\r\nCRLF";
    assert_eq!(tok.decode(&tok.encode(text, false)), text);
}

#[test]
fn chat_template_of_the_real_model_renders() {
    let f = real_model();
    let src = f.gguf.str("tokenizer.chat_template").unwrap();
    let t = ChatTemplate::new(src, "<|im_start|>", "<|im_end|>").unwrap();
    let text = t.render(&[ChatMessage { role: "user".into(), content: "Hi".into() }]).unwrap();
    assert!(text.starts_with("<|im_start|>system\n"), "default system prompt first: {text:?}");
    assert!(text.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), "{text:?}");
    let tok = Tokenizer::from_gguf(&f.gguf).unwrap();
    let ids = chat_prompt_ids(&tok, src, None, "Hi").unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> is a control token");
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 2, "two <|im_end|>");
}

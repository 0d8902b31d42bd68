//! Runner integration tests: workload prompts on the real default model, and whole runs of the mock backend in
//! child processes (the `edgebench` binary's `cell` subcommand is not available here, so the child is this test
//! binary itself, re-entered through `EDGEBENCH_TEST_CHILD`).

use edgebench_gguf::GgufFile;
use edgebench_models::registry;
use edgebench_models::tokenizer::Tokenizer;
use edgebench_runner::workload::{Prompt, Workload};

#[test]
fn workload_prompts_on_the_real_model() {
    let m = registry::lookup(None).unwrap();
    let path = registry::ensure(&m, &mut |l| eprintln!("{l}")).expect("the default model must be fetchable");
    let f = GgufFile::open(path).unwrap();
    let src = f.gguf.str("tokenizer.chat_template").unwrap();
    let tok = Tokenizer::from_gguf(&f.gguf).unwrap();
    let w = Workload { name: "w".into(), prompt: Prompt::Chat { text: "Hi".into(), system: None }, gen_tokens: 1 };
    let ids = w.prompt_ids(&tok, Some(src)).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> is a control token");
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 2, "two <|im_end|>");
    let pp = Workload { name: "pp".into(), prompt: Prompt::Synthetic { tokens: 512 }, gen_tokens: 0 };
    assert_eq!(pp.prompt_ids(&tok, None).unwrap().len(), 512);
    let none = Workload { name: "c".into(), prompt: Prompt::Chat { text: "Hi".into(), system: None }, gen_tokens: 1 };
    // A base model's chat prompt is the plain text, BOS as the vocabulary asks, and the results say so.
    assert_eq!(none.prompt_ids(&tok, None).unwrap(), tok.encode("Hi", false));
    assert!(none.prompt_note(None).unwrap().contains("no tokenizer.chat_template"));
    assert_eq!((w.prompt_note(Some(src)), pp.prompt_note(None)), (None, None));
}

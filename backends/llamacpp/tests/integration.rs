//! llama.cpp backend: the shared conformance suite on tiny generated models and on the real default model; greedy
//! generation against the recorded llama.cpp golden; logits against candle on the same file; clear errors.
#![cfg(feature = "llama-cpp")]

use edgebench_backend_candle::CandleBackend;
use edgebench_backend_llamacpp::LlamaCppBackend;
use edgebench_core::tolerance::LOGITS_CROSS_BACKEND;
use edgebench_core::{Backend, BackendError, DeviceRequest, LoadOptions, ModelSpec};
use edgebench_gguf::synth::{tiny_llama, TinyConfig};
use edgebench_gguf::GgmlType;
use edgebench_runner::sampler::Sampler;
use edgebench_runner::tokenizer::Tokenizer;
use edgebench_runner::{conformance, registry, workload};
use edgebench_stats::drift::LogitComparison;

fn tiny(dir: &std::path::Path, weight_type: GgmlType, embd_type: GgmlType) -> ModelSpec {
    let path = dir.join(format!("tiny-{weight_type}-{embd_type}.gguf"));
    tiny_llama(&TinyConfig { weight_type, embd_type, ..TinyConfig::default() }).unwrap().write(&path).unwrap();
    ModelSpec { id: "tiny".into(), path }
}

fn real_model() -> ModelSpec {
    let m = registry::lookup(None).unwrap();
    let path = registry::ensure(&m, &mut |l| eprintln!("{l}")).expect("the default model must be fetchable");
    ModelSpec { id: m.id, path }
}

fn opts(kv: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        threads: 2,
        device: DeviceRequest::cpu(),
        options: kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

#[test]
fn conforms_on_tiny_models_of_every_weight_type() {
    let dir = tempfile::tempdir().unwrap();
    for (w, e) in [
        (GgmlType::Q4_1, GgmlType::Q8_0),
        (GgmlType::Q4_0, GgmlType::Q8_0),
        (GgmlType::Q8_0, GgmlType::Q8_0),
        (GgmlType::F16, GgmlType::F16),
        (GgmlType::F32, GgmlType::F32),
    ] {
        let spec = tiny(dir.path(), w, e);
        conformance::run_all(&LlamaCppBackend, &spec, 2).unwrap_or_else(|f| panic!("{w} weights, {e} embedding: {f}"));
    }
}

#[test]
fn real_model_conforms_and_reports_its_build() {
    let spec = real_model();
    conformance::run_all(&LlamaCppBackend, &spec, 2).unwrap();
    let f = LlamaCppBackend.load(&spec, &opts(&[])).unwrap().facts();
    assert!(f.versions[0].contains(edgebench_backend_llamacpp::LLAMA_CPP_SYS_VERSION), "{:?}", f.versions);
    assert!(f.kernel_path.starts_with("llama.cpp CPU:"), "{}", f.kernel_path);
    assert!(f.notes.iter().any(|n| n.starts_with("mmap on, CPU weight repacking on")), "{:?}", f.notes);
    assert_eq!((f.threads, f.vocab_size, f.context_length, f.converted), (2, 49152, 2048, None));
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = ModelSpec { id: "x".into(), path: dir.path().join("missing.gguf") };
    let err = LlamaCppBackend.load(&missing, &opts(&[])).err().unwrap().to_string();
    assert!(err.contains("missing.gguf") && err.contains("no such file"), "{err}");

    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF\x03\x00\x00\x00this is not a model").unwrap();
    let err = LlamaCppBackend.load(&ModelSpec { id: "g".into(), path: garbage }, &opts(&[])).err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, BackendError::Load { .. }) && text.contains("garbage.gguf"), "{text}");
    assert!(text.contains("llama.cpp"), "llama.cpp's own reason should be quoted: {text}");

    let spec = tiny(dir.path(), GgmlType::Q8_0, GgmlType::Q8_0);
    let err = LlamaCppBackend.load(&spec, &opts(&[("flash_attn", "maybe")])).err().unwrap().to_string();
    assert!(err.contains("flash_attn"), "{err}");
}

#[test]
fn options_change_what_runs_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny(dir.path(), GgmlType::Q4_0, GgmlType::Q8_0);
    // llama.cpp rounds the context up to a multiple of 256; the facts report what it allocated.
    let m = LlamaCppBackend.load(&spec, &opts(&[("ctx", "300"), ("mmap", "false"), ("repack", "false")])).unwrap();
    let f = m.facts();
    assert_eq!(f.context_length, 512);
    assert!(f.notes.iter().any(|n| n.starts_with("mmap off, CPU weight repacking off")), "{:?}", f.notes);
    let mut s = m.new_session().unwrap();
    assert!(matches!(s.forward(&[1; 513]), Err(BackendError::ContextFull { needed: 513, limit: 512 })));
    // A batch larger than `batch` is split into several decodes and still gives the last token's logits.
    let small = LlamaCppBackend.load(&spec, &opts(&[("batch", "4"), ("ubatch", "4")])).unwrap();
    let whole = LlamaCppBackend.load(&spec, &opts(&[])).unwrap();
    let prompt: Vec<u32> = (1..=11).collect();
    let a = small.new_session().unwrap().forward(&prompt).unwrap();
    let b = whole.new_session().unwrap().forward(&prompt).unwrap();
    edgebench_core::tolerance::LOGITS_BATCH_VS_INCREMENTAL.check(&a, &b).unwrap();
}

const QUESTION: &str = "Explain in two sentences why the sky is blue.";

fn prompt_ids(spec: &ModelSpec) -> (Tokenizer, Vec<u32>) {
    let file = edgebench_gguf::GgufFile::open(&spec.path).unwrap();
    let tok = Tokenizer::from_gguf(&file.gguf).unwrap();
    let template = file.gguf.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string);
    let w = workload::Workload {
        name: "t".into(),
        prompt: workload::Prompt::Chat { text: QUESTION.into(), system: None },
        gen_tokens: 0,
    };
    let ids = w.prompt_ids(&tok, template.as_deref()).unwrap();
    (tok, ids)
}

#[derive(serde::Deserialize)]
struct LlamaCppGolden {
    model_sha256: String,
    prompt_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
}

fn golden() -> LlamaCppGolden {
    let g: LlamaCppGolden =
        serde_json::from_str(include_str!("../../../suites/golden/smollm2-llamacpp-greedy.json")).unwrap();
    assert_eq!(g.model_sha256, registry::lookup(None).unwrap().sha256);
    g
}

#[test]
fn real_model_greedy_generation_matches_the_llama_cpp_golden() {
    let spec = real_model();
    let g = golden();
    let (tok, prompt) = prompt_ids(&spec);
    assert_eq!(prompt, g.prompt_ids, "harness tokenization differs from llama.cpp's");
    let model = LlamaCppBackend.load(&spec, &opts(&[])).unwrap();
    let vocab = model.facts().vocab_size;
    let n = g.greedy_ids.len();
    let run = || {
        let mut s = model.new_session().unwrap();
        workload::run_repetition(s.as_mut(), &prompt, n - 1, Sampler::Greedy, vocab).unwrap().generated
    };
    let ids = run();
    assert_eq!(ids, run(), "a reused context must give the same tokens");
    eprintln!("llamacpp greedy: {:?}", tok.decode(&ids));
    assert_eq!(ids, g.greedy_ids, "greedy ids differ from the llama.cpp golden: {:?}", tok.decode(&ids));
}

#[test]
fn real_model_logits_agree_with_candle() {
    let spec = real_model();
    let g = golden();
    let (_, prompt) = prompt_ids(&spec);
    let reference = LlamaCppBackend.load(&spec, &opts(&[])).unwrap();
    let candidate = CandleBackend.load(&spec, &opts(&[])).unwrap();
    let (mut r, mut c) = (reference.new_session().unwrap(), candidate.new_session().unwrap());
    let mut cmp = LogitComparison::default();
    cmp.add(&r.forward(&prompt).unwrap(), &c.forward(&prompt).unwrap());
    // Teacher-forced: both engines see the same (golden) tokens, so one early near-tie cannot derail the rest.
    for &t in &g.greedy_ids[..g.greedy_ids.len() - 1] {
        cmp.add(&r.forward(&[t]).unwrap(), &c.forward(&[t]).unwrap());
    }
    eprintln!(
        "llama.cpp vs candle over {} positions: mean KLD {:.5} nats, max KLD {:.5}, top-1 agreement {:.1}%, max |Δlogit| {:.3}",
        cmp.positions(),
        cmp.mean_kld(),
        cmp.max_kld(),
        cmp.top1_agreement() * 100.0,
        cmp.max_abs_diff
    );
    LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap();
}

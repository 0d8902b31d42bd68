//! llama.cpp backend: the shared conformance suite on tiny generated models and on the real default model; greedy
//! generation against the recorded llama.cpp golden; logits against candle on the same file; clear errors.
#![cfg(feature = "llama-cpp")]

use edgebench_backend_candle::CandleBackend;
use edgebench_backend_llamacpp::LlamaCppBackend;
use edgebench_backend_native::NativeBackend;
use edgebench_core::sampler::Sampler;
use edgebench_core::tolerance::{LOGITS_CROSS_BACKEND, TINY_MAX_ABS_LOGIT_DIFF};
use edgebench_core::{Backend, BackendError, ModelSpec};
use edgebench_gguf::arch::Arch;
use edgebench_gguf::synth::TinyConfig;
use edgebench_gguf::GgmlType;
use edgebench_runner::workload;
use edgebench_stats::drift::LogitComparison;
use edgebench_testkit::conformance;
use edgebench_testkit::fixtures::{
    compare_short_exchange, compare_teacher_forced, golden_prompt, llama_cpp_golden, opts, real_model, registry_model,
    tiny_arch_model, tiny_k_quant_model, tiny_model as tiny, GEMMA3_ID, TINY_ARCHS, TINY_TYPES,
};

#[test]
fn conforms_on_tiny_models_of_every_weight_type() {
    let dir = tempfile::tempdir().unwrap();
    for &(w, e) in TINY_TYPES {
        let spec = tiny(dir.path(), w, e);
        conformance::run_all(&LlamaCppBackend, &spec, 2).unwrap_or_else(|f| panic!("{w} weights, {e} embedding: {f}"));
    }
}

/// Every architecture on tiny models, llama.cpp the oracle: llama.cpp passes the conformance suite; the native
/// engine's (on its best and its scalar kernels), candle's, ort's (default: fused graph, int8 activations) and
/// tract's logits agree with llama.cpp's within `LOGITS_CROSS_BACKEND` and `TINY_MAX_ABS_LOGIT_DIFF` over an
/// 11-token prompt (longer than the tiny Gemma 3's 8-position window) and three steps, for Q4_0, Q5_0 and Q8_0
/// weights and, on 256-wide llama and gemma3 models, Q4_K, Q5_K and Q6_K; native and candle pass the conformance
/// suite (ort's and tract's own tests run it).
#[test]
fn every_architecture_agrees_with_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    for &(arch, rope_freqs) in TINY_ARCHS {
        for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            let spec = tiny_arch_model(dir.path(), arch, rope_freqs, ty);
            let what = format!("{} ({ty}{})", arch.name(), if rope_freqs { ", rope factors" } else { "" });
            conformance::run_all(&LlamaCppBackend, &spec, 2).unwrap_or_else(|f| panic!("llama.cpp on {what}: {f}"));
            let reference = LlamaCppBackend.load(&spec, &opts(&[])).unwrap();
            for kernels in ["auto", "scalar"] {
                let native = NativeBackend.load(&spec, &opts(&[("kernels", kernels)])).unwrap();
                let cmp = compare_short_exchange(reference.as_ref(), native.as_ref());
                eprintln!(
                    "{what}, native {kernels}: mean KLD {:.5}, top-1 {:.0}%, max |Δlogit| {:.3}",
                    cmp.mean_kld(),
                    cmp.top1_agreement() * 100.0,
                    cmp.max_abs_diff
                );
                LOGITS_CROSS_BACKEND
                    .check(cmp.mean_kld(), cmp.top1_agreement())
                    .unwrap_or_else(|e| panic!("native ({kernels}) against llama.cpp on {what}: {e}"));
                assert!(
                    cmp.max_abs_diff <= TINY_MAX_ABS_LOGIT_DIFF,
                    "native ({kernels}) against llama.cpp on {what}: max |Δlogit| {}",
                    cmp.max_abs_diff
                );
            }
            conformance::run_all(&NativeBackend, &spec, 2).unwrap_or_else(|f| panic!("native on {what}: {f}"));
            let candle = CandleBackend.load(&spec, &opts(&[])).unwrap();
            let cmp = compare_short_exchange(reference.as_ref(), candle.as_ref());
            eprintln!("{what}, candle: mean KLD {:.5}, max |Δlogit| {:.3}", cmp.mean_kld(), cmp.max_abs_diff);
            LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap();
            assert!(cmp.max_abs_diff <= TINY_MAX_ABS_LOGIT_DIFF, "candle against llama.cpp on {what}: {cmp:?}");
            conformance::run_all(&CandleBackend, &spec, 2).unwrap_or_else(|f| panic!("candle on {what}: {f}"));
        }
    }
    // The ONNX backends on the same files, llama.cpp the oracle here too: ort at its default (fused graph, int8
    // activations) and tract.
    let ort = edgebench_backend_ort::OrtBackend::new(
        dir.path().join("ort-cache"),
        Box::new(edgebench_models::registry::library_file),
    );
    let tract = edgebench_backend_tract::TractBackend::new(dir.path().join("tract-cache"));
    for &(arch, rope_freqs) in TINY_ARCHS {
        for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            let spec = tiny_arch_model(dir.path(), arch, rope_freqs, ty);
            let reference = LlamaCppBackend.load(&spec, &opts(&[])).unwrap();
            for (name, b) in [("ort", &ort as &dyn Backend), ("tract", &tract)] {
                let m = b.load(&spec, &opts(&[])).unwrap_or_else(|e| panic!("{name} on {}: {e}", arch.name()));
                let cmp = compare_short_exchange(reference.as_ref(), m.as_ref());
                let what = format!("{} ({ty}), {name}", arch.name());
                eprintln!("{what}: mean KLD {:.5}, max |Δlogit| {:.3}", cmp.mean_kld(), cmp.max_abs_diff);
                LOGITS_CROSS_BACKEND
                    .check(cmp.mean_kld(), cmp.top1_agreement())
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(cmp.max_abs_diff <= TINY_MAX_ABS_LOGIT_DIFF, "{what}: {cmp:?}");
            }
        }
    }
    // K-quants need rows of whole super-blocks of 256: tiny llama and gemma3 models 256 wide.
    for arch in [Arch::Llama, Arch::Gemma3] {
        for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
            let spec = tiny_k_quant_model(dir.path(), arch, ty);
            let what = format!("{} ({ty})", arch.name());
            let reference = LlamaCppBackend.load(&spec, &opts(&[])).unwrap();
            for b in [&NativeBackend as &dyn Backend, &CandleBackend, &ort, &tract] {
                let m = b.load(&spec, &opts(&[])).unwrap();
                let cmp = compare_short_exchange(reference.as_ref(), m.as_ref());
                eprintln!(
                    "{what}, {}: mean KLD {:.5}, max |Δlogit| {:.3}",
                    m.facts().kernel_path,
                    cmp.mean_kld(),
                    cmp.max_abs_diff
                );
                LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap();
                assert!(cmp.max_abs_diff <= TINY_MAX_ABS_LOGIT_DIFF, "{what}: {cmp:?}");
            }
        }
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
    let missing = ModelSpec { id: "x".into(), path: dir.path().join("missing.gguf"), sha256: String::new() };
    let err = LlamaCppBackend.load(&missing, &opts(&[])).err().unwrap().to_string();
    assert!(err.contains("missing.gguf") && err.contains("no such file"), "{err}");

    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF\x03\x00\x00\x00this is not a model").unwrap();
    let err = LlamaCppBackend
        .load(&ModelSpec { id: "g".into(), path: garbage, sha256: String::new() }, &opts(&[]))
        .err()
        .unwrap();
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

#[test]
fn real_model_greedy_generation_matches_the_llama_cpp_golden() {
    let spec = real_model();
    let g = llama_cpp_golden();
    let (tok, prompt) = golden_prompt(&spec);
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
    let g = llama_cpp_golden();
    let (_, prompt) = golden_prompt(&spec);
    let reference = LlamaCppBackend.load(&spec, &opts(&[])).unwrap();
    let candidate = CandleBackend.load(&spec, &opts(&[])).unwrap();
    eprint!("llama.cpp vs candle ");
    let cmp = compare_teacher_forced(
        reference.as_ref(),
        candidate.as_ref(),
        &prompt,
        &g.greedy_ids[..g.greedy_ids.len() - 1],
    );
    LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap();
}

/// The drift check on the real model: llama.cpp and candle (Q4_1 as stored) against the candle f32 reference over the
/// short built-in set stay within the cross-backend tolerance, and the reference against itself is exactly zero.
#[test]
fn real_model_drift_against_the_f32_reference() {
    use edgebench_core::drift::{Drift, DriftLevel};
    use edgebench_drift::{check, reference, EvalSource};
    let spec = real_model();
    let dir = tempfile::tempdir().unwrap();
    let r = reference::ReferenceSpec {
        backend: "candle".into(),
        load: opts(&[("requantize", "f32")]),
        model: spec.clone(),
        eval: EvalSource::Builtin,
        level: DriftLevel::Short,
    };
    let built = reference::build(&r, &CandleBackend, &mut |_| {}).unwrap();
    let path = dir.path().join("ref.ebref.gz");
    reference::write(&path, &built).unwrap();
    let (tok, _) = golden_prompt(&spec);
    type Case<'a> = (&'a str, &'a dyn Backend, &'a [(&'a str, &'a str)]);
    let cases: [Case; 3] = [
        ("candle f32 (the reference itself)", &CandleBackend, &[("requantize", "f32")]),
        ("candle Q4_1", &CandleBackend, &[]),
        ("llama.cpp Q4_1", &LlamaCppBackend, &[]),
    ];
    for (name, backend, o) in cases {
        let m = backend.load(&spec, &opts(o)).unwrap();
        let Drift::Measured(d) = check::run(m.as_ref(), &tok, &path) else { panic!("{name}: no drift measured") };
        let s = &d.stats;
        eprintln!(
            "{name}: {} tokens, mean KLD {:.5} ± {:.5}, max {:.4}, same top-1 {:.1}%, PPL ratio {:.4}",
            s.tokens,
            s.kld.value,
            s.kld.err,
            s.kld_distribution.max,
            100.0 * s.same_top1.value,
            s.ppl_ratio.value
        );
        if name.contains("itself") {
            assert_eq!((s.kld.value, s.same_top1.value, s.ppl_ratio.value), (0.0, 1.0, 1.0));
        } else {
            LOGITS_CROSS_BACKEND.check(s.kld.value, s.same_top1.value).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

/// `edgebench models quantize` output is a valid GGUF for both engines: the default model requantized to Q8_0, Q4_0
/// and F16 loads in llama.cpp and candle, and the two engines' logits on it agree within the cross-backend tolerance.
#[test]
fn requantized_real_model_runs_in_llama_cpp_and_candle() {
    use edgebench_gguf::{requant, GgmlType, GgufFile};
    let spec = real_model();
    let g = llama_cpp_golden();
    let (_, prompt) = golden_prompt(&spec);
    let dir = tempfile::tempdir().unwrap();
    let src = GgufFile::open(&spec.path).unwrap();
    for to in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::F16] {
        let path = dir.path().join(format!("smollm2.{to}.gguf"));
        let (w, _) = requant::requantize(&src, to, "test").unwrap();
        w.write(&path).unwrap();
        let m = ModelSpec { id: format!("smollm2@{to}"), path, sha256: String::new() };
        let (a, b) = (LlamaCppBackend.load(&m, &opts(&[])).unwrap(), CandleBackend.load(&m, &opts(&[])).unwrap());
        let (mut r, mut c) = (a.new_session().unwrap(), b.new_session().unwrap());
        let mut cmp = LogitComparison::default();
        cmp.add(&r.forward(&prompt).unwrap(), &c.forward(&prompt).unwrap());
        for &t in &g.greedy_ids[..15] {
            cmp.add(&r.forward(&[t]).unwrap(), &c.forward(&[t]).unwrap());
        }
        eprintln!(
            "{to}: llama.cpp vs candle mean KLD {:.5}, top-1 {:.1}%",
            cmp.mean_kld(),
            100.0 * cmp.top1_agreement()
        );
        LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap_or_else(|e| panic!("{to}: {e}"));
    }
}

/// edgebench's native engine against llama.cpp on the default model: 64 greedy tokens from the golden prompt, the
/// same until (if ever) a near tie in either engine's logits (`GREEDY_NEAR_TIE_LOGITS`: which of two almost equal
/// logits wins depends on each engine's summation order and exp approximation, and on the instruction set llama.cpp
/// was built for), and logits over the prompt and 63 teacher-forced positions within the cross-backend tolerance
/// (max |Δlogit| and mean KLD printed for the issue notes).
#[test]
fn native_engine_matches_llama_cpp_for_64_greedy_tokens() {
    matches_llama_cpp(&NativeBackend, &real_model(), 64);
}

/// The same on the real Gemma 3 270M Q4_K_M (gemma3 architecture; Q5_0, Q8_0, Q4_K and Q6_K matrices; a base model,
/// prompted with plain text): 32 greedy tokens, for the native engine and for candle.
#[test]
fn native_engine_and_candle_match_llama_cpp_on_gemma3_270m() {
    let spec = registry_model(Some(GEMMA3_ID));
    matches_llama_cpp(&NativeBackend, &spec, 32);
    matches_llama_cpp(&CandleBackend, &spec, 32);
}

/// edgebench's tokenizer against llama.cpp's own on fixed strings, for the default model's byte-level BPE vocabulary
/// and Gemma 3's SentencePiece-BPE one (byte fallback, no space prefix): plain text, Unicode, digits, whitespace
/// runs, code, and control-token text with and without special-token parsing.
#[test]
fn tokenizers_agree_with_llama_cpp_on_fixed_strings() {
    use edgebench_backend_llamacpp::llama_cpp_tokenize;
    use edgebench_models::tokenizer::Tokenizer;
    const CASES: &[&str] = &[
        "Hello, world!",
        "Explain in two sentences why the sky is blue.",
        "  leading spaces and trailing  ",
        "Numbers: 3.14159, 2026-11-22, 1000000 and 42nd.",
        "I'm sure you'll see they've done it; we'd've known.",
        "Tabs\tand\nnewlines\n\n\nmixed   with spaces",
        "Ünïcödé: naïve café, 日本語のテキスト, emoji 🚀🎉, Ελληνικά.",
        "fn main() { println!(\"{}\", x[0] >= 1 && y != -2); }",
        "<start_of_turn>user\nhi<end_of_turn>\n<|im_start|>assistant<|im_end|>",
        "",
    ];
    for spec in [real_model(), registry_model(Some(GEMMA3_ID))] {
        let file = edgebench_gguf::GgufFile::open(&spec.path).unwrap();
        let tok = Tokenizer::from_gguf(&file.gguf).unwrap();
        for text in CASES {
            for special in [false, true] {
                let want = llama_cpp_tokenize(&spec.path, text, true, special).unwrap();
                let got = tok.encode(text, special);
                assert_eq!(got, want, "{}: {text:?} (parse_special {special})", spec.id);
            }
        }
        eprintln!("{}: {} strings × 2 agree with llama.cpp", spec.id, CASES.len());
    }
}

/// Each byte-level BPE pre-tokenizer edgebench knows (GPT-2's, SmolLM's digit split, Llama 3's, Qwen2's) against
/// llama.cpp's on the tiny vocabulary (every byte, ten merges): contractions in both cases, digit runs, whitespace
/// and punctuation runs, non-Latin letters.
#[test]
fn pre_tokenizers_agree_with_llama_cpp() {
    use edgebench_backend_llamacpp::llama_cpp_tokenize;
    use edgebench_gguf::synth::{tiny_model, TinyConfig};
    use edgebench_models::tokenizer::Tokenizer;
    const CASES: &[&str] = &[
        "I'M SURE they'Ve 1234567 and 3.14159, the-end!!  ok\n\n\tyes   ",
        "Ünïcödé naïve café 日本語 ελληνικά 🚀 x2y3 12ab34",
        "what's   the\r\nthing?? ...:-) 2026-11-22",
    ];
    use edgebench_gguf::{synth, Value, ValueType};
    let dir = tempfile::tempdir().unwrap();
    // Merges across the splits the pre-tokenizers disagree on (digit runs, a space before a digit, a contraction in
    // capitals), so a wrong split changes the tokens.
    let extra = ["1 2", "12 3", "Ġ 1", "' M", "'M Ġ"];
    let merges: Vec<String> = synth::MERGES.iter().copied().chain(extra).map(str::to_string).collect();
    let mut tokens = synth::vocabulary();
    tokens.extend(extra.iter().map(|m| m.replace(' ', "")));
    let s = |v: &str| Value::String(v.into());
    for pre in ["default", "smollm", "llama-bpe", "qwen2"] {
        let path = dir.path().join(format!("tiny-{pre}.gguf"));
        let mut w = tiny_model(&TinyConfig::default()).unwrap();
        w.kv("tokenizer.ggml.pre", s(pre))
            .kv("tokenizer.ggml.tokens", Value::Array(ValueType::String, tokens.iter().map(|t| s(t)).collect()))
            .kv("tokenizer.ggml.merges", Value::Array(ValueType::String, merges.iter().map(|m| s(m)).collect()))
            .kv(
                "tokenizer.ggml.token_type",
                Value::Array(
                    ValueType::I32,
                    (0..tokens.len())
                        .map(|i| Value::I32(if i < synth::CONTROL_TOKENS.len() { 3 } else { 1 }))
                        .collect(),
                ),
            );
        w.write(&path).unwrap();
        let tok = Tokenizer::from_gguf(&edgebench_gguf::GgufFile::open(&path).unwrap().gguf).unwrap();
        for text in CASES {
            let want = llama_cpp_tokenize(&path, text, true, false).unwrap();
            assert_eq!(tok.encode(text, false), want, "pre-tokenizer {pre}: {text:?}");
        }
    }
}

/// SentencePiece BPE (llama's, phi3's and gemma's `tokenizer.ggml.model = "llama"`) against llama.cpp on a tiny
/// vocabulary with scores and byte fallback, with and without the space prefix llama and phi3 vocabularies ask for.
#[test]
fn sentencepiece_agrees_with_llama_cpp_with_and_without_space_prefix() {
    use edgebench_backend_llamacpp::llama_cpp_tokenize;
    use edgebench_gguf::synth::tiny_model;
    use edgebench_gguf::{Value, ValueType};
    use edgebench_models::tokenizer::Tokenizer;
    const CASES: &[&str] = &["hello world", " hello  hello", "héllo wörld 🚀", "\n\thello\nworld\n", "ohello lol"];
    let (tokens, types, scores) = edgebench_gguf::synth::spm_vocabulary();
    let dir = tempfile::tempdir().unwrap();
    let s = |v: &str| Value::String(v.into());
    let mut first = Vec::new();
    for prefix in [true, false] {
        let path = dir.path().join(format!("tiny-spm-{prefix}.gguf"));
        let mut w = tiny_model(&TinyConfig::default()).unwrap();
        w.kv("tokenizer.ggml.model", s("llama"))
            .kv("tokenizer.ggml.pre", s("default"))
            .kv("tokenizer.ggml.tokens", Value::Array(ValueType::String, tokens.iter().map(|t| s(t)).collect()))
            .kv("tokenizer.ggml.scores", Value::Array(ValueType::F32, scores.iter().map(|&v| Value::F32(v)).collect()))
            .kv(
                "tokenizer.ggml.token_type",
                Value::Array(ValueType::I32, types.iter().map(|&t| Value::I32(t)).collect()),
            )
            .kv("tokenizer.ggml.unknown_token_id", Value::U32(0))
            .kv("tokenizer.ggml.add_bos_token", Value::Bool(true))
            .kv("tokenizer.ggml.add_space_prefix", Value::Bool(prefix));
        w.write(&path).unwrap();
        let tok = Tokenizer::from_gguf(&edgebench_gguf::GgufFile::open(&path).unwrap().gguf).unwrap();
        for text in CASES {
            let want = llama_cpp_tokenize(&path, text, true, false).unwrap();
            assert_eq!(tok.encode(text, false), want, "space prefix {prefix}: {text:?}");
        }
        first.push(tok.encode(CASES[0], false));
    }
    assert_ne!(first[0], first[1], "the space prefix changes the tokens, so both settings are tested");
}

/// Greedy tokens of `backend` and llama.cpp from the golden prompt, the same until a near tie in either engine's
/// logits, and teacher-forced logits within `LOGITS_CROSS_BACKEND`.
fn matches_llama_cpp(backend: &dyn Backend, spec: &ModelSpec, tokens: usize) {
    use edgebench_core::tolerance::GREEDY_NEAR_TIE_LOGITS;
    let (tok, prompt) = golden_prompt(spec);
    let reference = LlamaCppBackend.load(spec, &opts(&[])).unwrap();
    let native = backend.load(spec, &opts(&[])).unwrap();
    let vocab = native.facts().vocab_size;
    let greedy = |m: &dyn edgebench_core::LoadedModel| {
        let mut s = m.new_session().unwrap();
        workload::run_repetition(s.as_mut(), &prompt, tokens - 1, Sampler::Greedy, vocab).unwrap().generated
    };
    let (want, got) = (greedy(reference.as_ref()), greedy(native.as_ref()));
    assert_eq!((want.len(), got.len()), (tokens, tokens));
    eprint!("{}: llama.cpp vs {} ", spec.id, native.facts().kernel_path);
    let cmp = compare_teacher_forced(reference.as_ref(), native.as_ref(), &prompt, &want[..tokens - 1]);
    LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap();
    let Some(d) = want.iter().zip(&got).position(|(a, b)| a != b) else {
        eprintln!("the same {tokens} greedy tokens: {:?}", tok.decode(&got));
        return;
    };
    // Both engines at the state where they part (native's own tokens so far are llama.cpp's).
    let last = |m: &dyn edgebench_core::LoadedModel| {
        let mut s = m.new_session().unwrap();
        let mut l = s.forward(&prompt).unwrap();
        for &t in &want[..d] {
            l = s.forward(&[t]).unwrap();
        }
        l
    };
    let (lr, ln) = (last(reference.as_ref()), last(native.as_ref()));
    let (a, b) = (want[d] as usize, got[d] as usize);
    let (margin_ref, margin_native) = (lr[a] - lr[b], ln[b] - ln[a]);
    eprintln!(
        "greedy tokens part at {d} of {tokens}: llama.cpp {a} by {margin_ref:.4} over {b}, the other {b} by \
         {margin_native:.4}"
    );
    // A near tie in either engine: the one at the tie flips under a perturbation far below the logits' tolerance.
    assert!(
        margin_ref.min(margin_native) <= GREEDY_NEAR_TIE_LOGITS,
        "the greedy tokens part at {d} where llama.cpp's pick leads by {margin_ref} logits and the other's by \
         {margin_native}, no near tie in either:\nother {:?}\nllama.cpp {:?}",
        tok.decode(&got),
        tok.decode(&want)
    );
}

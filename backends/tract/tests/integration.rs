//! tract backend: the shared conformance suite on tiny generated models of every weight type and on the real
//! default model; the fingerprint of the weights tract runs against the GGUF's; logits against the native engine on
//! the same file; greedy generation against the recorded llama.cpp golden; clear errors.

use edgebench_backend_native::NativeBackend;
use edgebench_backend_tract::TractBackend;
use edgebench_core::sampler::Sampler;
use edgebench_core::tolerance::{LOGITS_CROSS_BACKEND, TINY_MAX_ABS_LOGIT_DIFF};
use edgebench_core::{Backend, LoadedModel, ModelSpec, Support};
use edgebench_gguf::GgmlType;
use edgebench_runner::workload;
use edgebench_testkit::conformance;
use edgebench_testkit::fixtures::{
    compare_short_exchange, compare_teacher_forced, golden_prompt, llama_cpp_golden, opts, real_model, registry_model,
    tiny_arch_specs, tiny_model as tiny, GEMMA3_ID, TINY_TYPES,
};

fn backend(dir: &std::path::Path) -> TractBackend {
    TractBackend::new(dir.join("cache"))
}

fn source_fingerprint(spec: &ModelSpec) -> String {
    edgebench_gguf::fingerprint::of_file(&edgebench_gguf::GgufFile::open(&spec.path).unwrap()).unwrap()
}

#[test]
fn conforms_on_tiny_models_of_every_weight_type_and_runs_their_exact_weights() {
    let dir = tempfile::tempdir().unwrap();
    let tract = backend(dir.path());
    for &(w, e) in TINY_TYPES {
        let spec = tiny(dir.path(), w, e);
        let prepared = tract.prepare(&spec, &opts(&[])).unwrap();
        let notes = prepared.notes();
        assert!(notes[0].contains("ONNX export written"), "{notes:?}");
        for threads in [1, 3] {
            conformance::run_all(&tract, &spec, threads)
                .unwrap_or_else(|f| panic!("{w} weights, {e} embedding, {threads} threads: {f}"));
        }
        let m = tract.load(&spec, &opts(&[])).unwrap();
        let (fp, how) = m.weights_fingerprint().unwrap().expect("tract fingerprints what it loads");
        assert_eq!(fp, source_fingerprint(&spec), "{w}/{e}: {how}");
        let converted = m.facts().converted;
        let exact = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::F16, GgmlType::F32];
        assert_eq!(converted.is_some(), !exact.contains(&w) || !exact.contains(&e), "{w}/{e}: {converted:?}");
    }
}

/// On tiny models tract (through the ONNX export) and the native engine compute the same function.
#[test]
fn tiny_model_logits_agree_with_native() {
    let dir = tempfile::tempdir().unwrap();
    let tract = backend(dir.path());
    for &(w, e) in TINY_TYPES {
        let spec = tiny(dir.path(), w, e);
        let (a, b) = (tract.load(&spec, &opts(&[])).unwrap(), NativeBackend.load(&spec, &opts(&[])).unwrap());
        let cmp = compare_short_exchange(b.as_ref(), a.as_ref());
        LOGITS_CROSS_BACKEND
            .check(cmp.mean_kld(), cmp.top1_agreement())
            .unwrap_or_else(|f| panic!("{w}/{e}: {f} (max |Δlogit| {})", cmp.max_abs_diff));
    }
}

#[test]
fn real_model_conforms_matches_native_and_reproduces_llama_cpp_greedy_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tract = backend(dir.path());
    let spec = real_model();
    tract.prepare(&spec, &opts(&[])).unwrap();
    conformance::run_all(&tract, &spec, 2).unwrap_or_else(|f| panic!("{f}"));
    let m = tract.load(&spec, &opts(&[])).unwrap();
    let (fp, _) = m.weights_fingerprint().unwrap().unwrap();
    assert_eq!(fp, source_fingerprint(&spec), "tract runs the GGUF's values");
    let golden = llama_cpp_golden();
    let (_, prompt) = golden_prompt(&spec);
    assert_eq!(prompt, golden.prompt_ids);
    let native = NativeBackend.load(&spec, &opts(&[])).unwrap();
    let cmp =
        compare_teacher_forced(native.as_ref(), m.as_ref(), &prompt, &golden.greedy_ids[..golden.greedy_ids.len() - 1]);
    LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap_or_else(|f| panic!("{f}"));
    let mut s = m.new_session().unwrap();
    let n = golden.greedy_ids.len();
    let rep = workload::run_repetition(s.as_mut(), &prompt, n - 1, Sampler::Greedy, m.facts().vocab_size).unwrap();
    assert_eq!(rep.generated, golden.greedy_ids, "greedy tokens differ from llama.cpp's");
}

#[test]
fn bad_requests_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tract = backend(dir.path());
    let spec = tiny(dir.path(), GgmlType::Q4_1, GgmlType::Q8_0);
    match tract.supports(&spec, &opts(&[("threads", "9")])) {
        Support::No(why) => assert!(why.contains("tract options threads=9: unknown field `threads`"), "{why}"),
        Support::Yes => panic!("unknown option accepted"),
    }
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF garbage").unwrap();
    let err = tract
        .load(&ModelSpec { id: "bad".into(), path: bad.clone(), sha256: String::new() }, &opts(&[]))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bad.gguf"), "{err}");
}

/// Every architecture the description names × Q4_0, Q5_0, Q8_0 (and Q4_K, Q5_K, Q6_K on Llama and Gemma 3): tract's
/// logits agree with the native engine's within the cross-backend tolerance and the tiny models' |Δlogit| bound,
/// tract runs the GGUF's values, and the conformance suite passes.
#[test]
fn every_architecture_agrees_with_native_and_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let tract = backend(dir.path());
    let specs = tiny_arch_specs(dir.path());
    let mut worst = (0f64, 0f32);
    for (what, spec) in &specs {
        let native = NativeBackend.load(spec, &opts(&[])).unwrap();
        let m = tract.load(spec, &opts(&[])).unwrap_or_else(|e| panic!("{what}: {e}"));
        let cmp = compare_short_exchange(native.as_ref(), m.as_ref());
        eprintln!(
            "{what}: mean KLD {:.6}, top-1 {:.0}%, max |Δlogit| {:.4}",
            cmp.mean_kld(),
            cmp.top1_agreement() * 100.0,
            cmp.max_abs_diff
        );
        worst = (worst.0.max(cmp.mean_kld()), worst.1.max(cmp.max_abs_diff));
        LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap_or_else(|f| panic!("{what}: {f}"));
        assert!(cmp.max_abs_diff <= TINY_MAX_ABS_LOGIT_DIFF, "{what}: max |Δlogit| {}", cmp.max_abs_diff);
        let (fp, how) = m.weights_fingerprint().unwrap().unwrap();
        assert_eq!(fp, source_fingerprint(spec), "{what}: {how}");
        conformance::run_all(&tract, spec, 2).unwrap_or_else(|f| panic!("{what}: {f}"));
    }
    eprintln!("worst over {} models: mean KLD {:.6}, max |Δlogit| {:.4}", specs.len(), worst.0, worst.1);
}

/// The real Gemma 3 270M Q4_K_M file (Q5_0, Q8_0, Q4_K, Q6_K matrices; sliding window 512 on 5 of 6 layers; tied
/// 262144-row Q8_0 embedding): conformance, the GGUF's values, and 32 greedy tokens from the golden prompt equal to
/// the native engine's, or parting only at a near tie of native's logits (`GREEDY_NEAR_TIE_LOGITS`).
#[test]
fn gemma3_q4_k_m_conforms_and_matches_native_greedy_tokens() {
    use edgebench_core::tolerance::GREEDY_NEAR_TIE_LOGITS;
    let dir = tempfile::tempdir().unwrap();
    let tract = backend(dir.path());
    let spec = registry_model(Some(GEMMA3_ID));
    tract.prepare(&spec, &opts(&[])).unwrap();
    let m = tract.load(&spec, &opts(&[])).unwrap();
    eprintln!("gemma3 on tract: {:?}; converted: {:?}", m.facts().notes, m.facts().converted);
    let (fp, _) = m.weights_fingerprint().unwrap().unwrap();
    assert_eq!(fp, source_fingerprint(&spec), "tract runs the GGUF's values");
    let (_, prompt) = golden_prompt(&spec);
    let native = NativeBackend.load(&spec, &opts(&[])).unwrap();
    let tokens = 32;
    let vocab = native.facts().vocab_size;
    let greedy = |m: &dyn LoadedModel| {
        let mut s = m.new_session().unwrap();
        workload::run_repetition(s.as_mut(), &prompt, tokens - 1, Sampler::Greedy, vocab).unwrap().generated
    };
    let (want, got) = (greedy(native.as_ref()), greedy(m.as_ref()));
    assert_eq!((want.len(), got.len()), (tokens, tokens));
    eprint!("gemma3: native vs tract teacher-forced ");
    let cmp = compare_teacher_forced(native.as_ref(), m.as_ref(), &prompt, &want[..tokens - 1]);
    LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap_or_else(|f| panic!("{f}"));
    match want.iter().zip(&got).position(|(a, b)| a != b) {
        None => eprintln!("gemma3: the same {tokens} greedy tokens as native"),
        Some(d) => {
            let last = |m: &dyn LoadedModel| {
                let mut s = m.new_session().unwrap();
                let mut l = s.forward(&prompt).unwrap();
                for &t in &want[..d] {
                    l = s.forward(&[t]).unwrap();
                }
                l
            };
            let ln = last(native.as_ref());
            let (a, b) = (want[d] as usize, got[d] as usize);
            eprintln!("gemma3: greedy tokens part at {d} of {tokens}: native {a} by {:.4} over {b}", ln[a] - ln[b]);
            assert!(ln[a] - ln[b] <= GREEDY_NEAR_TIE_LOGITS, "the greedy tokens part at {d}, no near tie");
        }
    }
    drop(m);
    conformance::run_all(&tract, &spec, 2).unwrap_or_else(|f| panic!("{f}"));
}

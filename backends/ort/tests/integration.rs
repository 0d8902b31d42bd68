//! ort backend (ONNX Runtime from the pinned wheel): the shared conformance suite on tiny generated models of every weight type and on the real
//! default model; the fingerprint of the weights ort runs against the GGUF's; logits against the native engine on
//! the same file; greedy generation against the recorded llama.cpp golden; clear errors.

use edgebench_backend_native::NativeBackend;
use edgebench_backend_ort::OrtBackend;
use edgebench_core::sampler::Sampler;
use edgebench_core::tolerance::{
    LOGITS_BATCH_VS_INCREMENTAL, LOGITS_CROSS_BACKEND, LOGITS_CROSS_BACKEND_INT8_BATCHED, LOGITS_FUSED_VS_PRIMITIVE,
    TINY_MAX_ABS_LOGIT_DIFF,
};
use edgebench_core::{Backend, DeviceRequest, LoadedModel, ModelSpec, Support};
use edgebench_gguf::GgmlType;
use edgebench_runner::workload;
use edgebench_testkit::conformance;
use edgebench_testkit::fixtures::{
    compare_short_exchange, compare_teacher_forced, golden_prompt, llama_cpp_golden, opts, real_model, registry_model,
    tiny_arch_specs, tiny_model as tiny, GEMMA3_ID, TINY_TYPES,
};

fn backend(dir: &std::path::Path) -> OrtBackend {
    OrtBackend::new(dir.join("cache"), Box::new(edgebench_models::registry::library_file))
}

fn source_fingerprint(spec: &ModelSpec) -> String {
    edgebench_gguf::fingerprint::of_file(&edgebench_gguf::GgufFile::open(&spec.path).unwrap()).unwrap()
}

/// Both graphs (the default fused one and the primitive one), every weight type.
#[test]
fn conforms_on_tiny_models_of_every_weight_type_and_runs_their_exact_weights() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let variants = [("fused", "shared"), ("fused", "copy"), ("primitive", "copy")];
    for (&(w, e), (graph, kv)) in TINY_TYPES.iter().flat_map(|t| variants.map(|v| (t, v))) {
        let spec = tiny(dir.path(), w, e);
        let o = opts(&[("graph", graph), ("kv_buffer", kv)]);
        let prepared = ort.prepare(&spec, &o).unwrap();
        let notes = prepared.notes();
        let fresh = if kv == "copy" && graph == "fused" { "ONNX export from the cache" } else { "ONNX export written" };
        assert!(notes[0].contains(fresh), "{notes:?}");
        for threads in [1, 3] {
            conformance::run_all_with(&ort, &spec, threads, &o).unwrap_or_else(|f| {
                panic!("{graph} graph, KV {kv}, {w} weights, {e} embedding, {threads} threads: {f}")
            });
        }
        let m = ort.load(&spec, &o).unwrap();
        let path = m.facts().kernel_path;
        assert!(path.contains(&format!("{graph} graph")), "{path}");
        assert!(path.contains(if kv == "shared" { "KV shared buffer" } else { "KV copied" }), "{path}");
        let (fp, how) = m.weights_fingerprint().unwrap().expect("ort fingerprints what it loads");
        assert_eq!(fp, source_fingerprint(&spec), "{w}/{e}: {how}");
        let converted = m.facts().converted;
        let exact = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::F16, GgmlType::F32];
        // At the default accuracy level (int8 activations) Q8_0 products are 8-bit MatMulNBits, and the fused
        // graph looks a Q8_0 table up in the bytes its output product reads; the primitive one gathers f32.
        let w_exact = exact.contains(&w) || w == GgmlType::Q8_0;
        let e_exact = exact.contains(&e) || (graph == "fused" && e == GgmlType::Q8_0);
        assert_eq!(converted.is_some(), !w_exact || !e_exact, "{graph} {w}/{e}: {converted:?}");
    }
}

/// On tiny models ONNX Runtime (through the ONNX export) and the native engine compute the same function, with
/// f32 and with int8 activations in MatMulNBits, and with the embedding looked up in 8 or 4 bits.
#[test]
fn tiny_model_logits_agree_with_native() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    // Plus a Q4_0 embedding: the fused graph looks it up with 4-bit GatherBlockQuantized in the head's bytes.
    let types = TINY_TYPES.iter().copied().chain([(GgmlType::Q4_0, GgmlType::Q4_0)]);
    for ((w, e), acc) in types.flat_map(|t| [(t, "4"), (t, "1")]) {
        let spec = tiny(dir.path(), w, e);
        let a = ort.load(&spec, &opts(&[("accuracy_level", acc)])).unwrap();
        assert!(a.facts().kernel_path.contains(&format!("accuracy_level={acc}")));
        if (w, e) == (GgmlType::Q4_0, GgmlType::Q4_0) {
            assert_eq!(a.facts().converted, None, "the Q4_0 table is looked up in its own bytes, no f32 copy");
        }
        let b = NativeBackend.load(&spec, &opts(&[])).unwrap();
        let cmp = compare_short_exchange(b.as_ref(), a.as_ref());
        LOGITS_CROSS_BACKEND
            .check(cmp.mean_kld(), cmp.top1_agreement())
            .unwrap_or_else(|f| panic!("{w}/{e} accuracy_level {acc}: {f} (max |Δlogit| {})", cmp.max_abs_diff));
    }
}

/// The fused graph computes what the primitive one does, prompt and decode steps, on tiny models of every weight
/// type and on the real model.
#[test]
fn fused_and_primitive_graphs_give_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let mut specs: Vec<ModelSpec> = TINY_TYPES.iter().map(|&(w, e)| tiny(dir.path(), w, e)).collect();
    specs.push(real_model());
    for spec in &specs {
        // f32 activations: int8 ones are batch-variant in ONNX Runtime, and fused and primitive graphs batch apart.
        let a = ort.load(spec, &opts(&[("graph", "fused"), ("accuracy_level", "1")])).unwrap();
        let b = ort.load(spec, &opts(&[("graph", "primitive"), ("accuracy_level", "1")])).unwrap();
        let (mut sa, mut sb) = (a.new_session().unwrap(), b.new_session().unwrap());
        let prompt: Vec<u32> = (1..12).collect();
        let mut pairs = vec![(sa.forward_all(&prompt).unwrap(), sb.forward_all(&prompt).unwrap())];
        for t in [5u32, 9, 2] {
            pairs.push((sa.forward(&[t]).unwrap(), sb.forward(&[t]).unwrap()));
        }
        for (i, (x, y)) in pairs.iter().enumerate() {
            LOGITS_FUSED_VS_PRIMITIVE.check(x, y).unwrap_or_else(|f| panic!("{}: call {i}: {f}", spec.path.display()));
        }
    }
}

/// The KV cache shared in place (bound as past input and present output) computes exactly what handing the
/// present outputs back does, through a prompt that outgrows the first buffer and decode steps that outgrow the
/// next one, so the appended positions land in the bound buffers and growing keeps the filled ones.
#[test]
fn a_shared_kv_buffer_gives_the_logits_of_a_handed_back_one() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let spec = real_model();
    let load = |kv| ort.load(&spec, &opts(&[("accuracy_level", "1"), ("kv_buffer", kv)])).unwrap();
    let (shared, copied) = (load("shared"), load("copy"));
    assert!(shared.facts().kernel_path.contains("KV shared buffer"), "{}", shared.facts().kernel_path);
    for prompt_len in [250u32, 300] {
        let (mut a, mut b) = (shared.new_session().unwrap(), copied.new_session().unwrap());
        let prompt: Vec<u32> = (0..prompt_len).map(|i| 100 + (i * 37) % 4000).collect();
        let mut calls = vec![(a.forward_all(&prompt).unwrap(), b.forward_all(&prompt).unwrap())];
        let mut next = 7u32;
        for _ in 0..12 {
            let (x, y) = (a.forward(&[next]).unwrap(), b.forward(&[next]).unwrap());
            next = edgebench_stats::drift::argmax(&y).unwrap() as u32;
            calls.push((x, y));
        }
        for (i, (x, y)) in calls.iter().enumerate() {
            assert_eq!(x, y, "prompt of {prompt_len}: call {i} (positions up to {})", prompt_len as usize + i);
        }
    }
    let primitive = opts(&[("graph", "primitive"), ("kv_buffer", "shared")]);
    match ort.supports(&spec, &primitive) {
        Support::No(why) => assert!(why.contains("kv_buffer=shared needs graph=fused"), "{why}"),
        Support::Yes => panic!("a shared KV buffer on the primitive graph was accepted"),
    }
}

/// Static shapes (a fixed KV window, one token per call, as QNN's HTP and OpenVINO's NPU need) compute what the
/// dynamic graph computes, prompt rows and decode steps alike, on the CPU provider where both run; a window too
/// short for the call is a clear error, and the window needs the primitive graph.
#[test]
fn a_static_kv_window_gives_the_logits_of_dynamic_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let spec = real_model();
    let base = [("graph", "primitive"), ("accuracy_level", "1")];
    let dynamic = ort.load(&spec, &opts(&base)).unwrap();
    let windowed = ort.load(&spec, &opts(&[base[0], base[1], ("static_window", "24")])).unwrap();
    let kp = windowed.facts().kernel_path;
    assert!(kp.contains("static window of 24 positions"), "{kp}");
    let (mut a, mut b) = (dynamic.new_session().unwrap(), windowed.new_session().unwrap());
    let prompt: Vec<u32> = (0..13).map(|i| 100 + i * 37).collect();
    let mut calls = vec![(a.forward_all(&prompt).unwrap(), b.forward_all(&prompt).unwrap())];
    let mut next = 7u32;
    for _ in 0..11 {
        let (x, y) = (a.forward(&[next]).unwrap(), b.forward(&[next]).unwrap());
        next = edgebench_stats::drift::argmax(&x).unwrap() as u32;
        calls.push((x, y));
    }
    for (i, (x, y)) in calls.iter().enumerate() {
        LOGITS_BATCH_VS_INCREMENTAL.check(x, y).unwrap_or_else(|f| panic!("call {i}: {f}"));
    }
    let full = b.forward(&[next]).expect_err("a 25th position in a window of 24").to_string();
    assert!(full.contains("static KV window of 24 positions is full") && full.contains("static_window=N"), "{full}");
    match ort.supports(&spec, &opts(&[("graph", "fused"), ("static_window", "24")])) {
        Support::No(why) => assert!(why.contains("static_window") && why.contains("graph=primitive"), "{why}"),
        Support::Yes => panic!("a static window on the fused graph was accepted"),
    }
}

/// The fp16-safe norms (input scaled by a power of two before squaring) are the same function as the plain ones:
/// with f32 arithmetic the logits agree as closely as batch and incremental calls do; the option is labelled.
#[test]
fn fp16_safe_norms_give_the_logits_of_plain_norms() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let spec = real_model();
    let base = [("graph", "primitive"), ("accuracy_level", "1")];
    let plain = ort.load(&spec, &opts(&base)).unwrap();
    let safe = ort.load(&spec, &opts(&[base[0], base[1], ("fp16_safe_norm", "true")])).unwrap();
    let notes = safe.facts().notes.join("\n");
    assert!(notes.contains("fp16-safe RMS norms"), "{notes}");
    assert!(!plain.facts().notes.join("\n").contains("fp16-safe"));
    let (fp, _) = safe.weights_fingerprint().unwrap().unwrap();
    assert_eq!(fp, source_fingerprint(&spec), "the fp16-safe graph carries the GGUF's values");
    let (mut a, mut b) = (plain.new_session().unwrap(), safe.new_session().unwrap());
    let prompt: Vec<u32> = (0..9).map(|i| 200 + i * 41).collect();
    LOGITS_BATCH_VS_INCREMENTAL.check(&a.forward_all(&prompt).unwrap(), &b.forward_all(&prompt).unwrap()).unwrap();
    LOGITS_BATCH_VS_INCREMENTAL.check(&a.forward(&[5]).unwrap(), &b.forward(&[5]).unwrap()).unwrap();
    match ort.supports(&spec, &opts(&[("graph", "fused"), ("fp16_safe_norm", "true")])) {
        Support::No(why) => assert!(why.contains("fp16_safe_norm") && why.contains("graph=primitive"), "{why}"),
        Support::Yes => panic!("fp16-safe norms on the fused graph were accepted"),
    }
}

/// QNN's HTP (emulated on x86-64) from a cached context binary computes what a freshly prepared graph does: the
/// first load prepares the graph and writes its context, the next reads it (the notes say which, the coverage is
/// the one recorded), and `qnn_context=false` prepares it again with no cache.
#[test]
fn a_cached_qnn_context_gives_the_logits_of_a_freshly_prepared_graph() {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("skipped: the QNN wheel is pinned for linux-x86_64 only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let spec = tiny(dir.path(), GgmlType::Q4_0, GgmlType::Q8_0);
    let qnn = |extra: &[(&str, &str)]| {
        let mut o = opts(&[("allow_cpu_fallback", "true"), ("static_window", "16")]);
        o.options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        o.device = DeviceRequest::parse("qnn").unwrap();
        o
    };
    let first = ort.load(&spec, &qnn(&[])).unwrap();
    let second = ort.load(&spec, &qnn(&[])).unwrap();
    let fresh = ort.load(&spec, &qnn(&[("qnn_context", "false")])).unwrap();
    let note = |m: &dyn LoadedModel| m.facts().notes.into_iter().find(|n| n.starts_with("QNN context binary"));
    let miss = note(first.as_ref()).expect("the first load's context note");
    assert!(miss.contains("a miss, the load prepared the graph and wrote its context"), "{miss}");
    let hit = note(second.as_ref()).expect("the second load's context note");
    assert!(hit.contains("a hit, the load read the graph QNN prepared earlier"), "{hit}");
    assert_eq!(note(fresh.as_ref()), None, "qnn_context=false caches nothing");
    let coverage = second.facts().coverage.expect("an accelerator's coverage");
    assert_eq!(Some(&coverage), first.facts().coverage.as_ref());
    assert!(coverage.nodes_on_device > 0, "{coverage:?}");
    let (fp, _) = second.weights_fingerprint().unwrap().unwrap();
    assert_eq!(fp, source_fingerprint(&spec), "the context was prepared from the GGUF's values");
    let mut sessions: Vec<_> = [&first, &second, &fresh].iter().map(|m| m.new_session().unwrap()).collect();
    let prompt: Vec<u32> = (0..5).map(|i| 3 + i * 7).collect();
    let mut calls: Vec<Vec<Vec<f32>>> = sessions.iter_mut().map(|s| vec![s.forward_all(&prompt).unwrap()]).collect();
    for t in [4u32, 9, 1] {
        for (s, c) in sessions.iter_mut().zip(&mut calls) {
            c.push(s.forward(&[t]).unwrap());
        }
    }
    assert_eq!(calls[1], calls[2], "the cached context computes the freshly prepared graph's logits, bit for bit");
    assert_eq!(calls[0], calls[2], "the preparing load's own session too");
}

/// The QDQ variant (4-bit products as int4 blocks with calibrated uint16 activations, for QNN's HTP) conforms on
/// the CPU provider, carries the file's weights (the fingerprint decodes its int4 blocks), has no `MatMulNBits` left
/// on Q4_0 / Q4_1 models, computes what the f32 graph computes within the cross-backend tolerance, and is labelled;
/// on QNN's HTP (emulated on x86-64) the whole graph runs on the provider.
#[test]
fn the_qdq_variant_conforms_carries_the_files_weights_and_runs_whole_on_qnns_htp() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    for w in [GgmlType::Q4_0, GgmlType::Q4_1] {
        let spec = tiny(dir.path(), w, GgmlType::Q8_0);
        let base = [("graph", "primitive"), ("accuracy_level", "1")];
        let o = opts(&[base[0], base[1], ("qdq", "true")]);
        let prepared = ort.prepare(&spec, &o).unwrap();
        let note = prepared.notes().join("\n");
        assert!(note.contains("QDQ variant written") && note.contains("uint16 activations"), "{note}");
        conformance::run_all_with(&ort, &spec, 2, &o).unwrap_or_else(|f| panic!("{w}: {f}"));
        let q = ort.load(&spec, &o).unwrap();
        let (fp, how) = q.weights_fingerprint().unwrap().unwrap();
        assert_eq!(fp, source_fingerprint(&spec), "{w}: {how}");
        assert!(q.facts().notes.iter().any(|n| n.starts_with("QDQ variant: ")), "{:?}", q.facts().notes);
        let graph = edgebench_onnx::fingerprint::read_model(&prepared_path(&ort, &spec, &o)).unwrap();
        let ops: Vec<&str> = graph.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
        assert!(!ops.contains(&"MatMulNBits") && ops.contains(&"DequantizeLinear"), "{w}: {ops:?}");
        let f32_graph = ort.load(&spec, &opts(&base)).unwrap();
        let cmp = compare_short_exchange(f32_graph.as_ref(), q.as_ref());
        LOGITS_CROSS_BACKEND
            .check(cmp.mean_kld(), cmp.top1_agreement())
            .unwrap_or_else(|f| panic!("{w}: {f} (max |Δlogit| {})", cmp.max_abs_diff));
        assert!(cmp.max_abs_diff <= TINY_MAX_ABS_LOGIT_DIFF, "{w}: max |Δlogit| {}", cmp.max_abs_diff);
    }
    match ort.supports(&real_model(), &opts(&[("graph", "fused"), ("qdq", "true")])) {
        Support::No(why) => assert!(why.contains("qdq needs graph=primitive"), "{why}"),
        Support::Yes => panic!("the QDQ variant of the fused graph was accepted"),
    }
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("skipped the HTP part: the QNN wheel is pinned for linux-x86_64 only");
        return;
    }
    let spec = tiny(dir.path(), GgmlType::Q4_0, GgmlType::Q8_0);
    let mut o = opts(&[("qdq", "true"), ("static_window", "16")]);
    o.device = DeviceRequest::parse("qnn").unwrap();
    let htp = ort.load(&spec, &o).unwrap_or_else(|e| panic!("the whole QDQ graph on QNN's HTP: {e}"));
    let c = htp.facts().coverage.expect("an accelerator's coverage");
    assert!(c.complete() && c.flops_per_token_on_device == c.flops_per_token_total, "{}", c.summary());
    let cpu = ort.load(&spec, &opts(&[("graph", "primitive"), ("accuracy_level", "1"), ("qdq", "true")])).unwrap();
    let cmp = compare_short_exchange(cpu.as_ref(), htp.as_ref());
    LOGITS_CROSS_BACKEND
        .check(cmp.mean_kld(), cmp.top1_agreement())
        .unwrap_or_else(|f| panic!("HTP against the CPU provider, both QDQ: {f} (max |Δlogit| {})", cmp.max_abs_diff));
}

/// The file a request's preparation hands to the load.
fn prepared_path(ort: &OrtBackend, spec: &ModelSpec, o: &edgebench_core::LoadOptions) -> std::path::PathBuf {
    let notes = ort.prepare(spec, o).unwrap().notes().join("\n");
    let from = notes.find("QDQ variant from the cache: ").expect("the variant is cached") + 28;
    std::path::PathBuf::from(notes[from..].split([';', '\n']).next().unwrap().trim())
}

/// Both graphs with f32 activations reproduce llama.cpp's greedy tokens; the default (fused, int8 activations)
/// conforms and matches native's distributions, but its greedy text may part from llama.cpp's at a near-tie (it
/// did at the 17th token of the golden prompt with ONNX Runtime 1.31.1 on AVX2), so it is not held to the tokens.
#[test]
fn real_model_conforms_matches_native_and_reproduces_llama_cpp_greedy_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let spec = real_model();
    let golden = llama_cpp_golden();
    let (_, prompt) = golden_prompt(&spec);
    assert_eq!(prompt, golden.prompt_ids);
    let native = NativeBackend.load(&spec, &opts(&[])).unwrap();
    for (graph, acc) in [("fused", "1"), ("primitive", "1"), ("fused", "4")] {
        let o = opts(&[("graph", graph), ("accuracy_level", acc)]);
        ort.prepare(&spec, &o).unwrap();
        conformance::run_all_with(&ort, &spec, 2, &o).unwrap_or_else(|f| panic!("{graph} accuracy_level={acc}: {f}"));
        let m = ort.load(&spec, &o).unwrap();
        let (fp, _) = m.weights_fingerprint().unwrap().unwrap();
        assert_eq!(fp, source_fingerprint(&spec), "ort runs the GGUF's values ({graph} graph)");
        let cmp = compare_teacher_forced(
            native.as_ref(),
            m.as_ref(),
            &prompt,
            &golden.greedy_ids[..golden.greedy_ids.len() - 1],
        );
        let tolerance = if acc == "4" { LOGITS_CROSS_BACKEND_INT8_BATCHED } else { LOGITS_CROSS_BACKEND };
        tolerance
            .check(cmp.mean_kld(), cmp.top1_agreement())
            .unwrap_or_else(|f| panic!("{graph} accuracy_level={acc}: {f}"));
        if acc == "4" {
            assert!(m.batch_variance().is_some(), "int8 activations are declared batch-variant");
            continue;
        }
        let mut s = m.new_session().unwrap();
        let n = golden.greedy_ids.len();
        let rep = workload::run_repetition(s.as_mut(), &prompt, n - 1, Sampler::Greedy, m.facts().vocab_size).unwrap();
        assert_eq!(rep.generated, golden.greedy_ids, "{graph} graph: greedy tokens differ from llama.cpp's");
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let spec = tiny(dir.path(), GgmlType::Q4_1, GgmlType::Q8_0);
    let why = |o: &[(&str, &str)], device: &str| {
        let mut op = opts(o);
        op.device = edgebench_core::DeviceRequest::parse(device).unwrap();
        match ort.supports(&spec, &op) {
            Support::No(why) => why,
            Support::Yes => panic!("{o:?} on {device} accepted"),
        }
    };
    let unknown = why(&[("threads", "9")], "cpu");
    assert!(unknown.contains("ort options threads=9") && unknown.contains("`accuracy_level`, `ort_lib`"), "{unknown}");
    assert!(why(&[("accuracy_level", "7")], "cpu").contains("accuracy_level=7"));
    // The wheel's library is a CPU build: CUDA is refused by name, never run on the CPU instead.
    let cuda = why(&[], "cuda:0");
    assert!(cuda.contains("no CUDAExecutionProvider") && cuda.contains("CPUExecutionProvider"), "{cuda}");
    let missing = why(&[("ort_lib", "/nonexistent/libonnxruntime.so")], "cpu");
    assert!(missing.contains("/nonexistent/libonnxruntime.so"), "{missing}");
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF garbage").unwrap();
    let err = ort
        .load(&ModelSpec { id: "bad".into(), path: bad.clone(), sha256: String::new() }, &opts(&[]))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bad.gguf"), "{err}");
}

/// Rewires edgebench's fused export at `src` to onnxruntime-genai's builder I/O (an `attention_mask` input instead
/// of `seqlens_k`, `total_sequence_length` and `logits_index`; logits for every position) and writes it with a
/// `genai_config.json` into `dir`, as the builder lays a model out (logits `[1, positions, vocab]`).
/// With `last_only`, the logits are the last position's only, as the builder writes them with `prune_lm_head`.
fn write_builder_style_model(src: &std::path::Path, spec: &ModelSpec, dir: &std::path::Path, last_only: bool) {
    use edgebench_onnx::pb::{tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, NodeProto};
    use edgebench_onnx::pb::{AttributeProto, TensorProto};
    use prost::Message;
    let mut m = edgebench_onnx::fingerprint::read_model(src).unwrap();
    let g = m.graph.as_mut().unwrap();
    let ids = g.input.iter().find(|i| i.name == "input_ids").unwrap().clone();
    g.input.retain(|i| !["seqlens_k", "total_sequence_length", "logits_index"].contains(&i.name.as_str()));
    let mut mask = ids;
    mask.name = "attention_mask".into();
    if let Some(type_proto::Value::TensorType(t)) = mask.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape.as_mut().unwrap().dim[1].value = Some(dimension::Value::DimParam("total".into()));
    }
    g.input.push(mask);
    let int64 = |name: &str, dims: &[i64], v: i64| TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int64 as i32,
        int64_data: vec![v],
        ..Default::default()
    };
    g.initializer.extend([int64("g_one", &[], 1), int64("g_one_v", &[1], 1), int64("g_zero", &[], 0)]);
    let node = |op: &str, inputs: &[&str], out: &str, attribute: Vec<AttributeProto>| NodeProto {
        op_type: op.into(),
        name: format!("genai_io_{out}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        attribute,
        ..Default::default()
    };
    let to_i32 =
        || vec![AttributeProto { name: "to".into(), r#type: 2, i: DataType::Int32 as i64, ..Default::default() }];
    let prologue = vec![
        node("Shape", &["attention_mask"], "g_mask_shape", vec![]),
        node("Gather", &["g_mask_shape", "g_one"], "g_total", vec![]),
        node("Cast", &["g_total"], "total_sequence_length", to_i32()),
        node("Gather", &["g_mask_shape", "g_one_v"], "g_total_v", vec![]),
        node("Sub", &["g_total_v", "g_one_v"], "g_past_v", vec![]),
        node("Cast", &["g_past_v"], "seqlens_k", to_i32()),
        node("Shape", &["input_ids"], "g_ids_shape", vec![]),
        node("Gather", &["g_ids_shape", "g_one"], "g_seq", vec![]),
        node("Range", &["g_zero", "g_seq", "g_one"], "g_all_rows", vec![]),
        node("Gather", &["g_ids_shape", "g_one_v"], "g_seq_v", vec![]),
        node("Sub", &["g_seq_v", "g_one_v"], "g_last_row", vec![]),
        node("Identity", &[if last_only { "g_last_row" } else { "g_all_rows" }], "logits_index", vec![]),
    ];
    g.node.splice(0..0, prologue);
    // Logits [rows, vocab] → [1, rows, vocab], rows fixed at 1 when only the last position's are computed.
    let last = g.node.iter_mut().find(|n| n.output.iter().any(|o| o == "logits")).unwrap();
    last.output = vec!["g_logits_2d".into()];
    g.initializer.push(TensorProto {
        name: "g_axes0".into(),
        dims: vec![1],
        data_type: DataType::Int64 as i32,
        int64_data: vec![0],
        ..Default::default()
    });
    g.node.push(node("Unsqueeze", &["g_logits_2d", "g_axes0"], "logits", vec![]));
    let out = g.output.iter_mut().find(|o| o.name == "logits").unwrap();
    if let Some(type_proto::Value::TensorType(t)) = out.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        let dims = &mut t.shape.as_mut().unwrap().dim;
        let rows = if last_only { dimension::Value::DimValue(1) } else { dimension::Value::DimParam("seq".into()) };
        dims[0].value = Some(rows);
        let one = Some(dimension::Value::DimValue(1));
        dims.insert(0, edgebench_onnx::pb::tensor_shape_proto::Dimension { value: one, ..Default::default() });
    }
    std::fs::write(dir.join("model.onnx"), m.encode_to_vec()).unwrap();
    let file = edgebench_gguf::GgufFile::open(&spec.path).unwrap();
    let d = edgebench_gguf::arch::ModelDesc::from_gguf(&file.gguf).unwrap();
    let config = serde_json::json!({"model": {
        "context_length": d.n_ctx, "vocab_size": d.vocab, "type": "llama",
        "decoder": {"filename": "model.onnx", "head_size": d.head_dim, "num_hidden_layers": d.n_layer,
            "num_key_value_heads": d.n_head_kv,
            "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"},
            "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                "present_value_names": "present.%d.value"}}}});
    std::fs::write(dir.join("genai_config.json"), config.to_string()).unwrap();
}

/// `genai_model=DIR` runs a model laid out as onnxruntime-genai's builder writes it (here edgebench's own fused
/// export rewired to the builder's I/O, so the numbers must not change): the same logits as the export through
/// both KV modes, the conformance suite passes, and the results say the weights are the builder's, not the file's.
/// A config that does not describe the GGUF, or options that choose edgebench's export, are refused by name.
#[test]
fn a_builder_written_model_runs_beside_the_export_and_is_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let spec = tiny(dir.path(), GgmlType::Q4_0, GgmlType::Q8_0);
    let f32_acts = [("accuracy_level", "1")];
    ort.prepare(&spec, &opts(&f32_acts)).unwrap();
    let mut dirs = vec![dir.path().join("cache")];
    let mut export = None;
    while let Some(d) = dirs.pop() {
        for p in std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()) {
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "onnx") {
                export = Some(p);
            }
        }
    }
    let export = export.expect("the export in the cache");
    let (genai, pruned) = (dir.path().join("genai"), dir.path().join("genai-pruned"));
    for (d, last_only) in [(&genai, false), (&pruned, true)] {
        std::fs::create_dir(d).unwrap();
        write_builder_style_model(&export, &spec, d, last_only);
    }
    let gdir = genai.to_str().unwrap();
    for (kv, model) in [("shared", &genai), ("copy", &genai), ("shared", &pruned)] {
        let theirs = opts(&[("genai_model", model.to_str().unwrap()), ("kv_buffer", kv)]);
        let a = ort.load(&spec, &opts(&[("accuracy_level", "1"), ("kv_buffer", kv)])).unwrap();
        let b = ort.load(&spec, &theirs).unwrap();
        let facts = b.facts();
        assert!(facts.kernel_path.contains("onnxruntime-genai builder graph"), "{}", facts.kernel_path);
        assert!(facts.converted.as_deref().is_some_and(|c| c.contains("onnxruntime-genai")), "{:?}", facts.converted);
        let (fp, how) = b.weights_fingerprint().unwrap().unwrap();
        assert!(fp.starts_with("sha256:") && fp != source_fingerprint(&spec), "{fp}: {how}");
        assert_eq!(b.batch_variance(), None, "f32 activations: batch-consistent");
        let one_at_a_time = facts.notes.iter().any(|n| n.contains("prune_lm_head"));
        assert_eq!(one_at_a_time, model == &pruned, "{:?}", facts.notes);
        let (mut sa, mut sb) = (a.new_session().unwrap(), b.new_session().unwrap());
        let prompt: Vec<u32> = (1..12).collect();
        // The pruned head feeds a prompt one token at a time, so from the prompt on its logits equal the export's
        // to within float rounding only; the full head runs the export's very computation.
        let same = |x: Vec<f32>, y: Vec<f32>, what: &str| {
            let worst = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert_eq!(x.len(), y.len(), "KV {kv}, {what}");
            if model == &pruned {
                LOGITS_BATCH_VS_INCREMENTAL.check(&x, &y).unwrap_or_else(|f| panic!("pruned head, {what}: {f}"));
            } else {
                assert!(x == y, "KV {kv}, {what}: max |diff| {worst}");
            }
        };
        same(sa.forward_all(&prompt).unwrap(), sb.forward_all(&prompt).unwrap(), "prompt");
        for t in [5u32, 9, 2] {
            same(sa.forward(&[t]).unwrap(), sb.forward(&[t]).unwrap(), "a step");
        }
        conformance::run_all_with(&ort, &spec, 2, &theirs).unwrap_or_else(|f| panic!("KV {kv}: {f}"));
    }
    let why = |o: &[(&str, &str)], spec: &ModelSpec| match ort.supports(spec, &opts(o)) {
        Support::No(why) => why,
        Support::Yes => match ort.prepare(spec, &opts(o)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{o:?} accepted"),
        },
    };
    let e = why(&[("genai_model", gdir), ("graph", "primitive")], &spec);
    assert!(e.contains("genai_model"), "{e}");
    // A config whose vocabulary is not the GGUF's.
    let config = std::fs::read_to_string(genai.join("genai_config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&config).unwrap();
    v["model"]["vocab_size"] = serde_json::json!(v["model"]["vocab_size"].as_u64().unwrap() + 1);
    std::fs::write(genai.join("genai_config.json"), v.to_string()).unwrap();
    let e = why(&[("genai_model", gdir)], &spec);
    assert!(
        e.contains("genai_config.json") && e.contains("vocabulary") && e.contains("not a model of this file"),
        "{e}"
    );
    let missing = why(&[("genai_model", "/nonexistent/genai")], &spec);
    assert!(missing.contains("/nonexistent/genai/genai_config.json"), "{missing}");
}

/// The graph variants the architecture tests run: the default (fused, int8 activations), fused with f32
/// activations, and the primitive graph.
const VARIANTS: [(&str, &str); 3] = [("fused", "4"), ("fused", "1"), ("primitive", "1")];

/// Every architecture the description names (Llama 3.1's rope factors, Qwen2's biases, Qwen3's Q/K norms and wide
/// heads, Gemma 3's post norms, GELU, embedding scale and sliding window, Phi-3's fused matrices) × Q4_0, Q5_0, Q8_0
/// (and Q4_K, Q5_K, Q6_K on Llama and Gemma 3), each graph variant: the logits agree with the native engine's within the
/// cross-backend tolerance and the tiny models' |Δlogit| bound, ONNX Runtime runs the GGUF's values, and the
/// conformance suite passes.
#[test]
fn every_architecture_agrees_with_native_and_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let specs = tiny_arch_specs(dir.path());
    let mut worst = (0f64, 0f32);
    for (what, spec) in &specs {
        let native = NativeBackend.load(spec, &opts(&[])).unwrap();
        for (graph, acc) in VARIANTS {
            let o = opts(&[("graph", graph), ("accuracy_level", acc)]);
            let m = ort.load(spec, &o).unwrap_or_else(|e| panic!("{what}, {graph} graph: {e}"));
            let cmp = compare_short_exchange(native.as_ref(), m.as_ref());
            eprintln!(
                "{what}, {graph} graph, accuracy_level={acc}: mean KLD {:.6}, top-1 {:.0}%, max |Δlogit| {:.4}",
                cmp.mean_kld(),
                cmp.top1_agreement() * 100.0,
                cmp.max_abs_diff
            );
            worst = (worst.0.max(cmp.mean_kld()), worst.1.max(cmp.max_abs_diff));
            LOGITS_CROSS_BACKEND
                .check(cmp.mean_kld(), cmp.top1_agreement())
                .unwrap_or_else(|f| panic!("{what}, {graph} graph, accuracy_level={acc}: {f}"));
            assert!(
                cmp.max_abs_diff <= TINY_MAX_ABS_LOGIT_DIFF,
                "{what}, {graph} graph, accuracy_level={acc}: max |Δlogit| {}",
                cmp.max_abs_diff
            );
            let (fp, how) = m.weights_fingerprint().unwrap().unwrap();
            assert_eq!(fp, source_fingerprint(spec), "{what}, {graph} graph: {how}");
            if acc == "4" || graph == "primitive" {
                conformance::run_all_with(&ort, spec, 2, &o)
                    .unwrap_or_else(|f| panic!("{what}, {graph} graph, accuracy_level={acc}: {f}"));
            }
        }
    }
    eprintln!(
        "worst over {} models × {} variants: mean KLD {:.6}, max |Δlogit| {:.4}",
        specs.len(),
        3,
        worst.0,
        worst.1
    );
}

/// Greedy tokens of `m` against the native engine's from `prompt`: equal, or parting only at a near tie of the
/// native engine's logits (`GREEDY_NEAR_TIE_LOGITS`), after the teacher-forced logits agreed within `tolerance`.
fn greedy_matches_native(
    native: &dyn LoadedModel,
    m: &dyn LoadedModel,
    prompt: &[u32],
    tokens: usize,
    tolerance: edgebench_core::tolerance::DriftTolerance,
    what: &str,
) {
    use edgebench_core::tolerance::GREEDY_NEAR_TIE_LOGITS;
    let vocab = native.facts().vocab_size;
    let greedy = |m: &dyn LoadedModel| {
        let mut s = m.new_session().unwrap();
        workload::run_repetition(s.as_mut(), prompt, tokens - 1, Sampler::Greedy, vocab).unwrap().generated
    };
    let (want, got) = (greedy(native), greedy(m));
    assert_eq!((want.len(), got.len()), (tokens, tokens));
    eprint!("{what}: native vs ort teacher-forced ");
    let cmp = compare_teacher_forced(native, m, prompt, &want[..tokens - 1]);
    tolerance.check(cmp.mean_kld(), cmp.top1_agreement()).unwrap_or_else(|f| panic!("{what}: {f}"));
    let Some(d) = want.iter().zip(&got).position(|(a, b)| a != b) else {
        eprintln!("{what}: the same {tokens} greedy tokens as native");
        return;
    };
    let last = |m: &dyn LoadedModel| {
        let mut s = m.new_session().unwrap();
        let mut l = s.forward(prompt).unwrap();
        for &t in &want[..d] {
            l = s.forward(&[t]).unwrap();
        }
        l
    };
    let (ln, lo) = (last(native), last(m));
    let (a, b) = (want[d] as usize, got[d] as usize);
    let (margin_native, margin_ort) = (ln[a] - ln[b], lo[b] - lo[a]);
    eprintln!(
        "{what}: greedy tokens part at {d} of {tokens}: native {a} by {margin_native:.4} over {b}, ort {b} by \
         {margin_ort:.4}"
    );
    assert!(
        margin_native <= GREEDY_NEAR_TIE_LOGITS,
        "{what}: the greedy tokens part at {d} where native's pick leads by {margin_native} logits, no near tie"
    );
}

/// The real Gemma 3 270M Q4_K_M file (Q5_0, Q8_0, Q4_K, Q6_K matrices; sliding window 512 on 5 of 6 layers; tied
/// 262144-row Q8_0 embedding): conformance, the GGUF's values, and 32 greedy tokens from the golden prompt equal to
/// the native engine's (or parting at a near tie), for the default graph and the primitive one.
#[test]
fn gemma3_q4_k_m_conforms_and_matches_native_greedy_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ort = backend(dir.path());
    let spec = registry_model(Some(GEMMA3_ID));
    let (_, prompt) = golden_prompt(&spec);
    let native = NativeBackend.load(&spec, &opts(&[])).unwrap();
    for (graph, acc) in [("fused", "4"), ("primitive", "1")] {
        let o = opts(&[("graph", graph), ("accuracy_level", acc)]);
        let what = format!("gemma3 {graph} graph, accuracy_level={acc}");
        ort.prepare(&spec, &o).unwrap();
        let m = ort.load(&spec, &o).unwrap();
        let facts = m.facts();
        eprintln!("{what}: {:?}; converted: {:?}", facts.notes[0], facts.converted);
        if acc == "4" {
            assert_eq!(facts.converted, None, "{what}: every type carried exactly at int8 activations");
        }
        let (fp, _) = m.weights_fingerprint().unwrap().unwrap();
        assert_eq!(fp, source_fingerprint(&spec), "{what}: ort runs the GGUF's values");
        let tolerance = if acc == "4" { LOGITS_CROSS_BACKEND_INT8_BATCHED } else { LOGITS_CROSS_BACKEND };
        greedy_matches_native(native.as_ref(), m.as_ref(), &prompt, 32, tolerance, &what);
        drop(m);
        conformance::run_all_with(&ort, &spec, 2, &o).unwrap_or_else(|f| panic!("{what}: {f}"));
    }
}

//! The ort backend on accelerators' toolchains, end to end on the default model: OpenVINO's build of ONNX Runtime
//! on OpenVINO's CPU device (the whole graph, exact weights, its coverage recorded), the fused graph refused with
//! its coverage, absent devices refused with OpenVINO's own reason, and QNN's HTP (emulated on x86-64) as far as it
//! goes: static shapes, and the operators it does not take. The libraries are the pinned wheels' (fetched into the
//! user's cache on first use, like the model).

use serde_json::Value as Json;

use crate::common::*;

fn user_cache() -> String {
    std::env::var("EDGEBENCH_CACHE").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| {
        let base = std::env::var("XDG_CACHE_HOME")
            .ok()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| format!("{}/.cache", std::env::var("HOME").unwrap()));
        format!("{base}/edgebench")
    })
}

/// `edgebench run --backend ort` on the default model with `args`; the cells of its results.
fn run_ort(dir: &std::path::Path, name: &str, args: &[&str]) -> Vec<Json> {
    let out = dir.join(format!("{name}.json"));
    let mut all = vec!["run", "--backend", "ort", "--threads", "2", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let cache = user_cache();
    let o = edgebench(&all, &[("EDGEBENCH_CACHE", cache.as_str())]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", text(&o));
    let r: Json = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    r["cells"].as_array().unwrap().clone()
}

fn linux_x86_64() -> bool {
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return true;
    }
    eprintln!("skipped: the OpenVINO and QNN wheels are pinned for linux-x86_64 only");
    false
}

#[test]
fn openvino_runs_the_whole_graph_on_its_cpu_device_with_the_files_weights() {
    if !linux_x86_64() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cells = run_ort(dir.path(), "ov", &["--device", "openvino"]);
    let c = &cells[0];
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["key"]["device"], "openvino:CPU");
    let b = &c["backend"];
    assert!(b["kernel_path"].as_str().unwrap().starts_with("onnxruntime OpenVINOExecutionProvider (CPU); primitive"));
    assert!(b["versions"][0].as_str().unwrap().contains("onnxruntime-openvino==1.24.1 wheel"), "{b}");
    let cov = &b["coverage"];
    assert_eq!(cov["nodes_on_device"], cov["nodes"], "{cov}");
    assert_eq!(cov["weight_bytes_on_device"], cov["weight_bytes_total"], "{cov}");
    assert_eq!(cov["partitions"], 1);
    assert!(cov["nodes"].as_u64().unwrap() > 1000);
    assert_eq!(b["weights"]["fingerprint"], b["weights"]["source"], "the file's weights ran");
    let kld = c["drift"]["stats"]["kld"]["value"].as_f64().unwrap();
    assert!(kld < 0.05, "OpenVINO's arithmetic drifts {kld} nats from the f32 reference");
}

#[test]
fn openvino_refuses_the_fused_graph_with_its_coverage_and_absent_devices_with_its_own_reason() {
    if !linux_x86_64() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cells = run_ort(dir.path(), "ov-fused", &["--device", "openvino", "--backend-opt", "ort:graph=fused"]);
    let fused = &cells[0];
    assert_eq!(fused["status"], "skipped", "{fused}");
    let why = fused["reason"].as_str().unwrap();
    assert!(why.contains("OpenVINOExecutionProvider took") && why.contains("partitions"), "{why}");
    assert!(why.contains("com.microsoft.GroupQueryAttention (to CPUExecutionProvider)"), "{why}");
    assert!(why.contains("allow_cpu_fallback=true"), "{why}");
    let cells = run_ort(dir.path(), "ov-npu", &["--device", "openvino:NPU"]);
    let npu = &cells[0];
    assert_eq!(npu["status"], "skipped", "{npu}");
    assert!(npu["reason"].as_str().unwrap().contains("[OpenVINO] Device NPU is not available"), "{npu}");
}

#[test]
fn qnn_htp_takes_the_static_graph_but_not_its_4_bit_products() {
    if !linux_x86_64() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The float graph (`qdq=false`); QNN's default, the QDQ variant, runs whole on the HTP (the ort crate's tests,
    // on a tiny model: the emulated HTP takes ~18 s a token of the default model).
    let float = ["--device", "qnn", "--suite", "quick", "--backend-opt", "ort:qdq=false"];
    let cells = run_ort(dir.path(), "qnn", &float);
    let c = &cells[0];
    assert_eq!(c["key"]["device"], "qnn:htp");
    assert_eq!(c["status"], "skipped", "{c}");
    let why = c["reason"].as_str().unwrap();
    assert!(why.contains("QNN took") && why.contains("com.microsoft.MatMulNBits (to CPUExecutionProvider)"), "{why}");
    assert!(!why.contains("Dynamic shape"), "static shapes reach the provider: {why}");
    // The context QNN prepared for the coverage is cached with it, so the same refusal again prepares nothing.
    let again = run_ort(dir.path(), "qnn-again", &float);
    let why_again = again[0]["reason"].as_str().unwrap();
    assert!(why_again.contains("as recorded when QNN prepared the cached context"), "{why_again}");
    let report = |w: &str| w.split(" not taken").next().unwrap().to_string();
    assert_eq!(report(why_again), report(why), "the recorded coverage is the one measured");
}

#[test]
fn backends_lists_each_accelerator_librarys_devices_present_or_absent() {
    if !linux_x86_64() {
        return;
    }
    let cache = user_cache();
    let o = edgebench(&["backends"], &[("EDGEBENCH_CACHE", cache.as_str())]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("openvino: onnxruntime 1.24.1") && t.contains("openvino:CPU: present"), "{t}");
    assert!(t.contains("openvino:NPU: absent:") && t.contains("Device NPU is not available"), "{t}");
    assert!(t.contains("qnn:htp: present (emulated"), "{t}");
    assert!(t.contains("qnn:cpu: absent:") && t.contains("libQnnCpu.so"), "{t}");
}

#[test]
fn export_refuses_fp16_safe_norms_on_the_fused_graph() {
    let dir = tempfile::tempdir().unwrap();
    let o = edgebench(&["export", "onnx", "--out", dir.path().to_str().unwrap(), "--fp16-safe-norm"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--fp16-safe-norm needs --graph primitive"), "{}", text(&o));
}

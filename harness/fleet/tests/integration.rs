//! The fleet steps without a fleet: `plan` on a tiny model (inventory, variables, refusals), and `collect` and
//! `load_index` on a fleet folder filled by hand as the playbook would (ok, mislabelled, failed, unreachable).

use std::path::Path;

use edgebench_fleet::{collect, load_index, plan, FleetFile};

fn setup(dir: &Path, extra_device: &str) -> std::path::PathBuf {
    let model = edgebench_gguf::synth::tiny_model(&edgebench_gguf::synth::TinyConfig::default()).unwrap();
    model.write(&dir.join("tiny.gguf")).unwrap();
    std::fs::write(dir.join("edgebench-x86"), b"#!/bin/sh\n").unwrap();
    let text = format!(
        r#"
[fleet]
backends = ["mock"]
threads = [1]
models = ["tiny.gguf"]
extra_args = ["--drift", "off"]
[binaries]
x86_64 = "edgebench-x86"
[[device]]
name = "a"
address = "127.0.0.2"
user = "u"
arch = "x86_64"
cores = 2
[[device]]
name = "b"
address = "127.0.0.3"
port = 2222
user = "u"
arch = "x86_64"
remote_dir = "/home/u/eb"
{extra_device}
"#
    );
    let p = dir.join("fleet.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn plan_writes_an_inventory_with_each_devices_command() {
    let dir = tempfile::tempdir().unwrap();
    let f = setup(dir.path(), "");
    let out = dir.path().join("run");
    let p = plan(&FleetFile::read(&f).unwrap(), &f, &out, "0.1.0").unwrap();
    assert_eq!(p.devices.len(), 2);
    let inv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("inventory.json")).unwrap()).unwrap();
    let b = &inv["fleet"]["hosts"]["b"];
    assert_eq!((b["ansible_host"].as_str(), b["ansible_port"].as_u64()), (Some("127.0.0.3"), Some(2222)));
    let args: Vec<&str> = b["eb"]["args"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(&args[..5], ["run", "--suite", "quick", "--backend", "mock"]);
    assert!(args.windows(2).any(|w| w == ["--model", "/home/u/eb/models/tiny.gguf"]), "{args:?}");
    assert!(args.ends_with(&["--force", "--out", "/home/u/eb/results.json"]), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["--drift", "off"]));
    assert_eq!(inv["fleet"]["hosts"]["a"]["eb"]["remote_dir"], "/tmp/edgebench-fleet");
    // A second plan into the same folder once results are there is refused: nothing is overwritten.
    std::fs::create_dir_all(out.join("results/a")).unwrap();
    std::fs::write(out.join("results/a/results.json"), "{}").unwrap();
    let e = plan(&FleetFile::read(&f).unwrap(), &f, &out, "0.1.0").unwrap_err().to_string();
    assert!(e.contains("earlier fleet run"), "{e}");
}

#[test]
fn a_device_without_a_binary_for_its_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = setup(dir.path(), "[[device]]\nname = \"pi\"\naddress = \"10.0.0.9\"\nuser = \"u\"\narch = \"aarch64\"\n");
    let e = plan(&FleetFile::read(&f).unwrap(), &f, &dir.path().join("run"), "0.1.0").unwrap_err().to_string();
    assert!(e.contains("device pi") && e.contains("aarch64") && e.contains("[binaries]"), "{e}");
}

#[test]
fn collect_checks_each_device_and_failed_ones_become_failed_cells() {
    let dir = tempfile::tempdir().unwrap();
    let f = setup(dir.path(), "[[device]]\nname = \"c\"\naddress = \"127.0.0.4\"\nuser = \"u\"\narch = \"x86_64\"\n");
    let out = dir.path().join("run");
    plan(&FleetFile::read(&f).unwrap(), &f, &out, "0.1.0").unwrap();
    // Device a: results from a 4-CPU host, though the fleet file says 2; b: lost mid-run; c: never reached.
    let mut r = edgebench_core::results::RunResults {
        schema_version: edgebench_core::results::SCHEMA_VERSION,
        run_id: "r1".into(),
        started_at: String::new(),
        finished_at: None,
        manifest: Default::default(),
        device: edgebench_core::results::DeviceFingerprint {
            cpu_model: "Test CPU".into(),
            arch: "x86_64".into(),
            logical_cpus: 4,
            ..Default::default()
        },
        models: Default::default(),
        cells: vec![],
    };
    r.device.hostname = "host-a".into();
    std::fs::create_dir_all(out.join("results/a")).unwrap();
    std::fs::write(out.join("results/a/results.json"), serde_json::to_string(&r).unwrap()).unwrap();
    let status = |name: &str, s: &str, why: &str| {
        let v = serde_json::json!({"status": s, "reason": why, "ansible_version": "2.19.14"});
        std::fs::write(out.join(format!("status/{name}.json")), v.to_string()).unwrap();
    };
    status("a", "ok", "edgebench exited 0");
    status("b", "failed", "Run edgebench under the device's lock: unreachable during the run");
    let index = collect(&out).unwrap();
    let by = |n: &str| index.devices.iter().find(|d| d.name == n).unwrap();
    assert_eq!(by("a").status, "mislabelled");
    assert!(by("a").reasons[0].contains("4 logical CPUs but the fleet file says 2"), "{:?}", by("a").reasons);
    assert_eq!(by("b").status, "failed");
    assert!(by("b").reasons[0].contains("unreachable during the run"));
    assert!(by("c").reasons[0].contains("never reached"), "{:?}", by("c").reasons);
    assert_eq!(index.ansible_version, "2.19.14");
    let runs = load_index(&out.join("fleet.json")).unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].1.run_id, "a: r1");
    let failed = &runs[1].1.cells[0];
    assert_eq!((failed.key.backend.as_str(), failed.key.model.as_str()), ("mock", "tiny"));
    assert!(
        matches!(&failed.status, edgebench_core::results::CellStatus::Failed { message, .. } if message.contains("unreachable during the run"))
    );
    // A results file changed after collection is refused by its SHA-256.
    std::fs::write(out.join("results/a/results.json"), serde_json::to_string(&r).unwrap() + " ").unwrap();
    assert!(load_index(&out.join("fleet.json")).unwrap_err().to_string().contains("SHA-256"));
}

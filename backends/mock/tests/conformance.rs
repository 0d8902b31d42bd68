//! The mock backend passes the shared conformance suite.

use edgebench_backend_mock::MockBackend;
use edgebench_core::ModelSpec;
use edgebench_gguf::synth::{tiny_model, TinyConfig};

#[test]
fn mock_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    tiny_model(&TinyConfig::default()).unwrap().write(&path).unwrap();
    let spec = ModelSpec { id: "tiny".into(), path, sha256: String::new() };
    edgebench_testkit::conformance::run_all(&MockBackend, &spec, 1).unwrap();
}

//! Helpers shared by the CLI tests: running the binary, tiny mock models, a tiny suite, results files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgebench_gguf::synth::{tiny_model, TinyConfig};
use edgebench_gguf::Value;
use serde_json::Value as Json;

/// Runs the binary. Every `run` here uses tiny generated models, so unless a test names a cache, the drift references
/// they build go to one cache for this test process, not the user's.
pub fn edgebench(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
    c.args(args);
    if args.first() == Some(&"run") && !env.iter().any(|(k, _)| *k == "EDGEBENCH_CACHE") {
        c.env("EDGEBENCH_CACHE", std::env::temp_dir().join(format!("edgebench-cli-tests-{}", std::process::id())));
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A tiny model whose metadata tells the mock backend how to misbehave.
pub fn model(dir: &Path, name: &str, mock: &[(&str, &str)]) -> PathBuf {
    let mut w = tiny_model(&TinyConfig { n_layer: 1, ..TinyConfig::default() }).unwrap();
    for (k, v) in mock {
        w.kv(&format!("edgebench.mock.{k}"), Value::String(v.to_string()));
    }
    let p = dir.join(format!("{name}.gguf"));
    w.write(&p).unwrap();
    p
}

pub fn suite(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.toml");
    std::fs::write(
        &p,
        "name = \"tiny\"\nrepetitions = 3\nwarmup = 1\nload_repetitions = 2\ntimeout_s = 60\n\
         [[workload]]\nname = \"gen\"\nkind = \"synthetic\"\ntokens = 16\ngen_tokens = 8\n",
    )
    .unwrap();
    p
}

pub fn results(path: &Path) -> Json {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `edgebench run` with the mock backend on one healthy tiny model and the tiny suite, 1 thread, plus `extra`;
/// returns the process output and the results file's path.
pub fn run_mock(dir: &Path, extra: &[&str]) -> (Output, PathBuf) {
    run_mock_env(dir, extra, &[])
}

/// [`run_mock`] with environment variables.
pub fn run_mock_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Output, PathBuf) {
    let (m, s, out) = (model(dir, "ok", &[]), suite(dir), dir.join("r.json"));
    // `--force`: tests here run again into the same file; keeping results is `no_data_loss`'s subject.
    let mut args = vec!["run", "--backend", "mock", "--threads", "1", "--force"];
    args.extend(["--model", m.to_str().unwrap(), "--suite", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    (edgebench(&args, env), out)
}

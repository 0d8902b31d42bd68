//! Records what a results manifest needs about the build: git commit, rustc, target, profile, and the versions of
//! backend libraries resolved in Cargo.lock.

use std::process::Command;

fn cmd(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = cmd("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = cmd("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=EDGEBENCH_GIT_COMMIT={commit}{}", if dirty { "-dirty" } else { "" });
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    println!("cargo:rustc-env=EDGEBENCH_RUSTC={}", cmd(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into()));
    println!("cargo:rustc-env=EDGEBENCH_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    println!("cargo:rustc-env=EDGEBENCH_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());

    let lock_path =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../../Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    let versions: toml::Value = toml::from_str(&lock).unwrap_or(toml::Value::Table(Default::default()));
    let find = |name: &str| {
        versions
            .get("package")
            .and_then(|p| p.as_array())
            .and_then(|ps| ps.iter().find(|p| p.get("name").and_then(|n| n.as_str()) == Some(name)))
            .and_then(|p| p.get("version"))
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    println!("cargo:rustc-env=EDGEBENCH_CANDLE_VERSION={}", find("candle-core"));
    println!("cargo:rerun-if-changed=../../Cargo.lock");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/index");
}

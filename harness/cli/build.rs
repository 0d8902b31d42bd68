//! Records what a results manifest needs about the build: git commit, rustc, target, profile. (Backend library
//! versions come from each backend's `versions`.)

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

    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/index");
}

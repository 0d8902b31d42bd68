//! Records which llama.cpp source is compiled in: the crates-registry checksum of llama-cpp-sys-2 from Cargo.lock
//! (the crate vendors llama.cpp without git metadata, so ggml's own build commit reads "unknown").

fn main() {
    let lock_path =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../../Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    let checksum = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"llama-cpp-sys-2\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("checksum = \"")))
        .map(|c| c.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=EDGEBENCH_LLAMA_CPP_SYS_SHA256={checksum}");
    println!("cargo:rerun-if-changed=../../Cargo.lock");
}

//! The llama.cpp backend: the same GGUF file run by llama.cpp (vendored in the crate `llama-cpp-sys-2`), the peer
//! every other backend is read against.
//!
//! Like every backend it only maps token ids to logits: the harness tokenizes, samples and times. Settings follow
//! `llama-bench`'s defaults (batch 2048, micro-batch 512, f16 KV cache, flash attention `auto`, mmap on, CPU weight
//! repacking on) so the figures are comparable with it; each can be changed with `--backend-opt`:
//! `ctx=N`, `batch=N`, `ubatch=N`, `mmap=true|false`, `repack=true|false`, `flash_attn=auto|on|off`.
//!
//! Without the `llama-cpp` feature this crate is an empty shell; the CLI then answers "not compiled in".

#[cfg(feature = "llama-cpp")]
mod backend;
#[cfg(feature = "llama-cpp")]
mod ffi;
#[cfg(feature = "llama-cpp")]
mod options;

#[cfg(feature = "llama-cpp")]
pub use backend::LlamaCppBackend;

/// llama.cpp's own tokenization of `text` with the vocabulary of the GGUF file at `path` (`add_special`: BOS as the
/// vocabulary asks; `parse_special`: control-token text becomes the token): the oracle edgebench's tokenizer is
/// tested against.
#[cfg(feature = "llama-cpp")]
pub fn llama_cpp_tokenize(
    path: &std::path::Path,
    text: &str,
    add_special: bool,
    parse_special: bool,
) -> Result<Vec<u32>, String> {
    let params = ffi::ModelParams { mmap: true, repack: false, n_gpu_layers: 0, main_gpu: 0, vocab_only: true };
    ffi::Model::load(path, params)?.tokenize(text, add_special, parse_special)
}

/// The `llama-cpp-sys-2` release whose vendored llama.cpp this crate builds (pinned exactly in Cargo.toml).
pub const LLAMA_CPP_SYS_VERSION: &str = "0.1.161";

#[cfg(test)]
mod tests {
    #[test]
    fn pinned_version_matches_cargo_lock() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
        let needle = format!("name = \"llama-cpp-sys-2\"\nversion = \"{}\"", super::LLAMA_CPP_SYS_VERSION);
        assert!(lock.contains(&needle), "Cargo.lock does not resolve llama-cpp-sys-2 {}", super::LLAMA_CPP_SYS_VERSION);
    }
}

//! `--backend-opt` keys of the llama.cpp backend, parsed and checked; defaults are llama-bench's.

use std::collections::BTreeMap;

use edgebench_core::BackendError;
use llama_cpp_sys_2 as sys;

/// Parsed options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// KV-cache positions (llama.cpp rounds up to a multiple of 256); `None` = 2048, capped at the training context.
    pub ctx: Option<u32>,
    /// Logical batch.
    pub batch: u32,
    /// Physical micro-batch.
    pub ubatch: u32,
    /// Memory-map the weights.
    pub mmap: bool,
    /// CPU weight repacking.
    pub repack: bool,
    /// Flash attention: `auto`, `on`, `off`.
    pub flash_attn: String,
}

/// Keys this backend understands.
pub const KEYS: [&str; 6] = ["ctx", "batch", "ubatch", "mmap", "repack", "flash_attn"];

/// KV-cache positions when `ctx` is not given: room for every built-in workload (pp512 + tg128) without paying
/// for the model's whole 8k window in peak RAM.
pub const DEFAULT_CTX: u32 = 2048;

impl Options {
    /// Reads `opts`, rejecting unknown keys and bad values with the key named.
    pub fn parse(opts: &BTreeMap<String, String>) -> Result<Options, BackendError> {
        let bad = |k: &str, v: &str, want: &str| {
            BackendError::Unsupported(format!("llamacpp option {k}={v:?}: expected {want}"))
        };
        let mut o =
            Options { ctx: None, batch: 2048, ubatch: 512, mmap: true, repack: true, flash_attn: "auto".into() };
        for (k, v) in opts {
            let num = || v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| bad(k, v, "a positive integer"));
            let flag = || match v.as_str() {
                "true" | "on" | "1" => Ok(true),
                "false" | "off" | "0" => Ok(false),
                _ => Err(bad(k, v, "true or false")),
            };
            match k.as_str() {
                "ctx" => o.ctx = Some(num()?),
                "batch" => o.batch = num()?,
                "ubatch" => o.ubatch = num()?,
                "mmap" => o.mmap = flag()?,
                "repack" => o.repack = flag()?,
                "flash_attn" => match v.as_str() {
                    "auto" | "on" | "off" => o.flash_attn = v.clone(),
                    _ => return Err(bad(k, v, "auto, on or off")),
                },
                _ => {
                    return Err(BackendError::Unsupported(format!(
                        "llamacpp has no option {k:?} (known: {})",
                        KEYS.join(", ")
                    )))
                }
            }
        }
        if o.ubatch > o.batch {
            return Err(bad("ubatch", &o.ubatch.to_string(), &format!("at most batch ({})", o.batch)));
        }
        Ok(o)
    }

    /// The flash-attention setting as llama.cpp's enum.
    pub fn flash_attn_type(&self) -> sys::llama_flash_attn_type {
        match self.flash_attn.as_str() {
            "on" => sys::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            "off" => sys::LLAMA_FLASH_ATTN_TYPE_DISABLED,
            _ => sys::LLAMA_FLASH_ATTN_TYPE_AUTO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kv: &[(&str, &str)]) -> Result<Options, BackendError> {
        Options::parse(&kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn defaults_are_llama_benchs() {
        let o = parse(&[]).unwrap();
        assert_eq!((o.batch, o.ubatch, o.mmap, o.repack, o.flash_attn.as_str()), (2048, 512, true, true, "auto"));
    }

    #[test]
    fn values_are_checked_and_named() {
        assert_eq!(parse(&[("ctx", "4096"), ("mmap", "false")]).unwrap().ctx, Some(4096));
        for (kv, needle) in [
            (("ctx", "0"), "ctx=\"0\""),
            (("mmap", "maybe"), "mmap=\"maybe\""),
            (("flash_attn", "yes"), "flash_attn"),
            (("threads", "4"), "no option \"threads\""),
            (("ubatch", "4096"), "at most batch"),
        ] {
            let err = parse(&[kv]).unwrap_err().to_string();
            assert!(err.contains(needle), "{kv:?}: {err}");
        }
    }
}

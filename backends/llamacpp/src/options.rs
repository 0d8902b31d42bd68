//! `--backend-opt` keys of the llama.cpp backend, parsed and checked; defaults are llama-bench's.

use edgebench_core::BackendError;
use llama_cpp_sys_2 as sys;
use serde::Deserialize;

/// The llama.cpp backend's options; `Default` is llama-bench's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
    /// Flash attention.
    pub flash_attn: FlashAttn,
}

/// llama.cpp's flash-attention setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashAttn {
    /// llama.cpp decides per device.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl Default for Options {
    fn default() -> Self {
        Options { ctx: None, batch: 2048, ubatch: 512, mmap: true, repack: true, flash_attn: FlashAttn::Auto }
    }
}

/// KV-cache positions when `ctx` is not given: room for every built-in workload (pp512 + tg128) without paying
/// for the model's whole 8k window in peak RAM.
pub const DEFAULT_CTX: u32 = 2048;

impl Options {
    /// Checks what the types cannot: positive sizes, and a micro-batch no larger than the batch.
    pub fn validate(&self) -> Result<(), BackendError> {
        let bad = |k: &str, v: u32, want: &str| {
            BackendError::Unsupported(format!("llamacpp option {k}={v}: expected {want}"))
        };
        for (k, v) in [("ctx", self.ctx.unwrap_or(1)), ("batch", self.batch), ("ubatch", self.ubatch)] {
            if v == 0 {
                return Err(bad(k, v, "a positive integer"));
            }
        }
        if self.ubatch > self.batch {
            return Err(bad("ubatch", self.ubatch, &format!("at most batch ({})", self.batch)));
        }
        Ok(())
    }

    /// The flash-attention setting as llama.cpp's enum.
    pub fn flash_attn_type(&self) -> sys::llama_flash_attn_type {
        match self.flash_attn {
            FlashAttn::On => sys::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            FlashAttn::Off => sys::LLAMA_FLASH_ATTN_TYPE_DISABLED,
            FlashAttn::Auto => sys::LLAMA_FLASH_ATTN_TYPE_AUTO,
        }
    }

    /// The flash-attention setting as the option's text.
    pub fn flash_attn_name(&self) -> &'static str {
        match self.flash_attn {
            FlashAttn::On => "on",
            FlashAttn::Off => "off",
            FlashAttn::Auto => "auto",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kv: &[(&str, &str)]) -> Result<Options, BackendError> {
        let o: Options = edgebench_core::parse_options(
            "llamacpp",
            &kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        )?;
        o.validate().map(|_| o)
    }

    #[test]
    fn defaults_are_llama_benchs() {
        let o = parse(&[]).unwrap();
        assert_eq!((o.batch, o.ubatch, o.mmap, o.repack, o.flash_attn), (2048, 512, true, true, FlashAttn::Auto));
    }

    #[test]
    fn values_are_checked_and_named() {
        assert_eq!(parse(&[("ctx", "4096"), ("mmap", "false")]).unwrap().ctx, Some(4096));
        for (kv, needle) in [
            (("ctx", "0"), "ctx=0"),
            (("mmap", "maybe"), "mmap=maybe"),
            (("flash_attn", "yes"), "flash_attn"),
            (("threads", "4"), "unknown field `threads`, expected one of `ctx`, `batch`"),
            (("ubatch", "4096"), "at most batch"),
        ] {
            let err = parse(&[kv]).unwrap_err().to_string();
            assert!(err.contains(needle), "{kv:?}: {err}");
        }
    }
}

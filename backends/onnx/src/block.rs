//! The pieces of a transformer block both graphs build alike, each a reading of the architecture description
//! (`edgebench_gguf::arch::ModelDesc`): Q/K/V (one matrix or three, biases), gate and up (one matrix or two), the
//! gating activation, rope frequencies (per-layer base, Llama 3.1's divisors), Q/K and post norms, the embedding scale.

use edgebench_gguf::arch::{names, Activation, ModelDesc};

use crate::export::Ctx;
use crate::proto::attr_i;
use crate::OnnxError;

impl Ctx<'_> {
    /// Q, K and V of layer `li` side by side, `[rows, q_dim + 2·kv_dim]`, biases added: one product (`attn_qkv`, or
    /// the three matrices stacked where they are carried alike).
    pub(crate) fn qkv_packed(&mut self, x: &str, hp: &ModelDesc, li: usize) -> Result<String, OnnxError> {
        let w = |n: &str| names::blk(li, &format!("{n}.weight"));
        if hp.fused_qkv {
            let y = self.linear(x, &w("attn_qkv"))?;
            return self.bias(&y, &[names::blk(li, "attn_qkv.bias")], hp.qkv_bias, &[hp.q_dim() + 2 * hp.kv_dim()]);
        }
        let y = self.linear_fused(x, &[w("attn_q"), w("attn_k"), w("attn_v")])?;
        let b = ["attn_q.bias", "attn_k.bias", "attn_v.bias"].map(|n| names::blk(li, n));
        self.bias(&y, &b, hp.qkv_bias, &[hp.q_dim(), hp.kv_dim(), hp.kv_dim()])
    }

    /// Q, K and V of layer `li`, `[rows, q_dim]`, `[rows, kv_dim]`, `[rows, kv_dim]`, biases added: three products,
    /// or one (`attn_qkv`) split.
    pub(crate) fn qkv_separate(&mut self, x: &str, hp: &ModelDesc, li: usize) -> Result<[String; 3], OnnxError> {
        let (qd, kvd) = (hp.q_dim(), hp.kv_dim());
        if hp.fused_qkv {
            let y = self.qkv_packed(x, hp, li)?;
            return Ok(self.split(&y, &[qd, kvd, kvd]).try_into().expect("three parts"));
        }
        let mut out = Vec::with_capacity(3);
        for (n, width) in [("attn_q", qd), ("attn_k", kvd), ("attn_v", kvd)] {
            let y = self.linear(x, &names::blk(li, &format!("{n}.weight")))?;
            out.push(self.bias(&y, &[names::blk(li, &format!("{n}.bias"))], hp.qkv_bias, &[width])?);
        }
        Ok(out.try_into().expect("three parts"))
    }

    /// `y` plus the f32 vectors `biases` side by side (widths `widths`), when `on`.
    fn bias(&mut self, y: &str, biases: &[String], on: bool, widths: &[usize]) -> Result<String, OnnxError> {
        if !on {
            return Ok(y.to_string());
        }
        let mut parts = Vec::with_capacity(biases.len());
        for (b, &w) in biases.iter().zip(widths) {
            parts.push(self.float_init(b, &[w as i64])?);
        }
        let b = if parts.len() == 1 {
            parts.remove(0)
        } else {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            self.b.op("Concat", &refs, vec![attr_i("axis", 0)])
        };
        Ok(self.b.op("Add", &[y, &b], vec![]))
    }

    /// `x` split on its last axis into parts of `widths`.
    pub(crate) fn split(&mut self, x: &str, widths: &[usize]) -> Vec<String> {
        let w: Vec<i64> = widths.iter().map(|&w| w as i64).collect();
        let w = self.b.i64s(&w);
        self.b.op_in("", "Split", &[x, &w], vec![attr_i("axis", -1)], widths.len())
    }

    /// Gate and up of layer `li`, `[rows, n_ff]` each: one product (phi3's `ffn_up` of twice the width, gate rows
    /// first; or, when `stack`, the two matrices stacked where they are carried alike) split, or two products.
    pub(crate) fn gate_up(
        &mut self,
        x: &str,
        hp: &ModelDesc,
        li: usize,
        stack: bool,
    ) -> Result<(String, String), OnnxError> {
        let w = |n: &str| names::blk(li, &format!("{n}.weight"));
        let both = if hp.fused_gate_up {
            self.linear(x, &w("ffn_up"))?
        } else if stack {
            self.linear_fused(x, &[w("ffn_gate"), w("ffn_up")])?
        } else {
            return Ok((self.linear(x, &w("ffn_gate"))?, self.linear(x, &w("ffn_up"))?));
        };
        let mut parts = self.split(&both, &[hp.n_ff, hp.n_ff]);
        let up = parts.pop().expect("two parts");
        Ok((parts.pop().expect("two parts"), up))
    }

    /// `act(gate) · up`: SiLU, or GELU's tanh approximation — com.microsoft `FastGelu` when `contrib` (ONNX Runtime's
    /// own kernel; `Gelu` with `approximate="tanh"` needs opset 20, this graph is opset 17), else standard operators,
    /// `0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))` as ggml and the native engine compute it.
    pub(crate) fn gated(&mut self, gate: &str, up: &str, act: Activation, contrib: bool) -> String {
        let a = match act {
            Activation::Silu => {
                let sg = self.b.op("Sigmoid", &[gate], vec![]);
                self.b.op("Mul", &[gate, &sg], vec![])
            }
            Activation::GeluTanh if contrib => self.b.op_in("com.microsoft", "FastGelu", &[gate], vec![], 1).remove(0),
            Activation::GeluTanh => {
                let (c, k, half, one) =
                    (self.b.scalar(0.797_884_6), self.b.scalar(0.044715), self.b.scalar(0.5), self.b.scalar(1.0));
                let g2 = self.b.op("Mul", &[gate, gate], vec![]);
                let g2 = self.b.op("Mul", &[&g2, &k], vec![]);
                let inner = self.b.op("Add", &[&g2, &one], vec![]);
                let inner = self.b.op("Mul", &[gate, &inner], vec![]);
                let inner = self.b.op("Mul", &[&inner, &c], vec![]);
                let t = self.b.op("Tanh", &[&inner], vec![]);
                let t = self.b.op("Add", &[&t, &one], vec![]);
                let hg = self.b.op("Mul", &[gate, &half], vec![]);
                self.b.op("Mul", &[&hg, &t], vec![])
            }
        };
        self.b.op("Mul", &[&a, up], vec![])
    }

    /// The embedding rows times the model's embedding scale (Gemma: √n_embd), if it has one.
    pub(crate) fn scale_embedding(&mut self, x: String, hp: &ModelDesc) -> String {
        match hp.embd_scale {
            Some(s) => {
                let s = self.b.scalar(s);
                self.b.op("Mul", &[&x, &s], vec![])
            }
            None => x,
        }
    }

    /// RMSNorm of each head of `x` (`[rows, heads·head_dim]`) with layer `li`'s `attn_q_norm` or `attn_k_norm`
    /// (`which`), as `[rows, heads, head_dim]`; `x` unchanged (reshaped) when the model has no Q/K norms.
    pub(crate) fn head_norm(
        &mut self,
        x: &str,
        hp: &ModelDesc,
        li: usize,
        which: &str,
        heads: usize,
    ) -> Result<String, OnnxError> {
        let shape = self.b.i64s(&[-1, heads as i64, hp.head_dim as i64]);
        let x = self.b.op("Reshape", &[x, &shape], vec![]);
        if !hp.qk_norm {
            return Ok(x);
        }
        self.rms_norm(&x, &names::blk(li, &format!("{which}.weight")), hp.eps, hp.head_dim)
    }

    /// `x` RMS-normalized with layer `li`'s `name` (post-attention / post-MLP norms) when the model has them.
    pub(crate) fn post_norm(&mut self, x: String, hp: &ModelDesc, li: usize, name: &str) -> Result<String, OnnxError> {
        if !hp.post_norms {
            return Ok(x);
        }
        self.rms_norm(&x, &names::blk(li, &format!("{name}.weight")), hp.eps, hp.n_embd)
    }

    /// Rope inverse frequencies `base^(−2i/head_dim) / scale` of layer `li` (its own base and scale when it slides),
    /// `[1, head_dim/2]` in f64 then f32, divided in the graph by the file's `rope_freqs.weight` when it has them
    /// (the tensor stays an initializer, so the fingerprint reads it).
    pub(crate) fn inv_freq(&mut self, hp: &ModelDesc, li: usize) -> Result<String, OnnxError> {
        let (base, scale) = hp.rope(li);
        let half = hp.head_dim / 2;
        let name = format!("rope.inv_freq.{base}.{scale}");
        if !self.b.inits.iter().any(|t| t.name == name) {
            let inv: Vec<f32> = (0..half)
                .map(|i| ((base as f64).powf(-((2 * i) as f64) / hp.head_dim as f64) / scale as f64) as f32)
                .collect();
            self.b.f32s(&name, &[1, half as i64], &inv);
        }
        if !hp.rope_freq_factors {
            return Ok(name);
        }
        let factors = format!("{}.f32", names::ROPE_FREQS);
        let factors = if self.b.inits.iter().any(|t| t.name == factors) {
            factors
        } else {
            self.float_init(names::ROPE_FREQS, &[1, half as i64])?
        };
        Ok(self.b.op("Div", &[&name, &factors], vec![]))
    }
}

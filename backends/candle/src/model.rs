//! The transformer of every architecture `edgebench_gguf::arch` describes, on candle tensors: weights from a
//! validated GGUF, a KV cache per session.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::kv_cache::KvCache;
use edgebench_core::{BackendError, BackendFacts, LoadedModel, Rows, Session};
use edgebench_gguf::arch::{names, Activation, ModelDesc as Hparams, ParamsError, RopeStyle};
use edgebench_gguf::{GgmlType, GgufFile};

fn err(e: candle_core::Error) -> BackendError {
    BackendError::Runtime(e.to_string())
}

/// Q, K and V: three matrices, or one whose output is split (phi3).
enum Qkv {
    Separate(QMatMul, QMatMul, QMatMul),
    Fused(QMatMul),
}

/// Gate and up: two matrices, or one whose output is split, gate first (phi3).
enum GateUp {
    Separate(QMatMul, QMatMul),
    Fused(QMatMul),
}

struct Layer {
    attn_norm: Tensor,
    qkv: Qkv,
    bias: Option<[Tensor; 3]>,
    qk_norm: Option<[Tensor; 2]>,
    wo: QMatMul,
    post_norms: Option<[Tensor; 2]>,
    ffn_norm: Tensor,
    gate_up: GateUp,
    down: QMatMul,
}

/// cos and sin of every position's rotation angles.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

/// Weights resident on the device.
pub struct CandleModel {
    hp: Hparams,
    embd: Arc<QTensor>,
    layers: Vec<Layer>,
    output_norm: Tensor,
    output: QMatMul,
    /// Full-attention layers' rope tables, and sliding layers' (their own base) when there are any.
    rope: Rope,
    rope_local: Option<Rope>,
    device: Device,
    facts: BackendFacts,
    path: std::path::PathBuf,
    /// Digests (`edgebench_gguf::fingerprint`) of the tensors converted at load, taken from what candle holds.
    converted_digests: Vec<(String, Vec<u64>, [u8; 32])>,
}

fn to_candle(t: GgmlType) -> Option<GgmlDType> {
    Some(match t {
        GgmlType::F32 => GgmlDType::F32,
        GgmlType::F16 => GgmlDType::F16,
        GgmlType::BF16 => GgmlDType::BF16,
        GgmlType::Q4_0 => GgmlDType::Q4_0,
        GgmlType::Q4_1 => GgmlDType::Q4_1,
        GgmlType::Q5_0 => GgmlDType::Q5_0,
        GgmlType::Q5_1 => GgmlDType::Q5_1,
        GgmlType::Q8_0 => GgmlDType::Q8_0,
        GgmlType::Q2K => GgmlDType::Q2K,
        GgmlType::Q3K => GgmlDType::Q3K,
        GgmlType::Q4K => GgmlDType::Q4K,
        GgmlType::Q5K => GgmlDType::Q5K,
        GgmlType::Q6K => GgmlDType::Q6K,
        GgmlType::Q8K => GgmlDType::Q8K,
        _ => return None,
    })
}

/// How candle 0.11 computes a matrix-vector product for this weight type on this CPU.
fn cpu_kernel(t: GgmlType) -> &'static str {
    let simd = cfg!(target_arch = "x86_64") && avx2_fma() || cfg!(target_arch = "aarch64");
    match t {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => "dequantized to f32 at load, gemm",
        GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 => "scalar (no SIMD kernel in candle)",
        _ if simd => "SIMD (avx2+fma on x86-64, neon on aarch64)",
        _ => "scalar (CPU lacks avx2+fma)",
    }
}

/// The products candle-core 0.11.1 dispatches a weight type to on CUDA (`QCudaStorage::fwd`: its MMVQ kernels for
/// 1 to 8 rows, MMQ for more, both with activations quantized to q8_1 — the kernels llama.cpp's CUDA backend uses).
fn cuda_kernel(t: GgmlType) -> &'static str {
    match t {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => "dequantized to f32 at load, cuBLAS",
        GgmlType::Q4_0
        | GgmlType::Q4_1
        | GgmlType::Q5_0
        | GgmlType::Q5_1
        | GgmlType::Q8_0
        | GgmlType::Q2K
        | GgmlType::Q3K
        | GgmlType::Q4K
        | GgmlType::Q5K
        | GgmlType::Q6K => "MMVQ for 1-8 rows, MMQ above, q8_1 activations (candle-kernels, compiled sm_90a)",
        _ => "dequantized, cuBLAS",
    }
}

fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl CandleModel {
    pub fn load(path: &Path, requantize: Option<crate::Requantize>, device: Device) -> Result<Self, BackendError> {
        let load_err = |m: String| BackendError::Load { path: path.display().to_string(), message: m };
        let file = GgufFile::open(path).map_err(|e| load_err(e.to_string()))?;
        let hp = Hparams::from_gguf(&file.gguf).map_err(|e| match e {
            ParamsError::Unsupported(m) => BackendError::Unsupported(format!("{m} (candle backend)")),
            ParamsError::Invalid(m) => load_err(m),
        })?;
        let g = &file.gguf;

        let requant = requantize.map(|r| match r {
            crate::Requantize::Q8_0 => (GgmlType::Q8_0, GgmlDType::Q8_0),
            crate::Requantize::Q4_0 => (GgmlType::Q4_0, GgmlDType::Q4_0),
            crate::Requantize::F16 => (GgmlType::F16, GgmlDType::F16),
            crate::Requantize::F32 => (GgmlType::F32, GgmlDType::F32),
        });
        // Dequantizing is exact (f32) or nearly so (f16), so the embedding table follows; to a block format it keeps
        // its own type, as llama.cpp's quantizer does by default.
        let float_target = matches!(requant, Some((GgmlType::F32 | GgmlType::F16, _)));
        let mut requantized: BTreeMap<String, usize> = BTreeMap::new();
        let mut types: BTreeMap<GgmlType, usize> = BTreeMap::new();
        let mut converted_digests = Vec::new();

        let mut qtensor = |name: &str, allow_requant: bool| -> Result<QTensor, BackendError> {
            let info = g.tensor(name).map_err(|e| load_err(e.to_string()))?;
            let dtype = to_candle(info.ty).ok_or_else(|| {
                BackendError::Unsupported(format!("tensor {name} has type {} (not in candle)", info.ty))
            })?;
            let data = file.read_tensor(info).map_err(|e| load_err(e.to_string()))?;
            let dims: Vec<usize> = info.dims.iter().rev().map(|&d| d as usize).collect();
            let t = qtensor_from_ggml(dtype, &data, dims, &device).map_err(err)?;
            match requant {
                Some((to, cdt)) if allow_requant && info.dims.len() == 2 && info.ty != to => {
                    *requantized.entry(format!("{}→{}", info.ty, to)).or_default() += 1;
                    *types.entry(to).or_default() += 1;
                    let q = QTensor::quantize(&t.dequantize(&device).map_err(err)?, cdt).map_err(err)?;
                    let held = q.dequantize(&device).and_then(|t| t.flatten_all()?.to_vec1::<f32>()).map_err(err)?;
                    let digest = edgebench_gguf::fingerprint::tensor_digest(&held);
                    converted_digests.push((name.to_string(), info.dims.clone(), digest));
                    Ok(q)
                }
                _ => {
                    *types.entry(info.ty).or_default() += 1;
                    Ok(t)
                }
            }
        };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let mut mm = |n: &str| -> Result<QMatMul, BackendError> {
                QMatMul::from_qtensor(qtensor(&names::blk(i, &format!("{n}.weight")), true)?).map_err(err)
            };
            let qkv = if hp.fused_qkv {
                Qkv::Fused(mm("attn_qkv")?)
            } else {
                Qkv::Separate(mm("attn_q")?, mm("attn_k")?, mm("attn_v")?)
            };
            let wo = mm("attn_output")?;
            let gate_up = if hp.fused_gate_up {
                GateUp::Fused(mm("ffn_up")?)
            } else {
                GateUp::Separate(mm("ffn_gate")?, mm("ffn_up")?)
            };
            let down = mm("ffn_down")?;
            let mut vector = |n: &str| -> Result<Tensor, BackendError> {
                qtensor(&names::blk(i, n), false)?.dequantize(&device).map_err(err)
            };
            let bias = match (hp.qkv_bias, hp.fused_qkv) {
                (false, _) => None,
                (true, false) => Some([vector("attn_q.bias")?, vector("attn_k.bias")?, vector("attn_v.bias")?]),
                (true, true) => {
                    let b = vector("attn_qkv.bias")?;
                    let (q, kv) = (hp.q_dim(), hp.kv_dim());
                    Some([
                        b.narrow(0, 0, q).map_err(err)?,
                        b.narrow(0, q, kv).map_err(err)?,
                        b.narrow(0, q + kv, kv).map_err(err)?,
                    ])
                }
            };
            let qk_norm =
                if hp.qk_norm { Some([vector("attn_q_norm.weight")?, vector("attn_k_norm.weight")?]) } else { None };
            let post_norms = if hp.post_norms {
                Some([vector("post_attention_norm.weight")?, vector("post_ffw_norm.weight")?])
            } else {
                None
            };
            let (attn_norm, ffn_norm) = (vector("attn_norm.weight")?, vector("ffn_norm.weight")?);
            layers.push(Layer { attn_norm, qkv, bias, qk_norm, wo, post_norms, ffn_norm, gate_up, down });
        }
        let output_norm = qtensor(names::OUTPUT_NORM, false)?.dequantize(&device).map_err(err)?;
        let embd = Arc::new(qtensor(names::TOKEN_EMBD, float_target)?);
        let tied = g.tensor(names::OUTPUT).is_err();
        let output = if tied {
            QMatMul::from_arc(embd.clone()).map_err(err)?
        } else {
            QMatMul::from_qtensor(qtensor(names::OUTPUT, true)?).map_err(err)?
        };
        let factors = if hp.rope_freq_factors {
            Some(qtensor(names::ROPE_FREQS, false)?.dequantize(&device).and_then(|t| t.to_vec1::<f32>()).map_err(err)?)
        } else {
            None
        };
        let tables = |base: f32, scale: f32| -> Result<Rope, BackendError> {
            let half = hp.head_dim / 2;
            let inv: Vec<f32> = (0..half)
                .map(|i| base.powf(-((2 * i) as f32) / hp.head_dim as f32) / factors.as_ref().map_or(1.0, |f| f[i]))
                .collect();
            let inv = Tensor::from_vec(inv, (1, half), &device).map_err(err)?;
            let pos = Tensor::arange(0u32, hp.n_ctx as u32, &device)
                .and_then(|t| t.to_dtype(DType::F32))
                .and_then(|t| t / scale as f64)
                .map_err(err)?;
            let freqs = pos.reshape((hp.n_ctx, 1)).and_then(|p| p.broadcast_mul(&inv)).map_err(err)?;
            Ok(Rope { cos: freqs.cos().map_err(err)?, sin: freqs.sin().map_err(err)? })
        };
        let rope = tables(hp.rope_base, hp.rope_scale)?;
        let rope_local = hp.sliding.as_ref().map(|s| tables(s.rope_base, s.rope_scale)).transpose()?;

        let kernel = if device.is_cuda() { cuda_kernel } else { cpu_kernel };
        let kernels: Vec<String> = types.keys().map(|t| format!("{t}: {}", kernel(*t))).collect();
        let kernel_path = match device.location() {
            candle_core::DeviceLocation::Cpu => format!("candle cpu; {}", kernels.join("; ")),
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("candle cuda:{gpu_id}; {}", kernels.join("; ")),
            other => format!("candle {other:?}"),
        };
        let converted = (!requantized.is_empty()).then(|| {
            let parts: Vec<String> = requantized.iter().map(|(k, n)| format!("{n} tensors {k}")).collect();
            let verb = if float_target { "dequantized" } else { "requantized" };
            format!("{verb} at load: {}", parts.join(", "))
        });
        let mut notes = vec![format!("architecture {}", hp.arch.name())];
        if tied {
            notes.push("output projection tied to token_embd".into());
        }
        let mut facts = BackendFacts {
            versions: vec![crate::CANDLE_VERSION.into(), "candle-nn 0.11.1".into()],
            kernel_path,
            threads: candle_core::utils::get_num_threads(),
            vocab_size: hp.vocab,
            context_length: hp.n_ctx,
            converted,
            notes,
            kv_cache: Some("f32".into()),
            coverage: None,
            weights: None,
        };
        if !converted_digests.is_empty() {
            facts.notes.push("digests of the converted tensors taken at load, from candle's own tensors".into());
        }
        Ok(Self {
            hp,
            embd,
            layers,
            output_norm,
            output,
            rope,
            rope_local,
            device,
            facts,
            path: path.to_path_buf(),
            converted_digests,
        })
    }

    /// Logits of the last token (`all` false: shape (vocab)) or of every token (shape (n, vocab)).
    fn forward(&self, caches: &mut [KvCache], pos: usize, tokens: &[u32], all: bool) -> candle_core::Result<Tensor> {
        let hp = &self.hp;
        let (n, hd) = (tokens.len(), hp.head_dim);
        let rep = hp.n_head / hp.n_head_kv;
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embd.embedding(&ids)?.unsqueeze(0)?; // (1, n, e)
        if let Some(s) = hp.embd_scale {
            x = (x * s as f64)?;
        }
        let narrow = |r: &Rope| -> candle_core::Result<(Tensor, Tensor)> {
            Ok((r.cos.narrow(0, pos, n)?, r.sin.narrow(0, pos, n)?))
        };
        let full = narrow(&self.rope)?;
        let local = self.rope_local.as_ref().map(narrow).transpose()?;
        // Mask over (query i, key j): key j is visible to query i when j <= pos + i and, in a sliding layer, when
        // pos + i - j < window. `None` when every key is visible.
        let t = pos + n;
        let mask = |window: Option<usize>| -> candle_core::Result<Option<Tensor>> {
            let hidden = |i: usize, j: usize| j > pos + i || window.is_some_and(|w| pos + i >= j + w);
            if !(0..n).any(|i| (0..t).any(|j| hidden(i, j))) {
                return Ok(None);
            }
            let m: Vec<f32> =
                (0..n).flat_map(|i| (0..t).map(move |j| if hidden(i, j) { f32::NEG_INFINITY } else { 0.0 })).collect();
            Ok(Some(
                Tensor::from_vec(m, (n, t), &self.device)?
                    .unsqueeze(0)?
                    .broadcast_as((rep, n, t))?
                    .reshape((rep * n, t))?,
            ))
        };
        let full_mask = mask(None)?;
        let local_mask = hp.sliding.as_ref().map(|s| mask(Some(s.window))).transpose()?.flatten();
        let rope = |x: &Tensor, cos: &Tensor, sin: &Tensor| match hp.rope_style {
            RopeStyle::Adjacent => candle_nn::rotary_emb::rope_i(x, cos, sin),
            RopeStyle::Halves => candle_nn::rotary_emb::rope(x, cos, sin),
        };
        for (li, (layer, cache)) in self.layers.iter().zip(caches.iter_mut()).enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, hp.eps)?;
            let (mut q, mut k, mut v) = match &layer.qkv {
                Qkv::Separate(wq, wk, wv) => (wq.forward(&h)?, wk.forward(&h)?, wv.forward(&h)?),
                Qkv::Fused(w) => {
                    let o = w.forward(&h)?;
                    let (qd, kd) = (hp.q_dim(), hp.kv_dim());
                    (o.narrow(2, 0, qd)?, o.narrow(2, qd, kd)?, o.narrow(2, qd + kd, kd)?)
                }
            };
            if let Some([bq, bk, bv]) = &layer.bias {
                (q, k, v) = (q.broadcast_add(bq)?, k.broadcast_add(bk)?, v.broadcast_add(bv)?);
            }
            let heads = |t: Tensor, nh: usize| t.reshape((1, n, nh, hd))?.transpose(1, 2)?.contiguous();
            let (mut q, mut k, v) = (heads(q, hp.n_head)?, heads(k, hp.n_head_kv)?, heads(v, hp.n_head_kv)?);
            if let Some([nq, nk]) = &layer.qk_norm {
                q = candle_nn::ops::rms_norm(&q, nq, hp.eps)?;
                k = candle_nn::ops::rms_norm(&k, nk, hp.eps)?;
            }
            let slides = hp.slides(li);
            let (cos, sin) = match (&local, slides) {
                (Some(l), true) => (&l.0, &l.1),
                _ => (&full.0, &full.1),
            };
            let (q, k) = (rope(&q, cos, sin)?, rope(&k, cos, sin)?);
            let (k, v) = cache.append(&k, &v)?;
            // Grouped-query attention without copying K/V: the `rep` query heads of each KV head become rows.
            // K goes to the product as a transposed view of a contiguous copy (gemm takes the strides, as in
            // candle-transformers): copying the transpose itself runs element by element in candle.
            let q = q.reshape((1, hp.n_head_kv, rep * n, hd))?;
            let mut att = (q.matmul(&k.contiguous()?.t()?)? * hp.attn_scale as f64)?; // (1, kv, rep*n, t)
            if let Some(m) = if slides { &local_mask } else { &full_mask } {
                att = att.broadcast_add(m)?;
            }
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att.matmul(&v.contiguous()?)?; // (1, kv, rep*n, hd)
            let y = y.reshape((1, hp.n_head, n, hd))?.transpose(1, 2)?.reshape((1, n, hp.q_dim()))?;
            let mut o = layer.wo.forward(&y)?;
            if let Some([post, _]) = &layer.post_norms {
                o = candle_nn::ops::rms_norm(&o, post, hp.eps)?;
            }
            x = (x + o)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, hp.eps)?;
            let (g, u) = match &layer.gate_up {
                GateUp::Separate(wg, wu) => (wg.forward(&h)?, wu.forward(&h)?),
                GateUp::Fused(w) => {
                    let o = w.forward(&h)?;
                    (o.narrow(2, 0, hp.n_ff)?, o.narrow(2, hp.n_ff, hp.n_ff)?)
                }
            };
            let g = match hp.activation {
                Activation::Silu => candle_nn::ops::silu(&g)?,
                Activation::GeluTanh => g.gelu()?,
            };
            let mut ff = layer.down.forward(&(g * u)?)?;
            if let Some([_, post]) = &layer.post_norms {
                ff = candle_nn::ops::rms_norm(&ff, post, hp.eps)?;
            }
            x = (x + ff)?;
        }
        let rows = if all { x } else { x.narrow(1, n - 1, 1)? };
        let rows = candle_nn::ops::rms_norm(&rows, &self.output_norm, hp.eps)?;
        let mut logits = self.output.forward(&rows)?.squeeze(0)?.to_dtype(DType::F32)?;
        if let Some(cap) = hp.logit_softcap {
            logits = ((logits / cap as f64)?.tanh()? * cap as f64)?;
        }
        if all {
            Ok(logits)
        } else {
            logits.squeeze(0)
        }
    }
}

impl LoadedModel for CandleModel {
    fn facts(&self) -> BackendFacts {
        self.facts.clone()
    }

    fn weights_fingerprint(&self) -> Result<Option<(String, String)>, BackendError> {
        if self.converted_digests.is_empty() {
            return Ok(None);
        }
        let load_err = |m: String| BackendError::Load { path: self.path.display().to_string(), message: m };
        let mut fp = edgebench_gguf::fingerprint::Fingerprinter::new();
        for (name, dims, digest) in &self.converted_digests {
            fp.digest(name, dims, *digest).map_err(|e| load_err(e.to_string()))?;
        }
        let file = GgufFile::open(&self.path).map_err(|e| load_err(e.to_string()))?;
        edgebench_gguf::fingerprint::add_file(&mut fp, &file).map_err(|e| load_err(e.to_string()))?;
        Ok(Some((
            fp.finish(),
            "converted tensors as candle holds them after load, the others as stored in the file".into(),
        )))
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>, BackendError> {
        let caches = (0..self.hp.n_layer).map(|_| KvCache::new(2, 256)).collect();
        Ok(Box::new(CandleSession { model: self, caches, pos: 0 }))
    }
}

struct CandleSession<'a> {
    model: &'a CandleModel,
    caches: Vec<KvCache>,
    pos: usize,
}

impl Session for CandleSession<'_> {
    fn run(&mut self, tokens: &[u32], rows: Rows) -> Result<Vec<f32>, BackendError> {
        // The harness's checked session has refused empty input, ids outside the vocabulary and a full context.
        let needed = self.pos + tokens.len();
        let logits = self.model.forward(&mut self.caches, self.pos, tokens, rows == Rows::All).map_err(err)?;
        self.pos = needed;
        logits.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(err)
    }

    fn position(&self) -> usize {
        self.pos
    }
}

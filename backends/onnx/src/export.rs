//! GGUF → ONNX for every architecture `edgebench_gguf::arch` describes: the export entry point, the context both
//! graphs are built in (`Ctx`: weights carried as `weights` decides, the pieces of a block both graphs share) and the
//! `edgebench.*` metadata (graph facts, the tensor → initializer map the fingerprint reads, what was converted). The
//! graphs themselves are `primitive` (standard operators, tract) and `fused` (ONNX Runtime's contrib operators).

use std::collections::{BTreeMap, HashMap};

use edgebench_gguf::arch::{Feature, ModelDesc, RopeStyle};
use edgebench_gguf::{GgmlType, GgufFile};
use serde::{Deserialize, Serialize};

use crate::io::{self, GraphFacts, GraphVariant};
use crate::pb::{tensor_proto::DataType, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto};
use crate::proto::{attr_i, attr_ints, Builder, Dim};
use crate::weights::{self, Carried, BLOCK};
use crate::OnnxError;

/// Version of the graph this exporter writes; part of the cache key.
pub const EXPORTER_VERSION: u32 = 6;
/// ONNX opset of the default domain.
pub const OPSET: i64 = 17;

/// Export choices that change the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExportOptions {
    /// `accuracy_level` of every `MatMulNBits` node: 0 unset, 1 f32, 2 f16, 3 bf16, 4 int8 activations (ORT
    /// quantizes activations per block, as llama.cpp and the native backend do). Default 1: with 4, ONNX Runtime
    /// 1.31.1 on AVX2 gives a prompt processed in one batch logits up to 2.4 apart (scale 21) from the same prompt
    /// fed token by token, which the conformance suite refuses; with 1 both agree. tract ignores it.
    pub accuracy_level: u8,
    /// Which graph to write (absent in files of exporter version 1: primitive).
    #[serde(default, skip_serializing_if = "is_primitive")]
    pub graph: GraphVariant,
    /// A tied f32 output product reads its own, transposed copy of the embedding table (for tract, which
    /// re-packs a constant two nodes share at every call, and merges equal constants).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untied_head: bool,
    /// RMS norms divide their input by 256 before squaring it (and their epsilon by 256²): the same function, exact
    /// in binary floating point (a power of two), but the mean of squares stays within fp16's range (largest
    /// 65,504) where a model's residual stream reaches tens of thousands, as on fp16 accelerators (QNN's HTP).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fp16_safe_norm: bool,
}

/// The power of two [`ExportOptions::fp16_safe_norm`] divides a norm's input by.
pub const FP16_SAFE_NORM_SCALE: f32 = 256.0;

fn is_primitive(g: &GraphVariant) -> bool {
    *g == GraphVariant::Primitive
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self { accuracy_level: 1, graph: GraphVariant::Primitive, untied_head: false, fp16_safe_norm: false }
    }
}

/// Where the values of one GGUF tensor sit in the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Repr {
    /// `MatMulNBits` inputs (initializer names), `n` rows of `k`.
    Nbits4 {
        /// Codes initializer.
        codes: String,
        /// Scales initializer.
        scales: String,
        /// Zero points initializer, if any.
        zero_points: Option<String>,
        /// Per-block minimums initializer, if any.
        mins: Option<String>,
        /// Rows.
        n: usize,
        /// Values per row.
        k: usize,
    },
    /// 8-bit `MatMulNBits` inputs (initializer names), `n` rows of `k` in blocks of `block`.
    Nbits8 {
        /// Codes initializer.
        codes: String,
        /// Scales initializer.
        scales: String,
        /// Zero points initializer (one byte per block).
        zero_points: String,
        /// Rows.
        n: usize,
        /// Values per row.
        k: usize,
        /// Values per block (absent in older files: 32).
        #[serde(default = "block32", skip_serializing_if = "is_block32")]
        block: usize,
    },
    /// Signed int4 codes `[k, n]` in blocks of 32 along `k` and their scales `[k/32, n]`, read by a blocked
    /// `DequantizeLinear` (the QDQ variant, `qdq`): value = code × scale (+ the block minimum, if any).
    Int4Blocks {
        /// Codes initializer (INT4).
        codes: String,
        /// Scales initializer.
        scales: String,
        /// Per-block minimums initializer (`[n, k/32]`), if any.
        mins: Option<String>,
        /// Rows.
        n: usize,
        /// Values per row.
        k: usize,
    },
    /// A plain f32 initializer holding the matrix transposed: `[k, n]` for a tensor of `n` rows of `k`.
    FloatTransposed {
        /// Initializer name.
        init: String,
        /// Per-block minimums initializer (`[n, k/32]`) added to the values, if any (a 4-bit product the QDQ variant
        /// keeps in float, `qdq`: its minimums stay their own product).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mins: Option<String>,
    },
    /// A plain f32 initializer.
    Float {
        /// Initializer name.
        init: String,
    },
}

/// One GGUF tensor and a representation of it in the graph (a tensor may have several: the tied embedding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightEntry {
    /// GGUF name.
    pub tensor: String,
    /// GGUF dimensions (innermost first).
    pub dims: Vec<u64>,
    /// GGUF type.
    pub ggml_type: String,
    /// Where its values are.
    pub repr: Repr,
    /// First row of this tensor in an initializer that holds several (fused Q/K/V or gate/up), else 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub row0: usize,
    /// Rows of that shared initializer (0: the initializer is this tensor's alone).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_total: usize,
}

/// Two optional row-major blocks one after the other (both present: `linear_fused` checked the parts alike).
fn join<T>(a: Option<Vec<T>>, b: Option<Vec<T>>) -> Option<Vec<T>> {
    a.zip(b).map(|(mut a, b)| {
        a.extend(b);
        a
    })
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn block32() -> usize {
    BLOCK
}

fn is_block32(v: &usize) -> bool {
    *v == BLOCK
}

/// Metadata keys.
pub mod meta {
    /// Graph facts (JSON `GraphFacts`).
    pub const FACTS: &str = "edgebench.facts";
    /// Tensor → initializers (JSON list of `WeightEntry`).
    pub const WEIGHTS: &str = "edgebench.weights";
    /// How each type is carried (text).
    pub const CARRIED: &str = "edgebench.carried";
    /// Conversions, one per line; absent when none.
    pub const CONVERTED: &str = "edgebench.converted";
    /// Export options (JSON `ExportOptions`).
    pub const OPTIONS: &str = "edgebench.export_options";
    /// SHA-256 of the source GGUF.
    pub const SOURCE_SHA256: &str = "edgebench.source_sha256";
    /// Exporter version.
    pub const EXPORTER: &str = "edgebench.exporter";
}

/// A graph written from a GGUF file.
pub struct Exported {
    /// The ONNX model.
    pub model: ModelProto,
    /// Facts needed to drive it.
    pub facts: GraphFacts,
    /// How each type is carried, e.g. `Q4_1 ×210 as MatMulNBits (zero point 0) + f32 block minimums`.
    pub carried: String,
    /// Conversions (empty when every tensor keeps its representation).
    pub converted: Vec<String>,
}

/// The `MatMulNBits` initializers (names) of one matrix or stacked set, `n` rows of `k`.
#[derive(Debug, Clone)]
pub(crate) struct NbitsInits {
    bits: i64,
    block: usize,
    codes: String,
    scales: String,
    zero_points: Option<String>,
    mins: Option<String>,
    n: usize,
    k: usize,
}

/// How a matrix (or stacked set) was written.
#[derive(Debug, Clone)]
pub(crate) enum Carry {
    /// Quantized, for `MatMulNBits` (and `GatherBlockQuantized`).
    Nbits(NbitsInits),
    /// An f32 initializer `[n, k]`.
    Float(String),
}

pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a GgufFile,
    pub(crate) b: Builder,
    pub(crate) opts: ExportOptions,
    entries: Vec<WeightEntry>,
    /// Block sums of an activation (for Q4_1 minimums), by activation name.
    block_sums: HashMap<String, String>,
    /// The initializers written for a matrix (or a stacked set, names joined by `+`), by name.
    carries: HashMap<String, Carry>,
    carried: BTreeMap<String, usize>,
    converted: BTreeMap<String, Vec<String>>,
}

impl Ctx<'_> {
    fn read(&self, name: &str) -> Result<(Vec<u8>, GgmlType, Vec<u64>), OnnxError> {
        let info = self.file.gguf.tensor(name).map_err(|e| e.in_file(&self.file.path))?;
        Ok((self.file.read_tensor(info)?, info.ty, info.dims.clone()))
    }

    /// Records how a tensor is carried; `exact` when its representation holds the file's own quantized values
    /// (no conversion to report whatever the type).
    fn note(&mut self, tensor: &str, ty: GgmlType, how: &str, exact: bool) {
        *self.carried.entry(format!("{ty} {how}")).or_default() += 1;
        if let Some(c) = weights::conversion(ty).filter(|_| !exact) {
            self.converted.entry(c).or_default().push(tensor.to_string());
        }
    }

    /// Records where the values of GGUF tensor `tensor` sit in the graph (rows `row0..` of an initializer of
    /// `rows_total` rows when several tensors share it, else 0 and 0).
    fn place(&mut self, tensor: &str, dims: Vec<u64>, ty: GgmlType, repr: Repr, row0: usize, rows_total: usize) {
        self.entries.push(WeightEntry {
            tensor: tensor.into(),
            dims,
            ggml_type: ty.to_string(),
            repr,
            row0,
            rows_total,
        });
    }

    /// Whether a product with a weight of type `ty` keeps it quantized (`MatMulNBits`): the 4-bit types (Q4_0, Q4_1,
    /// Q4_K) always, the 8-bit ones (Q8_0, Q5_0, Q6_K) only with int8 activations (8-bit `MatMulNBits` with f32
    /// activations is slow in ONNX Runtime 1.31.1, and tract runs 4 and 2 bits only).
    fn quantized_product(&self, ty: GgmlType) -> bool {
        matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4K)
            || (weights::has_nbits8(ty) && self.opts.accuracy_level == 4)
    }

    /// The logits (rows `x` times the output matrix, or the tied embedding) and the graph's outputs, the same for
    /// every graph variant.
    /// `table` is the f32 embedding table, if `embedding` wrote one (always, where the output product reads it).
    pub(crate) fn logits_and_outputs(&mut self, x: &str, table: Option<&str>, hp: &ModelDesc) -> Result<(), OnnxError> {
        let file = self.file;
        let embd = file.gguf.tensor("token_embd.weight").map_err(|e| e.in_file(&file.path))?.ty;
        let logits = if file.gguf.tensor("output.weight").is_ok() {
            self.linear(x, "output.weight")?
        } else if self.quantized_product(embd) {
            self.linear(x, "token_embd.weight")?
        } else if self.opts.untied_head {
            // tract pre-packs a constant matrix at load only when one node reads it (or it is under 4 MiB), and
            // merges equal constants first: the table the embedding gathers from was re-packed at every call,
            // 113 MB for the default model (64 of 123 ms per decode step). A transposed copy is a different
            // constant; it costs its size in memory once.
            let wt = self.float_init_transposed("token_embd.weight", "token_embd.weight.f32.transposed")?;
            self.b.op("MatMul", &[x, &wt], vec![])
        } else {
            let table = table.ok_or_else(|| {
                OnnxError::Unsupported("internal: a tied f32 output product without an f32 embedding table".into())
            })?;
            self.b.op("Gemm", &[x, table], vec![attr_i("transB", 1)])
        };
        let logits = match hp.logit_softcap {
            // cap · tanh(logit / cap), as the native engine computes it.
            Some(cap) => {
                let c = self.b.scalar(cap);
                let t = self.b.op("Div", &[&logits, &c], vec![]);
                let t = self.b.op("Tanh", &[&t], vec![]);
                self.b.op("Mul", &[&t, &c], vec![])
            }
            None => logits,
        };
        self.b.op_to(io::LOGITS, "Identity", &[&logits], vec![]);
        self.b.output(io::LOGITS, DataType::Float, &[Dim::Named("rows"), Dim::Fixed(hp.vocab as i64)]);
        let kv = |p| [Dim::Fixed(1), Dim::Fixed(hp.n_head_kv as i64), p, Dim::Fixed(hp.head_dim as i64)];
        for i in 0..hp.n_layer {
            for value in [false, true] {
                self.b.output(&io::present(i, value), DataType::Float, &kv(Dim::Named("past+seq")));
            }
        }
        Ok(())
    }

    /// An f32 vector or table initializer holding the tensor's dequantized values.
    pub(crate) fn float_init(&mut self, name: &str, onnx_dims: &[i64]) -> Result<String, OnnxError> {
        let (data, ty, dims) = self.read(name)?;
        let n: u64 = dims.iter().product();
        let v = edgebench_gguf::quant::dequantize(ty, &data, n as usize).map_err(|e| e.in_file(&self.file.path))?;
        let init = self.b.f32s(&format!("{name}.f32"), onnx_dims, &v);
        self.note(name, ty, "as f32", false);
        self.place(name, dims, ty, Repr::Float { init: init.clone() }, 0, 0);
        Ok(init)
    }

    /// A `[k, n]` f32 initializer holding the GGUF matrix `name` (`n` rows of `k`) transposed.
    pub(crate) fn float_init_transposed(&mut self, name: &str, init_name: &str) -> Result<String, OnnxError> {
        let (data, ty, dims) = self.read(name)?;
        let (k, n) = match dims[..] {
            [k, n] => (k as usize, n as usize),
            _ => return Err(OnnxError::Unsupported(format!("{name} has shape {dims:?}, expected a matrix"))),
        };
        let v = edgebench_gguf::quant::dequantize(ty, &data, n * k).map_err(|e| e.in_file(&self.file.path))?;
        let mut t = vec![0f32; n * k];
        for (r, row) in v.chunks_exact(k).enumerate() {
            for (c, x) in row.iter().enumerate() {
                t[c * n + r] = *x;
            }
        }
        let init = self.b.f32s(init_name, &[k as i64, n as i64], &t);
        self.note(name, ty, "as f32 (transposed copy)", false);
        self.place(name, dims, ty, Repr::FloatTransposed { init: init.clone(), mins: None }, 0, 0);
        Ok(init)
    }

    /// Sums of `x [rows, k]` over each block of 32 values, `[rows, k/32]`: one product with a constant 0/1 matrix
    /// (one node, where Reshape + ReduceSum take two), shared by every product reading `x`.
    pub(crate) fn block_sum(&mut self, x: &str, k: usize) -> String {
        if let Some(s) = self.block_sums.get(x) {
            return s.clone();
        }
        let nb = k / BLOCK;
        let name = format!("block_indicator.{k}");
        if !self.b.inits.iter().any(|t| t.name == name) {
            let ones: Vec<f32> = (0..k * nb).map(|i| if (i / nb) / BLOCK == i % nb { 1.0 } else { 0.0 }).collect();
            self.b.f32s(&name, &[k as i64, nb as i64], &ones);
        }
        let s = self.b.op("MatMul", &[x, &name], vec![]);
        self.block_sums.insert(x.into(), s.clone());
        s
    }

    /// `x [rows, k] · Wᵀ` for the GGUF matrix `name` (dims `[k, n]`).
    pub(crate) fn linear(&mut self, x: &str, name: &str) -> Result<String, OnnxError> {
        self.linear_fused(x, &[name.to_string()])
    }

    /// `x [rows, k] · [W₁; W₂; …]ᵀ`: one product for GGUF matrices sharing `k` (Q/K/V, gate/up), their output
    /// columns side by side. Their rows share one set of initializers when every part is carried alike, else each
    /// part is its own product and the outputs are concatenated.
    pub(crate) fn linear_fused(&mut self, x: &str, names: &[String]) -> Result<String, OnnxError> {
        match self.carry(names)? {
            Some(Carry::Nbits(q)) => Ok(self.matmul_nbits(x, &q)),
            Some(Carry::Float(w)) => Ok(self.b.op("Gemm", &[x, &w], vec![attr_i("transB", 1)])),
            None => {
                let mut outs = Vec::new();
                for name in names {
                    outs.push(self.linear(x, name)?);
                }
                let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
                Ok(self.b.op("Concat", &refs, vec![attr_i("axis", -1)]))
            }
        }
    }

    /// The initializers holding GGUF matrices `names` stacked by rows, written and placed once per matrix set (a
    /// second reader, the tied embedding's lookup, gets the same ones), or `None` when the parts are carried
    /// differently.
    fn carry(&mut self, names: &[String]) -> Result<Option<Carry>, OnnxError> {
        let base = if names.len() == 1 { names[0].clone() } else { names.join("+") };
        if let Some(c) = self.carries.get(&base) {
            return Ok(Some(c.clone()));
        }
        let mut parts = Vec::with_capacity(names.len());
        for name in names {
            let (data, ty, dims) = self.read(name)?;
            let (k, n) = match dims[..] {
                [k, n] => (k as usize, n as usize),
                _ => return Err(OnnxError::Unsupported(format!("{name} has shape {dims:?}, expected a matrix"))),
            };
            let carried = if weights::has_nbits8(ty) && self.quantized_product(ty) {
                weights::encode_nbits8(ty, &data, n, k)
            } else {
                weights::encode(ty, &data, n, k)
            }
            .map_err(|e| OnnxError::Unsupported(format!("{}: {name}: {e}", self.file.path.display())))?;
            parts.push((name.as_str(), ty, dims, k, n, carried));
        }
        let k = parts[0].3;
        let alike = parts.iter().all(|p| {
            p.3 == k
                && match (&p.5, &parts[0].5) {
                    (Carried::Float(_), Carried::Float(_)) => true,
                    (Carried::Nbits8 { block: a, .. }, Carried::Nbits8 { block: b, .. }) => a == b,
                    (
                        Carried::Nbits4 { zero_points: za, mins: ma, .. },
                        Carried::Nbits4 { zero_points: zb, mins: mb, .. },
                    ) => za.is_some() == zb.is_some() && ma.is_some() == mb.is_some(),
                    _ => false,
                }
        });
        if !alike {
            return Ok(None);
        }
        let total: usize = parts.iter().map(|p| p.4).sum();
        let mut row0 = 0;
        let mut placed = Vec::new();
        let mut merged: Option<Carried> = None;
        for (name, ty, dims, _, n, carried) in parts {
            placed.push((name.to_string(), ty, dims, n, row0));
            row0 += n;
            merged = Some(match (merged, carried) {
                (None, c) => c,
                (Some(Carried::Float(mut a)), Carried::Float(b)) => {
                    a.extend(b);
                    Carried::Float(a)
                }
                (
                    Some(Carried::Nbits8 { codes: mut c, scales: mut s, zero_points: mut z, block }),
                    Carried::Nbits8 { codes: c2, scales: s2, zero_points: z2, .. },
                ) => {
                    c.extend(c2);
                    s.extend(s2);
                    z.extend(z2);
                    Carried::Nbits8 { codes: c, scales: s, zero_points: z, block }
                }
                (
                    Some(Carried::Nbits4 { codes: mut c, scales: mut s, zero_points: z, mins: m }),
                    Carried::Nbits4 { codes: c2, scales: s2, zero_points: z2, mins: m2 },
                ) => {
                    c.extend(c2);
                    s.extend(s2);
                    Carried::Nbits4 { codes: c, scales: s, zero_points: join(z, z2), mins: join(m, m2) }
                }
                _ => unreachable!("parts checked alike"),
            });
        }
        let n = total;
        let rows_total = if names.len() == 1 { 0 } else { total };
        let nb = k / BLOCK;
        let carry = match merged.expect("at least one part") {
            Carried::Nbits4 { codes, scales, zero_points, mins } => {
                let c = self.b.u8s(&format!("{base}.codes"), &[n as i64, nb as i64, 16], codes);
                let s = self.b.f32s(&format!("{base}.scales"), &[(n * nb) as i64], &scales);
                let z = zero_points.map(|z| self.b.u8s(&format!("{base}.zero_points"), &[z.len() as i64], z));
                let m = mins.map(|m| self.b.f32s(&format!("{base}.mins"), &[n as i64, nb as i64], &m));
                let how = match (&m, &z, placed.first().map(|p| p.1)) {
                    (Some(_), None, Some(GgmlType::Q4K)) => {
                        "as MatMulNBits (per 32 values: scale d·sc, zero point 8) + f32 block minimums −dmin·m + 8·d·sc"
                    }
                    (Some(_), Some(_), Some(GgmlType::Q4K)) => {
                        "as MatMulNBits (per 32 values: scale d·sc, zero point 0) + f32 block minimums −dmin·m"
                    }
                    (Some(_), None, _) => "as MatMulNBits (zero point 8) + f32 block minimums m + 8d",
                    (Some(_), Some(_), _) => "as MatMulNBits (zero point 0) + f32 block minimums",
                    (None, _, _) => "as MatMulNBits (zero point 8)",
                };
                for (name, ty, dims, n, row0) in placed {
                    self.note(&name, ty, how, true);
                    let repr = Repr::Nbits4 {
                        codes: c.clone(),
                        scales: s.clone(),
                        zero_points: z.clone(),
                        mins: m.clone(),
                        n,
                        k,
                    };
                    self.place(&name, dims, ty, repr, row0, rows_total);
                }
                Carry::Nbits(NbitsInits { bits: 4, block: BLOCK, codes: c, scales: s, zero_points: z, mins: m, n, k })
            }
            Carried::Nbits8 { codes, scales, zero_points, block } => {
                let (c, s, z) = self.nbits8_inits(&base, n, k, block, codes, &scales, zero_points);
                for (name, ty, dims, n, row0) in placed {
                    self.note(&name, ty, &nbits8_how(ty, "MatMulNBits"), true);
                    let repr =
                        Repr::Nbits8 { codes: c.clone(), scales: s.clone(), zero_points: z.clone(), n, k, block };
                    self.place(&name, dims, ty, repr, row0, rows_total);
                }
                Carry::Nbits(NbitsInits { bits: 8, block, codes: c, scales: s, zero_points: Some(z), mins: None, n, k })
            }
            Carried::Float(v) => {
                let w = self.b.f32s(&format!("{base}.f32"), &[n as i64, k as i64], &v);
                for (name, ty, dims, _, row0) in placed {
                    self.note(&name, ty, "as f32", false);
                    self.place(&name, dims, ty, Repr::Float { init: w.clone() }, row0, rows_total);
                }
                Carry::Float(w)
            }
        };
        self.carries.insert(base, carry.clone());
        Ok(Some(carry))
    }

    /// The codes `[n, k/block, block]`, scales and per-block zero points of an 8-bit matrix, named after `base`.
    #[allow(clippy::too_many_arguments)]
    fn nbits8_inits(
        &mut self,
        base: &str,
        n: usize,
        k: usize,
        block: usize,
        codes: Vec<u8>,
        scales: &[f32],
        zero_points: Vec<u8>,
    ) -> (String, String, String) {
        let nb = k / block;
        let c = self.b.u8s(&format!("{base}.codes8"), &[n as i64, nb as i64, block as i64], codes);
        let s = self.b.f32s(&format!("{base}.scales"), &[(n * nb) as i64], scales);
        let z = self.b.u8s(&format!("{base}.zero_points"), &[(n * nb) as i64], zero_points);
        (c, s, z)
    }

    /// `x · Wᵀ` through `MatMulNBits` (plus, for Q4_1, the block minimums' product, its addition inside `Gemm`).
    fn matmul_nbits(&mut self, x: &str, q: &NbitsInits) -> String {
        let mut inputs = vec![x, q.codes.as_str(), q.scales.as_str()];
        if let Some(z) = &q.zero_points {
            inputs.push(z);
        }
        let attrs = vec![
            attr_i("K", q.k as i64),
            attr_i("N", q.n as i64),
            attr_i("bits", q.bits),
            attr_i("block_size", q.block as i64),
            attr_i("accuracy_level", self.opts.accuracy_level as i64),
        ];
        let y = self.b.op_in("com.microsoft", "MatMulNBits", &inputs, attrs, 1).remove(0);
        match &q.mins {
            Some(m) => {
                let sums = self.block_sum(x, q.k);
                self.b.op("Gemm", &[&sums, m, &y], vec![attr_i("transB", 1)])
            }
            None => y,
        }
    }

    /// The embedding rows of the flat token ids `ids`, `[tokens, n_embd]`, and the f32 table if one was written.
    /// The fused graph (ONNX Runtime only) looks rows up with `GatherBlockQuantized` in the quantized bytes
    /// `MatMulNBits` reads when the table's type is carried that way without minimums (Q4_0; Q8_0 where products
    /// keep it quantized, or the table is not the output matrix too): exactly the file's values, shared with a
    /// tied output product, no f32 copy (113 MB for the default model). Otherwise `Gather` from an f32 table.
    pub(crate) fn embedding(&mut self, ids: &str, hp: &ModelDesc) -> Result<(String, Option<String>), OnnxError> {
        const TABLE: &str = "token_embd.weight";
        let file = self.file;
        let ty = file.gguf.tensor(TABLE).map_err(|e| e.in_file(&file.path))?.ty;
        let tied = file.gguf.tensor("output.weight").is_err();
        let quantized = match ty {
            GgmlType::Q4_0 => true,
            GgmlType::Q8_0 => self.quantized_product(ty) || !tied,
            _ => false,
        };
        if self.opts.graph == GraphVariant::Fused && quantized {
            if let Some(Carry::Nbits(q)) = self.carry_for_lookup(TABLE)? {
                let nb = (q.k / BLOCK) as i64;
                let shape = self.b.i64s(&[q.n as i64, nb, 1]);
                let scales = self.b.op("Reshape", &[&q.scales, &shape], vec![]);
                // Codes `[rows, blocks, bytes]` with the block axis last but one: one scale per row and block, the
                // default zero point (8 or 128) the value `MatMulNBits` reads too.
                let attrs = vec![
                    attr_i("gather_axis", 0),
                    attr_i("quantize_axis", 2),
                    attr_i("block_size", BLOCK as i64),
                    attr_i("bits", q.bits),
                ];
                let rows = self
                    .b
                    .op_in("com.microsoft", "GatherBlockQuantized", &[&q.codes, ids, &scales], attrs, 1)
                    .remove(0);
                let flat = self.b.i64s(&[-1, hp.n_embd as i64]);
                return Ok((self.b.op("Reshape", &[&rows, &flat], vec![]), None));
            }
        }
        let table = self.float_init(TABLE, &[hp.vocab as i64, hp.n_embd as i64])?;
        Ok((self.b.op("Gather", &[&table, ids], vec![attr_i("axis", 0)]), Some(table)))
    }

    /// `carry` for the embedding table, which `encode` writes as 8-bit codes only where `quantized_product` says
    /// so: a Q8_0 table read only by the lookup is written here in the 8-bit form.
    fn carry_for_lookup(&mut self, name: &str) -> Result<Option<Carry>, OnnxError> {
        let (data, ty, dims) = self.read(name)?;
        if ty != GgmlType::Q8_0 || self.quantized_product(ty) {
            return self.carry(&[name.to_string()]);
        }
        let (k, n) = (dims[0] as usize, dims[1] as usize);
        let Carried::Nbits8 { codes, scales, zero_points, block } = weights::encode_nbits8(ty, &data, n, k)
            .map_err(|e| OnnxError::Unsupported(format!("{}: {name}: {e}", self.file.path.display())))?
        else {
            return Ok(None);
        };
        let (c, s, z) = self.nbits8_inits(name, n, k, block, codes, &scales, zero_points);
        self.note(name, ty, &nbits8_how(ty, "GatherBlockQuantized"), true);
        let repr = Repr::Nbits8 { codes: c.clone(), scales: s.clone(), zero_points: z.clone(), n, k, block };
        self.place(name, dims, ty, repr, 0, 0);
        let inits = NbitsInits { bits: 8, block, codes: c, scales: s, zero_points: Some(z), mins: None, n, k };
        let carry = Carry::Nbits(inits);
        self.carries.insert(name.to_string(), carry.clone());
        Ok(Some(carry))
    }

    pub(crate) fn rms_norm(&mut self, x: &str, weight: &str, eps: f32, width: usize) -> Result<String, OnnxError> {
        let w = self.float_init(weight, &[width as i64])?;
        // x/s / sqrt(mean((x/s)²) + eps/s²) = x / sqrt(mean(x²) + eps), exactly, for s a power of two.
        let (x, eps) = if self.opts.fp16_safe_norm {
            let s = self.b.scalar(1.0 / FP16_SAFE_NORM_SCALE);
            (self.b.op("Mul", &[x, &s], vec![]), eps / (FP16_SAFE_NORM_SCALE * FP16_SAFE_NORM_SCALE))
        } else {
            (x.to_string(), eps)
        };
        let sq = self.b.op("Mul", &[&x, &x], vec![]);
        let mean = self.b.op("ReduceMean", &[&sq], vec![attr_ints("axes", &[-1]), attr_i("keepdims", 1)]);
        let e = self.b.scalar(eps);
        let var = self.b.op("Add", &[&mean, &e], vec![]);
        let std = self.b.op("Sqrt", &[&var], vec![]);
        let inv = self.b.op("Reciprocal", &[&std], vec![]);
        let y = self.b.op("Mul", &[&x, &inv], vec![]);
        Ok(self.b.op("Mul", &[&y, &w], vec![]))
    }

    /// Full-width rotation tables for [`Ctx::rope`]: the angles' cosines and sines `cos`, `sin` (`[seq, half]`,
    /// half = head_dim/2) spread to `[seq, head_dim]` in the order `style` pairs the dimensions (adjacent pairs
    /// `(2i, 2i+1)` or halves `(i, i + half)`), and the `[head_dim, head_dim]` signed permutation taking each
    /// dimension to its partner's place (−x₂ to the first of a pair, x₁ to the second). Built once per table.
    pub(crate) fn rope_tables(&mut self, cos: &str, sin: &str, d: usize, style: RopeStyle) -> RopeTables {
        let full = self.b.i64s(&[-1, d as i64]);
        let spread = |cx: &mut Self, t: &str| match style {
            RopeStyle::Adjacent => {
                let col = cx.b.i64s(&[0, (d / 2) as i64, 1]);
                let t = cx.b.op("Reshape", &[t, &col], vec![]);
                let t = cx.b.op("Concat", &[&t, &t], vec![attr_i("axis", 2)]);
                cx.b.op("Reshape", &[&t, &full], vec![])
            }
            RopeStyle::Halves => cx.b.op("Concat", &[t, t], vec![attr_i("axis", 1)]),
        };
        let (cos, sin) = (spread(self, cos), spread(self, sin));
        let name = "rope.rotate";
        if !self.b.inits.iter().any(|t| t.name == name) {
            let mut r = vec![0f32; d * d];
            for i in 0..d / 2 {
                let (a, b) = match style {
                    RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + d / 2),
                };
                // (x·R)[a] = −x[b], (x·R)[b] = x[a]: exact, one ±1 per column.
                r[b * d + a] = -1.0;
                r[a * d + b] = 1.0;
            }
            self.b.f32s(name, &[d as i64, d as i64], &r);
        }
        RopeTables { cos, sin, rotate: name.into() }
    }

    /// Rotates each head of `x` (`[seq, heads·head_dim]` or `[seq, heads, head_dim]`) by `t`'s angles and returns
    /// it as `[heads, seq, head_dim]`: `x·cos + (x·R)·sin`, every product over a whole head (a broadcast over
    /// pairs `[…, half, 1]` ran element by element in tract, 13% of its prefill).
    pub(crate) fn rope(&mut self, x: &str, t: &RopeTables, heads: usize, d: usize) -> String {
        let shape = self.b.i64s(&[-1, heads as i64, d as i64]);
        let x = self.b.op("Reshape", &[x, &shape], vec![]);
        let x = self.b.op("Transpose", &[&x], vec![attr_ints("perm", &[1, 0, 2])]);
        let a = self.b.op("Mul", &[&x, &t.cos], vec![]);
        let r = self.b.op("MatMul", &[&x, &t.rotate], vec![]);
        let r = self.b.op("Mul", &[&r, &t.sin], vec![]);
        self.b.op("Add", &[&a, &r], vec![])
    }
}

/// The rotation tables [`Ctx::rope`] reads (see [`Ctx::rope_tables`]).
pub(crate) struct RopeTables {
    cos: String,
    sin: String,
    rotate: String,
}

/// How an 8-bit type is carried by `op` (for `edgebench.carried`).
fn nbits8_how(ty: GgmlType, op: &str) -> String {
    match ty {
        GgmlType::Q5_0 => format!("as 8-bit {op} (codes 0..31, zero point 16)"),
        GgmlType::Q6K => format!("as 8-bit {op} (blocks of 16, codes 0..63, zero point 32, scale d·sc)"),
        _ => format!("as 8-bit {op} (zero point 128)"),
    }
}

/// Every block variation both graphs interpret (`edgebench_gguf::arch::Feature`).
pub const RUNS: &[Feature] = &[
    Feature::QkvBias,
    Feature::QkNorm,
    Feature::PostNorms,
    Feature::GeluGate,
    Feature::EmbeddingScale,
    Feature::LogitSoftcap,
    Feature::SlidingWindow,
    Feature::RopeHalves,
    Feature::RopeFreqFactors,
    Feature::FusedQkv,
    Feature::FusedGateUp,
    Feature::WideHeads,
    Feature::AttentionScale,
];

/// Writes the ONNX graph of a GGUF file of any architecture `ModelDesc` describes. `source_sha256` is recorded in
/// the metadata.
pub fn export(file: &GgufFile, opts: ExportOptions, source_sha256: &str) -> Result<Exported, OnnxError> {
    let hp = ModelDesc::from_gguf(&file.gguf)
        .and_then(|d| d.require("edgebench's ONNX export (ort, tract)", RUNS).map(|_| d))
        .map_err(|e| OnnxError::Unsupported(format!("{}: {e}", file.path.display())))?;
    let mut cx = Ctx {
        file,
        b: Builder::default(),
        opts,
        entries: Vec::new(),
        block_sums: HashMap::new(),
        carries: HashMap::new(),
        carried: BTreeMap::new(),
        converted: BTreeMap::new(),
    };
    match opts.graph {
        GraphVariant::Primitive => crate::primitive::build(&mut cx, &hp)?,
        GraphVariant::Fused => crate::fused::build(&mut cx, &hp)?,
    }
    let kvh = hp.n_head_kv;
    let d = hp.head_dim;
    let facts = GraphFacts {
        n_layer: hp.n_layer,
        n_head_kv: kvh,
        head_dim: d,
        vocab: hp.vocab,
        n_ctx: hp.n_ctx,
        variant: opts.graph,
        sliding_window: hp.sliding.as_ref().map(|s| s.window),
    };
    let carried: Vec<String> = cx.carried.iter().map(|(how, n)| format!("{n} × {how}")).collect();
    let carried = carried.join("; ");
    let converted: Vec<String> =
        cx.converted.iter().map(|(how, ts)| format!("{how}: {} tensor(s), e.g. {}", ts.len(), ts[0])).collect();
    let kv = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
    let json = |v: &dyn erased::Json| v.json();
    let mut props = vec![
        kv(meta::EXPORTER, format!("edgebench-onnx {} (graph v{EXPORTER_VERSION})", env!("CARGO_PKG_VERSION"))),
        kv(meta::SOURCE_SHA256, source_sha256.into()),
        kv(meta::FACTS, json(&facts)),
        kv(meta::WEIGHTS, json(&cx.entries)),
        kv(meta::CARRIED, carried.clone()),
        kv(meta::OPTIONS, json(&opts)),
    ];
    if !converted.is_empty() {
        props.push(kv(meta::CONVERTED, converted.join("\n")));
    }
    let graph = GraphProto {
        name: format!("edgebench-{}", hp.arch.name()),
        node: cx.b.nodes,
        initializer: cx.b.inits,
        input: cx.b.inputs,
        output: cx.b.outputs,
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto { domain: String::new(), version: OPSET },
            OperatorSetIdProto { domain: "com.microsoft".into(), version: 1 },
        ],
        producer_name: "edgebench".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: props,
        ..Default::default()
    };
    Ok(Exported { model, facts, carried, converted })
}

mod erased {
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).expect("metadata serializes")
        }
    }
}

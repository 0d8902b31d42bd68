//! A model written by onnxruntime-genai's model builder (a directory with `genai_config.json` and the graph), run by
//! the ort backend in place of edgebench's export (`--backend-opt ort:genai_model=DIR`), so ONNX Runtime's own
//! toolchain's model gets edgebench's timing and drift check in the same table. Its weights are the builder's
//! (re-quantized from the GGUF's values), which the results say.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use edgebench_core::BackendError;
use edgebench_gguf::arch::ModelDesc;
use edgebench_gguf::GgufFile;
use edgebench_onnx::io::{self, GraphFacts, GraphVariant};
use edgebench_onnx::pb::{tensor_shape_proto, type_proto};
use serde::Deserialize;

/// The builder's configuration file inside the model directory.
pub const CONFIG_FILE: &str = "genai_config.json";

#[derive(Deserialize)]
struct Config {
    model: ModelConfig,
}

#[derive(Deserialize)]
struct ModelConfig {
    context_length: usize,
    vocab_size: usize,
    decoder: Decoder,
}

#[derive(Deserialize)]
struct Decoder {
    filename: String,
    head_size: usize,
    num_hidden_layers: usize,
    num_key_value_heads: usize,
    inputs: HashMap<String, String>,
    outputs: HashMap<String, String>,
}

/// A builder-written model, read from its directory.
#[derive(Debug, Clone)]
pub struct GenaiModel {
    /// The graph file.
    pub graph_path: PathBuf,
    /// Shapes needed to drive it (variant `Fused`: its attention is `GroupQueryAttention`).
    pub graph: GraphFacts,
    /// Whether the graph takes `position_ids`.
    pub position_ids: bool,
}

fn load_error(path: &Path, message: impl Into<String>) -> BackendError {
    BackendError::Load { path: path.display().to_string(), message: message.into() }
}

/// The I/O names edgebench drives, by the config's keys: every one the config lists must be here with this name.
const INPUTS: [(&str, &str); 5] = [
    ("input_ids", io::INPUT_IDS),
    ("attention_mask", ATTENTION_MASK),
    ("position_ids", io::POSITION_IDS),
    ("past_key_names", "past_key_values.%d.key"),
    ("past_value_names", "past_key_values.%d.value"),
];
const OUTPUTS: [(&str, &str); 3] =
    [("logits", io::LOGITS), ("present_key_names", "present.%d.key"), ("present_value_names", "present.%d.value")];

/// The builder's mask input: ones over the cached and new positions, `[1, total]` int64.
pub const ATTENTION_MASK: &str = "attention_mask";

impl GenaiModel {
    /// Reads `dir/genai_config.json`; refuses a config whose inputs or outputs edgebench cannot drive, naming them.
    pub fn read(dir: &Path) -> Result<Self, BackendError> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| load_error(&path, e.to_string()))?;
        let c: Config = serde_json::from_str(&text).map_err(|e| load_error(&path, e.to_string()))?;
        let d = &c.model.decoder;
        let check = |kind: &str, got: &HashMap<String, String>, known: &[(&str, &str)]| -> Result<(), BackendError> {
            for (k, v) in got {
                match known.iter().find(|(key, _)| key == k) {
                    Some((_, name)) if name == v => {}
                    Some((_, name)) => {
                        return Err(BackendError::Unsupported(format!(
                            "{}: decoder {kind} {k} is named {v:?}; edgebench drives {name:?}",
                            path.display()
                        )))
                    }
                    None => {
                        return Err(BackendError::Unsupported(format!(
                            "{}: decoder {kind} {k} ({v:?}) is not one edgebench drives (it drives {})",
                            path.display(),
                            known.iter().map(|(key, _)| *key).collect::<Vec<_>>().join(", ")
                        )))
                    }
                }
            }
            Ok(())
        };
        check("input", &d.inputs, &INPUTS)?;
        check("output", &d.outputs, &OUTPUTS)?;
        for need in ["input_ids", "attention_mask", "past_key_names", "past_value_names"] {
            if !d.inputs.contains_key(need) {
                return Err(load_error(&path, format!("decoder inputs lack {need}")));
            }
        }
        for need in ["logits", "present_key_names", "present_value_names"] {
            if !d.outputs.contains_key(need) {
                return Err(load_error(&path, format!("decoder outputs lack {need}")));
            }
        }
        if d.filename.contains('/') || d.filename.contains("..") {
            return Err(load_error(&path, format!("decoder filename {:?} is not a file in the directory", d.filename)));
        }
        Ok(Self {
            graph_path: dir.join(&d.filename),
            graph: GraphFacts {
                n_layer: d.num_hidden_layers,
                n_head_kv: d.num_key_value_heads,
                head_dim: d.head_size,
                vocab: c.model.vocab_size,
                n_ctx: c.model.context_length,
                variant: GraphVariant::Fused,
                sliding_window: None,
            },
            position_ids: d.inputs.contains_key("position_ids"),
        })
    }

    /// Checks the config against the GGUF the harness tokenizes with: same vocabulary size, layers, KV heads and
    /// head width, or an error naming both files.
    pub fn check_against(&self, gguf: &Path) -> Result<(), BackendError> {
        let file = GgufFile::open(gguf).map_err(|e| load_error(gguf, e.to_string()))?;
        let desc = ModelDesc::from_gguf(&file.gguf).map_err(|e| load_error(gguf, e.to_string()))?;
        let g = &self.graph;
        let pairs = [
            ("vocabulary", g.vocab, desc.vocab),
            ("layers", g.n_layer, desc.n_layer),
            ("KV heads", g.n_head_kv, desc.n_head_kv),
            ("head width", g.head_dim, desc.head_dim),
        ];
        for (what, ours, theirs) in pairs {
            if ours != theirs {
                return Err(BackendError::Unsupported(format!(
                    "{} says {what} {ours}, {} has {theirs}: not a model of this file",
                    self.graph_path.with_file_name(CONFIG_FILE).display(),
                    gguf.display()
                )));
            }
        }
        Ok(())
    }
}

/// What a builder's graph is made of, for the results: node count, the most used operators, and every
/// `MatMulNBits` setting (bits, block, accuracy level) with its count.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSummary {
    /// Nodes in the main graph.
    pub nodes: usize,
    /// `(operator, count)`, most used first.
    pub ops: Vec<(String, usize)>,
    /// `(bits, block_size, accuracy_level)` → count.
    pub matmulnbits: BTreeMap<(i64, i64, i64), usize>,
    /// Whether the logits output holds one position only (the builder's `prune_lm_head`: dimension 1 fixed at 1).
    pub last_position_only: bool,
}

impl GraphSummary {
    /// Reads the graph file (without its external weight data).
    pub fn read(graph: &Path) -> Result<Self, BackendError> {
        let m = edgebench_onnx::fingerprint::read_model(graph).map_err(|e| load_error(graph, e.to_string()))?;
        let nodes = m.graph.as_ref().map(|g| g.node.as_slice()).unwrap_or_default();
        let logits = m.graph.as_ref().and_then(|g| g.output.iter().find(|o| o.name == io::LOGITS));
        let dims = logits.and_then(|o| o.r#type.as_ref()).and_then(|t| match &t.value {
            Some(type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| s.dim.clone()),
            _ => None,
        });
        let Some(dims) = dims else {
            return Err(load_error(graph, "no logits output with a shape"));
        };
        let last_position_only =
            dims.len() == 3 && matches!(dims[1].value, Some(tensor_shape_proto::dimension::Value::DimValue(1)));
        let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
        let mut matmulnbits = BTreeMap::new();
        for n in nodes {
            *ops.entry(n.op_type.as_str()).or_default() += 1;
            if n.op_type == "MatMulNBits" {
                let attr = |name: &str, default: i64| {
                    n.attribute.iter().find(|a| a.name == name).map(|a| a.i).unwrap_or(default)
                };
                *matmulnbits.entry((attr("bits", 4), attr("block_size", 0), attr("accuracy_level", 0))).or_default() +=
                    1;
            }
        }
        let mut ops: Vec<(String, usize)> = ops.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        ops.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(Self { nodes: nodes.len(), ops, matmulnbits, last_position_only })
    }

    /// Whether any `MatMulNBits` quantizes its activations to int8 (accuracy level 4): batch-variant in ONNX
    /// Runtime.
    pub fn int8_activations(&self) -> bool {
        self.matmulnbits.keys().any(|k| k.2 == 4)
    }

    /// `343 nodes: MatMulNBits 151, …; MatMulNBits 151 × bits 4 block 32 accuracy_level 4`.
    pub fn describe(&self) -> String {
        let ops: Vec<String> = self.ops.iter().take(6).map(|(k, v)| format!("{k} {v}")).collect();
        let mm: Vec<String> = self
            .matmulnbits
            .iter()
            .map(|((bits, block, acc), n)| format!("{n} × bits {bits} block {block} accuracy_level {acc}"))
            .collect();
        format!(
            "{} nodes ({}); MatMulNBits: {}",
            self.nodes,
            ops.join(", "),
            if mm.is_empty() { "none".to_string() } else { mm.join(", ") }
        )
    }
}

/// SHA-256 over the graph file and every external data file its initializers name (each file once, in the order
/// first named): what stands for a fingerprint of weights edgebench does not decode.
pub fn files_sha256(graph: &Path) -> Result<String, BackendError> {
    let m = edgebench_onnx::fingerprint::read_model(graph).map_err(|e| load_error(graph, e.to_string()))?;
    let mut files = vec![graph.to_path_buf()];
    let inits = m.graph.as_ref().map(|g| g.initializer.as_slice()).unwrap_or_default();
    for e in inits.iter().flat_map(|t| &t.external_data).filter(|e| e.key == "location") {
        let rel = Path::new(&e.value);
        if rel.is_absolute() || rel.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(load_error(graph, format!("external data {:?} is not a file beside the graph", e.value)));
        }
        let path = graph.with_file_name(rel);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    let hashes = files
        .iter()
        .map(|f| edgebench_gguf::fingerprint::sha256_file(f).map_err(|e| load_error(f, e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(hashes.join("+"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, inputs: &str) {
        let text = format!(
            r#"{{"model": {{"context_length": 64, "vocab_size": 32, "type": "llama",
                "decoder": {{"filename": "model.onnx", "head_size": 8, "hidden_size": 32, "num_attention_heads": 4,
                    "num_hidden_layers": 2, "num_key_value_heads": 2, "inputs": {{{inputs}}},
                    "outputs": {{"logits": "logits", "present_key_names": "present.%d.key",
                                 "present_value_names": "present.%d.value"}}}}}}}}"#
        );
        std::fs::write(dir.join(CONFIG_FILE), text).unwrap();
    }

    const STANDARD: &str = r#""input_ids": "input_ids", "attention_mask": "attention_mask",
        "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value""#;

    #[test]
    fn a_builder_config_gives_the_graph_facts() {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), STANDARD);
        let m = GenaiModel::read(dir.path()).unwrap();
        assert_eq!(m.graph_path, dir.path().join("model.onnx"));
        assert_eq!((m.graph.n_layer, m.graph.n_head_kv, m.graph.head_dim, m.graph.vocab), (2, 2, 8, 32));
        assert_eq!(m.graph.n_ctx, 64);
        assert!(!m.position_ids);
    }

    #[test]
    fn inputs_edgebench_cannot_drive_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), &format!(r#"{STANDARD}, "cache_indirection": "cache_indirection""#));
        let e = GenaiModel::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("cache_indirection") && e.contains(CONFIG_FILE), "{e}");
        write_config(dir.path(), &STANDARD.replace("past_key_values.%d.key", "past.%d.k"));
        let e = GenaiModel::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("past.%d.k"), "{e}");
        write_config(dir.path(), r#""input_ids": "input_ids""#);
        let e = GenaiModel::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("attention_mask"), "{e}");
    }

    #[test]
    fn a_missing_or_malformed_config_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = GenaiModel::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains(CONFIG_FILE), "{e}");
        std::fs::write(dir.path().join(CONFIG_FILE), "{\"model\": 3}").unwrap();
        let e = GenaiModel::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains(CONFIG_FILE), "{e}");
    }
}

//! The QDQ variant of an export (`--backend-opt ort:qdq=true`; the rewrite is `edgebench_onnx::qdq`), prepared once
//! per export before any timed load: the primitive export runs on ONNX Runtime's CPU provider over a calibration
//! text, the largest absolute value and the RMS of each 4-bit product's input and output are recorded, and the graph
//! is rewritten with those ranges times [`HEADROOM`] (products whose tensors uint16 cannot resolve, [`MIN_SQNR_DB`],
//! kept in float) and cached beside the export with its calibration (`calibration.json`).
//! Calibration is the untimed preparation of a graph, so it tokenizes its own text with the model's tokenizer.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use edgebench_onnx::backend::Step;
use edgebench_onnx::io::{self, GraphFacts};
use edgebench_onnx::pb::{
    tensor_proto::DataType, type_proto, ModelProto, StringStringEntryProto, TypeProto, ValueInfoProto,
};
use ort::session::SessionInputValue;
use ort::value::Tensor;
use prost::Message;

use crate::library::Loaded;

/// Each calibrated range is widened by this factor, so text unlike the calibration text saturates less.
pub const HEADROOM: f32 = 1.25;
/// Version of the calibration (its text, headroom and rewrite); part of the cache folder's name.
pub const VERSION: u32 = 1;
/// A product is quantized only where uint16 keeps both its input and its output above this signal-to-quantization-
/// noise ratio (RMS of the calibration values over the uniform rounding noise, step/√12, at the widened range);
/// elsewhere it stays a float `MatMul` (`edgebench_onnx::qdq::rewrite`). Tensors with a few huge channels (this
/// model's massive activations) fall below it: their range sets a step too coarse for every other channel.
pub const MIN_SQNR_DB: f32 = 60.0;
/// The metadata key the variant records its calibration under.
pub const META: &str = "edgebench.qdq";

/// The calibration text: prose, a dialogue, a list, numbers and code, so the activations see the kinds of input a
/// benchmark feeds.
const TEXT: &str = "The lighthouse keeper wrote the weather into the logbook every evening: wind from the west, \
seas moderate, visibility good until dusk. Ships passing the headland slowed when the fog rolled in, and the \
keeper lit the lamp an hour early.\n\nUser: How do I reverse a list in Python without changing the original?\n\
Assistant: Use slicing, which returns a new list: reversed_copy = items[::-1]. The original list stays as it \
was.\n\nShopping list for the weekend:\n1. Flour, 2 kg\n2. Eggs, a dozen\n3. Tomatoes, 750 g\n4. Olive oil\n\n\
fn mean(values: &[f64]) -> Option<f64> {\n    if values.is_empty() { return None; }\n    \
Some(values.iter().sum::<f64>() / values.len() as f64)\n}\n\nIn 1969 the first crewed landing on the Moon \
took place; the lunar module touched down in the Sea of Tranquility at 20:17 UTC. Photosynthesis turns carbon \
dioxide and water into glucose and oxygen, using the energy of sunlight captured by chlorophyll. A triangle's \
angles add up to 180 degrees, and the square of the hypotenuse equals the sum of the squares of the other two \
sides.";

/// The QDQ variant of the export at `export` (of the GGUF at `gguf`), found beside it or prepared now; returns its
/// file and a note for the results.
pub(crate) fn prepare(lib: &Loaded, export: &Path, gguf: &Path, threads: usize) -> Result<(PathBuf, String), String> {
    let parent = export.parent().unwrap_or(Path::new("."));
    let dir = parent.join(format!("qdq-u16-v{VERSION}"));
    let path = dir.join("model.onnx");
    if path.is_file() {
        return Ok((path.clone(), format!("QDQ variant from the cache: {}", path.display())));
    }
    let started = std::time::Instant::now();
    fn err(what: &'static str) -> impl Fn(String) -> String {
        move |e| format!("{what}: {e}")
    }
    let mut m = edgebench_onnx::fingerprint::read_model(export).map_err(|e| e.to_string())?;
    let facts = edgebench_onnx::fingerprint::file_facts(&m, export).map_err(|e| e.to_string())?;
    let tokens = tokens(gguf).map_err(err("tokenizing the calibration text"))?;
    let products = edgebench_onnx::qdq::products(&m);
    let mut names: Vec<String> = products.iter().flat_map(|p| [p.input.clone(), p.output.clone()]).collect();
    names.sort();
    names.dedup();
    let stats = calibrate(lib, &m, &facts.graph, &names, &tokens, threads)
        .map_err(err("calibrating on ONNX Runtime's CPU provider"))?;
    let sqnr: HashMap<&String, f32> = stats.iter().map(|(n, s)| (n, s.sqnr_db())).collect();
    let coarse = |t: &String| sqnr.get(t).is_none_or(|db| *db < MIN_SQNR_DB);
    let float: Vec<String> =
        products.iter().filter(|p| coarse(&p.input) || coarse(&p.output)).map(|p| p.node.clone()).collect();
    let done = edgebench_onnx::qdq::rewrite(
        &mut m,
        |n| stats.get(n).map(|s| s.absmax * HEADROOM),
        |node| float.iter().any(|f| f == node),
    )
    .map_err(|e| e.to_string())?;
    let about = format!(
        "{} 4-bit products as signed int4 blocks of 32 (the file's codes and scales) with uint16 activations, \
         symmetric, each product's input and output range the largest absolute value over {} calibration tokens \
         (ONNX Runtime's CPU provider, f32) times {HEADROOM}; {} kept as float MatMul of the file's values (f32), \
         where uint16 would leave the input or output under {MIN_SQNR_DB} dB of signal to rounding noise{}",
        done.products,
        tokens.len(),
        done.float.len(),
        if done.kept.is_empty() { String::new() } else { format!("; left as MatMulNBits: {}", done.kept.join(", ")) }
    );
    m.metadata_props.push(StringStringEntryProto { key: META.into(), value: about.clone() });
    let staging = tempfile::Builder::new().prefix(".qdq-").tempdir_in(parent).map_err(|e| e.to_string())?;
    std::fs::write(staging.path().join("model.onnx"), m.encode_to_vec())
        .map_err(|e| format!("writing the QDQ variant: {e}"))?;
    let tensors: BTreeMap<&String, serde_json::Value> = stats
        .iter()
        .map(|(k, s)| (k, serde_json::json!({ "absmax": s.absmax, "rms": s.rms, "sqnr_db": s.sqnr_db() })))
        .collect();
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "tokens": tokens.len(), "headroom": HEADROOM, "min_sqnr_db": MIN_SQNR_DB, "float": done.float,
        "tensors": tensors,
    }))
    .map_err(|e| e.to_string())?;
    std::fs::write(staging.path().join("calibration.json"), json)
        .map_err(|e| format!("writing the calibration: {e}"))?;
    let kept = staging.keep();
    if std::fs::rename(&kept, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&kept);
        if !path.is_file() {
            return Err(format!("could not move the QDQ variant into {}", dir.display()));
        }
    }
    Ok((
        path.clone(),
        format!(
            "QDQ variant written in {:.1} s (untimed): {}; {about}",
            started.elapsed().as_secs_f64(),
            path.display()
        ),
    ))
}

/// The calibration text in the model's tokens.
fn tokens(gguf: &Path) -> Result<Vec<u32>, String> {
    let file = edgebench_gguf::GgufFile::open(gguf).map_err(|e| e.to_string())?;
    let tok = edgebench_models::tokenizer::Tokenizer::from_gguf(&file.gguf).map_err(|e| e.to_string())?;
    let ids = tok.encode(TEXT, false);
    if ids.is_empty() {
        return Err("no tokens".into());
    }
    Ok(ids)
}

/// A tensor's values over the calibration call.
pub(crate) struct Stat {
    absmax: f32,
    rms: f32,
}

impl Stat {
    /// Signal to rounding noise, in dB, of the tensor quantized to uint16 at its widened range.
    fn sqnr_db(&self) -> f32 {
        let step = self.absmax * HEADROOM / f32::from(edgebench_onnx::qdq::ZERO_POINT - 1);
        20.0 * (self.rms / (step / 12f32.sqrt())).log10()
    }
}

/// The largest absolute value and the RMS of each tensor in `names` over one call of the graph `m` on `tokens`.
fn calibrate(
    lib: &Loaded,
    m: &ModelProto,
    g: &GraphFacts,
    names: &[String],
    tokens: &[u32],
    threads: usize,
) -> Result<HashMap<String, Stat>, String> {
    let mut m = m.clone();
    let graph = m.graph.as_mut().ok_or("no graph")?;
    for n in names {
        graph.output.push(ValueInfoProto {
            name: n.clone(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: DataType::Float as i32,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let bytes = m.encode_to_vec();
    drop(m);
    let e = |e: ort::Error| e.to_string();
    let mut session = crate::library::session_builder(lib, true)
        .map_err(e)?
        .with_intra_threads(threads)
        .map_err(|x| x.to_string())?
        .commit_from_memory(&bytes)
        .map_err(|x| x.to_string())?;
    let mut inputs: Vec<(String, SessionInputValue<'_>)> = crate::export_inputs(g, Step::new(0, tokens, false))
        .map_err(|x| x.to_string())?
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    for i in 0..2 * g.n_layer {
        let empty = Tensor::<f32>::from_array(([1usize, g.n_head_kv, 0, g.head_dim], Vec::<f32>::new())).map_err(e)?;
        inputs.push((io::past(i / 2, i % 2 == 1), empty.into_dyn().into()));
    }
    let out = session.run(inputs).map_err(e)?;
    names
        .iter()
        .map(|n| {
            let v = out.get(n.as_str()).ok_or_else(|| format!("no output {n}"))?;
            let (_, data) = v.try_extract_tensor::<f32>().map_err(e)?;
            let absmax = data.iter().fold(0f32, |a, x| a.max(x.abs()));
            let rms = (data.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / data.len().max(1) as f64).sqrt();
            Ok((n.clone(), Stat { absmax, rms: rms as f32 }))
        })
        .collect()
}

//! `edgebench export onnx`: the ONNX graph the ort and tract backends run, written where the user asks, with a
//! description that checks it (weight fingerprints of the ONNX file and of the GGUF, read back from the written
//! file).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use edgebench_onnx::io::GraphVariant;
use edgebench_onnx::{cache, fingerprint, ExportOptions};

/// Exports `model` to `out/model.onnx` and `out/export.json`.
pub fn onnx(
    model: Option<&str>,
    out: &Path,
    accuracy_level: u8,
    graph: &str,
    untied_head: bool,
    fp16_safe_norm: bool,
) -> anyhow::Result<ExitCode> {
    if ![0, 1, 2, 3, 4].contains(&accuracy_level) {
        bail!("--accuracy-level {accuracy_level}: expected 0, 1, 2, 3 or 4");
    }
    let graph = match graph {
        "fused" => GraphVariant::Fused,
        "primitive" => GraphVariant::Primitive,
        other => bail!("--graph {other}: expected fused or primitive"),
    };
    if fp16_safe_norm && graph != GraphVariant::Primitive {
        bail!("--fp16-safe-norm needs --graph primitive (the fused graph's norms are ONNX Runtime's own operators)");
    }
    let m = edgebench_models::resolve(model, &mut |l| eprintln!("{l}"))?;
    let src = Path::new(&m.info.path);
    let path = out.join("model.onnx");
    let t = std::time::Instant::now();
    let exported = cache::export_file(src, ExportOptions { accuracy_level, graph, untied_head, fp16_safe_norm }, &path)
        .with_context(|| format!("exporting {} to {}", src.display(), path.display()))?;
    let export_s = t.elapsed().as_secs_f64();
    let written = fingerprint::read_model(&path)?;
    let onnx_fp = fingerprint::fingerprint(&written, &path)?;
    let file = edgebench_gguf::GgufFile::open(src)?;
    let gguf_fp = edgebench_gguf::fingerprint::of_file(&file)?;
    let desc = serde_json::json!({
        "model": m.info.id,
        "source": m.info.path,
        "onnx": path,
        "bytes": std::fs::metadata(&path).map(|md| md.len()).ok(),
        "export_s": export_s,
        "accuracy_level": accuracy_level,
        "carried": exported.carried,
        "converted": exported.converted,
        "graph": exported.facts,
        "weights_fingerprint": { "onnx": onnx_fp, "gguf": gguf_fp, "identical": onnx_fp == gguf_fp },
    });
    let json = out.join("export.json");
    std::fs::write(&json, serde_json::to_string_pretty(&desc)? + "\n").with_context(|| json.display().to_string())?;
    eprintln!("carried: {}", exported.carried);
    for c in &exported.converted {
        eprintln!("converted: {c}");
    }
    eprintln!(
        "weights fingerprint {} the GGUF's ({onnx_fp})",
        if onnx_fp == gguf_fp { "identical to" } else { "DIFFERS from" }
    );
    println!("{}", path.display());
    if onnx_fp != gguf_fp {
        bail!("the exported weights differ from {}'s", src.display());
    }
    Ok(ExitCode::SUCCESS)
}

//! `edgebench models …` and the resolution of `--model` arguments to files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use edgebench_core::results::ModelInfo;
use edgebench_core::ModelSpec;
use edgebench_gguf::{requant, GgmlType, GgufFile};
use edgebench_runner::registry;

fn log(line: &str) {
    eprintln!("{line}");
}

/// A model ready to run: its spec for backends and its description for the results.
pub struct ResolvedModel {
    pub spec: ModelSpec,
    pub info: ModelInfo,
    /// For an `ID@TYPE` variant: the model it was requantized from (the default drift reference).
    pub source: Option<Box<ResolvedModel>>,
}

fn describe(file: &GgufFile, id: &str, sha256: String) -> ModelInfo {
    let g = &file.gguf;
    ModelInfo {
        id: id.into(),
        path: file.path.display().to_string(),
        sha256,
        file_bytes: g.file_len,
        architecture: g.architecture().unwrap_or("unknown").into(),
        name: g.get("general.name").and_then(|v| v.as_str()).map(str::to_string),
        parameters: g.parameter_count(),
        tensor_types: g.type_histogram().into_iter().map(|(t, n)| (t.to_string(), n)).collect(),
        requantized_from: g.get(requant::KEY_FROM).and_then(|v| v.as_str()).map(|from| {
            let src = g.get(requant::KEY_SOURCE).and_then(|v| v.as_str()).unwrap_or("source not recorded");
            format!("{from} ({src})")
        }),
    }
}

/// `ID@TYPE` or `FILE.gguf@TYPE`: a requantized variant, when TYPE names a type `models quantize` writes.
fn split_variant(arg: &str) -> Option<(&str, GgmlType)> {
    let (base, ty) = arg.rsplit_once('@')?;
    let ty = GgmlType::from_name(&ty.to_ascii_uppercase())?;
    (requant::TARGETS.contains(&ty) && !Path::new(arg).exists()).then_some((base, ty))
}

/// Requantizes `src` to `to` into `out` and says what it did.
fn quantize_file(src: &ResolvedModel, to: GgmlType, out: &Path) -> anyhow::Result<()> {
    let t = std::time::Instant::now();
    let file = GgufFile::open(&src.spec.path).with_context(|| format!("source {}", src.spec.path.display()))?;
    let name = src.spec.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let source =
        format!("{name}, sha256 {}, by edgebench {} models quantize", src.info.sha256, env!("CARGO_PKG_VERSION"));
    let (w, report) = requant::requantize(&file, to, &source).with_context(|| format!("requantizing {name}"))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    w.write(out).with_context(|| format!("writing {}", out.display()))?;
    let conv: Vec<String> = report.converted.iter().map(|(k, n)| format!("{n} tensors {k}")).collect();
    log(&format!(
        "requantized {} → {} in {:.1} s: {}; {} tensors kept as they were",
        src.spec.path.display(),
        out.display(),
        t.elapsed().as_secs_f64(),
        if conv.is_empty() { "nothing to convert".into() } else { conv.join(", ") },
        report.kept.len()
    ));
    Ok(())
}

/// A requantized variant of a model, made once and cached beside its source's cache entry.
fn resolve_variant(base: &str, to: GgmlType) -> anyhow::Result<ResolvedModel> {
    let src = resolve(Some(base))?;
    let stem = src.spec.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let out = registry::cache_dir().join("derived").join(&src.info.sha256).join(format!("{stem}.{}.gguf", to.name()));
    if !out.is_file() {
        quantize_file(&src, to, &out)?;
    }
    let mut r = resolve(Some(out.to_str().context("cache path is not UTF-8")?))?;
    r.spec.id = format!("{}@{}", src.spec.id, to.name().to_ascii_lowercase());
    r.info.id = r.spec.id.clone();
    r.source = Some(Box::new(src));
    Ok(r)
}

/// `edgebench models quantize --to TYPE SRC OUT`.
pub fn quantize(to: &str, src: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let ty = GgmlType::from_name(&to.to_ascii_uppercase())
        .filter(|t| requant::TARGETS.contains(t))
        .with_context(|| format!("--to {to}: expected Q8_0, Q4_0, Q4_1, F16 or F32"))?;
    let src = resolve(Some(src))?;
    quantize_file(&src, ty, out)?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn looks_like_path(arg: &str) -> bool {
    arg.contains('/') || arg.ends_with(".gguf") || Path::new(arg).exists()
}

/// Resolves `--model` (a registry id, a GGUF path, or `None` for the default), fetching registry models as needed.
pub fn resolve(arg: Option<&str>) -> anyhow::Result<ResolvedModel> {
    if let Some((base, ty)) = arg.and_then(split_variant) {
        return resolve_variant(base, ty);
    }
    let (id, path, sha) = match arg {
        Some(a) if looks_like_path(a) => {
            let p = PathBuf::from(a);
            if !p.is_file() {
                bail!("--model {a}: no such file");
            }
            let sha = registry::sha256_file(&p).with_context(|| format!("--model {a}"))?;
            let id = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| a.into());
            (id, p, sha)
        }
        other => {
            let m = registry::lookup(other).context("flag --model")?;
            let p = registry::ensure(&m, &mut |l| log(l))?;
            (m.id.clone(), p, m.sha256.clone())
        }
    };
    let file = GgufFile::open(&path).with_context(|| format!("--model {}", path.display()))?;
    let arch = file.gguf.architecture().unwrap_or("unknown");
    if arch != "llama" {
        bail!("--model {}: architecture {arch:?}; edgebench runs llama-architecture GGUF models", path.display());
    }
    let info = describe(&file, &id, sha);
    Ok(ResolvedModel { spec: ModelSpec { id, path }, info, source: None })
}

pub fn list() -> anyhow::Result<ExitCode> {
    println!("cache: {}", registry::cache_dir().display());
    for m in registry::registry()? {
        let state = match registry::cached(&m) {
            Some(p) => format!("cached at {}", p.display()),
            None => "not cached (edgebench models fetch)".into(),
        };
        let default = if m.default { " (default)" } else { "" };
        println!(
            "{}{default}\n  {}\n  package {} → {}\n  sha256 {}  {} bytes  {}\n  {state}",
            m.id, m.about, m.package, m.file, m.sha256, m.bytes, m.license
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn fetch(id: Option<&str>) -> anyhow::Result<ExitCode> {
    let m = registry::lookup(id)?;
    let p = registry::ensure(&m, &mut |l| log(l))?;
    println!("{}", p.display());
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(arg: &str) -> anyhow::Result<ExitCode> {
    let path = if looks_like_path(arg) {
        PathBuf::from(arg)
    } else {
        let m = registry::lookup(Some(arg))?;
        registry::cached(&m).with_context(|| format!("model {arg} is not cached: run edgebench models fetch {arg}"))?
    };
    let file = GgufFile::open(&path)?;
    let g = &file.gguf;
    println!("file:          {}", path.display());
    println!("gguf version:  {}", g.version);
    println!("architecture:  {}", g.architecture().unwrap_or("(missing general.architecture)"));
    if let Some(n) = g.get("general.name").and_then(|v| v.as_str()) {
        println!("name:          {n}");
    }
    println!("parameters:    {} ({:.1} M)", g.parameter_count(), g.parameter_count() as f64 / 1e6);
    println!("file size:     {} bytes", g.file_len);
    println!("tensors:       {}", g.tensors.len());
    for (t, n) in g.type_histogram() {
        let params: u64 = g.tensors.iter().filter(|x| x.ty == t).map(|x| x.n_elements).sum();
        println!("  {:<6} {n:>4} tensors  {params:>11} weights  {:.2} bits/weight", t.name(), t.bits_per_weight());
    }
    println!("metadata:");
    for (k, v) in &g.metadata {
        println!("  {k} = {}", v.summary());
    }
    println!("tensor types:");
    for t in &g.tensors {
        println!("  {:<32} {:<6} {:?}", t.name, t.ty.name(), t.dims);
    }
    Ok(ExitCode::SUCCESS)
}

//! `edgebench models …` and the resolution of `--model` arguments to files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use edgebench_core::results::ModelInfo;
use edgebench_core::ModelSpec;
use edgebench_gguf::GgufFile;
use edgebench_runner::registry;

fn log(line: &str) {
    eprintln!("{line}");
}

/// A model ready to run: its spec for backends and its description for the results.
pub struct ResolvedModel {
    pub spec: ModelSpec,
    pub info: ModelInfo,
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
    }
}

fn looks_like_path(arg: &str) -> bool {
    arg.contains('/') || arg.ends_with(".gguf") || Path::new(arg).exists()
}

/// Resolves `--model` (a registry id, a GGUF path, or `None` for the default), fetching registry models as needed.
pub fn resolve(arg: Option<&str>) -> anyhow::Result<ResolvedModel> {
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
    Ok(ResolvedModel { spec: ModelSpec { id, path }, info })
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

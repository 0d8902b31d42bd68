//! `edgebench models …`: list, fetch, inspect and requantize models (resolution itself is `edgebench_models`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use edgebench_gguf::GgufFile;
use edgebench_models::registry;
use edgebench_models::resolve::{looks_like_path, quantize_file, resolve, target_type};

fn log(line: &str) {
    eprintln!("{line}");
}

/// `edgebench models quantize --to TYPE SRC OUT`.
pub fn quantize(to: &str, src: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let ty = target_type(to)?;
    let src = resolve(Some(src), &mut log)?;
    quantize_file(&src, ty, out, &mut log)?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
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

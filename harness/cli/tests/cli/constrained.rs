//! `edgebench run --memory-limit / --cpu-quota` (each cell in a cgroup of its own, OOM kills classified, limits
//! recorded) and `edgebench recommend` on the results, end to end.

use crate::common::*;

/// `run --memory-limit 64MiB --cpu-quota 0.5` over a healthy tiny model and one that allocates without end; where
/// cgroups are not writable, the flags must be refused with the reason (never an unconstrained run).
#[test]
fn a_memory_limit_is_enforced_per_cell_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ok = model(dir.path(), "a_ok", &[]);
    let hog = model(dir.path(), "b_hog", &[("fail", "alloc")]);
    let (s, out) = (suite(dir.path()), dir.path().join("r.json"));
    let args = [
        "run",
        "--backend",
        "mock",
        "--threads",
        "1",
        "--suite",
        s.to_str().unwrap(),
        "--model",
        ok.to_str().unwrap(),
        "--model",
        hog.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--memory-limit",
        "64MiB",
        "--cpu-quota",
        "0.5",
    ];
    let o = edgebench(&args, &[]);
    let t = text(&o);
    if t.contains("refused, the run would not be constrained") {
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(!out.exists(), "nothing measured unconstrained");
        eprintln!("skipped: cgroups are not writable here: {t}");
        return;
    }
    assert_eq!(o.status.code(), Some(2), "a cell failed, so exit 2: {t}");
    let r = results(&out);
    assert_eq!(r["device"]["limits"]["memory_bytes"], 64 << 20, "{}", r["device"]);
    assert_eq!(r["device"]["limits"]["cpu_quota"], 0.5);
    let cells = r["cells"].as_array().unwrap();
    assert_eq!(cells[0]["status"], "ok", "{}", cells[0]);
    assert!(cells[0]["cgroup"]["peak_bytes"].as_u64().unwrap() > 0, "{}", cells[0]["cgroup"]);
    assert_eq!(cells[0]["cgroup"]["model_evicted"], true);
    assert_eq!(cells[1]["kind"], "out_of_memory", "{}", cells[1]);
    assert!(cells[1]["message"].as_str().unwrap().contains("cgroup's OOM killer (memory 64 MiB"), "{}", cells[1]);
    assert!(cells[1]["cgroup"]["oom_kills"].as_u64().unwrap() >= 1);
    assert!(t.contains("limits: memory 64 MiB, cpu 0.5 per cell"), "{t}");
    // Continuing the file without the limits would mix two devices: refused.
    let resume: Vec<&str> = args[..args.len() - 4].iter().copied().chain(["--resume"]).collect();
    let o = edgebench(&resume, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("measured with memory 64 MiB, cpu 0.5, this run has no limits"), "{}", text(&o));
}

#[test]
fn bad_limit_flags_are_refused_by_name() {
    for (flag, value, says) in [
        ("--memory-limit", "1GB", "binary units"),
        ("--memory-limit", "lots", "not a size"),
        ("--cpu-quota", "0", "not a CPU quota"),
    ] {
        let o = edgebench(&["run", "--backend", "mock", flag, value], &[]);
        assert_eq!(o.status.code(), Some(2));
        let t = text(&o);
        assert!(t.contains(flag) && t.contains(says), "{flag} {value}: {t}");
    }
}

#[test]
fn recommend_answers_from_a_run_and_never_passes_an_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_mock(dir.path(), &["--drift", "off"]);
    assert!(o.status.success(), "{}", text(&o));
    let file = out.to_str().unwrap();
    // No budget: the one candidate is the pick.
    let o = edgebench(&["recommend", file], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    let s = dir.path().join("tiny.toml");
    let reproduce =
        format!("reproduce: edgebench run --suite {} --model {}", s.display(), dir.path().join("ok.gguf").display());
    assert!(t.contains("PICK: ") && t.contains("mock cpu t1") && t.contains(&reproduce), "{t}");
    // A drift budget with no drift measured: unknown, rejected, exit 1, and the run that would measure it.
    let o = edgebench(&["recommend", file, "--max-kld", "0.1", "--max-j-per-token", "1"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("PICK: none") && t.contains("KLD ≤ 0.1: unknown"), "{t}");
    let o = edgebench(&["recommend", file, "--max-kld", "0.1", "--measure-missing"], &[]);
    assert!(text(&o).contains("--backend mock --device cpu --threads 1 --drift short"), "{}", text(&o));
    // --run makes that run and answers again with its results added.
    let out2 = dir.path().join("answer.txt");
    let o = edgebench(
        &["recommend", file, "--max-kld", "0.1", "--measure-missing", "--run", "--out", out2.to_str().unwrap()],
        &[("EDGEBENCH_CACHE", dir.path().join("cache").to_str().unwrap())],
    );
    // The mock against the default (candle) reference drifts far: measured now, the budget fails instead of
    // being unknown.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let answer = std::fs::read_to_string(&out2).unwrap();
    assert!(answer.contains("input [2]") && answer.contains("KLD ≤ 0.1: fail"), "{answer}");
    // JSON cites the input file's SHA-256 and each candidate's cells.
    let o = edgebench(&["recommend", file, "--format", "json"], &[]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["inputs"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(j["candidates"][0]["cells"][0][1], "gen");
    // HTML is written to --out; without drift the chart says why it is absent.
    let html = dir.path().join("rec.html");
    let o = edgebench(&["recommend", file, "--format", "html", "--out", html.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<h2>Pick: "), "{page}");
    assert!(page.contains("Chart absent: no feasible candidate has both decode speed and drift measured"), "{page}");
    // --out over an input is refused.
    let o = edgebench(&["recommend", file, "--out", file], &[]);
    assert_eq!(o.status.code(), Some(2));
}

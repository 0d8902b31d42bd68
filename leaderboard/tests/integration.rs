//! The leaderboard end to end on generated results: tiers T0–T3 from real signatures, the hostile-submission
//! corpus (each rejected with its reason), claims in tiers.json, and the site (deterministic, escaped, rendered in
//! headless Chromium).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use edgebench_core::metrics::Better;
use edgebench_core::results::*;
use edgebench_core::{BackendFacts, WeightsCheck};
use edgebench_leaderboard::envelope::{self, Predicate};
use edgebench_leaderboard::keys::key_id;
use edgebench_leaderboard::tiers::Tier;
use edgebench_leaderboard::verify::{verify, Verification};
use edgebench_leaderboard::{sha256_hex, submit};

const MODEL_SHA: &str = "b179aa0000000000000000000000000000000000000000000000000000000001";
const FP: &str = "wfp1:6c975fb4";
const SUITE_SHA: &str = "5017e00000000000000000000000000000000000000000000000000000000002";

fn metric(unit: &str, better: Better, samples: Vec<f64>) -> Metric {
    Metric { unit: unit.into(), better, summary: edgebench_stats::summarize(&samples), samples }
}

/// A finished run of one native cell: decode `d` t/s (±1%), prefill 4d, a 20-token prompt.
fn results(run_id: &str, cpu: &str, d: f64) -> RunResults {
    let wiggle = [0.99, 1.0, 1.01, 1.005, 0.995];
    let s = |x: f64| wiggle.iter().map(|w| x * w).collect::<Vec<f64>>();
    let mut metrics = BTreeMap::new();
    metrics.insert("decode_tps".into(), metric("tok/s", Better::Higher, s(d)));
    metrics.insert("itl_ms".into(), metric("ms", Better::Lower, s(1000.0 / d)));
    metrics.insert("prefill_tps".into(), metric("tok/s", Better::Higher, s(4.0 * d)));
    metrics.insert("ttft_ms".into(), metric("ms", Better::Lower, s(20.0 / (4.0 * d) * 1000.0)));
    metrics.insert("peak_rss_mib".into(), metric("MiB", Better::Lower, vec![200.0]));
    metrics.insert("kld_mean".into(), metric("nats", Better::Lower, vec![0.003]));
    let key = CellKey {
        model: "smol".into(),
        backend: "native".into(),
        device: "cpu".into(),
        threads: 2,
        workload: "chat".into(),
    };
    let mut cell = CellResult::new(key, CellStatus::Ok);
    cell.metrics = metrics;
    cell.sample_output = Some("The sky <script>alert(1)</script> is blue".into());
    cell.backend = Some(BackendFacts {
        context_length: 8192,
        weights: Some(WeightsCheck { fingerprint: FP.into(), source: FP.into(), how: "as stored".into() }),
        ..Default::default()
    });
    RunResults {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.into(),
        started_at: "2026-12-03T10:00:00Z".into(),
        finished_at: Some("2026-12-03T10:01:00Z".into()),
        manifest: Manifest {
            edgebench_version: "0.1.0".into(),
            binary_sha256: Some("ab".repeat(32)),
            suite: SuiteRef { name: "quick".into(), sha256: SUITE_SHA.into(), ..Default::default() },
            ..Default::default()
        },
        device: DeviceFingerprint {
            cpu_model: cpu.into(),
            arch: "x86_64".into(),
            logical_cpus: 2,
            isa_features: vec!["avx2".into()],
            ..Default::default()
        },
        models: BTreeMap::from([(
            "smol".to_string(),
            ModelInfo { id: "smol".into(), sha256: MODEL_SHA.into(), file_bytes: 98_000_000, ..Default::default() },
        )]),
        cells: vec![cell],
    }
}

struct Board {
    dir: tempfile::TempDir,
    keys: BTreeMap<&'static str, SigningKey>,
}

impl Board {
    /// A leaderboard with keys alice, bob (submitters), mallory (revoked) and maint (maintainer); carol's key exists
    /// but is not listed.
    fn new(max_results_bytes: u64) -> Board {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("keys")).unwrap();
        let mut keys = BTreeMap::new();
        let mut list = String::new();
        for (i, (name, role, revoked)) in [
            ("alice", "submitter", None),
            ("bob", "submitter", None),
            ("mallory", "submitter", Some("2026-12-02: key published by mistake")),
            ("maint", "maintainer", None),
            ("carol", "", None),
        ]
        .into_iter()
        .enumerate()
        {
            let k = SigningKey::from_bytes(&[i as u8 + 1; 32]);
            if !role.is_empty() {
                use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey};
                std::fs::write(
                    d.join(format!("keys/{name}.pub")),
                    k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
                )
                .unwrap();
                list += &format!("[[key]]\nname = \"{name}\"\nfile = \"{name}.pub\"\nrole = \"{role}\"\n");
                if let Some(r) = revoked {
                    list += &format!("revoked = \"{r}\"\n");
                }
            }
            let p = d.join(format!("{name}.key"));
            use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
            std::fs::write(&p, k.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
            keys.insert(name, k);
        }
        std::fs::write(d.join("keys/keys.toml"), list).unwrap();
        std::fs::write(
            d.join("policy.toml"),
            format!(
                "edgebench_versions = [\"0.1.0\"]\nmax_results_bytes = {max_results_bytes}\n\
                 [[model]]\nname = \"SmolLM2 Q4_1\"\nsha256 = \"{MODEL_SHA}\"\nweight_fingerprint = \"{FP}\"\nmax_kld = 0.05\n\
                 [[suite]]\nname = \"quick\"\nsha256 = \"{SUITE_SHA}\"\n\
                 [[bandwidth]]\ncpu = \"EPYC\"\ngb_per_s = 460\nsource = \"test figure\"\n\
                 [[bandwidth]]\ncpu = \"Xeon\"\ngb_per_s = 300\nsource = \"test figure\"\n"
            ),
        )
        .unwrap();
        Board { dir, keys }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `edgebench submit` as `signer`.
    fn submit(&self, r: &RunResults, signer: &str, device: &str) -> PathBuf {
        self.submit_as(r, signer, device, None)
    }

    fn submit_as(&self, r: &RunResults, signer: &str, device: &str, reproduces: Option<(&str, &str)>) -> PathBuf {
        let tmp = self.path().join(format!("in-{}-{signer}.json", r.run_id));
        std::fs::write(&tmp, serde_json::to_string_pretty(r).unwrap()).unwrap();
        let key = self.path().join(format!("{signer}.key"));
        let req = submit::Request {
            results: &tmp,
            key: &key,
            signer,
            leaderboard: self.path(),
            device: Some(device),
            reproduces,
            edgebench: ("0.1.0", "cd"),
        };
        submit::submit(&req).unwrap().0
    }

    /// Signs raw bytes as `submissions/<device>/<name>` (for files `submit` would refuse to sign).
    fn sign_raw(&self, device: &str, name: &str, bytes: &[u8], signer: &str, subject: &str) {
        let folder = self.path().join("submissions").join(device);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(name), bytes).unwrap();
        let p = Predicate {
            kind: "submission".into(),
            signer: signer.into(),
            edgebench_version: "0.1.0".into(),
            edgebench_sha256: "cd".into(),
            reproduces: None,
        };
        let env = envelope::sign(&envelope::statement(subject, &sha256_hex(bytes), p), &self.keys[signer]);
        std::fs::write(folder.join(name.replace(".json", ".dsse.json")), serde_json::to_string(&env).unwrap()).unwrap();
    }

    fn verify(&self) -> Verification {
        verify(self.path()).unwrap()
    }
}

fn tier_of(v: &Verification, rel: &str) -> (Tier, String) {
    let e = v.entries.iter().find(|e| e.rel == rel).unwrap_or_else(|| panic!("{rel} not listed: {:#?}", v.entries));
    (e.tier, e.reasons.join(" | "))
}

#[test]
fn tiers_from_t0_to_t3_and_claims() {
    let b = Board::new(16 << 20);
    b.submit(&results("r1", "AMD EPYC 9R14", 100.0), "alice", "epyc");
    b.submit(&results("r2", "AMD EPYC 9R14", 101.0), "bob", "epyc");
    b.submit(&results("r3", "AMD EPYC 9R14", 99.0), "carol", "epyc");
    b.submit(&results("r4", "Intel Xeon 8488C", 120.0), "alice", "xeon");
    let mut unregistered_suite = results("r5", "AMD EPYC 9R14", 100.5);
    unregistered_suite.manifest.suite.sha256 = "00".repeat(32);
    b.submit(&unregistered_suite, "alice", "epyc");
    let mut too_fast = results("r6", "AMD EPYC 9R14", 6000.0);
    too_fast.run_id = "r6".into();
    b.submit(&too_fast, "bob", "epyc");
    let v = b.verify();
    assert_eq!(tier_of(&v, "submissions/epyc/r1.json").0, Tier::T2, "{:#?}", v.entries);
    assert_eq!(tier_of(&v, "submissions/epyc/r2.json").0, Tier::T2);
    let (t, why) = tier_of(&v, "submissions/epyc/r3.json");
    assert!(t == Tier::T0 && why.contains("not in keys/keys.toml"), "{why}");
    let (t, why) = tier_of(&v, "submissions/xeon/r4.json");
    assert!(t == Tier::T1 && why.contains("T2: 0 other key(s)"), "{why}");
    let (t, why) = tier_of(&v, "submissions/epyc/r5.json");
    assert!(t == Tier::T0 && why.contains("suite \"quick\"") && why.contains("not registered"), "{why}");
    let (t, why) = tier_of(&v, "submissions/epyc/r6.json");
    assert!(t == Tier::T0 && why.contains("GB/s"), "{why}");
    assert!(tier_of(&v, "submissions/epyc/r1.json").1.contains("T3: no maintainer"));
    assert!(!v.failed(), "{:?}", v.unmet_claims);

    // Tier 3: the maintainer re-runs what the beacon draws (one group here: all of them).
    let r1 = b.path().join("submissions/epyc/r1.json");
    let r1_results = edgebench_runner::results_io::read(&r1).unwrap();
    let drawn =
        edgebench_leaderboard::reproduce::sample(&r1_results, &sha256_hex(&std::fs::read(&r1).unwrap()), "beacon-1", 2);
    assert_eq!(drawn.len(), 1);
    b.submit_as(&results("m1", "AMD EPYC 9R14", 100.4), "maint", "x", Some(("submissions/epyc/r1.json", "beacon-1")));
    // bob's r2 re-run comes out 30% slower: reproduction usable, no tier 3.
    b.submit_as(&results("m2", "AMD EPYC 9R14", 70.0), "maint", "x", Some(("submissions/epyc/r2.json", "beacon-1")));
    // A reproduction signed by a submitter's key is rejected.
    b.submit_as(&results("m3", "AMD EPYC 9R14", 100.0), "alice", "x", Some(("submissions/epyc/r2.json", "beacon-1")));
    let v = b.verify();
    assert_eq!(tier_of(&v, "submissions/epyc/r1.json").0, Tier::T3, "{:#?}", v.reproductions);
    let (t, why) = tier_of(&v, "submissions/epyc/r2.json");
    assert!(t == Tier::T2 && why.contains("T3:") && why.contains("Regressed"), "{why}");
    let bad = v.reproductions.iter().find(|r| r.rel.ends_with("m3.json")).unwrap();
    assert!(!bad.ok && bad.reasons[0].contains("not a maintainer"), "{bad:?}");
    assert!(v.failed());
    std::fs::remove_dir_all(b.path().join("reproductions/epyc/r2")).unwrap();

    // Claims: record, then revoke bob: r2 is rejected and its recorded T2 is an unmet claim.
    let v = b.verify();
    assert!(!v.failed());
    v.recorded().write(b.path()).unwrap();
    assert!(!b.verify().failed());
    let keys = std::fs::read_to_string(b.path().join("keys/keys.toml")).unwrap();
    let revoked = keys.replace(
        "file = \"bob.pub\"\nrole = \"submitter\"\n",
        "file = \"bob.pub\"\nrole = \"submitter\"\nrevoked = \"2026-12-03: lost\"\n",
    );
    assert_ne!(keys, revoked);
    std::fs::write(b.path().join("keys/keys.toml"), revoked).unwrap();
    let v = b.verify();
    let (t, why) = tier_of(&v, "submissions/epyc/r2.json");
    assert!(t == Tier::Rejected && why.contains("revoked"), "{why}");
    assert!(
        v.unmet_claims.iter().any(|u| u.contains("r2.json") && u.contains("recorded as T2")),
        "{:?}",
        v.unmet_claims
    );
    // alice's r1 lost its corroborating key: T1 now, below its recorded T3.
    assert_eq!(tier_of(&v, "submissions/epyc/r1.json").0, Tier::T1);
    assert!(v.failed());
}

#[test]
fn the_hostile_corpus_is_rejected_with_reasons() {
    let b = Board::new(4 << 20);
    let good = b.submit(&results("good", "AMD EPYC 9R14", 100.0), "alice", "epyc");
    let pretty = |r: &RunResults| serde_json::to_string_pretty(r).unwrap();
    let mut cases: Vec<(&str, &str)> = Vec::new();

    // Forged: signed by carol, claiming alice's key id.
    b.submit(&results("forged", "AMD EPYC 9R14", 100.0), "carol", "forged");
    let envp = b.path().join("submissions/forged/forged.dsse.json");
    let mut env: envelope::Envelope = serde_json::from_str(&std::fs::read_to_string(&envp).unwrap()).unwrap();
    env.signatures[0].keyid = key_id(&b.keys["alice"].verifying_key());
    std::fs::write(&envp, serde_json::to_string(&env).unwrap()).unwrap();
    cases.push(("submissions/forged/forged.json", "forged signature"));
    // Missing signature.
    b.submit(&results("unsigned", "AMD EPYC 9R14", 100.0), "alice", "unsigned");
    std::fs::remove_file(b.path().join("submissions/unsigned/unsigned.dsse.json")).unwrap();
    cases.push(("submissions/unsigned/unsigned.json", "missing signature"));
    // Changed after signing.
    let p = b.submit(&results("changed", "AMD EPYC 9R14", 100.0), "alice", "changed");
    let text = std::fs::read_to_string(&p).unwrap().replacen("\"hostname\": \"\"", "\"hostname\": \"elsewhere\"", 1);
    std::fs::write(&p, text).unwrap();
    cases.push(("submissions/changed/changed.json", "changed after signing"));
    // Revoked key.
    b.submit(&results("revoked", "AMD EPYC 9R14", 100.0), "mallory", "revoked");
    cases.push(("submissions/revoked/revoked.json", "revoked key"));
    // Replay of alice's file under bob's key; and alice's samples with the run id edited, under bob's key.
    b.sign_raw("replay", "good.json", &std::fs::read(&good).unwrap(), "bob", "good.json");
    cases.push(("submissions/replay/good.json", "replay: the same results file"));
    let mut copied = results("good", "AMD EPYC 9R14", 100.0);
    copied.run_id = "mine".into();
    b.sign_raw("replay2", "mine.json", pretty(&copied).as_bytes(), "bob", "mine.json");
    cases.push(("submissions/replay2/mine.json", "replay: the same raw samples"));
    // mallory's (revoked) file re-signed by bob: still a replay.
    let m = b.path().join("submissions/revoked/revoked.json");
    b.sign_raw("replay3", "revoked.json", &std::fs::read(&m).unwrap(), "bob", "revoked.json");
    cases.push(("submissions/replay3/revoked.json", "replay: the same results file"));
    // Names: an envelope signing a path, a link, a folder with an unsafe name.
    let r = pretty(&results("trav", "AMD EPYC 9R14", 100.0));
    b.sign_raw("trav", "trav.json", r.as_bytes(), "alice", "../../keys/keys.toml");
    cases.push(("submissions/trav/trav.json", "the envelope signs \"../../keys/keys.toml\""));
    b.sign_raw("abs", "abs.json", pretty(&results("abs", "AMD EPYC 9R14", 100.0)).as_bytes(), "alice", "/etc/passwd");
    cases.push(("submissions/abs/abs.json", "the envelope signs \"/etc/passwd\""));
    std::fs::create_dir_all(b.path().join("submissions/link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", b.path().join("submissions/link/passwd.json")).unwrap();
    cases.push(("submissions/link/passwd.json", "symbolic link"));
    std::fs::create_dir_all(b.path().join("submissions/..dots")).unwrap();
    cases.push(("submissions/..dots", "not a plain name"));
    // Oversized (the policy's 4 MiB).
    let mut big = results("big", "AMD EPYC 9R14", 100.0);
    big.cells[0].stderr_tail = Some("x".repeat(5 << 20));
    b.sign_raw("big", "big.json", pretty(&big).as_bytes(), "alice", "big.json");
    cases.push(("submissions/big/big.json", "larger than the 4 MiB"));
    // Deeply nested JSON, NaN, an infinite number.
    let nested = r.replacen("\"workload\": null", &format!("\"workload\": {}{}", "[".repeat(300), "]".repeat(300)), 1);
    assert_ne!(nested, r);
    b.sign_raw("nested", "nested.json", nested.as_bytes(), "alice", "nested.json");
    cases.push(("submissions/nested/nested.json", "recursion limit"));
    let decode = format!("{}", 100.0 * 0.99);
    assert!(r.contains(&decode));
    b.sign_raw("nan", "nan.json", r.replacen(&decode, "NaN", 1).as_bytes(), "alice", "nan.json");
    cases.push(("submissions/nan/nan.json", "not an edgebench results file"));
    b.sign_raw("inf", "inf.json", r.replacen(&decode, "1e999", 1).as_bytes(), "alice", "inf.json");
    cases.push(("submissions/inf/inf.json", "number out of range"));
    // Markup in a device field.
    b.submit(&results("html", "<script>alert(1)</script>", 100.0), "alice", "html");
    cases.push(("submissions/html/html.json", "markup in device.cpu_model"));
    // A stored summary contradicting its samples.
    let mut lie = results("lie", "AMD EPYC 9R14", 100.0);
    lie.cells[0].metrics.get_mut("decode_tps").unwrap().summary.median = 500.0;
    b.sign_raw("lie", "lie.json", pretty(&lie).as_bytes(), "alice", "lie.json");
    cases.push(("submissions/lie/lie.json", "stored summary contradicts"));
    // An unregistered model.
    let mut other = results("other", "AMD EPYC 9R14", 100.0);
    other.models.get_mut("smol").unwrap().sha256 = "ff".repeat(32);
    b.submit(&other, "alice", "other");
    cases.push(("submissions/other/other.json", "unregistered model hash"));
    // Metrics that contradict each other: decode twice what the inter-token latency says.
    let mut fast = results("fast", "AMD EPYC 9R14", 100.0);
    let m = fast.cells[0].metrics.get_mut("decode_tps").unwrap();
    *m = metric("tok/s", Better::Higher, m.samples.iter().map(|x| x * 2.0).collect());
    b.submit(&fast, "alice", "fast");

    let v = b.verify();
    for (rel, why) in &cases {
        let (t, reasons) = tier_of(&v, rel);
        assert_eq!(t, Tier::Rejected, "{rel}: {reasons}");
        assert!(reasons.contains(why), "{rel}: expected {why:?} in {reasons:?}");
    }
    let (t, why) = tier_of(&v, "submissions/fast/fast.json");
    assert!(t == Tier::T0 && why.contains("disagrees with the median inter-token latency"), "{why}");
    assert_eq!(
        tier_of(&v, "submissions/epyc/good.json").0,
        Tier::Rejected,
        "no tiers.json: both copies of a replay are"
    );
    assert!(v.failed());
    // With the original published first (tiers.json), it keeps its place and only the replays are rejected.
    std::fs::write(b.path().join("tiers.json"), "{\"tiers\": {\"submissions/epyc/good.json\": \"T1\"}}").unwrap();
    let v = b.verify();
    assert_eq!(tier_of(&v, "submissions/epyc/good.json").0, Tier::T1);
    assert_eq!(tier_of(&v, "submissions/replay/good.json").0, Tier::Rejected);

    // The site builds over the whole corpus, escapes what it shows and is byte-identical twice.
    let policy = edgebench_leaderboard::policy::Policy::read(b.path()).unwrap();
    let out1 = tempfile::tempdir().unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let f1 = edgebench_leaderboard::site::build(&v, &policy, out1.path()).unwrap();
    let f2 = edgebench_leaderboard::site::build(&b.verify(), &policy, out2.path()).unwrap();
    assert_eq!(f1, f2);
    for f in &f1 {
        let a = std::fs::read(out1.path().join(f)).unwrap();
        assert_eq!(a, std::fs::read(out2.path().join(f)).unwrap(), "{f} differs between two builds");
        let t = String::from_utf8(a).unwrap();
        assert!(!t.contains("<script"), "{f} holds a script");
        assert!(!t.contains("src=\"http") && !t.contains("<link"), "{f} fetches something");
    }
    let index = std::fs::read_to_string(out1.path().join("index.html")).unwrap();
    assert!(index.contains("&lt;script&gt;") || !index.contains("alert(1)"), "markup shown raw");
    assert!(index.contains("rejected") && index.contains("replay"));
}

#[test]
#[ignore = "needs headless Chromium (`.ci/run` installs it and runs this)"]
fn the_site_renders_in_chromium() {
    let b = Board::new(16 << 20);
    b.submit(&results("r1", "AMD EPYC 9R14", 100.0), "alice", "epyc");
    b.submit(&results("r2", "AMD EPYC 9R14", 101.0), "bob", "epyc");
    b.submit(&results("r3", "AMD EPYC 9R14", 98.0), "carol", "epyc");
    let v = b.verify();
    let policy = edgebench_leaderboard::policy::Policy::read(b.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let files = edgebench_leaderboard::site::build(&v, &policy, out.path()).unwrap();
    let board = files.iter().find(|f| f.starts_with("board-") && !f.ends_with("-all.html")).unwrap();
    for f in ["index.html", board.as_str()] {
        let html = std::fs::read_to_string(out.path().join(f)).unwrap();
        let shown = edgebench_testkit::chromium::render_in_chromium(&html, "1400,1000");
        assert!(shown.console.is_empty(), "{f}: {:?}", shown.console);
        assert!(shown.png.len() > 5000, "{f}: screenshot of {} bytes", shown.png.len());
        assert!(shown.dom.contains("T2"), "{f}");
    }
    let html = std::fs::read_to_string(out.path().join(board)).unwrap();
    assert!(html.contains("<svg"), "the board draws its chart");
}

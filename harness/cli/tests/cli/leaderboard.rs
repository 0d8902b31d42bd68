//! `edgebench keygen`, `submit` and `leaderboard verify | build | sample` end to end on a mock run: exit codes (0
//! clean, 1 rejected or below its recorded tier, 2 a broken leaderboard), never overwriting, strict policy keys.

use std::path::Path;

use crate::common::*;

fn board(dir: &Path, r: &serde_json::Value) -> std::path::PathBuf {
    let b = dir.join("board");
    std::fs::create_dir_all(b.join("keys")).unwrap();
    let sha = r["models"]["ok"]["sha256"].as_str().unwrap();
    let fp = r["cells"][0]["backend"]["weights"]["source"].as_str().unwrap_or("none");
    let suite = r["manifest"]["suite"]["sha256"].as_str().unwrap();
    std::fs::write(
        b.join("policy.toml"),
        format!(
            "edgebench_versions = [\"{}\"]\n[[model]]\nname = \"tiny\"\nsha256 = \"{sha}\"\nweight_fingerprint = \"{fp}\"\n\
             max_kld = 0.05\n[[suite]]\nname = \"tiny\"\nsha256 = \"{suite}\"\n[[bandwidth]]\ncpu = \"\"\ngb_per_s = 1000\nsource = \"test\"\n",
            r["manifest"]["edgebench_version"].as_str().unwrap()
        ),
    )
    .unwrap();
    b
}

#[test]
fn keygen_submit_verify_build_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_mock(dir.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let r = results(&out);
    assert_eq!(r["manifest"]["binary_sha256"].as_str().unwrap().len(), 64, "the binary's SHA-256 is in the manifest");
    let b = board(dir.path(), &r);
    let key = dir.path().join("alice.key");
    let o = edgebench(&["keygen", key.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("key id ed25519:"), "{}", text(&o));
    std::fs::copy(dir.path().join("alice.key.pub"), b.join("keys/alice.pub")).unwrap();
    std::fs::write(b.join("keys/keys.toml"), "[[key]]\nname = \"alice\"\nfile = \"alice.pub\"\nrole = \"submitter\"\n")
        .unwrap();
    let submit = |extra: &[&str]| {
        // No --signer: the key file's name (alice.key → alice), as keys.toml lists it.
        let mut a = vec!["submit", out.to_str().unwrap(), "--key", key.to_str().unwrap()];
        a.extend(["--leaderboard", b.to_str().unwrap(), "--device-name", "dev1"]);
        a.extend(extra);
        edgebench(&a, &[])
    };
    let o = submit(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let sub = String::from_utf8_lossy(&o.stdout).lines().next().unwrap().to_string();
    assert!(sub.ends_with(".json") && sub.contains("submissions/dev1/"), "{sub}");
    let o = submit(&[]);
    assert_eq!(o.status.code(), Some(2), "a second submit of the same run is refused: {}", text(&o));
    assert!(text(&o).contains("never overwritten"), "{}", text(&o));

    let verify = |extra: &[&str]| {
        let mut a = vec!["leaderboard", "verify", b.to_str().unwrap()];
        a.extend(extra);
        edgebench(&a, &[])
    };
    let o = verify(&["--record"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("1 submissions") && t.contains("0 rejected"), "{t}");
    let tiers = std::fs::read_to_string(b.join("tiers.json")).unwrap();
    assert!(tiers.contains("submissions/dev1/"), "{tiers}");
    let site = dir.path().join("site");
    let o = edgebench(&["leaderboard", "build", b.to_str().unwrap(), "--out", site.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(site.join("index.html").is_file());
    let rel = format!("submissions/dev1/{}", Path::new(&sub).file_name().unwrap().to_str().unwrap());
    let o = edgebench(&["leaderboard", "sample", b.to_str().unwrap(), &rel, "--beacon", "b1"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("edgebench run --suite tiny") && text(&o).contains("--backend mock"), "{}", text(&o));

    // Changed after signing: rejected, and below its recorded tier: exit 1.
    let t = std::fs::read_to_string(&sub).unwrap();
    std::fs::write(&sub, t.replacen("\"run_id\"", "\"run_id\" ", 1)).unwrap();
    let o = verify(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("rejected") && t.contains("changed after signing") && t.contains("UNMET"), "{t}");

    // A broken leaderboard is an error naming the file and key: exit 2.
    let p = b.join("policy.toml");
    let policy = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("colour = \"red\"\n{policy}")).unwrap();
    let o = verify(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("policy.toml") && text(&o).contains("colour"), "{}", text(&o));
    std::fs::remove_file(&p).unwrap();
    let o = verify(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("policy.toml"), "{}", text(&o));
}

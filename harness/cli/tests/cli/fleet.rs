//! A fleet for real on one machine: three sshd instances on 127.0.0.2–4, each a "device" with its own user and home,
//! driven by `fleet plan` → `ansible-playbook` → `fleet collect`; a device lost mid-run, two fleet runs sharing a
//! device (the lock serialises them), a merged report and a gate per device, and a real quick-suite run of the
//! default model on one device. Needs root, `/usr/sbin/sshd`, `ssh-keygen` and `ansible-playbook` (`ANSIBLE_PLAYBOOK`
//! or PATH): `ci/fleet-test.sh` installs them and runs it; `cargo test` skips it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::*;

/// Everything the test started, ended on drop (pass or fail).
struct Lab {
    sshd: Vec<Option<Child>>,
    users: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.sshd.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for u in &self.users {
            let _ = Command::new("pkill").args(["-KILL", "-u", u]).status();
        }
    }
}

fn sh(cmd: &str) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", text(&o));
}

fn start_sshd(dir: &Path, i: usize, user: &str) -> Child {
    let key = dir.join(format!("host{i}"));
    if !key.exists() {
        sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {}", key.display()));
    }
    let conf = dir.join(format!("sshd{i}.conf"));
    std::fs::write(
        &conf,
        format!(
            "Port 2222\nListenAddress 127.0.0.{}\nHostKey {}\nPidFile {}/sshd{i}.pid\nAuthorizedKeysFile {}/authorized_keys\n\
             AllowUsers {user}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             MaxSessions 50\nMaxStartups 50\n",
            i + 1,
            key.display(),
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    let log = dir.join(format!("sshd{i}.log"));
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-E", log.to_str().unwrap(), "-f", conf.to_str().unwrap()])
        .spawn()
        .unwrap();
    // Ready when the port accepts connections.
    let t0 = Instant::now();
    while std::net::TcpStream::connect((format!("127.0.0.{}", i + 1).as_str(), 2222)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "sshd {i} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn ansible(dir: &Path, run: &Path) -> std::process::Output {
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ci/fleet/playbook.yml");
    let bin = std::env::var("ANSIBLE_PLAYBOOK").unwrap_or_else(|_| "ansible-playbook".into());
    Command::new(bin)
        .args(["-i", run.join("inventory.json").to_str().unwrap(), playbook.to_str().unwrap()])
        .args(["-e", &format!("fleet_dir={}", run.display())])
        .args([
            "-e",
            "fleet_ssh_extra='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ServerAliveInterval=2'",
        ])
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-local"))
        .env(
            "ANSIBLE_SSH_ARGS",
            "-o ControlMaster=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ServerAliveInterval=2 \
             -o ServerAliveCountMax=3",
        )
        .output()
        .unwrap()
}

fn fleet_file(dir: &Path, name: &str, devices: &[(usize, &str)], extra: &str) -> PathBuf {
    let mut t = format!(
        "[fleet]\nsuite = \"tiny.toml\"\nbackends = [\"mock\"]\nthreads = [1]\nmodels = [\"ok.gguf\"]\n\
         extra_args = [\"--drift\", \"off\"]\n{extra}\n[binaries]\nx86_64 = \"{}\"\n",
        env!("CARGO_BIN_EXE_edgebench")
    );
    for (i, opts) in devices {
        t.push_str(&format!(
            "[[device]]\nname = \"dev{i}\"\naddress = \"127.0.0.{}\"\nport = 2222\nuser = \"ebfleet{i}\"\n\
             ssh_key = \"{}/id\"\narch = \"{}\"\nremote_dir = \"/home/ebfleet{i}/eb\"\nlock = \"/home/ebfleet{i}/eb.lock\"\n{opts}\n",
            i + 1,
            dir.display(),
            std::env::consts::ARCH
        ));
    }
    let p = dir.join(name);
    std::fs::write(&p, t).unwrap();
    p
}

fn plan(fleet: &Path, out: &Path) {
    let o = edgebench(&["fleet", "plan", fleet.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ansible-playbook -i"), "{}", text(&o));
}

fn index(run: &Path) -> serde_json::Value {
    results(&run.join("fleet.json"))
}

fn device<'a>(ix: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    ix["devices"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap()
}

#[test]
#[ignore = "needs root, sshd and ansible-playbook; ci/fleet-test.sh sets them up and runs it"]
fn a_fleet_of_three_devices_through_ansible() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "run as root (it makes users and starts sshd)");
    let tmp = tempfile::Builder::new().prefix("edgebench-fleet-").tempdir_in("/tmp").unwrap();
    let dir = tmp.path();
    sh(&format!("chmod 755 {}", dir.display()));
    sh("mkdir -p /run/sshd");
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {}/id", dir.display()));
    sh(&format!("cp {0}/id.pub {0}/authorized_keys && chmod 644 {0}/authorized_keys", dir.display()));
    let mut lab = Lab { sshd: Vec::new(), users: Vec::new() };
    for i in 1..=3 {
        let user = format!("ebfleet{i}");
        // A password of `*` (no password login, but not a locked account, which sshd refuses).
        sh(&format!("id {user} >/dev/null 2>&1 || useradd -m -s /bin/sh {user}; usermod -p '*' {user}"));
        sh(&format!("rm -rf /home/{user}/eb /home/{user}/eb.lock"));
        lab.users.push(user.clone());
        lab.sshd.push(Some(start_sshd(dir, i, &user)));
    }
    // The tiny model and suite of the CLI tests; dev2 is slow (3 s per run) so it can be lost mid-run; dev3's
    // fleet entry claims 64 CPUs, so collect must flag it as mislabelled.
    model(dir, "ok", &[]);
    suite(dir);
    let fleet = fleet_file(
        dir,
        "fleet.toml",
        &[
            (1, ""),
            (2, "extra_args = [\"--drift\", \"off\", \"--backend-opt\", \"decode_us=20000\"]"),
            (3, "cores = 64"),
        ],
        "",
    );
    let run1 = dir.join("run1");
    plan(&fleet, &run1);
    let o = ansible(dir, &run1);
    assert!(o.status.success(), "{}", text(&o));
    let o = edgebench(&["fleet", "collect", run1.to_str().unwrap()], &[]);
    eprintln!("fleet collect run1:\n{}", text(&o));
    assert_eq!(o.status.code(), Some(2), "dev3 is mislabelled: {}", text(&o));
    let ix = index(&run1);
    assert_eq!(device(&ix, "dev1")["status"], "ok", "{ix}");
    assert_eq!(device(&ix, "dev2")["status"], "ok", "{ix}");
    assert_eq!(device(&ix, "dev3")["status"], "mislabelled");
    assert!(device(&ix, "dev3")["reasons"][0].as_str().unwrap().contains("but the fleet file says 64"));
    assert!(ix["ansible_version"].as_str().unwrap().starts_with("2."), "{ix}");
    for d in ["dev1", "dev2", "dev3"] {
        let r = results(&run1.join(format!("results/{d}/results.json")));
        assert_eq!(r["cells"][0]["status"], "ok", "{d}: {r}");
    }
    // One report with every device, and a gate applied per device.
    let fx = run1.join("fleet.json");
    let o = edgebench(&["report", fx.to_str().unwrap(), "--format", "markdown"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    for d in ["dev1: ", "dev2: ", "dev3: "] {
        assert!(text(&o).contains(d), "{d} in the report: {}", text(&o));
    }
    let o = edgebench(&["gate", "--baseline", fx.to_str().unwrap(), "--current", fx.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("== device dev2: compared"), "{}", text(&o));
    // recommend reads the fleet index too: one source per device.
    let o = edgebench(&["recommend", fx.to_str().unwrap()], &[]);
    assert!(o.status.success() && text(&o).contains("fleet.json (dev3)"), "{}", text(&o));

    // A device lost mid-run: dev2's sshd and every process of its user are killed while it measures; the others
    // finish and dev2's cells are failed with the reason.
    let run2 = dir.join("run2");
    let fleet2 = fleet_file(
        dir,
        "fleet2.toml",
        &[(1, ""), (2, "extra_args = [\"--drift\", \"off\", \"--backend-opt\", \"decode_us=200000\"]"), (3, "")],
        "",
    );
    plan(&fleet2, &run2);
    let playbook = {
        let dir = dir.to_path_buf();
        let run2 = run2.clone();
        std::thread::spawn(move || ansible(&dir, &run2))
    };
    let t0 = Instant::now();
    loop {
        let busy = Command::new("pgrep").args(["-u", "ebfleet2", "-f", "eb/edgebench run"]).output().unwrap();
        if busy.status.success() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "dev2 never started measuring");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    if let Some(mut c) = lab.sshd[1].take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    sh("pkill -KILL -u ebfleet2 || true");
    // The playbook records the lost device (in its rescue) and finishes the others.
    let _ = playbook.join().unwrap();
    let o = edgebench(&["fleet", "collect", run2.to_str().unwrap()], &[]);
    eprintln!("fleet collect run2 (dev2 lost mid-run):\n{}", text(&o));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let ix = index(&run2);
    assert_eq!(device(&ix, "dev1")["status"], "ok", "{ix}");
    assert_eq!(device(&ix, "dev3")["status"], "ok", "{ix}");
    let lost = device(&ix, "dev2");
    assert!(lost["status"] == "failed" || lost["status"] == "unreachable", "{lost}");
    assert!(lost["results"].is_null(), "{lost}");
    let o = edgebench(&["report", run2.join("fleet.json").to_str().unwrap()], &[]);
    assert!(text(&o).contains("device dev2 failed") || text(&o).contains("device dev2 unreachable"), "{}", text(&o));
    let o = edgebench(
        &["gate", "--baseline", fx.to_str().unwrap(), "--current", run2.join("fleet.json").to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "a lost device fails the gate: {}", text(&o));
    assert!(text(&o).contains("== device dev2: REGRESSED: no results this time"), "{}", text(&o));
    lab.sshd[1] = Some(start_sshd(dir, 2, "ebfleet2"));

    // Two fleet runs at once on dev1 (2 s each): the device's lock serialises them.
    let slow = "extra_args = [\"--drift\", \"off\", \"--backend-opt\", \"decode_us=60000\"]";
    let (fa, fb) = (fleet_file(dir, "fa.toml", &[(1, slow)], ""), fleet_file(dir, "fb.toml", &[(1, slow)], ""));
    let (ra, rb) = (dir.join("ra"), dir.join("rb"));
    plan(&fa, &ra);
    plan(&fb, &rb);
    // Each run needs its own working folder on the device, but both take the one lock.
    for (r, sub) in [(&ra, "eb-a"), (&rb, "eb-b")] {
        let p = r.join("inventory.json");
        let t = std::fs::read_to_string(&p).unwrap().replace("/home/ebfleet1/eb\"", &format!("/home/ebfleet1/{sub}\""));
        let t = t.replace("/home/ebfleet1/eb/", &format!("/home/ebfleet1/{sub}/"));
        std::fs::write(&p, t).unwrap();
    }
    let spawn = |r: PathBuf| {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || ansible(&dir, &r))
    };
    let (a, b) = (spawn(ra.clone()), spawn(rb.clone()));
    for o in [a.join().unwrap(), b.join().unwrap()] {
        assert!(o.status.success(), "{}", text(&o));
    }
    let span = |r: &Path| {
        let file = r.join("results/dev1/results.json");
        if !file.is_file() {
            let status = std::fs::read_to_string(r.join("status/dev1.json")).unwrap_or_default();
            panic!("no results from dev1 in {}; its status: {status}", r.display());
        }
        let j = results(&file);
        let t = |k: &str| humantime::parse_rfc3339(j[k].as_str().unwrap()).unwrap();
        (t("started_at"), t("finished_at"))
    };
    let ((sa, ea), (sb, eb)) = (span(&ra), span(&rb));
    let f = humantime::format_rfc3339_seconds;
    eprintln!("two fleet runs on dev1: {}..{} and {}..{}", f(sa), f(ea), f(sb), f(eb));
    assert!(ea <= sb || eb <= sa, "the two runs overlapped on dev1: {sa:?}..{ea:?} and {sb:?}..{eb:?}");

    // A real quick-suite run of the default model (fetched and verified on this controller) on one device.
    let real = dir.join("real.toml");
    std::fs::write(
        &real,
        format!(
            "[fleet]\nsuite = \"quick\"\nbackends = [\"native\"]\nthreads = [1]\n[binaries]\n{} = \"{}\"\n\
             [[device]]\nname = \"dev3\"\naddress = \"127.0.0.4\"\nport = 2222\nuser = \"ebfleet3\"\nssh_key = \"{}/id\"\n\
             arch = \"{0}\"\nremote_dir = \"/home/ebfleet3/eb-real\"\nlock = \"/home/ebfleet3/eb.lock\"\n",
            std::env::consts::ARCH,
            env!("CARGO_BIN_EXE_edgebench"),
            dir.display()
        ),
    )
    .unwrap();
    let rr = dir.join("real");
    plan(&real, &rr);
    let o = ansible(dir, &rr);
    assert!(o.status.success(), "{}", text(&o));
    let o = edgebench(&["fleet", "collect", rr.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let r = results(&rr.join("results/dev3/results.json"));
    let cell = &r["cells"][0];
    assert_eq!(cell["status"], "ok", "{cell}");
    assert!(cell["metrics"]["decode_tps"]["summary"]["median"].as_f64().unwrap() > 0.0);
    assert_eq!(cell["drift"]["status"], "measured", "the device built its own drift reference: {}", cell["drift"]);
    eprintln!(
        "real run on dev3: decode {:.1} t/s, prefill {:.1} t/s (debug build)",
        cell["metrics"]["decode_tps"]["summary"]["median"].as_f64().unwrap(),
        cell["metrics"]["prefill_tps"]["summary"]["median"].as_f64().unwrap()
    );
    drop(lab);
}

//! Test helpers: fake sysfs trees, a fixed meter, and running one test as an unprivileged user.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::{Meter, MeterInfo, Reading};

/// A fake filesystem root in a temporary directory.
pub struct Tree(tempfile::TempDir);

impl Tree {
    pub fn new() -> Tree {
        Tree(tempfile::tempdir().expect("temp dir"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Writes `text` (plus a newline, as sysfs does) to `rel` under the tree, creating directories.
pub fn write(t: &Tree, rel: &str, text: &str) {
    let p = t.path().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, format!("{text}\n")).unwrap();
}

/// A meter that always reads 1 J.
pub struct Fixed(pub MeterInfo);

impl Meter for Fixed {
    fn info(&self) -> &MeterInfo {
        &self.0
    }

    fn read(&mut self) -> Result<Reading, String> {
        Ok(Reading::Energy { joules: 1.0, wrap_joules: None })
    }
}

/// Makes `locked` unreadable and runs the ignored test `name` of this test binary as uid/gid 65534 (root cannot be
/// denied a read), with `EDGEBENCH_FAKE_SYSFS` pointing at `root`; asserts that it passed.
pub fn run_unprivileged(name: &str, root: &Path, locked: &[&Path]) {
    for f in locked {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    // The unprivileged user must reach the tree and the binary: open the directories, copy the binary in.
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        dirs.extend(std::fs::read_dir(&d).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    let exe = root.join("test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new(&exe);
    cmd.args([name, "--exact", "--include-ignored", "--test-threads=1"]).env("EDGEBENCH_FAKE_SYSFS", root);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("run the test binary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} as an unprivileged user failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "{name} did not run:\n{text}");
}

//! Control groups for constrained runs: each cell's child in a cgroup of its own with a memory limit and a CPU
//! quota (cgroup v2 where this process's group can delegate the controllers, else the v1 `memory` and `cpu`
//! hierarchies), read back when the child has ended (peak, page cache, major faults, OOM kills), then removed.

use std::path::{Path, PathBuf};

use edgebench_core::results::{CgroupReading, ResourceLimits};

/// The CFS period the CPU quota is expressed in (the kernel's default, 100 ms).
const CPU_PERIOD_US: u64 = 100_000;

/// Why a constrained run cannot be made here.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No hierarchy with the controller the limit needs.
    #[error("no cgroup {controller} controller here ({why}); the limit cannot be enforced, so the flag is refused")]
    NoController {
        /// `memory` or `cpu`.
        controller: &'static str,
        /// What was looked at.
        why: String,
    },
    /// A file of the hierarchy could not be written (not root, read-only mount, no delegation).
    #[error("cannot write {}: {source} (run as root, or in a container with a writable cgroup hierarchy)", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Which limits to set; at least one is present.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Memory limit, bytes.
    pub memory_bytes: Option<u64>,
    /// CPU quota in CPUs.
    pub cpu_quota: Option<f64>,
}

/// Where the controllers live.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    /// One unified group (v2) with `memory` and `cpu` delegated to its children.
    V2 { parent: PathBuf },
    /// Separate v1 hierarchies.
    V1 { memory: Option<PathBuf>, cpu: Option<PathBuf> },
}

/// How limits are enforced on this machine, found once per run.
#[derive(Debug, Clone)]
pub struct Enforcer {
    layout: Layout,
    limits: Limits,
}

/// One cell's group; removed on drop.
#[derive(Debug)]
pub struct CellGroup {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` files the child writes itself into before it executes.
    procs: Vec<PathBuf>,
    v2: bool,
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write { path: path.to_path_buf(), source })
}

/// This process's group in the hierarchy whose `/proc/self/cgroup` line matches `pick`, under `mount`.
fn own_group(proc_cgroup: &str, mount: &Path, pick: impl Fn(&str, &str) -> bool) -> Option<PathBuf> {
    proc_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, controllers, rel) = (f.next()?, f.next()?, f.next()?);
        pick(id, controllers).then(|| mount.join(rel.trim_start_matches('/')))
    })
}

impl Enforcer {
    /// Finds where `limits` can be enforced under `root` (`/sys/fs/cgroup`), checking that a group can be made
    /// there; an error says exactly why not (the run then refuses the flags, never runs unconstrained).
    pub fn new(root: &Path, limits: Limits) -> Result<Enforcer, CgroupError> {
        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let layout = Self::find(root, &proc_cgroup, limits)?;
        let e = Enforcer { layout, limits };
        // Prove it: make, limit and remove a group now rather than fail on the first cell.
        drop(e.group(&format!("edgebench-probe-{}", std::process::id()))?);
        Ok(e)
    }

    fn find(root: &Path, proc_cgroup: &str, limits: Limits) -> Result<Layout, CgroupError> {
        let v2 = own_group(proc_cgroup, root, |id, c| id == "0" && c.is_empty());
        if let Some(g) = v2.filter(|g| g.join("cgroup.subtree_control").exists()) {
            let have = std::fs::read_to_string(g.join("cgroup.controllers")).unwrap_or_default();
            let need = [limits.memory_bytes.map(|_| "memory"), limits.cpu_quota.map(|_| "cpu")];
            if need.iter().flatten().all(|c| have.split_whitespace().any(|h| h == *c)) {
                return Ok(Layout::V2 { parent: g });
            }
        }
        let v1 = |name: &'static str| -> Result<PathBuf, CgroupError> {
            let mount = root.join(name);
            own_group(proc_cgroup, &mount, |_, c| c.split(',').any(|x| x == name)).filter(|g| g.is_dir()).ok_or_else(
                || CgroupError::NoController {
                    controller: name,
                    why: format!(
                        "no v1 hierarchy at {} holding this process, and no v2 group with it delegated",
                        mount.display()
                    ),
                },
            )
        };
        Ok(Layout::V1 {
            memory: limits.memory_bytes.map(|_| v1("memory")).transpose()?,
            cpu: limits.cpu_quota.map(|_| v1("cpu")).transpose()?,
        })
    }

    /// The limits as recorded in the results.
    pub fn describe(&self) -> ResourceLimits {
        let mechanism = match &self.layout {
            Layout::V2 { parent } => format!("cgroup v2 under {}", parent.display()),
            Layout::V1 { memory, cpu } => {
                let c: Vec<&str> =
                    [memory.as_ref().map(|_| "memory"), cpu.as_ref().map(|_| "cpu")].into_iter().flatten().collect();
                format!("cgroup v1 ({})", c.join(", "))
            }
        };
        ResourceLimits { memory_bytes: self.limits.memory_bytes, cpu_quota: self.limits.cpu_quota, mechanism }
    }

    /// Makes the group `name` with the limits set (swap included in the memory limit where the kernel offers it,
    /// so a cell cannot escape it by swapping).
    pub fn group(&self, name: &str) -> Result<CellGroup, CgroupError> {
        let mut g = CellGroup { dirs: Vec::new(), procs: Vec::new(), v2: false };
        let mkdir = |g: &mut CellGroup, parent: &Path| -> Result<PathBuf, CgroupError> {
            let dir = parent.join(name);
            std::fs::create_dir(&dir).map_err(|source| CgroupError::Write { path: dir.clone(), source })?;
            g.dirs.push(dir.clone());
            g.procs.push(dir.join("cgroup.procs"));
            Ok(dir)
        };
        let quota = |q: f64| ((q * CPU_PERIOD_US as f64).round() as u64).max(1000);
        match &self.layout {
            Layout::V2 { parent } => {
                g.v2 = true;
                let dir = mkdir(&mut g, parent)?;
                if let Some(b) = self.limits.memory_bytes {
                    write(&dir.join("memory.max"), &b.to_string())?;
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
                if let Some(q) = self.limits.cpu_quota {
                    write(&dir.join("cpu.max"), &format!("{} {CPU_PERIOD_US}", quota(q)))?;
                }
            }
            Layout::V1 { memory, cpu } => {
                if let (Some(parent), Some(b)) = (memory, self.limits.memory_bytes) {
                    let dir = mkdir(&mut g, parent)?;
                    write(&dir.join("memory.limit_in_bytes"), &b.to_string())?;
                    if dir.join("memory.memsw.limit_in_bytes").exists() {
                        write(&dir.join("memory.memsw.limit_in_bytes"), &b.to_string())?;
                    }
                }
                if let (Some(parent), Some(q)) = (cpu, self.limits.cpu_quota) {
                    let dir = mkdir(&mut g, parent)?;
                    write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota(q).to_string())?;
                }
            }
        }
        Ok(g)
    }
}

fn stat_field(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl CellGroup {
    /// The `cgroup.procs` files a child writes `0` (itself) into after fork, before exec.
    pub fn procs_files(&self) -> &[PathBuf] {
        &self.procs
    }

    /// What the group recorded; call after the child ended.
    pub fn read(&self) -> CgroupReading {
        let mut r = CgroupReading::default();
        for dir in &self.dirs {
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            if self.v2 {
                let stat = read("memory.stat");
                r.peak_bytes = read("memory.peak").trim().parse().unwrap_or(0);
                r.page_cache_bytes = stat_field(&stat, "file").unwrap_or(0);
                r.mapped_file_bytes = stat_field(&stat, "file_mapped").unwrap_or(0);
                r.major_faults = stat_field(&stat, "pgmajfault").unwrap_or(0);
                let events = read("memory.events");
                r.oom_kills = stat_field(&events, "oom_kill").unwrap_or(0);
                r.limit_hits = stat_field(&events, "max").unwrap_or(0);
            } else if dir.join("memory.stat").exists() {
                let stat = read("memory.stat");
                r.peak_bytes = read("memory.max_usage_in_bytes").trim().parse().unwrap_or(0);
                r.page_cache_bytes = stat_field(&stat, "cache").unwrap_or(0);
                r.mapped_file_bytes = stat_field(&stat, "mapped_file").unwrap_or(0);
                r.major_faults = stat_field(&stat, "pgmajfault").unwrap_or(0);
                r.oom_kills = stat_field(&read("memory.oom_control"), "oom_kill").unwrap_or(0);
                r.limit_hits = read("memory.failcnt").trim().parse().unwrap_or(0);
            }
        }
        r
    }
}

impl Drop for CellGroup {
    fn drop(&mut self) {
        // The child and its process group are gone; the kernel may need a moment to release the group.
        for dir in self.dirs.iter().rev() {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// Moves the calling process into each of `procs` (`cgroup.procs` files). Called in a forked child before exec:
/// only async-signal-safe calls, no allocation (the paths are NUL-terminated C strings made before the fork).
///
/// # Safety
/// Must be called only where async-signal-safe functions may be called (a `pre_exec` closure).
pub unsafe fn join_in_child(procs: &[std::ffi::CString]) -> std::io::Result<()> {
    for p in procs {
        // SAFETY: open/write/close are async-signal-safe; `p` is a valid C string.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
        let err = std::io::Error::last_os_error();
        unsafe { libc::close(fd) };
        if n != 1 {
            return Err(err);
        }
    }
    Ok(())
}

/// Drops `path`'s clean pages from the page cache (`posix_fadvise(DONTNEED)`), so the next reader pays for
/// reading them, charged to its own group. Pages another process has mapped stay.
pub fn evict_from_page_cache(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

impl Enforcer {
    /// Whether a memory limit is set (its cells then start with the model file out of the page cache).
    pub fn limits_memory(&self) -> bool {
        self.limits.memory_bytes.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether constrained runs work here: `Err(reason)` where cgroups are not writable.
    fn available(limits: Limits) -> Result<Enforcer, String> {
        Enforcer::new(Path::new("/sys/fs/cgroup"), limits).map_err(|e| e.to_string())
    }

    #[test]
    fn own_group_reads_v1_and_v2_lines() {
        let pc = "4:memory:/process_api/abc\n3:cpu,cpuacct:/\n0::/user.slice\n";
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(
            own_group(pc, &root.join("memory"), |_, c| c.split(',').any(|x| x == "memory")),
            Some(PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"))
        );
        assert_eq!(
            own_group(pc, &root.join("cpu"), |_, c| c.split(',').any(|x| x == "cpu")),
            Some(PathBuf::from("/sys/fs/cgroup/cpu/"))
        );
        assert_eq!(
            own_group(pc, root, |id, c| id == "0" && c.is_empty()),
            Some(PathBuf::from("/sys/fs/cgroup/user.slice"))
        );
    }

    #[test]
    fn stat_fields_match_whole_keys() {
        let stat = "cache 4096\nmapped_file 0\npgmajfault 7\ntotal_pgmajfault 9\n";
        assert_eq!(stat_field(stat, "pgmajfault"), Some(7));
        assert_eq!(stat_field(stat, "cache"), Some(4096));
        assert_eq!(stat_field(stat, "rss"), None);
    }

    /// The v2 path on a fake tree (this project's machines expose v1 only): a delegating group is chosen, the cell's
    /// group gets `memory.max`, `memory.swap.max` and `cpu.max`, and the v2 counters are read by their v2 names.
    #[test]
    fn cgroup_v2_layout_on_a_fake_tree() {
        let root = tempfile::tempdir().unwrap();
        let own = root.path().join("user.slice");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("cgroup.subtree_control"), "memory cpu\n").unwrap();
        std::fs::write(own.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        let limits = Limits { memory_bytes: Some(1 << 30), cpu_quota: Some(1.5) };
        let layout = Enforcer::find(root.path(), "0::/user.slice\n", limits).unwrap();
        assert_eq!(layout, Layout::V2 { parent: own.clone() });
        let e = Enforcer { layout, limits };
        assert!(e.describe().mechanism.starts_with("cgroup v2 under"), "{:?}", e.describe());
        let g = e.group("cell0").unwrap();
        let dir = own.join("cell0");
        assert_eq!(std::fs::read_to_string(dir.join("memory.max")).unwrap(), (1u64 << 30).to_string());
        assert_eq!(std::fs::read_to_string(dir.join("memory.swap.max")).unwrap(), "0");
        assert_eq!(std::fs::read_to_string(dir.join("cpu.max")).unwrap(), "150000 100000");
        assert_eq!(g.procs_files(), [dir.join("cgroup.procs")]);
        std::fs::write(dir.join("memory.peak"), "123456\n").unwrap();
        std::fs::write(dir.join("memory.stat"), "anon 1\nfile 4096\nfile_mapped 2048\npgmajfault 9\n").unwrap();
        std::fs::write(dir.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        let r = g.read();
        assert_eq!((r.peak_bytes, r.page_cache_bytes, r.mapped_file_bytes), (123456, 4096, 2048));
        assert_eq!((r.major_faults, r.oom_kills, r.limit_hits), (9, 1, 3));
        // Without the cpu controller delegated, v2 is not chosen; and no v1 hierarchy here: refused, named.
        std::fs::write(own.join("cgroup.controllers"), "memory pids\n").unwrap();
        let err = Enforcer::find(root.path(), "0::/user.slice\n", limits).unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
        // Files the fake tree left in the group keep the real rmdir from removing it: clean up here.
        for f in ["memory.max", "memory.swap.max", "cpu.max", "memory.peak", "memory.stat", "memory.events"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }

    #[test]
    fn missing_hierarchy_is_refused_with_the_controller_named() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = Limits { memory_bytes: Some(1 << 30), cpu_quota: None };
        let err = Enforcer::find(tmp.path(), "4:memory:/x\n", limits).unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
    }

    #[test]
    fn a_group_enforces_its_memory_limit_or_says_why_not() {
        let limits = Limits { memory_bytes: Some(64 << 20), cpu_quota: Some(0.5) };
        let e = match available(limits) {
            Ok(e) => e,
            Err(why) => {
                eprintln!("skipped: cgroups not writable here: {why}");
                return;
            }
        };
        let g = e.group(&format!("edgebench-test-{}", std::process::id())).unwrap();
        let procs: Vec<std::ffi::CString> =
            g.procs_files().iter().map(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()).collect();
        // A string doubled to 256 MiB of anonymous memory in a 64 MiB group: the group's OOM killer must end it.
        let mut cmd = std::process::Command::new("awk");
        cmd.args(["BEGIN { s = \"x\"; while (length(s) < 268435456) s = s s; print length(s) }"]);
        cmd.stdout(std::process::Stdio::null());
        use std::os::unix::process::CommandExt;
        // SAFETY: join_in_child only makes async-signal-safe calls.
        unsafe { cmd.pre_exec(move || join_in_child(&procs)) };
        let status = cmd.status().unwrap();
        let r = g.read();
        assert!(!status.success(), "256 MiB fit a 64 MiB group: {status:?}");
        assert!(r.oom_kills >= 1, "{r:?}");
        assert!(r.peak_bytes <= 64 << 20, "{r:?}");
        assert!(e.describe().describe().contains("memory 64 MiB"));
    }
}

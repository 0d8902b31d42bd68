//! Probes of this process and the machine, read from procfs: peak memory, CPU time, machine busy time, load; and
//! the rule that a process edgebench starts dies with it.

use std::time::Duration;

/// Memory of this process from `/proc/self/status`, KiB: (VmHWM, RssAnon, RssFile).
pub fn self_memory_kib() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("RssAnon:"), field("RssFile:"))
}

/// User + system CPU seconds this process has used.
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Cumulative machine CPU time from the first line of `/proc/stat`, seconds: (busy, total).
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_proc_stat(&stat)
}

/// Parses the aggregate `cpu` line of `/proc/stat` into (busy, total) seconds (USER_HZ = 100).
pub fn parse_proc_stat(stat: &str) -> Option<(f64, f64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some(((total - idle) as f64 / 100.0, total as f64 / 100.0))
}

/// CPUs kept busy over `window` (0 = idle machine, N = all N CPUs busy).
pub fn busy_cpus(window: Duration) -> Option<f64> {
    let (b0, t0) = machine_cpu_seconds()?;
    std::thread::sleep(window);
    let (b1, t1) = machine_cpu_seconds()?;
    let cpus = logical_cpus() as f64;
    (t1 > t0).then(|| (b1 - b0) / (t1 - t0) * cpus)
}

/// Logical CPUs this process may run on.
pub fn logical_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// CPUs not busy with other work right now (at least 1): the default thread count, so cells never oversubscribe.
pub fn free_cpus() -> usize {
    let busy = busy_cpus(Duration::from_millis(300)).unwrap_or(0.0);
    ((logical_cpus() as f64 - busy).round() as usize).clamp(1, logical_cpus())
}

/// 1-minute load average.
pub fn loadavg1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Kernel OOM kills recorded by this process's memory cgroup (cgroup v2), if readable.
pub fn cgroup_oom_kills() -> Option<u64> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let events = std::fs::read_to_string(format!("/sys/fs/cgroup{}/memory.events", rel.trim_end_matches('/'))).ok()?;
    events.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok())
}

/// Makes `cmd`'s process die when the process that starts it dies, however that happens (SIGKILL included): on
/// Linux, `PR_SET_PDEATHSIG` with SIGKILL, and an exit if the parent was already gone before that took effect.
/// Linux sends the signal when the *thread* that started the process ends, so start long-lived processes from a
/// thread that outlives them (the main thread). Elsewhere a no-op; there the parent's own signal handling ends its
/// children.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: getpid is async-signal-safe and called before the fork.
        let parent = unsafe { libc::getpid() };
        // SAFETY: prctl, getppid and _exit are async-signal-safe; the closure allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_excludes_idle_and_iowait() {
        let s = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_proc_stat(s), Some((1.5, 10.0)));
        assert_eq!(parse_proc_stat("cpu 1 2\n"), None);
        assert_eq!(parse_proc_stat("intr 5"), None);
    }

    #[test]
    fn own_memory_and_cpu_are_readable() {
        let (hwm, anon, _) = self_memory_kib();
        assert!(hwm > 0 && anon > 0 && hwm >= anon);
        assert!(self_cpu_seconds() >= 0.0);
        assert!(free_cpus() >= 1);
    }
}

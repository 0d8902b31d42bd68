//! Linux RAPL energy counters from the powercap class: package, core, uncore, dram and psys domains, each a
//! wrapping microjoule counter.

use std::path::{Path, PathBuf};

use super::sysfs::{self, AttrError};
use super::{Found, Meter, MeterInfo, Reading};

/// The fix printed when `energy_uj` is root-only.
pub const PERMISSION_FIX: &str = "energy_uj is root-only since Linux 5.10 (CVE-2020-8694); run edgebench as root, or \
grant read access once per boot: sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj \
/sys/class/powercap/intel-rapl:*:*/energy_uj";

/// One RAPL zone.
pub struct RaplMeter {
    info: MeterInfo,
    energy: PathBuf,
    wrap_j: Option<f64>,
}

impl Meter for RaplMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, String> {
        let uj = sysfs::read_u64(&self.energy).map_err(|e| e.to_string())?;
        Ok(Reading::Energy { joules: uj as f64 * 1e-6, wrap_joules: self.wrap_j })
    }
}

fn zone_names(root: &Path, zone: &Path) -> Option<(String, &'static str)> {
    let dir = zone.file_name()?.to_str()?;
    let id = dir.strip_prefix("intel-rapl:")?;
    let name = sysfs::read_str(&zone.join("name")).ok()?;
    let parts: Vec<&str> = id.split(':').collect();
    let scope = match name.as_str() {
        n if n.starts_with("package") => "cpu-package",
        "core" => "cpu-cores",
        "uncore" => "integrated-gpu",
        "dram" => "dram",
        "psys" => "platform",
        _ => "other",
    };
    if parts.len() == 2 {
        let parent = sysfs::under(root, &format!("/sys/class/powercap/intel-rapl:{}", parts[0]));
        let pname = sysfs::read_str(&parent.join("name")).unwrap_or_else(|_| format!("zone-{}", parts[0]));
        return Some((format!("rapl:{pname}/{name}"), scope));
    }
    Some((format!("rapl:{name}"), scope))
}

/// Every RAPL zone under `root`, each readable or with the reason it is not.
pub fn discover(root: &Path) -> Vec<Found> {
    let class = sysfs::under(root, "/sys/class/powercap");
    let mut zones = sysfs::entries(&class, "intel-rapl:");
    // Packages, each followed by its subzones: intel-rapl:0, intel-rapl:0:0, intel-rapl:0:1, intel-rapl:1.
    let id = |p: &PathBuf| -> Vec<u32> {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.trim_start_matches("intel-rapl:").split(':').filter_map(|x| x.parse().ok()).collect()
    };
    zones.sort_by_key(id);
    if zones.is_empty() {
        let why = if class.exists() {
            format!("no intel-rapl zones under {}", class.display())
        } else {
            format!(
                "{} is missing (no RAPL: not an x86 CPU, a VM without RAPL, or the powercap driver is not loaded)",
                class.display()
            )
        };
        return vec![Found::unavailable("rapl", "powercap", "cpu-package", why)];
    }
    let mut found = Vec::new();
    for zone in zones {
        let Some((name, scope)) = zone_names(root, &zone) else { continue };
        let energy = zone.join("energy_uj");
        let source = energy.display().to_string();
        let wrap_j = sysfs::read_u64(&zone.join("max_energy_range_uj")).ok().map(|v| v as f64 * 1e-6);
        match sysfs::read_u64(&energy) {
            Ok(_) => found.push(Found::Ok(Box::new(RaplMeter {
                info: MeterInfo { name, source, scope: scope.into() },
                energy,
                wrap_j,
            }))),
            Err(e @ AttrError::Permission(_)) => {
                found.push(Found::unavailable(&name, &source, scope, format!("{e}: {PERMISSION_FIX}")))
            }
            Err(e) => found.push(Found::unavailable(&name, &source, scope, e.to_string())),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::testing::{write, Tree};

    fn zone(t: &Tree, id: &str, name: &str, uj: &str, max: &str) {
        let d = format!("sys/class/powercap/intel-rapl:{id}");
        write(t, &format!("{d}/name"), name);
        write(t, &format!("{d}/energy_uj"), uj);
        write(t, &format!("{d}/max_energy_range_uj"), max);
    }

    #[test]
    fn finds_packages_subzones_and_psys() {
        let t = Tree::new();
        zone(&t, "0", "package-0", "1000000", "262143328850");
        zone(&t, "0:0", "core", "500000", "262143328850");
        zone(&t, "0:1", "dram", "garbage", "262143328850");
        zone(&t, "1", "psys", "7", "262143328850");
        let found = discover(t.path());
        let names: Vec<String> = found.iter().map(|f| f.name().to_string()).collect();
        assert_eq!(names, ["rapl:package-0", "rapl:package-0/core", "rapl:package-0/dram", "rapl:psys"]);
        let mut ok = found.into_iter().filter_map(Found::ok).collect::<Vec<_>>();
        assert_eq!(ok.len(), 3, "the garbage dram counter is unavailable");
        assert_eq!(ok[0].read().unwrap(), Reading::Energy { joules: 1.0, wrap_joules: Some(262143.32885) });
        assert_eq!(ok[2].info().scope, "platform");
    }

    #[test]
    fn a_counter_that_wraps_between_readings_is_counted_through_the_monitor() {
        let t = Tree::new();
        zone(&t, "0", "package-0", "999000000", "1000000000");
        let meters: Vec<_> = discover(t.path()).into_iter().filter_map(Found::ok).collect();
        let m = crate::energy::monitor::Monitor::start(meters, None, std::time::Duration::from_secs(3600));
        let a = m.mark();
        // 999 J → wraps at 1000 J → 3 J: 4 J were used.
        write(&t, "sys/class/powercap/intel-rapl:0/energy_uj", "3000000");
        let b = m.mark();
        let used = a.joules_until(&b)[0].unwrap();
        assert!((used - 4.0).abs() < 1e-9, "{used}");
        assert_eq!(m.stop().errors, [None]);
    }

    #[test]
    fn garbage_and_missing_are_reasons_not_zeros() {
        let t = Tree::new();
        zone(&t, "0", "package-0", "12abc", "100");
        let f = discover(t.path());
        let reason = f[0].reason().unwrap();
        assert!(reason.contains("energy_uj") && reason.contains("12abc"), "{reason}");
        let empty = Tree::new();
        let reason = discover(empty.path())[0].reason().unwrap().to_string();
        assert!(reason.contains("powercap is missing"), "{reason}");
    }

    /// Runs as an unprivileged user (see `permission_denied_names_the_fix`); ignored when run directly.
    #[test]
    #[ignore = "run by permission_denied_names_the_fix under an unprivileged uid"]
    fn permission_child() {
        let root = std::env::var("EDGEBENCH_FAKE_SYSFS").expect("set by the parent test");
        let f = discover(Path::new(&root));
        let reason = f[0].reason().expect("unreadable counter is unavailable");
        assert!(reason.contains("permission denied") && reason.contains("chmod o+r"), "{reason}");
    }

    #[test]
    fn permission_denied_names_the_fix() {
        let t = Tree::new();
        zone(&t, "0", "package-0", "5", "100");
        let f = t.path().join("sys/class/powercap/intel-rapl:0/energy_uj");
        crate::energy::testing::run_unprivileged("energy::rapl::tests::permission_child", t.path(), &[&f]);
    }
}

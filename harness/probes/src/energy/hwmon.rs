//! hwmon power rails and energy counters: `power*_input` (µW), `energy*_input` (µJ), and INA3221 channels
//! (`in*_input` mV × `curr*_input` mA, as on NVIDIA Jetson boards).

use std::path::{Path, PathBuf};

use super::sysfs;
use super::{Found, Meter, MeterInfo, Reading};

enum Kind {
    /// µW file.
    Power(PathBuf),
    /// µJ counter.
    Energy(PathBuf),
    /// mV and mA files.
    VoltsAmps(PathBuf, PathBuf),
}

/// One rail or counter.
pub struct HwmonMeter {
    info: MeterInfo,
    kind: Kind,
}

impl Meter for HwmonMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, String> {
        let r = |p: &Path| sysfs::read_u64(p).map_err(|e| e.to_string());
        Ok(match &self.kind {
            Kind::Power(p) => Reading::Power { watts: r(p)? as f64 * 1e-6 },
            Kind::Energy(p) => Reading::Energy { joules: r(p)? as f64 * 1e-6, wrap_joules: None },
            Kind::VoltsAmps(v, a) => Reading::Power { watts: r(v)? as f64 * 1e-3 * r(a)? as f64 * 1e-3 },
        })
    }
}

fn channel(file: &Path, prefix: &str, suffix: &str) -> Option<u32> {
    file.file_name()?.to_str()?.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

/// Every power or energy channel of every hwmon device under `root`.
pub fn discover(root: &Path) -> Vec<Found> {
    let class = sysfs::under(root, "/sys/class/hwmon");
    let mut found = Vec::new();
    for dev in sysfs::entries(&class, "hwmon") {
        let chip = sysfs::read_str(&dev.join("name")).unwrap_or_else(|_| "hwmon".into());
        let label = |kind: &str, n: u32| {
            sysfs::read_str(&dev.join(format!("{kind}{n}_label"))).unwrap_or_else(|_| format!("{kind}{n}"))
        };
        let mut push = |name: String, source: &Path, kind: Kind| {
            let info = MeterInfo { name, source: source.display().to_string(), scope: "rail".into() };
            let mut m = HwmonMeter { info, kind };
            found.push(match m.read() {
                Ok(_) => Found::Ok(Box::new(m)),
                Err(e) => Found::Unavailable(m.info.clone(), e),
            });
        };
        for f in sysfs::entries(&dev, "power") {
            if let Some(n) = channel(&f, "power", "_input").or_else(|| channel(&f, "power", "_average")) {
                push(format!("hwmon:{chip}/{}", label("power", n)), &f, Kind::Power(f.clone()));
            }
        }
        for f in sysfs::entries(&dev, "energy") {
            if let Some(n) = channel(&f, "energy", "_input") {
                push(format!("hwmon:{chip}/{}", label("energy", n)), &f, Kind::Energy(f.clone()));
            }
        }
        if chip.starts_with("ina3221") {
            for f in sysfs::entries(&dev, "in") {
                let Some(n) = channel(&f, "in", "_input") else { continue };
                let amps = dev.join(format!("curr{n}_input"));
                if amps.exists() {
                    push(format!("hwmon:{chip}/{}", label("in", n)), &f, Kind::VoltsAmps(f.clone(), amps));
                }
            }
        }
    }
    if found.is_empty() {
        found.push(Found::unavailable(
            "hwmon",
            &class.display().to_string(),
            "rail",
            format!("no power*_input, energy*_input or INA3221 channel under {}", class.display()),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::testing::{write, Tree};

    #[test]
    fn ina3221_rails_and_power_and_energy_files() {
        let t = Tree::new();
        let d = "sys/class/hwmon/hwmon1";
        write(&t, &format!("{d}/name"), "ina3221");
        write(&t, &format!("{d}/in1_label"), "VDD_IN");
        write(&t, &format!("{d}/in1_input"), "5000");
        write(&t, &format!("{d}/curr1_input"), "1200");
        write(&t, &format!("{d}/in2_input"), "1000");
        let e = "sys/class/hwmon/hwmon2";
        write(&t, &format!("{e}/name"), "amd_energy");
        write(&t, &format!("{e}/energy1_input"), "2500000");
        write(&t, &format!("{e}/energy1_label"), "Esocket0");
        write(&t, &format!("{e}/power1_input"), "bogus");
        let found = discover(t.path());
        let names: Vec<&str> = found.iter().map(Found::name).collect();
        assert_eq!(names, ["hwmon:ina3221/VDD_IN", "hwmon:amd_energy/power1", "hwmon:amd_energy/Esocket0"]);
        assert!(found[1].reason().unwrap().contains("bogus"));
        let mut ok: Vec<_> = found.into_iter().filter_map(Found::ok).collect();
        assert_eq!(ok[0].read().unwrap(), Reading::Power { watts: 6.0 });
        assert_eq!(ok[1].read().unwrap(), Reading::Energy { joules: 2.5, wrap_joules: None });
    }

    #[test]
    fn nothing_found_says_where_it_looked() {
        let t = Tree::new();
        write(&t, "sys/class/hwmon/hwmon0/name", "k10temp");
        let f = discover(t.path());
        assert_eq!(f.len(), 1);
        assert!(f[0].reason().unwrap().contains("sys/class/hwmon"));
    }
}

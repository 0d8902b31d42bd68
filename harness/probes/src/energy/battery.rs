//! Linux `power_supply` batteries as power meters (only while discharging), and the machine's power source.

use std::path::{Path, PathBuf};

use super::sysfs;
use super::{Found, Meter, MeterInfo, Reading};

/// A discharging battery read through `power_now`, or `current_now × voltage_now`.
pub struct BatteryMeter {
    info: MeterInfo,
    dir: PathBuf,
}

/// Watts drawn from a battery directory, or why not.
fn battery_watts(dir: &Path) -> Result<f64, String> {
    let status = sysfs::read_str(&dir.join("status")).map_err(|e| e.to_string())?;
    if status != "Discharging" {
        return Err(format!(
            "battery status is {status:?}, not Discharging: battery power is only metered while the device runs on it \
             (unplug it and let it discharge for a few minutes)"
        ));
    }
    match sysfs::read_i64(&dir.join("power_now")) {
        Ok(uw) => Ok(uw.unsigned_abs() as f64 * 1e-6),
        Err(sysfs::AttrError::Missing(_)) => {
            let ua = sysfs::read_i64(&dir.join("current_now")).map_err(|e| format!("no power_now, and {e}"))?;
            let uv = sysfs::read_i64(&dir.join("voltage_now")).map_err(|e| format!("no power_now, and {e}"))?;
            Ok(ua.unsigned_abs() as f64 * 1e-6 * uv.unsigned_abs() as f64 * 1e-6)
        }
        Err(e) => Err(e.to_string()),
    }
}

impl Meter for BatteryMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, String> {
        battery_watts(&self.dir).map(|watts| Reading::Power { watts })
    }
}

fn supplies(root: &Path) -> Vec<(PathBuf, String)> {
    sysfs::entries(&sysfs::under(root, "/sys/class/power_supply"), "")
        .into_iter()
        .filter_map(|d| sysfs::read_str(&d.join("type")).ok().map(|t| (d, t)))
        .collect()
}

/// Each battery under `root`: a meter while discharging, otherwise unavailable with the reason.
pub fn discover(root: &Path) -> Vec<Found> {
    let batteries: Vec<PathBuf> = supplies(root).into_iter().filter(|(_, t)| t == "Battery").map(|(d, _)| d).collect();
    if batteries.is_empty() {
        return vec![Found::unavailable(
            "battery",
            "power_supply",
            "system",
            format!("no battery under {}", sysfs::under(root, "/sys/class/power_supply").display()),
        )];
    }
    batteries
        .into_iter()
        .map(|dir| {
            let id = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
            let info =
                MeterInfo { name: format!("battery:{id}"), source: dir.display().to_string(), scope: "system".into() };
            match battery_watts(&dir) {
                Ok(_) => Found::Ok(Box::new(BatteryMeter { info, dir })),
                Err(reason) => Found::Unavailable(info, reason),
            }
        })
        .collect()
}

/// `AC`, `battery (discharging, 73%)`, or `unknown (why)`.
pub fn power_source(root: &Path) -> String {
    let all = supplies(root);
    let online = |d: &Path| sysfs::read_u64(&d.join("online")).is_ok_and(|v| v == 1);
    for (d, t) in &all {
        if t == "Battery" && sysfs::read_str(&d.join("status")).is_ok_and(|s| s == "Discharging") {
            let pct = sysfs::read_u64(&d.join("capacity")).map(|c| format!(", {c}%")).unwrap_or_default();
            return format!("battery (discharging{pct})");
        }
    }
    if all.iter().any(|(d, t)| t != "Battery" && online(d)) {
        return "AC".into();
    }
    if all.is_empty() {
        return "unknown (no power_supply entries: mains-powered desktop, server or VM)".into();
    }
    "unknown (no online mains supply and no discharging battery)".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::testing::{write, Tree};

    fn battery(t: &Tree, status: &str, files: &[(&str, &str)]) {
        write(t, "sys/class/power_supply/BAT0/type", "Battery");
        write(t, "sys/class/power_supply/BAT0/status", status);
        write(t, "sys/class/power_supply/BAT0/capacity", "73");
        for (f, v) in files {
            write(t, &format!("sys/class/power_supply/BAT0/{f}"), v);
        }
    }

    #[test]
    fn discharging_battery_is_a_power_meter() {
        let t = Tree::new();
        battery(&t, "Discharging", &[("power_now", "7500000")]);
        write(&t, "sys/class/power_supply/AC/type", "Mains");
        write(&t, "sys/class/power_supply/AC/online", "0");
        let mut m = discover(t.path()).remove(0).ok().expect("available");
        assert_eq!(m.read().unwrap(), Reading::Power { watts: 7.5 });
        assert_eq!(power_source(t.path()), "battery (discharging, 73%)");
        // Plugged in mid-cell: the meter stops with a reason.
        write(&t, "sys/class/power_supply/BAT0/status", "Charging");
        assert!(m.read().unwrap_err().contains("Charging"));
    }

    #[test]
    fn current_times_voltage_when_power_now_is_absent() {
        let t = Tree::new();
        battery(&t, "Discharging", &[("current_now", "-500000"), ("voltage_now", "12000000")]);
        let mut m = discover(t.path()).remove(0).ok().expect("available");
        assert_eq!(m.read().unwrap(), Reading::Power { watts: 6.0 });
    }

    #[test]
    fn on_ac_the_battery_is_unavailable_with_the_reason() {
        let t = Tree::new();
        battery(&t, "Full", &[("power_now", "0")]);
        write(&t, "sys/class/power_supply/AC/type", "Mains");
        write(&t, "sys/class/power_supply/AC/online", "1");
        let f = discover(t.path());
        assert!(f[0].reason().unwrap().contains("\"Full\", not Discharging"));
        assert_eq!(power_source(t.path()), "AC");
        let garbage = Tree::new();
        battery(&garbage, "Discharging", &[("power_now", "n/a")]);
        assert!(discover(garbage.path())[0].reason().unwrap().contains("n/a"));
        assert!(power_source(Tree::new().path()).starts_with("unknown"));
    }
}

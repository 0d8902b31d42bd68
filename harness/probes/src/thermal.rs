//! CPU frequency and temperature probes (cpufreq, thermal zones, hwmon), sampled beside each cell, and the rule that
//! flags throttling. Probes take a filesystem root so tests run on fake sysfs trees.

use std::path::{Path, PathBuf};

use edgebench_core::energy::Availability;
use edgebench_core::thermal::{SensorResult, ThermalResult, Trend};

use crate::energy::sysfs;

/// A cell counts as throttled when the CPU frequency at the end (median of the last quarter of samples) is below this
/// share of the frequency at the start (median of the first quarter).
pub const FREQ_DROP_RATIO: f64 = 0.90;

struct Sensor {
    name: String,
    path: PathBuf,
    trip_c: Option<f64>,
}

/// The frequency and temperature sources of a machine.
pub struct ThermalProbe {
    cpufreq: Vec<PathBuf>,
    sensors: Vec<Sensor>,
    throttle_counters: Vec<PathBuf>,
}

/// One sample of every source.
#[derive(Debug, Clone, PartialEq)]
pub struct ThermalSample {
    /// Mean current frequency over the CPUs, MHz.
    pub cpu_mhz: Option<f64>,
    /// Temperature of each sensor, °C, in [`ThermalProbe::names`] order.
    pub temps_c: Vec<Option<f64>>,
}

fn milli_c(path: &Path) -> Option<f64> {
    sysfs::read_i64(path).ok().map(|v| v as f64 / 1000.0)
}

fn zone_sensor(zone: &Path) -> Option<Sensor> {
    let kind = sysfs::read_str(&zone.join("type")).ok()?;
    let path = zone.join("temp");
    milli_c(&path)?;
    let mut trip_c: Option<f64> = None;
    for t in sysfs::entries(zone, "trip_point_") {
        let Some(stem) = t.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix("_type")) else {
            continue;
        };
        if matches!(sysfs::read_str(&t).as_deref(), Ok("passive" | "hot" | "critical")) {
            if let Some(c) = milli_c(&zone.join(format!("{stem}_temp"))).filter(|c| *c > 0.0) {
                trip_c = Some(trip_c.map_or(c, |x: f64| x.min(c)));
            }
        }
    }
    Some(Sensor { name: format!("zone:{kind}"), path, trip_c })
}

fn hwmon_sensors(dev: &Path) -> Vec<Sensor> {
    let chip = sysfs::read_str(&dev.join("name")).unwrap_or_else(|_| "hwmon".into());
    sysfs::entries(dev, "temp")
        .into_iter()
        .filter_map(|f| {
            let n = f.file_name()?.to_str()?.strip_prefix("temp")?.strip_suffix("_input")?.to_string();
            milli_c(&f)?;
            let label = sysfs::read_str(&dev.join(format!("temp{n}_label"))).unwrap_or_else(|_| format!("temp{n}"));
            let trip_c = ["max", "crit"]
                .iter()
                .filter_map(|k| milli_c(&dev.join(format!("temp{n}_{k}"))).filter(|c| *c > 0.0))
                .reduce(f64::min);
            Some(Sensor { name: format!("hwmon:{chip}/{label}"), path: f, trip_c })
        })
        .collect()
}

impl ThermalProbe {
    /// Finds every source under `root`, or says why there is none.
    pub fn discover(root: &Path) -> Result<ThermalProbe, String> {
        let cpus = sysfs::under(root, "/sys/devices/system/cpu");
        let cpu_dirs: Vec<PathBuf> = sysfs::entries(&cpus, "cpu")
            .into_iter()
            .filter(|d| {
                let id = d.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("cpu")).unwrap_or("");
                !id.is_empty() && id.chars().all(|c| c.is_ascii_digit())
            })
            .collect();
        let cpufreq: Vec<PathBuf> = cpu_dirs
            .iter()
            .map(|d| d.join("cpufreq/scaling_cur_freq"))
            .filter(|p| sysfs::read_u64(p).is_ok())
            .collect();
        let throttle_counters: Vec<PathBuf> = cpu_dirs
            .iter()
            .flat_map(|d| ["core", "package"].map(|k| d.join(format!("thermal_throttle/{k}_throttle_count"))))
            .filter(|p| sysfs::read_u64(p).is_ok())
            .collect();
        let mut sensors: Vec<Sensor> = sysfs::entries(&sysfs::under(root, "/sys/class/thermal"), "thermal_zone")
            .iter()
            .filter_map(|z| zone_sensor(z))
            .collect();
        for dev in sysfs::entries(&sysfs::under(root, "/sys/class/hwmon"), "hwmon") {
            sensors.extend(hwmon_sensors(&dev));
        }
        if cpufreq.is_empty() && sensors.is_empty() {
            return Err(format!(
                "no cpufreq scaling_cur_freq under {} and no temperature sensor under {} or {} (common in VMs)",
                cpus.display(),
                sysfs::under(root, "/sys/class/thermal").display(),
                sysfs::under(root, "/sys/class/hwmon").display()
            ));
        }
        Ok(ThermalProbe { cpufreq, sensors, throttle_counters })
    }

    /// Reads every source once.
    pub fn sample(&self) -> ThermalSample {
        let khz: Vec<f64> = self.cpufreq.iter().filter_map(|p| sysfs::read_u64(p).ok()).map(|v| v as f64).collect();
        let cpu_mhz = (!khz.is_empty()).then(|| khz.iter().sum::<f64>() / khz.len() as f64 / 1000.0);
        ThermalSample { cpu_mhz, temps_c: self.sensors.iter().map(|s| milli_c(&s.path)).collect() }
    }

    /// Sum of the kernel's thermal-throttle event counters, when exposed.
    pub fn throttle_count(&self) -> Option<u64> {
        (!self.throttle_counters.is_empty())
            .then(|| self.throttle_counters.iter().filter_map(|p| sysfs::read_u64(p).ok()).sum())
    }

    /// Sensor names, in sample order.
    pub fn names(&self) -> Vec<String> {
        self.sensors.iter().map(|s| s.name.clone()).collect()
    }

    /// One line per source, for the device fingerprint.
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.cpufreq.is_empty() {
            v.push(format!("cpufreq ({} CPUs)", self.cpufreq.len()));
        }
        for s in &self.sensors {
            match s.trip_c {
                Some(t) => v.push(format!("{} (trip {t:.0} °C)", s.name)),
                None => v.push(s.name.clone()),
            }
        }
        v
    }

    /// Summarizes a cell's samples; `throttle_events` is the counter's growth over the cell.
    pub fn summarize(&self, samples: &[ThermalSample], throttle_events: Option<u64>) -> ThermalResult {
        let cpu_mhz = trend(&samples.iter().filter_map(|s| s.cpu_mhz).collect::<Vec<_>>());
        let sensors: Vec<SensorResult> = self
            .sensors
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let v: Vec<f64> = samples.iter().filter_map(|x| x.temps_c.get(i).copied().flatten()).collect();
                Some(SensorResult { name: s.name.clone(), celsius: trend(&v)?, trip_c: s.trip_c })
            })
            .collect();
        let mut why = Vec::new();
        if let Some(f) = &cpu_mhz {
            if f.end < FREQ_DROP_RATIO * f.start {
                why.push(format!("CPU frequency fell from {:.0} to {:.0} MHz", f.start, f.end));
            }
        }
        for s in &sensors {
            if let Some(trip) = s.trip_c.filter(|t| s.celsius.max >= *t) {
                why.push(format!("{} reached {:.0} °C (trip point {trip:.0} °C)", s.name, s.celsius.max));
            }
        }
        if let Some(n) = throttle_events.filter(|n| *n > 0) {
            why.push(format!("the kernel counted {n} thermal-throttle events"));
        }
        ThermalResult {
            availability: Availability::Available,
            samples: samples.len(),
            cpu_mhz,
            sensors,
            throttle_events,
            throttled: (!why.is_empty()).then(|| why.join("; ")),
        }
    }
}

/// A thermal result for a machine without sources.
pub fn unavailable(reason: String) -> ThermalResult {
    ThermalResult {
        availability: Availability::Unavailable { reason },
        samples: 0,
        cpu_mhz: None,
        sensors: Vec::new(),
        throttle_events: None,
        throttled: None,
    }
}

/// Start (first quarter's median), end (last quarter's), min and max of a series; `None` when empty.
pub fn trend(v: &[f64]) -> Option<Trend> {
    if v.is_empty() {
        return None;
    }
    let q = (v.len() / 4).max(1);
    Some(Trend {
        start: edgebench_stats::median(&v[..q]),
        end: edgebench_stats::median(&v[v.len() - q..]),
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::testing::{write, Tree};

    fn machine() -> Tree {
        let t = Tree::new();
        for cpu in 0..2 {
            write(&t, &format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"), "3000000");
            write(&t, &format!("sys/devices/system/cpu/cpu{cpu}/thermal_throttle/core_throttle_count"), "4");
        }
        write(&t, "sys/devices/system/cpu/cpufreq/boost", "1");
        let z = "sys/class/thermal/thermal_zone0";
        write(&t, &format!("{z}/type"), "x86_pkg_temp");
        write(&t, &format!("{z}/temp"), "55000");
        write(&t, &format!("{z}/trip_point_0_type"), "active");
        write(&t, &format!("{z}/trip_point_0_temp"), "50000");
        write(&t, &format!("{z}/trip_point_1_type"), "passive");
        write(&t, &format!("{z}/trip_point_1_temp"), "95000");
        write(&t, "sys/class/hwmon/hwmon3/name", "k10temp");
        write(&t, "sys/class/hwmon/hwmon3/temp1_input", "61250");
        write(&t, "sys/class/hwmon/hwmon3/temp1_label", "Tctl");
        write(&t, "sys/class/hwmon/hwmon3/temp1_crit", "100000");
        write(&t, "sys/class/hwmon/hwmon3/temp2_input", "garbage");
        t
    }

    #[test]
    fn finds_frequency_zones_hwmon_and_trip_points() {
        let t = machine();
        let p = ThermalProbe::discover(t.path()).unwrap();
        assert_eq!(p.names(), ["zone:x86_pkg_temp", "hwmon:k10temp/Tctl"]);
        assert_eq!(
            p.describe(),
            ["cpufreq (2 CPUs)", "zone:x86_pkg_temp (trip 95 °C)", "hwmon:k10temp/Tctl (trip 100 °C)"]
        );
        let s = p.sample();
        assert_eq!(s, ThermalSample { cpu_mhz: Some(3000.0), temps_c: vec![Some(55.0), Some(61.25)] });
        assert_eq!(p.throttle_count(), Some(8));
        let r = p.summarize(&[s.clone(), s], Some(0));
        assert_eq!(r.throttled, None, "the active (fan) trip at 50 °C is not throttling");
    }

    #[test]
    fn frequency_drop_trip_crossing_and_kernel_events_flag_throttling() {
        let t = machine();
        let p = ThermalProbe::discover(t.path()).unwrap();
        let s = |mhz: f64, c: f64| ThermalSample { cpu_mhz: Some(mhz), temps_c: vec![Some(c), None] };
        let steady: Vec<_> = (0..8).map(|_| s(3000.0, 60.0)).collect();
        assert_eq!(p.summarize(&steady, None).throttled, None);
        let falling: Vec<_> = (0..8).map(|i| s(if i < 4 { 3000.0 } else { 2400.0 }, 60.0)).collect();
        let r = p.summarize(&falling, None);
        assert!(r.throttled.unwrap().contains("fell from 3000 to 2400 MHz"));
        let hot: Vec<_> = (0..8).map(|i| s(3000.0, if i == 5 { 96.0 } else { 60.0 })).collect();
        assert!(p.summarize(&hot, None).throttled.unwrap().contains("zone:x86_pkg_temp reached 96 °C"));
        assert!(p.summarize(&steady, Some(3)).throttled.unwrap().contains("3 thermal-throttle events"));
    }

    #[test]
    fn no_sources_is_a_reason() {
        let t = Tree::new();
        write(&t, "sys/class/thermal/cooling_device0/type", "Processor");
        let e = ThermalProbe::discover(t.path()).err().unwrap();
        assert!(e.contains("no cpufreq") && e.contains("VMs"), "{e}");
        assert_eq!(trend(&[]), None);
        let tr = trend(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).unwrap();
        assert_eq!((tr.start, tr.end, tr.min, tr.max), (1.5, 7.5, 1.0, 8.0));
    }
}

//! Meters outside the machine's sysfs: a user command (`--energy-cmd`) that prints cumulative joules or power
//! samples, one per line (USB power meters, lab supplies, smart plugs), and Apple's `powermetrics`.

use std::io::BufReader;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::monitor::Accumulator;
use super::{Found, Meter, MeterInfo, Reading};

/// How long a meter command may take to print its first reading.
pub const FIRST_READING_TIMEOUT: Duration = Duration::from_secs(5);

/// One line of a meter command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// Cumulative energy, joules.
    Joules(f64),
    /// Instantaneous power, watts.
    Watts(f64),
}

/// Parses `12.5 J`, `830 mJ`, `0.2 kJ`, `0.001 Wh` (cumulative) or `4.2 W`, `4200 mW` (power). Blank lines and
/// lines starting with `#` are skipped (`Ok(None)`).
pub fn parse_line(line: &str) -> Result<Option<Sample>, String> {
    let l = line.trim();
    if l.is_empty() || l.starts_with('#') {
        return Ok(None);
    }
    let split = l.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(|| format!("{l:?} has no unit (J or W)"))?;
    let (num, unit) = l.split_at(split);
    if num.trim().is_empty() {
        return Err(format!("{l:?} has no number before its unit"));
    }
    let v: f64 = num.trim().parse().map_err(|_| format!("{l:?}: {:?} is not a number", num.trim()))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{l:?}: energy and power must be finite and non-negative"));
    }
    Ok(Some(match unit.trim() {
        "J" => Sample::Joules(v),
        "mJ" => Sample::Joules(v / 1e3),
        "kJ" => Sample::Joules(v * 1e3),
        "Wh" => Sample::Joules(v * 3600.0),
        "W" => Sample::Watts(v),
        "mW" => Sample::Watts(v / 1e3),
        u => return Err(format!("{l:?}: unknown unit {u:?} (use J, mJ, kJ, Wh, W or mW)")),
    }))
}

/// Picks the combined-power line of `powermetrics` (e.g. `Combined Power (CPU + GPU + ANE): 1234 mW`).
pub fn parse_powermetrics_line(line: &str) -> Result<Option<Sample>, String> {
    let Some(rest) = line.trim().strip_prefix("Combined Power") else {
        return Ok(None);
    };
    let value = rest.rsplit(':').next().unwrap_or("");
    parse_line(value).map_err(|e| format!("powermetrics: {e}"))
}

#[derive(Default)]
struct State {
    acc: Accumulator,
    error: Option<String>,
}

fn reading(s: Sample) -> Reading {
    match s {
        Sample::Joules(joules) => Reading::Energy { joules, wrap_joules: None },
        Sample::Watts(watts) => Reading::Power { watts },
    }
}

/// A running meter command.
pub struct ExternalMeter {
    info: MeterInfo,
    child: Child,
    state: Arc<Mutex<State>>,
}

type Parser = fn(&str) -> Result<Option<Sample>, String>;

impl ExternalMeter {
    /// Starts `sh -c command` and waits for its first reading.
    pub fn spawn(command: &str) -> Result<ExternalMeter, String> {
        let info = MeterInfo { name: "external".into(), source: command.into(), scope: "device".into() };
        Self::spawn_with(Command::new("sh").args(["-c", command]), info, parse_line)
    }

    fn spawn_with(cmd: &mut Command, info: MeterInfo, parser: Parser) -> Result<ExternalMeter, String> {
        let what = info.source.clone();
        crate::process::die_with_parent(cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start meter command {what:?}: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for line in
                edgebench_core::limits::bounded_lines(BufReader::new(stdout), edgebench_core::limits::METER_LINE)
            {
                let parsed = line.map_err(|e| e.to_string()).and_then(|l| parser(&l).map(|s| (l, s)));
                let mut g = st.lock().expect("meter state");
                match parsed {
                    Ok((_, None)) => {}
                    Ok((_, Some(s))) => {
                        if let Err(e) = g.acc.update(Instant::now(), reading(s)) {
                            g.error = Some(e);
                            return;
                        }
                    }
                    Err(e) => {
                        g.error = Some(e);
                        return;
                    }
                }
            }
            let mut g = st.lock().expect("meter state");
            g.error.get_or_insert_with(|| "the meter command exited".into());
        });
        let meter = ExternalMeter { info, child, state };
        let t0 = Instant::now();
        loop {
            {
                let g = meter.state.lock().expect("meter state");
                if let Some(e) = &g.error {
                    return Err(format!("meter command {what:?}: {e}"));
                }
                if g.acc.last().is_some() {
                    break;
                }
            }
            if t0.elapsed() > FIRST_READING_TIMEOUT {
                return Err(format!(
                    "meter command {what:?} printed no reading within {} s",
                    FIRST_READING_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(meter)
    }
}

impl Meter for ExternalMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, String> {
        let g = self.state.lock().expect("meter state");
        if let Some(e) = &g.error {
            return Err(format!("meter command {:?}: {e}", self.info.source));
        }
        let joules = match g.acc.last() {
            // Power between samples is held at the last value until the next line arrives.
            Some((t, Reading::Power { watts })) => g.acc.joules() + watts * t.elapsed().as_secs_f64(),
            Some((_, Reading::Energy { .. })) => g.acc.joules(),
            None => return Err(format!("meter command {:?} has printed no reading yet", self.info.source)),
        };
        Ok(Reading::Energy { joules, wrap_joules: None })
    }
}

impl Drop for ExternalMeter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Apple's `powermetrics` (root only), when built with the `powermetrics` feature on macOS.
pub fn discover_powermetrics() -> Vec<Found> {
    #[cfg(all(target_os = "macos", feature = "powermetrics"))]
    {
        let info = MeterInfo {
            name: "powermetrics".into(),
            source: "powermetrics --samplers cpu_power,gpu_power,ane_power -i 100".into(),
            scope: "device".into(),
        };
        let mut cmd = Command::new("powermetrics");
        cmd.args(["--samplers", "cpu_power,gpu_power,ane_power", "-i", "100"]);
        return vec![match ExternalMeter::spawn_with(&mut cmd, info, parse_powermetrics_line) {
            Ok(m) => Found::Ok(Box::new(m)),
            Err(e) => {
                Found::unavailable("powermetrics", "powermetrics", "device", format!("{e} (it needs root: sudo)"))
            }
        }];
    }
    #[cfg(all(target_os = "macos", not(feature = "powermetrics")))]
    {
        return vec![Found::unavailable(
            "powermetrics",
            "powermetrics",
            "device",
            "not compiled in: rebuild with --features powermetrics and run as root".into(),
        )];
    }
    #[allow(unreachable_code)]
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_units() {
        assert_eq!(parse_line("12.5 J"), Ok(Some(Sample::Joules(12.5))));
        assert_eq!(parse_line("830mJ"), Ok(Some(Sample::Joules(0.83))));
        assert_eq!(parse_line("0.5 Wh"), Ok(Some(Sample::Joules(1800.0))));
        assert_eq!(parse_line(" 4200 mW "), Ok(Some(Sample::Watts(4.2))));
        assert_eq!(parse_line("# header"), Ok(None));
        assert!(parse_line("12.5").unwrap_err().contains("no unit"));
        assert!(parse_line("1.2.3 W").unwrap_err().contains("not a number"));
        assert!(parse_line("W").unwrap_err().contains("no number"));
        assert!(parse_line("3 V").unwrap_err().contains("unknown unit"));
        assert!(parse_line("-3 W").is_err());
    }

    #[test]
    fn powermetrics_combined_power() {
        assert_eq!(
            parse_powermetrics_line("Combined Power (CPU + GPU + ANE): 1234 mW"),
            Ok(Some(Sample::Watts(1.234)))
        );
        assert_eq!(parse_powermetrics_line("CPU Power: 900 mW"), Ok(None));
    }

    #[test]
    fn watt_samples_integrate_and_joules_pass_through() {
        let t0 = Instant::now();
        let mut s = Accumulator::default();
        s.update(t0, reading(Sample::Watts(2.0))).unwrap();
        s.update(t0 + Duration::from_secs(2), reading(Sample::Watts(4.0))).unwrap();
        assert!((s.joules() - 6.0).abs() < 1e-12);
        assert!(s.update(t0 + Duration::from_secs(3), reading(Sample::Joules(1.0))).unwrap_err().contains("mixed"));
        let mut j = Accumulator::default();
        j.update(t0, reading(Sample::Joules(5.0))).unwrap();
        j.update(t0, reading(Sample::Joules(7.0))).unwrap();
        assert_eq!(j.joules(), 2.0, "joules since the first line");
        assert!(j.update(t0, reading(Sample::Joules(6.0))).unwrap_err().contains("backwards"));
    }

    #[test]
    fn a_real_meter_command() {
        let mut m = ExternalMeter::spawn("i=0; while :; do i=$((i+1)); echo \"$i J\"; sleep 0.02; done").unwrap();
        let Reading::Energy { joules: a, .. } = m.read().unwrap() else { panic!() };
        std::thread::sleep(Duration::from_millis(300));
        let Reading::Energy { joules: b, .. } = m.read().unwrap() else { panic!() };
        assert!(b > a, "the counter advances: {a} → {b}");
    }

    #[test]
    fn bad_meter_commands_are_named() {
        let e = ExternalMeter::spawn("echo 'twelve J'").err().unwrap();
        assert!(e.contains("twelve") && e.contains("echo"), "{e}");
        let e = ExternalMeter::spawn("exit 3").err().unwrap();
        assert!(e.contains("exited"), "{e}");
        let mut m = ExternalMeter::spawn("echo '1 J'; sleep 0.1").unwrap();
        std::thread::sleep(Duration::from_millis(500));
        assert!(m.read().unwrap_err().contains("exited"));
    }
}

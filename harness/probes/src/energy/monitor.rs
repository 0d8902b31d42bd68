//! The sampling thread that runs beside a cell: reads every meter and thermal source each period (so counters
//! never wrap unseen and power is integrated), and gives exact readings at phase boundaries ([`Monitor::mark`]).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use edgebench_core::energy::SamplerCost;
use edgebench_core::thermal::ThermalResult;

use super::{Meter, Reading};
use crate::thermal::{ThermalProbe, ThermalSample};

/// Cumulative joules of one meter: counter deltas (with wraparound) or trapezoid-integrated power.
#[derive(Debug, Default, Clone)]
pub struct Accumulator {
    total_j: f64,
    last: Option<(Instant, Reading)>,
}

impl Accumulator {
    /// Takes a reading made at `at`.
    pub fn update(&mut self, at: Instant, r: Reading) -> Result<(), String> {
        match (self.last, r) {
            (Some((_, Reading::Energy { joules: prev, .. })), Reading::Energy { joules, wrap_joules }) => {
                let mut d = joules - prev;
                if d < 0.0 {
                    match wrap_joules {
                        Some(w) => d += w,
                        None => return Err(format!("energy counter went backwards ({prev} → {joules} J)")),
                    }
                }
                self.total_j += d;
            }
            (Some((t0, Reading::Power { watts: w0 })), Reading::Power { watts }) => {
                self.total_j += (w0 + watts) / 2.0 * at.saturating_duration_since(t0).as_secs_f64();
            }
            (None, _) => {}
            _ => return Err("the meter mixed energy and power readings".into()),
        }
        self.last = Some((at, r));
        Ok(())
    }

    /// Joules since the first reading.
    pub fn joules(&self) -> f64 {
        self.total_j
    }

    /// The last reading and when it was made.
    pub fn last(&self) -> Option<(Instant, Reading)> {
        self.last
    }
}

struct Slot {
    meter: Box<dyn Meter>,
    acc: Accumulator,
    error: Option<String>,
}

impl Slot {
    fn sample(&mut self, at: Instant) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.meter.read().and_then(|r| self.acc.update(at, r)) {
            self.error = Some(e);
        }
    }
}

struct State {
    slots: Vec<Slot>,
    thermal: Option<ThermalProbe>,
    thermal_samples: Vec<ThermalSample>,
    samples: usize,
}

struct Shared {
    state: Mutex<State>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Readings of every meter at one instant (`None`: that meter has failed).
#[derive(Debug, Clone)]
pub struct Mark {
    /// When.
    pub at: Instant,
    /// Cumulative joules per meter, in the order given to [`Monitor::start`].
    pub joules: Vec<Option<f64>>,
}

impl Mark {
    /// Joules per meter between `self` and a later mark.
    pub fn joules_until(&self, later: &Mark) -> Vec<Option<f64>> {
        self.joules.iter().zip(&later.joules).map(|(a, b)| Some(b.as_ref()? - a.as_ref()?)).collect()
    }

    /// Seconds between `self` and a later mark.
    pub fn seconds_until(&self, later: &Mark) -> f64 {
        later.at.saturating_duration_since(self.at).as_secs_f64()
    }
}

/// What the monitor saw.
pub struct MonitorReport {
    /// The first error of each meter, in [`Monitor::start`] order.
    pub errors: Vec<Option<String>>,
    /// Thermal summary, when a thermal probe was given.
    pub thermal: Option<ThermalResult>,
    /// The sampling thread's cost.
    pub cost: SamplerCost,
}

/// A running sampler.
pub struct Monitor {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<f64>>,
    started: Instant,
    interval: Duration,
    throttle0: Option<u64>,
}

pub(crate) fn thread_cpu_seconds() -> f64 {
    // SAFETY: clock_gettime writes into the zeroed timespec we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

impl Monitor {
    /// Takes a first reading of everything and starts sampling every `interval` (no thread when there is nothing
    /// to sample).
    pub fn start(meters: Vec<Box<dyn Meter>>, thermal: Option<ThermalProbe>, interval: Duration) -> Monitor {
        let throttle0 = thermal.as_ref().and_then(ThermalProbe::throttle_count);
        let idle = meters.is_empty() && thermal.is_none();
        let state = State {
            slots: meters.into_iter().map(|meter| Slot { meter, acc: Accumulator::default(), error: None }).collect(),
            thermal,
            thermal_samples: Vec::new(),
            samples: 0,
        };
        let shared = Arc::new(Shared { state: Mutex::new(state), stop: Mutex::new(false), wake: Condvar::new() });
        {
            let mut st = shared.state.lock().expect("sampler state");
            let now = Instant::now();
            st.slots.iter_mut().for_each(|s| s.sample(now));
        }
        let handle = (!idle).then(|| {
            let sh = shared.clone();
            std::thread::Builder::new()
                .name("edgebench-sampler".into())
                .spawn(move || {
                    let mut stop = sh.stop.lock().expect("sampler stop flag");
                    // The first reading was taken by `start`; sample after each period.
                    if !*stop {
                        stop = sh.wake.wait_timeout(stop, interval).expect("sampler stop flag").0;
                    }
                    while !*stop {
                        drop(stop);
                        {
                            let mut st = sh.state.lock().expect("sampler state");
                            let now = Instant::now();
                            st.slots.iter_mut().for_each(|s| s.sample(now));
                            if let Some(t) = &st.thermal {
                                let s = t.sample();
                                st.thermal_samples.push(s);
                            }
                            st.samples += 1;
                        }
                        stop = sh.stop.lock().expect("sampler stop flag");
                        if !*stop {
                            stop = sh.wake.wait_timeout(stop, interval).expect("sampler stop flag").0;
                        }
                    }
                    thread_cpu_seconds()
                })
                .expect("spawn the sampler thread")
        });
        Monitor { shared, handle, started: Instant::now(), interval, throttle0 }
    }

    /// Reads every meter now.
    pub fn mark(&self) -> Mark {
        let mut st = self.shared.state.lock().expect("sampler state");
        let at = Instant::now();
        st.slots.iter_mut().for_each(|s| s.sample(at));
        Mark { at, joules: st.slots.iter().map(|s| s.error.is_none().then(|| s.acc.joules())).collect() }
    }

    /// Samples taken so far.
    pub fn samples(&self) -> usize {
        self.shared.state.lock().expect("sampler state").samples
    }

    /// Stops and joins the thread, and summarizes.
    pub fn stop(mut self) -> MonitorReport {
        *self.shared.stop.lock().expect("sampler stop flag") = true;
        self.shared.wake.notify_all();
        let cpu_s = self.handle.take().map(|h| h.join().unwrap_or(0.0)).unwrap_or(0.0);
        let wall_s = self.started.elapsed().as_secs_f64();
        let st = self.shared.state.lock().expect("sampler state");
        let thermal = st.thermal.as_ref().map(|t| {
            let events = match (self.throttle0, t.throttle_count()) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            };
            t.summarize(&st.thermal_samples, events)
        });
        MonitorReport {
            errors: st.slots.iter().map(|s| s.error.clone()).collect(),
            thermal,
            cost: SamplerCost { interval_ms: self.interval.as_secs_f64() * 1e3, samples: st.samples, cpu_s, wall_s },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::MeterInfo;

    #[test]
    fn counters_wrap_and_power_integrates() {
        let t0 = Instant::now();
        let e = |j: f64| Reading::Energy { joules: j, wrap_joules: Some(100.0) };
        let mut a = Accumulator::default();
        for (i, j) in [90.0, 99.0, 4.0, 10.0].into_iter().enumerate() {
            a.update(t0 + Duration::from_secs(i as u64), e(j)).unwrap();
        }
        assert!((a.joules() - 20.0).abs() < 1e-9, "9 + (5 after the wrap) + 6: {}", a.joules());
        let mut nowrap = Accumulator::default();
        nowrap.update(t0, Reading::Energy { joules: 5.0, wrap_joules: None }).unwrap();
        assert!(nowrap
            .update(t0, Reading::Energy { joules: 1.0, wrap_joules: None })
            .unwrap_err()
            .contains("backwards"));
        let mut p = Accumulator::default();
        p.update(t0, Reading::Power { watts: 10.0 }).unwrap();
        p.update(t0 + Duration::from_millis(500), Reading::Power { watts: 20.0 }).unwrap();
        assert!((p.joules() - 7.5).abs() < 1e-9);
        assert!(p.update(t0, e(1.0)).is_err());
    }

    /// A counter that advances 1 J per read, then fails after `fail_after` reads.
    struct Ticking(MeterInfo, f64, usize);

    impl Meter for Ticking {
        fn info(&self) -> &MeterInfo {
            &self.0
        }
        fn read(&mut self) -> Result<Reading, String> {
            if self.2 == 0 {
                return Err("unplugged".into());
            }
            self.2 -= 1;
            self.1 += 1.0;
            Ok(Reading::Energy { joules: self.1, wrap_joules: None })
        }
    }

    fn ticking(fail_after: usize) -> Box<dyn Meter> {
        let info = MeterInfo { name: "t".into(), source: "test".into(), scope: "device".into() };
        Box::new(Ticking(info, 0.0, fail_after))
    }

    #[test]
    fn marks_read_now_and_the_thread_stops_cleanly() {
        let m = Monitor::start(vec![ticking(usize::MAX)], None, Duration::from_millis(5));
        let a = m.mark();
        std::thread::sleep(Duration::from_millis(60));
        let b = m.mark();
        let d = a.joules_until(&b)[0].unwrap();
        assert!(d >= 2.0, "the sampler and the second mark read the counter in between: {d}");
        let t = Instant::now();
        let report = m.stop();
        assert!(t.elapsed() < Duration::from_secs(1), "stop wakes the sleeping thread instead of waiting a period");
        assert!(report.cost.samples >= 2 && report.cost.wall_s > 0.0);
        assert!(report.cost.cpu_s >= 0.0 && report.cost.cpu_s < report.cost.wall_s);
        assert_eq!(report.errors, [None]);
    }

    #[test]
    fn a_failing_meter_keeps_its_figures_up_to_the_failure() {
        let m = Monitor::start(vec![ticking(3)], None, Duration::from_secs(3600));
        let a = m.mark();
        let b = m.mark();
        assert_eq!(a.joules_until(&b), [Some(1.0)]);
        let c = m.mark();
        assert_eq!(b.joules_until(&c), [None], "after the failure there is no figure, not a zero");
        assert_eq!(m.stop().errors, [Some("unplugged".to_string())]);
    }

    #[test]
    fn nothing_to_sample_starts_no_thread() {
        let m = Monitor::start(Vec::new(), None, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(m.samples(), 0);
        let r = m.stop();
        assert_eq!((r.cost.samples, r.cost.cpu_s), (0, 0.0));
    }
}

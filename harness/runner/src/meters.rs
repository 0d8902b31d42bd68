//! Energy within one cell: the child's meters, idle baseline and per-phase readings, and the parent's turning of
//! them into J/token metrics and the sustained-run summary.

use std::time::Duration;

use edgebench_core::energy::{EnergyResult, MeterResult, SustainedResult, Window};
use edgebench_core::metrics::{self, MetricDef};
use edgebench_core::thermal::ThermalResult;

use crate::protocol::Repetition;
use edgebench_probes::energy::monitor::{Mark, Monitor};
use edgebench_probes::energy::{choose_primary, discover, EnergySpec, NVML_MIN_PHASE_S};
use edgebench_probes::thermal::{self, ThermalProbe};

/// Share of a sustained run's span that its start and end windows each cover.
pub const SUSTAINED_WINDOW_SHARE: f64 = 0.2;

/// The child's meters for one cell.
pub struct CellMeters {
    monitor: Monitor,
    results: Vec<MeterResult>,
    /// For each monitored meter, its index in `results`.
    slots: Vec<usize>,
    primary: (Vec<String>, String),
    idle_s: f64,
    thermal_unavailable: Option<String>,
}

impl CellMeters {
    /// Finds the meters and thermal sources and starts sampling.
    pub fn start(spec: &EnergySpec, device: &str) -> CellMeters {
        let found = discover(spec);
        let results: Vec<MeterResult> = found.iter().map(|f| f.to_result()).collect();
        let primary = choose_primary(&results, &spec.primary, device);
        let mut slots = Vec::new();
        let mut meters = Vec::new();
        for (i, f) in found.into_iter().enumerate() {
            if let Some(m) = f.ok() {
                slots.push(i);
                meters.push(m);
            }
        }
        let (probe, thermal_unavailable) = match ThermalProbe::discover(std::path::Path::new(&spec.sysfs_root)) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        };
        let monitor = Monitor::start(meters, probe, Duration::from_millis(spec.interval_ms.max(1)));
        CellMeters { monitor, results, slots, primary, idle_s: 0.0, thermal_unavailable }
    }

    /// True when at least one meter is readable.
    pub fn any(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Measures average power over `seconds` of doing nothing (before the model loads).
    pub fn idle_baseline(&mut self, seconds: f64) {
        if !self.any() || seconds <= 0.0 {
            return;
        }
        let a = self.monitor.mark();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let b = self.monitor.mark();
        let dt = a.seconds_until(&b);
        for (j, d) in a.joules_until(&b).into_iter().enumerate() {
            self.results[self.slots[j]].idle_w = d.map(|d| d / dt);
        }
        self.idle_s = dt;
    }

    /// Reads every meter now (phase boundary).
    pub fn mark(&self) -> Mark {
        self.monitor.mark()
    }

    /// Records one measured repetition from its three boundary marks.
    pub fn record(&mut self, start: &Mark, prefilled: &Mark, end: &Mark) {
        let pre = start.joules_until(prefilled);
        let dec = prefilled.joules_until(end);
        for (j, (p, d)) in pre.into_iter().zip(dec).enumerate() {
            let r = &mut self.results[self.slots[j]];
            // A meter that failed stops contributing; the lists then end at the failure.
            if let (Some(p), Some(d)) = (p, d) {
                if r.prefill_j.len() == r.decode_j.len() && r.error.is_none() {
                    r.prefill_j.push(p);
                    r.decode_j.push(d);
                }
            }
        }
    }

    /// Stops sampling and returns the energy and thermal results.
    pub fn finish(mut self) -> (EnergyResult, ThermalResult) {
        let report = self.monitor.stop();
        for (j, e) in report.errors.into_iter().enumerate() {
            self.results[self.slots[j]].error = e;
        }
        let (primary, note) = self.primary;
        let thermal = report.thermal.unwrap_or_else(|| {
            thermal::unavailable(self.thermal_unavailable.unwrap_or_else(|| "no thermal probe".into()))
        });
        (EnergyResult { meters: self.results, primary, note, idle_s: self.idle_s, sampler: report.cost }, thermal)
    }
}

fn primary_meters(e: &EnergyResult) -> Vec<&MeterResult> {
    e.primary.iter().filter_map(|n| e.meters.iter().find(|m| &m.name == n)).collect()
}

/// Gross joules of the primary meters per repetition: (prefill, decode); `None` unless every primary meter has it.
fn primary_joules(e: &EnergyResult, i: usize) -> Option<(f64, f64)> {
    let ms = primary_meters(e);
    if ms.is_empty() {
        return None;
    }
    ms.iter().try_fold((0.0, 0.0), |(p, d), m| Some((p + m.prefill_j.get(i)?, d + m.decode_j.get(i)?)))
}

fn idle_w(e: &EnergyResult) -> Option<f64> {
    let ms = primary_meters(e);
    if ms.is_empty() || e.idle_s <= 0.0 {
        return None;
    }
    ms.iter().map(|m| m.idle_w).sum()
}

/// The phases (`prefill`, `decode`) too short for a primary energy counter in some measured repetition: the counter
/// did not move, or the meter is NVML's and the phase lasted less than [`NVML_MIN_PHASE_S`]. Such a counter's
/// readings there are whole update steps or nothing, so no figure for that phase is reported.
pub fn below_resolution(e: &EnergyResult, reps: &[&Repetition]) -> Vec<&'static str> {
    let ms = primary_meters(e);
    let coarse = |m: &MeterResult, j: Option<f64>, secs: f64| {
        j == Some(0.0) || (m.name.starts_with("nvml") && j.is_some() && secs < NVML_MIN_PHASE_S)
    };
    let mut out = Vec::new();
    let prefill = |(i, r): (usize, &&Repetition)| {
        r.prompt_tokens >= 2 && ms.iter().any(|m| coarse(m, m.prefill_j.get(i).copied(), r.prefill_s))
    };
    if reps.iter().enumerate().any(prefill) {
        out.push("prefill");
    }
    let decode = |(i, r): (usize, &&Repetition)| {
        !r.itl_s.is_empty() && ms.iter().any(|m| coarse(m, m.decode_j.get(i).copied(), r.itl_s.iter().sum()))
    };
    if reps.iter().enumerate().any(decode) {
        out.push("decode");
    }
    out
}

/// The energy metrics of a cell from its primary meters and measured repetitions (in order); none for a phase
/// [`below_resolution`] names.
pub fn energy_metrics(e: &EnergyResult, reps: &[&Repetition]) -> Vec<(MetricDef, Vec<f64>)> {
    let idle = idle_w(e);
    let coarse = below_resolution(e, reps);
    let (mut pg, mut pn, mut dg, mut dn, mut dw) = (vec![], vec![], vec![], vec![], vec![]);
    for (i, r) in reps.iter().enumerate() {
        let Some((pj, dj)) = primary_joules(e, i) else { break };
        if r.prompt_tokens >= 2 && !coarse.contains(&"prefill") {
            pg.push(pj / r.prompt_tokens as f64);
            if let Some(w) = idle {
                pn.push((pj - w * r.prefill_s) / r.prompt_tokens as f64);
            }
        }
        if !r.itl_s.is_empty() && !coarse.contains(&"decode") {
            let secs: f64 = r.itl_s.iter().sum();
            let n = r.itl_s.len() as f64;
            dg.push(dj / n);
            dw.push(dj / secs);
            if let Some(w) = idle {
                dn.push((dj - w * secs) / n);
            }
        }
    }
    let mut v = vec![
        (metrics::PREFILL_J_PER_TOKEN, pg),
        (metrics::PREFILL_NET_J_PER_TOKEN, pn),
        (metrics::DECODE_J_PER_TOKEN, dg),
        (metrics::DECODE_NET_J_PER_TOKEN, dn),
        (metrics::DECODE_POWER_W, dw),
    ];
    if let Some(w) = idle {
        v.push((metrics::IDLE_POWER_W, vec![w]));
    }
    v.retain(|(_, s)| !s.is_empty());
    v
}

fn median(v: Vec<f64>) -> Option<f64> {
    (!v.is_empty()).then(|| edgebench_stats::median(&v))
}

/// Start versus end of a cell's measured repetitions (in order): decode speed and decode power in the first and last
/// [`SUSTAINED_WINDOW_SHARE`] of the span. `None` with fewer than two repetitions.
pub fn sustained(reps: &[&Repetition], e: Option<&EnergyResult>) -> Option<SustainedResult> {
    if reps.len() < 2 {
        return None;
    }
    let t0 = reps[0].started_s;
    let end_of = |r: &Repetition| r.started_s + r.ttft_s + r.itl_s.iter().sum::<f64>();
    let t1 = reps.iter().map(|r| end_of(r)).fold(t0, f64::max);
    let span = t1 - t0;
    let w = span * SUSTAINED_WINDOW_SHARE;
    let window = |from: f64, to: f64, pick: &dyn Fn(&Repetition) -> bool| {
        let idx: Vec<usize> = (0..reps.len()).filter(|&i| pick(reps[i])).collect();
        let tps = median(
            idx.iter()
                .filter(|&&i| !reps[i].itl_s.is_empty())
                .map(|&i| reps[i].itl_s.len() as f64 / reps[i].itl_s.iter().sum::<f64>())
                .collect(),
        );
        let watts = e.and_then(|e| {
            let (mut j, mut s) = (0.0, 0.0);
            for &i in &idx {
                let (_, dj) = primary_joules(e, i)?;
                j += dj;
                s += reps[i].itl_s.iter().sum::<f64>();
            }
            (s > 0.0).then(|| j / s)
        });
        Window { from_s: from - t0, to_s: to - t0, repetitions: idx.len(), decode_tps: tps, decode_w: watts }
    };
    // A repetition belongs to a window when it starts in the first window or ends in the last one; at least one each.
    let start = window(t0, t0 + w, &|r: &Repetition| r.started_s <= t0 + w || std::ptr::eq(r, reps[0]));
    let last = reps[reps.len() - 1];
    let end = window(t1 - w, t1, &|r: &Repetition| end_of(r) >= t1 - w || std::ptr::eq(r, last));
    let ratio = |a: Option<f64>, b: Option<f64>| Some(b? / a?).filter(|x| x.is_finite());
    Some(SustainedResult {
        duration_s: span,
        decode_tps_ratio: ratio(start.decode_tps, end.decode_tps),
        decode_w_ratio: ratio(start.decode_w, end.decode_w),
        start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgebench_core::energy::{Availability, SamplerCost};

    fn rep(started_s: f64, prompt: usize, prefill_s: f64, steps: usize, step_s: f64) -> Repetition {
        Repetition {
            warmup: false,
            index: 0,
            prompt_tokens: prompt,
            prefill_s,
            ttft_s: prefill_s,
            itl_s: vec![step_s; steps],
            generated: vec![1; steps + 1],
            started_s,
        }
    }

    fn meter(name: &str, idle_w: f64, prefill_j: &[f64], decode_j: &[f64]) -> MeterResult {
        MeterResult {
            name: name.into(),
            source: "test".into(),
            scope: "cpu-package".into(),
            availability: Availability::Available,
            idle_w: Some(idle_w),
            prefill_j: prefill_j.to_vec(),
            decode_j: decode_j.to_vec(),
            error: None,
        }
    }

    fn energy(meters: Vec<MeterResult>, primary: &[&str]) -> EnergyResult {
        EnergyResult {
            meters,
            primary: primary.iter().map(|s| s.to_string()).collect(),
            note: String::new(),
            idle_s: 3.0,
            sampler: SamplerCost::default(),
        }
    }

    #[test]
    fn joules_per_token_gross_and_net_summed_over_primary_meters() {
        // Two packages; prefill 10 tokens in 1 s, decode 4 steps of 0.5 s.
        let e = energy(
            vec![
                meter("a", 2.0, &[20.0], &[30.0]),
                meter("b", 1.0, &[10.0], &[10.0]),
                meter("c", 9.0, &[99.0], &[99.0]),
            ],
            &["a", "b"],
        );
        let r = rep(0.0, 10, 1.0, 4, 0.5);
        let m: std::collections::BTreeMap<&str, Vec<f64>> =
            energy_metrics(&e, &[&r]).into_iter().map(|(d, v)| (d.key, v)).collect();
        assert_eq!(m["prefill_j_per_token"], [3.0]);
        assert_eq!(m["prefill_net_j_per_token"], [(30.0 - 3.0 * 1.0) / 10.0]);
        assert_eq!(m["decode_j_per_token"], [10.0]);
        assert_eq!(m["decode_net_j_per_token"], [(40.0 - 3.0 * 2.0) / 4.0]);
        assert_eq!(m["decode_power_w"], [20.0]);
        assert_eq!(m["idle_power_w"], [3.0]);
    }

    /// A GPU prefill of a few milliseconds between two NVML counter updates reads 0 J in some repetitions: no prefill
    /// figure at all (the nonzero ones are whole update steps), while the decode phase, long enough, keeps its own.
    #[test]
    fn a_counter_that_did_not_move_in_a_phase_reports_no_figure_for_it() {
        let e = energy(vec![meter("nvml:0", 120.0, &[0.0, 2.5, 0.0], &[30.0, 31.0, 29.0])], &["nvml:0"]);
        let r = rep(0.0, 512, 0.01, 128, 0.01);
        let reps = [&r, &r, &r];
        assert_eq!(below_resolution(&e, &reps), ["prefill"]);
        let keys: Vec<&str> = energy_metrics(&e, &reps).into_iter().map(|(d, _)| d.key).collect();
        assert!(!keys.iter().any(|k| k.starts_with("prefill")), "{keys:?}");
        assert!(keys.contains(&"decode_j_per_token"), "{keys:?}");
        // A meter outside the primary set does not count.
        let other = energy(vec![meter("nvml:0", 120.0, &[0.0], &[0.0]), meter("a", 1.0, &[1.0], &[1.0])], &["a"]);
        assert!(below_resolution(&other, &[&r]).is_empty());
        // NVML's counter that did move, over phases shorter than its resolution (a 0.14 s tg128 on the H200): no
        // figure; over 1.7 s (tg1536): a figure.
        let short = rep(0.0, 1, 0.001, 128, 0.0011);
        let e = energy(vec![meter("nvml:0", 120.0, &[0.0], &[15.3])], &["nvml:0"]);
        assert_eq!(below_resolution(&e, &[&short]), ["decode"]);
        let long = rep(0.0, 1, 0.001, 1536, 0.0011);
        let e = energy(vec![meter("nvml:0", 120.0, &[0.0], &[198.0])], &["nvml:0"]);
        assert!(below_resolution(&e, &[&long]).is_empty());
        assert!(energy_metrics(&e, &[&long]).iter().any(|(d, _)| d.key == "decode_j_per_token"));
    }

    #[test]
    fn no_primary_meter_means_no_energy_metric() {
        let e = energy(vec![meter("a", 2.0, &[20.0], &[30.0])], &[]);
        assert!(energy_metrics(&e, &[&rep(0.0, 10, 1.0, 4, 0.5)]).is_empty());
        let mut no_idle = energy(vec![meter("a", 2.0, &[20.0], &[30.0])], &["a"]);
        no_idle.idle_s = 0.0;
        let keys: Vec<&str> =
            energy_metrics(&no_idle, &[&rep(0.0, 10, 1.0, 4, 0.5)]).iter().map(|(d, _)| d.key).collect();
        assert_eq!(
            keys,
            ["prefill_j_per_token", "decode_j_per_token", "decode_power_w"],
            "net figures need a baseline"
        );
    }

    #[test]
    fn sustained_compares_first_and_last_windows() {
        // Ten repetitions of 10 s each; decode slows from 10 to 8 t/s in the second half, power drops 20 → 16 W.
        let reps: Vec<Repetition> =
            (0..10).map(|i| rep(i as f64 * 10.0, 1, 0.0, 100, if i < 5 { 0.1 } else { 0.125 })).collect();
        let reps: Vec<&Repetition> = reps.iter().collect();
        let dj = [200.0; 10];
        let e = energy(vec![meter("a", 1.0, &[0.0; 10], &dj)], &["a"]);
        let s = sustained(&reps, Some(&e)).unwrap();
        assert_eq!((s.start.repetitions, s.end.repetitions), (3, 3));
        assert!((s.start.decode_tps.unwrap() - 10.0).abs() < 1e-9);
        assert!((s.end.decode_tps.unwrap() - 8.0).abs() < 1e-9);
        assert!((s.decode_tps_ratio.unwrap() - 0.8).abs() < 1e-12);
        assert!((s.decode_w_ratio.unwrap() - 0.8).abs() < 1e-12, "20 W → 16 W");
        assert!(sustained(&reps[..1], None).is_none());
    }
}

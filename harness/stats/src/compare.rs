//! Two runs of one metric compared: the ratio of medians with a bootstrap 95% confidence interval, and a verdict
//! that calls a change only when the whole interval lies beyond a threshold of max(floor, k × measured noise).

pub use edgebench_core::comparison::{Comparison, Rule, Verdict};
use edgebench_core::metrics::Better;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{median, BOOTSTRAP_RESAMPLES};

const SEED: u64 = 0x6761_7465_5f72_6174;

/// Coefficient of variation (sample standard deviation / mean); 0 for fewer than two samples.
pub fn cv(samples: &[f64]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    if mean == 0.0 {
        0.0
    } else {
        var.sqrt() / mean.abs()
    }
}

/// Bootstrap 95% interval of median(current) / median(base), resampling each side independently (fixed seed).
pub fn ratio_of_medians_ci(base: &[f64], current: &[f64]) -> [f64; 2] {
    let point = median(current) / median(base);
    if base.len() < 2 && current.len() < 2 {
        return [point, point];
    }
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut resample = |xs: &[f64], buf: &mut Vec<f64>| {
        buf.clear();
        buf.extend((0..xs.len()).map(|_| xs[rng.random_range(0..xs.len())]));
        median(buf)
    };
    let (mut b, mut c) = (Vec::with_capacity(base.len()), Vec::with_capacity(current.len()));
    let mut ratios: Vec<f64> =
        (0..BOOTSTRAP_RESAMPLES).map(|_| resample(current, &mut c) / resample(base, &mut b)).collect();
    ratios.sort_by(f64::total_cmp);
    [crate::percentile_sorted(&ratios, 0.025), crate::percentile_sorted(&ratios, 0.975)]
}

/// Compares `current` with `base` for a metric where `better` says which direction is good.
/// Both slices must be non-empty with a non-zero base median (the caller reports those cases).
pub fn compare(base: &[f64], current: &[f64], better: Better, rule: Rule) -> Comparison {
    let ratio_ci = ratio_of_medians_ci(base, current);
    let threshold = rule.floor.max(rule.noise_multiple * cv(base).max(cv(current)));
    let big_enough = (median(current) - median(base)).abs() > rule.abs_floor;
    let (worse, improved) = match better {
        Better::Higher => (ratio_ci[1] < 1.0 - threshold, ratio_ci[0] > 1.0 + threshold),
        Better::Lower => (ratio_ci[0] > 1.0 + threshold, ratio_ci[1] < 1.0 - threshold),
    };
    let verdict = if worse && big_enough {
        Verdict::Regressed
    } else if improved && big_enough {
        Verdict::Improved
    } else {
        Verdict::NoSignificantChange
    };
    Comparison {
        base_median: median(base),
        current_median: median(current),
        ratio: median(current) / median(base),
        ratio_ci,
        threshold,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped throughput rule (ci/thresholds.toml).
    const RULE: Rule = Rule { floor: 0.03, noise_multiple: 0.5, abs_floor: 0.0, optional: false };

    #[test]
    fn verdicts_table() {
        let steady = |v: f64| vec![v * 0.995, v, v * 1.005, v * 0.998, v * 1.002];
        // (base, current, better, expected)
        let cases = [
            (steady(100.0), steady(100.0), Better::Higher, Verdict::NoSignificantChange),
            (steady(100.0), steady(80.0), Better::Higher, Verdict::Regressed),
            (steady(100.0), steady(120.0), Better::Higher, Verdict::Improved),
            (steady(100.0), steady(98.0), Better::Higher, Verdict::NoSignificantChange), // below the 3% floor
            (steady(100.0), steady(120.0), Better::Lower, Verdict::Regressed),
            (steady(100.0), steady(80.0), Better::Lower, Verdict::Improved),
            // 20% slower but so noisy (CV ~32%) that the noise term exceeds the change.
            (
                vec![60.0, 100.0, 140.0, 80.0, 120.0],
                vec![48.0, 80.0, 112.0, 64.0, 96.0],
                Better::Higher,
                Verdict::NoSignificantChange,
            ),
            // One sample each: the point ratio against the floor.
            (vec![100.0], vec![90.0], Better::Higher, Verdict::Regressed),
            (vec![100.0], vec![102.0], Better::Lower, Verdict::NoSignificantChange),
        ];
        for (i, (b, c, better, want)) in cases.iter().enumerate() {
            let got = compare(b, c, *better, RULE);
            assert_eq!(got.verdict, *want, "case {i}: {got:?}");
            assert!(got.ratio_ci[0] <= got.ratio && got.ratio <= got.ratio_ci[1], "case {i}: {got:?}");
        }
    }

    /// Lognormal-ish noise: each run has its own offset (between-run drift) plus per-repetition noise.
    fn run(rng: &mut SmallRng, level: f64, n: usize, drift: f64, noise: f64) -> Vec<f64> {
        let mut gauss = || (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
        let offset = 1.0 + drift * gauss();
        (0..n).map(|_| level * offset * (1.0 + noise * gauss())).collect()
    }

    /// (between-run drift, per-repetition noise): a quiet machine and this project's noisy 2-vCPU VM.
    const REGIMES: &[(f64, f64)] = &[(0.01, 0.03), (0.02, 0.04)];

    /// Of 1,000 simulated comparisons, how many gave a verdict `want` accepts: `baselines` pooled 5-repetition base
    /// runs at level 100 against one 5-repetition current run at `level`.
    fn rate(
        seed: u64,
        level: f64,
        (drift, noise): (f64, f64),
        baselines: usize,
        want: &dyn Fn(Verdict) -> bool,
    ) -> usize {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..1000)
            .filter(|_| {
                let b: Vec<f64> = (0..baselines).flat_map(|_| run(&mut rng, 100.0, 5, drift, noise)).collect();
                let c = run(&mut rng, level, 5, drift, noise);
                want(compare(&b, &c, Better::Higher, RULE).verdict)
            })
            .count()
    }

    #[test]
    fn false_positive_rate_on_identical_noisy_runs_is_at_most_5_percent() {
        for &regime in REGIMES {
            let flagged = rate(7, 100.0, regime, 1, &|v| v != Verdict::NoSignificantChange);
            eprintln!("identical pairs flagged, drift/noise {regime:?}: {flagged} of 1000");
            assert!(flagged <= 50, "{regime:?}: {flagged} of 1000 identical pairs flagged");
        }
    }

    #[test]
    fn a_10_percent_regression_is_detected() {
        let caught: Vec<usize> = REGIMES.iter().map(|&r| rate(11, 90.0, r, 1, &|v| v == Verdict::Regressed)).collect();
        eprintln!("10% regressions caught, drift/noise {REGIMES:?}: {caught:?} of 1000");
        assert!(caught[0] >= 800, "quiet machine: only {} of 1000 caught", caught[0]);
        // On the noisy VM five repetitions cannot separate 10% from drift reliably; more repetitions or the re-run
        // in ci/gate.sh are the remedy. Pinned so a change to the rule shows up here.
        assert!(caught[1] >= 500, "noisy VM: only {} of 1000 caught", caught[1]);
    }

    /// Pooling several baseline runs puts their drift into the noise term. Regime: 5% between-run drift and 2%
    /// per-repetition noise, like two `.ci/run` runs on this project's VM (decode differed by 5.4%).
    #[test]
    fn pooled_baselines_tame_between_run_drift() {
        let regime = (0.05, 0.02);
        let flagged = |baselines| rate(13, 100.0, regime, baselines, &|v| v != Verdict::NoSignificantChange);
        let caught = |baselines| rate(17, 85.0, regime, baselines, &|v| v == Verdict::Regressed);
        let (one, five) = (flagged(1), flagged(5));
        let (caught_one, caught_five) = (caught(1), caught(5));
        eprintln!("5% drift: identical flagged {one}/1000 with 1 baseline, {five}/1000 with 5 pooled; 15% slowdowns caught {caught_one} vs {caught_five}");
        assert!(five < one, "pooling must lower false positives under drift");
    }

    /// How one metric varies between identical runs: `n` samples a run around `level`; each run scaled by
    /// exp(`drift` × N(0,1)), each sample by exp(`noise` × N(0,1)), plus an absolute N(0, `jitter`²) and, with
    /// probability `p_spike`, a delay uniform in [0, `spike`] (in the metric's unit: a load preempted by other work).
    #[derive(Debug, Clone, Copy)]
    struct Noise {
        level: f64,
        n: usize,
        drift: f64,
        noise: f64,
        jitter: f64,
        p_spike: f64,
        spike: f64,
    }

    const STILL: Noise = Noise { level: 1.0, n: 1, drift: 0.0, noise: 0.0, jitter: 0.0, p_spike: 0.0, spike: 0.0 };

    fn noisy_run(rng: &mut SmallRng, z: &Noise) -> Vec<f64> {
        let mut gauss = || (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
        let offset = (z.drift * gauss()).exp();
        let mut v: Vec<f64> =
            (0..z.n).map(|_| z.level * offset * (z.noise * gauss()).exp() + z.jitter * gauss()).collect();
        for x in &mut v {
            if rng.random::<f64>() < z.p_spike {
                *x += z.spike * rng.random::<f64>();
            }
        }
        v
    }

    /// The shipped rule for `metric` (ci/thresholds.toml).
    fn shipped(metric: &str) -> Rule {
        crate::gate::Thresholds::parse(crate::gate::DEFAULT_THRESHOLDS).unwrap().rule(metric)
    }

    /// Of 1,000 simulated pairs (base with `base`, current with `current`) compared under `rule` for `metric`: how
    /// many were flagged either way, and how many regressed.
    fn rate_under(seed: u64, metric: &str, rule: Rule, base: Noise, current: Noise) -> (usize, usize) {
        let better = edgebench_core::metrics::lookup(metric).unwrap().better;
        let mut rng = SmallRng::seed_from_u64(seed);
        let verdicts: Vec<Verdict> = (0..1000)
            .map(|_| {
                let (b, c) = (noisy_run(&mut rng, &base), noisy_run(&mut rng, &current));
                compare(&b, &c, better, rule).verdict
            })
            .collect();
        let count = |f: &dyn Fn(&Verdict) -> bool| verdicts.iter().filter(|v| f(v)).count();
        (count(&|v| *v != Verdict::NoSignificantChange), count(&|v| *v == Verdict::Regressed))
    }

    /// Noise of each metric between identical runs, with where the figures come from. "Mock A/A" and "native A/A":
    /// the A/A runs described at `[metric.load_ms]` in ci/thresholds.toml (the 300 scripted pairs of mock runs; the
    /// 20 pairs of native runs on the default model, quick suite, 1 thread; this project's 2-vCPU VM, other builds
    /// running). "VM regime": the noisy-VM regime of the tests above (2% drift, 4% noise). Energy was not measured
    /// (no meter is readable on that VM): J/token and watts are given the VM regime of the times they divide.
    fn a_a_regimes() -> Vec<(&'static str, Noise, &'static str)> {
        let vm = |level, n| Noise { level, n, drift: 0.02, noise: 0.04, ..STILL };
        vec![
            ("prefill_tps", vm(90.0, 3), "VM regime, quick suite's 3 repetitions"),
            ("decode_tps", vm(20.0, 3), "VM regime, quick suite's 3 repetitions"),
            ("ttft_ms", vm(440.0, 3), "VM regime, quick suite's 3 repetitions"),
            ("itl_ms", vm(49.0, 24), "VM regime, 8 steps × 3 repetitions"),
            // Mock A/A, per series of 100 pairs: typical run median 0.19–0.26 ms, median within-run CV 0.12–0.39,
            // log-sd of run medians 0.31–0.34 in the series without preemption; 6 of 400 loads preempted (over 5×
            // the median) in the other, the longest for 20.4 ms.
            (
                "load_ms",
                Noise { level: 0.22, n: 2, drift: 0.3, noise: 0.35, p_spike: 0.015, spike: 20.0, ..STILL },
                "mock A/A, tiny suite's 2 loads",
            ),
            // Native A/A: median within-run CV 8.6%. The between-run drift measured there (log-sd 0.34, while other
            // builds came and went) is no noise a threshold should absorb: the VM regime's 2% is used instead.
            (
                "load_ms",
                Noise { level: 700.0, n: 3, drift: 0.02, noise: 0.086, ..STILL },
                "native A/A within-run noise",
            ),
            // Peak RSS: sd of the one sample 0.23–0.26 MiB (mock), 0.42 MiB (native).
            ("peak_rss_mib", Noise { level: 15.1, jitter: 0.26, ..STILL }, "mock A/A"),
            ("peak_rss_mib", Noise { level: 153.0, jitter: 0.42, ..STILL }, "native A/A"),
            // Peak GPU memory: the same figure to the MiB in two H200 runs of the same cells.
            ("peak_device_mib", Noise { level: 840.0, ..STILL }, "H200 A/A, two runs"),
            ("rss_anon_mib", Noise { level: 140.5, jitter: 0.0024, ..STILL }, "native A/A"),
            ("rss_file_mib", Noise { level: 12.6, jitter: 0.42, ..STILL }, "native A/A"),
            ("prefill_j_per_token", vm(0.05, 3), "assumed: VM regime"),
            ("prefill_net_j_per_token", vm(0.02, 3), "assumed: VM regime"),
            ("decode_j_per_token", vm(0.2, 3), "assumed: VM regime"),
            ("decode_net_j_per_token", vm(0.1, 3), "assumed: VM regime"),
            ("decode_power_w", vm(4.0, 3), "assumed: VM regime"),
            ("idle_power_w", vm(2.0, 1), "assumed: VM regime"),
            // Drift figures are deterministic for one build and model: one identical sample each.
            ("kld_mean", Noise { level: 0.003, ..STILL }, "deterministic"),
            ("same_top1_pct", Noise { level: 97.0, ..STILL }, "deterministic"),
            ("ppl_ratio", Noise { level: 1.01, ..STILL }, "deterministic"),
        ]
    }

    /// The A/A false-positive rate of the shipped thresholds: 1,000 simulated identical pairs per metric and regime.
    /// A gate fails on a regression only; at most 2.5% of identical pairs may regress on any metric under the VM
    /// regime (its throughput rule allows about that by design, see above), and at most 0.5% on load time and
    /// memory, whose rules were fitted to measured A/A runs.
    #[test]
    fn shipped_thresholds_rarely_fail_identical_runs() {
        let regimes = a_a_regimes();
        for m in edgebench_core::metrics::ALL {
            assert!(regimes.iter().any(|(k, ..)| *k == m.key), "{} has no A/A regime here", m.key);
        }
        let mut over = Vec::new();
        for (i, (metric, noise, source)) in regimes.into_iter().enumerate() {
            let (flagged, regressed) = rate_under(100 + i as u64, metric, shipped(metric), noise, noise);
            eprintln!("{metric} ({source}): {flagged} of 1000 identical pairs flagged, {regressed} regressed");
            if matches!(metric, "load_ms" | "peak_rss_mib") {
                let before = Rule { abs_floor: 0.0, ..shipped(metric) };
                let (f, r) = rate_under(100 + i as u64, metric, before, noise, noise);
                eprintln!("  without its abs_floor: {f} flagged, {r} regressed");
            }
            let bound =
                if matches!(metric, "load_ms" | "peak_rss_mib" | "peak_device_mib" | "rss_anon_mib" | "rss_file_mib") {
                    5
                } else {
                    30
                };
            if regressed > bound {
                over.push(format!("{metric} ({source}): {regressed} of 1000 identical pairs regressed"));
            }
        }
        assert!(over.is_empty(), "{over:#?}");
    }

    /// The absolute floors fitted for load time and peak memory cost nothing on real models (the same regressions are
    /// caught as without them) and still catch a tiny model's regressions that matter.
    #[test]
    fn fitted_absolute_floors_still_catch_regressions_that_matter() {
        let tiny_load = Noise { level: 0.22, n: 2, drift: 0.3, noise: 0.35, p_spike: 0.015, spike: 20.0, ..STILL };
        let cases = [
            // The default model's load (native A/A noise) 50% and 100% slower; 5% and 10% more peak memory.
            ("load_ms", Noise { level: 700.0, n: 3, drift: 0.02, noise: 0.086, ..STILL }, 1.5, None),
            ("load_ms", Noise { level: 700.0, n: 3, drift: 0.02, noise: 0.086, ..STILL }, 2.0, None),
            ("peak_rss_mib", Noise { level: 153.0, jitter: 0.42, ..STILL }, 1.05, None),
            ("peak_rss_mib", Noise { level: 153.0, jitter: 0.42, ..STILL }, 1.1, None),
            // A tiny model's load going from a fraction of a millisecond to 50 ms (say, a conversion at load).
            ("load_ms", tiny_load, 50.0 / 0.22, Some(950)),
            // The tiny mock's peak memory 5 MiB higher.
            ("peak_rss_mib", Noise { level: 15.1, jitter: 0.26, ..STILL }, 20.1 / 15.1, Some(1000)),
        ];
        for (i, (metric, base, factor, want)) in cases.into_iter().enumerate() {
            let current = Noise { level: base.level * factor, ..base };
            let (_, caught) = rate_under(200 + i as u64, metric, shipped(metric), base, current);
            let without = Rule { abs_floor: 0.0, ..shipped(metric) };
            let (_, caught_without) = rate_under(200 + i as u64, metric, without, base, current);
            eprintln!(
                "{metric} at {} × {factor:.2}: {caught} of 1000 caught ({caught_without} without abs_floor)",
                base.level
            );
            match want {
                None => assert_eq!(caught, caught_without, "{metric} at {} × {factor}", base.level),
                Some(want) => assert!(caught >= want, "{metric} at {} × {factor}: {caught} of 1000", base.level),
            }
        }
    }

    #[test]
    fn abs_floor_ignores_large_relative_changes_of_tiny_values() {
        let rule = Rule { floor: 0.05, noise_multiple: 0.0, abs_floor: 0.01, optional: false };
        // KLD 0.004 -> 0.008: +100% but 0.004 nats.
        assert_eq!(compare(&[0.004], &[0.008], Better::Lower, rule).verdict, Verdict::NoSignificantChange);
        assert_eq!(compare(&[0.004], &[0.05], Better::Lower, rule).verdict, Verdict::Regressed);
    }

    #[test]
    fn cv_of_constant_and_single_samples_is_zero() {
        assert_eq!(cv(&[3.0, 3.0, 3.0]), 0.0);
        assert_eq!(cv(&[3.0]), 0.0);
        assert!((cv(&[1.0, 3.0]) - (2f64.sqrt() / 2.0)).abs() < 1e-12);
    }
}

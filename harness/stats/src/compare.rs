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
    const RULE: Rule = Rule { floor: 0.03, noise_multiple: 0.5, abs_floor: 0.0 };

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

    #[test]
    fn abs_floor_ignores_large_relative_changes_of_tiny_values() {
        let rule = Rule { floor: 0.05, noise_multiple: 0.0, abs_floor: 0.01 };
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

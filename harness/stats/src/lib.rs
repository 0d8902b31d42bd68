//! Pure numerics for benchmark samples: percentiles, summaries, confidence intervals, outliers; accuracy drift
//! statistics; the gate's comparison of two results (`gate`); and stored summaries checked against their samples
//! (`verify`).
//!
//! Deterministic: the bootstrap uses a fixed seed, so the same samples always give the same interval.

pub mod compare;
pub mod drift;
pub mod gate;
pub mod recommend;
pub mod verify;

use edgebench_core::results::Summary;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Bootstrap resamples used for confidence intervals of the median.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
const SEED: u64 = 0x6564_6765_6265_6e63;

/// Percentile `q` in [0, 1] of sorted samples, linear interpolation between closest ranks (NumPy's default).
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Sorted copy, NaNs removed.
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Median of unsorted samples.
pub fn median(samples: &[f64]) -> f64 {
    percentile_sorted(&sorted(samples), 0.5)
}

/// Two-sided 97.5% quantile of Student's t with `df` degrees of freedom.
pub fn t975(df: usize) -> f64 {
    const T: &[f64] = &[
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        // Cornish-Fisher expansion around the normal quantile; within 0.001 of the table beyond 30.
        _ => {
            let z: f64 = 1.959964;
            let d = df as f64;
            z + (z.powi(3) + z) / (4.0 * d) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// Percentile-bootstrap 95% interval of the median; `None` below 3 samples.
pub fn bootstrap_median_ci(samples: &[f64]) -> Option<[f64; 2]> {
    let s = sorted(samples);
    if s.len() < 3 {
        return None;
    }
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut buf = vec![0.0; s.len()];
    let mut medians: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            for x in buf.iter_mut() {
                *x = s[rng.random_range(0..s.len())];
            }
            buf.sort_by(f64::total_cmp);
            percentile_sorted(&buf, 0.5)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    Some([percentile_sorted(&medians, 0.025), percentile_sorted(&medians, 0.975)])
}

/// Summary statistics of `samples` (NaNs ignored).
pub fn summarize(samples: &[f64]) -> Summary {
    summarize_with(samples, true)
}

/// [`summarize`], with the bootstrap interval of the median (the costly part: 2,000 resamples) only if `median_ci`.
pub(crate) fn summarize_with(samples: &[f64], median_ci: bool) -> Summary {
    let s = sorted(samples);
    let n = s.len();
    if n == 0 {
        return Summary::default();
    }
    let mean = s.iter().sum::<f64>() / n as f64;
    let stddev = if n > 1 { (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    let (q1, q3) = (percentile_sorted(&s, 0.25), percentile_sorted(&s, 0.75));
    let iqr = q3 - q1;
    let outliers = s.iter().filter(|&&x| x < q1 - 1.5 * iqr || x > q3 + 1.5 * iqr).count();
    let half = t975(n.saturating_sub(1)) * stddev / (n as f64).sqrt();
    Summary {
        n,
        median: percentile_sorted(&s, 0.5),
        mean,
        stddev,
        min: s[0],
        max: s[n - 1],
        p50: percentile_sorted(&s, 0.5),
        p90: percentile_sorted(&s, 0.9),
        p99: percentile_sorted(&s, 0.99),
        median_ci95: if median_ci { bootstrap_median_ci(&s) } else { None },
        mean_ci95: (n > 1).then_some([mean - half, mean + half]),
        cv: if mean != 0.0 { stddev / mean.abs() } else { 0.0 },
        outliers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_computed_summary() {
        let s = summarize(&[4.0, 1.0, 3.0, 2.0, 100.0]);
        assert_eq!((s.n, s.median, s.min, s.max), (5, 3.0, 1.0, 100.0));
        assert_eq!(s.mean, 22.0);
        // sum of squared deviations: 21² + 20² + 19² + 18² + 78² = 7610; / 4 = 1902.5
        assert!((s.stddev - 1902.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.outliers, 1, "100 lies beyond Q3 + 1.5 IQR = 4 + 3");
        assert!((s.p90 - 61.6).abs() < 1e-12, "0.9 * 4 = 3.6 → 4 + 0.6 * 96");
        let [lo, hi] = s.mean_ci95.unwrap();
        assert!((hi - lo - 2.0 * 2.776 * 1902.5f64.sqrt() / 5f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn small_samples() {
        let s = summarize(&[7.0]);
        assert_eq!((s.median, s.stddev, s.cv), (7.0, 0.0, 0.0));
        assert_eq!((s.median_ci95, s.mean_ci95), (None, None));
        assert_eq!(summarize(&[]).n, 0);
        assert_eq!(summarize(&[f64::NAN, 2.0]).n, 1);
    }

    #[test]
    fn t_quantiles_are_continuous_past_the_table() {
        assert!((t975(30) - t975(31)).abs() < 0.01);
        assert!((t975(1000) - 1.962).abs() < 0.001);
    }

    #[test]
    fn bootstrap_is_deterministic() {
        let x: Vec<f64> = (0..20).map(|i| (i * 7 % 13) as f64).collect();
        assert_eq!(bootstrap_median_ci(&x), bootstrap_median_ci(&x));
    }

    proptest! {
        #[test]
        fn median_ci_brackets_the_median(x in prop::collection::vec(0.0f64..1000.0, 3..40)) {
            let s = summarize(&x);
            let [lo, hi] = s.median_ci95.unwrap();
            prop_assert!(lo <= s.median + 1e-9 && s.median <= hi + 1e-9);
            prop_assert!(s.min <= lo && hi <= s.max);
            prop_assert!(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max);
        }
    }
}

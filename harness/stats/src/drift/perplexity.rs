//! Accuracy statistics with llama-perplexity's `--kl-divergence` definitions: perplexities and their ratio, KL
//! divergence, Δp and same-top-1 per scored token, each mean with the same standard error.
//!
//! One deliberate difference in storage, none in definitions: llama-perplexity keeps the reference's
//! log-probabilities as 16-bit steps between (max logit − 16) and the max; edgebench keeps every reference
//! log-probability above [`LOG_PROB_FLOOR`] as an exact f32 (the same ones llama.cpp's KL sum uses), so a backend
//! compared with itself gives exactly zero.

use edgebench_core::drift::{Distribution, DriftStats, Estimate};

use super::argmax;

/// Reference log-probabilities at or below this (nats) are left out of the KL sum, as llama-perplexity does.
pub const LOG_PROB_FLOOR: f32 = -16.0;

/// Natural-log softmax in f32 with f64 accumulation. Reference and candidate both go through this function, so
/// identical logits give bit-identical log-probabilities.
pub fn log_probs(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let sum: f64 = logits.iter().map(|&x| ((x - max) as f64).exp()).sum();
    let lse = sum.ln();
    logits.iter().map(|&x| ((x - max) as f64 - lse) as f32).collect()
}

/// What the reference said at one scored position.
#[derive(Debug, Clone, PartialEq)]
pub struct RefRow {
    /// The token that follows (scored).
    pub token: u32,
    /// The reference's log-probability of `token` (exact, even below the floor).
    pub token_log_prob: f32,
    /// The reference's most likely token (first on ties).
    pub top: u32,
    /// Every (token, log-probability) above [`LOG_PROB_FLOOR`], ascending by token.
    pub entries: Vec<(u32, f32)>,
}

impl RefRow {
    /// Builds a row from the reference's logits at a position and the token that follows it.
    pub fn from_logits(logits: &[f32], token: u32) -> Self {
        let lp = log_probs(logits);
        let entries = lp.iter().enumerate().filter(|(_, &l)| l > LOG_PROB_FLOOR).map(|(i, &l)| (i as u32, l)).collect();
        RefRow { token, token_log_prob: lp[token as usize], top: argmax(logits).unwrap_or(0) as u32, entries }
    }
}

/// Running sums over scored tokens, the same sums llama-perplexity keeps, plus every per-token value for the
/// percentiles.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_ref: f64,
    sum_nll_ref2: f64,
    sum_nll_nll_ref: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_dp: f64,
    sum_dp2: f64,
    sum_dp4: f64,
    same_top: usize,
    kld: Vec<f64>,
    delta_p: Vec<f64>,
}

impl Accumulator {
    /// Scores one position: the reference's row against the candidate's logits there.
    pub fn add(&mut self, reference: &RefRow, candidate: &[f32]) -> Result<(), String> {
        let n = candidate.len();
        if reference.token as usize >= n || reference.entries.last().is_some_and(|&(i, _)| i as usize >= n) {
            return Err(format!("reference rows index a vocabulary larger than the candidate's {n} logits"));
        }
        if let Some(i) = candidate.iter().position(|x| !x.is_finite()) {
            return Err(format!("candidate logit {i} is {}", candidate[i]));
        }
        let lq = log_probs(candidate);
        let nll = -(lq[reference.token as usize] as f64);
        let nll_ref = -(reference.token_log_prob as f64);
        self.sum_nll += nll;
        self.sum_nll2 += nll * nll;
        self.sum_nll_ref += nll_ref;
        self.sum_nll_ref2 += nll_ref * nll_ref;
        self.sum_nll_nll_ref += nll * nll_ref;
        let kld: f64 =
            reference.entries.iter().map(|&(i, lp)| (lp as f64).exp() * (lp as f64 - lq[i as usize] as f64)).sum();
        self.sum_kld += kld;
        self.sum_kld2 += kld * kld;
        self.kld.push(kld);
        let dp = (-nll).exp() - (-nll_ref).exp();
        self.sum_dp += dp;
        self.sum_dp2 += dp * dp;
        self.sum_dp4 += dp * dp * dp * dp;
        self.delta_p.push(dp);
        self.same_top += usize::from(argmax(candidate) == Some(reference.top as usize));
        Ok(())
    }

    /// Tokens scored so far.
    pub fn count(&self) -> usize {
        self.kld.len()
    }

    /// The statistics; `None` before any token.
    pub fn finish(&self) -> Option<DriftStats> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let ln_ppl = mean_and_uncertainty(self.sum_nll, self.sum_nll2, n);
        let ln_ppl_ref = mean_and_uncertainty(self.sum_nll_ref, self.sum_nll_ref2, n);
        let cov = covariance(self.sum_nll, self.sum_nll_ref, self.sum_nll_nll_ref, n);
        let ln_prob_correlation =
            (ln_ppl.err > 0.0 && ln_ppl_ref.err > 0.0).then(|| cov / (ln_ppl.err * ln_ppl_ref.err));
        let ppl = Estimate { value: ln_ppl.value.exp(), err: ln_ppl.value.exp() * ln_ppl.err };
        let ppl_ref = Estimate { value: ln_ppl_ref.value.exp(), err: ln_ppl_ref.value.exp() * ln_ppl_ref.err };
        let ratio_err = (ln_ppl.err.powi(2) + ln_ppl_ref.err.powi(2) - 2.0 * cov).max(0.0).sqrt();
        let ln_ppl_ratio = Estimate { value: ln_ppl.value - ln_ppl_ref.value, err: ratio_err };
        let ppl_ratio = Estimate { value: ln_ppl_ratio.value.exp(), err: ln_ppl_ratio.value.exp() * ratio_err };
        let ppl_cov = ppl.value * ppl_ref.value * cov;
        let ppl_diff = Estimate {
            value: ppl.value - ppl_ref.value,
            err: (ppl.err.powi(2) + ppl_ref.err.powi(2) - 2.0 * ppl_cov).max(0.0).sqrt(),
        };
        let mse = mean_and_uncertainty(self.sum_dp2, self.sum_dp4, n);
        let rms = mse.value.sqrt();
        let delta_p_rms = Estimate { value: rms, err: if rms > 0.0 { 0.5 / rms * mse.err } else { 0.0 } };
        let same = self.same_top as f64 / n as f64;
        let same_err = if n > 1 { (same * (1.0 - same) / (n - 1) as f64).sqrt() } else { 0.0 };
        Some(DriftStats {
            tokens: n,
            ppl,
            ppl_ref,
            ln_prob_correlation,
            ln_ppl_ratio,
            ppl_ratio,
            ppl_diff,
            kld: mean_and_uncertainty(self.sum_kld, self.sum_kld2, n),
            kld_distribution: distribution(&self.kld),
            delta_p: mean_and_uncertainty(self.sum_dp, self.sum_dp2, n),
            delta_p_distribution: distribution(&self.delta_p),
            delta_p_rms,
            same_top1: Estimate { value: same, err: same_err },
        })
    }
}

/// Mean of `n` values from their sum and sum of squares, with the standard error of the mean
/// (√(population variance / (n − 1))); the error is 0 for 10 values or fewer, as in llama-perplexity.
pub fn mean_and_uncertainty(sum: f64, sum2: f64, n: usize) -> Estimate {
    if n == 0 {
        return Estimate::default();
    }
    let mean = sum / n as f64;
    let var = sum2 / n as f64 - mean * mean;
    let err = if var > 0.0 && n > 10 { (var / (n - 1) as f64).sqrt() } else { 0.0 };
    Estimate { value: mean, err }
}

/// Covariance of the two means (population covariance / (n − 1)); 0 below 10 values, as in llama-perplexity.
pub fn covariance(sum_a: f64, sum_b: f64, sum_ab: f64, n: usize) -> f64 {
    if n < 10 {
        return 0.0;
    }
    let n_f = n as f64;
    (sum_ab / n_f - (sum_a / n_f) * (sum_b / n_f)) / (n_f - 1.0)
}

/// Percentile of sorted values by linear interpolation between neighbours at `fraction × (n − 1)`.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    match sorted {
        [] => f64::NAN,
        _ if fraction <= 0.0 => sorted[0],
        _ if fraction >= 1.0 => sorted[sorted.len() - 1],
        _ => {
            let p = fraction * (sorted.len() - 1) as f64;
            let i = p as usize;
            let t = p - i as f64;
            (1.0 - t) * sorted[i] + t * sorted[(i + 1).min(sorted.len() - 1)]
        }
    }
}

fn distribution(values: &[f64]) -> Distribution {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n.is_multiple_of(2) { 0.5 * (v[n / 2] + v[n / 2 - 1]) } else { v[n / 2] };
    let p = |f| percentile(&v, f);
    Distribution {
        max: v[n - 1],
        p99_9: p(0.999),
        p99: p(0.99),
        p95: p(0.95),
        p90: p(0.90),
        p75: p(0.75),
        median,
        p25: p(0.25),
        p10: p(0.10),
        p5: p(0.05),
        p1: p(0.01),
        p0_1: p(0.001),
        min: v[0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn a_model_against_itself_is_exactly_zero() {
        let mut acc = Accumulator::default();
        let mut state = 12345u64;
        for t in 0..50u32 {
            let logits: Vec<f32> = (0..300)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 33) as f32 / (1u64 << 31) as f32) * 12.0 - 6.0
                })
                .collect();
            acc.add(&RefRow::from_logits(&logits, t * 5), &logits).unwrap();
        }
        let s = acc.finish().unwrap();
        assert_eq!(s.kld.value, 0.0);
        assert_eq!(s.kld_distribution.max, 0.0);
        assert_eq!(s.same_top1.value, 1.0);
        assert_eq!(s.same_top1.err, 0.0);
        assert_eq!(s.ppl_ratio.value, 1.0);
        assert_eq!(s.ln_ppl_ratio.err, 0.0);
        assert_eq!(s.delta_p_rms.value, 0.0);
        assert!(close(s.ln_prob_correlation.unwrap(), 1.0, 1e-12));
        assert_eq!(s.ppl.value, s.ppl_ref.value);
    }

    #[test]
    fn one_position_by_hand() {
        // Reference P = (1/2, 1/2), candidate Q = (1/4, 3/4), next token 1.
        // KL(P‖Q) = 1/2 ln 2 + 1/2 ln(2/3) = 0.143841036…; Δp = 3/4 − 1/2; PPL(Q) = 4/3, PPL(ref) = 2.
        let mut acc = Accumulator::default();
        acc.add(&RefRow::from_logits(&[0.0, 0.0], 1), &[0.0, 3f32.ln()]).unwrap();
        let s = acc.finish().unwrap();
        assert!(close(s.kld.value, 0.143_841_036_225_890_2, 1e-7), "{}", s.kld.value);
        assert!(close(s.delta_p.value, 0.25, 1e-7));
        assert!(close(s.delta_p_rms.value, 0.25, 1e-7));
        assert!(close(s.ppl.value, 4.0 / 3.0, 1e-6) && close(s.ppl_ref.value, 2.0, 1e-6));
        assert!(close(s.ppl_ratio.value, 2.0 / 3.0, 1e-6));
        assert!(close(s.ln_ppl_ratio.value, (2.0f64 / 3.0).ln(), 1e-6));
        // Reference ties: its top is the first index; the candidate's is index 1.
        assert_eq!(s.same_top1.value, 0.0);
        // One value: no uncertainty, no correlation.
        assert_eq!((s.kld.err, s.ln_prob_correlation), (0.0, None));
    }

    #[test]
    fn uncertainties_follow_the_llama_perplexity_formulas() {
        // 20 positions over a 3-token vocabulary with varying candidate error; the expected values are computed
        // here from the per-token figures directly (population variance / (n − 1)).
        let mut acc = Accumulator::default();
        let (mut nll, mut nll_ref, mut kld, mut dp, mut same) = (vec![], vec![], vec![], vec![], 0);
        for i in 0..20 {
            let r = [0.5f32 * (i % 3) as f32, 1.0, -0.25 * i as f32];
            let c = [r[0] + 0.05 * (i % 4) as f32, r[1] - 0.1, r[2] + 0.02 * i as f32];
            let tok = (i % 3) as u32;
            acc.add(&RefRow::from_logits(&r, tok), &c).unwrap();
            let (lp, lq) = (log_probs(&r), log_probs(&c));
            nll.push(-(lq[tok as usize] as f64));
            nll_ref.push(-(lp[tok as usize] as f64));
            kld.push((0..3).map(|j| (lp[j] as f64).exp() * (lp[j] as f64 - lq[j] as f64)).sum::<f64>());
            dp.push((lq[tok as usize] as f64).exp() - (lp[tok as usize] as f64).exp());
            same += usize::from(argmax(&r) == argmax(&c));
        }
        let s = acc.finish().unwrap();
        let n = 20.0;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
        let sem = |v: &[f64]| {
            let m = mean(v);
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n / (n - 1.0)).sqrt()
        };
        assert!(close(s.kld.value, mean(&kld), 1e-12) && close(s.kld.err, sem(&kld), 1e-9));
        assert!(close(s.delta_p.value, mean(&dp), 1e-12) && close(s.delta_p.err, sem(&dp), 1e-9));
        let (mn, mr) = (mean(&nll), mean(&nll_ref));
        assert!(close(s.ppl.value, mn.exp(), 1e-9) && close(s.ppl.err, mn.exp() * sem(&nll), 1e-9));
        let cov = nll.iter().zip(&nll_ref).map(|(a, b)| (a - mn) * (b - mr)).sum::<f64>() / n / (n - 1.0);
        let pearson = cov / (sem(&nll) * sem(&nll_ref));
        assert!(close(s.ln_prob_correlation.unwrap(), pearson, 1e-9));
        let diff: Vec<f64> = nll.iter().zip(&nll_ref).map(|(a, b)| a - b).collect();
        // The ratio's error from the covariance formula equals the standard error of the per-token differences.
        assert!(close(s.ln_ppl_ratio.value, mean(&diff), 1e-12) && close(s.ln_ppl_ratio.err, sem(&diff), 1e-9));
        let p = same as f64 / n;
        assert!(
            close(s.same_top1.value, p, 1e-12) && close(s.same_top1.err, (p * (1.0 - p) / (n - 1.0)).sqrt(), 1e-12)
        );
        let sq: Vec<f64> = dp.iter().map(|x| x * x).collect();
        assert!(close(s.delta_p_rms.value, mean(&sq).sqrt(), 1e-12));
        assert!(close(s.delta_p_rms.err, 0.5 / mean(&sq).sqrt() * sem(&sq), 1e-9));
    }

    #[test]
    fn percentiles_interpolate_and_the_median_averages() {
        let v: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 4.5);
        assert_eq!(percentile(&v, 0.999), 0.999 * 9.0);
        assert_eq!(percentile(&v, 0.0), 0.0);
        assert_eq!(percentile(&v, 1.0), 9.0);
        let d = distribution(&[3.0, 1.0, 2.0, 4.0]);
        assert_eq!((d.min, d.median, d.max), (1.0, 2.5, 4.0));
        assert_eq!(distribution(&[5.0, 1.0, 3.0]).median, 3.0);
    }

    #[test]
    fn floor_drops_only_the_far_tail() {
        let mut logits = vec![0.0f32; 4];
        logits[3] = -40.0;
        let row = RefRow::from_logits(&logits, 3);
        assert_eq!(row.entries.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(row.token_log_prob < -40.0, "the scored token keeps its exact log-probability");
        let mut acc = Accumulator::default();
        assert!(acc.add(&row, &[0.0, 1.0]).unwrap_err().contains("vocabulary"));
        assert!(acc.add(&row, &[0.0, f32::NAN, 0.0, 0.0]).unwrap_err().contains("NaN"));
        assert!(acc.finish().is_none());
    }
}

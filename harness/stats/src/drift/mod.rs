//! Accuracy drift statistics: distances between two backends' (or two quantizations') next-token distributions,
//! computed from raw logits in f64 (log-softmax, KL divergence, top-1 agreement, a running comparison over many
//! positions), and llama-perplexity's statistics of a candidate against a cached reference (`perplexity`).

mod perplexity;

pub use perplexity::*;

/// Natural-log softmax of `logits`, in f64 (stable: the maximum is subtracted first).
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let lse = max + logits.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
    logits.iter().map(|&x| x as f64 - lse).collect()
}

/// KL(P‖Q) in nats, P the reference distribution, both given as logits over the same vocabulary.
pub fn kl_divergence(reference: &[f32], candidate: &[f32]) -> f64 {
    assert_eq!(reference.len(), candidate.len(), "KL divergence of distributions over different vocabularies");
    let lp = log_softmax(reference);
    let lq = log_softmax(candidate);
    // Clamp: rounding can make a true zero come out as -1e-17.
    lp.iter().zip(&lq).map(|(&p, &q)| p.exp() * (p - q)).sum::<f64>().max(0.0)
}

/// Index of the largest logit (first on ties), `None` when empty or all NaN.
pub fn argmax(logits: &[f32]) -> Option<usize> {
    logits
        .iter()
        .enumerate()
        .filter(|(_, x)| !x.is_nan())
        .fold(None, |best: Option<(usize, f32)>, (i, &x)| match best {
            Some((_, b)) if b >= x => best,
            _ => Some((i, x)),
        })
        .map(|(i, _)| i)
}

/// Running comparison of reference and candidate logits over many positions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogitComparison {
    /// KL(reference‖candidate) per position, nats.
    pub kld: Vec<f64>,
    /// Positions where both pick the same top token.
    pub same_top1: usize,
    /// Largest |reference − candidate| over all logits seen.
    pub max_abs_diff: f32,
}

impl LogitComparison {
    /// Adds one position.
    pub fn add(&mut self, reference: &[f32], candidate: &[f32]) {
        self.kld.push(kl_divergence(reference, candidate));
        self.same_top1 += usize::from(argmax(reference) == argmax(candidate));
        let d = reference.iter().zip(candidate).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        self.max_abs_diff = self.max_abs_diff.max(d);
    }

    /// Positions compared.
    pub fn positions(&self) -> usize {
        self.kld.len()
    }

    /// Mean KL divergence (0 when empty).
    pub fn mean_kld(&self) -> f64 {
        if self.kld.is_empty() {
            0.0
        } else {
            self.kld.iter().sum::<f64>() / self.kld.len() as f64
        }
    }

    /// Largest per-position KL divergence.
    pub fn max_kld(&self) -> f64 {
        self.kld.iter().fold(0.0, |m: f64, &k| m.max(k))
    }

    /// Share of positions with the same top token, in [0, 1].
    pub fn top1_agreement(&self) -> f64 {
        if self.kld.is_empty() {
            0.0
        } else {
            self.same_top1 as f64 / self.kld.len() as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_of_identical_logits_is_zero_and_shift_invariant() {
        let a = [1.0f32, 2.0, 3.0, -4.0];
        let shifted: Vec<f32> = a.iter().map(|x| x + 100.0).collect();
        assert_eq!(kl_divergence(&a, &a), 0.0);
        assert!(kl_divergence(&a, &shifted) < 1e-12);
    }

    #[test]
    fn kl_matches_a_hand_computed_case() {
        // P = (1/2, 1/2), Q = (1/4, 3/4): KL = 1/2 ln(2) + 1/2 ln(2/3) = 0.143841036…
        let p = [0.0f32, 0.0];
        let q = [0.0f32, 3f32.ln()];
        assert!((kl_divergence(&p, &q) - 0.143_841_036_225_890_2).abs() < 1e-7, "{}", kl_divergence(&p, &q));
        // Asymmetric: KL(Q‖P) = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812035…
        assert!((kl_divergence(&q, &p) - 0.130_812_035_941_137_7).abs() < 1e-7);
    }

    #[test]
    fn log_softmax_survives_huge_logits() {
        let l = log_softmax(&[1e30, 0.0]);
        assert_eq!(l[0], 0.0);
        assert!(l[1] < -1e29);
    }

    #[test]
    fn comparison_accumulates() {
        let mut c = LogitComparison::default();
        c.add(&[0.0, 1.0], &[0.0, 1.0]);
        c.add(&[0.0, 1.0], &[2.0, 1.0]);
        assert_eq!(c.positions(), 2);
        assert_eq!(c.top1_agreement(), 0.5);
        assert_eq!(c.max_abs_diff, 2.0);
        assert!(c.kld[0] == 0.0 && c.kld[1] > 0.0 && c.mean_kld() == c.kld[1] / 2.0 && c.max_kld() == c.kld[1]);
        assert_eq!(argmax(&[f32::NAN, 1.0, 1.0]), Some(1));
    }
}

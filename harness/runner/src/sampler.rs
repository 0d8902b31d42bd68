//! Token selection from logits. The harness samples; backends only produce logits.

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    /// The highest logit; ties go to the lowest id. Deterministic, so outputs compare across backends.
    #[default]
    Greedy,
}

impl Sampler {
    /// Picks a token id from `logits`. NaN logits are never chosen; all-NaN logits give `None`.
    pub fn sample(&self, logits: &[f32]) -> Option<u32> {
        match self {
            Sampler::Greedy => {
                let mut best: Option<(usize, f32)> = None;
                for (i, &v) in logits.iter().enumerate() {
                    if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
                        best = Some((i, v));
                    }
                }
                best.map(|(i, _)| i as u32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_maximum_and_skips_nan() {
        assert_eq!(Sampler::Greedy.sample(&[0.0, 2.0, 2.0, -1.0]), Some(1));
        assert_eq!(Sampler::Greedy.sample(&[f32::NAN, -5.0]), Some(1));
        assert_eq!(Sampler::Greedy.sample(&[f32::NAN]), None);
        assert_eq!(Sampler::Greedy.sample(&[]), None);
    }
}

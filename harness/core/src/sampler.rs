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
                // Branch-free lane-wise maximum (f32::max ignores NaN, and the compiler vectorizes it), then the
                // first index holding it: the lowest id among ties. All-NaN logits find no index.
                const LANES: usize = 16;
                let mut m = [f32::NEG_INFINITY; LANES];
                let chunks = logits.chunks_exact(LANES);
                let rest = chunks.remainder();
                for c in chunks {
                    for (a, &b) in m.iter_mut().zip(c) {
                        *a = a.max(b);
                    }
                }
                let max = rest.iter().chain(m.iter()).copied().fold(f32::NEG_INFINITY, f32::max);
                logits.iter().position(|&v| v == max).map(|i| i as u32)
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
        assert_eq!(Sampler::Greedy.sample(&[f32::NEG_INFINITY; 3]), Some(0));
        let mut long = vec![0.5f32; 100];
        long[77] = 3.0;
        long[90] = 3.0;
        long[5] = f32::NAN;
        assert_eq!(Sampler::Greedy.sample(&long), Some(77));
    }
}

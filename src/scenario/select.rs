//! Which stream a new viewer watches: round-robin, or Zipf popularity so that a few streams are
//! hot (as real audiences are). Pure and seeded, so two runs offer the same load.

use rand::Rng;

#[derive(Debug, Clone)]
pub enum Selector {
    RoundRobin {
        next: usize,
        streams: usize,
    },
    /// Cumulative probabilities of ranks 1..=n.
    Zipf {
        cumulative: Vec<f64>,
    },
}

/// The share of viewers each of `streams` streams gets under Zipf's law, most popular first
/// (summing to 1).
pub fn zipf_shares(streams: usize, exponent: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=streams)
        .map(|k| 1.0 / (k as f64).powf(exponent))
        .collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

impl Selector {
    pub fn round_robin(streams: usize) -> Self {
        Selector::RoundRobin { next: 0, streams }
    }

    pub fn zipf(streams: usize, exponent: f64) -> Self {
        let mut acc = 0.0;
        let cumulative = zipf_shares(streams, exponent)
            .iter()
            .map(|share| {
                acc += share;
                acc
            })
            .collect();
        Selector::Zipf { cumulative }
    }

    /// The index of the stream for the next viewer.
    pub fn pick(&mut self, rng: &mut impl Rng) -> usize {
        match self {
            Selector::RoundRobin { next, streams } => {
                let i = *next % (*streams).max(1);
                *next += 1;
                i
            }
            Selector::Zipf { cumulative } => {
                let u: f64 = rng.random();
                cumulative
                    .iter()
                    .position(|c| u < *c)
                    .unwrap_or(cumulative.len().saturating_sub(1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn round_robin_cycles() {
        let mut s = Selector::round_robin(3);
        let mut rng = StdRng::seed_from_u64(1);
        let picks: Vec<usize> = (0..7).map(|_| s.pick(&mut rng)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn zipf_makes_the_first_stream_hot() {
        let mut s = Selector::zipf(10, 1.0);
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            counts[s.pick(&mut rng)] += 1;
        }
        // Rank 1 of 10 under Zipf(1) has p = 1/H(10) ≈ 0.34; rank 10 ≈ 0.034.
        assert!((3000..3800).contains(&counts[0]), "{counts:?}");
        assert!(counts[0] > counts[1] && counts[1] > counts[9], "{counts:?}");
    }
}

//! Which stream a new viewer watches: round-robin, or Zipf popularity so that a few streams are
//! hot (as real audiences are). Pure and seeded, so two runs offer the same load.
//!
//! A pick depends only on the viewer's number in the group's whole audience and a random draw
//! seeded from it, never on what was picked before: a run split over several workers (see
//! [`super::shard`]) offers the same audience, stream for stream, as one process.

use rand::Rng;

#[derive(Debug, Clone)]
pub enum Selector {
    RoundRobin {
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
        Selector::RoundRobin { streams }
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

    /// The index of the stream for viewer number `viewer` of the audience; `rng` is that
    /// viewer's own draw.
    pub fn pick(&self, viewer: u64, rng: &mut impl Rng) -> usize {
        match self {
            Selector::RoundRobin { streams } => (viewer % (*streams).max(1) as u64) as usize,
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

/// Viewer number `viewer`'s own random source, from the group's seed: the same viewer draws the
/// same numbers on whichever worker it runs.
pub fn viewer_rng(group_seed: u64, viewer: u64) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    // SplitMix64's finaliser spreads neighbouring viewer numbers over the whole seed space.
    let mut z = group_seed ^ viewer.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    rand::rngs::StdRng::seed_from_u64(z ^ (z >> 31))
}

/// The audience number of the `session`-th viewer (0 = the first) that slot `slot` of a group of
/// `slots` slots holds: slots' first viewers are 0..slots, their second ones slots..2*slots, ...
pub fn viewer_number(slot: u32, session: u64, slots: u32) -> u64 {
    session * u64::from(slots.max(1)) + u64::from(slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn round_robin_cycles() {
        let s = Selector::round_robin(3);
        let mut rng = StdRng::seed_from_u64(1);
        let picks: Vec<usize> = (0..7).map(|v| s.pick(v, &mut rng)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn zipf_makes_the_first_stream_hot() {
        let s = Selector::zipf(10, 1.0);
        let mut counts = [0u32; 10];
        for v in 0..10_000 {
            counts[s.pick(v, &mut viewer_rng(7, v))] += 1;
        }
        // Rank 1 of 10 under Zipf(1) has p = 1/H(10) ≈ 0.34; rank 10 ≈ 0.034.
        assert!((3000..3800).contains(&counts[0]), "{counts:?}");
        assert!(counts[0] > counts[1] && counts[1] > counts[9], "{counts:?}");
    }

    #[test]
    fn a_viewers_stream_does_not_depend_on_who_picked_before() {
        let s = Selector::zipf(10, 1.0);
        let alone = s.pick(4321, &mut viewer_rng(9, 4321));
        for v in 0..100 {
            s.pick(v, &mut viewer_rng(9, v));
        }
        assert_eq!(s.pick(4321, &mut viewer_rng(9, 4321)), alone);
        // Slots' sessions number the audience without gaps or repeats.
        let numbers: std::collections::BTreeSet<u64> = (0..3)
            .flat_map(|session| (0..4).map(move |slot| viewer_number(slot, session, 4)))
            .collect();
        assert_eq!(numbers, (0..12).collect());
    }
}

//! How one run is split over several load generators (`xiuload worker`, a Kubernetes Indexed
//! Job's pods, `--local-workers`). Pure.
//!
//! A group's clients are slots numbered in the order the plan opens them (slot `i` is the
//! `i+1`-th client the group ever has at once). Slot `i` belongs to worker `i % workers`. Every
//! worker follows the whole plan and opens only its own slots, so at every instant the workers'
//! clients add up to exactly what the plan asks for (a ramp-down closes the newest slots, on
//! whichever worker holds them), a publisher slot publishes the same stream whichever worker
//! holds it (each stream once), and what depends on the slot (its stream, its edge, its seed) is
//! the same as in a one-process run.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Worker `index` of `count`; `Shard::WHOLE` is a one-process run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("a run needs at least one worker")]
    NoWorkers,
    #[error("worker index {index} is out of range for {count} workers (0..{count})")]
    OutOfRange { index: u32, count: u32 },
}

/// Why `--shard` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardParseError {
    #[error("{0:?}: expected I/N, e.g. 0/3 for the first of 3 parts")]
    NotIOverN(String),
    #[error("{text:?}: {part:?} is not a number ({reason})")]
    NotANumber {
        text: String,
        part: String,
        reason: std::num::ParseIntError,
    },
    #[error("{text:?}: {source}")]
    Invalid { text: String, source: ShardError },
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::NoWorkers);
        }
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// `I/N`, as `--shard` takes it.
    pub fn parse(text: &str) -> Result<Shard, ShardParseError> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| ShardParseError::NotIOverN(text.to_string()))?;
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|reason| ShardParseError::NotANumber {
                    text: text.to_string(),
                    part: s.to_string(),
                    reason,
                })
        };
        Shard::new(number(index)?, number(count)?).map_err(|source| ShardParseError::Invalid {
            text: text.to_string(),
            source,
        })
    }

    /// Whether slot `slot` of a group runs here.
    pub fn owns(&self, slot: u32) -> bool {
        slot % self.count == self.index
    }

    /// How many of the first `slots` slots run here.
    pub fn share_of(&self, slots: u32) -> u32 {
        slots / self.count + u32::from(slots % self.count > self.index)
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {} of {}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Stage;
    use crate::scenario::plan::Shape;
    use crate::units::HumanDuration;
    use std::time::Duration;

    fn stage(secs: u64, target: u32) -> Stage {
        Stage {
            duration: HumanDuration::secs(secs),
            target,
        }
    }

    #[test]
    fn shards_add_up_to_the_plan_at_every_instant() {
        let shape = Shape::Ramp(vec![stage(7, 23), stage(5, 23), stage(9, 4), stage(3, 11)]);
        for workers in 1..=7 {
            let shards: Vec<Shard> = (0..workers)
                .map(|i| Shard::new(i, workers).unwrap())
                .collect();
            for tenth in 0..=250 {
                let want = shape.target_at(Duration::from_millis(tenth * 100));
                let sum: u32 = shards.iter().map(|s| s.share_of(want)).sum();
                assert_eq!(sum, want, "{workers} workers at {}ms", tenth * 100);
                // share_of agrees with owning slot by slot.
                for s in &shards {
                    assert_eq!(
                        s.share_of(want),
                        (0..want).filter(|i| s.owns(*i)).count() as u32
                    );
                }
            }
        }
    }

    #[test]
    fn every_slot_has_exactly_one_owner() {
        for workers in 1..=5 {
            for slot in 0..50 {
                let owners = (0..workers)
                    .filter(|i| Shard::new(*i, workers).unwrap().owns(slot))
                    .count();
                assert_eq!(owners, 1, "slot {slot} of {workers} workers");
            }
        }
    }

    #[test]
    fn bad_shards_are_refused() {
        assert_eq!(Shard::new(0, 0), Err(ShardError::NoWorkers));
        assert_eq!(
            Shard::new(3, 3),
            Err(ShardError::OutOfRange { index: 3, count: 3 })
        );
        assert!(Shard::new(2, 3).is_ok());
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        let says = |t: &str| Shard::parse(t).unwrap_err().to_string();
        assert!(says("3/3").contains("out of range"));
        assert!(says("1-3").contains("expected I/N"));
        assert!(says("a/3").contains("\"a\" is not a number"));
        assert!(Shard::WHOLE.owns(17) && Shard::WHOLE.is_whole());
    }
}

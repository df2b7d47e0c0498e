//! The load plan: how many clients each group wants at each moment. Pure, so ramps are tested
//! without clocks.

use super::model::Stage;
use std::time::Duration;

/// A group's load shape resolved against the run length.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Constant {
        count: u32,
    },
    /// k6-style: each stage moves linearly from the previous target to its own over its duration,
    /// starting from 0.
    Ramp(Vec<Stage>),
}

impl Shape {
    pub fn from_group(count: Option<u32>, ramp: Option<&[Stage]>) -> Shape {
        match (count, ramp) {
            (_, Some(stages)) => Shape::Ramp(stages.to_vec()),
            (Some(count), None) => Shape::Constant { count },
            (None, None) => Shape::Constant { count: 0 },
        }
    }

    /// Clients wanted `t` after the run started. After the last stage the group holds 0 clients:
    /// its work is done.
    pub fn target_at(&self, t: Duration) -> u32 {
        match self {
            Shape::Constant { count } => *count,
            Shape::Ramp(stages) => {
                let mut start = Duration::ZERO;
                let mut from = 0u32;
                for stage in stages {
                    let end = start + stage.duration.0;
                    if t < end {
                        let frac = (t - start).as_secs_f64() / stage.duration.0.as_secs_f64();
                        let value = from as f64
                            + (stage.target as f64 - from as f64) * frac.clamp(0.0, 1.0);
                        return value.round() as u32;
                    }
                    start = end;
                    from = stage.target;
                }
                0
            }
        }
    }

    /// The most clients the shape ever asks for at once.
    pub fn peak(&self) -> u32 {
        match self {
            Shape::Constant { count } => *count,
            Shape::Ramp(stages) => stages.iter().map(|s| s.target).max().unwrap_or(0),
        }
    }

    /// How long the shape lasts; `None` for a constant count (it lasts the whole run).
    pub fn length(&self) -> Option<Duration> {
        match self {
            Shape::Constant { .. } => None,
            Shape::Ramp(stages) => Some(stages.iter().map(|s| s.duration.0).sum()),
        }
    }

    /// Index of the stage active at `t` (for the status line), or `None` after the end.
    pub fn stage_at(&self, t: Duration) -> Option<usize> {
        match self {
            Shape::Constant { .. } => Some(0),
            Shape::Ramp(stages) => {
                let mut end = Duration::ZERO;
                for (i, s) in stages.iter().enumerate() {
                    end += s.duration.0;
                    if t < end {
                        return Some(i);
                    }
                }
                None
            }
        }
    }
}

/// The run's length: `run.duration` if set, else the longest ramp.
pub fn run_length(duration: Option<Duration>, shapes: &[Shape]) -> Duration {
    duration.unwrap_or_else(|| {
        shapes
            .iter()
            .filter_map(Shape::length)
            .max()
            .unwrap_or(Duration::ZERO)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::HumanDuration;

    fn stage(secs: u64, target: u32) -> Stage {
        Stage {
            duration: HumanDuration::secs(secs),
            target,
        }
    }

    #[test]
    fn ramp_interpolates_like_k6() {
        let shape = Shape::Ramp(vec![stage(10, 100), stage(10, 100), stage(10, 0)]);
        assert_eq!(shape.target_at(Duration::ZERO), 0);
        assert_eq!(shape.target_at(Duration::from_secs(5)), 50);
        assert_eq!(shape.target_at(Duration::from_secs(15)), 100);
        assert_eq!(shape.target_at(Duration::from_secs(25)), 50);
        assert_eq!(shape.target_at(Duration::from_secs(30)), 0);
        assert_eq!(shape.length(), Some(Duration::from_secs(30)));
        assert_eq!(shape.stage_at(Duration::from_secs(12)), Some(1));
        assert_eq!(shape.stage_at(Duration::from_secs(31)), None);
        assert_eq!(shape.peak(), 100);
        assert_eq!(Shape::Ramp(vec![stage(5, 30), stage(5, 10)]).peak(), 30);
        assert_eq!(Shape::Constant { count: 7 }.peak(), 7);
    }

    #[test]
    fn constant_holds_and_run_length_prefers_explicit_duration() {
        let c = Shape::Constant { count: 7 };
        assert_eq!(c.target_at(Duration::from_secs(999)), 7);
        let r = Shape::Ramp(vec![stage(20, 1)]);
        assert_eq!(
            run_length(None, &[c.clone(), r.clone()]),
            Duration::from_secs(20)
        );
        assert_eq!(
            run_length(Some(Duration::from_secs(5)), &[c, r]),
            Duration::from_secs(5)
        );
    }
}

//! The load plan: how many clients each group wants at each moment. Pure, so ramps are tested
//! without clocks.

use super::model::{KneeSection, PlayerGroup, PublisherGroup, Scenario, Stage};
use crate::units::HumanDuration;
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

// The capacity knee's steps: part of the plan, so the run, `validate` and the collision estimate
// read one definition.

/// Client counts of each step.
pub fn step_targets(k: &KneeSection) -> Vec<u32> {
    let mut out = Vec::new();
    let mut n = k.start;
    while n <= k.max && out.len() < 1000 {
        out.push(n);
        n += k.step.max(1);
    }
    out
}

/// The load shape of the stepped group: a quick ramp to each step, then a hold.
pub fn stages(k: &KneeSection) -> Vec<Stage> {
    let ramp = k.ramp.0.min(k.step_duration.0 / 2);
    step_targets(k)
        .into_iter()
        .flat_map(|target| {
            [
                Stage {
                    duration: HumanDuration(ramp.max(Duration::from_millis(100))),
                    target,
                },
                Stage {
                    duration: HumanDuration(k.step_duration.0.saturating_sub(ramp)),
                    target,
                },
            ]
        })
        .collect()
}

/// Which step `t` falls in, and whether it is past the step's settle time (judged part).
pub fn step_at(k: &KneeSection, t: Duration) -> (usize, bool) {
    let len = k.step_duration.0.max(Duration::from_millis(1));
    let index = (t.as_secs_f64() / len.as_secs_f64()).floor() as usize;
    let into = t.saturating_sub(len * index as u32);
    (index, into >= k.settle.0)
}

/// What a run of a validated scenario drives, worked out once where the scenario is read: each
/// group's load shape (in the file's order, the knee's steps for the knee's group), how long the
/// run is planned to last and which side the knee steps. The run, its workers and the report
/// read these fields instead of working the plan out again.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub publishers: Vec<Shape>,
    pub players: Vec<Shape>,
    /// `run.duration`, else the longest shape.
    pub length: Duration,
    /// Whether the knee steps a publisher group (else a player group, or there is no knee).
    pub knee_steps_publishers: bool,
}

impl Plan {
    pub fn of(scenario: &Scenario) -> Plan {
        let publishers: Vec<Shape> = scenario
            .publishers
            .iter()
            .map(|g| publisher_shape(scenario, g))
            .collect();
        let players: Vec<Shape> = scenario
            .players
            .iter()
            .map(|g| player_shape(scenario, g))
            .collect();
        let length = run_length(
            scenario.run.duration.map(|d| d.0),
            &publishers
                .iter()
                .chain(&players)
                .cloned()
                .collect::<Vec<_>>(),
        );
        Plan {
            publishers,
            players,
            length,
            knee_steps_publishers: knee_steps_publishers(scenario),
        }
    }

    /// Every group's shape: publishers first, then players.
    pub fn shapes(&self) -> impl Iterator<Item = &Shape> {
        self.publishers.iter().chain(&self.players)
    }
}

/// The load shape a run drives a player group with: the knee's steps for the knee's group, else
/// the group's own count or ramp.
pub(super) fn player_shape(scenario: &Scenario, g: &PlayerGroup) -> Shape {
    match &scenario.knee {
        Some(k) if k.group == g.name => Shape::Ramp(stages(k)),
        _ => Shape::from_group(g.count, g.ramp.as_deref()),
    }
}

/// The load shape a run drives a publisher group with: the knee's steps for the knee's group,
/// else the group's own count or ramp.
pub(super) fn publisher_shape(scenario: &Scenario, g: &PublisherGroup) -> Shape {
    match &scenario.knee {
        Some(k) if k.group == g.name => Shape::Ramp(stages(k)),
        _ => Shape::from_group(g.count, g.ramp.as_deref()),
    }
}

/// Whether the knee steps a publisher group (else a player group, or there is no knee).
pub(super) fn knee_steps_publishers(scenario: &Scenario) -> bool {
    scenario
        .knee
        .as_ref()
        .is_some_and(|k| scenario.publishers.iter().any(|g| g.name == k.group))
}

/// Number of load stages `after_stage` may name: the longest `ramp` of any group.
pub fn stage_count(s: &Scenario) -> usize {
    ramps(s).map(<[_]>::len).max().unwrap_or(0)
}

/// Start offsets (from the run's start) of the stages of the longest `ramp`, which is what
/// `after_stage` counts.
pub fn stage_starts(s: &Scenario) -> Vec<Duration> {
    let Some(longest) = ramps(s).max_by_key(|r| r.len()) else {
        return Vec::new();
    };
    longest
        .iter()
        .scan(Duration::ZERO, |start, st| {
            let this = *start;
            *start += st.duration.0;
            Some(this)
        })
        .collect()
}

fn ramps(s: &Scenario) -> impl Iterator<Item = &[Stage]> {
    s.publishers
        .iter()
        .filter_map(|g| g.ramp.as_deref())
        .chain(s.players.iter().filter_map(|g| g.ramp.as_deref()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A knee of 10 → 40 viewers in 10 s steps; also the report's knee tests' fixture.
    pub(crate) fn knee_section() -> KneeSection {
        KneeSection {
            group: "v".into(),
            start: 10,
            step: 10,
            max: 40,
            step_duration: HumanDuration::secs(10),
            settle: HumanDuration::secs(4),
            ramp: HumanDuration::secs(2),
            target_audience: Some(1000),
            target_streams: None,
            headroom: 0.25,
        }
    }

    #[test]
    fn steps_and_their_timing() {
        let k = knee_section();
        assert_eq!(step_targets(&k), [10, 20, 30, 40]);
        let st = stages(&k);
        assert_eq!(st.len(), 8);
        assert_eq!(st[1].duration, HumanDuration::secs(8));
        assert_eq!(step_at(&k, Duration::from_secs(13)), (1, false));
        assert_eq!(step_at(&k, Duration::from_secs(15)), (1, true));
    }

    use crate::units::HumanDuration;

    fn stage(secs: u64, target: u32) -> Stage {
        Stage {
            duration: HumanDuration::secs(secs),
            target,
        }
    }

    #[test]
    fn plan_gives_the_knee_group_its_steps_and_the_run_its_length() {
        let text = r#"
[target.local]

[[publishers]]
name = "cams"
count = 2
stream = "cam-{i}"

[[players]]
name = "v"
protocol = "flv"
publishers = "cams"

[[players]]
name = "late"
protocol = "hls"
publishers = "cams"
ramp = [{ duration = "15s", target = 3 }]

[[thresholds]]
metric = "startup_ms.p99"
max = 3000

[knee]
group = "v"
start = 10
step = 10
max = 40
step_duration = "10s"
settle = "4s"
target_audience = 1000
"#;
        let parse = |t: &str| crate::scenario::parse(std::path::Path::new("knee.toml"), t).unwrap();
        let plan = Plan::of(&parse(text));
        assert_eq!(plan.publishers, [Shape::Constant { count: 2 }]);
        // The knee's group is driven by its steps.
        assert_eq!(plan.players[0].peak(), 40);
        assert_eq!(plan.players[1], Shape::Ramp(vec![stage(15, 3)]));
        // No run.duration: the longest shape, the knee's four 10 s steps.
        assert_eq!(plan.length, Duration::from_secs(40));
        assert!(!plan.knee_steps_publishers);
        assert_eq!(plan.shapes().count(), 3);

        let fixed = text.replace(
            "[target.local]",
            "[run]\nduration = \"25s\"\n\n[target.local]",
        );
        assert_eq!(Plan::of(&parse(&fixed)).length, Duration::from_secs(25));

        let on_cams = text
            .replace("count = 2\n", "")
            .replace(
                "publishers = \"cams\"\n\n[[players]]",
                "publishers = \"cams\"\ncount = 5\n\n[[players]]",
            )
            .replace("group = \"v\"", "group = \"cams\"")
            .replace("target_audience", "target_streams");
        let plan = Plan::of(&parse(&on_cams));
        assert!(plan.knee_steps_publishers);
        assert_eq!(plan.publishers[0].peak(), 40);
        assert_eq!(plan.players[0], Shape::Constant { count: 5 });
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

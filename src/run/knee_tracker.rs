//! Accumulates the judged part of each knee step from the collector's one-second windows and
//! judges it when the step ends.

use crate::metrics::timeline::TimelinePoint;
use crate::metrics::{PlayerStats, PublisherStats};
use crate::report::knee::StepResult;
use crate::report::model::Verdict;
use crate::report::thresholds::{judge_all, verdict};
use crate::scenario::Protocol;
use crate::scenario::{KneeSection, Threshold};
use std::time::Duration;

pub struct KneeTracker {
    pub section: KneeSection,
    targets: Vec<u32>,
    step: usize,
    groups: Vec<(String, Protocol, PlayerStats)>,
    publishers: PublisherStats,
    seconds: u32,
    active_sum: f64,
    active_n: u32,
    mbps_sum: f64,
    cpu_sum: f64,
    cpu_n: u32,
    rss_max: Option<f64>,
    saturated_seconds: u32,
    pub results: Vec<StepResult>,
}

impl KneeTracker {
    pub fn new(section: KneeSection, groups: &[(String, Protocol)]) -> Self {
        KneeTracker {
            targets: crate::scenario::plan::step_targets(&section),
            section,
            step: 0,
            groups: groups
                .iter()
                .map(|(n, p)| (n.clone(), *p, PlayerStats::default()))
                .collect(),
            publishers: PublisherStats::default(),
            seconds: 0,
            active_sum: 0.0,
            active_n: 0,
            mbps_sum: 0.0,
            cpu_sum: 0.0,
            cpu_n: 0,
            rss_max: None,
            saturated_seconds: 0,
            results: Vec::new(),
        }
    }

    /// Feeds one second ending at `t`. Returns true when a step just failed (the run can stop).
    #[allow(clippy::too_many_arguments)]
    pub fn add_second(
        &mut self,
        t: Duration,
        point: &TimelinePoint,
        windows: &[PlayerStats],
        publishers: &[PublisherStats],
        knee_group_active: u64,
        thresholds: &[Threshold],
        loader_saturated_now: bool,
    ) -> bool {
        // The window ending at `t` belongs to the step that contains `t - ε`.
        let (index, judged) = crate::scenario::plan::step_at(
            &self.section,
            t.saturating_sub(Duration::from_millis(1)),
        );
        let mut failed = false;
        while index > self.step {
            failed |= self.finish_step(thresholds);
            self.step += 1;
        }
        if judged && self.step < self.targets.len() {
            for ((_, _, acc), w) in self.groups.iter_mut().zip(windows) {
                acc.merge(w);
            }
            for p in publishers {
                self.publishers.merge(p);
            }
            self.seconds += 1;
            // The gauge is read at the tick: at the plan's very end the controller may already be
            // removing viewers, so that reading describes the teardown, not the step.
            let plan_end = self.section.step_duration.0 * self.targets.len() as u32;
            if t < plan_end {
                self.active_sum += knee_group_active as f64;
                self.active_n += 1;
            }
            self.mbps_sum += point.mbps_in;
            if let Some(c) = point.server_cpu_percent {
                self.cpu_sum += c;
                self.cpu_n += 1;
            }
            if let Some(r) = point.server_rss_mib {
                self.rss_max = Some(self.rss_max.map_or(r, |m: f64| m.max(r)));
            }
            self.saturated_seconds += loader_saturated_now as u32;
        }
        failed
    }

    /// Judges the current step if anything was measured in it; true if it failed.
    pub fn finish_step(&mut self, thresholds: &[Threshold]) -> bool {
        if self.seconds == 0 || self.step >= self.targets.len() {
            return false;
        }
        let groups: Vec<(&str, Protocol, &PlayerStats)> = self
            .groups
            .iter()
            .map(|(n, p, s)| (n.as_str(), *p, s))
            .collect();
        let results = judge_all(thresholds, &groups, &self.publishers);
        let pass = verdict(&results) == Verdict::Pass;
        let n = self.seconds as f64;
        self.results.push(StepResult {
            step: self.step,
            target: self.targets[self.step],
            active_mean: (self.active_sum / f64::from(self.active_n.max(1)) * 10.0).round() / 10.0,
            pass,
            thresholds: results,
            mbps_in: (self.mbps_sum / n * 100.0).round() / 100.0,
            server_cpu_percent: (self.cpu_n > 0)
                .then(|| (self.cpu_sum / self.cpu_n as f64 * 10.0).round() / 10.0),
            server_rss_mib: self.rss_max,
            loader_saturated_seconds: self.saturated_seconds,
        });
        for (_, _, acc) in &mut self.groups {
            *acc = PlayerStats::default();
        }
        self.publishers = PublisherStats::default();
        self.seconds = 0;
        self.active_sum = 0.0;
        self.active_n = 0;
        self.mbps_sum = 0.0;
        self.cpu_sum = 0.0;
        self.cpu_n = 0;
        self.rss_max = None;
        self.saturated_seconds = 0;
        !pass
    }
}

//! Assembling the report from the run's totals.

use super::collector::Collector;
use super::{RunOptions, knee};
use crate::clock::{RunClock, rfc3339_from_unix_micros};
use crate::metrics::{PlayerStats, PublisherStats};
use crate::report::model::*;
use crate::report::thresholds::judge_all;
use crate::scenario::Protocol;
use crate::scenario::Scenario;
use crate::scenario::plan::{Plan, Shape};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a report is built from.
pub(super) struct Inputs<'a> {
    pub(super) scenario: &'a Scenario,
    pub(super) plan: &'a Plan,
    pub(super) options: &'a RunOptions,
    pub(super) run_id: &'a str,
    pub(super) name: &'a str,
    pub(super) target: &'a str,
    pub(super) clock: &'a RunClock,
    /// When the load ended, on the run clock.
    pub(super) ended: Duration,
    pub(super) stopped_by: StopReason,
    pub(super) collector: &'a Collector,
    pub(super) knee: Option<knee::KneeReport>,
    pub(super) cluster: Option<crate::k8s::ClusterReport>,
    pub(super) expectations: Vec<crate::k8s::ExpectationResult>,
    pub(super) faults: &'a [crate::scenario::fault::FaultEvent],
    /// What the local kubelet did.
    pub(super) kubelet: &'a [crate::local::KubeletEvent],
}

/// A group's configuration, with its streams.
struct Group<'a, C> {
    config: &'a C,
    streams: Vec<String>,
}

pub(super) fn build_report(i: Inputs<'_>) -> Report {
    let Inputs {
        scenario,
        plan,
        options,
        run_id,
        name,
        target,
        clock,
        ended,
        stopped_by,
        collector,
        knee,
        cluster,
        expectations,
        faults,
        kubelet,
    } = i;
    let planned = plan.length;
    let warmup = scenario.run.warmup.0;
    // Each group's configuration beside its totals from the collector.
    let publishers: Vec<(
        Group<'_, crate::scenario::PublisherGroup>,
        &super::collector::Totals<PublisherStats>,
    )> = scenario
        .publishers
        .iter()
        .zip(&plan.publishers)
        .map(|(config, shape)| Group {
            streams: super::setup::publisher_streams(config, shape),
            config,
        })
        .zip(&collector.publishers)
        .collect();
    let players: Vec<(
        Group<'_, crate::scenario::PlayerGroup>,
        &super::collector::Totals<PlayerStats>,
    )> = scenario
        .players
        .iter()
        .map(|config| Group {
            config,
            streams: Vec::new(),
        })
        .zip(&collector.players)
        .collect();
    let steady_s = ended.saturating_sub(warmup).as_secs_f64();
    let mut by_protocol: BTreeMap<String, (PlayerStats, PlayerStats)> = BTreeMap::new();
    let mut all = PlayerStats::default();
    let mut all_warmup = PlayerStats::default();
    for (g, t) in &players {
        let e = by_protocol
            .entry(g.config.protocol.as_str().to_string())
            .or_default();
        e.0.merge(&t.steady);
        e.1.merge(&t.warmup);
        all.merge(&t.steady);
        all_warmup.merge(&t.warmup);
    }
    let mut all_publishers = PublisherStats::default();
    for (_, t) in &publishers {
        all_publishers.merge(&t.steady);
    }
    let groups: Vec<(&str, Protocol, &PlayerStats)> = players
        .iter()
        .map(|(g, t)| (g.config.name.as_str(), g.config.protocol, &t.steady))
        .collect();
    let thresholds = judge_all(&scenario.thresholds, &groups, &all_publishers);
    let ended_micros = clock.start_unix_micros() + ended.as_micros() as u64;
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "xiuload".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        run: RunInfo {
            id: run_id.into(),
            name: name.into(),
            scenario_file: options.scenario_file.display().to_string(),
            target: target.into(),
            started_at: rfc3339_from_unix_micros(clock.start_unix_micros()),
            ended_at: rfc3339_from_unix_micros(ended_micros),
            start_unix_ms: clock.start_unix_micros() / 1000,
            planned_duration_s: planned.as_secs_f64(),
            duration_s: (ended.as_secs_f64() * 1000.0).round() / 1000.0,
            warmup_s: warmup.as_secs_f64(),
            stopped_by,
            shard: options.shard.filter(|s| !s.is_whole()),
            // Local processes, or the pods of `[distributed]` (`--local-workers` wins).
            workers: options
                .local_workers
                .or(scenario.distributed.as_ref().map(|d| d.workers)),
        },
        scenario: scenario.clone(),
        notes: crate::scenario::advice::name_collisions(scenario)
            .iter()
            .map(ToString::to_string)
            .collect(),
        publishers: publishers
            .iter()
            .map(|(g, t)| {
                PublisherGroupReport::from_stats(
                    &g.config.name,
                    g.streams.clone(),
                    &t.steady,
                    &t.warmup,
                    steady_s,
                )
            })
            .collect(),
        players: players
            .iter()
            .map(|(g, t)| PlayerGroupReport {
                name: g.config.name.clone(),
                protocol: g.config.protocol.as_str().into(),
                summary: PlayerSummary::from_stats(&t.steady, &t.warmup, steady_s),
            })
            .collect(),
        protocols: by_protocol
            .iter()
            .map(|(k, (s, w))| (k.clone(), PlayerSummary::from_stats(s, w, steady_s)))
            .collect(),
        all_players: PlayerSummary::from_stats(&all, &all_warmup, steady_s),
        loader: collector.loader_health(),
        // Decided below, from the finished report.
        verdict: Verdict::Pass,
        verdict_reasons: Vec::new(),
        cluster,
        expectations,
        faults: faults.to_vec(),
        kubelet: kubelet.to_vec(),
        thresholds,
        knee,
        raw: RawMeasurements {
            players: players
                .iter()
                .map(|(g, t)| (g.config.name.clone(), t.steady.clone()))
                .collect(),
            publishers: publishers
                .iter()
                .map(|(g, t)| (g.config.name.clone(), t.steady.clone()))
                .collect(),
        },
    };
    give_workers_their_share(plan, &mut report.loader.workers);
    let overall = crate::report::verdict::judge(&report);
    report.verdict = overall.verdict;
    report.verdict_reasons = overall.reasons;
    report
}

/// Each worker's share of the plan's clients at their peak (see [`crate::scenario::shard`]).
fn give_workers_their_share(plan: &Plan, workers: &mut [crate::metrics::loader::WorkerHealth]) {
    let Some(count) = workers.iter().map(|w| w.index + 1).max() else {
        return;
    };
    let peaks: Vec<u32> = plan.shapes().map(Shape::peak).collect();
    let total: u32 = peaks.iter().sum();
    for w in workers {
        let Ok(shard) = crate::scenario::shard::Shard::new(w.index, count) else {
            continue;
        };
        let mine: u32 = peaks.iter().map(|p| shard.share_of(*p)).sum();
        w.load_share = if total == 0 {
            0.0
        } else {
            f64::from(mine) / f64::from(total)
        };
    }
}

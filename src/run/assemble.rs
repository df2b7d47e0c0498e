//! Assembling the report from the run's totals.

use super::{PlayerGroupRun, PublisherGroupRun, RunOptions, knee};
use crate::clock::{RunClock, rfc3339_from_unix_micros};
use crate::metrics::loader::LoaderHealth;
use crate::metrics::{PlayerStats, PublisherStats};
use crate::report::model::*;
use crate::report::thresholds::{any_panic, judge_all, verdict};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::time::Duration;

#[allow(clippy::too_many_arguments)]
pub(super) fn build_report(
    scenario: &Scenario,
    options: &RunOptions,
    run_id: &str,
    name: &str,
    target: &str,
    clock: &RunClock,
    planned: Duration,
    ended: Duration,
    warmup: Duration,
    stopped_by: StopReason,
    publishers: &[PublisherGroupRun],
    players: &[PlayerGroupRun],
    loader: LoaderHealth,
    knee: Option<knee::KneeReport>,
    cluster: Option<(
        crate::kube::ClusterReport,
        Vec<crate::kube::ExpectationResult>,
    )>,
) -> Report {
    let (cluster, expectations) = match cluster {
        Some((c, e)) => (Some(c), e),
        None => (None, Vec::new()),
    };
    let expectations_pass = expectations.iter().all(|e| e.pass);
    let steady_s = ended.saturating_sub(warmup).as_secs_f64();
    let mut by_protocol: BTreeMap<String, (PlayerStats, PlayerStats)> = BTreeMap::new();
    let mut all = PlayerStats::default();
    let mut all_warmup = PlayerStats::default();
    for g in players {
        let e = by_protocol
            .entry(g.config.protocol.as_str().to_string())
            .or_default();
        e.0.merge(&g.steady);
        e.1.merge(&g.warmup);
        all.merge(&g.steady);
        all_warmup.merge(&g.warmup);
    }
    let mut all_publishers = PublisherStats::default();
    for g in publishers {
        all_publishers.merge(&g.steady);
    }
    let groups: Vec<(&str, &str, &PlayerStats)> = players
        .iter()
        .map(|g| {
            (
                g.config.name.as_str(),
                g.config.protocol.as_str(),
                &g.steady,
            )
        })
        .collect();
    let thresholds = judge_all(&scenario.thresholds, &groups, &all_publishers);
    // A client that panicked fails the run, warm-up included.
    let panicked = any_panic(
        players
            .iter()
            .flat_map(|g| [&g.steady.errors, &g.warmup.errors])
            .chain(
                publishers
                    .iter()
                    .flat_map(|g| [&g.steady.errors, &g.warmup.errors]),
            ),
    );
    let ended_micros = clock.start_unix_micros() + ended.as_micros() as u64;
    Report {
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
        },
        scenario: scenario.clone(),
        notes: crate::scenario::advice::name_collisions(scenario)
            .iter()
            .map(ToString::to_string)
            .collect(),
        publishers: publishers
            .iter()
            .map(|g| {
                PublisherGroupReport::from_stats(
                    &g.config.name,
                    g.streams.clone(),
                    &g.steady,
                    &g.warmup,
                    steady_s,
                )
            })
            .collect(),
        players: players
            .iter()
            .map(|g| PlayerGroupReport {
                name: g.config.name.clone(),
                protocol: g.config.protocol.as_str().into(),
                summary: PlayerSummary::from_stats(&g.steady, &g.warmup, steady_s),
            })
            .collect(),
        protocols: by_protocol
            .iter()
            .map(|(k, (s, w))| (k.clone(), PlayerSummary::from_stats(s, w, steady_s)))
            .collect(),
        all_players: PlayerSummary::from_stats(&all, &all_warmup, steady_s),
        loader,
        // A knee run is expected to break a threshold at its last step: it passes when it found a
        // knee (a step that held), and fails when even the first step broke.
        verdict: match (&knee, expectations_pass) {
            _ if panicked => Verdict::Fail,
            (_, false) => Verdict::Fail,
            (Some(k), true) if k.knee.is_some() => Verdict::Pass,
            (Some(_), true) => Verdict::Fail,
            (None, true) => verdict(&thresholds),
        },
        cluster,
        expectations,
        thresholds,
        knee,
        raw: RawMeasurements {
            players: players
                .iter()
                .map(|g| (g.config.name.clone(), g.steady.clone()))
                .collect(),
            publishers: publishers
                .iter()
                .map(|g| (g.config.name.clone(), g.steady.clone()))
                .collect(),
        },
    }
}

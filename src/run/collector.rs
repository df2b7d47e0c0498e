//! The run's collector: the one place that turns per-second windows into the run's totals, its
//! timeline, the capacity knee's steps, the loader's health and what the status line and the
//! Prometheus exposition show.
//!
//! Its input is a [`Window`]: what every group measured over one interval, however it was
//! gathered. Today a window comes from this process's client loops ([`super::sources`]); a
//! distributed run's coordinator merges its workers' windows into one and feeds it the same way.
//! Pure: nothing here does I/O (the caller writes the timeline file from the points it gets).

use super::knee_tracker::KneeTracker;
use crate::clock::RunClock;
use crate::metrics::loader::{LoaderHealth, WorkerHealth};
use crate::metrics::timeline::{PlayerSecond, TimelinePoint, build_point};
use crate::metrics::{LatencyHistogram, PlayerStats, PublisherStats};
use crate::scenario::Protocol;
use crate::scenario::{KneeSection, Threshold};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What one group measured over a window, and how many of its clients were active at its end.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupWindow<S> {
    pub active: u64,
    pub stats: S,
}

/// The load generator's own health over a window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoaderSample {
    /// CPU of the load generator, % of one core; `None` when the window was too short to say.
    pub cpu_percent: Option<f64>,
    pub lag: LatencyHistogram,
    pub rss_mib: Option<f64>,
    /// Local targets only: the xiu processes' CPU and resident memory.
    pub server_cpu_percent: Option<f64>,
    pub server_rss_mib: Option<f64>,
}

/// Everything measured over one interval, groups in the plan's order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Window {
    /// End of the window, on the run clock.
    pub at: Duration,
    /// Its true length (the last window of a run is short).
    pub length: Duration,
    pub publishers: Vec<GroupWindow<PublisherStats>>,
    pub players: Vec<GroupWindow<PlayerStats>>,
    /// The load generator's health: of this process, or, merged from workers, the hottest
    /// worker's CPU and RSS and every worker's lag.
    pub loader: LoaderSample,
    /// A merged window: each worker's own health over it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerSample>,
    /// A merged window: the workers whose measurements for it never arrived (lost, or cut off
    /// for longer than the coordinator waits). The window's figures lack their share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_workers: Vec<u32>,
}

/// One worker's health over a merged window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerSample {
    pub worker: u32,
    pub loader: LoaderSample,
}

/// A group's totals, split at the end of the warm-up.
#[derive(Debug, Clone, Default)]
pub struct Totals<S> {
    pub warmup: S,
    pub steady: S,
}

/// The knee's group, with its tracker.
struct Knee {
    group: KneeGroup,
    tracker: KneeTracker,
}

/// Which group the knee steps: by index into the player or the publisher groups.
#[derive(Debug, Clone, Copy)]
enum KneeGroup {
    Players(usize),
    Publishers(usize),
}

pub struct Collector {
    clock: RunClock,
    warmup: Duration,
    cores: usize,
    player_protocols: Vec<Protocol>,
    thresholds: Vec<Threshold>,
    pub publishers: Vec<Totals<PublisherStats>>,
    pub players: Vec<Totals<PlayerStats>>,
    /// Active clients per group at the last window's end.
    pub publishers_active: Vec<u64>,
    pub players_active: Vec<u64>,
    pub loader: LoaderHealth,
    /// Distributed runs: each worker's health, by worker index.
    workers: BTreeMap<u32, WorkerTrack>,
    points: Vec<TimelinePoint>,
    knee: Option<Knee>,
}

/// What the collector keeps of one worker.
#[derive(Debug, Clone)]
struct WorkerTrack {
    health: LoaderHealth,
    rss_mib_max: Option<f64>,
    missing_windows: u64,
    first_missing_s: Option<f64>,
    /// Missing from this window on, to the end (so far).
    missing_since_s: Option<f64>,
}

/// What the run loop learns from one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The knee's step just broke: more load would only measure a broken server.
    pub knee_broke: bool,
}

/// The player groups as the collector sees them: name and protocol, in the plan's order.
pub struct PlayerGroupInfo {
    pub name: String,
    pub protocol: Protocol,
}

impl Collector {
    pub fn new(
        clock: RunClock,
        warmup: Duration,
        cores: usize,
        publisher_groups: &[String],
        player_groups: &[PlayerGroupInfo],
        thresholds: Vec<Threshold>,
        knee: Option<KneeSection>,
    ) -> Collector {
        let knee = knee.and_then(|section| {
            let group = match player_groups.iter().position(|g| g.name == section.group) {
                Some(i) => KneeGroup::Players(i),
                None => KneeGroup::Publishers(
                    publisher_groups.iter().position(|g| *g == section.group)?,
                ),
            };
            let groups: Vec<(String, Protocol)> = player_groups
                .iter()
                .map(|g| (g.name.clone(), g.protocol))
                .collect();
            Some(Knee {
                group,
                tracker: KneeTracker::new(section, &groups),
            })
        });
        Collector {
            clock,
            warmup,
            cores: cores.max(1),
            player_protocols: player_groups.iter().map(|g| g.protocol).collect(),
            thresholds,
            publishers: vec![Totals::default(); publisher_groups.len()],
            players: vec![Totals::default(); player_groups.len()],
            publishers_active: vec![0; publisher_groups.len()],
            players_active: vec![0; player_groups.len()],
            loader: LoaderHealth::new(cores),
            workers: BTreeMap::new(),
            points: Vec::new(),
            knee,
        }
    }

    /// Folds one window into the totals and the timeline.
    pub fn add(&mut self, w: Window) -> Tick {
        let in_warmup = w.at <= self.warmup;
        // The point's `t` is shown to 10 ms; its wall time is that same instant, so the two
        // never disagree about when a second ended.
        let t = (w.at.as_secs_f64() * 100.0).round() / 100.0;
        let wall_ms = self.clock.start_unix_micros() / 1000 + (t * 1000.0).round() as u64;
        let mut point = {
            let pubs: Vec<(u64, &PublisherStats)> =
                w.publishers.iter().map(|g| (g.active, &g.stats)).collect();
            let plays: Vec<PlayerSecond<'_>> = w
                .players
                .iter()
                .zip(&self.player_protocols)
                .map(|(g, protocol)| PlayerSecond {
                    protocol: protocol.as_str(),
                    active: g.active,
                    window: &g.stats,
                })
                .collect();
            build_point(t, wall_ms, w.length.as_secs_f64(), &pubs, &plays)
        };
        point.loader_cpu_percent = w.loader.cpu_percent.map(|c| (c * 10.0).round() / 10.0);
        point.loader_lag_ms_max = w.loader.lag.max_ms();
        point.loader_rss_mib = w.loader.rss_mib.map(|m| (m * 10.0).round() / 10.0);
        point.server_cpu_percent = w.loader.server_cpu_percent;
        point.server_rss_mib = w.loader.server_rss_mib;
        point.workers_missing = w.missing_workers.clone();
        self.loader.add_second(w.loader.cpu_percent, &w.loader.lag);
        self.track_workers(&w, t);

        let knee_broke = match &mut self.knee {
            Some(k) => {
                let windows: Vec<PlayerStats> = w.players.iter().map(|g| g.stats.clone()).collect();
                let pubs: Vec<PublisherStats> =
                    w.publishers.iter().map(|g| g.stats.clone()).collect();
                let saturated_now =
                    point.loader_cpu_percent.unwrap_or(0.0) >= 90.0 * self.cores as f64;
                k.tracker.add_second(
                    w.at,
                    &point,
                    &windows,
                    &pubs,
                    match k.group {
                        KneeGroup::Players(i) => w.players.get(i).map_or(0, |g| g.active),
                        KneeGroup::Publishers(i) => w.publishers.get(i).map_or(0, |g| g.active),
                    },
                    &self.thresholds,
                    saturated_now,
                )
            }
            None => false,
        };
        for ((totals, active), g) in self
            .publishers
            .iter_mut()
            .zip(&mut self.publishers_active)
            .zip(&w.publishers)
        {
            *active = g.active;
            if in_warmup {
                totals.warmup.merge(&g.stats)
            } else {
                totals.steady.merge(&g.stats)
            }
        }
        for ((totals, active), g) in self
            .players
            .iter_mut()
            .zip(&mut self.players_active)
            .zip(&w.players)
        {
            *active = g.active;
            if in_warmup {
                totals.warmup.merge(&g.stats)
            } else {
                totals.steady.merge(&g.stats)
            }
        }
        self.points.push(point);
        Tick { knee_broke }
    }

    pub fn clock(&self) -> RunClock {
        self.clock
    }

    fn track_workers(&mut self, w: &Window, t: f64) {
        let cores = self.cores;
        fn track(
            workers: &mut BTreeMap<u32, WorkerTrack>,
            worker: u32,
            cores: usize,
        ) -> &mut WorkerTrack {
            workers.entry(worker).or_insert_with(|| WorkerTrack {
                health: LoaderHealth::new(cores),
                rss_mib_max: None,
                missing_windows: 0,
                first_missing_s: None,
                missing_since_s: None,
            })
        }
        for sample in &w.workers {
            let tr = track(&mut self.workers, sample.worker, cores);
            tr.health
                .add_second(sample.loader.cpu_percent, &sample.loader.lag);
            tr.rss_mib_max = max_opt(tr.rss_mib_max, sample.loader.rss_mib);
            tr.missing_since_s = None;
        }
        for worker in &w.missing_workers {
            let tr = track(&mut self.workers, *worker, cores);
            tr.missing_windows += 1;
            tr.first_missing_s.get_or_insert(t);
            tr.missing_since_s.get_or_insert(t);
        }
    }

    /// The load generator's health for the report: this process's, or, for a distributed run,
    /// every worker's with the run saturated when any worker was (named in the reasons).
    pub fn loader_health(&self) -> LoaderHealth {
        if self.workers.is_empty() {
            return self.loader.clone();
        }
        let mut merged = self.loader.clone();
        merged.reasons.clear();
        merged.workers = self
            .workers
            .iter()
            .map(|(index, tr)| {
                let mut health = tr.health.clone();
                health.workers.clear();
                merged.reasons.extend(
                    health
                        .reasons
                        .iter()
                        .map(|r| format!("worker {index}: {r}")),
                );
                WorkerHealth {
                    index: *index,
                    health,
                    rss_mib_max: tr.rss_mib_max,
                    missing_windows: tr.missing_windows,
                    first_missing_s: tr.first_missing_s,
                    lost_at_s: tr.missing_since_s,
                    // Known from the plan, not the windows: the report fills it in.
                    load_share: 0.0,
                }
            })
            .collect();
        merged.saturated = !merged.reasons.is_empty();
        merged
    }

    /// The timeline so far: one point per window.
    pub fn points(&self) -> &[TimelinePoint] {
        &self.points
    }

    pub fn last_point(&self) -> Option<&TimelinePoint> {
        self.points.last()
    }

    /// The knee's results, the current step judged when the plan ran to its end (a step cut
    /// short by Ctrl-C is not judged: it would describe a partial step).
    pub fn finish_knee(
        &mut self,
        completed: bool,
    ) -> Option<(KneeSection, Vec<crate::report::knee::StepResult>)> {
        let k = self.knee.take()?;
        let mut tracker = k.tracker;
        if completed {
            tracker.finish_step(&self.thresholds);
        }
        Some((tracker.section, tracker.results))
    }
}

/// The larger of two readings, either of which may be missing.
pub(super) fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::stats::ErrorKind;

    fn clock() -> RunClock {
        RunClock::start_now()
    }

    fn cams() -> Vec<String> {
        vec!["cams".into()]
    }

    fn groups() -> Vec<PlayerGroupInfo> {
        vec![
            PlayerGroupInfo {
                name: "flv-viewers".into(),
                protocol: Protocol::Flv,
            },
            PlayerGroupInfo {
                name: "hls-viewers".into(),
                protocol: Protocol::Hls,
            },
        ]
    }

    fn window(at_s: u64, flv_bytes: u64, errors: u64) -> Window {
        let mut flv = PlayerStats {
            bytes: flv_bytes,
            sessions: 1,
            ..Default::default()
        };
        for _ in 0..errors {
            flv.errors.add(ErrorKind::Eof);
        }
        Window {
            at: Duration::from_secs(at_s),
            length: Duration::from_secs(1),
            publishers: vec![GroupWindow {
                active: 2,
                stats: PublisherStats {
                    bytes: 250_000,
                    sessions: 1,
                    ..Default::default()
                },
            }],
            players: vec![
                GroupWindow {
                    active: 10,
                    stats: flv,
                },
                GroupWindow {
                    active: 3,
                    stats: PlayerStats::default(),
                },
            ],
            loader: LoaderSample {
                cpu_percent: Some(12.34),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_distributed_run_names_the_saturated_and_the_lost_worker() {
        let mut c = Collector::new(clock(), Duration::ZERO, 2, &cams(), &groups(), vec![], None);
        for s in 1..=10 {
            let mut w = window(s, 1000, 0);
            let sample = |worker, cpu| WorkerSample {
                worker,
                loader: LoaderSample {
                    cpu_percent: Some(cpu),
                    rss_mib: Some(40.0 + f64::from(worker)),
                    ..Default::default()
                },
            };
            w.workers = vec![sample(0, 20.0), sample(1, 195.0)];
            if s >= 6 {
                w.missing_workers = vec![2];
            } else {
                w.workers.push(sample(2, 10.0));
            }
            c.add(w);
        }
        assert_eq!(c.points()[6].workers_missing, [2]);
        let h = c.loader_health();
        assert!(h.saturated);
        assert_eq!(h.reasons.len(), 1, "{:?}", h.reasons);
        assert!(h.reasons[0].starts_with("worker 1: CPU"), "{:?}", h.reasons);
        assert_eq!(h.workers.len(), 3);
        assert!(h.workers[1].health.saturated && !h.workers[0].health.saturated);
        assert_eq!(h.workers[1].rss_mib_max, Some(41.0));
        assert_eq!(h.workers[2].missing_windows, 5);
        assert_eq!(h.workers[2].lost_at_s, Some(6.0));
        assert_eq!(h.workers[0].lost_at_s, None);
    }

    #[test]
    fn windows_split_at_the_warmup_and_become_timeline_points() {
        let clock = clock();
        let mut c = Collector::new(
            clock,
            Duration::from_secs(2),
            2,
            &cams(),
            &groups(),
            vec![],
            None,
        );
        for s in 1..=5 {
            assert!(!c.add(window(s, 125_000, u64::from(s == 1))).knee_broke);
        }
        // Seconds 1 and 2 are warm-up, 3..=5 steady.
        assert_eq!(c.players[0].warmup.sessions, 2);
        assert_eq!(c.players[0].steady.sessions, 3);
        assert_eq!(c.players[0].warmup.errors.total(), 1);
        assert_eq!(c.players[0].steady.errors.total(), 0);
        assert_eq!(c.publishers[0].steady.bytes, 750_000);
        assert_eq!(c.players_active, [10, 3]);
        let points = c.points();
        assert_eq!(points.len(), 5);
        let p = &points[2];
        assert_eq!(p.t, 3.0);
        // One clock: a point's wall time is the clock's anchor plus its t.
        assert_eq!(p.wall_ms, clock.start_unix_micros() / 1000 + 3000);
        assert_eq!(p.players["flv"].active, 10);
        assert_eq!(p.players["hls"].active, 3);
        assert_eq!(p.mbps_in, 1.0);
        assert_eq!(p.mbps_out, 2.0);
        assert_eq!(p.loader_cpu_percent, Some(12.3));
    }

    #[test]
    fn a_short_last_window_reports_rates_over_its_true_length() {
        let mut c = Collector::new(clock(), Duration::ZERO, 2, &cams(), &groups(), vec![], None);
        let mut w = window(1, 12_500, 0);
        w.length = Duration::from_millis(100);
        c.add(w);
        assert_eq!(c.last_point().unwrap().players["flv"].mbps, 1.0);
    }

    #[test]
    fn the_knee_breaks_when_a_step_fails_its_thresholds() {
        let section: KneeSection = toml::from_str(
            r#"group = "flv-viewers"
start = 10
step = 10
max = 30
step_duration = "2s"
settle = "0s"
"#,
        )
        .unwrap();
        let limit: Threshold = toml::from_str(
            r#"metric = "error_rate"
scope = "all"
max = 0.5
"#,
        )
        .unwrap();
        let mut c = Collector::new(
            clock(),
            Duration::ZERO,
            2,
            &cams(),
            &groups(),
            vec![limit],
            Some(section),
        );
        // Step 0 (0–2 s) is clean; step 1 (2–4 s) has an error per session.
        let broke: Vec<bool> = (1..=4)
            .map(|s| c.add(window(s, 1000, u64::from(s > 2))).knee_broke)
            .collect();
        assert_eq!(broke, [false, false, false, false]);
        // The failing step is judged when the next one starts.
        assert!(c.add(window(5, 1000, 1)).knee_broke);
        let (_, steps) = c.finish_knee(false).unwrap();
        assert_eq!(
            steps.iter().map(|s| s.pass).collect::<Vec<_>>(),
            [true, false]
        );
    }
}

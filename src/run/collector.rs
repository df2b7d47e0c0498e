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
use crate::metrics::loader::LoaderHealth;
use crate::metrics::timeline::{PlayerSecond, TimelinePoint, build_point};
use crate::metrics::{LatencyHistogram, PlayerStats, PublisherStats};
use crate::scenario::{KneeSection, Threshold};
use std::time::Duration;

/// What one group measured over a window, and how many of its clients were active at its end.
#[derive(Debug, Clone, Default)]
pub struct GroupWindow<S> {
    pub active: u64,
    pub stats: S,
}

/// The load generator's own health over a window.
#[derive(Debug, Clone, Default)]
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
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// End of the window, on the run clock.
    pub at: Duration,
    /// Its true length (the last window of a run is short).
    pub length: Duration,
    pub publishers: Vec<GroupWindow<PublisherStats>>,
    pub players: Vec<GroupWindow<PlayerStats>>,
    pub loader: LoaderSample,
}

/// A group's totals, split at the end of the warm-up.
#[derive(Debug, Clone, Default)]
pub struct Totals<S> {
    pub warmup: S,
    pub steady: S,
}

/// The knee's group, by index into the player groups, with its tracker.
struct Knee {
    group: usize,
    tracker: KneeTracker,
}

pub struct Collector {
    clock: RunClock,
    warmup: Duration,
    cores: usize,
    player_protocols: Vec<String>,
    thresholds: Vec<Threshold>,
    pub publishers: Vec<Totals<PublisherStats>>,
    pub players: Vec<Totals<PlayerStats>>,
    /// Active clients per group at the last window's end.
    pub publishers_active: Vec<u64>,
    pub players_active: Vec<u64>,
    pub loader: LoaderHealth,
    points: Vec<TimelinePoint>,
    knee: Option<Knee>,
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
    pub protocol: String,
}

impl Collector {
    pub fn new(
        clock: RunClock,
        warmup: Duration,
        cores: usize,
        publisher_groups: usize,
        player_groups: &[PlayerGroupInfo],
        thresholds: Vec<Threshold>,
        knee: Option<KneeSection>,
    ) -> Collector {
        let knee = knee.and_then(|section| {
            let group = player_groups.iter().position(|g| g.name == section.group)?;
            let groups: Vec<(String, String)> = player_groups
                .iter()
                .map(|g| (g.name.clone(), g.protocol.clone()))
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
            player_protocols: player_groups.iter().map(|g| g.protocol.clone()).collect(),
            thresholds,
            publishers: vec![Totals::default(); publisher_groups],
            players: vec![Totals::default(); player_groups.len()],
            publishers_active: vec![0; publisher_groups],
            players_active: vec![0; player_groups.len()],
            loader: LoaderHealth::new(cores),
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
                    protocol,
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
        self.loader.add_second(w.loader.cpu_percent, &w.loader.lag);

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
                    w.players.get(k.group).map_or(0, |g| g.active),
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
    ) -> Option<(KneeSection, Vec<super::knee::StepResult>)> {
        let k = self.knee.take()?;
        let mut tracker = k.tracker;
        if completed {
            tracker.finish_step(&self.thresholds);
        }
        Some((tracker.section, tracker.results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::stats::ErrorKind;

    fn clock() -> RunClock {
        RunClock::start_now()
    }

    fn groups() -> Vec<PlayerGroupInfo> {
        vec![
            PlayerGroupInfo {
                name: "flv-viewers".into(),
                protocol: "flv".into(),
            },
            PlayerGroupInfo {
                name: "hls-viewers".into(),
                protocol: "hls".into(),
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
        }
    }

    #[test]
    fn windows_split_at_the_warmup_and_become_timeline_points() {
        let clock = clock();
        let mut c = Collector::new(clock, Duration::from_secs(2), 2, 1, &groups(), vec![], None);
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
        let mut c = Collector::new(clock(), Duration::ZERO, 2, 1, &groups(), vec![], None);
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
            1,
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

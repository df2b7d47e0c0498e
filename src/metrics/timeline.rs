//! The per-second timeline: one JSON line per second, appended as the run goes, so a killed run
//! keeps everything it measured. Points carry wall-clock time so timelines of several
//! load-generator pods (and the cluster watcher) join by time.

use super::stats::{PlayerStats, PublisherStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProtocolPoint {
    pub active: u64,
    /// Received by players, Mbit/s.
    pub mbps: f64,
    pub sessions: u64,
    pub errors: u64,
    pub stalls: u64,
    pub startup_p99_ms: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TimelinePoint {
    /// Seconds since the run started (end of this one-second window).
    pub t: f64,
    /// Wall clock at the end of the window, ms since the Unix epoch.
    pub wall_ms: u64,
    pub publishers: u64,
    pub players: BTreeMap<String, ProtocolPoint>,
    /// Mbit/s sent by publishers.
    pub mbps_out: f64,
    /// Mbit/s received by all players.
    pub mbps_in: f64,
    pub errors: u64,
    pub startup_p50_ms: Option<f64>,
    pub startup_p99_ms: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub stalls: u64,
    pub publisher_lateness_p99_ms: Option<f64>,
    pub loader_cpu_percent: Option<f64>,
    pub loader_lag_ms_max: Option<f64>,
    /// Resident memory of the load generator, MiB.
    #[serde(default)]
    pub loader_rss_mib: Option<f64>,
    /// Local targets only: the xiu processes' CPU (% of one core) and resident memory, MiB.
    #[serde(default)]
    pub server_cpu_percent: Option<f64>,
    #[serde(default)]
    pub server_rss_mib: Option<f64>,
}

/// One player group's second: its protocol, active viewers and window.
pub struct PlayerSecond<'a> {
    pub protocol: &'a str,
    pub active: u64,
    pub window: &'a PlayerStats,
}

/// Builds a point from one second of windows. `seconds` is the window's true length.
pub fn build_point(
    t: f64,
    wall_ms: u64,
    seconds: f64,
    publishers: &[(u64, &PublisherStats)],
    players: &[PlayerSecond<'_>],
) -> TimelinePoint {
    let mbps = |bytes: u64| round2(bytes as f64 * 8.0 / 1e6 / seconds.max(1e-3));
    let mut all = PlayerStats::default();
    let mut by_protocol: BTreeMap<String, (u64, PlayerStats)> = BTreeMap::new();
    for p in players {
        all.merge(p.window);
        let entry = by_protocol.entry(p.protocol.to_string()).or_default();
        entry.0 += p.active;
        entry.1.merge(p.window);
    }
    let mut pubs = PublisherStats::default();
    for (_, w) in publishers {
        pubs.merge(w);
    }
    TimelinePoint {
        t: round2(t),
        wall_ms,
        publishers: publishers.iter().map(|(a, _)| a).sum(),
        players: by_protocol
            .into_iter()
            .map(|(proto, (active, s))| {
                (
                    proto,
                    ProtocolPoint {
                        active,
                        mbps: mbps(s.bytes),
                        sessions: s.sessions,
                        errors: s.errors.total(),
                        stalls: s.stalls,
                        startup_p99_ms: s.startup.quantile_ms(0.99),
                        latency_p50_ms: s.latency.quantile_ms(0.50),
                        latency_p99_ms: s.latency.quantile_ms(0.99),
                    },
                )
            })
            .collect(),
        mbps_out: mbps(pubs.bytes),
        mbps_in: mbps(all.bytes),
        errors: all.errors.total() + pubs.errors.total(),
        startup_p50_ms: all.startup.quantile_ms(0.50),
        startup_p99_ms: all.startup.quantile_ms(0.99),
        latency_p50_ms: all.latency.quantile_ms(0.50),
        latency_p95_ms: all.latency.quantile_ms(0.95),
        latency_p99_ms: all.latency.quantile_ms(0.99),
        stalls: all.stalls,
        publisher_lateness_p99_ms: pubs.lateness.quantile_ms(0.99),
        loader_cpu_percent: None,
        loader_lag_ms_max: None,
        loader_rss_mib: None,
        server_cpu_percent: None,
        server_rss_mib: None,
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Appends points to `timeline.jsonl`, flushing each line so a SIGKILL loses at most one.
pub struct TimelineWriter {
    file: std::fs::File,
}

impl TimelineWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(TimelineWriter {
            file: std::fs::File::create(path)?,
        })
    }

    pub fn append(&mut self, point: &TimelinePoint) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(point).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

/// Reads a timeline back (for `xiuload report` and tests); skips a torn last line.
pub fn read_timeline(path: &Path) -> std::io::Result<Vec<TimelinePoint>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::stats::ErrorKind;

    #[test]
    fn point_aggregates_by_protocol_and_rates_per_second() {
        // 2 Mbit in one second.
        let mut flv = PlayerStats {
            bytes: 250_000,
            ..Default::default()
        };
        flv.latency.record_micros(100_000);
        flv.errors.add(ErrorKind::Eof);
        let hls = PlayerStats {
            bytes: 125_000,
            stalls: 2,
            ..Default::default()
        };
        let pubs = PublisherStats {
            bytes: 500_000,
            ..Default::default()
        };
        let point = build_point(
            3.0,
            1_000,
            1.0,
            &[(2, &pubs)],
            &[
                PlayerSecond {
                    protocol: "flv",
                    active: 5,
                    window: &flv,
                },
                PlayerSecond {
                    protocol: "hls",
                    active: 7,
                    window: &hls,
                },
                PlayerSecond {
                    protocol: "flv",
                    active: 1,
                    window: &PlayerStats::default(),
                },
            ],
        );
        assert_eq!(point.players["flv"].active, 6);
        assert_eq!(point.players["flv"].mbps, 2.0);
        assert_eq!(point.mbps_in, 3.0);
        assert_eq!(point.mbps_out, 4.0);
        assert_eq!(point.publishers, 2);
        assert_eq!((point.errors, point.stalls), (1, 2));
        assert_eq!(point.latency_p99_ms.map(f64::round), Some(100.0));
    }

    #[test]
    fn writer_appends_lines_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        let mut w = TimelineWriter::create(&path).unwrap();
        for t in 1..=3 {
            w.append(&TimelinePoint {
                t: t as f64,
                ..Default::default()
            })
            .unwrap();
        }
        // A torn line from a killed run is skipped, not fatal.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"t\": 4")
            .unwrap();
        let back = read_timeline(&path).unwrap();
        assert_eq!(
            back.iter().map(|p| p.t).collect::<Vec<_>>(),
            [1.0, 2.0, 3.0]
        );
    }
}

//! The per-second timeline: one JSON line per second, appended as the run goes, so a killed run
//! keeps everything it measured. Points carry wall-clock time so timelines of several
//! load-generator pods (and the cluster watcher) join by time.

use super::stats::{PlayerStats, PublisherStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// A distributed run: the workers whose measurements for this second are missing (lost or
    /// cut off); the point's figures lack their share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers_missing: Vec<u32>,
    /// The `[[fault]]`s that began in this second, e.g. `["kill origin 0"]`; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fault: Vec<String>,
    /// What the local kubelet did in this second, e.g. `["edge 1 out of rotation"]`; absent when
    /// nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet: Vec<String>,
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
        workers_missing: Vec::new(),
        fault: Vec::new(),
        kubelet: Vec::new(),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Appends points to `timeline.jsonl`, flushing each line so a SIGKILL loses at most one.
///
/// A write error (a full disk) does not stop the run: the writer records the first one, reports
/// it once (to stderr unless told otherwise), cuts the torn line off so the file stays whole
/// lines, and writes nothing more.
pub struct TimelineWriter {
    file: std::fs::File,
    path: PathBuf,
    /// Bytes of whole lines written so far: where a torn line starts.
    written: u64,
    failure: Option<TimelineFailure>,
    warn: Box<dyn FnMut(&str) + Send + Sync>,
}

/// The first write error of a timeline, kept for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineFailure {
    /// The run time of the first point that was not written; the file ends before it.
    pub at_t: f64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("cannot write {path}: {source}; the timeline stops at {at_t}s, the run goes on")]
    Failed {
        path: PathBuf,
        at_t: f64,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not written since an earlier error")]
    Stopped { path: PathBuf },
}

impl TimelineWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(TimelineWriter {
            file: std::fs::File::create(path)?,
            path: path.to_path_buf(),
            written: 0,
            failure: None,
            warn: Box::new(|message| eprintln!("\nwarning: {message}")),
        })
    }

    /// Where the one report of the first write error goes (stderr by default).
    pub fn with_warnings(mut self, warn: impl FnMut(&str) + Send + Sync + 'static) -> Self {
        self.warn = Box::new(warn);
        self
    }

    pub fn append(&mut self, point: &TimelinePoint) -> Result<(), TimelineError> {
        self.append_line(point, point.t)
    }

    /// Appends any record as one JSON line; `at_t` is its run time, for the error.
    pub fn append_line<T: Serialize>(
        &mut self,
        record: &T,
        at_t: f64,
    ) -> Result<(), TimelineError> {
        if self.failure.is_some() {
            return Err(TimelineError::Stopped {
                path: self.path.clone(),
            });
        }
        let mut line = serde_json::to_vec(record).expect("a timeline record serialises");
        line.push(b'\n');
        match self.file.write_all(&line).and_then(|_| self.file.flush()) {
            Ok(()) => {
                self.written += line.len() as u64;
                Ok(())
            }
            Err(source) => {
                // Dropping the torn tail frees space rather than needing any.
                let _ = self.file.set_len(self.written);
                let error = TimelineError::Failed {
                    path: self.path.clone(),
                    at_t,
                    source,
                };
                let message = error.to_string();
                (self.warn)(&message);
                self.failure = Some(TimelineFailure { at_t, message });
                Err(error)
            }
        }
    }

    /// The first write error, if any: the report should say the timeline is cut short.
    pub fn failure(&self) -> Option<&TimelineFailure> {
        self.failure.as_ref()
    }
}

/// Reads a timeline back (for `xiuload report` and tests); skips a torn last line. Only regular
/// files are read: a timeline that is a device (a `/dev/full` or `/dev/zero` link) would never end.
pub fn read_timeline(path: &Path) -> std::io::Result<Vec<TimelinePoint>> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
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

    #[test]
    fn first_write_error_is_recorded_reported_once_and_the_run_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        // Every write to /dev/full fails with "No space left on device", as on a full disk.
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = reports.clone();
        let mut w = TimelineWriter::create(&path)
            .unwrap()
            .with_warnings(move |m| sink.lock().unwrap().push(m.to_string()));
        let point = |t| TimelinePoint {
            t,
            ..Default::default()
        };
        let first = w.append(&point(1.0)).unwrap_err();
        assert!(
            matches!(first, TimelineError::Failed { at_t: 1.0, .. }),
            "{first}"
        );
        for t in 2..=5 {
            assert!(matches!(
                w.append(&point(t as f64)),
                Err(TimelineError::Stopped { .. })
            ));
        }
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(
            reports[0].contains("No space left on device"),
            "{reports:?}"
        );
        assert!(reports[0].contains("the run goes on"), "{reports:?}");
        let failure = w.failure().unwrap();
        assert_eq!(failure.at_t, 1.0);
        // Reading a device back would never end: it is refused instead.
        assert!(read_timeline(&path).is_err());
    }
}

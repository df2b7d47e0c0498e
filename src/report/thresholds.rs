//! Judging thresholds against measurements, and the judged result the report and the knee's
//! steps hold. Pure.

use crate::metrics::{LatencyHistogram, PlayerStats, PublisherStats};
use crate::scenario::Protocol;
use crate::scenario::Threshold;
use crate::scenario::threshold::{Histogram, Metric, Ratio, Scope, Stat};
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};

/// One threshold judged, as `report.json` and each knee step hold it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdResult {
    pub metric: String,
    pub scope: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The measured value; `null` when nothing was measured (which fails the threshold).
    pub value: Option<f64>,
    pub pass: bool,
    pub note: Option<String>,
}

impl ThresholdResult {
    /// The limit as people write it: `≤ 3000`, `≥ 0.5`, `1 ≤ x ≤ 2`.
    pub fn limit_text(&self) -> String {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => format!("{lo} ≤ x ≤ {hi}"),
            (Some(lo), None) => format!("≥ {lo}"),
            (None, Some(hi)) => format!("≤ {hi}"),
            (None, None) => "–".into(),
        }
    }
}

/// The merged stats a threshold's scope selects.
pub enum Scoped<'a> {
    Players(&'a PlayerStats),
    Publishers(&'a PublisherStats),
}

fn histogram<'a>(h: Histogram, scoped: &Scoped<'a>) -> Option<&'a LatencyHistogram> {
    match (scoped, h) {
        (Scoped::Players(s), Histogram::Startup) => Some(&s.startup),
        (Scoped::Players(s), Histogram::Latency) => Some(&s.latency),
        (Scoped::Players(s), Histogram::Connect) => Some(&s.connect),
        (Scoped::Players(s), Histogram::Ttfb) => Some(&s.ttfb),
        (Scoped::Players(s), Histogram::FrameGap) => Some(&s.frame_gap),
        (Scoped::Players(s), Histogram::Playlist) => Some(&s.playlist),
        (Scoped::Players(s), Histogram::Segment) => Some(&s.segment),
        (Scoped::Publishers(s), Histogram::Lateness) => Some(&s.lateness),
        (Scoped::Publishers(s), Histogram::Connect) => Some(&s.connect),
        (Scoped::Players(_), Histogram::Lateness)
        | (
            Scoped::Publishers(_),
            Histogram::Startup
            | Histogram::Latency
            | Histogram::Ttfb
            | Histogram::FrameGap
            | Histogram::Playlist
            | Histogram::Segment,
        ) => None,
    }
}

fn ratio(r: Ratio, scoped: &Scoped<'_>) -> Option<f64> {
    match (scoped, r) {
        (Scoped::Players(s), Ratio::Stall) => {
            (s.play_micros + s.stall_micros > 0).then(|| s.stall_ratio())
        }
        // Viewers who joined during warm-up are not counted as sessions of the judged period, but
        // their errors and frames are: with activity and no new session, divide by one.
        (Scoped::Players(s), Ratio::Error) => {
            (s.sessions > 0 || s.frames > 0 || s.errors.total() > 0)
                .then(|| s.errors.total() as f64 / s.sessions.max(1) as f64)
        }
        (Scoped::Players(s), Ratio::LostFrame) => (s.frames > 0).then(|| s.lost_frame_ratio()),
        (Scoped::Publishers(s), Ratio::Error) => (s.sessions > 0).then(|| s.error_rate()),
        (Scoped::Publishers(_), Ratio::Stall | Ratio::LostFrame) => None,
    }
}

/// The metric's value over `scoped`, or `None` when nothing was measured for it.
pub fn value_of(metric: Metric, scoped: &Scoped<'_>) -> Option<f64> {
    match metric {
        Metric::Histogram(h, stat) => {
            let h = histogram(h, scoped)?;
            match stat {
                Stat::Max => h.max_ms(),
                Stat::Mean => h.mean_ms(),
                q => h.quantile_ms(q.quantile().unwrap_or(0.5)),
            }
        }
        Metric::Ratio(r) => ratio(r, scoped),
    }
}

pub fn judge(t: &Threshold, scoped: &Scoped<'_>) -> ThresholdResult {
    let value = value_of(t.metric, scoped);
    let (pass, note) = match value {
        None => (
            false,
            Some("nothing was measured for this metric and scope".to_string()),
        ),
        Some(v) => {
            let over = t.max.is_some_and(|max| v > max);
            let under = t.min.is_some_and(|min| v < min);
            (!(over || under), None)
        }
    };
    ThresholdResult {
        metric: t.metric.to_string(),
        scope: t.scope.to_string(),
        min: t.min,
        max: t.max,
        value: value.map(|v| (v * 1000.0).round() / 1000.0),
        pass,
        note,
    }
}

/// Judges every threshold against per-group player stats (`(group, protocol, stats)`) and the
/// merged publisher stats, resolving each threshold's scope.
pub fn judge_all(
    thresholds: &[Threshold],
    players: &[(&str, Protocol, &PlayerStats)],
    publishers: &PublisherStats,
) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            if t.scope == Scope::Publishers {
                return judge(t, &Scoped::Publishers(publishers));
            }
            let mut merged = PlayerStats::default();
            for (group, protocol, stats) in players {
                if t.scope.covers(group, *protocol) {
                    merged.merge(stats);
                }
            }
            judge(t, &Scoped::Players(&merged))
        })
        .collect()
}

pub fn verdict(results: &[ThresholdResult]) -> Verdict {
    if results.iter().all(|r| r.pass) {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(metric: &str, max: Option<f64>, min: Option<f64>) -> Threshold {
        Threshold {
            metric: metric.parse().unwrap(),
            scope: Scope::All,
            max,
            min,
        }
    }

    #[test]
    fn percentile_thresholds_pass_and_fail() {
        let mut s = PlayerStats::default();
        for ms in 1..=100u64 {
            s.startup.record_micros(ms * 1000);
        }
        let scoped = Scoped::Players(&s);
        assert!(judge(&threshold("startup_ms.p99", Some(150.0), None), &scoped).pass);
        let r = judge(&threshold("startup_ms.p99", Some(50.0), None), &scoped);
        assert!(!r.pass);
        assert_eq!(r.value.map(f64::round), Some(99.0));
        assert_eq!(verdict(&[r]), Verdict::Fail);
    }

    #[test]
    fn nothing_measured_fails_with_a_note() {
        let s = PlayerStats::default();
        let r = judge(
            &threshold("latency_ms.p95", Some(1e9), None),
            &Scoped::Players(&s),
        );
        assert!(!r.pass && r.note.is_some());
    }

    #[test]
    fn ratios_and_minimums() {
        let s = PlayerStats {
            sessions: 10,
            stall_micros: 1,
            play_micros: 99,
            ..Default::default()
        };
        let scoped = Scoped::Players(&s);
        assert!(judge(&threshold("stall_ratio", Some(0.02), None), &scoped).pass);
        assert!(!judge(&threshold("stall_ratio", None, Some(0.5)), &scoped).pass);
        assert_eq!(value_of(Metric::Ratio(Ratio::Error), &scoped), Some(0.0));
        // Joined during warm-up: no session in the judged period, but frames and no errors.
        let carried = PlayerStats {
            frames: 100,
            ..Default::default()
        };
        assert_eq!(
            value_of(Metric::Ratio(Ratio::Error), &Scoped::Players(&carried)),
            Some(0.0)
        );
        assert_eq!(
            value_of(
                Metric::Ratio(Ratio::Error),
                &Scoped::Players(&PlayerStats::default())
            ),
            None
        );
    }
}

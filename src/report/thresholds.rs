//! Judging thresholds against measurements. Pure.

use super::model::{ThresholdResult, Verdict};
use crate::metrics::stats::ErrorCounts;
use crate::metrics::{ErrorKind, LatencyHistogram, PlayerStats, PublisherStats};
use crate::scenario::Threshold;
use crate::scenario::threshold::{Stat, parse_metric};

/// The merged stats a threshold's scope selects.
pub enum Scoped<'a> {
    Players(&'a PlayerStats),
    Publishers(&'a PublisherStats),
}

pub fn value_of(metric: &str, scoped: &Scoped<'_>) -> Option<f64> {
    let for_publishers = matches!(scoped, Scoped::Publishers(_));
    let m = parse_metric(metric, for_publishers).ok()?;
    let hist: Option<&LatencyHistogram> = match (scoped, m.name.as_str()) {
        (Scoped::Players(s), "startup_ms") => Some(&s.startup),
        (Scoped::Players(s), "latency_ms") => Some(&s.latency),
        (Scoped::Players(s), "connect_ms") => Some(&s.connect),
        (Scoped::Players(s), "ttfb_ms") => Some(&s.ttfb),
        (Scoped::Players(s), "frame_gap_ms") => Some(&s.frame_gap),
        (Scoped::Players(s), "playlist_ms") => Some(&s.playlist),
        (Scoped::Players(s), "segment_ms") => Some(&s.segment),
        (Scoped::Publishers(s), "lateness_ms") => Some(&s.lateness),
        (Scoped::Publishers(s), "connect_ms") => Some(&s.connect),
        _ => None,
    };
    if let (Some(h), Some(stat)) = (hist, m.stat) {
        return match stat {
            Stat::Max => h.max_ms(),
            Stat::Mean => h.mean_ms(),
            q => h.quantile_ms(q.quantile().unwrap_or(0.5)),
        };
    }
    match (scoped, m.name.as_str()) {
        (Scoped::Players(s), "stall_ratio") => {
            (s.play_micros + s.stall_micros > 0).then(|| s.stall_ratio())
        }
        // Viewers who joined during warm-up are not counted as sessions of the judged period, but
        // their errors and frames are: with activity and no new session, divide by one.
        (Scoped::Players(s), "error_rate") => {
            (s.sessions > 0 || s.frames > 0 || s.errors.total() > 0)
                .then(|| s.errors.total() as f64 / s.sessions.max(1) as f64)
        }
        (Scoped::Players(s), "lost_frame_ratio") => (s.frames > 0).then(|| s.lost_frame_ratio()),
        (Scoped::Publishers(s), "error_rate") => (s.sessions > 0).then(|| s.error_rate()),
        _ => None,
    }
}

pub fn judge(t: &Threshold, scoped: &Scoped<'_>) -> ThresholdResult {
    let value = value_of(&t.metric, scoped);
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
        metric: t.metric.clone(),
        scope: t.scope.clone(),
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
    players: &[(&str, &str, &PlayerStats)],
    publishers: &PublisherStats,
) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            if t.scope == "publishers" {
                return judge(t, &Scoped::Publishers(publishers));
            }
            let mut merged = PlayerStats::default();
            for (group, protocol, stats) in players {
                if t.scope == "all" || t.scope == *protocol || t.scope == *group {
                    merged.merge(stats);
                }
            }
            judge(t, &Scoped::Players(&merged))
        })
        .collect()
}

/// Whether any client panicked: such a run never passes, whatever its thresholds say (a panic
/// ended a session the thresholds cannot judge).
pub fn any_panic<'a>(errors: impl IntoIterator<Item = &'a ErrorCounts>) -> bool {
    let panic = ErrorKind::Panic.to_string();
    errors
        .into_iter()
        .any(|e| e.0.get(&panic).is_some_and(|&n| n > 0))
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
            metric: metric.into(),
            scope: "all".into(),
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
    fn a_panic_anywhere_is_seen() {
        let mut panicked = ErrorCounts::default();
        panicked.add(ErrorKind::Panic);
        let mut other = ErrorCounts::default();
        other.add(ErrorKind::Eof);
        assert!(any_panic([&other, &panicked]));
        assert!(!any_panic([&other]));
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
        assert_eq!(value_of("error_rate", &scoped), Some(0.0));
        // Joined during warm-up: no session in the judged period, but frames and no errors.
        let carried = PlayerStats {
            frames: 100,
            ..Default::default()
        };
        assert_eq!(
            value_of("error_rate", &Scoped::Players(&carried)),
            Some(0.0)
        );
        assert_eq!(
            value_of("error_rate", &Scoped::Players(&PlayerStats::default())),
            None
        );
    }
}

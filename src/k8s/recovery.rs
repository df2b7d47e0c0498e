//! Judges the fault expectations, `max_viewers_dropped` and `recovered_within`, on the load's own
//! timeline: what the viewers went through around each `[[fault]]`. Needs no cluster, so they
//! judge local-topology runs too. Pure.
//!
//! The timeline has one point per second; a point at `t` covers the window `(t - 1, t]`.

use super::config::{DEFAULT_FAULT_WINDOW, DEFAULT_RECOVERED_PERCENT, ExpectKind, Expectation};
use super::judgement::{ExpectationResult, inconclusive, result};
use crate::metrics::timeline::TimelinePoint;
use crate::scenario::fault::{FaultEvent, FaultOutcome, FaultRecord};
use crate::units::HumanDuration;
use crate::verdict::Verdict;
use std::time::Duration;

/// The service before a fault is its mean over this long before it.
const BASELINE_S: f64 = 5.0;

/// A collecting tick reads its time a moment before it takes the clients' counts: what a fault
/// did within this long after a point's `t` can show in that point.
const TICK_SLACK_S: f64 = 0.05;

/// Served again means at the level for this many consecutive seconds: one good second between
/// bad ones (a burst of buffered media) is not a recovery.
const HOLD_POINTS: usize = 3;

pub fn judge(
    e: &Expectation,
    load: &[TimelinePoint],
    faults: FaultRecord<'_>,
) -> ExpectationResult {
    // From the end of the load on, viewers leave because the plan ends, not because of a fault.
    let cut = load.partition_point(|p| faults.load_end.is_none_or(|end| p.t < end));
    let load = &load[..cut];
    let which = match e.fault {
        Some(i) => format!("fault {i}"),
        None => "each fault".to_string(),
    };
    let description = match e.kind {
        ExpectKind::MaxViewersDropped => format!(
            "at most {} viewers dropped within {} of {which}",
            e.max.unwrap_or(0),
            HumanDuration(window(e))
        ),
        _ => format!(
            "viewers served again (≥ {}% of before) within {} of {which}",
            percent(e),
            HumanDuration(e.within.map_or(Duration::ZERO, |w| w.0))
        ),
    };
    let chosen: Vec<&FaultEvent> = faults
        .events
        .iter()
        .filter(|f| e.fault.is_none_or(|i| f.fault == i))
        .collect();
    if chosen.is_empty() {
        let why = match e.fault {
            Some(i) => format!("fault {i} never happened (the run stopped before it)"),
            None => "no fault happened during the run".to_string(),
        };
        return inconclusive(e, description, why.clone(), why);
    }
    let judged: Vec<(Verdict, String)> = chosen
        .iter()
        .map(|f| match f.outcome {
            // The fault did not happen: the viewers' calm says nothing about it.
            FaultOutcome::Failed => (
                Verdict::Inconclusive,
                format!("{}: the fault itself failed", f),
            ),
            _ if e.kind == ExpectKind::MaxViewersDropped => dropped(e, load, f),
            _ => recovered(e, load, f),
        })
        .collect();
    let verdict = judged
        .iter()
        .map(|(v, _)| *v)
        .max()
        .unwrap_or(Verdict::Pass);
    let evidence = judged
        .iter()
        .map(|(_, text)| text.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    match verdict {
        Verdict::Inconclusive => {
            let why = judged
                .iter()
                .filter(|(v, _)| *v == Verdict::Inconclusive)
                .map(|(_, text)| text.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            inconclusive(e, description, evidence, why)
        }
        v => result(e, description, v == Verdict::Pass, evidence),
    }
}

fn window(e: &Expectation) -> Duration {
    e.window.map_or(DEFAULT_FAULT_WINDOW, |w| w.0)
}

fn percent(e: &Expectation) -> f64 {
    e.percent.unwrap_or(DEFAULT_RECOVERED_PERCENT)
}

fn active(p: &TimelinePoint) -> u64 {
    p.players.values().map(|pp| pp.active).sum()
}

fn player_errors(p: &TimelinePoint) -> u64 {
    p.players.values().map(|pp| pp.errors).sum()
}

/// Viewer sessions that ended with an error in the windows that overlap `[at, at + window]`, or
/// viewers lost from the last count before the fault, whichever is more.
fn dropped(e: &Expectation, load: &[TimelinePoint], f: &FaultEvent) -> (Verdict, String) {
    let max = e.max.unwrap_or(0);
    let (start, end) = (f.at_s, f.at_s + window(e).as_secs_f64());
    let before = load
        .iter()
        .rev()
        .find(|p| p.t <= start - TICK_SLACK_S)
        .map(active);
    let inside: Vec<&TimelinePoint> = load
        .iter()
        .filter(|p| p.t > start - TICK_SLACK_S && p.t - 1.0 < end)
        .collect();
    let label = format!("{} at t={start:.1}s", f.label());
    let Some(last) = inside.last() else {
        return (
            Verdict::Inconclusive,
            format!("{label}: the load timeline ends before it"),
        );
    };
    let errors: u64 = inside.iter().map(|p| player_errors(p)).sum();
    let fewest = inside.iter().map(|p| active(p)).min().unwrap_or(0);
    let lost = before.map_or(0, |b| b.saturating_sub(fewest));
    let n = errors.max(lost);
    let mut text = format!(
        "{label}: {n} dropped ({errors} viewer session(s) ended with an error, {lost} of {} active viewers lost, in t={start:.1}s..{end:.1}s)",
        before.map_or("?".to_string(), |b| b.to_string())
    );
    if n > max {
        return (Verdict::Fail, text);
    }
    if before.is_none_or(|b| b == 0) && errors == 0 {
        text.push_str(": no viewer was watching when it happened");
        return (Verdict::Inconclusive, text);
    }
    if last.t < end {
        text.push_str(&format!(
            ": the run ended at t={:.1}s, inside the window",
            last.t
        ));
        return (Verdict::Inconclusive, text);
    }
    (Verdict::Pass, text)
}

/// Whether the viewers' received media and their number came back to `percent` of the mean of
/// the seconds before the fault, and held, within the bound.
fn recovered(e: &Expectation, load: &[TimelinePoint], f: &FaultEvent) -> (Verdict, String) {
    let share = percent(e) / 100.0;
    let bound = e.within.map_or(0.0, |w| w.0.as_secs_f64());
    let at = f.at_s;
    let label = format!("{} at t={at:.1}s", f.label());
    let base: Vec<&TimelinePoint> = load
        .iter()
        .filter(|p| p.t <= at && p.t > at - BASELINE_S)
        .collect();
    let mean = |v: &dyn Fn(&TimelinePoint) -> f64| {
        base.iter().map(|p| v(p)).sum::<f64>() / base.len().max(1) as f64
    };
    let (mbps, viewers) = (mean(&|p| p.mbps_in), mean(&|p| active(p) as f64));
    if base.is_empty() || mbps <= 0.0 {
        return (
            Verdict::Inconclusive,
            format!("{label}: nothing was served to viewers in the {BASELINE_S:.0}s before it"),
        );
    }
    let served =
        |p: &TimelinePoint| p.mbps_in >= share * mbps && active(p) as f64 >= share * viewers - 1e-9;
    let after: Vec<&TimelinePoint> = load.iter().filter(|p| p.t > at).collect();
    let trough = after
        .iter()
        .filter(|p| p.t <= at + bound + 1.0)
        .map(|p| p.mbps_in)
        .fold(f64::INFINITY, f64::min);
    let before_text = format!(
        "before: {mbps:.1} Mbit/s to {viewers:.0} viewers; lowest after: {} Mbit/s",
        if trough.is_finite() {
            format!("{trough:.1}")
        } else {
            "–".into()
        }
    );
    // The first run of HOLD_POINTS served seconds (or fewer, cut by the end of the load).
    let back = (0..after.len())
        .find(|&i| after[i..].iter().take(HOLD_POINTS).all(|p| served(p)))
        .map(|i| after[i].t);
    let end = after.last().map_or(at, |p| p.t);
    match back {
        Some(t) => {
            let took = t - at;
            let text =
                format!("{label}: served again at t={t:.1}s, {took:.1}s after ({before_text})");
            (Verdict::from_pass(took <= bound), text)
        }
        None if end - at < bound => (
            Verdict::Inconclusive,
            format!(
                "{label}: not served again by the end of the load at t={end:.1}s, {:.1}s after, before the bound ({before_text})",
                end - at
            ),
        ),
        None => (
            Verdict::Fail,
            format!("{label}: not served again by t={end:.1}s ({before_text})"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::timeline::ProtocolPoint;
    use crate::scenario::fault::{FaultAction, FaultTarget};

    /// A second of viewers: `active` FLV viewers receiving `mbps`, `errors` sessions failing.
    fn second(t: u32, active: u64, mbps: f64, errors: u64) -> TimelinePoint {
        TimelinePoint {
            t: t as f64,
            mbps_in: mbps,
            players: [(
                "flv".to_string(),
                ProtocolPoint {
                    active,
                    mbps,
                    errors,
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        }
    }

    /// 40 viewers at 40 Mbit/s; the origin dies at t=10.2; nothing reaches them for 6 s, 12
    /// sessions fail, 10 viewers are between sessions at worst; from t=17 all is back.
    fn outage() -> Vec<TimelinePoint> {
        (1..=30)
            .map(|t| match t {
                11 => second(t, 36, 8.0, 8),
                12 => second(t, 30, 0.0, 4),
                13..=16 => second(t, 40, 0.0, 0),
                _ => second(t, 40, 40.0, 0),
            })
            .collect()
    }

    fn record(events: &[FaultEvent]) -> FaultRecord<'_> {
        FaultRecord {
            events,
            load_end: None,
        }
    }

    fn kill_at(at_s: f64) -> FaultEvent {
        FaultEvent::done_at(at_s, FaultAction::Kill, FaultTarget::Origin)
    }

    fn dropped_at_most(max: u64) -> Expectation {
        Expectation {
            max: Some(max),
            ..Expectation::new(ExpectKind::MaxViewersDropped)
        }
    }

    fn recovered_within(secs: u64) -> Expectation {
        Expectation {
            within: Some(HumanDuration::secs(secs)),
            ..Expectation::new(ExpectKind::RecoveredWithin)
        }
    }

    #[test]
    fn viewers_dropped_counts_failed_sessions_or_lost_viewers() {
        let r = judge(&dropped_at_most(12), &outage(), record(&[kill_at(10.2)]));
        assert_eq!(r.status, Verdict::Pass, "{r:?}");
        assert!(
            r.evidence.contains(
                "kill origin 0 at t=10.2s: 12 dropped (12 viewer session(s) ended with an error, 10 of 40 active viewers lost"
            ),
            "{}",
            r.evidence
        );
        let r = judge(&dropped_at_most(11), &outage(), record(&[kill_at(10.2)]));
        assert_eq!(r.status, Verdict::Fail, "{r:?}");
        // A window that misses the failures.
        let late = Expectation {
            window: Some(HumanDuration::secs(3)),
            ..dropped_at_most(0)
        };
        let r = judge(&late, &outage(), record(&[kill_at(10.5)]));
        assert_eq!(r.status, Verdict::Fail, "{r:?}");
        let r = judge(&late, &outage(), record(&[kill_at(20.0)]));
        assert_eq!(r.status, Verdict::Pass, "{r:?}");
        // A fault a few ms after a tick: what it did shows in that tick's point.
        let mut early = outage();
        early[9] = second(10, 40, 40.0, 3);
        let r = judge(&late, &early, record(&[kill_at(10.004)]));
        assert!(r.evidence.contains(": 15 dropped"), "{}", r.evidence);
    }

    #[test]
    fn recovery_is_the_first_lasting_return_to_the_level_before() {
        let r = judge(&recovered_within(10), &outage(), record(&[kill_at(10.2)]));
        assert_eq!(r.status, Verdict::Pass, "{r:?}");
        assert!(
            r.evidence
                .contains("served again at t=17.0s, 6.8s after (before: 40.0 Mbit/s to 40 viewers; lowest after: 0.0 Mbit/s)"),
            "{}",
            r.evidence
        );
        let r = judge(&recovered_within(5), &outage(), record(&[kill_at(10.2)]));
        assert_eq!(r.status, Verdict::Fail, "{r:?}");
        // One good second between bad ones is not a recovery.
        let mut flicker = outage();
        flicker[13] = second(14, 40, 40.0, 0);
        let r = judge(&recovered_within(10), &flicker, record(&[kill_at(10.2)]));
        assert!(
            r.evidence.contains("served again at t=17.0s"),
            "{}",
            r.evidence
        );
    }

    #[test]
    fn never_served_again_fails_after_the_bound_and_is_inconclusive_before_it() {
        let dead: Vec<TimelinePoint> = (1..=30)
            .map(|t| {
                if t <= 10 {
                    second(t, 40, 40.0, 0)
                } else {
                    second(t, 40, 0.0, 1)
                }
            })
            .collect();
        let r = judge(&recovered_within(15), &dead, record(&[kill_at(10.2)]));
        assert_eq!(r.status, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence.contains("not served again by t=30.0s"),
            "{}",
            r.evidence
        );
        let r = judge(&recovered_within(60), &dead, record(&[kill_at(10.2)]));
        assert_eq!(r.status, Verdict::Inconclusive, "{r:?}");
    }

    #[test]
    fn nothing_to_judge_is_inconclusive_never_a_pass() {
        for e in [dropped_at_most(100), recovered_within(60)] {
            let r = judge(&e, &outage(), record(&[]));
            assert_eq!(r.status, Verdict::Inconclusive, "{r:?}");
            assert_eq!(
                r.inconclusive.as_deref(),
                Some("no fault happened during the run")
            );
            let mut failed = kill_at(10.2);
            failed.outcome = FaultOutcome::Failed;
            failed.error = Some("origin 0 is not running".into());
            let r = judge(&e, &outage(), record(&[failed]));
            assert_eq!(r.status, Verdict::Inconclusive, "{r:?}");
            assert!(r.evidence.contains("the fault itself failed"), "{r:?}");
            // Nobody watching before the fault.
            let empty: Vec<TimelinePoint> = (1..=30).map(|t| second(t, 0, 0.0, 0)).collect();
            let r = judge(&e, &empty, record(&[kill_at(10.2)]));
            assert_eq!(r.status, Verdict::Inconclusive, "{r:?}");
            // The named fault never happened.
            let named = Expectation {
                fault: Some(1),
                ..e.clone()
            };
            let r = judge(&named, &outage(), record(&[kill_at(10.2)]));
            assert_eq!(
                r.inconclusive.as_deref(),
                Some("fault 1 never happened (the run stopped before it)")
            );
        }
    }

    #[test]
    fn the_load_stopping_is_not_read_as_the_fault() {
        // The plan ends at t=30: viewers leave, nothing is received.
        let mut stopping = outage();
        stopping.extend([second(31, 0, 0.0, 0), second(32, 0, 0.0, 0)]);
        let faults = [kill_at(25.0)];
        let ended = FaultRecord {
            events: &faults,
            load_end: Some(31.0),
        };
        let r = judge(&dropped_at_most(0), &stopping, ended);
        assert_eq!(r.status, Verdict::Inconclusive, "{r:?}");
        assert!(r.evidence.contains("0 dropped"), "{}", r.evidence);
        // Unbounded, the leaving viewers would count.
        let r = judge(&dropped_at_most(0), &stopping, record(&faults));
        assert_eq!(r.status, Verdict::Fail, "{r:?}");
        let r = judge(&recovered_within(3), &stopping, ended);
        assert!(
            r.evidence.contains("lowest after: 40.0 Mbit/s"),
            "{}",
            r.evidence
        );
    }

    #[test]
    fn the_worst_fault_decides() {
        let faults = [kill_at(10.2), kill_at(18.5)];
        let r = judge(&dropped_at_most(5), &outage(), record(&faults));
        assert_eq!(r.status, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence.contains("at t=10.2s: 12 dropped")
                && r.evidence.contains("at t=18.5s: 0 dropped"),
            "{}",
            r.evidence
        );
        // Named: only the second fault, which dropped nobody.
        let second_only = Expectation {
            fault: Some(0),
            ..dropped_at_most(5)
        };
        let mut later = kill_at(18.5);
        later.fault = 1;
        let r = judge(
            &second_only,
            &outage(),
            record(&[kill_at(10.2), later.clone()]),
        );
        assert_eq!(r.status, Verdict::Fail);
        let second_only = Expectation {
            fault: Some(1),
            ..second_only
        };
        let r = judge(&second_only, &outage(), record(&[kill_at(10.2), later]));
        assert_eq!(r.status, Verdict::Pass, "{r:?}");
    }
}

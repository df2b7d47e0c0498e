//! Pure reconciliation: which subscriptions to start, stop or restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::streams::StreamKey;

/// First retry delay: covers xiu's empty answer to the first FLV request
/// (the edge has just started pulling and has nothing yet).
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Upper bound so a stream that keeps failing is still retried regularly.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A subscription that delivered data for this long counts as healthy, and
/// its end resets the backoff.
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// A subscriber task is running. `failures` carries over so a task that
    /// ends quickly again backs off further.
    Running { since: Instant, failures: u32 },
    /// The last subscription ended at `ended`; `failures` consecutive
    /// unhealthy ends (≥ 1). `stalled`: it ended by going silent, the sign of
    /// a phantom stream on the edge (xiu 0.14 keeps a pulled stream whose
    /// origin went away and never re-pulls it), which must be kicked first.
    Ended {
        ended: Instant,
        failures: u32,
        stalled: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start(StreamKey),
    Stop(StreamKey),
    /// Start again after a backoff that has now elapsed.
    Restart(StreamKey),
}

/// `min(BASE * 2^(failures-1), CAP)`; 0 failures means no wait.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

/// Failure count after a subscription ended: reset if it was healthy.
pub fn failures_after_end(previous: u32, ran_for: Duration, bytes: u64) -> u32 {
    if bytes > 0 && ran_for >= HEALTHY_RUN {
        1
    } else {
        previous.saturating_add(1)
    }
}

pub fn plan(
    desired: &BTreeSet<StreamKey>,
    running: &BTreeMap<StreamKey, SubState>,
    now: Instant,
) -> Vec<Action> {
    let mut actions: Vec<Action> = running
        .keys()
        .filter(|k| !desired.contains(*k))
        .map(|k| Action::Stop(k.clone()))
        .collect();
    for k in desired {
        match running.get(k) {
            None => actions.push(Action::Start(k.clone())),
            Some(SubState::Ended {
                ended, failures, ..
            }) if now >= *ended + backoff(*failures) => actions.push(Action::Restart(k.clone())),
            Some(_) => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> StreamKey {
        StreamKey::new("live", s)
    }
    fn set(keys: &[&str]) -> BTreeSet<StreamKey> {
        keys.iter().map(|k| key(k)).collect()
    }

    #[test]
    fn empty_first_response_plans_nothing() {
        assert!(plan(&set(&[]), &BTreeMap::new(), Instant::now()).is_empty());
    }

    #[test]
    fn streams_come_and_go() {
        let now = Instant::now();
        let mut running = BTreeMap::new();
        assert_eq!(
            plan(&set(&["a", "b"]), &running, now),
            vec![Action::Start(key("a")), Action::Start(key("b"))]
        );
        running.insert(
            key("a"),
            SubState::Running {
                since: now,
                failures: 0,
            },
        );
        running.insert(
            key("b"),
            SubState::Running {
                since: now,
                failures: 0,
            },
        );
        assert!(plan(&set(&["a", "b"]), &running, now).is_empty());
        assert_eq!(
            plan(&set(&["b", "c"]), &running, now),
            vec![Action::Stop(key("a")), Action::Start(key("c"))]
        );
    }

    #[test]
    fn origin_restart_resubscribes() {
        let now = Instant::now();
        let mut running = BTreeMap::new();
        running.insert(
            key("a"),
            SubState::Ended {
                ended: now,
                failures: 3,
                stalled: false,
            },
        );
        // Origin gone: everything vanishes from its list.
        assert_eq!(plan(&set(&[]), &running, now), vec![Action::Stop(key("a"))]);
        running.clear();
        // Origin back with the stream: a fresh start, no leftover backoff.
        assert_eq!(
            plan(&set(&["a"]), &running, now),
            vec![Action::Start(key("a"))]
        );
    }

    #[test]
    fn subscription_that_keeps_ending_backs_off() {
        let t0 = Instant::now();
        let mut failures = 0;
        let mut delays = Vec::new();
        for _ in 0..10 {
            failures = failures_after_end(failures, Duration::from_millis(5), 0);
            let mut running = BTreeMap::new();
            running.insert(
                key("a"),
                SubState::Ended {
                    ended: t0,
                    failures,
                    stalled: false,
                },
            );
            let d = backoff(failures);
            assert!(plan(&set(&["a"]), &running, t0 + d - Duration::from_millis(1)).is_empty());
            assert_eq!(
                plan(&set(&["a"]), &running, t0 + d),
                vec![Action::Restart(key("a"))]
            );
            delays.push(d);
        }
        assert_eq!(delays[0], BACKOFF_BASE);
        assert_eq!(delays[1], BACKOFF_BASE * 2);
        assert_eq!(*delays.last().unwrap(), BACKOFF_CAP);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn healthy_run_resets_backoff() {
        assert_eq!(failures_after_end(7, HEALTHY_RUN, 1000), 1);
        assert_eq!(failures_after_end(7, HEALTHY_RUN, 0), 8);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
        assert_eq!(backoff(0), Duration::ZERO);
    }
}

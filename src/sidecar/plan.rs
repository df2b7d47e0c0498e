//! Pure planning: which relay to start, stop or move, given what each origin lists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::streams::StreamKey;

/// First retry delay: a relay that failed at once (the origin answered an empty FLV body, the
/// edge refused a publish racing the previous one's unpublish) is tried again soon.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Upper bound: a relay that keeps failing is still retried every 8 s, forever. It also bounds
/// how long a stream the origins list can stay missing on the edge once the cause is gone.
pub const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// A relay that forwarded media for this long counts as healthy, and its end resets the backoff.
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// A relay task is running. `failures` carries over so a task that ends quickly again backs
    /// off further.
    Running { since: Instant, failures: u32 },
    /// The last relay ended at `ended` after `failures` consecutive unhealthy runs (≥ 1).
    Ended { ended: Instant, failures: u32 },
}

/// One stream's relay: from which origin, in which state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    pub origin: usize,
    pub state: SubState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a relay from `origin` (new stream, retry after backoff, or the stream moved there:
    /// any relay still running for the key is stopped first). `failures` is the count to carry.
    Start {
        key: StreamKey,
        origin: usize,
        failures: u32,
    },
    /// No origin lists the stream any more.
    Stop(StreamKey),
}

/// `min(BASE * 2^(failures-1), CAP)`; 0 failures means no wait.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

/// Failure count after a relay ended: reset if it was healthy.
pub fn failures_after_end(previous: u32, ran_for: Duration, bytes: u64) -> u32 {
    if bytes > 0 && ran_for >= HEALTHY_RUN {
        1
    } else {
        previous.saturating_add(1)
    }
}

/// `lists[i]`: what origin `i` listed at the last poll, `None` when it did not answer.
///
/// A relay stays on its origin while that origin lists the stream (no flapping when a stream is
/// briefly on two origins: a publisher that reconnected elsewhere before the old origin noticed),
/// and also while that origin does not answer its API but the relay still runs (an API hiccup
/// must not cut a working relay). Otherwise the stream goes to the first origin that lists it,
/// at once and with a fresh backoff; with none, its relay stops.
pub fn plan(
    lists: &[Option<BTreeSet<StreamKey>>],
    relays: &BTreeMap<StreamKey, Relay>,
    now: Instant,
) -> Vec<Action> {
    let listed_by = |i: usize, k: &StreamKey| {
        lists
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|l| l.contains(k))
    };
    let first_lister = |k: &StreamKey| (0..lists.len()).find(|&i| listed_by(i, k));
    let mut actions = Vec::new();
    for (key, relay) in relays {
        let stays = listed_by(relay.origin, key)
            || (matches!(lists.get(relay.origin), Some(None))
                && matches!(relay.state, SubState::Running { .. }));
        if stays {
            if let SubState::Ended { ended, failures } = relay.state
                && now >= ended + backoff(failures)
            {
                actions.push(Action::Start {
                    key: key.clone(),
                    origin: relay.origin,
                    failures,
                });
            }
            continue;
        }
        match first_lister(key) {
            Some(origin) => actions.push(Action::Start {
                key: key.clone(),
                origin,
                failures: 0,
            }),
            None => actions.push(Action::Stop(key.clone())),
        }
    }
    let mut new: BTreeSet<&StreamKey> = BTreeSet::new();
    for (origin, list) in lists.iter().enumerate() {
        for key in list.iter().flatten() {
            if !relays.contains_key(key) && new.insert(key) {
                actions.push(Action::Start {
                    key: key.clone(),
                    origin,
                    failures: 0,
                });
            }
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
    fn set(keys: &[&str]) -> Option<BTreeSet<StreamKey>> {
        Some(keys.iter().map(|k| key(k)).collect())
    }
    fn running(origin: usize, now: Instant) -> Relay {
        Relay {
            origin,
            state: SubState::Running {
                since: now,
                failures: 0,
            },
        }
    }
    fn start(k: &str, origin: usize, failures: u32) -> Action {
        Action::Start {
            key: key(k),
            origin,
            failures,
        }
    }

    #[test]
    fn empty_lists_plan_nothing() {
        assert!(plan(&[set(&[]), None], &BTreeMap::new(), Instant::now()).is_empty());
    }

    #[test]
    fn streams_come_and_go_over_two_origins() {
        let now = Instant::now();
        let mut relays = BTreeMap::new();
        assert_eq!(
            plan(&[set(&["a"]), set(&["b", "a"])], &relays, now),
            vec![start("a", 0, 0), start("b", 1, 0)]
        );
        relays.insert(key("a"), running(0, now));
        relays.insert(key("b"), running(1, now));
        assert!(plan(&[set(&["a"]), set(&["b"])], &relays, now).is_empty());
        assert_eq!(
            plan(&[set(&["c"]), set(&["b"])], &relays, now),
            vec![Action::Stop(key("a")), start("c", 0, 0)]
        );
    }

    #[test]
    fn a_stream_that_moves_to_another_origin_follows_at_once() {
        let now = Instant::now();
        let mut relays = BTreeMap::new();
        relays.insert(
            key("a"),
            Relay {
                origin: 0,
                state: SubState::Ended {
                    ended: now,
                    failures: 5,
                },
            },
        );
        // Publisher reconnected to origin 1: no backoff left over from origin 0.
        assert_eq!(
            plan(&[set(&[]), set(&["a"])], &relays, now),
            vec![start("a", 1, 0)]
        );
        // Listed by both (the old origin has not noticed yet): a running relay stays put.
        relays.insert(key("a"), running(0, now));
        assert!(plan(&[set(&["a"]), set(&["a"])], &relays, now).is_empty());
        // Origin 0 restarted without it while the relay still ran: moves.
        assert_eq!(
            plan(&[set(&[]), set(&["a"])], &relays, now),
            vec![start("a", 1, 0)]
        );
    }

    #[test]
    fn an_origin_api_hiccup_keeps_running_relays_only() {
        let now = Instant::now();
        let mut relays = BTreeMap::new();
        relays.insert(key("a"), running(0, now));
        relays.insert(
            key("b"),
            Relay {
                origin: 0,
                state: SubState::Ended {
                    ended: now,
                    failures: 1,
                },
            },
        );
        assert_eq!(
            plan(&[None, set(&[])], &relays, now + Duration::from_secs(60)),
            vec![Action::Stop(key("b"))]
        );
    }

    #[test]
    fn a_relay_that_keeps_ending_backs_off_to_the_cap() {
        let t0 = Instant::now();
        let mut failures = 0;
        let mut delays = Vec::new();
        for _ in 0..10 {
            failures = failures_after_end(failures, Duration::from_millis(5), 0);
            let mut relays = BTreeMap::new();
            relays.insert(
                key("a"),
                Relay {
                    origin: 0,
                    state: SubState::Ended {
                        ended: t0,
                        failures,
                    },
                },
            );
            let d = backoff(failures);
            let lists = [set(&["a"])];
            assert!(plan(&lists, &relays, t0 + d - Duration::from_millis(1)).is_empty());
            assert_eq!(plan(&lists, &relays, t0 + d), vec![start("a", 0, failures)]);
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

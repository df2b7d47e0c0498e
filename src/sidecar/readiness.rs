//! Pure readiness: does the edge serve every stream the origins list?

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::streams::StreamKey;

/// Since when one origin has listed each of its streams under the same publisher.
pub type Listed = BTreeMap<StreamKey, (Option<String>, Instant)>;

/// What the relay loop saw at its last polls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Per origin; `None` when it did not answer the last poll (it then requires nothing).
    pub origins: Vec<Option<Listed>>,
    /// The edge's own list; `None` when its API did not answer the last poll.
    pub edge: Option<EdgeView>,
    /// Some origin has answered at least once since the sidecar started.
    pub synced: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeView {
    /// Streams published on the edge (by the relay).
    pub streams: BTreeSet<StreamKey>,
    /// RTMP and HTTP-FLV viewers (xiu does not see HLS viewers).
    pub viewers: u64,
}

/// Carries each stream's "listed since" over from the previous poll of the same origin. A stream
/// that appears, or whose publisher changed (it reconnected), starts a new grace period: the
/// relay must first notice and re-publish it.
pub fn listed_since(
    previous: Option<&Listed>,
    now_listed: &BTreeMap<StreamKey, Option<String>>,
    now: Instant,
) -> Listed {
    now_listed
        .iter()
        .map(|(key, id)| {
            let since = previous
                .and_then(|p| p.get(key))
                .filter(|(old_id, _)| old_id == id)
                .map_or(now, |(_, since)| *since);
            (key.clone(), (id.clone(), since))
        })
        .collect()
}

/// Startup is over once some origin answered and the edge's API answers.
pub fn started(s: &Snapshot) -> Result<(), String> {
    if !s.synced {
        return Err("no origin has answered its stream list yet".into());
    }
    if s.edge.is_none() {
        return Err("the edge's API did not answer the last poll".into());
    }
    Ok(())
}

/// Ready: started, and every stream an origin has listed for at least `grace` is published on
/// the edge. The error names the missing streams (at most 10) and how many there are.
pub fn readiness(s: &Snapshot, now: Instant, grace: Duration) -> Result<(), String> {
    started(s)?;
    let edge = s.edge.as_ref().map(|e| &e.streams);
    let mut missing: Vec<String> = Vec::new();
    for (i, listed) in s.origins.iter().enumerate() {
        for (key, (_, since)) in listed.iter().flatten() {
            let age = now.saturating_duration_since(*since);
            if age >= grace && !edge.is_some_and(|e| e.contains(key)) {
                missing.push(format!("{key} (origin {i} for {}s)", age.as_secs()));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let n = missing.len();
    missing.truncate(10);
    Err(format!(
        "the edge does not serve {n} stream(s) the origins have: {}",
        missing.join(", ")
    ))
}

/// Whether the edge is leaving. `GET /drain` is the preStop hook of both containers: when the pod
/// goes, xiu exits after it and never comes back. When only the xiu container is stopped (the
/// kubelet restarts it after failed liveness probes), its hook drains too, and a new xiu starts
/// in the same pod: the drain was for the old one, so it ends when the edge's API is seen gone
/// and then answering again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Drain {
    #[default]
    Serving,
    Draining {
        /// The edge's API has failed a poll since the drain began.
        edge_went_away: bool,
    },
}

impl Drain {
    /// `GET /drain` was called.
    pub fn begin(self) -> Drain {
        match self {
            Drain::Serving => Drain::Draining {
                edge_went_away: false,
            },
            draining => draining,
        }
    }

    /// After a poll of the edge's API that `answered` or not.
    pub fn after_poll(self, answered: bool) -> Drain {
        match (self, answered) {
            (
                Drain::Draining {
                    edge_went_away: true,
                },
                true,
            ) => Drain::Serving,
            (Drain::Draining { .. }, false) => Drain::Draining {
                edge_went_away: true,
            },
            (same, _) => same,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> StreamKey {
        StreamKey::new("live", s)
    }
    fn listed(entries: &[(&str, &str)]) -> BTreeMap<StreamKey, Option<String>> {
        entries
            .iter()
            .map(|(k, id)| (key(k), Some(id.to_string())))
            .collect()
    }

    #[test]
    fn since_survives_polls_and_restarts_with_a_new_publisher() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let first = listed_since(None, &listed(&[("a", "p1")]), t0);
        let second = listed_since(Some(&first), &listed(&[("a", "p1"), ("b", "p2")]), t1);
        assert_eq!(second[&key("a")].1, t0);
        assert_eq!(second[&key("b")].1, t1);
        let third = listed_since(Some(&second), &listed(&[("a", "p9")]), t1);
        assert_eq!(third[&key("a")].1, t1, "publisher reconnected: a new grace");
        assert!(!third.contains_key(&key("b")));
    }

    fn snapshot(listed_for: Duration, now: Instant, edge: &[&str]) -> Snapshot {
        let origin = listed_since(None, &listed(&[("a", "p1")]), now - listed_for);
        Snapshot {
            origins: vec![Some(origin), None],
            edge: Some(EdgeView {
                streams: edge.iter().map(|k| key(k)).collect(),
                viewers: 0,
            }),
            synced: true,
        }
    }

    #[test]
    fn ready_only_when_the_edge_has_what_the_origins_list_after_grace() {
        let now = Instant::now();
        let grace = Duration::from_secs(10);
        assert_eq!(readiness(&snapshot(grace, now, &["a"]), now, grace), Ok(()));
        let e = readiness(&snapshot(grace, now, &[]), now, grace).unwrap_err();
        assert!(e.contains("live/a (origin 0 for 10s)"), "{e}");
        // Inside the grace period a new stream is not yet required.
        let young = snapshot(grace - Duration::from_millis(1), now, &[]);
        assert_eq!(readiness(&young, now, grace), Ok(()));
    }

    #[test]
    fn not_ready_before_first_sync_or_without_the_edge_api() {
        let now = Instant::now();
        let mut s = snapshot(Duration::ZERO, now, &["a"]);
        s.synced = false;
        assert!(readiness(&s, now, Duration::ZERO).is_err());
        assert!(started(&s).is_err());
        let mut s = snapshot(Duration::ZERO, now, &["a"]);
        s.edge = None;
        assert!(
            readiness(&s, now, Duration::ZERO)
                .unwrap_err()
                .contains("edge's API")
        );
    }

    #[test]
    fn a_drain_lasts_until_the_edge_is_replaced() {
        let d = Drain::Serving.after_poll(false);
        assert_eq!(d, Drain::Serving, "not draining: nothing to end");
        // The pod leaves: xiu answers while its viewers go, then exits for good.
        let mut d = Drain::Serving.begin();
        for answered in [true, true, false, false, false] {
            d = d.after_poll(answered);
            assert_ne!(d, Drain::Serving);
        }
        assert_eq!(d.begin(), d, "a second /drain changes nothing");
        // Only xiu was restarted (a liveness failure): gone, then a new one answers.
        let d = Drain::Serving.begin().after_poll(false).after_poll(true);
        assert_eq!(d, Drain::Serving);
    }
}

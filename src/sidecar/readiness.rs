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

/// Why the edge is not started or not ready: the probe body's line for its check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("no origin has answered its stream list yet")]
    NoOriginAnswered,
    #[error("the edge's API did not answer the last poll")]
    EdgeApiSilent,
    /// `missing` holds at most [`MAX_NAMED_MISSING`] streams; `count` is how many there are.
    #[error(
        "the edge does not serve {count} stream(s) the origins have: {}",
        join(.missing)
    )]
    StreamsMissing {
        count: usize,
        missing: Vec<MissingStream>,
    },
}

/// How many missing streams the probe body names: the count says the rest.
pub const MAX_NAMED_MISSING: usize = 10;

/// A stream an origin has listed for longer than the grace period and the edge does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingStream {
    pub key: StreamKey,
    pub origin: usize,
    pub listed_for: Duration,
}

impl std::fmt::Display for MissingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (origin {} for {}s)",
            self.key,
            self.origin,
            self.listed_for.as_secs()
        )
    }
}

fn join(missing: &[MissingStream]) -> String {
    missing
        .iter()
        .map(MissingStream::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Startup is over once some origin answered and the edge's API answers.
pub fn started(s: &Snapshot) -> Result<(), NotReady> {
    if !s.synced {
        return Err(NotReady::NoOriginAnswered);
    }
    if s.edge.is_none() {
        return Err(NotReady::EdgeApiSilent);
    }
    Ok(())
}

/// Ready: started, and every stream an origin has listed for at least `grace` is published on
/// the edge. The error names the missing streams (at most 10) and how many there are.
pub fn readiness(s: &Snapshot, now: Instant, grace: Duration) -> Result<(), NotReady> {
    started(s)?;
    let edge = s.edge.as_ref().map(|e| &e.streams);
    let mut missing: Vec<MissingStream> = Vec::new();
    for (origin, listed) in s.origins.iter().enumerate() {
        for (key, (_, since)) in listed.iter().flatten() {
            let listed_for = now.saturating_duration_since(*since);
            if listed_for >= grace && !edge.is_some_and(|e| e.contains(key)) {
                missing.push(MissingStream {
                    key: key.clone(),
                    origin,
                    listed_for,
                });
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let count = missing.len();
    missing.truncate(MAX_NAMED_MISSING);
    Err(NotReady::StreamsMissing { count, missing })
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
        assert_eq!(
            e.to_string(),
            "the edge does not serve 1 stream(s) the origins have: live/a (origin 0 for 10s)"
        );
        // Inside the grace period a new stream is not yet required.
        let young = snapshot(grace - Duration::from_millis(1), now, &[]);
        assert_eq!(readiness(&young, now, grace), Ok(()));
    }

    #[test]
    fn not_ready_before_first_sync_or_without_the_edge_api() {
        let now = Instant::now();
        let mut s = snapshot(Duration::ZERO, now, &["a"]);
        s.synced = false;
        assert_eq!(
            readiness(&s, now, Duration::ZERO),
            Err(NotReady::NoOriginAnswered)
        );
        assert_eq!(started(&s), Err(NotReady::NoOriginAnswered));
        let mut s = snapshot(Duration::ZERO, now, &["a"]);
        s.edge = None;
        assert_eq!(
            readiness(&s, now, Duration::ZERO),
            Err(NotReady::EdgeApiSilent)
        );
    }

    /// The probe body shows these texts; the e2e suites and operators read them.
    #[test]
    fn reasons_read_as_the_probe_body_says_them() {
        assert_eq!(
            NotReady::NoOriginAnswered.to_string(),
            "no origin has answered its stream list yet"
        );
        assert_eq!(
            NotReady::EdgeApiSilent.to_string(),
            "the edge's API did not answer the last poll"
        );
    }

    #[test]
    fn missing_streams_name_ten_and_count_all() {
        let now = Instant::now();
        let grace = Duration::from_secs(10);
        let names: Vec<String> = (0..12).map(|i| format!("s{i:02}")).collect();
        let entries: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "p")).collect();
        let origin = listed_since(None, &listed(&entries), now - Duration::from_secs(42));
        let s = Snapshot {
            origins: vec![None, Some(origin)],
            edge: Some(EdgeView::default()),
            synced: true,
        };
        let e = readiness(&s, now, grace).unwrap_err();
        let NotReady::StreamsMissing { count, missing } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(*count, 12);
        assert_eq!(missing.len(), MAX_NAMED_MISSING);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "the edge does not serve 12 stream(s) the origins have: \
                 live/s00 (origin 1 for 42s), live/s01 (origin 1 for 42s), "
            ),
            "{text}"
        );
        assert!(text.ends_with("live/s09 (origin 1 for 42s)"), "{text}");
        assert!(!text.contains("s10"), "{text}");
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

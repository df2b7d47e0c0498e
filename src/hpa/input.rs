//! Turns what the watcher recorded into `hpa-input.json`, the input of `xiuload hpa-replay`: the
//! per-pod usage at each PodMetrics poll with what the HPA controller reads from the pod objects
//! (phase, deletion, start time, readiness and its last transition, requests), and the replicas
//! the real HPA chose. Pure.

use super::replay::{PodSample, ReplayInput, Sample};
use crate::k8s::correlate::ReplicaPoint;
use crate::k8s::timeline::{ClusterTimeline, EventKind, Stamp};
use std::collections::{BTreeMap, BTreeSet};

/// Usage (CPU millicores, memory bytes) per pod in one poll.
type Usage = BTreeMap<String, (f64, f64)>;

/// PodMetrics of one poll arrive within this many seconds of each other.
const SAME_POLL_S: f64 = 1.0;

/// The last `pod_status` of a pod, times on the run clock.
#[derive(Debug, Clone, Default)]
struct PodStatus {
    phase: Option<String>,
    ready: bool,
    terminating: bool,
    started_s: Option<f64>,
    ready_since_s: Option<f64>,
}

/// A wall-clock time of the API server (ms since the Unix epoch) on the run clock, through the
/// stamp of the line that carried it (or the session start when a line has no wall time).
fn run_seconds(unix_ms: i64, at: &Stamp, session_start_unix_ms: u64) -> Option<f64> {
    let anchor_ms = if at.wall_ms > 0 {
        at.wall_ms as f64 - at.t * 1000.0
    } else if session_start_unix_ms > 0 {
        session_start_unix_ms as f64
    } else {
        return None;
    };
    // To the millisecond, like the run clock's own stamps.
    Some((unix_ms as f64 - anchor_ms).round() / 1000.0)
}

pub fn build(cluster: &ClusterTimeline, replicas: &[ReplicaPoint], interval_s: f64) -> ReplayInput {
    let mut requests: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut statuses: BTreeMap<String, PodStatus> = BTreeMap::new();
    let mut live: BTreeSet<String> = BTreeSet::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut poll: Option<(f64, Usage)> = None;
    let close = |t: f64,
                 usage: Usage,
                 live: &BTreeSet<String>,
                 statuses: &BTreeMap<String, PodStatus>,
                 requests: &BTreeMap<String, (f64, f64)>| Sample {
        t,
        pods: live
            .iter()
            .map(|pod| {
                let (cpu_req, mem_req) = requests.get(pod).copied().unwrap_or((0.0, 0.0));
                let status = statuses.get(pod).cloned().unwrap_or_default();
                PodSample {
                    name: pod.clone(),
                    ready: status.ready,
                    cpu_millicores: usage.get(pod).map(|u| u.0),
                    memory_bytes: usage.get(pod).map(|u| u.1),
                    cpu_request_millicores: cpu_req,
                    memory_request_bytes: mem_req,
                    phase: status.phase,
                    terminating: status.terminating,
                    started_s: status.started_s,
                    ready_since_s: status.ready_since_s,
                }
            })
            .collect(),
    };
    for e in &cluster.events {
        let t = e.at.t;
        // A poll ends when anything arrives after its window: the pods it saw are those alive then.
        if poll.as_ref().is_some_and(|(pt, _)| t - pt > SAME_POLL_S) {
            let (pt, usage) = poll.take().expect("checked");
            samples.push(close(pt, usage, &live, &statuses, &requests));
        }
        match &e.kind {
            EventKind::PodAdded { pod } => {
                live.insert(pod.clone());
            }
            EventKind::PodDeleted { pod } => {
                live.remove(pod);
            }
            EventKind::PodRequests {
                pod,
                cpu_millicores,
                memory_bytes,
            } => {
                requests.insert(
                    pod.clone(),
                    (
                        cpu_millicores.unwrap_or(0.0),
                        memory_bytes.unwrap_or(0) as f64,
                    ),
                );
            }
            EventKind::PodStatus {
                pod,
                phase,
                ready,
                terminating,
                started_unix_ms,
                ready_since_unix_ms,
                ..
            } => {
                let on_run_clock = |ms: &Option<i64>| {
                    ms.and_then(|ms| run_seconds(ms, &e.at, cluster.start_unix_ms))
                };
                statuses.insert(
                    pod.clone(),
                    PodStatus {
                        phase: phase.clone(),
                        ready: *ready,
                        terminating: *terminating,
                        started_s: on_run_clock(started_unix_ms),
                        ready_since_s: on_run_clock(ready_since_unix_ms),
                    },
                );
            }
            EventKind::PodMetrics {
                pod,
                cpu_millicores,
                memory_bytes,
            } => {
                poll.get_or_insert_with(|| (t, BTreeMap::new()))
                    .1
                    .insert(pod.clone(), (*cpu_millicores, *memory_bytes as f64));
            }
            _ => {}
        }
    }
    if let Some((pt, usage)) = poll {
        samples.push(close(pt, usage, &live, &statuses, &requests));
    }
    ReplayInput {
        interval_s,
        samples,
        actual_replicas: replicas
            .iter()
            .filter_map(|r| r.current.or(r.ready).map(|n| (r.t, n)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::timeline::{ClusterEvent, Stamp};

    fn ev(t: f64, kind: EventKind) -> ClusterEvent {
        ClusterEvent {
            at: Stamp { t, wall_ms: 0 },
            kind,
        }
    }

    fn metrics(t: f64, pod: &str, cpu: f64) -> ClusterEvent {
        ev(
            t,
            EventKind::PodMetrics {
                pod: pod.into(),
                cpu_millicores: cpu,
                memory_bytes: 1 << 20,
            },
        )
    }

    #[test]
    fn polls_become_samples_with_requests_readiness_and_missing_metrics() {
        let status = |t, pod: &str, ready| {
            ev(
                t,
                EventKind::PodStatus {
                    pod: pod.into(),
                    phase: Some("Running".into()),
                    ready,
                    containers_ready: ready,
                    terminating: false,
                    started_unix_ms: None,
                    ready_since_unix_ms: None,
                },
            )
        };
        let cluster = ClusterTimeline {
            namespace: "ns".into(),
            workloads: vec![],
            start_unix_ms: 0,
            events: vec![
                ev(0.0, EventKind::PodAdded { pod: "a".into() }),
                ev(
                    0.0,
                    EventKind::PodRequests {
                        pod: "a".into(),
                        cpu_millicores: Some(500.0),
                        memory_bytes: Some(256 << 20),
                    },
                ),
                status(0.5, "a", true),
                metrics(15.0, "a", 300.0),
                ev(20.0, EventKind::PodAdded { pod: "b".into() }),
                status(21.0, "b", false),
                metrics(30.0, "a", 450.0),
                metrics(30.4, "b", 10.0),
                ev(40.0, EventKind::PodDeleted { pod: "b".into() }),
                metrics(45.0, "a", 200.0),
            ],
        };
        let input = build(&cluster, &[], 15.0);
        assert_eq!(input.samples.len(), 3);
        assert_eq!(input.samples[0].pods.len(), 1);
        let a = &input.samples[0].pods[0];
        assert_eq!(
            (a.cpu_millicores, a.cpu_request_millicores, a.ready),
            (Some(300.0), 500.0, true)
        );
        let second = &input.samples[1];
        assert_eq!(second.pods.len(), 2);
        let b = second.pods.iter().find(|p| p.name == "b").unwrap();
        assert_eq!(
            (b.cpu_millicores, b.ready, b.cpu_request_millicores),
            (Some(10.0), false, 0.0)
        );
        assert_eq!(input.samples[2].pods.len(), 1, "b was deleted");
    }

    // What the controller reads from pods reaches hpa-input.json: phase, deletion, and the start
    // and Ready-transition times moved onto the run clock (wall 1_000_000 ms is t = 0 here).
    #[test]
    fn pod_phase_deletion_and_times_are_carried_over() {
        let at = |t: f64, kind| ClusterEvent {
            at: Stamp {
                t,
                wall_ms: 1_000_000 + (t * 1000.0) as u64,
            },
            kind,
        };
        let status = |t, terminating: bool, phase: &str| {
            at(
                t,
                EventKind::PodStatus {
                    pod: "a".into(),
                    phase: Some(phase.into()),
                    ready: !terminating,
                    containers_ready: !terminating,
                    terminating,
                    started_unix_ms: Some(995_000),
                    ready_since_unix_ms: Some(1_002_500),
                },
            )
        };
        let cluster = ClusterTimeline {
            namespace: "ns".into(),
            workloads: vec![],
            start_unix_ms: 1_000_000,
            events: vec![
                at(0.0, EventKind::PodAdded { pod: "a".into() }),
                status(0.0, false, "Running"),
                at(
                    15.0,
                    EventKind::PodMetrics {
                        pod: "a".into(),
                        cpu_millicores: 300.0,
                        memory_bytes: 1,
                    },
                ),
                status(20.0, true, "Running"),
                at(
                    30.0,
                    EventKind::PodMetrics {
                        pod: "a".into(),
                        cpu_millicores: 10.0,
                        memory_bytes: 1,
                    },
                ),
            ],
        };
        let input = build(&cluster, &[], 15.0);
        let a = &input.samples[0].pods[0];
        assert_eq!(a.phase.as_deref(), Some("Running"));
        assert_eq!((a.started_s, a.ready_since_s), (Some(-5.0), Some(2.5)));
        assert!(!a.terminating && a.ready);
        let leaving = &input.samples[1].pods[0];
        assert!(leaving.terminating && !leaving.ready);
    }
}

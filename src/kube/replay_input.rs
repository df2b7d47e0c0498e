//! Turns what the watcher recorded into `hpa-input.json`, the input of `xiuload hpa-replay`: the
//! per-pod usage and readiness at each PodMetrics poll, with the pods' requests, and the replicas
//! the real HPA chose. Pure.

use super::correlate::ReplicaPoint;
use super::timeline::{ClusterTimeline, EventKind};
use crate::hpa::replay::{PodSample, ReplayInput, Sample};
use std::collections::{BTreeMap, BTreeSet};

/// Usage (CPU millicores, memory bytes) per pod in one poll.
type Usage = BTreeMap<String, (f64, f64)>;

/// PodMetrics of one poll arrive within this many seconds of each other.
const SAME_POLL_S: f64 = 1.0;

pub fn build(cluster: &ClusterTimeline, replicas: &[ReplicaPoint], interval_s: f64) -> ReplayInput {
    let mut requests: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut ready: BTreeMap<String, bool> = BTreeMap::new();
    let mut live: BTreeSet<String> = BTreeSet::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut poll: Option<(f64, Usage)> = None;
    let close = |t: f64,
                 usage: Usage,
                 live: &BTreeSet<String>,
                 ready: &BTreeMap<String, bool>,
                 requests: &BTreeMap<String, (f64, f64)>| Sample {
        t,
        pods: live
            .iter()
            .map(|pod| {
                let (cpu_req, mem_req) = requests.get(pod).copied().unwrap_or((0.0, 0.0));
                PodSample {
                    name: pod.clone(),
                    ready: ready.get(pod).copied().unwrap_or(false),
                    cpu_millicores: usage.get(pod).map(|u| u.0),
                    memory_bytes: usage.get(pod).map(|u| u.1),
                    cpu_request_millicores: cpu_req,
                    memory_request_bytes: mem_req,
                }
            })
            .collect(),
    };
    for (t, kind) in cluster.iter() {
        // A poll ends when anything arrives after its window: the pods it saw are those alive then.
        if poll.as_ref().is_some_and(|(pt, _)| t - pt > SAME_POLL_S) {
            let (pt, usage) = poll.take().expect("checked");
            samples.push(close(pt, usage, &live, &ready, &requests));
        }
        match kind {
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
            EventKind::PodStatus { pod, ready: r, .. } => {
                ready.insert(pod.clone(), *r);
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
        samples.push(close(pt, usage, &live, &ready, &requests));
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
    use crate::kube::timeline::{ClusterEvent, Stamp};

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
}

//! What the cluster watcher records: [`ClusterEvent`]s on the run's clock, and the whole
//! [`ClusterTimeline`] of a run. These are the lines of `cluster.jsonl`.

use serde::{Deserialize, Serialize};

/// A moment on the run clock: seconds since the run started, and the wall clock (ms since the Unix
/// epoch) derived from the same anchor, so cluster events join the load timeline by arithmetic.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Stamp {
    pub t: f64,
    pub wall_ms: u64,
}

impl Stamp {
    pub fn now(clock: &crate::clock::RunClock) -> Stamp {
        let now = std::time::Instant::now();
        Stamp {
            t: (now
                .saturating_duration_since(clock.start_instant())
                .as_secs_f64()
                * 1000.0)
                .round()
                / 1000.0,
            wall_ms: clock.unix_micros_at(now) / 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterEvent {
    #[serde(flatten)]
    pub at: Stamp,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    Readiness,
    Liveness,
    Startup,
}

/// What a Kubernetes Event (core/v1 or events.k8s.io/v1) means for autoscaling analysis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "category", rename_all = "snake_case")]
pub enum EventCategory {
    /// `SuccessfulRescale`: the HPA's own explanation, e.g. "New size: 3; reason: cpu resource
    /// utilization (percentage of request) above target".
    Rescale {
        new_size: Option<u32>,
        /// Not `reason`: the category is flattened into an Event line that has its own `reason`.
        rescale_reason: Option<String>,
    },
    /// `FailedGetResourceMetric`, `FailedComputeMetricsReplicas`, `FailedGetPodsMetric`...: the HPA
    /// is blind, so it will not scale.
    MetricFailure,
    Unhealthy {
        probe: Option<ProbeKind>,
    },
    Killing,
    BackOff,
    OomKilling,
    Other,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricReading {
    /// e.g. `resource/cpu`, `pods/xiu_viewers`.
    pub name: String,
    pub current: Option<String>,
    /// The HPA's target for this metric (`60%`, `500m`), from its spec.
    #[serde(default)]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// First line of a journal: what was watched.
    Session {
        namespace: String,
        workloads: Vec<String>,
        start_unix_ms: u64,
    },
    Hpa {
        hpa: String,
        /// `Deployment/xiu-edge`.
        target: String,
        min_replicas: Option<u32>,
        max_replicas: u32,
        current_replicas: Option<u32>,
        desired_replicas: u32,
        metrics: Vec<MetricReading>,
        conditions: Vec<Condition>,
        last_scale_time: Option<String>,
        /// `spec.behavior` as the API returned it (stabilisation windows, policies).
        behavior: Option<serde_json::Value>,
    },
    Workload {
        kind: String,
        name: String,
        replicas: u32,
        ready: u32,
        available: u32,
        updated: u32,
    },
    PodAdded {
        pod: String,
    },
    /// The pod's resource requests, summed over its containers (what HPA utilization divides by).
    PodRequests {
        pod: String,
        cpu_millicores: Option<f64>,
        memory_bytes: Option<u64>,
    },
    /// A change of phase or of the Ready / ContainersReady conditions.
    PodStatus {
        pod: String,
        phase: Option<String>,
        ready: bool,
        containers_ready: bool,
        /// `metadata.deletionTimestamp` is set: the pod is shutting down (scale-down, rollout).
        #[serde(default)]
        terminating: bool,
        /// `status.startTime`, ms since the Unix epoch (the API server's clock). With the Ready
        /// transition below, what the HPA controller needs to judge CPU readiness.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_unix_ms: Option<i64>,
        /// `lastTransitionTime` of the Ready condition, ms since the Unix epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ready_since_unix_ms: Option<i64>,
    },
    PodRestart {
        pod: String,
        container: String,
        restarts: u32,
        /// `lastState.terminated.reason`, e.g. `OOMKilled`, `Error`.
        reason: Option<String>,
        exit_code: Option<i32>,
    },
    PodDeleted {
        pod: String,
    },
    /// A Kubernetes Event, once per new occurrence (repeats of one Event count up, not duplicate).
    K8sEvent {
        object_kind: String,
        object_name: String,
        reason: String,
        message: String,
        /// Occurrences so far (`count` or `series.count`).
        count: u32,
        /// Occurrences since the last line about this Event.
        new: u32,
        /// When the Event says it last happened (ms since the Unix epoch), on the clock of
        /// whoever reported it; the line's own `wall_ms` is when the watch delivered it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reported_unix_ms: Option<i64>,
        #[serde(flatten)]
        category: EventCategory,
    },
    PodMetrics {
        pod: String,
        cpu_millicores: f64,
        memory_bytes: u64,
    },
    XiuStats {
        pod: String,
        streams: u32,
        subscribers: u32,
        recv_kbps: f64,
        send_kbps: f64,
    },
    /// The API server refused a request: the data behind it is missing from this run.
    PermissionDenied {
        verb: String,
        resource: String,
        namespace: String,
        message: String,
    },
    /// Data may be missing from here until the matching `gap_end`.
    GapStart {
        source: String,
        reason: String,
    },
    GapEnd {
        source: String,
    },
    /// A non-fatal problem getting data (e.g. a pod's xiu API did not answer).
    Warning {
        source: String,
        message: String,
    },
}

/// Everything recorded during a run, in arrival order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterTimeline {
    pub namespace: String,
    pub workloads: Vec<String>,
    pub start_unix_ms: u64,
    pub events: Vec<ClusterEvent>,
}

impl ClusterTimeline {
    /// Appends an event; a `session` event sets the header fields.
    pub fn push(&mut self, e: ClusterEvent) {
        if let EventKind::Session {
            namespace,
            workloads,
            start_unix_ms,
        } = &e.kind
        {
            self.namespace = namespace.clone();
            self.workloads = workloads.clone();
            self.start_unix_ms = *start_unix_ms;
        }
        self.events.push(e);
    }

    pub fn iter(&self) -> impl Iterator<Item = (f64, &EventKind)> {
        self.events.iter().map(|e| (e.at.t, &e.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_flat_with_type_tags() {
        let e = ClusterEvent {
            at: Stamp {
                t: 1.5,
                wall_ms: 10,
            },
            kind: EventKind::K8sEvent {
                object_kind: "Pod".into(),
                object_name: "p".into(),
                reason: "Unhealthy".into(),
                message: "Readiness probe failed".into(),
                count: 2,
                new: 1,
                reported_unix_ms: None,
                category: EventCategory::Unhealthy {
                    probe: Some(ProbeKind::Readiness),
                },
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "k8s_event");
        assert_eq!(v["category"], "unhealthy");
        assert_eq!(v["probe"], "readiness");
        assert_eq!(v["t"], 1.5);
        let back: ClusterEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        let rescale = ClusterEvent {
            kind: EventKind::K8sEvent {
                object_kind: "HorizontalPodAutoscaler".into(),
                object_name: "xiu-edge".into(),
                reason: "SuccessfulRescale".into(),
                message: "New size: 3; reason: cpu above target".into(),
                count: 1,
                new: 1,
                reported_unix_ms: None,
                category: EventCategory::Rescale {
                    new_size: Some(3),
                    rescale_reason: Some("cpu above target".into()),
                },
            },
            ..e
        };
        let line = serde_json::to_string(&rescale).unwrap();
        assert_eq!(
            serde_json::from_str::<ClusterEvent>(&line).unwrap(),
            rescale,
            "{line}"
        );
    }
}

//! Turns watched objects into [`EventKind`]s: pure diffs of each object against what was last seen
//! of it, so a relist (after `410 Gone` or a reconnect) re-announces nothing that did not change
//! and a repeated Kubernetes Event adds its new occurrences only.

use super::timeline::{Condition, EventCategory, EventKind, MetricReading, ProbeKind};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricStatus};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::api::events::v1::Event as EventsV1Event;
use std::collections::{BTreeMap, BTreeSet};

/// Which objects of the namespace belong to the watched xiu deployment.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Workload names (edge, origin).
    pub workloads: Vec<String>,
    /// Named HPAs; when empty, HPAs targeting a workload (or every HPA if no workload is named).
    pub hpas: Vec<String>,
    /// True when pods come from a label-selected watch: every pod seen is ours. Otherwise pods
    /// are ours when their name starts with `<workload>-` (how controllers name them).
    pub pods_by_selector: bool,
    /// When watching began (ms since the Unix epoch): Events last seen before are history.
    pub since_unix_ms: u64,
}

impl Scope {
    fn owns_pod_name(&self, pod: &str) -> bool {
        self.pods_by_selector || self.workloads.iter().any(|w| has_prefix(pod, w))
    }
}

fn has_prefix(name: &str, workload: &str) -> bool {
    name.len() > workload.len() + 1
        && name.starts_with(workload)
        && name.as_bytes()[workload.len()] == b'-'
}

#[derive(Debug, Clone, PartialEq)]
struct PodState {
    phase: Option<String>,
    ready: bool,
    containers_ready: bool,
    terminating: bool,
    started_unix_ms: Option<i64>,
    ready_since_unix_ms: Option<i64>,
    restarts: BTreeMap<String, u32>,
}

impl PodState {
    /// What a `pod_status` line reports; a change in any of it is a new line.
    fn status(&self) -> (Option<&str>, bool, bool, bool, Option<i64>, Option<i64>) {
        (
            self.phase.as_deref(),
            self.ready,
            self.containers_ready,
            self.terminating,
            self.started_unix_ms,
            self.ready_since_unix_ms,
        )
    }
}

/// Remembers the last state of each watched object.
#[derive(Debug, Default)]
pub struct Recorder {
    scope: Scope,
    hpas: BTreeMap<String, EventKind>,
    tracked_hpas: BTreeSet<String>,
    workloads: BTreeMap<(String, String), EventKind>,
    pods: BTreeMap<String, PodState>,
    /// Pods seen since a pod relist began; `None` outside a relist.
    relisted_pods: Option<BTreeSet<String>>,
    event_counts: BTreeMap<String, u32>,
}

impl Recorder {
    pub fn new(scope: Scope) -> Self {
        Recorder {
            scope,
            ..Default::default()
        }
    }

    /// What the first list of `source` should have shown and did not: the configured workloads of
    /// that kind (`deployments`, `statefulsets`) or any HorizontalPodAutoscaler to track.
    pub fn unseen_after_list(&self, source: &str, expected: &[(String, String)]) -> Option<String> {
        let kind = match source {
            "deployments" => "Deployment",
            "statefulsets" => "StatefulSet",
            "horizontalpodautoscalers" => {
                return self.hpas.is_empty().then(|| {
                    if self.scope.hpas.is_empty() {
                        "no HorizontalPodAutoscaler targets the watched workloads".to_string()
                    } else {
                        format!(
                            "HorizontalPodAutoscaler {} not found",
                            self.scope.hpas.join(", ")
                        )
                    }
                });
            }
            _ => return None,
        };
        let missing: Vec<&str> = expected
            .iter()
            .filter(|(k, name)| {
                k == kind && !self.workloads.contains_key(&(k.clone(), name.clone()))
            })
            .map(|(_, name)| name.as_str())
            .collect();
        (!missing.is_empty()).then(|| format!("{kind} {} not found", missing.join(", ")))
    }

    /// Names of pods currently known.
    pub fn pods(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    /// Pods in phase Running: the ones whose xiu API can answer.
    pub fn running_pods(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, s)| s.phase.as_deref() == Some("Running"))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether samples about this pod (metrics, xiu stats) belong to the watched workloads.
    pub fn owns_pod(&self, name: &str) -> bool {
        self.pods.contains_key(name) || self.scope.owns_pod_name(name)
    }

    pub fn hpa(&mut self, h: &HorizontalPodAutoscaler) -> Option<EventKind> {
        let name = h.metadata.name.clone().unwrap_or_default();
        let spec = h.spec.as_ref()?;
        let target = &spec.scale_target_ref;
        let ours = if self.scope.hpas.is_empty() {
            self.scope.workloads.is_empty() || self.scope.workloads.contains(&target.name)
        } else {
            self.scope.hpas.contains(&name)
        };
        if !ours {
            return None;
        }
        self.tracked_hpas.insert(name.clone());
        let status = h.status.clone().unwrap_or_default();
        let kind = EventKind::Hpa {
            hpa: name.clone(),
            target: format!("{}/{}", target.kind, target.name),
            min_replicas: spec.min_replicas.map(to_u32),
            max_replicas: to_u32(spec.max_replicas),
            current_replicas: status.current_replicas.map(to_u32),
            desired_replicas: to_u32(status.desired_replicas),
            metrics: {
                let targets = metric_targets(spec);
                status
                    .current_metrics
                    .unwrap_or_default()
                    .iter()
                    .map(|m| {
                        let mut r = metric_reading(m);
                        r.target = targets
                            .iter()
                            .find(|(n, _)| *n == r.name)
                            .and_then(|(_, t)| t.clone());
                        r
                    })
                    .collect()
            },
            conditions: status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| Condition {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                })
                .collect(),
            last_scale_time: status.last_scale_time.map(|t| t.0.to_string()),
            behavior: spec
                .behavior
                .as_ref()
                .and_then(|b| serde_json::to_value(b).ok()),
        };
        changed(&mut self.hpas, name, kind)
    }

    pub fn deployment(&mut self, d: &Deployment) -> Option<EventKind> {
        let name = d.metadata.name.clone().unwrap_or_default();
        let s = d.status.clone().unwrap_or_default();
        self.workload(
            "Deployment",
            name,
            d.spec.as_ref().and_then(|s| s.replicas).or(s.replicas),
            [s.ready_replicas, s.available_replicas, s.updated_replicas],
        )
    }

    pub fn statefulset(&mut self, d: &StatefulSet) -> Option<EventKind> {
        let name = d.metadata.name.clone().unwrap_or_default();
        let s = d.status.clone().unwrap_or_default();
        self.workload(
            "StatefulSet",
            name,
            d.spec
                .as_ref()
                .and_then(|s| s.replicas)
                .or(Some(s.replicas)),
            [s.ready_replicas, s.available_replicas, s.updated_replicas],
        )
    }

    fn workload(
        &mut self,
        kind: &str,
        name: String,
        replicas: Option<i32>,
        counts: [Option<i32>; 3],
    ) -> Option<EventKind> {
        if !self.scope.workloads.contains(&name) {
            return None;
        }
        let [ready, available, updated] = counts.map(|c| to_u32(c.unwrap_or(0)));
        let ev = EventKind::Workload {
            kind: kind.to_string(),
            name: name.clone(),
            replicas: to_u32(replicas.unwrap_or(0)),
            ready,
            available,
            updated,
        };
        changed(&mut self.workloads, (kind.to_string(), name), ev)
    }

    /// An added or modified pod: its addition, status transitions and restarts.
    pub fn pod(&mut self, p: &Pod) -> Vec<EventKind> {
        let name = p.metadata.name.clone().unwrap_or_default();
        if !self.scope.owns_pod_name(&name) {
            return Vec::new();
        }
        if let Some(seen) = &mut self.relisted_pods {
            seen.insert(name.clone());
        }
        let status = p.status.clone().unwrap_or_default();
        let condition = |t: &str| status.conditions.iter().flatten().find(|c| c.type_ == t);
        let cond = |t: &str| condition(t).is_some_and(|c| c.status == "True");
        let containers = status.container_statuses.clone().unwrap_or_default();
        let now = PodState {
            phase: status.phase.clone(),
            ready: cond("Ready"),
            containers_ready: cond("ContainersReady"),
            terminating: p.metadata.deletion_timestamp.is_some(),
            started_unix_ms: status.start_time.as_ref().map(|t| t.0.as_millisecond()),
            ready_since_unix_ms: condition("Ready")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.as_millisecond()),
            restarts: containers
                .iter()
                .map(|c| (c.name.clone(), to_u32(c.restart_count)))
                .collect(),
        };
        let mut out = Vec::new();
        let before = self.pods.get(&name).cloned();
        if before.is_none() {
            out.push(EventKind::PodAdded { pod: name.clone() });
            let (cpu, memory) = pod_requests(p);
            if cpu.is_some() || memory.is_some() {
                out.push(EventKind::PodRequests {
                    pod: name.clone(),
                    cpu_millicores: cpu,
                    memory_bytes: memory,
                });
            }
        }
        let status_changed = before.as_ref().is_none_or(|b| b.status() != now.status());
        if status_changed {
            out.push(EventKind::PodStatus {
                pod: name.clone(),
                phase: now.phase.clone(),
                ready: now.ready,
                containers_ready: now.containers_ready,
                terminating: now.terminating,
                started_unix_ms: now.started_unix_ms,
                ready_since_unix_ms: now.ready_since_unix_ms,
            });
        }
        // Restarts that happened before we first saw the pod are its history, not this run's.
        let containers = if before.is_some() {
            &containers[..]
        } else {
            &[]
        };
        for c in containers {
            let was = before
                .as_ref()
                .and_then(|b| b.restarts.get(&c.name).copied())
                .unwrap_or(0);
            let restarts = to_u32(c.restart_count);
            if restarts > was {
                let terminated = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                out.push(EventKind::PodRestart {
                    pod: name.clone(),
                    container: c.name.clone(),
                    restarts,
                    reason: terminated.and_then(|t| t.reason.clone()),
                    exit_code: terminated.map(|t| t.exit_code),
                });
            }
        }
        self.pods.insert(name, now);
        out
    }

    pub fn pod_deleted(&mut self, p: &Pod) -> Option<EventKind> {
        let name = p.metadata.name.clone().unwrap_or_default();
        self.pods
            .remove(&name)
            .map(|_| EventKind::PodDeleted { pod: name })
    }

    /// Called when the pod watch restarts its list: pods missing from the new list were deleted
    /// while we were not watching.
    pub fn pod_relist_started(&mut self) {
        self.relisted_pods = Some(BTreeSet::new());
    }

    pub fn pod_relist_done(&mut self) -> Vec<EventKind> {
        let Some(seen) = self.relisted_pods.take() else {
            return Vec::new();
        };
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|p| !seen.contains(*p))
            .cloned()
            .collect();
        gone.into_iter()
            .map(|pod| {
                self.pods.remove(&pod);
                EventKind::PodDeleted { pod }
            })
            .collect()
    }

    pub fn core_event(&mut self, e: &CoreEvent, delivery: Delivery) -> Option<EventKind> {
        let series = e.series.as_ref();
        let o = &e.involved_object;
        self.k8s_event(Occurrence {
            delivery,
            key: key_of(&e.metadata),
            kind: o.kind.as_deref().unwrap_or(""),
            name: o.name.as_deref().unwrap_or(""),
            reason: e.reason.as_deref().unwrap_or(""),
            message: e.message.as_deref().unwrap_or(""),
            count: series.and_then(|s| s.count).or(e.count).unwrap_or(1),
            last_seen_ms: series
                .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
                .or(e.last_timestamp.as_ref().map(|t| t.0))
                .or(e.event_time.as_ref().map(|t| t.0))
                .or(e.first_timestamp.as_ref().map(|t| t.0))
                .map(|t| t.as_millisecond()),
        })
    }

    /// events.k8s.io/v1 is the same stored object as core/v1 with other field names; keying both
    /// by uid means watching both never double counts.
    pub fn events_v1_event(&mut self, e: &EventsV1Event, delivery: Delivery) -> Option<EventKind> {
        let o = e.regarding.clone().unwrap_or_default();
        self.k8s_event(Occurrence {
            delivery,
            key: key_of(&e.metadata),
            kind: o.kind.as_deref().unwrap_or(""),
            name: o.name.as_deref().unwrap_or(""),
            reason: e.reason.as_deref().unwrap_or(""),
            message: e.note.as_deref().unwrap_or(""),
            count: e
                .series
                .as_ref()
                .map(|s| s.count)
                .or(e.deprecated_count)
                .unwrap_or(1),
            last_seen_ms: e
                .series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or(e.deprecated_last_timestamp.as_ref().map(|t| t.0))
                .or(e.event_time.as_ref().map(|t| t.0))
                .map(|t| t.as_millisecond()),
        })
    }

    fn k8s_event(&mut self, o: Occurrence<'_>) -> Option<EventKind> {
        let (kind, name, reason, message) = (o.kind, o.name, o.reason, o.message);
        let ours = match kind {
            "Pod" => self.pods.contains_key(name) || self.scope.owns_pod_name(name),
            "HorizontalPodAutoscaler" => {
                self.tracked_hpas.contains(name) || self.scope.hpas.iter().any(|h| h == name)
            }
            "Deployment" | "StatefulSet" => self.scope.workloads.iter().any(|w| w == name),
            "ReplicaSet" => self.scope.workloads.iter().any(|w| has_prefix(name, w)),
            // Node OOM reports name the process, not the pod: keep them, they are rare and telling.
            "Node" => reason == "OOMKilling",
            _ => false,
        };
        if !ours {
            return None;
        }
        let count = to_u32(o.count).max(1);
        let known = self.event_counts.get(&o.key).copied();
        // Events live for an hour: a list brings the namespace's recent past. Listed occurrences
        // last seen before the watch began are history, kept only as the baseline for counting.
        // `Time` fields have whole seconds: an Event in the second the watch began counts. What
        // the watch delivers live is news whatever its timestamp says: the kubelet's or the
        // controller's clock may run behind ours, or the API server may deliver a burst late.
        let since_s = (self.scope.since_unix_ms / 1000 * 1000) as i64;
        if o.delivery == Delivery::Listed
            && known.is_none()
            && o.last_seen_ms.is_some_and(|ms| ms < since_s)
        {
            self.event_counts.insert(o.key, count);
            return None;
        }
        let last = known.unwrap_or(0);
        if count <= last {
            return None;
        }
        self.event_counts.insert(o.key, count);
        Some(EventKind::K8sEvent {
            object_kind: kind.to_string(),
            object_name: name.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            count,
            new: count - last,
            reported_unix_ms: o.last_seen_ms,
            category: categorise(reason, message),
        })
    }
}

/// How an object reached us: in a (re)list, which brings the namespace's recent past, or live on
/// the watch, which is news whatever its timestamps say (a kubelet whose clock runs behind, or a
/// burst the API server delivers late, stamps live Events in the past).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Listed,
    Live,
}

/// One Kubernetes Event as either API shows it.
struct Occurrence<'a> {
    delivery: Delivery,
    key: String,
    kind: &'a str,
    name: &'a str,
    reason: &'a str,
    message: &'a str,
    count: i32,
    /// When it last happened (ms since the Unix epoch), if the Event says.
    last_seen_ms: Option<i64>,
}

fn key_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    m.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            m.namespace.as_deref().unwrap_or(""),
            m.name.as_deref().unwrap_or("")
        )
    })
}

/// Stores `ev` under `key` and returns it only when it differs from the stored one.
fn changed<K: Ord>(map: &mut BTreeMap<K, EventKind>, key: K, ev: EventKind) -> Option<EventKind> {
    if map.get(&key) == Some(&ev) {
        return None;
    }
    map.insert(key, ev.clone());
    Some(ev)
}

fn to_u32(v: i32) -> u32 {
    v.max(0) as u32
}

fn metric_value(v: &k8s_openapi::api::autoscaling::v2::MetricValueStatus) -> Option<String> {
    v.average_utilization
        .map(|u| format!("{u}%"))
        .or_else(|| v.average_value.as_ref().map(|q| q.0.clone()))
        .or_else(|| v.value.as_ref().map(|q| q.0.clone()))
}

fn target_value(t: &k8s_openapi::api::autoscaling::v2::MetricTarget) -> Option<String> {
    t.average_utilization
        .map(|u| format!("{u}%"))
        .or_else(|| t.average_value.as_ref().map(|q| q.0.clone()))
        .or_else(|| t.value.as_ref().map(|q| q.0.clone()))
}

fn metric_reading(m: &MetricStatus) -> MetricReading {
    let (name, current) = if let Some(r) = &m.resource {
        (format!("resource/{}", r.name), metric_value(&r.current))
    } else if let Some(r) = &m.container_resource {
        (
            format!("container_resource/{}/{}", r.container, r.name),
            metric_value(&r.current),
        )
    } else if let Some(p) = &m.pods {
        (format!("pods/{}", p.metric.name), metric_value(&p.current))
    } else if let Some(o) = &m.object {
        (
            format!("object/{}", o.metric.name),
            metric_value(&o.current),
        )
    } else if let Some(e) = &m.external {
        (
            format!("external/{}", e.metric.name),
            metric_value(&e.current),
        )
    } else {
        (m.type_.clone(), None)
    };
    MetricReading {
        name,
        current,
        target: None,
    }
}

/// The spec's targets, named like [`metric_reading`] names the status's values.
fn metric_targets(
    spec: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerSpec,
) -> Vec<(String, Option<String>)> {
    spec.metrics
        .iter()
        .flatten()
        .filter_map(|m| {
            if let Some(r) = &m.resource {
                Some((format!("resource/{}", r.name), target_value(&r.target)))
            } else if let Some(r) = &m.container_resource {
                Some((
                    format!("container_resource/{}/{}", r.container, r.name),
                    target_value(&r.target),
                ))
            } else if let Some(p) = &m.pods {
                Some((format!("pods/{}", p.metric.name), target_value(&p.target)))
            } else if let Some(o) = &m.object {
                Some((format!("object/{}", o.metric.name), target_value(&o.target)))
            } else {
                m.external.as_ref().map(|e| {
                    (
                        format!("external/{}", e.metric.name),
                        target_value(&e.target),
                    )
                })
            }
        })
        .collect()
}

/// Classifies an Event by its reason, parsing the parts of the message analysis needs.
pub fn categorise(reason: &str, message: &str) -> EventCategory {
    match reason {
        "SuccessfulRescale" => {
            let (new_size, why) = parse_rescale(message);
            EventCategory::Rescale {
                new_size,
                rescale_reason: why,
            }
        }
        r if r.starts_with("FailedGet") && r.ends_with("Metric") => EventCategory::MetricFailure,
        "FailedComputeMetricsReplicas" => EventCategory::MetricFailure,
        "Unhealthy" => EventCategory::Unhealthy {
            probe: probe_kind(message),
        },
        "Killing" => EventCategory::Killing,
        "BackOff" => EventCategory::BackOff,
        "OOMKilling" => EventCategory::OomKilling,
        _ => EventCategory::Other,
    }
}

/// "New size: 3; reason: cpu resource utilization (percentage of request) above target"
pub fn parse_rescale(message: &str) -> (Option<u32>, Option<String>) {
    let size = message
        .split_once("New size:")
        .and_then(|(_, rest)| {
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
        })
        .and_then(|n| n.parse().ok());
    let reason = message
        .split_once("reason:")
        .map(|(_, r)| r.trim().to_string())
        .filter(|r| !r.is_empty());
    (size, reason)
}

/// The kubelet writes "Readiness probe failed: ...", "Liveness probe errored: ...".
pub fn probe_kind(message: &str) -> Option<ProbeKind> {
    let first = message.split_whitespace().next()?.to_ascii_lowercase();
    match first.as_str() {
        "readiness" => Some(ProbeKind::Readiness),
        "liveness" => Some(ProbeKind::Liveness),
        "startup" => Some(ProbeKind::Startup),
        _ => None,
    }
}

/// Sum of the containers' CPU and memory requests (limits stand in when a request is unset, as
/// the API server defaults them).
fn pod_requests(p: &k8s_openapi::api::core::v1::Pod) -> (Option<f64>, Option<u64>) {
    let mut cpu: Option<f64> = None;
    let mut memory: Option<u64> = None;
    for c in p.spec.iter().flat_map(|s| s.containers.iter()) {
        let Some(res) = &c.resources else { continue };
        let pick = |name: &str| {
            res.requests
                .as_ref()
                .and_then(|r| r.get(name))
                .or_else(|| res.limits.as_ref().and_then(|l| l.get(name)))
                .map(|q| q.0.clone())
        };
        if let Some(v) = pick("cpu").and_then(|q| super::quantity::cpu_millicores(&q)) {
            cpu = Some(cpu.unwrap_or(0.0) + v);
        }
        if let Some(v) = pick("memory").and_then(|q| super::quantity::memory_bytes(&q)) {
            memory = Some(memory.unwrap_or(0) + v);
        }
    }
    (cpu, memory)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::{
        CrossVersionObjectReference, HorizontalPodAutoscalerSpec, HorizontalPodAutoscalerStatus,
    };
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, ObjectReference, PodCondition,
        PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn scope() -> Scope {
        Scope {
            workloads: vec!["xiu-edge".into()],
            hpas: vec![],
            pods_by_selector: false,
            since_unix_ms: 0,
        }
    }

    pub fn hpa(desired: i32, current: i32) -> HorizontalPodAutoscaler {
        HorizontalPodAutoscaler {
            metadata: ObjectMeta {
                name: Some("xiu-edge".into()),
                ..Default::default()
            },
            spec: Some(HorizontalPodAutoscalerSpec {
                max_replicas: 5,
                min_replicas: Some(1),
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: "xiu-edge".into(),
                },
                ..Default::default()
            }),
            status: Some(HorizontalPodAutoscalerStatus {
                desired_replicas: desired,
                current_replicas: Some(current),
                ..Default::default()
            }),
        }
    }

    pub fn pod(name: &str, ready: bool, restarts: i32, last_reason: Option<&str>) -> Pod {
        let cond = |t: &str| PodCondition {
            type_: t.into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![cond("Ready"), cond("ContainersReady")]),
                container_statuses: Some(vec![ContainerStatus {
                    name: "xiu".into(),
                    restart_count: restarts,
                    last_state: last_reason.map(|r| ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            reason: Some(r.into()),
                            exit_code: 137,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    pub fn core_event(
        uid: &str,
        kind: &str,
        name: &str,
        reason: &str,
        message: &str,
        count: i32,
    ) -> CoreEvent {
        CoreEvent {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{uid}")),
                uid: Some(uid.into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some(kind.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            count: Some(count),
            ..Default::default()
        }
    }

    #[test]
    fn hpa_changes_are_reported_once() {
        let mut r = Recorder::new(scope());
        assert!(matches!(
            r.hpa(&hpa(1, 1)),
            Some(EventKind::Hpa {
                desired_replicas: 1,
                ..
            })
        ));
        assert_eq!(
            r.hpa(&hpa(1, 1)),
            None,
            "a relist of an unchanged HPA says nothing"
        );
        match r.hpa(&hpa(3, 1)) {
            Some(EventKind::Hpa {
                desired_replicas,
                current_replicas,
                target,
                ..
            }) => {
                assert_eq!((desired_replicas, current_replicas), (3, Some(1)));
                assert_eq!(target, "Deployment/xiu-edge");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hpa_of_another_workload_is_ignored() {
        let mut r = Recorder::new(Scope {
            workloads: vec!["other".into()],
            ..scope()
        });
        assert_eq!(r.hpa(&hpa(1, 1)), None);
    }

    #[test]
    fn pod_ready_transition_and_oom_restart() {
        let mut r = Recorder::new(scope());
        let first = r.pod(&pod("xiu-edge-a", false, 0, None));
        assert!(matches!(first[0], EventKind::PodAdded { .. }));
        assert!(matches!(
            first[1],
            EventKind::PodStatus { ready: false, .. }
        ));
        assert!(r.pod(&pod("xiu-edge-a", false, 0, None)).is_empty());
        let ready = r.pod(&pod("xiu-edge-a", true, 0, None));
        assert!(matches!(
            ready[..],
            [EventKind::PodStatus { ready: true, .. }]
        ));
        let oom = r.pod(&pod("xiu-edge-a", true, 1, Some("OOMKilled")));
        match &oom[..] {
            [
                EventKind::PodRestart {
                    restarts: 1,
                    reason,
                    exit_code: Some(137),
                    ..
                },
            ] => {
                assert_eq!(reason.as_deref(), Some("OOMKilled"))
            }
            other => panic!("{other:?}"),
        }
        assert!(r.pod(&pod("unrelated-x", true, 0, None)).is_empty());
        let mut leaving = pod("xiu-edge-a", true, 1, Some("OOMKilled"));
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(matches!(
            r.pod(&leaving)[..],
            [EventKind::PodStatus {
                terminating: true,
                ..
            }]
        ));
    }

    // The HPA controller judges CPU readiness by the pod's start time and its last Ready
    // transition: both are recorded, and a new transition is a new line.
    #[test]
    fn pod_status_records_start_time_and_ready_transition() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let at = |ms: i64| Time(k8s_openapi::jiff::Timestamp::from_millisecond(ms).unwrap());
        let timed = |ready: bool, since_ms: i64| {
            let mut p = pod("xiu-edge-a", ready, 0, None);
            let status = p.status.as_mut().unwrap();
            status.start_time = Some(at(1_000_000));
            for c in status.conditions.iter_mut().flatten() {
                c.last_transition_time = Some(at(since_ms));
            }
            p
        };
        let mut r = Recorder::new(scope());
        let first = r.pod(&timed(true, 1_040_000));
        match &first[1] {
            EventKind::PodStatus {
                started_unix_ms,
                ready_since_unix_ms,
                ..
            } => assert_eq!(
                (*started_unix_ms, *ready_since_unix_ms),
                (Some(1_000_000), Some(1_040_000))
            ),
            other => panic!("{other:?}"),
        }
        assert!(r.pod(&timed(true, 1_040_000)).is_empty());
        // Not ready and ready again between two watch events: only the transition time moved.
        assert!(matches!(
            r.pod(&timed(true, 1_090_000))[..],
            [EventKind::PodStatus {
                ready_since_unix_ms: Some(1_090_000),
                ..
            }]
        ));
    }

    #[test]
    fn pods_missing_after_relist_are_deleted() {
        let mut r = Recorder::new(scope());
        r.pod(&pod("xiu-edge-a", true, 0, None));
        r.pod(&pod("xiu-edge-b", true, 0, None));
        r.pod_relist_started();
        assert!(r.pod(&pod("xiu-edge-a", true, 0, None)).is_empty());
        assert_eq!(
            r.pod_relist_done(),
            vec![EventKind::PodDeleted {
                pod: "xiu-edge-b".into()
            }]
        );
        assert_eq!(r.pods(), ["xiu-edge-a"]);
        assert_eq!(
            r.pod_deleted(&pod("xiu-edge-a", true, 0, None)),
            Some(EventKind::PodDeleted {
                pod: "xiu-edge-a".into()
            })
        );
    }

    #[test]
    fn repeated_events_count_up_without_duplicates() {
        let mut r = Recorder::new(scope());
        let e = |count| {
            core_event(
                "u1",
                "Pod",
                "xiu-edge-a",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503",
                count,
            )
        };
        match r.core_event(&e(1), Delivery::Live) {
            Some(EventKind::K8sEvent {
                count: 1,
                new: 1,
                category,
                ..
            }) => assert_eq!(
                category,
                EventCategory::Unhealthy {
                    probe: Some(ProbeKind::Readiness)
                }
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.core_event(&e(1), Delivery::Live), None);
        assert!(matches!(
            r.core_event(&e(4), Delivery::Live),
            Some(EventKind::K8sEvent {
                count: 4,
                new: 3,
                ..
            })
        ));
        // The same Event seen through events.k8s.io/v1 (same uid) is not counted again.
        let v1 = EventsV1Event {
            metadata: e(4).metadata,
            regarding: Some(e(4).involved_object),
            reason: Some("Unhealthy".into()),
            note: Some("Readiness probe failed".into()),
            series: Some(k8s_openapi::api::events::v1::EventSeries {
                count: 4,
                last_observed_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
            }),
            ..Default::default()
        };
        assert_eq!(r.events_v1_event(&v1, Delivery::Live), None);
        assert_eq!(
            r.core_event(
                &core_event("u2", "Pod", "elsewhere-1", "Killing", "x", 1),
                Delivery::Live
            ),
            None
        );
    }

    #[test]
    fn events_from_before_the_watch_are_a_baseline() {
        let mut r = Recorder::new(Scope {
            since_unix_ms: 1_000_000,
            ..scope()
        });
        let at = |count, ms: i64| {
            let mut e = core_event(
                "old",
                "Pod",
                "xiu-edge-a",
                "Unhealthy",
                "Liveness probe failed",
                count,
            );
            e.last_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_millisecond(ms).unwrap(),
            ));
            e
        };
        assert_eq!(
            r.core_event(&at(5, 999_000), Delivery::Listed),
            None,
            "an hour-old Event is not this run's"
        );
        // It happens again during the run: only the new occurrence counts.
        assert!(matches!(
            r.core_event(&at(6, 1_000_500), Delivery::Live),
            Some(EventKind::K8sEvent {
                count: 6,
                new: 1,
                ..
            })
        ));
        let mut fresh = at(1, 1_000_100);
        fresh.metadata.uid = Some("new".into());
        assert!(matches!(
            r.core_event(&fresh, Delivery::Listed),
            Some(EventKind::K8sEvent { new: 1, .. })
        ));
    }

    #[test]
    fn live_events_count_whatever_their_timestamps_say() {
        // The watch began at t = 1000 s; a kubelet 10 s behind and a controller 10 min behind
        // still report what happens now: the watch delivered it live, so it is this run's.
        let mut r = Recorder::new(Scope {
            since_unix_ms: 1_000_000,
            ..scope()
        });
        let stamped = |uid: &str, reason: &str, message: &str, ms: i64| {
            let mut e = core_event(uid, "Pod", "xiu-edge-a", reason, message, 1);
            e.last_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_millisecond(ms).unwrap(),
            ));
            e
        };
        let behind_10s = stamped("a", "Unhealthy", "Readiness probe failed", 990_000);
        let behind_10m = stamped("b", "Unhealthy", "Readiness probe failed", 400_000);
        for (e, ms) in [(&behind_10s, 990_000), (&behind_10m, 400_000)] {
            match r.core_event(e, Delivery::Live) {
                Some(EventKind::K8sEvent {
                    new: 1,
                    reported_unix_ms,
                    ..
                }) => assert_eq!(reported_unix_ms, Some(ms)),
                other => panic!("a live Event was dropped: {other:?}"),
            }
        }
        // The same timestamps in the first list are history.
        let mut listed = Recorder::new(Scope {
            since_unix_ms: 1_000_000,
            ..scope()
        });
        assert_eq!(listed.core_event(&behind_10s, Delivery::Listed), None);
        assert_eq!(listed.core_event(&behind_10m, Delivery::Listed), None);
    }

    #[test]
    fn event_categories_and_messages() {
        assert_eq!(
            categorise(
                "SuccessfulRescale",
                "New size: 3; reason: cpu resource utilization (percentage of request) above target"
            ),
            EventCategory::Rescale {
                new_size: Some(3),
                rescale_reason: Some(
                    "cpu resource utilization (percentage of request) above target".into()
                )
            }
        );
        assert_eq!(
            categorise(
                "SuccessfulRescale",
                "New size: 1; reason: All metrics below target"
            ),
            EventCategory::Rescale {
                new_size: Some(1),
                rescale_reason: Some("All metrics below target".into())
            }
        );
        assert_eq!(
            categorise("FailedGetResourceMetric", "unable to get metrics"),
            EventCategory::MetricFailure
        );
        assert_eq!(
            categorise("FailedComputeMetricsReplicas", "invalid metrics"),
            EventCategory::MetricFailure
        );
        assert_eq!(
            categorise("BackOff", "Back-off restarting failed container"),
            EventCategory::BackOff
        );
        assert_eq!(
            categorise("Killing", "Stopping container xiu"),
            EventCategory::Killing
        );
        assert_eq!(
            probe_kind("Liveness probe errored: timeout"),
            Some(ProbeKind::Liveness)
        );
        assert_eq!(
            probe_kind("Startup probe failed: ..."),
            Some(ProbeKind::Startup)
        );
        assert_eq!(probe_kind("something else"), None);
        assert_eq!(parse_rescale("garbage"), (None, None));
    }
}

//! Puts the cluster timeline next to the load timeline and derives what autoscaling tuning needs:
//! replicas against load, how fast scale-ups reacted, what scale-downs cost viewers, incidents with
//! the load and pod usage at that moment, flapping, and the load one pod carried when the HPA
//! decided (its observed capacity). Pure: no I/O, no clocks.

use super::timeline::{ClusterTimeline, EventCategory, EventKind, ProbeKind};
use crate::metrics::timeline::TimelinePoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Player errors this long after a scale-down decision are attributed to it: the HPA's decision,
/// the pod's termination grace and the players' EOF all fit in a minute on default settings.
pub const SCALE_DOWN_ATTRIBUTION_S: f64 = 60.0;
/// A PodMetrics sample older than this says nothing about the pod "at that moment".
pub const METRICS_MAX_AGE_S: f64 = 60.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadAt {
    pub viewers: u64,
    pub publishers: u64,
    pub mbps_in: f64,
    pub viewers_by_protocol: BTreeMap<String, u64>,
    pub mbps_by_protocol: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicaPoint {
    pub t: f64,
    pub workload: String,
    /// HPA `desiredReplicas`.
    pub desired: Option<u32>,
    /// HPA `currentReplicas`.
    pub current: Option<u32>,
    /// Workload ready replicas.
    pub ready: Option<u32>,
    pub load: Option<LoadAt>,
}

impl ReplicaPoint {
    /// Replicas actually serving: ready if the workload is watched, else the HPA's current.
    pub fn serving(&self) -> Option<u32> {
        self.ready.or(self.current)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScaleDecision {
    pub t: f64,
    pub hpa: String,
    pub workload: String,
    pub from: u32,
    pub to: u32,
    /// The HPA's `SuccessfulRescale` reason text, when the Event was seen.
    pub reason: Option<String>,
    pub load: Option<LoadAt>,
    /// Load per serving pod when the HPA decided: the capacity one pod was observed to carry.
    pub per_pod_viewers: Option<f64>,
    pub per_pod_mbps: Option<f64>,
    pub pod_cpu_millicores_avg: Option<f64>,
    pub pod_memory_bytes_avg: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadStep {
    pub t: f64,
    pub from_viewers: u64,
    pub to_viewers: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScaleUpReaction {
    pub hpa: String,
    pub from: u32,
    pub to: u32,
    pub decision_t: f64,
    /// The load step that preceded the decision.
    pub load_step: Option<LoadStep>,
    /// From the load step to the HPA's decision.
    pub decision_after_s: Option<f64>,
    /// Since when (without interruption) a metric of the HPA was above its target, as its status
    /// reported it.
    pub metric_above_target_t: Option<f64>,
    /// From the metric crossing its target to the decision (metrics-server and HPA sync periods,
    /// plus any scale-up stabilisation window).
    pub decision_after_metric_s: Option<f64>,
    /// First new pod Ready.
    pub first_pod_ready_t: Option<f64>,
    /// Workload ready replicas reached `to`.
    pub all_ready_t: Option<f64>,
    /// First new pod whose xiu reported subscribers.
    pub first_serving_t: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScaleDownReport {
    pub hpa: String,
    pub from: u32,
    pub to: u32,
    pub decision_t: f64,
    pub load_drop: Option<LoadStep>,
    /// From the load drop to the decision (the stabilisation window at work).
    pub delay_s: Option<f64>,
    pub pods_deleted: Vec<String>,
    /// Player errors (EOFs, timeouts) in the minute after the decision: viewers the scale-down cut
    /// off. The load timeline does not say which pod a player was on, so this is an upper bound.
    pub viewers_disconnected: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Incident {
    pub t: f64,
    /// `probe_failure`, `restart`, `oom_killed`, `killing`, `back_off`, `metric_failure`, `node_oom`.
    pub kind: String,
    pub object: String,
    pub probe: Option<ProbeKind>,
    pub count: u32,
    pub message: String,
    pub load: Option<LoadAt>,
    pub pod_cpu_millicores: Option<f64>,
    pub pod_memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExperienceWindow {
    pub start: f64,
    pub end: f64,
    pub stalls: u64,
    pub errors: u64,
    pub latency_p99_ms_max: Option<f64>,
    /// Cluster happenings within the window (from 10 s before it): what viewers may have felt.
    pub overlapping: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Flap {
    pub hpa: String,
    pub times: [f64; 3],
    pub replicas: [u32; 4],
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gap {
    pub source: String,
    pub reason: String,
    pub start: f64,
    pub end: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MissingData {
    pub verb: String,
    pub resource: String,
    pub namespace: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    pub probe_failures: u64,
    pub restarts: u64,
    pub oom_killed: u64,
    pub metric_failures: u64,
}

/// What the report embeds as `cluster`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterReport {
    pub namespace: String,
    pub workloads: Vec<String>,
    pub replicas: Vec<ReplicaPoint>,
    pub scale_decisions: Vec<ScaleDecision>,
    pub scale_ups: Vec<ScaleUpReaction>,
    pub scale_downs: Vec<ScaleDownReport>,
    pub incidents: Vec<Incident>,
    pub experience_windows: Vec<ExperienceWindow>,
    /// With the default 5-minute window.
    pub flapping: Vec<Flap>,
    pub gaps: Vec<Gap>,
    /// Permissions the watcher lacked: this data is missing from the report.
    pub permission_denied: Vec<MissingData>,
    pub totals: Totals,
    /// Every PodMetrics sample (CPU, memory per pod) on the run clock, for charts.
    #[serde(default)]
    pub pod_usage: Vec<PodUsage>,
    /// What the reader should know about how the data was recorded (e.g. Events delivered long
    /// after the time they carry).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Pods of the watched workloads seen at any time: 0 means pod expectations had nothing
    /// to judge.
    #[serde(default)]
    pub pods_seen: u32,
    /// HorizontalPodAutoscalers seen at any time.
    #[serde(default)]
    pub hpas_seen: Vec<String>,
}

/// Events whose own timestamp and the moment the watch delivered them differ by more than this
/// are noted: the report places them when they were seen, not when they say.
pub const EVENT_SKEW_NOTE_S: f64 = 5.0;

/// A note about Events delivered far from the time they carry, if any were.
pub fn event_skew_note(cluster: &ClusterTimeline) -> Option<String> {
    let skewed: Vec<(f64, String)> = cluster
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::K8sEvent {
                object_kind,
                object_name,
                reason,
                reported_unix_ms: Some(reported),
                ..
            } => {
                let skew_s = (e.at.wall_ms as i64 - reported) as f64 / 1000.0;
                (skew_s.abs() > EVENT_SKEW_NOTE_S)
                    .then(|| (skew_s, format!("{object_kind} {object_name} {reason}")))
            }
            _ => None,
        })
        .collect();
    let (worst_s, worst) = skewed
        .iter()
        .max_by(|a, b| a.0.abs().total_cmp(&b.0.abs()))?;
    Some(format!(
        "{} Event(s) carried a time more than {EVENT_SKEW_NOTE_S:.0} s away from when the watch \
         delivered them (largest: {worst}, {:.0} s {}); they are placed when they were seen",
        skewed.len(),
        worst_s.abs(),
        if *worst_s > 0.0 { "behind" } else { "ahead" }
    ))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodUsage {
    pub t: f64,
    pub pod: String,
    pub cpu_millicores: f64,
    pub memory_bytes: u64,
}

pub fn analyse(cluster: &ClusterTimeline, load: &[TimelinePoint]) -> ClusterReport {
    let pod_metrics = pod_metrics(cluster);
    let pod_usage = pod_metrics
        .iter()
        .flat_map(|(pod, samples)| {
            samples.iter().map(move |(t, cpu, mem)| PodUsage {
                t: *t,
                pod: pod.clone(),
                cpu_millicores: *cpu,
                memory_bytes: *mem,
            })
        })
        .collect();
    let replicas = replicas_over_time(cluster, load);
    let decisions = scale_decisions(cluster, load, &pod_metrics);
    ClusterReport {
        pod_usage,
        namespace: cluster.namespace.clone(),
        workloads: cluster.workloads.clone(),
        scale_ups: decisions
            .iter()
            .filter(|d| d.to > d.from)
            .map(|d| scale_up(d, cluster, load))
            .collect(),
        scale_downs: decisions
            .iter()
            .filter(|d| d.to < d.from)
            .map(|d| scale_down(d, cluster, load))
            .collect(),
        flapping: flaps(&decisions, super::config::DEFAULT_FLAP_WINDOW.as_secs_f64()),
        incidents: incidents(cluster, load, &pod_metrics),
        experience_windows: experience_windows(cluster, load),
        gaps: gaps(cluster),
        permission_denied: cluster
            .iter()
            .filter_map(|(_, k)| match k {
                EventKind::PermissionDenied {
                    verb,
                    resource,
                    namespace,
                    message,
                } => Some(MissingData {
                    verb: verb.clone(),
                    resource: resource.clone(),
                    namespace: namespace.clone(),
                    message: message.clone(),
                }),
                _ => None,
            })
            .collect(),
        totals: totals(cluster),
        notes: event_skew_note(cluster).into_iter().collect(),
        pods_seen: cluster
            .iter()
            .filter(|(_, k)| matches!(k, EventKind::PodAdded { .. }))
            .count() as u32,
        hpas_seen: cluster
            .iter()
            .filter_map(|(_, k)| match k {
                EventKind::Hpa { hpa, .. } => Some(hpa.clone()),
                _ => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        replicas,
        scale_decisions: decisions,
    }
}

/// Puts a load timeline recorded on another clock (another load-generator process or pod) on
/// the cluster timeline's clock, by wall clock: each point's `t` becomes its `wall_ms` relative to
/// `cluster_start_unix_ms`. Points from before the cluster watch started are dropped.
pub fn rebase_load(load: &[TimelinePoint], cluster_start_unix_ms: u64) -> Vec<TimelinePoint> {
    load.iter()
        .filter(|p| p.wall_ms >= cluster_start_unix_ms)
        .map(|p| TimelinePoint {
            t: (p.wall_ms - cluster_start_unix_ms) as f64 / 1000.0,
            ..p.clone()
        })
        .collect()
}

fn viewers(p: &TimelinePoint) -> u64 {
    p.players.values().map(|pp| pp.active).sum()
}

/// The load in the one-second window containing `t` (the first point ending at or after it).
pub fn load_at(load: &[TimelinePoint], t: f64) -> Option<LoadAt> {
    let p = load.iter().find(|p| p.t >= t).or_else(|| load.last())?;
    Some(LoadAt {
        viewers: viewers(p),
        publishers: p.publishers,
        mbps_in: p.mbps_in,
        viewers_by_protocol: p
            .players
            .iter()
            .map(|(k, v)| (k.clone(), v.active))
            .collect(),
        mbps_by_protocol: p.players.iter().map(|(k, v)| (k.clone(), v.mbps)).collect(),
    })
}

/// Walks back from `t` to the most recent load change in the given direction and then to where
/// that change began (a ramp rises over many seconds; its start is the step).
pub fn find_step(load: &[TimelinePoint], t: f64, rising: bool) -> Option<LoadStep> {
    let v: Vec<u64> = load.iter().map(viewers).collect();
    let moved = |j: usize| {
        if rising {
            v[j] > v[j - 1]
        } else {
            v[j] < v[j - 1]
        }
    };
    let mut j = load.iter().rposition(|p| p.t <= t)?;
    while j > 0 && !moved(j) {
        j -= 1;
    }
    if j == 0 {
        return None;
    }
    let end = j;
    while j > 0 && moved(j) {
        j -= 1;
    }
    Some(LoadStep {
        t: load[j].t,
        from_viewers: v[j],
        to_viewers: v[end],
    })
}

/// The workload an HPA scales: `Deployment/xiu-edge` → `xiu-edge`.
fn target_name(target: &str) -> String {
    target.rsplit('/').next().unwrap_or(target).to_string()
}

/// Latest (desired, current, ready) per workload.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    desired: Option<u32>,
    current: Option<u32>,
    ready: Option<u32>,
}

pub fn replicas_over_time(cluster: &ClusterTimeline, load: &[TimelinePoint]) -> Vec<ReplicaPoint> {
    let mut state: BTreeMap<String, Counts> = BTreeMap::new();
    let mut out: Vec<ReplicaPoint> = Vec::new();
    for (t, k) in cluster.iter() {
        let (name, next) = match k {
            EventKind::Hpa {
                target,
                desired_replicas,
                current_replicas,
                ..
            } => {
                let name = target_name(target);
                let s = state.get(&name).copied().unwrap_or_default();
                let next = Counts {
                    desired: Some(*desired_replicas),
                    current: current_replicas.or(s.current),
                    ..s
                };
                (name, next)
            }
            EventKind::Workload { name, ready, .. } => {
                let s = state.get(name).copied().unwrap_or_default();
                (
                    name.clone(),
                    Counts {
                        ready: Some(*ready),
                        ..s
                    },
                )
            }
            _ => continue,
        };
        if state.insert(name.clone(), next) != Some(next) {
            out.push(ReplicaPoint {
                t,
                workload: name,
                desired: next.desired,
                current: next.current,
                ready: next.ready,
                load: load_at(load, t),
            });
        }
    }
    out
}

type PodMetrics = BTreeMap<String, Vec<(f64, f64, u64)>>;

fn pod_metrics(cluster: &ClusterTimeline) -> PodMetrics {
    let mut m: PodMetrics = BTreeMap::new();
    for (t, k) in cluster.iter() {
        if let EventKind::PodMetrics {
            pod,
            cpu_millicores,
            memory_bytes,
        } = k
        {
            m.entry(pod.clone())
                .or_default()
                .push((t, *cpu_millicores, *memory_bytes));
        }
    }
    m
}

/// The pod's latest usage sample at or before `t`, if recent enough to describe that moment.
fn usage_at(m: &PodMetrics, pod: &str, t: f64) -> Option<(f64, u64)> {
    m.get(pod)?
        .iter()
        .rev()
        .find(|(st, _, _)| *st <= t && t - st <= METRICS_MAX_AGE_S)
        .map(|(_, c, mem)| (*c, *mem))
}

fn owned_by(pod: &str, workload: &str) -> bool {
    pod.len() > workload.len() + 1
        && pod.starts_with(workload)
        && pod.as_bytes()[workload.len()] == b'-'
}

/// Each change of an HPA's `desiredReplicas`, with the load and per-pod usage at that moment.
/// Serving replicas are taken in event order (not by timestamp) so a pod that became ready in the
/// same millisecond after the decision is not counted as having carried the load.
pub fn scale_decisions(
    cluster: &ClusterTimeline,
    load: &[TimelinePoint],
    metrics: &PodMetrics,
) -> Vec<ScaleDecision> {
    let mut last: BTreeMap<String, u32> = BTreeMap::new();
    let mut ready: BTreeMap<String, u32> = BTreeMap::new();
    let mut current: BTreeMap<String, u32> = BTreeMap::new();
    let mut out = Vec::new();
    for (t, k) in cluster.iter() {
        let (hpa, target, desired_replicas, current_replicas) = match k {
            EventKind::Workload { name, ready: r, .. } => {
                ready.insert(name.clone(), *r);
                continue;
            }
            EventKind::Hpa {
                hpa,
                target,
                desired_replicas,
                current_replicas,
                ..
            } => (hpa, target, desired_replicas, current_replicas),
            _ => continue,
        };
        let prev = last.insert(hpa.clone(), *desired_replicas);
        let serving_before = ready
            .get(&target_name(target))
            .or(current.get(&target_name(target)))
            .copied();
        if let Some(c) = current_replicas {
            current.insert(target_name(target), *c);
        }
        let Some(from) = prev.filter(|p| p != desired_replicas) else {
            continue;
        };
        let workload = target_name(target);
        let to = *desired_replicas;
        // The Event and the status update come from one reconcile: a few seconds apart at most.
        let reason = cluster.iter().find_map(|(et, ek)| match ek {
            EventKind::K8sEvent {
                object_name,
                category:
                    EventCategory::Rescale {
                        new_size,
                        rescale_reason,
                    },
                ..
            } if object_name == hpa
                && (et - t).abs() <= 30.0
                && new_size.is_none_or(|n| n == to) =>
            {
                rescale_reason.clone()
            }
            _ => None,
        });
        let serving = serving_before.unwrap_or(from).max(1) as f64;
        let la = load_at(load, t);
        let usage: Vec<(f64, u64)> = metrics
            .keys()
            .filter(|p| owned_by(p, &workload))
            .filter_map(|p| usage_at(metrics, p, t))
            .collect();
        let avg = |f: &dyn Fn(&(f64, u64)) -> f64| {
            (!usage.is_empty()).then(|| usage.iter().map(f).sum::<f64>() / usage.len() as f64)
        };
        out.push(ScaleDecision {
            t,
            hpa: hpa.clone(),
            workload: workload.clone(),
            from,
            to,
            reason,
            per_pod_viewers: la.as_ref().map(|l| round2(l.viewers as f64 / serving)),
            per_pod_mbps: la.as_ref().map(|l| round2(l.mbps_in / serving)),
            pod_cpu_millicores_avg: avg(&|u| u.0).map(round2),
            pod_memory_bytes_avg: avg(&|u| u.1 as f64).map(f64::round),
            load: la,
        });
    }
    out
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn scale_up(
    d: &ScaleDecision,
    cluster: &ClusterTimeline,
    load: &[TimelinePoint],
) -> ScaleUpReaction {
    let load_step = find_step(load, d.t, true);
    // Pods created for this decision appear after it (tolerate a second of reordering).
    let existing: Vec<&str> = cluster
        .iter()
        .filter_map(|(t, k)| match k {
            EventKind::PodAdded { pod } if t < d.t - 1.0 => Some(pod.as_str()),
            _ => None,
        })
        .collect();
    let is_new = |pod: &str| owned_by(pod, &d.workload) && !existing.contains(&pod);
    let after = || cluster.iter().filter(|(t, _)| *t >= d.t - 1.0);
    let metric_above_target_t = metric_above_target_since(cluster, &d.hpa, d.t);
    ScaleUpReaction {
        metric_above_target_t,
        decision_after_metric_s: metric_above_target_t.map(|m| round2(d.t - m)),
        hpa: d.hpa.clone(),
        from: d.from,
        to: d.to,
        decision_t: d.t,
        decision_after_s: load_step.as_ref().map(|s| round2(d.t - s.t)),
        load_step,
        first_pod_ready_t: after().find_map(|(t, k)| match k {
            EventKind::PodStatus {
                pod, ready: true, ..
            } if is_new(pod) => Some(t),
            _ => None,
        }),
        all_ready_t: after().find_map(|(t, k)| match k {
            EventKind::Workload { name, ready, .. } if *name == d.workload && *ready >= d.to => {
                Some(t)
            }
            _ => None,
        }),
        first_serving_t: after().find_map(|(t, k)| match k {
            EventKind::XiuStats {
                pod, subscribers, ..
            } if is_new(pod) && *subscribers > 0 => Some(t),
            _ => None,
        }),
    }
}

/// Start of the uninterrupted run of HPA statuses, up to `t`, in which some metric was above its
/// target (compared as quantities; utilisation as percentages).
pub fn metric_above_target_since(cluster: &ClusterTimeline, hpa: &str, t: f64) -> Option<f64> {
    let value = |s: &Option<String>| s.as_deref().and_then(super::quantity::parse);
    let mut since = None;
    for (et, k) in cluster.iter().filter(|(et, _)| *et <= t) {
        let EventKind::Hpa {
            hpa: h, metrics, ..
        } = k
        else {
            continue;
        };
        if h != hpa {
            continue;
        }
        let above = metrics.iter().any(
            |m| matches!((value(&m.current), value(&m.target)), (Some(c), Some(tg)) if c > tg),
        );
        since = match (above, since) {
            (true, None) => Some(et),
            (true, s) => s,
            (false, _) => None,
        };
    }
    since
}

fn scale_down(
    d: &ScaleDecision,
    cluster: &ClusterTimeline,
    load: &[TimelinePoint],
) -> ScaleDownReport {
    let load_drop = find_step(load, d.t, false);
    let end = d.t + SCALE_DOWN_ATTRIBUTION_S;
    ScaleDownReport {
        hpa: d.hpa.clone(),
        from: d.from,
        to: d.to,
        decision_t: d.t,
        delay_s: load_drop.as_ref().map(|s| round2(d.t - s.t)),
        load_drop,
        pods_deleted: unique(
            cluster
                .iter()
                .filter_map(|(t, k)| match k {
                    EventKind::PodDeleted { pod }
                    | EventKind::PodStatus {
                        pod,
                        terminating: true,
                        ..
                    } if t >= d.t && t <= end + 60.0 && owned_by(pod, &d.workload) => {
                        Some(pod.clone())
                    }
                    _ => None,
                })
                .collect(),
        ),
        viewers_disconnected: load
            .iter()
            .filter(|p| p.t > d.t && p.t <= end)
            .map(|p| p.players.values().map(|pp| pp.errors).sum::<u64>())
            .sum(),
    }
}

/// Keeps the first occurrence of each name, in order.
fn unique(mut names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Replica counts that reverse direction twice (up-down-up or down-up-down) within `window`
/// seconds. One reversal is a load step going away; two are oscillation.
pub fn flaps(decisions: &[ScaleDecision], window: f64) -> Vec<Flap> {
    let mut by_hpa: BTreeMap<&str, Vec<&ScaleDecision>> = BTreeMap::new();
    for d in decisions {
        by_hpa.entry(&d.hpa).or_default().push(d);
    }
    let mut out = Vec::new();
    for (hpa, ds) in by_hpa {
        for w in ds.windows(3) {
            let up = |d: &ScaleDecision| d.to > d.from;
            if up(w[0]) != up(w[1]) && up(w[1]) != up(w[2]) && w[2].t - w[0].t <= window {
                out.push(Flap {
                    hpa: hpa.to_string(),
                    times: [w[0].t, w[1].t, w[2].t],
                    replicas: [w[0].from, w[0].to, w[1].to, w[2].to],
                });
            }
        }
    }
    out
}

pub fn incidents(
    cluster: &ClusterTimeline,
    load: &[TimelinePoint],
    metrics: &PodMetrics,
) -> Vec<Incident> {
    let mut out = Vec::new();
    for (t, k) in cluster.iter() {
        let (kind, object, probe, count, message) = match k {
            EventKind::PodRestart {
                pod,
                container,
                reason,
                exit_code,
                ..
            } => {
                let oom = reason.as_deref() == Some("OOMKilled");
                (
                    if oom { "oom_killed" } else { "restart" },
                    pod.clone(),
                    None,
                    1,
                    format!(
                        "container {container} restarted (last state: {}, exit code {})",
                        reason.as_deref().unwrap_or("unknown"),
                        exit_code.map_or("?".to_string(), |c| c.to_string())
                    ),
                )
            }
            EventKind::K8sEvent {
                object_name,
                message,
                new,
                category,
                ..
            } => {
                let (kind, probe) = match category {
                    EventCategory::Unhealthy { probe } => ("probe_failure", *probe),
                    EventCategory::Killing => ("killing", None),
                    EventCategory::BackOff => ("back_off", None),
                    EventCategory::MetricFailure => ("metric_failure", None),
                    EventCategory::OomKilling => ("node_oom", None),
                    _ => continue,
                };
                (kind, object_name.clone(), probe, *new, message.clone())
            }
            _ => continue,
        };
        let usage = usage_at(metrics, &object, t);
        out.push(Incident {
            t,
            kind: kind.to_string(),
            probe,
            count,
            message,
            load: load_at(load, t),
            pod_cpu_millicores: usage.map(|u| u.0),
            pod_memory_bytes: usage.map(|u| u.1),
            object,
        });
    }
    out
}

fn totals(cluster: &ClusterTimeline) -> Totals {
    let mut t = Totals::default();
    for (_, k) in cluster.iter() {
        match k {
            EventKind::PodRestart { reason, .. } => {
                t.restarts += 1;
                if reason.as_deref() == Some("OOMKilled") {
                    t.oom_killed += 1;
                }
            }
            EventKind::K8sEvent { new, category, .. } => match category {
                EventCategory::Unhealthy { .. } => t.probe_failures += *new as u64,
                EventCategory::MetricFailure => t.metric_failures += *new as u64,
                _ => {}
            },
            _ => {}
        }
    }
    t
}

/// Seconds with stalls or errors, merged across gaps of up to 2 s, with what the cluster did then.
pub fn experience_windows(
    cluster: &ClusterTimeline,
    load: &[TimelinePoint],
) -> Vec<ExperienceWindow> {
    let mut windows: Vec<ExperienceWindow> = Vec::new();
    for p in load.iter().filter(|p| p.stalls > 0 || p.errors > 0) {
        let start = p.t - 1.0;
        match windows.last_mut() {
            Some(w) if start - w.end <= 2.0 => {
                w.end = p.t;
                w.stalls += p.stalls;
                w.errors += p.errors;
                w.latency_p99_ms_max = max_opt(w.latency_p99_ms_max, p.latency_p99_ms);
            }
            _ => windows.push(ExperienceWindow {
                start,
                end: p.t,
                stalls: p.stalls,
                errors: p.errors,
                latency_p99_ms_max: p.latency_p99_ms,
                overlapping: Vec::new(),
            }),
        }
    }
    for w in &mut windows {
        for (t, k) in cluster
            .iter()
            .filter(|(t, _)| *t >= w.start - 10.0 && *t <= w.end)
        {
            let what = match k {
                EventKind::Hpa {
                    hpa,
                    desired_replicas,
                    ..
                } => format!("HPA {hpa} desired {desired_replicas}"),
                EventKind::PodDeleted { pod } => format!("pod {pod} deleted"),
                EventKind::PodStatus { pod, ready, .. } => format!("pod {pod} ready={ready}"),
                EventKind::PodRestart { pod, reason, .. } => {
                    format!(
                        "pod {pod} restarted ({})",
                        reason.as_deref().unwrap_or("unknown")
                    )
                }
                EventKind::K8sEvent {
                    object_name,
                    reason,
                    ..
                } if reason != "SuccessfulRescale" => {
                    format!("{reason} {object_name}")
                }
                _ => continue,
            };
            w.overlapping.push(format!("t={t:.1}s {what}"));
        }
    }
    windows
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

pub fn gaps(cluster: &ClusterTimeline) -> Vec<Gap> {
    let mut out: Vec<Gap> = Vec::new();
    for (t, k) in cluster.iter() {
        match k {
            EventKind::GapStart { source, reason } => out.push(Gap {
                source: source.clone(),
                reason: reason.clone(),
                start: t,
                end: None,
            }),
            EventKind::GapEnd { source } => {
                if let Some(g) = out
                    .iter_mut()
                    .rev()
                    .find(|g| &g.source == source && g.end.is_none())
                {
                    g.end = Some(t);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::k8s::timeline::{ClusterEvent, Stamp};
    use crate::metrics::timeline::ProtocolPoint;

    pub fn ev(t: f64, kind: EventKind) -> ClusterEvent {
        ClusterEvent {
            at: Stamp { t, wall_ms: 0 },
            kind,
        }
    }

    #[test]
    fn events_seen_far_from_their_own_time_are_noted() {
        let event = |wall_ms: u64, reported: i64| ClusterEvent {
            at: Stamp { t: 1.0, wall_ms },
            kind: EventKind::K8sEvent {
                object_kind: "HorizontalPodAutoscaler".into(),
                object_name: "xiu-edge".into(),
                reason: "SuccessfulRescale".into(),
                message: "New size: 3".into(),
                count: 1,
                new: 1,
                reported_unix_ms: Some(reported),
                category: EventCategory::Rescale {
                    new_size: Some(3),
                    rescale_reason: None,
                },
            },
        };
        let mut c = ClusterTimeline::default();
        c.push(event(1_000_000, 998_000));
        assert_eq!(event_skew_note(&c), None, "2 s is within clock noise");
        c.push(event(1_600_000, 1_000_000));
        let note = event_skew_note(&c).expect("a 10-minute skew is noted");
        assert!(
            note.starts_with("1 Event(s)") && note.contains("600 s behind"),
            "{note}"
        );
        assert_eq!(analyse(&c, &[]).notes, vec![note]);
    }

    pub fn hpa(desired: u32, current: u32) -> EventKind {
        EventKind::Hpa {
            hpa: "xiu-edge".into(),
            target: "Deployment/xiu-edge".into(),
            min_replicas: Some(1),
            max_replicas: 5,
            current_replicas: Some(current),
            desired_replicas: desired,
            metrics: vec![],
            conditions: vec![],
            last_scale_time: None,
            behavior: None,
        }
    }

    pub fn workload(ready: u32) -> EventKind {
        EventKind::Workload {
            kind: "Deployment".into(),
            name: "xiu-edge".into(),
            replicas: ready,
            ready,
            available: ready,
            updated: ready,
        }
    }

    /// Load: 10 viewers until t=10, a ramp to 100 by t=13, held, then 0 from t=60.
    pub fn load() -> Vec<TimelinePoint> {
        (1..=90)
            .map(|t| {
                let v = match t {
                    ..=10 => 10,
                    11 => 40,
                    12 => 70,
                    13..=59 => 100,
                    _ => 0,
                };
                let errors = if (61..=62).contains(&t) { 5 } else { 0 };
                TimelinePoint {
                    t: t as f64,
                    mbps_in: v as f64 * 2.0,
                    errors,
                    players: [(
                        "flv".to_string(),
                        ProtocolPoint {
                            active: v,
                            mbps: v as f64 * 2.0,
                            errors,
                            ..Default::default()
                        },
                    )]
                    .into(),
                    ..Default::default()
                }
            })
            .collect()
    }

    pub fn cluster() -> ClusterTimeline {
        let mut c = ClusterTimeline::default();
        for e in [
            ev(0.0, hpa(1, 1)),
            ev(0.0, workload(1)),
            ev(0.0, EventKind::PodAdded { pod: "xiu-edge-a".into() }),
            ev(5.0, EventKind::PodMetrics { pod: "xiu-edge-a".into(), cpu_millicores: 900.0, memory_bytes: 200 << 20 }),
            ev(20.0, hpa(3, 1)),
            ev(
                20.5,
                EventKind::K8sEvent {
                    object_kind: "HorizontalPodAutoscaler".into(),
                    object_name: "xiu-edge".into(),
                    reason: "SuccessfulRescale".into(),
                    message: "New size: 3; reason: cpu resource utilization (percentage of request) above target".into(),
                    count: 1,
                    new: 1,
                    reported_unix_ms: None,
                    category: EventCategory::Rescale { new_size: Some(3), rescale_reason: Some("cpu above target".into()) },
                },
            ),
            ev(21.0, EventKind::PodAdded { pod: "xiu-edge-b".into() }),
            ev(21.0, EventKind::PodAdded { pod: "xiu-edge-c".into() }),
            ev(30.0, EventKind::PodStatus { pod: "xiu-edge-b".into(), phase: Some("Running".into()), ready: true, containers_ready: true, terminating: false, started_unix_ms: None, ready_since_unix_ms: None }),
            ev(32.0, workload(3)),
            ev(35.0, EventKind::XiuStats { pod: "xiu-edge-b".into(), streams: 1, subscribers: 30, recv_kbps: 2000.0, send_kbps: 60000.0 }),
            ev(
                40.0,
                EventKind::PodRestart { pod: "xiu-edge-a".into(), container: "xiu".into(), restarts: 1, reason: Some("OOMKilled".into()), exit_code: Some(137) },
            ),
            ev(45.0, EventKind::GapStart { source: "pods".into(), reason: "410 Gone".into() }),
            ev(46.0, EventKind::GapEnd { source: "pods".into() }),
            ev(75.0, hpa(1, 3)),
            ev(
                75.5,
                EventKind::PodStatus {
                    pod: "xiu-edge-c".into(),
                    phase: Some("Running".into()),
                    ready: false,
                    containers_ready: false,
                    terminating: true,
                    started_unix_ms: None,
                    ready_since_unix_ms: None,
                },
            ),
            ev(76.0, EventKind::PodDeleted { pod: "xiu-edge-c".into() }),
            ev(76.0, workload(1)),
        ] {
            c.push(e);
        }
        c
    }

    #[test]
    fn foreign_load_is_rebased_by_wall_clock() {
        let load: Vec<TimelinePoint> = [(1.0, 10_500), (2.0, 11_500), (3.0, 12_500)]
            .into_iter()
            .map(|(t, wall_ms)| TimelinePoint {
                t,
                wall_ms,
                ..Default::default()
            })
            .collect();
        let rebased = rebase_load(&load, 11_000);
        assert_eq!(rebased.iter().map(|p| p.t).collect::<Vec<_>>(), [0.5, 1.5]);
    }

    #[test]
    fn load_steps_are_found_from_the_decision_backwards() {
        let l = load();
        assert_eq!(
            find_step(&l, 20.0, true),
            Some(LoadStep {
                t: 10.0,
                from_viewers: 10,
                to_viewers: 100
            })
        );
        assert_eq!(
            find_step(&l, 75.0, false),
            Some(LoadStep {
                t: 59.0,
                from_viewers: 100,
                to_viewers: 0
            })
        );
        assert_eq!(find_step(&l, 5.0, true), None);
        assert_eq!(load_at(&l, 12.5).unwrap().viewers, 100);
    }

    #[test]
    fn replicas_follow_hpa_and_workload_with_load() {
        let r = replicas_over_time(&cluster(), &load());
        let at20 = r.iter().find(|p| p.t == 20.0).unwrap();
        assert_eq!(
            (at20.desired, at20.current, at20.ready),
            (Some(3), Some(1), Some(1))
        );
        assert_eq!(at20.load.as_ref().unwrap().viewers, 100);
        assert_eq!(r.last().unwrap().serving(), Some(1));
    }

    #[test]
    fn scale_up_reaction_and_capacity() {
        let rep = analyse(&cluster(), &load());
        let d = &rep.scale_decisions[0];
        assert_eq!((d.from, d.to), (1, 3));
        assert_eq!(d.reason.as_deref(), Some("cpu above target"));
        // 100 viewers on one serving pod when the HPA decided.
        assert_eq!(d.per_pod_viewers, Some(100.0));
        assert_eq!(d.pod_cpu_millicores_avg, Some(900.0));
        let up = &rep.scale_ups[0];
        assert_eq!(up.decision_after_s, Some(10.0));
        assert_eq!(up.first_pod_ready_t, Some(30.0));
        assert_eq!(up.all_ready_t, Some(32.0));
        assert_eq!(up.first_serving_t, Some(35.0));
    }

    #[test]
    fn metric_crossing_its_target_is_found() {
        let with_cpu = |desired: u32, cpu: &str| match hpa(desired, 1) {
            EventKind::Hpa {
                hpa,
                target,
                min_replicas,
                max_replicas,
                current_replicas,
                desired_replicas,
                conditions,
                last_scale_time,
                behavior,
                ..
            } => EventKind::Hpa {
                hpa,
                target,
                min_replicas,
                max_replicas,
                current_replicas,
                desired_replicas,
                metrics: vec![crate::k8s::timeline::MetricReading {
                    name: "resource/cpu".into(),
                    current: Some(cpu.into()),
                    target: Some("60%".into()),
                }],
                conditions,
                last_scale_time,
                behavior,
            },
            _ => unreachable!(),
        };
        let mut c = ClusterTimeline::default();
        for e in [
            ev(0.0, with_cpu(1, "30%")),
            ev(5.0, with_cpu(1, "70%")),
            ev(8.0, with_cpu(1, "50%")),
            ev(12.0, with_cpu(1, "90%")),
            ev(15.0, with_cpu(1, "95%")),
            ev(20.0, with_cpu(3, "95%")),
        ] {
            c.push(e);
        }
        assert_eq!(metric_above_target_since(&c, "xiu-edge", 20.0), Some(12.0));
        assert_eq!(metric_above_target_since(&c, "xiu-edge", 9.0), None);
        let up = &analyse(&c, &load()).scale_ups[0];
        assert_eq!(up.decision_after_metric_s, Some(8.0));
    }

    #[test]
    fn scale_down_delay_and_disconnects() {
        let rep = analyse(&cluster(), &load());
        let down = &rep.scale_downs[0];
        assert_eq!(down.delay_s, Some(16.0));
        assert_eq!(down.pods_deleted, ["xiu-edge-c"]);
        // The errors at t=61..62 precede the decision at 75: not this scale-down's doing.
        assert_eq!(down.viewers_disconnected, 0);
    }

    #[test]
    fn oom_incident_carries_load_and_usage() {
        let rep = analyse(&cluster(), &load());
        let oom = rep
            .incidents
            .iter()
            .find(|i| i.kind == "oom_killed")
            .unwrap();
        assert_eq!(oom.t, 40.0);
        assert_eq!(oom.pod_memory_bytes, Some(200 << 20));
        assert_eq!(oom.load.as_ref().unwrap().viewers, 100);
        assert_eq!(rep.totals.oom_killed, 1);
        assert_eq!(rep.totals.restarts, 1);
        assert_eq!(
            rep.gaps,
            vec![Gap {
                source: "pods".into(),
                reason: "410 Gone".into(),
                start: 45.0,
                end: Some(46.0)
            }]
        );
    }

    #[test]
    fn one_reversal_is_not_flapping_two_are() {
        let rep = analyse(&cluster(), &load());
        assert!(rep.flapping.is_empty());
        let mut c = cluster();
        c.push(ev(100.0, hpa(2, 1)));
        let rep = analyse(&c, &load());
        assert_eq!(rep.flapping.len(), 1);
        assert_eq!(rep.flapping[0].replicas, [1, 3, 1, 2]);
        assert!(flaps(&rep.scale_decisions, 30.0).is_empty());
    }

    #[test]
    fn experience_window_lists_overlapping_events() {
        let mut c = cluster();
        c.push(ev(
            58.0,
            EventKind::PodDeleted {
                pod: "xiu-edge-b".into(),
            },
        ));
        let w = experience_windows(&c, &load());
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].start, w[0].end, w[0].errors), (60.0, 62.0, 10));
        assert_eq!(w[0].overlapping, ["t=58.0s pod xiu-edge-b deleted"]);
    }
}

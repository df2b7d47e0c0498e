//! The Kubernetes HorizontalPodAutoscaler controller as pure functions, so a recorded run can be
//! replayed through alternative HPA specs without a cluster.
//!
//! This follows the controller itself (kube-controller-manager, kubernetes/kubernetes
//! `pkg/controller/podautoscaler`), not the documentation page, because a replay is only useful
//! if it predicts what the real controller does and the two differ in places:
//! - `replica_calculator.go`: which pods count (`groupPods`: deleting and Failed pods ignored,
//!   Pending pods unready, CPU readiness judged with the initialization period and the initial
//!   readiness delay), the per-metric proposal, missing pods on a scale-down counted at
//!   `max(100, target)` % of their request, the tolerance band `(1-down) <= r <= (1+up)`;
//! - `metrics/utilization.go`: utilization as an integer percent, `total*100/requests` truncated;
//! - `horizontal.go`: several metrics (an invalid one blocks a scale-down), the first
//!   recommendation seeded with the current count, a target scaled to zero left alone before
//!   min/max are looked at, the older path without a `behavior` block (`normalizeDesiredReplicas`:
//!   the largest recommendation of the downscale window, capped at `max(2 × current, 4)`), the
//!   path with one (stabilization per direction, policies per period, select policy) and the scale
//!   events it keeps per direction.
//!
//! Quantities are integer milli-units, as the controller computes with `MilliValue()`:
//! millicores for CPU, milli-bytes for memory.

/// kube-controller-manager's `--horizontal-pod-autoscaler-*` flags that change decisions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerFlags {
    /// `--horizontal-pod-autoscaler-tolerance` (0.1).
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization` (5 min): the window of the path
    /// without `behavior`, and of `behavior.scaleDown` when it sets no window.
    pub downscale_stabilization_s: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period` (5 min).
    pub cpu_initialization_period_s: f64,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay` (30 s).
    pub initial_readiness_delay_s: f64,
}

impl Default for ControllerFlags {
    fn default() -> Self {
        ControllerFlags {
            tolerance: 0.1,
            downscale_stabilization_s: 300.0,
            cpu_initialization_period_s: 300.0,
            initial_readiness_delay_s: 30.0,
        }
    }
}

/// The band around a ratio of 1.0 within which a metric proposes no change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    pub scale_up: f64,
    pub scale_down: f64,
}

impl Tolerances {
    pub fn both(t: f64) -> Self {
        Tolerances {
            scale_up: t,
            scale_down: t,
        }
    }

    /// Inclusive at both ends and computed as the controller computes it: a ratio of exactly
    /// 1.1 is inside a 0.1 tolerance (`ratio - 1.0` would be 0.10000000000000009 and fall out).
    pub fn within(&self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl Phase {
    /// `status.phase`; recordings without one are taken as Running (what older `hpa-input.json`
    /// files held: pods that were listed and sampled).
    pub fn parse(phase: Option<&str>) -> Phase {
        match phase {
            Some("Pending") => Phase::Pending,
            Some("Succeeded") => Phase::Succeeded,
            Some("Failed") => Phase::Failed,
            Some("Unknown") => Phase::Unknown,
            _ => Phase::Running,
        }
    }
}

/// What the controller reads from a pod object (its pod lister), times in seconds on the
/// replay's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodInfo {
    pub phase: Phase,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// The Ready condition is True.
    pub ready: bool,
    /// `status.startTime`.
    pub started_s: Option<f64>,
    /// `lastTransitionTime` of the Ready condition.
    pub ready_since_s: Option<f64>,
}

/// One sample of the metrics API for a pod.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSample {
    /// Milli-units.
    pub value: i64,
    pub timestamp_s: f64,
    /// The averaging window metrics-server reports with the sample.
    pub window_s: f64,
}

/// How one pod counts for one metric (`groupPods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodGroup {
    Ready,
    /// Left out, and counted at 0 % on a scale-up.
    Unready,
    /// No sample: counted at 100 % (or the target, if higher) on a scale-down, 0 % on a scale-up.
    Missing,
    /// Being deleted or Failed: not counted at all.
    Ignored,
}

/// `groupPods` for one pod at reconcile time `now_s`. Readiness only matters for CPU: a CPU
/// sample taken while a pod starts up is not representative.
pub fn group_pod(
    pod: &PodInfo,
    sample: Option<&MetricSample>,
    cpu: bool,
    now_s: f64,
    flags: &ControllerFlags,
) -> PodGroup {
    if pod.deleting || pod.phase == Phase::Failed {
        return PodGroup::Ignored;
    }
    if pod.phase == Phase::Pending {
        return PodGroup::Unready;
    }
    let Some(sample) = sample else {
        return PodGroup::Missing;
    };
    if cpu {
        let unready = match (pod.started_s, pod.ready_since_s) {
            (Some(started), Some(since)) => {
                if started + flags.cpu_initialization_period_s > now_s {
                    // Still initialising: unready, or the sample's window began before the pod
                    // became ready (it averages start-up CPU).
                    !pod.ready || sample.timestamp_s < since + sample.window_s
                } else {
                    // Past initialisation: unready only if it has never been ready, i.e. its
                    // last transition came within the initial readiness delay.
                    !pod.ready && started + flags.initial_readiness_delay_s > since
                }
            }
            // No start time or no Ready condition: the controller counts the pod unready. Older
            // recordings did not keep the times, only whether the pod was Ready.
            _ => !pod.ready,
        };
        if unready {
            return PodGroup::Unready;
        }
    }
    PodGroup::Ready
}

/// What one metric aims at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `averageUtilization`: percent of the pods' requests.
    Utilization(i32),
    /// `averageValue`: usage per pod, milli-units.
    AverageValue(i64),
}

/// One pod as one metric sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodMetric {
    pub group: PodGroup,
    /// Milli-units; `None` when the metrics API had no sample.
    pub usage: Option<i64>,
    /// The pod's request for the metric's resource, milli-units; `None` when a container has
    /// none (a utilization target then cannot be computed).
    pub request: Option<i64>,
}

/// Why a metric gave no proposal (the controller's `FailedGetResourceMetric` and friends).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    #[error("no pods returned by selector")]
    NoPods,
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoReadyMetrics,
    #[error("missing request for the resource")]
    MissingRequest,
    #[error("no metrics returned matched known pods")]
    NoRequests,
}

/// `int32(total*100/requests)`: the controller truncates utilization to a whole percent before
/// it divides by the target.
fn utilization_ratio(pods: &[(i64, i64)], target_pct: i32) -> Result<f64, MetricError> {
    let usage: i64 = pods.iter().map(|p| p.0).sum();
    let requests: i64 = pods.iter().map(|p| p.1).sum();
    if requests == 0 {
        return Err(MetricError::NoRequests);
    }
    let utilization = (usage * 100 / requests) as i32;
    Ok(utilization as f64 / target_pct as f64)
}

/// `GetMetricUsageRatio`: the average is integer-divided too.
fn average_ratio(pods: &[(i64, i64)], target: i64) -> f64 {
    let usage: i64 = pods.iter().map(|p| p.0).sum();
    let average = usage / pods.len().max(1) as i64;
    average as f64 / target as f64
}

/// The replica count one resource metric proposes (`GetResourceReplicas` for a utilization
/// target, `GetRawResourceReplicas` for an average value). `current` is the target's
/// `spec.replicas`.
pub fn replicas_for_metric(
    current: u32,
    pods: &[PodMetric],
    target: Target,
    tol: Tolerances,
) -> Result<u32, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    let ready: Vec<&PodMetric> = pods.iter().filter(|p| p.group == PodGroup::Ready).collect();
    let unready: Vec<&PodMetric> = pods
        .iter()
        .filter(|p| p.group == PodGroup::Unready)
        .collect();
    let missing: Vec<&PodMetric> = pods
        .iter()
        .filter(|p| p.group == PodGroup::Missing)
        .collect();
    if ready.is_empty() {
        return Err(MetricError::NoReadyMetrics);
    }
    // Requests are read for every listed pod, ignored ones included: one container without a
    // request fails the whole utilization metric.
    let request = |p: &PodMetric| p.request.ok_or(MetricError::MissingRequest);
    if let Target::Utilization(_) = target {
        for p in pods {
            request(p)?;
        }
    }
    let ratio_of = |set: &[(i64, i64)]| match target {
        Target::Utilization(pct) => utilization_ratio(set, pct),
        Target::AverageValue(v) => Ok(average_ratio(set, v)),
    };
    let mut metrics: Vec<(i64, i64)> = ready
        .iter()
        .map(|p| (p.usage.unwrap_or(0), p.request.unwrap_or(0)))
        .collect();
    let ratio = ratio_of(&metrics)?;
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if tol.within(ratio) {
            return Ok(current);
        }
        return Ok((ratio * ready.len() as f64).ceil() as u32);
    }
    if ratio < 1.0 {
        // A scale-down on partial data is made cautious: pods without a sample are assumed busy.
        metrics.extend(missing.iter().map(|p| {
            let req = p.request.unwrap_or(0);
            let assumed = match target {
                Target::Utilization(pct) => req * i64::from(pct.max(100)) / 100,
                Target::AverageValue(v) => v,
            };
            (assumed, req)
        }));
    } else if ratio > 1.0 {
        metrics.extend(missing.iter().map(|p| (0, p.request.unwrap_or(0))));
    }
    if scale_up_with_unready {
        metrics.extend(unready.iter().map(|p| (0, p.request.unwrap_or(0))));
    }
    let new_ratio = ratio_of(&metrics)?;
    if tol.within(new_ratio) || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(current);
    }
    let proposal = (new_ratio * metrics.len() as f64).ceil() as u32;
    if (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current) {
        return Ok(current);
    }
    Ok(proposal)
}

/// `computeReplicasForMetrics`: the largest proposal; `None` (no scaling this round) when every
/// metric failed, or when one failed and the others would scale down: the controller will not
/// remove pods on partial information.
pub fn combine_metrics(current: u32, proposals: &[Result<u32, MetricError>]) -> Option<u32> {
    let invalid = proposals.iter().filter(|p| p.is_err()).count();
    let replicas = proposals.iter().flatten().copied().max().unwrap_or(0);
    if invalid >= proposals.len() || (invalid > 0 && replicas < current) {
        return None;
    }
    Some(replicas)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

/// One scaling policy: at most `value` pods (or percent) of change per `period_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: u32,
    pub period_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy that allows the biggest change (the default).
    Max,
    /// The policy that allows the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `behavior.scaleUp` or `behavior.scaleDown` with the API server's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `None` only for scale-down: the controller then uses its downscale-stabilization flag.
    pub stabilization_window_s: Option<f64>,
    pub policies: Vec<Policy>,
    pub select: SelectPolicy,
    /// `tolerance` (autoscaling/v2 since Kubernetes 1.33, behind the HPAConfigurableTolerance
    /// feature gate); `None`: the controller's flag.
    pub tolerance: Option<f64>,
}

impl Rules {
    /// The API server's default for `scaleUp`: the larger of +4 pods or +100 % per 15 s, no
    /// window.
    pub fn default_scale_up() -> Self {
        Rules {
            stabilization_window_s: Some(0.0),
            policies: vec![
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_s: 15.0,
                },
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_s: 15.0,
                },
            ],
            select: SelectPolicy::Max,
            tolerance: None,
        }
    }

    /// The API server's default for `scaleDown`: up to 100 % per 15 s; the window is left unset
    /// so the controller's flag (5 min) applies.
    pub fn default_scale_down() -> Self {
        Rules {
            stabilization_window_s: None,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period_s: 15.0,
            }],
            select: SelectPolicy::Max,
            tolerance: None,
        }
    }

    fn longest_period_s(&self) -> f64 {
        self.policies.iter().map(|p| p.period_s).fold(0.0, f64::max)
    }
}

/// `spec.behavior`, both directions defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    pub scale_up: Rules,
    pub scale_down: Rules,
}

/// The HPA's fixed parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// `None`: the HPA has no `behavior` block and the controller takes its older path.
    pub behavior: Option<Behavior>,
}

impl Limits {
    /// The tolerances the metrics of this HPA are judged with.
    pub fn tolerances(&self, flags: &ControllerFlags) -> Tolerances {
        let mut t = Tolerances::both(flags.tolerance);
        if let Some(b) = &self.behavior {
            if let Some(up) = b.scale_up.tolerance {
                t.scale_up = up;
            }
            if let Some(down) = b.scale_down.tolerance {
                t.scale_down = down;
            }
        }
        t
    }
}

/// "Within the last `span_s`" as the controller's `After(now - span)`. The real controller's
/// clock moves on a little during each sync, so a sample exactly one window (or period) old is
/// already outside it; the replay's exact ticks keep that by comparing strictly.
fn inside(t: f64, now: f64, span_s: f64) -> bool {
    t > now - span_s
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Recommendation {
    t: f64,
    replicas: u32,
}

/// A replica change the HPA made, kept for its policies' "per period" accounting.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ScaleEvent {
    t: f64,
    change: u32,
    outdated: bool,
}

/// The controller's memory for one HPA: unstabilized recommendations and, with a `behavior`,
/// the scale events of each direction.
#[derive(Debug, Clone, Default)]
pub struct HpaState {
    /// `None` until the first reconcile seeds it with the current count.
    recommendations: Option<Vec<Recommendation>>,
    up_events: Vec<ScaleEvent>,
    down_events: Vec<ScaleEvent>,
}

impl HpaState {
    fn recommendations(&mut self) -> &mut Vec<Recommendation> {
        self.recommendations.get_or_insert_with(Vec::new)
    }
}

fn changed_within(events: &[ScaleEvent], now: f64, period_s: f64) -> i64 {
    events
        .iter()
        .filter(|e| inside(e.t, now, period_s))
        .map(|e| i64::from(e.change))
        .sum()
}

/// The replica count at the start of a policy's period: the changes made within it undone.
fn period_start(current: u32, state: &HpaState, now: f64, period_s: f64) -> i64 {
    i64::from(current) - changed_within(&state.up_events, now, period_s)
        + changed_within(&state.down_events, now, period_s)
}

/// `calculateScaleUpLimitWithScalingRules`.
fn scale_up_limit(current: u32, state: &HpaState, now: f64, rules: &Rules) -> i64 {
    let (mut result, pick): (i64, fn(i64, i64) -> i64) = match rules.select {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Min => (i64::from(i32::MAX), i64::min),
        SelectPolicy::Max => (i64::from(i32::MIN), i64::max),
    };
    for p in &rules.policies {
        let start = period_start(current, state, now, p.period_s);
        let proposed = match p.kind {
            PolicyKind::Pods => start + i64::from(p.value),
            // Rounded up, or a small deployment could never grow.
            PolicyKind::Percent => {
                (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// `calculateScaleDownLimitWithBehaviors`.
fn scale_down_limit(current: u32, state: &HpaState, now: f64, rules: &Rules) -> i64 {
    let (mut result, pick): (i64, fn(i64, i64) -> i64) = match rules.select {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Min => (i64::from(i32::MIN), i64::max),
        SelectPolicy::Max => (i64::from(i32::MAX), i64::min),
    };
    for p in &rules.policies {
        let start = period_start(current, state, now, p.period_s);
        let proposed = match p.kind {
            PolicyKind::Pods => start - i64::from(p.value),
            // Truncated, so the change is rounded up (72 pods − 10 % → 64).
            PolicyKind::Percent => (start as f64 * (1.0 - f64::from(p.value) / 100.0)) as i64,
        };
        result = pick(result, proposed);
    }
    result
}

/// `stabilizeRecommendation` (no `behavior`): the largest recommendation of the downscale
/// window, the new one included; the new one replaces an expired entry.
fn stabilize_without_behavior(state: &mut HpaState, now: f64, window_s: f64, desired: u32) -> u32 {
    let recs = state.recommendations();
    let mut max = desired;
    let mut expired = None;
    for (i, r) in recs.iter().enumerate() {
        if inside(r.t, now, window_s) {
            max = max.max(r.replicas);
        } else {
            expired = Some(i);
        }
    }
    store_recommendation(recs, expired, now, desired);
    max
}

fn store_recommendation(
    recs: &mut Vec<Recommendation>,
    expired: Option<usize>,
    now: f64,
    desired: u32,
) {
    let rec = Recommendation {
        t: now,
        replicas: desired,
    };
    match expired {
        Some(i) => recs[i] = rec,
        None => recs.push(rec),
    }
}

/// `stabilizeRecommendationWithBehaviors`: scale up no further than the lowest recommendation
/// of the up window, down no further than the highest of the down window.
fn stabilize_with_behavior(
    state: &mut HpaState,
    now: f64,
    current: u32,
    desired: u32,
    up_window_s: f64,
    down_window_s: f64,
) -> u32 {
    let recs = state.recommendations();
    let mut up = desired;
    let mut down = desired;
    let mut expired = None;
    for (i, r) in recs.iter().enumerate() {
        let in_up = inside(r.t, now, up_window_s);
        let in_down = inside(r.t, now, down_window_s);
        if in_up {
            up = up.min(r.replicas);
        }
        if in_down {
            down = down.max(r.replicas);
        }
        if !in_up && !in_down {
            expired = Some(i);
        }
    }
    store_recommendation(recs, expired, now, desired);
    current.max(up).min(down)
}

/// `calculateScaleUpLimit` of the path without `behavior`.
fn legacy_scale_up_limit(current: u32) -> u32 {
    (2.0 * f64::from(current)).max(4.0) as u32
}

/// `normalizeDesiredReplicas`: no `behavior` block.
fn normalize_without_behavior(
    limits: &Limits,
    flags: &ControllerFlags,
    state: &mut HpaState,
    now: f64,
    current: u32,
    desired: u32,
) -> u32 {
    let stabilized =
        stabilize_without_behavior(state, now, flags.downscale_stabilization_s, desired);
    let maximum = limits.max_replicas.min(legacy_scale_up_limit(current));
    if stabilized < limits.min_replicas {
        limits.min_replicas
    } else if stabilized > maximum {
        maximum
    } else {
        stabilized
    }
}

/// `normalizeDesiredReplicasWithBehaviors`.
fn normalize_with_behavior(
    limits: &Limits,
    behavior: &Behavior,
    flags: &ControllerFlags,
    state: &mut HpaState,
    now: f64,
    current: u32,
    desired: u32,
) -> u32 {
    let up_window = behavior.scale_up.stabilization_window_s.unwrap_or(0.0);
    let down_window = behavior
        .scale_down
        .stabilization_window_s
        .unwrap_or(flags.downscale_stabilization_s);
    let stabilized = stabilize_with_behavior(state, now, current, desired, up_window, down_window);
    if stabilized > current {
        let limit = scale_up_limit(current, state, now, &behavior.scale_up).max(i64::from(current));
        let maximum = i64::from(limits.max_replicas).min(limit);
        if i64::from(stabilized) > maximum {
            return maximum as u32;
        }
    } else if stabilized < current {
        let limit =
            scale_down_limit(current, state, now, &behavior.scale_down).min(i64::from(current));
        let minimum = i64::from(limits.min_replicas).max(limit);
        if i64::from(stabilized) < minimum {
            return minimum.max(0) as u32;
        }
    }
    stabilized
}

/// `storeScaleEvent`: an event older than its direction's longest policy period is marked
/// outdated and the next event of that direction takes its slot. Outdated events still count
/// for the other direction's policies while they are within those periods, as in the controller.
fn store_scale_event(behavior: &Behavior, state: &mut HpaState, now: f64, from: u32, to: u32) {
    let (events, longest, change) = if to > from {
        (
            &mut state.up_events,
            behavior.scale_up.longest_period_s(),
            to - from,
        )
    } else {
        (
            &mut state.down_events,
            behavior.scale_down.longest_period_s(),
            from - to,
        )
    };
    let mut slot = None;
    for (i, e) in events.iter_mut().enumerate() {
        if !inside(e.t, now, longest) {
            e.outdated = true;
        }
        if e.outdated {
            slot = Some(i);
        }
    }
    let event = ScaleEvent {
        t: now,
        change,
        outdated: false,
    };
    match slot {
        Some(i) => events[i] = event,
        None => events.push(event),
    }
}

/// One reconcile of the controller (`reconcileAutoscaler`): from the metrics' combined proposal
/// (`None`: no valid proposal this round) to the replica count it sets.
pub fn reconcile(
    limits: &Limits,
    flags: &ControllerFlags,
    state: &mut HpaState,
    now: f64,
    current: u32,
    proposal: Option<u32>,
) -> u32 {
    // `recordInitialRecommendation`: the count the HPA found counts as a recommendation made
    // now, so a fresh controller does not scale down before a full window has passed.
    if state.recommendations.is_none() {
        state.recommendations = Some(vec![Recommendation {
            t: now,
            replicas: current,
        }]);
    }
    let desired = if current == 0 && limits.min_replicas != 0 {
        // Scaled to zero by hand: autoscaling is off until someone scales the target up.
        return 0;
    } else if current > limits.max_replicas {
        limits.max_replicas
    } else if current < limits.min_replicas {
        limits.min_replicas
    } else {
        let Some(desired) = proposal else {
            return current;
        };
        match &limits.behavior {
            None => normalize_without_behavior(limits, flags, state, now, current, desired),
            Some(b) => normalize_with_behavior(limits, b, flags, state, now, current, desired),
        }
    };
    if desired != current
        && let Some(b) = &limits.behavior
    {
        store_scale_event(b, state, now, current, desired);
    }
    desired
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerances = Tolerances {
        scale_up: 0.1,
        scale_down: 0.1,
    };

    fn flags() -> ControllerFlags {
        ControllerFlags::default()
    }

    // --- replica_calculator_test.go ------------------------------------------------------
    //
    // The controller's tests run pods with two containers, each requesting 1 CPU and each using
    // `level` millicores; the pod-level numbers below are those sums (request 2000m, usage
    // 2 × level).

    #[derive(Clone, Copy)]
    struct P {
        level: Option<i64>,
        request: i64,
        group: PodGroup,
    }

    fn ready(level: i64) -> P {
        P {
            level: Some(level),
            request: 1000,
            group: PodGroup::Ready,
        }
    }

    fn with(group: PodGroup, level: Option<i64>) -> P {
        P {
            level,
            request: 1000,
            group,
        }
    }

    fn calc(current: u32, pods: &[P], target: Target) -> Result<u32, MetricError> {
        let metrics: Vec<PodMetric> = pods
            .iter()
            .map(|p| PodMetric {
                group: p.group,
                usage: p.level.map(|l| 2 * l),
                request: Some(2 * p.request),
            })
            .collect();
        replicas_for_metric(current, &metrics, target, TOL)
    }

    #[test]
    fn controller_test_table_resource_utilization() {
        use PodGroup::*;
        let u = Target::Utilization;
        #[rustfmt::skip]
        let cases: Vec<(&str, u32, Vec<P>, Target, u32)> = vec![
            ("scale up", 3, vec![ready(300), ready(500), ready(700)], u(30), 5),
            ("scale up: unready pod scales less", 3,
                vec![with(Unready, Some(300)), ready(500), ready(700)], u(30), 4),
            ("no scale: unready pods ignored", 3,
                vec![ready(400), with(Unready, Some(500)), with(Unready, Some(700))], u(30), 3),
            ("scale up: failed pods ignored", 2,
                vec![ready(500), ready(700), with(Ignored, None), with(Ignored, None)], u(30), 4),
            ("scale up: pods being deleted are ignored", 2,
                vec![ready(500), ready(700), with(Ignored, None), with(Ignored, None)], u(30), 4),
            ("scale down", 5,
                vec![ready(100), ready(300), ready(500), ready(250), ready(250)], u(50), 3),
            ("scale down: exclude unready pods", 5,
                vec![ready(100), ready(300), ready(500), with(Unready, Some(250)),
                     with(Unready, Some(250))], u(50), 2),
            ("scale down: exclude unscheduled (Pending) pods", 5,
                vec![ready(100), with(Unready, None), with(Unready, None), with(Unready, None),
                     with(Unready, None)], u(50), 1),
            ("scale down: failed pods ignored", 5,
                vec![ready(100), ready(300), ready(500), ready(250), ready(250),
                     with(Ignored, None), with(Ignored, None)], u(50), 3),
            ("TestReplicaCalcMissingMetrics", 4,
                vec![ready(400), ready(95), with(Missing, None), with(Missing, None)], u(100), 3),
            ("TestReplicaCalcMissingMetricsNoChangeEq", 2,
                vec![ready(1000), with(Missing, None)], u(100), 2),
            ("TestReplicaCalcMissingMetricsNoChangeGt", 2,
                vec![ready(1900), with(Missing, None)], u(100), 2),
            ("TestReplicaCalcMissingMetricsNoChangeLt", 2,
                vec![ready(600), with(Missing, None)], u(100), 2),
            ("TestReplicaCalcMissingMetricsUnreadyChange", 3,
                vec![with(Unready, Some(100)), ready(450), with(Missing, None)], u(50), 3),
            ("TestReplicaCalcMissingMetricsUnreadyScaleUp", 3,
                vec![with(Unready, Some(100)), ready(2000), with(Missing, None)], u(50), 4),
            ("TestReplicaCalcMissingMetricsUnreadyScaleDown", 4,
                vec![with(Unready, Some(100)), ready(100), ready(100), with(Missing, None)],
                u(50), 3),
            ("TestReplicaCalcDuringRollingUpdateWithMaxSurge", 2,
                vec![ready(100), ready(100), with(Missing, None)], u(50), 2),
        ];
        for (name, current, pods, target, want) in cases {
            assert_eq!(calc(current, &pods, target), Ok(want), "{name}");
        }
    }

    // TestReplicaCalcMissingMetricsScaleDownTargetOver100: requests of 1, 1, 2 and 2 CPUs per
    // container, the first pod unready, the last without metrics, target 300 %: the missing pod
    // counts at 300 % of its request, not 100 %.
    #[test]
    fn controller_test_missing_metrics_target_over_100() {
        let pods = [
            P {
                level: Some(200),
                request: 1000,
                group: PodGroup::Unready,
            },
            P {
                level: Some(100),
                request: 1000,
                group: PodGroup::Ready,
            },
            P {
                level: Some(100),
                request: 2000,
                group: PodGroup::Ready,
            },
            P {
                level: None,
                request: 2000,
                group: PodGroup::Missing,
            },
        ];
        assert_eq!(calc(4, &pods, Target::Utilization(300)), Ok(2));
    }

    // Plain (average value) metrics: TestReplicaCalcScaleUpCM, TestPlainMetricReplicaCalc-
    // MissingMetricsNoChangeEq, TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM.
    #[test]
    fn controller_test_table_average_value() {
        let plain = |levels: &[Option<i64>]| -> Vec<PodMetric> {
            levels
                .iter()
                .map(|l| PodMetric {
                    group: if l.is_some() {
                        PodGroup::Ready
                    } else {
                        PodGroup::Missing
                    },
                    usage: *l,
                    request: None,
                })
                .collect()
        };
        let t = Target::AverageValue;
        let r = |c, l: &[Option<i64>], target| replicas_for_metric(c, &plain(l), target, TOL);
        assert_eq!(
            r(3, &[Some(20000), Some(10000), Some(30000)], t(15000)),
            Ok(4)
        );
        let five = [Some(20000), Some(19000), Some(21000), None, None];
        assert_eq!(r(5, &five, t(20000)), Ok(5));
        assert_eq!(r(2, &[Some(10000), Some(10000), None], t(17000)), Ok(2));
    }

    // TestReplicaCalcComputedToleranceAlgImplementation: 10 pods using 150m of 300m (50 %),
    // target 56 % → ratio 50/56 = 0.89, just outside the band → 9 pods; target 55 % → ratio
    // 0.909 inside → 10.
    #[test]
    fn controller_test_computed_tolerance() {
        let pods: Vec<PodMetric> = [400, 200, 310, 290, 302, 298, 301, 299, 300, 300]
            .iter()
            .map(|r| PodMetric {
                group: PodGroup::Ready,
                usage: Some(2 * 150),
                request: Some(2 * r),
            })
            .collect();
        assert_eq!(
            replicas_for_metric(10, &pods, Target::Utilization(56), TOL),
            Ok(9)
        );
        assert_eq!(
            replicas_for_metric(10, &pods, Target::Utilization(55), TOL),
            Ok(10)
        );
    }

    #[test]
    fn metric_errors_as_the_controller_reports_them() {
        assert_eq!(
            replicas_for_metric(1, &[], Target::Utilization(50), TOL),
            Err(MetricError::NoPods)
        );
        // Every pod unready: nothing to judge.
        let unready = [with(PodGroup::Unready, Some(100)); 2];
        assert_eq!(
            calc(2, &unready, Target::Utilization(50)),
            Err(MetricError::NoReadyMetrics)
        );
        // TestReplicaCalcEmptyCPURequest: a pod without a request fails utilization...
        let no_request = [PodMetric {
            group: PodGroup::Ready,
            usage: Some(200),
            request: None,
        }];
        assert_eq!(
            replicas_for_metric(1, &no_request, Target::Utilization(100), TOL),
            Err(MetricError::MissingRequest)
        );
        // ... but not an average value, which never looks at requests.
        assert_eq!(
            replicas_for_metric(1, &no_request, Target::AverageValue(100), TOL),
            Ok(2)
        );
    }

    // Item 8: the band is inclusive as the controller computes it. 10 pods at 55 % of their
    // request against a 50 % target is a ratio of exactly 1.1: no change (the float
    // subtraction this replaced put it outside and proposed 11).
    #[test]
    fn ratio_of_exactly_1_1_is_inside_the_tolerance() {
        let pods = vec![ready(550); 10];
        assert_eq!(calc(10, &pods, Target::Utilization(50)), Ok(10));
        assert!(TOL.within(1.1) && TOL.within(0.9));
        assert!(!TOL.within(1.1000001) && !TOL.within(0.8999999));
    }

    // Item 8: utilization is a whole percent before the ratio: 55.5 % is 55 %, ratio 1.1, no
    // change (55.5 / 50 = 1.11 would propose 12).
    #[test]
    fn utilization_is_truncated_to_an_integer_percent() {
        let pods = vec![ready(555); 10];
        assert_eq!(calc(10, &pods, Target::Utilization(50)), Ok(10));
        let pods = vec![ready(560); 10];
        assert_eq!(calc(10, &pods, Target::Utilization(50)), Ok(12));
    }

    // Item 8: on a scale-down, pods without a sample count at max(100, target) % of their
    // request. Two pods at 10 %, two missing, target 50 %: (10+10+100+100)/4 = 55 % → ratio 1.1,
    // which would be a scale-up on assumed data → no change. Counting them at the target
    // (50 %) instead gave 30 % → 3 pods.
    #[test]
    fn missing_pods_on_scale_down_count_at_full_request() {
        let pods = [
            ready(100),
            ready(100),
            with(PodGroup::Missing, None),
            with(PodGroup::Missing, None),
        ];
        assert_eq!(calc(4, &pods, Target::Utilization(50)), Ok(4));
        // On a scale-up they count at 0 %: 2 pods at 100 % + 2 missing → 50 % → ratio 1.0.
        let pods = [
            ready(1000),
            ready(1000),
            with(PodGroup::Missing, None),
            with(PodGroup::Missing, None),
        ];
        assert_eq!(calc(4, &pods, Target::Utilization(50)), Ok(4));
    }

    fn pod(ready: bool, started_s: f64, ready_since_s: f64) -> PodInfo {
        PodInfo {
            phase: Phase::Running,
            deleting: false,
            ready,
            started_s: Some(started_s),
            ready_since_s: Some(ready_since_s),
        }
    }

    fn sample(t: f64) -> MetricSample {
        MetricSample {
            value: 100,
            timestamp_s: t,
            window_s: 30.0,
        }
    }

    // Item 9, and TestGroupPods: how each pod counts.
    #[test]
    fn group_pods_as_the_controller_does() {
        let f = flags();
        let now = 1000.0;
        let s = sample(now);
        let g = |p: PodInfo, s: Option<&MetricSample>, cpu| group_pod(&p, s, cpu, now, &f);
        // Deleting and Failed pods are ignored, whatever else they say.
        let deleting = PodInfo {
            deleting: true,
            ..pod(true, 0.0, 10.0)
        };
        assert_eq!(g(deleting, Some(&s), true), PodGroup::Ignored);
        let failed = PodInfo {
            phase: Phase::Failed,
            ..pod(true, 0.0, 10.0)
        };
        assert_eq!(g(failed, Some(&s), false), PodGroup::Ignored);
        // Pending pods are unready, for memory too.
        let pending = PodInfo {
            phase: Phase::Pending,
            ..pod(false, 990.0, 990.0)
        };
        assert_eq!(g(pending, Some(&s), false), PodGroup::Unready);
        assert_eq!(g(pod(true, 0.0, 10.0), None, true), PodGroup::Missing);
        // Past the CPU initialization period (5 min): a pod that is not Ready now but was Ready
        // after its start-up (transition 100 s after start, later than the 30 s delay) counts
        // as ready: its sample is normal load.
        assert_eq!(g(pod(false, 0.0, 100.0), Some(&s), true), PodGroup::Ready);
        // ... one that never became ready (last transition within the delay) is unready.
        assert_eq!(g(pod(false, 0.0, 10.0), Some(&s), true), PodGroup::Unready);
        // Within the initialization period: unready unless Ready and the sample's window began
        // after the transition.
        assert_eq!(g(pod(true, 900.0, 960.0), Some(&s), true), PodGroup::Ready);
        assert_eq!(
            g(pod(true, 900.0, 980.0), Some(&s), true),
            PodGroup::Unready
        );
        assert_eq!(
            g(pod(false, 900.0, 960.0), Some(&s), true),
            PodGroup::Unready
        );
        // Memory does not look at readiness.
        assert_eq!(
            g(pod(false, 900.0, 960.0), Some(&s), false),
            PodGroup::Ready
        );
        // No times recorded (older files): the Ready flag decides.
        let legacy = |ready| PodInfo {
            started_s: None,
            ready_since_s: None,
            ..pod(ready, 0.0, 0.0)
        };
        assert_eq!(g(legacy(true), Some(&s), true), PodGroup::Ready);
        assert_eq!(g(legacy(false), Some(&s), true), PodGroup::Unready);
    }

    // Item 8: an invalid metric blocks a scale-down but not a scale-up; all invalid is no
    // proposal.
    #[test]
    fn invalid_metric_blocks_scale_down() {
        let bad = || Err(MetricError::MissingRequest);
        assert_eq!(combine_metrics(5, &[Ok(3), bad()]), None);
        assert_eq!(combine_metrics(5, &[Ok(7), bad()]), Some(7));
        assert_eq!(combine_metrics(5, &[Ok(5), bad()]), Some(5));
        assert_eq!(combine_metrics(5, &[bad(), bad()]), None);
        assert_eq!(combine_metrics(5, &[Ok(3), Ok(7), Ok(5)]), Some(7));
    }

    // --- horizontal_test.go ---------------------------------------------------------------

    fn limits(min: u32, max: u32, behavior: Option<Behavior>) -> Limits {
        Limits {
            min_replicas: min,
            max_replicas: max,
            behavior,
        }
    }

    /// `generateScalingRules(pods, podsPeriod, percent, percentPeriod, window)`.
    fn rules(pods: u32, pods_s: f64, percent: u32, percent_s: f64, window_s: f64) -> Rules {
        let mut policies = Vec::new();
        if pods != 0 {
            policies.push(Policy {
                kind: PolicyKind::Pods,
                value: pods,
                period_s: pods_s,
            });
        }
        if percent != 0 {
            policies.push(Policy {
                kind: PolicyKind::Percent,
                value: percent,
                period_s: percent_s,
            });
        }
        Rules {
            stabilization_window_s: Some(window_s),
            policies,
            select: SelectPolicy::Max,
            tolerance: None,
        }
    }

    /// One reconcile of a fresh controller, with the controller's tests' habit of starting with
    /// an empty recommendation log (not the seeded one of a real first sync).
    fn normalize_once(l: &Limits, current: u32, desired: u32) -> u32 {
        let mut s = HpaState {
            recommendations: Some(Vec::new()),
            ..Default::default()
        };
        reconcile(l, &flags(), &mut s, 1000.0, current, Some(desired))
    }

    // TestScalingWithRules (no scale events).
    #[test]
    fn controller_test_table_scaling_with_rules() {
        let up = Rules::default_scale_up;
        let down = Rules::default_scale_down;
        let b = |u: Rules, d: Rules| {
            Some(Behavior {
                scale_up: u,
                scale_down: d,
            })
        };
        // (name, current, desired, min, max, behavior, expected)
        type Case = (&'static str, u32, u32, u32, u32, Option<Behavior>, u32);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("within range", 5, 7, 3, 8, b(up(), down()), 7),
            ("< minReplicas", 3, 1, 2, 8, b(up(), down()), 2),
            ("within range when minReplicas is 0", 1, 0, 0, 10, b(up(), down()), 0),
            ("maxReplicas < scaleUpLimit", 20, 1000, 1, 10, b(up(), down()), 10),
            ("more than maximum", 100, 1000, 100, 150, b(up(), down()), 150),
            ("scaleUpLimit with user policies", 3, 1000, 1, 2000,
                b(rules(0, 0.0, 1, 60.0, 0.0), down()), 4),
            ("scaleDownLimit with user policies", 1000, 3, 3, 2000,
                b(up(), rules(20, 60.0, 0, 0.0, 0.0)), 980),
            ("scaleUp with default behavior", 10, 50, 1, 1000, b(up(), down()), 20),
            ("pods policy larger", 10, 500, 1, 1000, b(rules(100, 60.0, 100, 60.0, 0.0), down()),
                110),
            ("percent policy larger", 10, 500, 1, 1000, b(rules(2, 60.0, 100, 60.0, 0.0), down()),
                20),
            ("max with large pod policy", 10, 50, 1, 1000, b(rules(100, 60.0, 0, 0.0, 0.0), down()),
                50),
            ("pod policy limitation", 10, 50, 1, 1000, b(rules(30, 60.0, 0, 0.0, 0.0), down()), 40),
            ("percent policy limitation", 10, 50, 1, 1000,
                b(rules(0, 0.0, 200, 60.0, 0.0), down()), 30),
            ("scaleDown percent larger", 100, 2, 1, 1000,
                b(up(), rules(20, 60.0, 1, 60.0, 300.0)), 80),
            ("scaleDown pod larger", 100, 2, 1, 1000, b(up(), rules(2, 60.0, 1, 60.0, 300.0)), 98),
            ("scaleDown min with large pod policy", 10, 0, 1, 1000,
                b(up(), rules(100, 60.0, 0, 0.0, 300.0)), 1),
            ("scaleDown min with large percent policy", 10, 2, 5, 1000,
                b(up(), rules(0, 0.0, 100, 60.0, 300.0)), 5),
            ("scaleDown pod policy limitation", 10, 2, 1, 1000,
                b(up(), rules(5, 60.0, 0, 0.0, 300.0)), 5),
            ("scaleDown percent policy limitation", 10, 5, 1, 1000,
                b(up(), rules(0, 0.0, 50, 60.0, 300.0)), 5),
        ];
        for (name, current, desired, min, max, behavior, want) in cases {
            let l = limits(min, max, behavior);
            assert_eq!(normalize_once(&l, current, desired), want, "{name}");
        }
    }

    // TestScalingWithRules with earlier scale-ups: +1, +5 and +9 pods spread over the last
    // 120 s (at −100 s, −60 s and −20 s).
    #[test]
    fn controller_test_scaling_with_previous_events() {
        let run = |up: Rules, max: u32| {
            let l = limits(
                1,
                max,
                Some(Behavior {
                    scale_up: up,
                    scale_down: Rules::default_scale_down(),
                }),
            );
            let now = 1000.0;
            let mut s = HpaState {
                recommendations: Some(Vec::new()),
                ..Default::default()
            };
            for (dt, change) in [(100.0, 1), (60.0, 5), (20.0, 9)] {
                s.up_events.push(ScaleEvent {
                    t: now - dt,
                    change,
                    outdated: false,
                });
            }
            reconcile(&l, &flags(), &mut s, now, 100, Some(500))
        };
        assert_eq!(run(rules(300, 60.0, 0, 0.0, 0.0), 200), 200);
        assert_eq!(run(rules(0, 0.0, 10000, 60.0, 0.0), 200), 200);
        // 120 s ago there were 85 pods; +5 per 120 s allows no more than the 100 there are.
        assert_eq!(run(rules(5, 120.0, 0, 0.0, 0.0), 1000), 100);
        assert_eq!(run(rules(150, 120.0, 0, 0.0, 0.0), 1000), 235);
    }

    // TestNormalizeDesiredReplicas (path without behavior, 5 min window): (age, replicas) of
    // past recommendations, the new one, and the stabilized result.
    #[test]
    fn controller_test_stabilize_without_behavior() {
        let now = 1000.0;
        // (past recommendations as (age, replicas), desired, expected, log length after)
        type Case = (Vec<(f64, u32)>, u32, u32, usize);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            (vec![], 5, 5, 1),
            (vec![(120.0, 4), (60.0, 5)], 3, 5, 3),
            (vec![(120.0, 1), (60.0, 2)], 3, 3, 3),
            (vec![(600.0, 10), (540.0, 9)], 3, 3, 2),
            (vec![(600.0, 10), (60.0, 4), (120.0, 5), (540.0, 9)], 3, 5, 4),
        ];
        for (past, desired, want, log_len) in cases {
            let mut s = HpaState {
                recommendations: Some(
                    past.iter()
                        .map(|&(age, replicas)| Recommendation {
                            t: now - age,
                            replicas,
                        })
                        .collect(),
                ),
                ..Default::default()
            };
            assert_eq!(
                stabilize_without_behavior(&mut s, now, 300.0, desired),
                want
            );
            assert_eq!(s.recommendations.unwrap().len(), log_len);
        }
    }

    // TestConvertDesiredReplicasWithRules (no behavior): min, max, and max(2 × current, 4).
    #[test]
    fn controller_test_convert_without_behavior() {
        let cases = [
            (5, 7, 3, 8, 7),
            (3, 1, 2, 8, 2),
            (20, 1000, 1, 10, 10),
            (3, 1000, 1, 2000, 6),
            (1, 1000, 1, 2000, 4),
        ];
        for (current, desired, min, max, want) in cases {
            let mut s = HpaState {
                recommendations: Some(Vec::new()),
                ..Default::default()
            };
            let l = limits(min, max, None);
            assert_eq!(
                normalize_without_behavior(&l, &flags(), &mut s, 0.0, current, desired),
                want
            );
        }
    }

    // Item 7: without a behavior block a spike ramps 1 → 4 → 8 (max(2 × current, 4)), where
    // the documented default behavior would allow 1 → 5 (+4 pods).
    #[test]
    fn no_behavior_ramps_by_doubling_with_a_minimum_of_four() {
        let l = limits(1, 100, None);
        let mut s = HpaState::default();
        let f = flags();
        assert_eq!(reconcile(&l, &f, &mut s, 0.0, 1, Some(10)), 4);
        assert_eq!(reconcile(&l, &f, &mut s, 15.0, 4, Some(10)), 8);
        assert_eq!(reconcile(&l, &f, &mut s, 30.0, 8, Some(10)), 10);
        let with_defaults = limits(
            1,
            100,
            Some(Behavior {
                scale_up: Rules::default_scale_up(),
                scale_down: Rules::default_scale_down(),
            }),
        );
        let mut s = HpaState::default();
        assert_eq!(reconcile(&with_defaults, &f, &mut s, 0.0, 1, Some(10)), 5);
    }

    // Item 8: the first reconcile seeds the window with the count it found. 10 idle pods hold
    // for the whole downscale window, then drop.
    #[test]
    fn first_recommendation_seeds_the_window() {
        for behavior in [
            None,
            Some(Behavior {
                scale_up: Rules::default_scale_up(),
                scale_down: Rules::default_scale_down(),
            }),
        ] {
            let l = limits(2, 20, behavior);
            let f = flags();
            let mut s = HpaState::default();
            let mut current = 10;
            let mut t = 0.0;
            while t < 300.0 {
                current = reconcile(&l, &f, &mut s, t, current, Some(2));
                assert_eq!(current, 10, "t={t}");
                t += 15.0;
            }
            assert_eq!(reconcile(&l, &f, &mut s, 300.0, current, Some(2)), 2);
        }
    }

    // The window follows --downscale-stabilization where the HPA does not set one.
    #[test]
    fn downscale_stabilization_flag_sets_the_default_window() {
        let f = ControllerFlags {
            downscale_stabilization_s: 60.0,
            ..flags()
        };
        let l = limits(1, 20, None);
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &f, &mut s, 0.0, 6, Some(1)), 6);
        assert_eq!(reconcile(&l, &f, &mut s, 45.0, 6, Some(1)), 6);
        assert_eq!(reconcile(&l, &f, &mut s, 60.0, 6, Some(1)), 1);
    }

    // Item 8: a target scaled to zero stays there, before min/max are looked at.
    #[test]
    fn scaled_to_zero_is_left_alone() {
        let l = limits(2, 10, None);
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &flags(), &mut s, 0.0, 0, Some(5)), 0);
        // With minReplicas 0 (HPAScaleToZero) the HPA does act on it.
        let l = limits(0, 10, None);
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &flags(), &mut s, 0.0, 0, Some(3)), 3);
        // Outside min/max: brought back in, whatever the metrics say.
        let l = limits(2, 5, None);
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &flags(), &mut s, 0.0, 9, None), 5);
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &flags(), &mut s, 0.0, 1, None), 2);
        // No valid proposal inside min/max: no change.
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &flags(), &mut s, 0.0, 3, None), 3);
    }

    // "Scaling policies" example of the docs: Pods 4 / 60 s and Percent 10 / 60 s on
    // scale-down, 80 → 10 pods.
    #[test]
    fn policy_example_percent_and_pods() {
        let down = Rules {
            stabilization_window_s: Some(0.0),
            policies: vec![
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_s: 60.0,
                },
                Policy {
                    kind: PolicyKind::Percent,
                    value: 10,
                    period_s: 60.0,
                },
            ],
            select: SelectPolicy::Max,
            tolerance: None,
        };
        let b = |d: Rules| {
            Some(Behavior {
                scale_up: Rules::default_scale_up(),
                scale_down: d,
            })
        };
        let l = limits(1, 100, b(down.clone()));
        let mut s = HpaState::default();
        let mut current = 80;
        let mut seen = vec![current];
        for step in 0..12 {
            current = reconcile(&l, &flags(), &mut s, step as f64 * 60.0, current, Some(10));
            seen.push(current);
        }
        assert_eq!(seen, [80, 72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16]);
        // Within one period the allowance is shared.
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &flags(), &mut s, 0.0, 80, Some(10)), 72);
        assert_eq!(reconcile(&l, &flags(), &mut s, 15.0, 72, Some(10)), 72);
        let min = limits(
            1,
            100,
            b(Rules {
                select: SelectPolicy::Min,
                ..down.clone()
            }),
        );
        assert_eq!(normalize_once(&min, 80, 10), 76);
        let disabled = limits(
            1,
            100,
            b(Rules {
                select: SelectPolicy::Disabled,
                ..down
            }),
        );
        assert_eq!(normalize_once(&disabled, 80, 10), 80);
    }

    #[test]
    fn scale_up_stabilization_takes_the_lowest_recent_recommendation() {
        let l = limits(
            1,
            100,
            Some(Behavior {
                scale_up: Rules {
                    stabilization_window_s: Some(60.0),
                    ..Rules::default_scale_up()
                },
                scale_down: Rules::default_scale_down(),
            }),
        );
        let mut s = HpaState::default();
        let f = flags();
        assert_eq!(reconcile(&l, &f, &mut s, 0.0, 3, Some(3)), 3);
        assert_eq!(reconcile(&l, &f, &mut s, 15.0, 3, Some(9)), 3);
        assert_eq!(reconcile(&l, &f, &mut s, 45.0, 3, Some(9)), 3);
        // At 75 s only the 9s are left (and +4 pods or +100 % per 15 s allows 6... of 9).
        assert_eq!(reconcile(&l, &f, &mut s, 75.0, 3, Some(9)), 7);
    }

    // Item 8: scale events are kept per direction as the controller keeps them: a second
    // scale-down after the first one's (scale-down) period reuses its slot, so the first one no
    // longer counts for a longer scale-up period; without a behavior block none are kept.
    #[test]
    fn scale_events_are_kept_per_direction_like_the_controller() {
        let up = Rules {
            stabilization_window_s: Some(0.0),
            policies: vec![Policy {
                kind: PolicyKind::Pods,
                value: 2,
                period_s: 600.0,
            }],
            select: SelectPolicy::Max,
            tolerance: None,
        };
        let down = Rules {
            stabilization_window_s: Some(0.0),
            ..Rules::default_scale_down()
        };
        let l = limits(
            1,
            100,
            Some(Behavior {
                scale_up: up,
                scale_down: down,
            }),
        );
        let f = flags();
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &f, &mut s, 0.0, 10, Some(6)), 6);
        assert_eq!(reconcile(&l, &f, &mut s, 30.0, 6, Some(4)), 4);
        assert_eq!(s.down_events.len(), 1, "the 0 s event's slot was reused");
        // Up: the period start is 4 + 2 (the 30 s scale-down) = 6, +2 pods → 8. Had the 0 s
        // scale-down of 4 been kept, the start would be 10 and the limit 12.
        assert_eq!(reconcile(&l, &f, &mut s, 60.0, 4, Some(20)), 8);
        let l = limits(1, 100, None);
        let mut s = HpaState::default();
        reconcile(&l, &f, &mut s, 0.0, 10, Some(20));
        assert!(s.up_events.is_empty() && s.down_events.is_empty());
    }

    #[test]
    fn per_hpa_tolerance_overrides_the_flag() {
        let f = flags();
        assert_eq!(limits(1, 2, None).tolerances(&f), Tolerances::both(0.1));
        let l = limits(
            1,
            2,
            Some(Behavior {
                scale_up: Rules {
                    tolerance: Some(0.02),
                    ..Rules::default_scale_up()
                },
                scale_down: Rules::default_scale_down(),
            }),
        );
        assert_eq!(
            l.tolerances(&f),
            Tolerances {
                scale_up: 0.02,
                scale_down: 0.1
            }
        );
    }
}

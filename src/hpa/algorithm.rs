//! The Kubernetes HorizontalPodAutoscaler algorithm as pure functions, so a recorded run can be
//! replayed through alternative HPA specs without a cluster.
//!
//! Follows "Horizontal Pod Autoscaling" in the Kubernetes documentation,
//! <https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/>, sections
//! "Algorithm details" (ratio rule, tolerance, missing metrics, not-ready pods, multiple metrics)
//! and "Configurable scaling behavior" ("Scaling policies", "Stabilization window", "Default
//! Behavior"). Where the page is silent (rounding of percent policies, how events inside a policy
//! period are counted, the order of stabilization and rate limits) this follows the controller in
//! kubernetes/kubernetes `pkg/controller/podautoscaler` (horizontal.go, replica_calculator.go),
//! since a replay is only useful if it predicts what the real controller does.

/// One pod as the HPA sees it for one resource metric. `usage` and `request` share a unit
/// (millicores or bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodMetric {
    /// Counted ready by the HPA. Only CPU metrics look at readiness (the controller ignores
    /// readiness for other resources), so callers pass `true` for memory.
    pub ready: bool,
    /// `None`: the metrics API has no sample for this pod.
    pub usage: Option<f64>,
    pub request: f64,
}

/// What one metric aims at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `averageUtilization`: percent of the pods' requests.
    Utilization(f64),
    /// `averageValue`: usage per pod, in the metric's unit.
    AverageValue(f64),
}

/// Tolerance around a ratio of 1.0 within which the HPA does not scale ("Algorithm details":
/// 0.1 by default; per direction since Kubernetes 1.33's `behavior.scaleUp/scaleDown.tolerance`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    pub scale_up: f64,
    pub scale_down: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            scale_up: 0.1,
            scale_down: 0.1,
        }
    }
}

impl Tolerances {
    pub fn within(&self, ratio: f64) -> bool {
        if ratio > 1.0 {
            ratio - 1.0 <= self.scale_up
        } else {
            1.0 - ratio <= self.scale_down
        }
    }
}

/// usage ÷ target over a set of (usage, request) pairs.
fn usage_ratio(pods: &[(f64, f64)], target: Target) -> f64 {
    let usage: f64 = pods.iter().map(|p| p.0).sum();
    match target {
        Target::Utilization(pct) => {
            let requests: f64 = pods.iter().map(|p| p.1).sum();
            if requests <= 0.0 || pct <= 0.0 {
                return 1.0;
            }
            usage * 100.0 / requests / pct
        }
        Target::AverageValue(v) => {
            if pods.is_empty() || v <= 0.0 {
                return 1.0;
            }
            usage / pods.len() as f64 / v
        }
    }
}

/// The replica count one metric proposes ("Algorithm details"):
/// `desiredReplicas = ceil[currentReplicas × currentMetricValue / desiredMetricValue]`, where
/// "currentReplicas" is the pods that have metrics and are ready. Returns `None` when no pod has
/// a metric (the controller then treats the metric as invalid).
///
/// Missing metrics and not-ready pods are handled as the page says: the ratio is first computed
/// without them; then, on a scale-down, pods without metrics are assumed to use 100 % of the
/// target, on a scale-up 0 %; not-ready pods are assumed to use 0 % on a scale-up. If that
/// second look reverses the direction or lands within tolerance, the HPA does not scale.
pub fn replicas_for_metric(
    current: u32,
    pods: &[PodMetric],
    target: Target,
    tol: Tolerances,
) -> Option<u32> {
    let mut with_metrics: Vec<(f64, f64)> = Vec::new();
    let mut missing: Vec<f64> = Vec::new();
    let mut unready: Vec<f64> = Vec::new();
    for p in pods {
        match p.usage {
            None => missing.push(p.request),
            Some(_) if !p.ready => unready.push(p.request),
            Some(u) => with_metrics.push((u, p.request)),
        }
    }
    if with_metrics.is_empty() {
        return None;
    }
    let ratio = usage_ratio(&with_metrics, target);
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if tol.within(ratio) {
            return Some(current);
        }
        return Some((ratio * with_metrics.len() as f64).ceil() as u32);
    }
    // "100 % of the desired value" for a missing pod on scale-down: its request (utilization) or
    // the target value itself (average value).
    let full = |request: f64| match target {
        Target::Utilization(pct) => request * pct / 100.0,
        Target::AverageValue(v) => v,
    };
    let mut all = with_metrics.clone();
    if ratio < 1.0 {
        all.extend(missing.iter().map(|r| (full(*r), *r)));
    } else if ratio > 1.0 {
        all.extend(missing.iter().map(|r| (0.0, *r)));
    }
    if scale_up_with_unready {
        all.extend(unready.iter().map(|r| (0.0, *r)));
    }
    let new_ratio = usage_ratio(&all, target);
    if tol.within(new_ratio) || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Some(current);
    }
    let proposal = (new_ratio * all.len() as f64).ceil() as u32;
    // Never move against the direction the metric points to.
    if (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current) {
        return Some(current);
    }
    Some(proposal)
}

/// "If multiple metrics are specified in a HorizontalPodAutoscaler, this calculation is done for
/// each metric, and then the largest of the desired replica counts is chosen" ("Algorithm
/// details"). Invalid metrics (`None`) are skipped; all invalid means no proposal.
pub fn combine_metrics(proposals: &[Option<u32>]) -> Option<u32> {
    proposals.iter().flatten().copied().max()
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

/// `behavior.scaleUp` or `behavior.scaleDown` with the defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization_window_s: f64,
    pub policies: Vec<Policy>,
    pub select: SelectPolicy,
    pub tolerance: f64,
}

impl Rules {
    /// "Default Behavior": scale up by the larger of 100 % or 4 pods every 15 s, no window.
    pub fn default_scale_up() -> Self {
        Rules {
            stabilization_window_s: 0.0,
            policies: vec![
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_s: 15.0,
                },
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_s: 15.0,
                },
            ],
            select: SelectPolicy::Max,
            tolerance: 0.1,
        }
    }

    /// "Default Behavior": scale down by up to 100 % every 15 s after a 300 s window.
    pub fn default_scale_down() -> Self {
        Rules {
            stabilization_window_s: 300.0,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period_s: 15.0,
            }],
            select: SelectPolicy::Max,
            tolerance: 0.1,
        }
    }
}

/// A replica change the simulated HPA made, for the policies' "per period" accounting.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ScaleEvent {
    t: f64,
    change: u32,
}

/// The controller's memory for one HPA: past recommendations (for stabilization windows) and
/// past scale events (for policies).
#[derive(Debug, Clone, Default)]
pub struct HpaState {
    recommendations: Vec<(f64, u32)>,
    up_events: Vec<ScaleEvent>,
    down_events: Vec<ScaleEvent>,
}

fn changed_within(events: &[ScaleEvent], now: f64, period_s: f64) -> u32 {
    events
        .iter()
        .filter(|e| e.t > now - period_s)
        .map(|e| e.change)
        .sum()
}

/// The highest replica count scale-up policies allow now ("Scaling policies"). The period's
/// starting point is the replica count before this period's changes, so several small steps
/// within a period add up to one policy's allowance.
fn scale_up_limit(current: u32, state: &HpaState, now: f64, rules: &Rules) -> u32 {
    let mut result: Option<i64> = None;
    for p in &rules.policies {
        let start = current as i64 - changed_within(&state.up_events, now, p.period_s) as i64
            + changed_within(&state.down_events, now, p.period_s) as i64;
        let proposed = match p.kind {
            PolicyKind::Pods => start + p.value as i64,
            // Rounded up, or a small deployment could never grow.
            PolicyKind::Percent => (start as f64 * (1.0 + p.value as f64 / 100.0)).ceil() as i64,
        };
        result = Some(match (result, rules.select) {
            (None, _) => proposed,
            (Some(r), SelectPolicy::Min) => r.min(proposed),
            (Some(r), _) => r.max(proposed),
        });
    }
    result.unwrap_or(current as i64).max(0) as u32
}

/// The lowest replica count scale-down policies allow now ("Scaling policies").
fn scale_down_limit(current: u32, state: &HpaState, now: f64, rules: &Rules) -> u32 {
    let mut result: Option<i64> = None;
    for p in &rules.policies {
        let start = current as i64 - changed_within(&state.up_events, now, p.period_s) as i64
            + changed_within(&state.down_events, now, p.period_s) as i64;
        let proposed = match p.kind {
            PolicyKind::Pods => start - p.value as i64,
            // Truncated: the change is rounded up (72 pods − 10 % → 64).
            PolicyKind::Percent => (start as f64 * (1.0 - p.value as f64 / 100.0)) as i64,
        };
        result = Some(match (result, rules.select) {
            (None, _) => proposed,
            (Some(r), SelectPolicy::Min) => r.max(proposed),
            (Some(r), _) => r.min(proposed),
        });
    }
    result.unwrap_or(current as i64).max(0) as u32
}

/// The HPA's fixed parameters for a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub scale_up: Rules,
    pub scale_down: Rules,
}

/// One reconcile of the controller: from the metrics' proposal to the replica count it sets.
/// `proposal` is `None` when no metric was valid (the controller then leaves the count alone).
///
/// Order as in the controller: min/max first when the current count is outside them; then the
/// stabilization windows ("Stabilization window": scale-down takes the highest recommendation
/// of the window, scale-up the lowest), then the rate limits of the policies, clamped to
/// min/max.
pub fn reconcile(
    limits: &Limits,
    state: &mut HpaState,
    now: f64,
    current: u32,
    proposal: Option<u32>,
) -> u32 {
    let desired = if current > limits.max_replicas {
        limits.max_replicas
    } else if current < limits.min_replicas {
        limits.min_replicas
    } else if current == 0 {
        // Scaled to zero by hand: the HPA is off ("Implicit maintenance-mode deactivation").
        0
    } else if let Some(raw) = proposal {
        let stabilized = stabilize(limits, state, now, current, raw);
        rate_limit(limits, state, now, current, stabilized)
    } else {
        current
    };
    if desired > current {
        state.up_events.push(ScaleEvent {
            t: now,
            change: desired - current,
        });
    } else if desired < current {
        state.down_events.push(ScaleEvent {
            t: now,
            change: current - desired,
        });
    }
    // Old events and recommendations can no longer matter: keep the state bounded.
    let horizon = limits
        .scale_up
        .policies
        .iter()
        .chain(&limits.scale_down.policies)
        .map(|p| p.period_s)
        .chain([
            limits.scale_up.stabilization_window_s,
            limits.scale_down.stabilization_window_s,
        ])
        .fold(0.0, f64::max);
    state.up_events.retain(|e| e.t > now - horizon);
    state.down_events.retain(|e| e.t > now - horizon);
    state.recommendations.retain(|r| r.0 > now - horizon);
    desired
}

fn stabilize(limits: &Limits, state: &mut HpaState, now: f64, current: u32, raw: u32) -> u32 {
    let up_cutoff = now - limits.scale_up.stabilization_window_s;
    let down_cutoff = now - limits.scale_down.stabilization_window_s;
    let mut up = raw;
    let mut down = raw;
    for &(t, rec) in &state.recommendations {
        if t > up_cutoff {
            up = up.min(rec);
        }
        if t > down_cutoff {
            down = down.max(rec);
        }
    }
    state.recommendations.push((now, raw));
    current.max(up).min(down)
}

fn rate_limit(limits: &Limits, state: &HpaState, now: f64, current: u32, desired: u32) -> u32 {
    if desired > current {
        let allowed = if limits.scale_up.select == SelectPolicy::Disabled {
            current
        } else {
            scale_up_limit(current, state, now, &limits.scale_up).max(current)
        };
        desired.min(allowed.min(limits.max_replicas))
    } else if desired < current {
        let allowed = if limits.scale_down.select == SelectPolicy::Disabled {
            current
        } else {
            scale_down_limit(current, state, now, &limits.scale_down).min(current)
        };
        desired.max(allowed.max(limits.min_replicas))
    } else {
        desired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(n: usize, usage_m: f64, request_m: f64) -> Vec<PodMetric> {
        vec![
            PodMetric {
                ready: true,
                usage: Some(usage_m),
                request: request_m,
            };
            n
        ]
    }

    const TOL: Tolerances = Tolerances {
        scale_up: 0.1,
        scale_down: 0.1,
    };

    // "Algorithm details": "if the current metric value is 200m, and the desired value is 100m,
    // the number of replicas will be doubled, since 200.0 / 100.0 == 2.0".
    #[test]
    fn doc_example_200m_over_100m_doubles() {
        let p = pods(3, 200.0, 1000.0);
        assert_eq!(
            replicas_for_metric(3, &p, Target::AverageValue(100.0), TOL),
            Some(6)
        );
        // The same as utilization: 20 % of a 1000m request against a 10 % target.
        assert_eq!(
            replicas_for_metric(3, &p, Target::Utilization(10.0), TOL),
            Some(6)
        );
    }

    // "If the current value is instead 50m, you'll halve the number of replicas, since
    // 50.0 / 100.0 == 0.5".
    #[test]
    fn doc_example_50m_over_100m_halves() {
        assert_eq!(
            replicas_for_metric(4, &pods(4, 50.0, 1000.0), Target::AverageValue(100.0), TOL),
            Some(2)
        );
    }

    // "The control plane skips any scaling action if the ratio is sufficiently close to 1.0
    // (within a globally-configurable tolerance, 0.1 by default)."
    #[test]
    fn doc_tolerance_skips_small_ratios() {
        let t = Target::AverageValue(100.0);
        // 109m / 100m = 1.09: within tolerance, although ceil(10 × 1.09) would be 11.
        assert_eq!(
            replicas_for_metric(10, &pods(10, 109.0, 1.0), t, TOL),
            Some(10)
        );
        assert_eq!(
            replicas_for_metric(10, &pods(10, 91.0, 1.0), t, TOL),
            Some(10)
        );
        // 1.11 is outside: ceil(10 × 1.11) = 12.
        assert_eq!(
            replicas_for_metric(10, &pods(10, 111.0, 1.0), t, TOL),
            Some(12)
        );
    }

    #[test]
    fn missing_metrics_count_as_full_on_scale_down_and_zero_on_scale_up() {
        let t = Target::Utilization(50.0);
        // Two pods at 10 % (ratio 0.2) and two without metrics: on a scale-down the missing ones
        // count as 100 % of the target → (10+10+50+50)/4 = 30 % → ratio 0.6 → ceil(2.4) = 3,
        // a more cautious step than the 1 the measured pods alone suggest.
        let mut p = pods(2, 100.0, 1000.0);
        p.extend(vec![
            PodMetric {
                ready: true,
                usage: None,
                request: 1000.0
            };
            2
        ]);
        assert_eq!(replicas_for_metric(4, &p, t, TOL), Some(3));
        // Two pods at 100 % (ratio 2.0), two missing: they count as 0 % → 50 % average → ratio
        // 1.0 → within tolerance: no scale-up on half the information.
        let mut p = pods(2, 1000.0, 1000.0);
        p.extend(vec![
            PodMetric {
                ready: true,
                usage: None,
                request: 1000.0
            };
            2
        ]);
        assert_eq!(replicas_for_metric(4, &p, t, TOL), Some(4));
    }

    #[test]
    fn not_ready_pods_count_as_zero_on_scale_up_only() {
        let t = Target::Utilization(50.0);
        // 3 ready pods at 80 % (ratio 1.6) and 1 starting pod.
        let mut p = pods(3, 800.0, 1000.0);
        p.push(PodMetric {
            ready: false,
            usage: Some(900.0),
            request: 1000.0,
        });
        // With the unready pod at 0 %: 2400 / 4000 = 60 % → ratio 1.2 → ceil(4.8) = 5.
        assert_eq!(replicas_for_metric(4, &p, t, TOL), Some(5));
        let mut p = pods(3, 700.0, 1000.0); // 70 % → ratio 1.4
        p.push(PodMetric {
            ready: false,
            usage: Some(900.0),
            request: 1000.0,
        });
        // 2100 / 4000 = 52.5 % → ratio 1.05: within tolerance, no scale-up yet.
        assert_eq!(replicas_for_metric(4, &p, t, TOL), Some(4));
        // On a scale-down the unready pod is simply left out: 3 pods at 10 % → ceil(3 × 0.2) = 1.
        let mut p = pods(3, 100.0, 1000.0);
        p.push(PodMetric {
            ready: false,
            usage: Some(900.0),
            request: 1000.0,
        });
        assert_eq!(replicas_for_metric(4, &p, t, TOL), Some(1));
    }

    #[test]
    fn no_metrics_at_all_is_no_proposal_and_multiple_metrics_take_the_max() {
        let p = vec![PodMetric {
            ready: true,
            usage: None,
            request: 1.0,
        }];
        assert_eq!(
            replicas_for_metric(2, &p, Target::Utilization(50.0), TOL),
            None
        );
        assert_eq!(combine_metrics(&[Some(3), None, Some(7), Some(5)]), Some(7));
        assert_eq!(combine_metrics(&[None, None]), None);
    }

    fn limits(up: Rules, down: Rules) -> Limits {
        Limits {
            min_replicas: 1,
            max_replicas: 100,
            scale_up: up,
            scale_down: down,
        }
    }

    #[test]
    fn min_and_max_clamp() {
        let l = Limits {
            min_replicas: 2,
            max_replicas: 5,
            ..limits(Rules::default_scale_up(), Rules::default_scale_down())
        };
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &mut s, 0.0, 4, Some(50)), 5);
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &mut s, 0.0, 9, Some(9)), 5);
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &mut s, 0.0, 1, Some(1)), 2);
        let l = Limits {
            scale_down: Rules {
                stabilization_window_s: 0.0,
                ..Rules::default_scale_down()
            },
            ..l
        };
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &mut s, 0.0, 4, Some(1)), 2);
    }

    // "Stabilization window": "When the metrics indicate that the target should be scaled down
    // the algorithm looks into previously computed desired states, and uses the highest value from
    // the specified interval." With the default 300 s window, a dip does not remove pods until it
    // has lasted 300 s.
    #[test]
    fn doc_stabilization_window_uses_the_highest_recent_recommendation() {
        let l = limits(Rules::default_scale_up(), Rules::default_scale_down());
        let mut s = HpaState::default();
        let mut current = 10;
        // Load asks for 10, then drops to a recommendation of 4 at t = 60.
        current = reconcile(&l, &mut s, 0.0, current, Some(10));
        current = reconcile(&l, &mut s, 30.0, current, Some(8));
        assert_eq!(current, 10);
        let mut t = 60.0;
        while t < 300.0 {
            current = reconcile(&l, &mut s, t, current, Some(4));
            t += 15.0;
        }
        // At 285 s the recommendation of 10 (made at 0 s) is still inside the 300 s window.
        assert_eq!(current, 10);
        // At 315 s the 10 has left the window, the 8 from 30 s has not.
        current = reconcile(&l, &mut s, 315.0, current, Some(4));
        assert_eq!(current, 8);
        // At 330 s only the 4s are left, and the default policy (100 % per 15 s) allows the drop.
        current = reconcile(&l, &mut s, 330.0, current, Some(4));
        assert_eq!(current, 4);
    }

    #[test]
    fn scale_up_is_immediate_by_default_but_limited_by_policy() {
        let l = limits(Rules::default_scale_up(), Rules::default_scale_down());
        let mut s = HpaState::default();
        // From 2: max(100 % → 4, +4 pods → 6) = 6 in the first 15 s.
        assert_eq!(reconcile(&l, &mut s, 0.0, 2, Some(20)), 6);
        // Next period: from 6, max(12, 10) = 12.
        assert_eq!(reconcile(&l, &mut s, 15.0, 6, Some(20)), 12);
        assert_eq!(reconcile(&l, &mut s, 30.0, 12, Some(20)), 20);
    }

    // "Scaling policies": with Pods 4 / 60 s and Percent 10 / 60 s on scale-down, "if there are
    // 80 replicas and the target has to be scaled down to 10 replicas then during the first step
    // 8 replicas will be reduced. In the next iteration when the number of replicas is 72, 10% of
    // the pods is 7.2 but the number is rounded up to 8. [...] When the number of replicas falls
    // below 40 the first policy (Pods) is applied and 4 replicas will be reduced at a time."
    #[test]
    fn doc_policy_example_percent_and_pods() {
        let down = Rules {
            stabilization_window_s: 0.0,
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
            tolerance: 0.1,
        };
        let l = limits(Rules::default_scale_up(), down.clone());
        let mut s = HpaState::default();
        let mut current = 80;
        let mut seen = vec![current];
        for step in 0..12 {
            current = reconcile(&l, &mut s, step as f64 * 60.0, current, Some(10));
            seen.push(current);
        }
        assert_eq!(seen, [80, 72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16]);
        // Within one period the allowance is shared: a second reconcile 15 s later cannot remove
        // more.
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &mut s, 0.0, 80, Some(10)), 72);
        assert_eq!(reconcile(&l, &mut s, 15.0, 72, Some(10)), 72);
        // selectPolicy Min: the smaller change (4 pods) wins while 10 % is bigger.
        let l = limits(
            Rules::default_scale_up(),
            Rules {
                select: SelectPolicy::Min,
                ..down.clone()
            },
        );
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &mut s, 0.0, 80, Some(10)), 76);
        // Disabled: no scale-down at all.
        let l = limits(
            Rules::default_scale_up(),
            Rules {
                select: SelectPolicy::Disabled,
                ..down
            },
        );
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &mut s, 0.0, 80, Some(10)), 80);
    }

    #[test]
    fn scale_up_stabilization_takes_the_lowest_recent_recommendation() {
        let up = Rules {
            stabilization_window_s: 60.0,
            ..Rules::default_scale_up()
        };
        let l = limits(up, Rules::default_scale_down());
        let mut s = HpaState::default();
        assert_eq!(reconcile(&l, &mut s, 0.0, 3, Some(3)), 3);
        // A spike to 9 is not acted on while 3 is in the window.
        assert_eq!(reconcile(&l, &mut s, 15.0, 3, Some(9)), 3);
        assert_eq!(reconcile(&l, &mut s, 45.0, 3, Some(9)), 3);
        // At 75 s only the 9s are left.
        assert_eq!(reconcile(&l, &mut s, 75.0, 3, Some(9)), 7);
    }
}

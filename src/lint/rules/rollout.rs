//! A rollout must not be allowed to take every replica down at once.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{ObjectSet, Workload};

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in set.workloads() {
        match w.obj.kind {
            "Deployment" => deployment(set, &w, &mut out),
            "StatefulSet" => statefulset(set, &w, &mut out),
            _ => {}
        }
    }
    out
}

/// With an HPA the live replica count is the HPA's business and can sink to
/// its minReplicas, so that is the number a rollout must survive.
fn effective_replicas(set: &ObjectSet<'_>, w: &Workload<'_>) -> (i64, &'static str) {
    let hpa_min = set
        .hpas_targeting(w)
        .iter()
        .map(|h| {
            h.at("/spec/minReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        })
        .min();
    match hpa_min {
        Some(m) => (m, "the HPA's minReplicas"),
        None => (w.replicas(), "replicas"),
    }
}

fn deployment(set: &ObjectSet<'_>, w: &Workload<'_>, out: &mut Vec<Finding>) {
    let (replicas, what) = effective_replicas(set, w);
    let kind = w
        .obj
        .at("/spec/strategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    if kind == "Recreate" {
        out.push(w.obj.finding(
            "rollout-can-take-all-down",
            Severity::Warning,
            "strategy Recreate stops every pod before starting new ones: every rollout is an outage; use RollingUpdate with maxUnavailable 0 and maxSurge 1".into(),
        ));
        return;
    }
    let ru = w.obj.at("/spec/strategy/rollingUpdate");
    let raw = ru.and_then(|r| r.get("maxUnavailable"));
    let max_unavailable = resolve(raw, replicas, false).unwrap_or(0);
    if replicas > 0 && max_unavailable >= replicas {
        let shown = raw
            .map(|v| v.to_string())
            .unwrap_or_else(|| "\"25%\"".into());
        out.push(w.obj.finding(
            "rollout-can-take-all-down",
            Severity::Error,
            format!(
                "rollingUpdate.maxUnavailable {shown} resolves to {max_unavailable} with {what} {replicas}: a rollout may stop every pod at once; set maxUnavailable: 0 and maxSurge: 1 (or run more replicas)"
            ),
        ));
    }
}

fn statefulset(set: &ObjectSet<'_>, w: &Workload<'_>, out: &mut Vec<Finding>) {
    let (replicas, what) = effective_replicas(set, w);
    if w.obj
        .at("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
    {
        return; // rollouts are manual
    }
    let raw = w
        .obj
        .at("/spec/updateStrategy/rollingUpdate/maxUnavailable");
    // StatefulSets stop a pod before replacing it; the default is one at a time.
    let max_unavailable = if raw.is_some() {
        resolve(raw, replicas, false).unwrap_or(1)
    } else {
        1
    };
    if replicas > 0 && max_unavailable >= replicas {
        out.push(w.obj.finding(
            "rollout-can-take-all-down",
            Severity::Warning,
            format!(
                "a StatefulSet replaces pods by stopping them first; with {what} {replicas} and maxUnavailable {max_unavailable} every rollout stops all pods; run more replicas"
            ),
        ));
    }
}

/// Resolves an IntOrString against `replicas` as the Deployment controller
/// does: maxUnavailable rounds percentages down, maxSurge rounds up.
pub fn resolve(v: Option<&Value>, replicas: i64, round_up: bool) -> Option<i64> {
    let v = match v {
        None => {
            return Some(if round_up {
                (replicas * 25 + 99) / 100
            } else {
                replicas * 25 / 100
            });
        }
        Some(v) => v,
    };
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let s = v.as_str()?;
    if let Some(p) = s.strip_suffix('%') {
        let p: i64 = p.trim().parse().ok()?;
        let scaled = replicas * p;
        return Some(if round_up {
            (scaled + 99) / 100
        } else {
            scaled / 100
        });
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use crate::lint::test_support::*;
    use serde_json::json;

    fn deploy(replicas: i64, strategy: &str) -> String {
        format!(
            "
kind: Deployment
metadata: {{name: d}}
spec:
  replicas: {replicas}
  strategy: {strategy}
  template:
    metadata: {{labels: {{app: d}}}}
    spec: {{containers: [{{name: c}}]}}
"
        )
    }

    #[test]
    fn percentages_round_like_the_controller() {
        assert_eq!(resolve(Some(&json!("25%")), 3, false), Some(0));
        assert_eq!(resolve(Some(&json!("25%")), 3, true), Some(1));
        assert_eq!(resolve(Some(&json!("50%")), 4, false), Some(2));
        assert_eq!(resolve(None, 1, false), Some(0));
        assert_eq!(resolve(Some(&json!(1)), 1, false), Some(1));
    }

    #[test]
    fn max_unavailable_equal_to_replicas() {
        let y = deploy(
            1,
            "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}",
        );
        assert_eq!(rules_of(&lint_yaml(&y)), vec!["rollout-can-take-all-down"]);
        let y = deploy(2, "{rollingUpdate: {maxUnavailable: \"100%\"}}");
        assert!(has(&y, "rollout-can-take-all-down"));
    }

    #[test]
    fn safe_rollouts() {
        assert!(
            lint_yaml(&deploy(
                1,
                "{rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}"
            ))
            .is_empty()
        );
        assert!(lint_yaml(&deploy(3, "{rollingUpdate: {maxUnavailable: 1}}")).is_empty());
        assert!(lint_yaml(&deploy(1, "{}")).is_empty()); // defaults: 25% rounds to 0
    }

    #[test]
    fn recreate() {
        assert!(has(
            &deploy(3, "{type: Recreate}"),
            "rollout-can-take-all-down"
        ));
    }

    #[test]
    fn hpa_min_replicas_is_what_counts() {
        let y = format!(
            "{}---\nkind: HorizontalPodAutoscaler\nmetadata: {{name: h}}\nspec: {{scaleTargetRef: {{kind: Deployment, name: d}}, minReplicas: 1, maxReplicas: 4}}\n",
            deploy(3, "{rollingUpdate: {maxUnavailable: 1}}")
        );
        assert!(has(&y, "rollout-can-take-all-down"));
    }
}

//! HorizontalPodAutoscaler sanity: the target exists, replica bounds make
//! sense, and Utilization targets are computable and not trivially exceeded.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{Obj, ObjectSet, Workload, array};

/// Below this, normal idle usage already exceeds the target and the HPA
/// scales straight to maxReplicas.
const MIN_SENSIBLE_UTILIZATION: i64 = 10;

/// A Utilization target read from any HPA API version.
struct UtilTarget {
    resource: String,
    /// `Some` for `ContainerResource` metrics: only that container counts.
    container: Option<String>,
    percent: i64,
}

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for hpa in set.of_kind("HorizontalPodAutoscaler") {
        let min = hpa
            .at("/spec/minReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        if let Some(max) = hpa.at("/spec/maxReplicas").and_then(Value::as_i64)
            && min > max
        {
            out.push(hpa.finding(
                "hpa-min-gt-max",
                Severity::Error,
                format!("minReplicas {min} is greater than maxReplicas {max}; the API server rejects this: lower minReplicas or raise maxReplicas"),
            ));
        }

        let targets = util_targets(&hpa);
        for t in &targets {
            if t.percent < MIN_SENSIBLE_UTILIZATION {
                out.push(hpa.finding(
                    "hpa-target-too-low",
                    Severity::Error,
                    format!(
                        "{} averageUtilization is {} % of the request: any running pod exceeds that, so the HPA scales to maxReplicas at once; use a realistic target (e.g. 60-80)",
                        t.resource, t.percent
                    ),
                ));
            }
        }

        let kind = hpa
            .at("/spec/scaleTargetRef/kind")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = hpa
            .at("/spec/scaleTargetRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(target) = set.workload(kind, &hpa, name) else {
            out.push(hpa.finding(
                "hpa-target-missing",
                Severity::Error,
                format!("scaleTargetRef {kind}/{name} is not in this set (same namespace); fix scaleTargetRef or add the workload"),
            ));
            continue;
        };
        for t in &targets {
            if let Some(want) = &t.container
                && !target
                    .containers()
                    .any(|c| c.get("name").and_then(Value::as_str) == Some(want.as_str()))
            {
                let have: Vec<&str> = target
                    .containers()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .collect();
                out.push(hpa.finding(
                    "hpa-container-unknown",
                    Severity::Error,
                    format!(
                        "ContainerResource {} names container \"{want}\", which {} does not have (its containers: {have:?}); the HPA gets no metric and never scales: name one of them",
                        t.resource,
                        target.obj.id()
                    ),
                ));
                continue;
            }
            for cname in containers_without_request(set, &target, t) {
                out.push(hpa.finding(
                    "hpa-resource-without-request",
                    Severity::Error,
                    format!(
                        "{} Utilization needs a {} request on every container of {}, but container \"{cname}\" has neither requests.{} nor limits.{} (limits alone default the request) and no LimitRange here defaults it; the HPA cannot compute utilization: set resources.requests.{}",
                        t.resource, t.resource, target.obj.id(), t.resource, t.resource, t.resource
                    ),
                ));
            }
        }
    }
    out
}

fn util_targets(hpa: &Obj<'_>) -> Vec<UtilTarget> {
    let mut v = Vec::new();
    // autoscaling/v1
    if let Some(p) = hpa
        .at("/spec/targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    {
        v.push(UtilTarget {
            resource: "cpu".into(),
            container: None,
            percent: p,
        });
    }
    for m in array(hpa.at("/spec/metrics")) {
        let (src, container) = match m.get("type").and_then(Value::as_str) {
            Some("Resource") => (m.get("resource"), None),
            Some("ContainerResource") => {
                let c = m
                    .pointer("/containerResource/container")
                    .and_then(Value::as_str);
                (m.get("containerResource"), c.map(String::from))
            }
            _ => continue,
        };
        let Some(src) = src else { continue };
        let resource = src
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // v2 / v2beta2: target.{type: Utilization, averageUtilization}; v2beta1: targetAverageUtilization.
        let percent = if src.pointer("/target/type").and_then(Value::as_str) == Some("Utilization")
        {
            src.pointer("/target/averageUtilization")
                .and_then(Value::as_i64)
        } else {
            src.get("targetAverageUtilization").and_then(Value::as_i64)
        };
        if let Some(percent) = percent {
            v.push(UtilTarget {
                resource,
                container,
                percent,
            });
        }
    }
    v
}

/// Kubernetes defaults a container's request to its limit when only the
/// limit is set, and a LimitRange can default it too; only a container with
/// none of these really lacks the request.
fn containers_without_request(
    set: &ObjectSet<'_>,
    w: &Workload<'_>,
    t: &UtilTarget,
) -> Vec<String> {
    let res = t.resource.as_str();
    let limitrange_defaults = set.of_kind("LimitRange").any(|lr| {
        lr.same_namespace(&w.obj)
            && array(lr.at("/spec/limits")).any(|l| {
                l.get("type").and_then(Value::as_str) == Some("Container")
                    && (l.pointer(&format!("/defaultRequest/{res}")).is_some()
                        || l.pointer(&format!("/default/{res}")).is_some())
            })
    });
    if limitrange_defaults {
        return Vec::new();
    }
    w.containers()
        .filter(|c| {
            let name = c.get("name").and_then(Value::as_str);
            t.container.as_deref().is_none_or(|want| name == Some(want))
        })
        .filter(|c| {
            c.pointer(&format!("/resources/requests/{res}")).is_none()
                && c.pointer(&format!("/resources/limits/{res}")).is_none()
        })
        .map(|c| {
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::lint::test_support::*;

    fn set(resources: &str, hpa_spec: &str) -> String {
        format!(
            "
kind: Deployment
metadata: {{name: d, namespace: n}}
spec:
  template:
    metadata: {{labels: {{app: d}}}}
    spec:
      containers:
      - name: c
        resources: {resources}
        readinessProbe: {{exec: {{command: [true]}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: h, namespace: n}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: d}}
{hpa_spec}
"
        )
    }

    const MEM70: &str = "  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: memory, target: {type: Utilization, averageUtilization: 70}}";

    #[test]
    fn clean() {
        assert!(lint_yaml(&set("{requests: {memory: 64Mi}}", MEM70)).is_empty());
    }

    #[test]
    fn limits_alone_default_the_request() {
        assert!(lint_yaml(&set("{limits: {memory: 64Mi}}", MEM70)).is_empty());
    }

    #[test]
    fn missing_request() {
        let f = lint_yaml(&set("{requests: {cpu: 100m}}", MEM70));
        assert_eq!(rules_of(&f), vec!["hpa-resource-without-request"]);
    }

    #[test]
    fn limitrange_default_counts() {
        let y = format!(
            "{}\n---\nkind: LimitRange\nmetadata: {{name: l, namespace: n}}\nspec:\n  limits: [{{type: Container, defaultRequest: {{memory: 32Mi}}}}]\n",
            set("{}", MEM70)
        );
        assert!(lint_yaml(&y).is_empty());
    }

    #[test]
    fn min_gt_max() {
        let spec = MEM70.replace("minReplicas: 2", "minReplicas: 7");
        assert_eq!(
            rules_of(&lint_yaml(&set("{requests: {memory: 1Mi}}", &spec))),
            vec!["hpa-min-gt-max"]
        );
    }

    #[test]
    fn too_low() {
        let spec = MEM70.replace("averageUtilization: 70", "averageUtilization: 1");
        assert_eq!(
            rules_of(&lint_yaml(&set("{requests: {memory: 1Mi}}", &spec))),
            vec!["hpa-target-too-low"]
        );
        let v1 = "  maxReplicas: 3\n  targetCPUUtilizationPercentage: 5";
        assert!(has(&set("{requests: {cpu: 1}}", v1), "hpa-target-too-low"));
    }

    #[test]
    fn container_resource_names_a_missing_container() {
        let spec = "  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: ContainerResource
    containerResource: {name: cpu, container: NAME, target: {type: Utilization, averageUtilization: 60}}";
        let ok = set("{requests: {cpu: 100m}}", &spec.replace("NAME", "c"));
        assert!(lint_yaml(&ok).is_empty(), "{:?}", lint_yaml(&ok));
        let bad = set("{requests: {cpu: 100m}}", &spec.replace("NAME", "xiu"));
        assert_eq!(rules_of(&lint_yaml(&bad)), vec!["hpa-container-unknown"]);
    }

    #[test]
    fn target_missing() {
        let y = set("{requests: {memory: 1Mi}}", MEM70)
            .replace("kind: Deployment, name: d", "kind: Deployment, name: nope");
        assert_eq!(rules_of(&lint_yaml(&y)), vec!["hpa-target-missing"]);
    }
}

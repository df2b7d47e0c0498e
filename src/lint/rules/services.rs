//! Services and PDBs must select pods that exist, and Service target ports
//! must be ports those pods declare.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{
    Obj, ObjectSet, PortRef, Workload, array, container_declares, format_labels,
    label_selector_matches, labels_match,
};

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for svc in set.of_kind("Service") {
        // Selector-less Services (manual Endpoints) and ExternalName ones
        // select nothing by design.
        let Some(sel) = svc.at("/spec/selector").and_then(Value::as_object) else {
            continue;
        };
        if sel.is_empty() {
            continue;
        }
        let matched = set.selected_by(&svc, |l| labels_match(sel, l));
        if matched.is_empty() {
            out.push(svc.finding(
                "service-selector-no-match",
                Severity::Error,
                format!(
                    "spec.selector {} matches no pod template in this set, so the Service has no endpoints ({}); make the selector a subset of the pod template's labels",
                    format_labels(Some(sel)),
                    templates(set, &svc)
                ),
            ));
            continue;
        }
        for port in array(svc.at("/spec/ports")) {
            let Some(target) = port
                .get("targetPort")
                .or_else(|| port.get("port"))
                .and_then(PortRef::from_value)
            else {
                continue;
            };
            if let Some(f) = target_port_finding(&matched, &target) {
                out.push(svc.finding("service-target-port-unknown", f.0, f.1));
            }
        }
    }

    for pdb in set.of_kind("PodDisruptionBudget") {
        let sel = pdb.at("/spec/selector").cloned().unwrap_or(Value::Null);
        if !sel.is_object() {
            continue;
        }
        if set
            .selected_by(&pdb, |l| label_selector_matches(&sel, l))
            .is_empty()
        {
            out.push(pdb.finding(
                "pdb-selector-no-match",
                Severity::Error,
                format!(
                    "spec.selector matches no pod template in this set, so the budget protects nothing ({}); fix spec.selector.matchLabels",
                    templates(set, &pdb)
                ),
            ));
        }
    }
    out
}

/// Lists the pod templates near `obj`, so a no-match message shows what
/// the selector could have matched.
fn templates(set: &ObjectSet<'_>, near: &Obj<'_>) -> String {
    let list: Vec<String> = set
        .workloads()
        .filter(|w| w.obj.same_namespace(near))
        .map(|w| format!("{} {}", w.obj.id(), format_labels(w.labels)))
        .collect();
    if list.is_empty() {
        "no pod templates in this namespace".to_string()
    } else {
        format!("pod templates here: {}", list.join("; "))
    }
}

/// A named targetPort that no selected pod declares never resolves (no
/// endpoints: an error). A number that no container declares still routes
/// if something listens there, since `containerPort` is informational, so it
/// is only a warning.
fn target_port_finding(matched: &[Workload<'_>], target: &PortRef) -> Option<(Severity, String)> {
    let declared = matched.iter().any(|w| {
        w.serving_containers()
            .any(|c| container_declares(c, target))
    });
    if declared {
        return None;
    }
    let pods: Vec<String> = matched.iter().map(|w| w.obj.id()).collect();
    Some(match target {
        PortRef::Name(_) => (
            Severity::Error,
            format!(
                "targetPort {target} is not the name of any container port of the selected pods ({}); name the container port or use its number",
                pods.join(", ")
            ),
        ),
        PortRef::Number(_) => (
            Severity::Warning,
            format!(
                "targetPort {target} is not a containerPort of the selected pods ({}); declare it or point targetPort at the port the container listens on",
                pods.join(", ")
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::lint::test_support::*;

    const DEPLOY: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ns}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: a}}
    spec:
      containers:
      - name: c
        image: x
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: http}}
";

    fn svc(selector: &str, target: &str) -> String {
        format!(
            "{DEPLOY}---
kind: Service
metadata: {{name: s, namespace: ns}}
spec:
  selector: {selector}
  ports: [{{port: 80, targetPort: {target}}}]
"
        )
    }

    #[test]
    fn selector_matches() {
        assert!(lint_yaml(&svc("{app: web}", "http")).is_empty());
        assert!(lint_yaml(&svc("{app: web}", "8080")).is_empty());
    }

    #[test]
    fn selector_no_match() {
        let f = lint_yaml(&svc("{app: other}", "http"));
        assert_eq!(rules_of(&f), vec!["service-selector-no-match"]);
        assert!(f[0].message.contains("app=other"));
    }

    #[test]
    fn other_namespace_does_not_match() {
        let y = svc("{app: web}", "http")
            .replace("name: s, namespace: ns", "name: s, namespace: other");
        assert!(has(&y, "service-selector-no-match"));
    }

    #[test]
    fn missing_namespace_counts_as_same() {
        let y = svc("{app: web}", "http").replace("name: s, namespace: ns", "name: s");
        assert!(lint_yaml(&y).is_empty());
    }

    #[test]
    fn named_target_port_unknown_is_error() {
        let f = lint_yaml(&svc("{app: web}", "grpc"));
        assert_eq!(rules_of(&f), vec!["service-target-port-unknown"]);
        assert_eq!(f[0].severity, crate::lint::Severity::Error);
    }

    #[test]
    fn numeric_target_port_unknown_is_warning() {
        let f = lint_yaml(&svc("{app: web}", "9999"));
        assert_eq!(rules_of(&f), vec!["service-target-port-unknown"]);
        assert_eq!(f[0].severity, crate::lint::Severity::Warning);
    }

    #[test]
    fn pdb_selector() {
        let pdb = |sel: &str| {
            format!(
                "{DEPLOY}---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: p, namespace: ns}}
spec: {{minAvailable: 1, selector: {sel}}}
"
            )
        };
        assert!(!has(
            &pdb("{matchLabels: {app: web}}"),
            "pdb-selector-no-match"
        ));
        assert!(has(
            &pdb("{matchLabels: {app: nope}}"),
            "pdb-selector-no-match"
        ));
        assert!(has(
            &pdb("{matchExpressions: [{key: tier, operator: In, values: [b]}]}"),
            "pdb-selector-no-match"
        ));
    }
}

//! Serving containers of Deployments and StatefulSets need a readinessProbe.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{ObjectSet, array};

/// Decision: a container that declares no ports is exempt. It receives no
/// Service traffic, so its readiness gates nothing useful, and a pod is Ready
/// only when every container is, so such helpers (log shippers, the xiuload
/// sidecar when it exposes nothing) would otherwise need a fake probe.
/// Init containers (native sidecars included) are not checked.
pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in set.workloads() {
        if !matches!(w.obj.kind, "Deployment" | "StatefulSet") {
            continue;
        }
        for c in w.containers() {
            let has_ports = array(c.get("ports")).next().is_some();
            if has_ports && c.get("readinessProbe").is_none() {
                let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
                out.push(w.obj.finding(
                    "no-readiness-probe",
                    Severity::Warning,
                    format!(
                        "container \"{name}\" declares ports but has no readinessProbe: Services send it traffic as soon as it starts and keep doing so when it stops serving; add one"
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::lint::test_support::*;

    fn deploy(container: &str) -> String {
        format!(
            "kind: Deployment\nmetadata: {{name: d}}\nspec:\n  template:\n    metadata: {{labels: {{a: b}}}}\n    spec:\n      containers: [{container}]\n"
        )
    }

    #[test]
    fn serving_container_without_probe() {
        assert!(has(
            &deploy("{name: c, ports: [{containerPort: 80}]}"),
            "no-readiness-probe"
        ));
    }

    #[test]
    fn with_probe_or_without_ports() {
        assert!(
            lint_yaml(&deploy(
                "{name: c, ports: [{containerPort: 80}], readinessProbe: {tcpSocket: {port: 80}}}"
            ))
            .is_empty()
        );
        assert!(lint_yaml(&deploy("{name: helper}")).is_empty());
    }

    #[test]
    fn daemonsets_are_not_checked() {
        let y =
            deploy("{name: c, ports: [{containerPort: 80}]}").replace("Deployment", "DaemonSet");
        assert!(lint_yaml(&y).is_empty());
    }
}

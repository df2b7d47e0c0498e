//! Probe ports must be ports the container declares.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{ObjectSet, PortRef, container_declares};

const PROBES: &[&str] = &["livenessProbe", "readinessProbe", "startupProbe"];
const HANDLERS: &[&str] = &["httpGet", "tcpSocket", "grpc"];

/// A named probe port is resolved by the kubelet against the container's own
/// ports only: undeclared, the probe always fails (error). A numeric port
/// works whenever something in the pod listens there, so an undeclared one
/// is only a warning (and none at all if another container declares it).
pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in set.workloads() {
        for c in w.serving_containers() {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
            for probe in PROBES {
                for handler in HANDLERS {
                    let Some(port) = c
                        .get(*probe)
                        .and_then(|p| p.get(*handler))
                        .and_then(|h| h.get("port"))
                        .and_then(PortRef::from_value)
                    else {
                        continue;
                    };
                    if container_declares(c, &port) {
                        continue;
                    }
                    let (sev, hint) = match port {
                        PortRef::Name(_) => (
                            Severity::Error,
                            "the kubelet cannot resolve the name, so the probe always fails; declare a container port with that name",
                        ),
                        PortRef::Number(_) => {
                            if w.serving_containers().any(|o| container_declares(o, &port)) {
                                continue;
                            }
                            (
                                Severity::Warning,
                                "it works only if the process listens there; declare it under ports or probe a declared port",
                            )
                        }
                    };
                    out.push(w.obj.finding(
                        "probe-port-unknown",
                        sev,
                        format!(
                            "container \"{cname}\" {probe}.{handler} uses port {port}, which the container does not declare; {hint}"
                        ),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::lint::Severity;
    use crate::lint::test_support::*;

    fn deploy(probe: &str) -> String {
        format!(
            "
kind: Deployment
metadata: {{name: d}}
spec:
  template:
    metadata: {{labels: {{app: d}}}}
    spec:
      containers:
      - name: c
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {probe}
      - name: side
        ports: [{{containerPort: 9090}}]
        readinessProbe: {{tcpSocket: {{port: 9090}}}}
"
        )
    }

    #[test]
    fn declared_ports_ok() {
        assert!(lint_yaml(&deploy("{httpGet: {path: /, port: http}}")).is_empty());
        assert!(lint_yaml(&deploy("{tcpSocket: {port: 8080}}")).is_empty());
        assert!(lint_yaml(&deploy("{grpc: {port: 8080}}")).is_empty());
    }

    #[test]
    fn named_undeclared_is_error() {
        let f = lint_yaml(&deploy("{httpGet: {path: /, port: health}}"));
        assert_eq!(rules_of(&f), vec!["probe-port-unknown"]);
        assert_eq!(f[0].severity, Severity::Error);
    }

    #[test]
    fn numeric_undeclared_is_warning() {
        let f = lint_yaml(&deploy("{tcpSocket: {port: 7000}}"));
        assert_eq!(rules_of(&f), vec!["probe-port-unknown"]);
        assert_eq!(f[0].severity, Severity::Warning);
    }

    #[test]
    fn numeric_declared_by_sibling_is_fine() {
        assert!(lint_yaml(&deploy("{tcpSocket: {port: 9090}}")).is_empty());
    }
}

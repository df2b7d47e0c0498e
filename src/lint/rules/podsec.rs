//! Pod Security `restricted` fields, checked for pods in a namespace of the render that asks for
//! `restricted`. Where it is enforced (label `pod-security.kubernetes.io/enforce`), a pod missing
//! one is rejected at admission: the Deployment shows no error, its ReplicaSet just never gets
//! pods (an error). Where it is only warned or audited, a warning.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{ObjectSet, Workload, array};

const LABEL: &str = "pod-security.kubernetes.io/";

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in set.workloads() {
        let level = |mode: &str| {
            w.obj.namespace.is_some_and(|ns| {
                set.of_kind("Namespace").any(|n| {
                    n.name == ns
                        && n.at("/metadata/labels")
                            .and_then(|l| l.get(format!("{LABEL}{mode}")))
                            .and_then(Value::as_str)
                            == Some("restricted")
                })
            })
        };
        let enforced = level("enforce");
        if !enforced && !level("warn") && !level("audit") {
            continue;
        }
        for c in array(w.pod_spec.get("containers")).chain(array(w.pod_spec.get("initContainers")))
        {
            let missing = missing_fields(&w, c);
            if missing.is_empty() {
                continue;
            }
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
            let (severity, effect) = if enforced {
                (
                    Severity::Error,
                    "the namespace enforces Pod Security `restricted`, so the API server rejects every pod of it (the workload just never gets pods)",
                )
            } else {
                (
                    Severity::Warning,
                    "the namespace warns/audits Pod Security `restricted`, and enforcing it would reject the pods",
                )
            };
            out.push(w.obj.finding(
                "pod-security-restricted",
                severity,
                format!(
                    "container \"{cname}\" lacks {}: {effect}; set them in securityContext",
                    missing.join(", ")
                ),
            ));
        }
    }
    out
}

/// The `restricted` requirements this container (with its pod's defaults) does not meet, each
/// written as the setting that fixes it.
fn missing_fields(w: &Workload<'_>, c: &Value) -> Vec<&'static str> {
    let pod = w.pod_spec.get("securityContext");
    let ctx = c.get("securityContext");
    let field = |name: &str| {
        ctx.and_then(|s| s.get(name))
            .or_else(|| pod.and_then(|p| p.get(name)))
    };
    let mut missing = Vec::new();
    if field("runAsNonRoot").and_then(Value::as_bool) != Some(true) {
        missing.push("runAsNonRoot: true");
    }
    if field("runAsUser").and_then(Value::as_i64) == Some(0) {
        missing.push("runAsUser other than 0");
    }
    let seccomp = field("seccompProfile")
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str);
    if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
        missing.push("seccompProfile.type: RuntimeDefault");
    }
    let own = |name: &str| ctx.and_then(|s| s.get(name));
    if own("allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false) {
        missing.push("allowPrivilegeEscalation: false");
    }
    if own("privileged").and_then(Value::as_bool) == Some(true) {
        missing.push("privileged: false");
    }
    let caps = own("capabilities");
    let drops_all = array(caps.and_then(|c| c.get("drop"))).any(|d| d.as_str() == Some("ALL"));
    if !drops_all {
        missing.push("capabilities.drop: [ALL]");
    }
    if array(caps.and_then(|c| c.get("add"))).any(|a| a.as_str() != Some("NET_BIND_SERVICE")) {
        missing.push("capabilities.add: nothing but NET_BIND_SERVICE");
    }
    missing
}

#[cfg(test)]
mod tests {
    use crate::lint::Severity;
    use crate::lint::test_support::*;

    const GOOD_CTX: &str = "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}";

    fn set(ns_label: &str, ctx: &str) -> String {
        format!(
            "
kind: Namespace
metadata: {{name: ns, labels: {{{ns_label}}}}}
---
kind: Deployment
metadata: {{name: d, namespace: ns}}
spec:
  template:
    metadata: {{labels: {{app: d}}}}
    spec:
      securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}
      containers: [{{name: c, securityContext: {ctx}}}]
"
        )
    }

    #[test]
    fn restricted_fields() {
        let enforce = "pod-security.kubernetes.io/enforce: restricted";
        assert!(lint_yaml(&set(enforce, GOOD_CTX)).is_empty());
        let f = lint_yaml(&set(enforce, "{capabilities: {drop: [ALL]}}"));
        assert_eq!(rules_of(&f), vec!["pod-security-restricted"]);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(
            f[0].message.contains("allowPrivilegeEscalation: false"),
            "{}",
            f[0].message
        );
        assert!(lint_yaml(&set("a: b", "{}")).is_empty());
        let warn = "pod-security.kubernetes.io/warn: restricted";
        let f = lint_yaml(&set(warn, "{allowPrivilegeEscalation: false}"));
        assert_eq!(rules_of(&f), vec!["pod-security-restricted"]);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.contains("capabilities.drop"),
            "{}",
            f[0].message
        );
    }
}

//! xiu 0.14 handles only SIGINT. Kubernetes stops containers with SIGTERM,
//! which xiu as PID 1 ignores (the kernel drops unhandled signals for PID 1),
//! so every rollout or scale-down waits the whole grace period and ends in
//! SIGKILL, cutting publishers and players without a clean close.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{ObjectSet, array};

use super::xiu::xiu_configs;

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let configs = xiu_configs(set);
    let mut out = Vec::new();
    for w in set.workloads() {
        // Volumes of this pod that carry a xiu config.
        let xiu_volumes: Vec<&str> = array(w.pod_spec.get("volumes"))
            .filter(|v| {
                v.pointer("/configMap/name")
                    .and_then(Value::as_str)
                    .is_some_and(|cm| {
                        configs
                            .iter()
                            .any(|f| f.cm.name == cm && f.cm.same_namespace(&w.obj))
                    })
            })
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .collect();
        if xiu_volumes.is_empty() {
            continue;
        }
        for c in w.containers() {
            let mounts_xiu = array(c.get("volumeMounts"))
                .filter_map(|m| m.get("name").and_then(Value::as_str))
                .any(|n| xiu_volumes.contains(&n));
            if !mounts_xiu || handles_sigterm(c) {
                continue;
            }
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            out.push(w.obj.finding(
                "xiu-sigterm-ignored",
                Severity::Warning,
                format!(
                    "container \"{name}\" runs xiu, which handles only SIGINT: the SIGTERM that stops a pod is ignored, so each stop waits terminationGracePeriodSeconds and ends in SIGKILL; add `lifecycle.preStop.exec.command: [\"/bin/sh\", \"-c\", \"kill -INT 1\"]` or start xiu under `dumb-init --rewrite 15:2`"
                ),
            ));
        }
    }
    out
}

/// A preStop hook (assumed to deliver SIGINT) or a signal-rewriting init.
fn handles_sigterm(c: &Value) -> bool {
    if c.pointer("/lifecycle/preStop").is_some() {
        return true;
    }
    array(c.get("command"))
        .chain(array(c.get("args")))
        .filter_map(Value::as_str)
        .any(|a| a.contains("dumb-init") || a.contains("15:2"))
}

#[cfg(test)]
mod tests {
    use crate::lint::test_support::*;

    fn set(container_extra: &str) -> String {
        format!(
            "
kind: ConfigMap
metadata: {{name: cfg}}
data:
  xiu.toml: |
    [rtmp]
    enabled = true
    port = 1935
    [authsecret]
    key = \"\"
    password = \"\"
---
kind: Deployment
metadata: {{name: origin}}
spec:
  template:
    metadata: {{labels: {{app: o}}}}
    spec:
      containers:
      - name: xiu
        volumeMounts: [{{name: c, mountPath: /etc/xiu}}]
        {container_extra}
      - name: other
      volumes: [{{name: c, configMap: {{name: cfg}}}}]
"
        )
    }

    #[test]
    fn no_prestop() {
        assert_eq!(rules_of(&lint_yaml(&set(""))), vec!["xiu-sigterm-ignored"]);
    }

    #[test]
    fn prestop_or_dumb_init() {
        assert!(
            lint_yaml(&set(
                "lifecycle: {preStop: {exec: {command: [kill, -INT, '1']}}}"
            ))
            .is_empty()
        );
        assert!(lint_yaml(&set("command: [dumb-init, --rewrite, '15:2', xiu]")).is_empty());
    }
}

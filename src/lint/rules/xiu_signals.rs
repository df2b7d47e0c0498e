//! xiu 0.14 handles only SIGINT. Kubernetes stops containers with SIGTERM,
//! which xiu as PID 1 ignores (the kernel drops unhandled signals for PID 1),
//! so every rollout or scale-down waits the whole grace period and ends in
//! SIGKILL, cutting publishers and players without a clean close.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{ObjectSet, array};
use crate::lint::roles::{xiu_configs, xiu_pods};

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let configs = xiu_configs(set);
    let mut out = Vec::new();
    for pod in xiu_pods(set, &configs) {
        for c in &pod.xiu_containers {
            if handles_sigterm(c) {
                continue;
            }
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            out.push(pod.w.obj.finding(
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

    const RULE: &str = "xiu-sigterm-ignored";

    #[test]
    fn no_prestop() {
        let f = lint_yaml(&set(""));
        assert_eq!(f.iter().filter(|f| f.rule == RULE).count(), 1, "{f:?}");
    }

    #[test]
    fn prestop_or_dumb_init() {
        assert!(!has(
            &set("lifecycle: {preStop: {exec: {command: [kill, -INT, '1']}}}"),
            RULE
        ));
        assert!(!has(
            &set("command: [dumb-init, --rewrite, '15:2', xiu]"),
            RULE
        ));
    }

    #[test]
    fn xiu_found_by_its_command_when_the_config_is_rendered_elsewhere() {
        // The config is rendered into an emptyDir by an init container: xiu's container mounts no
        // ConfigMap, but runs the xiu binary.
        let y = set("command: [/usr/bin/tini, --, /usr/local/bin/xiu]").replace(
            "volumeMounts: [{name: c, mountPath: /etc/xiu}]",
            "volumeMounts: []",
        );
        assert!(has(&y, RULE), "{:?}", lint_yaml(&y));
    }
}

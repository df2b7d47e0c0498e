//! `terminationGracePeriodSeconds` must cover the preStop hooks: the kubelet kills the pod when
//! the grace period ends, hook or not, so a drain longer than the grace period is cut short and
//! its viewers dropped.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{ObjectSet, array};
use crate::lint::roles::{xiu_configs, xiu_pods};

/// Kubernetes' default grace period.
const DEFAULT_GRACE: i64 = 30;
/// After the hook: the stop signal, xiu's exit, endpoint removal lag.
const MARGIN: i64 = 10;
/// `xiuload sidecar --drain-timeout` default.
const DEFAULT_DRAIN: i64 = 120;

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let configs = xiu_configs(set);
    let pods = xiu_pods(set, &configs);
    let mut out = Vec::new();
    for w in set.workloads() {
        let grace = w
            .pod_spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_GRACE);
        let drain = pods
            .iter()
            .find(|p| p.w.obj.id() == w.obj.id())
            .and_then(|p| p.sidecar.as_ref())
            .map(|s| {
                s.values("drain-timeout")
                    .last()
                    .and_then(|v| seconds(v))
                    .unwrap_or(DEFAULT_DRAIN)
            });
        for c in w.serving_containers() {
            let Some(hook) = c.pointer("/lifecycle/preStop") else {
                continue;
            };
            let (takes, how) = if let Some(cmd) = hook.pointer("/exec/command") {
                let text: Vec<&str> = array(Some(cmd)).filter_map(Value::as_str).collect();
                (sleeps(&text.join(" ")), "its sleeps")
            } else if let Some(path) = hook.pointer("/httpGet/path").and_then(Value::as_str) {
                match (path.contains("drain"), drain) {
                    (true, Some(d)) => (d, "the sidecar's --drain-timeout"),
                    (true, None) => (DEFAULT_DRAIN, "a drain endpoint (default 120 s)"),
                    _ => (0, ""),
                }
            } else {
                (0, "")
            };
            if takes == 0 || grace >= takes + MARGIN {
                continue;
            }
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
            out.push(w.obj.finding(
                "grace-shorter-than-drain",
                Severity::Error,
                format!(
                    "container \"{cname}\"'s preStop takes up to {takes} s ({how}) but terminationGracePeriodSeconds is {grace}: the kubelet kills the pod mid-drain and its viewers are cut; set terminationGracePeriodSeconds to at least {}",
                    takes + MARGIN
                ),
            ));
        }
    }
    out
}

/// Total of `sleep N` in a shell command line.
fn sleeps(text: &str) -> i64 {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ';' || c == '&')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|w| w[0] == "sleep")
        .filter_map(|w| seconds(w[1]))
        .sum()
}

/// "120", "120s", "2m", "1h" -> seconds.
fn seconds(text: &str) -> Option<i64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last()? {
        's' => (&t[..t.len() - 1], 1),
        'm' => (&t[..t.len() - 1], 60),
        'h' => (&t[..t.len() - 1], 3600),
        _ => (t, 1),
    };
    num.parse::<i64>().ok().map(|n| n * mult)
}

#[cfg(test)]
mod tests {
    use super::sleeps;
    use crate::lint::test_support::*;

    #[test]
    fn sleep_total() {
        assert_eq!(sleeps("/bin/sh -c sleep 30; kill -INT 1"), 30);
        assert_eq!(sleeps("sleep 5 && sleep 2m"), 125);
        assert_eq!(sleeps("kill -INT 1"), 0);
    }

    fn deploy(grace: &str, hook: &str, sidecar_args: &str) -> String {
        format!(
            "
kind: Deployment
metadata: {{name: d}}
spec:
  template:
    metadata: {{labels: {{app: d}}}}
    spec:
      {grace}
      containers:
      - name: xiu
        command: [/usr/local/bin/xiu]
        lifecycle: {{preStop: {hook}}}
      - name: sidecar
        command: [xiuload]
        args: [sidecar{sidecar_args}]
"
        )
    }

    #[test]
    fn grace_against_sleep_and_drain() {
        let sleep = "{exec: {command: [/bin/sh, -c, 'sleep 30; kill -INT 1']}}";
        assert!(!has(
            &deploy("terminationGracePeriodSeconds: 60", sleep, ""),
            "grace-shorter-than-drain"
        ));
        assert!(has(&deploy("", sleep, ""), "grace-shorter-than-drain"));
        let drain = "{httpGet: {path: /drain, port: 9090}}";
        assert!(!has(
            &deploy("terminationGracePeriodSeconds: 150", drain, ""),
            "grace-shorter-than-drain"
        ));
        let f = lint_yaml(&deploy(
            "terminationGracePeriodSeconds: 150",
            drain,
            ", --drain-timeout, 5m",
        ));
        let hit: Vec<_> = f
            .iter()
            .filter(|f| f.rule == "grace-shorter-than-drain")
            .collect();
        assert_eq!(hit.len(), 1, "{f:?}");
        assert!(
            hit[0].message.contains("at least 310"),
            "{}",
            hit[0].message
        );
    }
}

//! Deliberate exceptions: an object may carry the annotation
//! `xiuload.dev/lint-skip: "<rule-id>: <reason>[; <rule-id>: <reason>]"`. A skip without a reason
//! is itself a finding: an exception nobody can explain is a defect (checkov's skip comments work
//! the same way).

use super::finding::{Finding, Severity};
use super::objects::ObjectSet;
use std::collections::BTreeSet;

pub const ANNOTATION: &str = "xiuload.dev/lint-skip";

/// Drops the findings an object's annotation skips; adds one for each skip without a reason.
pub fn apply(set: &ObjectSet<'_>, findings: Vec<Finding>) -> Vec<Finding> {
    let mut skipped: BTreeSet<(String, String)> = BTreeSet::new();
    let mut out = Vec::new();
    for obj in &set.objects {
        let Some(text) = obj
            .at("/metadata/annotations")
            .and_then(|a| a.get(ANNOTATION))
            .and_then(|v| v.as_str())
        else {
            continue;
        };
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.split_once(':') {
                Some((rule, reason)) if !reason.trim().is_empty() => {
                    skipped.insert((obj.id(), rule.trim().to_string()));
                }
                _ => out.push(obj.finding(
                    "lint-skip-without-reason",
                    Severity::Error,
                    format!(
                        "annotation {ANNOTATION} entry {entry:?} has no reason; write \"<rule-id>: <why this is intended>\""
                    ),
                )),
            }
        }
    }
    out.extend(
        findings
            .into_iter()
            .filter(|f| !skipped.contains(&(f.object.clone(), f.rule.to_string()))),
    );
    out
}

#[cfg(test)]
mod tests {
    use crate::lint::test_support::{lint_yaml, rules_of};

    const ORIGIN: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: origin
  namespace: ns
  annotations:
    xiuload.dev/lint-skip: "SKIP"
spec:
  replicas: 1
  serviceName: origin
  selector: { matchLabels: { app: origin } }
  template:
    metadata: { labels: { app: origin } }
    spec:
      containers:
        - name: xiu
          image: xiu:0.14.0
          ports: [{ name: rtmp, containerPort: 1935 }]
          readinessProbe: { tcpSocket: { port: rtmp } }
"#;

    #[test]
    fn a_skip_with_a_reason_silences_only_its_rule() {
        let before = lint_yaml(&ORIGIN.replace("SKIP", "nothing-here: placeholder"));
        assert!(
            rules_of(&before).contains(&"rollout-can-take-all-down"),
            "{before:?}"
        );
        let after =
            lint_yaml(&ORIGIN.replace("SKIP", "rollout-can-take-all-down: one origin by design"));
        assert!(
            !rules_of(&after).contains(&"rollout-can-take-all-down"),
            "{after:?}"
        );
    }

    #[test]
    fn a_skip_without_a_reason_is_a_finding() {
        let f = lint_yaml(&ORIGIN.replace("SKIP", "rollout-can-take-all-down"));
        assert!(rules_of(&f).contains(&"lint-skip-without-reason"), "{f:?}");
    }
}

//! The cluster part of `summary.md`: Markdown rendered from [`ClusterReport`] and the verdicts.

use super::correlate::ClusterReport;
use super::judgement::ExpectationResult;
use std::fmt::Write;

/// The `[[expect]]` verdicts as a Markdown table under `### Expectations`; empty when none.
pub fn expectations_markdown(expectations: &[ExpectationResult]) -> String {
    let mut s = String::new();
    if expectations.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "### Expectations\n\n| | expectation | evidence |\n|---|---|---|"
    );
    for e in expectations {
        let mark = match e.status {
            crate::verdict::Verdict::Pass => "pass".to_string(),
            crate::verdict::Verdict::Fail => "**FAIL**".to_string(),
            crate::verdict::Verdict::Inconclusive => format!(
                "**INCONCLUSIVE**: {}",
                e.inconclusive.as_deref().unwrap_or("no data")
            ),
        };
        let _ = writeln!(s, "| {mark} | {} | {} |", e.description, e.evidence);
    }
    s.push('\n');
    s
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.1}s"))
}

pub fn render_markdown(c: &ClusterReport, expectations: &[ExpectationResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Cluster (namespace `{}`)\n", c.namespace);
    s.push_str(&expectations_markdown(expectations));
    for n in &c.notes {
        let _ = writeln!(s, "> note: {n}\n");
    }
    if !c.permission_denied.is_empty() {
        let _ = writeln!(s, "### Missing data\n");
        for m in &c.permission_denied {
            let _ = writeln!(s, "- {}", m.message);
        }
        s.push('\n');
    }
    if !c.scale_decisions.is_empty() {
        let _ = writeln!(
            s,
            "### Scale decisions\n\n| t | HPA | replicas | viewers | per pod viewers | per pod Mbit/s | pod CPU (m) | reason |\n|---|---|---|---|---|---|---|---|"
        );
        for d in &c.scale_decisions {
            let _ = writeln!(
                s,
                "| {:.1}s | {} | {} → {} | {} | {} | {} | {} | {} |",
                d.t,
                d.hpa,
                d.from,
                d.to,
                d.load
                    .as_ref()
                    .map_or("–".into(), |l| l.viewers.to_string()),
                d.per_pod_viewers.map_or("–".into(), |v| v.to_string()),
                d.per_pod_mbps.map_or("–".into(), |v| v.to_string()),
                d.pod_cpu_millicores_avg
                    .map_or("–".into(), |v| v.to_string()),
                d.reason.as_deref().unwrap_or("–")
            );
        }
        s.push('\n');
    }
    for u in &c.scale_ups {
        let _ = writeln!(
            s,
            "- scale-up {} → {} at t={:.1}s: {} after the load step ({} after a metric crossed its target); first new pod ready {}, all ready {}, first serving {}",
            u.from,
            u.to,
            u.decision_t,
            opt(u.decision_after_s),
            opt(u.decision_after_metric_s),
            opt(u.first_pod_ready_t),
            opt(u.all_ready_t),
            opt(u.first_serving_t)
        );
    }
    for d in &c.scale_downs {
        let _ = writeln!(
            s,
            "- scale-down {} → {} at t={:.1}s: {} after the load dropped; {} player error(s) in the next minute; pods deleted: {}",
            d.from,
            d.to,
            d.decision_t,
            opt(d.delay_s),
            d.viewers_disconnected,
            if d.pods_deleted.is_empty() {
                "none".to_string()
            } else {
                d.pods_deleted.join(", ")
            }
        );
    }
    let t = &c.totals;
    let _ = writeln!(
        s,
        "\nProbe failures: {}; restarts: {}; OOMKilled: {}; HPA metric failures: {}; flapping: {}",
        t.probe_failures,
        t.restarts,
        t.oom_killed,
        t.metric_failures,
        c.flapping.len()
    );
    if !c.incidents.is_empty() {
        let _ = writeln!(s, "\n### Incidents\n");
        for i in c.incidents.iter().take(50) {
            let mem = i
                .pod_memory_bytes
                .map_or(String::new(), |m| format!(", pod memory {} MiB", m >> 20));
            let cpu = i
                .pod_cpu_millicores
                .map_or(String::new(), |c| format!(", pod CPU {c}m"));
            let viewers = i
                .load
                .as_ref()
                .map_or(String::new(), |l| format!(", {} viewers", l.viewers));
            let _ = writeln!(
                s,
                "- t={:.1}s {} {}: {}{viewers}{cpu}{mem}",
                i.t, i.kind, i.object, i.message
            );
        }
    }
    if !c.gaps.is_empty() {
        let _ = writeln!(s, "\n### Gaps in the cluster timeline\n");
        for g in &c.gaps {
            let end = g
                .end
                .map_or("end of run".to_string(), |e| format!("t={e:.1}s"));
            let _ = writeln!(
                s,
                "- {}: t={:.1}s to {end}: {}",
                g.source, g.start, g.reason
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::correlate::analyse;
    use crate::k8s::correlate::tests::{cluster, load};

    #[test]
    fn summary_shows_verdicts_decisions_and_incidents() {
        let mut report = analyse(&cluster(), &load());
        report
            .permission_denied
            .push(crate::k8s::correlate::MissingData {
                verb: "list".into(),
                resource: "pods.metrics.k8s.io".into(),
                namespace: "ns".into(),
                message: "missing permission: list pods.metrics.k8s.io in namespace ns".into(),
            });
        let verdict = ExpectationResult {
            kind: "no_oom_killed".into(),
            description: "no container OOMKilled".into(),
            status: crate::verdict::Verdict::Fail,
            pass: false,
            evidence: "1 OOM kill(s)".into(),
            inconclusive: None,
        };
        let md = render_markdown(&report, &[verdict]);
        for needle in [
            "| **FAIL** | no container OOMKilled | 1 OOM kill(s) |",
            "| 20.0s | xiu-edge | 1 → 3 | 100 | 100 |",
            "missing permission: list pods.metrics.k8s.io",
            "oom_killed xiu-edge-a",
            "- pods: t=45.0s to t=46.0s: 410 Gone",
        ] {
            assert!(md.contains(needle), "{needle:?} not in\n{md}");
        }
    }
}

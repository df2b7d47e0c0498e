//! Judges `[[expect]]` entries against the correlated cluster report. Pure; every verdict carries
//! the times and values it was decided on, so a failure explains itself in the report.

use super::config::{DEFAULT_FLAP_WINDOW, ExpectKind, Expectation};
use super::correlate::{ClusterReport, flaps};
use super::judgement::{ExpectationResult, inconclusive, result};
use crate::metrics::timeline::TimelinePoint;
use crate::scenario::fault::FaultRecord;
use std::time::Duration;

pub use crate::scenario::plan::{stage_count, stage_starts};

/// `cluster`: what the watched cluster did, when `[kube]` watched one; `stages`: start offsets of
/// the load stages (see [`stage_starts`]); `faults`: what the run did for its `[[fault]]`s.
pub fn judge(
    exps: &[Expectation],
    cluster: Option<&ClusterReport>,
    load: &[TimelinePoint],
    stages: &[Duration],
    faults: FaultRecord<'_>,
) -> Vec<ExpectationResult> {
    exps.iter()
        .map(|e| match cluster {
            Some(c) => judge_one(e, c, load, stages, faults),
            None if e.kind.follows_a_fault() => super::recovery::judge(e, load, faults),
            // Validation asks for [kube] first; said rather than passed if it gets here anyway.
            None => {
                let why = "no cluster was watched (the scenario has no [kube])".to_string();
                inconclusive(e, e.kind.as_str().to_string(), why.clone(), why)
            }
        })
        .collect()
}

/// A count that stayed within its limit is only a pass when the data behind it was there.
fn bounded(
    e: &Expectation,
    description: String,
    within_limit: bool,
    evidence: String,
    missing: Option<String>,
) -> ExpectationResult {
    match missing {
        Some(why) if within_limit => inconclusive(e, description, evidence, why),
        _ => result(e, description, within_limit, evidence),
    }
}

/// What the watcher reads to judge an expectation: gap sources (as `gap_start` names them) paired
/// with the RBAC resource behind each. Alternatives: the data is there if any of them delivered.
struct Needs {
    what: &'static str,
    sources: &'static [(&'static str, &'static str)],
}

const PODS: Needs = Needs {
    what: "pods",
    sources: &[("pods", "pods")],
};
const EVENTS: Needs = Needs {
    what: "Events",
    sources: &[
        ("events", "events"),
        ("events.events.k8s.io", "events.events.k8s.io"),
    ],
};
const HPAS: Needs = Needs {
    what: "HorizontalPodAutoscalers",
    sources: &[(
        "horizontalpodautoscalers",
        "horizontalpodautoscalers.autoscaling",
    )],
};

const DEPLOYMENTS: Needs = Needs {
    what: "Deployments",
    sources: &[("deployments", "deployments.apps")],
};
const STATEFULSETS: Needs = Needs {
    what: "StatefulSets",
    sources: &[("statefulsets", "statefulsets.apps")],
};

/// Why the data behind `needs` is missing, if it is: every alternative was refused (403 on
/// exactly that resource) or lost with a gap that never closed (e.g. the API server never
/// answered).
fn missing(c: &ClusterReport, needs: &Needs) -> Option<String> {
    let reasons: Vec<String> = needs
        .sources
        .iter()
        .map(|(source, resource)| {
            if let Some(d) = c.permission_denied.iter().find(|d| d.resource == *resource) {
                Some(format!("{} {resource} was refused", d.verb))
            } else {
                c.gaps
                    .iter()
                    .find(|g| g.source == *source && g.end.is_none())
                    .map(|g| {
                        format!(
                            "the {source} watch broke at t={:.1}s and never recovered ({})",
                            g.start, g.reason
                        )
                    })
            }
        })
        .collect::<Option<Vec<String>>>()?;
    Some(format!(
        "no {} could be read: {}",
        needs.what,
        reasons.join("; ")
    ))
}

/// Why expectations about the watched pods have nothing to judge, if they have not.
fn pods_missing(c: &ClusterReport, also: &Needs) -> Option<String> {
    missing(c, &PODS).or_else(|| missing(c, also)).or_else(|| {
        (c.pods_seen == 0).then(|| "no pod of the watched workloads was ever seen".to_string())
    })
}

fn secs(d: Duration) -> String {
    crate::units::HumanDuration(d).to_string()
}

fn judge_one(
    e: &Expectation,
    c: &ClusterReport,
    load: &[TimelinePoint],
    stages: &[Duration],
    faults: FaultRecord<'_>,
) -> ExpectationResult {
    let max = e.max.unwrap_or(0);
    match e.kind {
        ExpectKind::MaxViewersDropped | ExpectKind::RecoveredWithin => {
            super::recovery::judge(e, load, faults)
        }
        ExpectKind::ScaleUp | ExpectKind::ScaleDown => judge_scaling(e, c, load, stages),
        ExpectKind::MaxProbeFailures => {
            let first: Vec<String> = c
                .incidents
                .iter()
                .filter(|i| i.kind == "probe_failure")
                .take(5)
                .map(|i| {
                    let probe = i
                        .probe
                        .map_or("unknown".to_string(), |p| format!("{p:?}").to_lowercase());
                    format!("t={:.1}s {} {probe} x{}", i.t, i.object, i.count)
                })
                .collect();
            let n = c.totals.probe_failures;
            bounded(
                e,
                format!("at most {max} probe failures"),
                n <= max,
                format!(
                    "{n} probe failure(s){}{}",
                    list(&first),
                    completeness(c, &EVENTS)
                ),
                pods_missing(c, &EVENTS),
            )
        }
        ExpectKind::MaxRestarts => {
            let first: Vec<String> = c
                .incidents
                .iter()
                .filter(|i| i.kind == "restart" || i.kind == "oom_killed")
                .take(5)
                .map(|i| format!("t={:.1}s {} ({})", i.t, i.object, i.kind))
                .collect();
            let n = c.totals.restarts;
            bounded(
                e,
                format!("at most {max} container restarts"),
                n <= max,
                format!("{n} restart(s){}{}", list(&first), completeness(c, &PODS)),
                pods_missing(c, &PODS),
            )
        }
        ExpectKind::NoOomKilled => {
            let ooms: Vec<String> = c
                .incidents
                .iter()
                .filter(|i| i.kind == "oom_killed" || i.kind == "node_oom")
                .map(|i| {
                    let mem = i
                        .pod_memory_bytes
                        .map_or("memory unknown".to_string(), |m| {
                            format!("{} MiB before", m >> 20)
                        });
                    let viewers = i.load.as_ref().map_or(0, |l| l.viewers);
                    format!("t={:.1}s {} ({mem}, {viewers} viewers)", i.t, i.object)
                })
                .collect();
            bounded(
                e,
                "no container OOMKilled".into(),
                ooms.is_empty(),
                format!(
                    "{} OOM kill(s){}{}",
                    ooms.len(),
                    list(&ooms),
                    completeness(c, &PODS)
                ),
                pods_missing(c, &PODS),
            )
        }
        ExpectKind::NoFlapping => {
            let window = e.window.map_or(DEFAULT_FLAP_WINDOW, |w| w.0);
            let found = flaps(&c.scale_decisions, window.as_secs_f64());
            let described: Vec<String> = found
                .iter()
                .map(|f| {
                    format!(
                        "{} {}→{}→{}→{} at t={:.1}s, {:.1}s, {:.1}s",
                        f.hpa,
                        f.replicas[0],
                        f.replicas[1],
                        f.replicas[2],
                        f.replicas[3],
                        f.times[0],
                        f.times[1],
                        f.times[2]
                    )
                })
                .collect();
            bounded(
                e,
                format!(
                    "no flapping (two direction changes within {})",
                    secs(window)
                ),
                found.is_empty(),
                format!(
                    "{} scale decision(s), {} flap(s){}{}",
                    c.scale_decisions.len(),
                    found.len(),
                    list(&described),
                    completeness(c, &HPAS)
                ),
                missing(c, &HPAS).or_else(|| {
                    c.hpas_seen
                        .is_empty()
                        .then(|| "no HorizontalPodAutoscaler was ever seen".to_string())
                }),
            )
        }
        ExpectKind::MaxViewersDroppedPerScaleDown => {
            let description = format!("at most {max} viewers dropped per scale-down");
            if load.is_empty() {
                return inconclusive(
                    e,
                    description,
                    "no load timeline: viewers were not measured".into(),
                    "no load ran beside the watch, so no viewer could be dropped or counted".into(),
                );
            }
            let worst = c.scale_downs.iter().max_by_key(|d| d.viewers_disconnected);
            let Some(worst) = worst else {
                let why = missing(c, &HPAS).unwrap_or_else(|| {
                    "no scale-down happened during the run: nothing to judge".to_string()
                });
                return inconclusive(e, description, "no scale-down happened".into(), why);
            };
            let evidence = match Some(worst) {
                None => unreachable!("handled above"),
                Some(d) => format!(
                    "{} scale-down(s); worst: {}→{} at t={:.1}s with {} player error(s) in the following {}s",
                    c.scale_downs.len(),
                    d.from,
                    d.to,
                    d.decision_t,
                    d.viewers_disconnected,
                    super::correlate::SCALE_DOWN_ATTRIBUTION_S
                ),
            };
            result(e, description, worst.viewers_disconnected <= max, evidence)
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(": {}", items.join("; "))
    }
}

/// A note when the data a verdict rests on was (partly) not collected. Resources match exactly:
/// a 403 on `pods.metrics.k8s.io` says nothing about `pods`.
fn completeness(c: &ClusterReport, needs: &Needs) -> String {
    let mut notes = Vec::new();
    for (source, resource) in needs.sources {
        if c.permission_denied.iter().any(|m| m.resource == *resource) {
            notes.push(format!("{resource} could not be read (permission denied)"));
        }
        let gaps = c.gaps.iter().filter(|g| g.source == *source).count();
        if gaps > 0 {
            notes.push(format!("{gaps} gap(s) in the {source} watch"));
        }
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" (incomplete: {})", notes.join(", "))
    }
}

fn judge_scaling(
    e: &Expectation,
    c: &ClusterReport,
    load: &[TimelinePoint],
    stages: &[Duration],
) -> ExpectationResult {
    let up = e.kind == ExpectKind::ScaleUp;
    let n = e.replicas.unwrap_or(0);
    let within = e.within.map_or(Duration::ZERO, |w| w.0);
    let workload = e
        .workload
        .clone()
        .or_else(|| c.workloads.first().cloned())
        .unwrap_or_default();
    let cmp = if up { ">=" } else { "<=" };
    let (reference, ref_text) = match (e.after_stage, e.after) {
        (Some(i), _) => (
            stages.get(i).map(|d| d.as_secs_f64()),
            format!("stage {i} starts"),
        ),
        (None, Some(a)) => (Some(a.0.as_secs_f64()), format!("t={}", secs(a.0))),
        (None, None) => (load_end(load), "the load ends".to_string()),
    };
    let description = format!(
        "{workload} scales {} to {cmp} {n} ready replicas within {} after {ref_text}",
        if up { "up" } else { "down" },
        secs(within)
    );
    let Some(start) = reference else {
        let evidence = format!("cannot tell when {ref_text}: no such moment in this run");
        return inconclusive(e, description, evidence.clone(), evidence);
    };
    let points: Vec<(f64, u32)> = c
        .replicas
        .iter()
        .filter(|r| r.workload == workload)
        .filter_map(|r| r.serving().map(|s| (r.t, s)))
        .collect();
    if points.is_empty() {
        let why = missing(c, &DEPLOYMENTS)
            .or_else(|| missing(c, &STATEFULSETS))
            .unwrap_or_else(|| format!("{workload} was never seen in the namespace"));
        return inconclusive(
            e,
            description,
            format!("no replica data was recorded for {workload}"),
            why,
        );
    }
    let ok = |v: u32| if up { v >= n } else { v <= n };
    let deadline = start + within.as_secs_f64();
    // The value in force at the reference moment counts too: already scaled is in time.
    let at_start = points
        .iter()
        .rev()
        .find(|(t, _)| *t <= start)
        .map(|p| (start, p.1));
    let reached = at_start
        .into_iter()
        .chain(points.iter().copied().filter(|(t, _)| *t > start))
        .find(|(_, v)| ok(*v));
    let evidence = match reached {
        Some((t, v)) if t <= deadline => format!(
            "{v} ready at t={t:.1}s, {:.1}s after {ref_text} (t={start:.1}s); deadline {}",
            t - start,
            secs(within)
        ),
        Some((t, v)) => format!(
            "{v} ready only at t={t:.1}s, {:.1}s after {ref_text} (t={start:.1}s); deadline {}",
            t - start,
            secs(within)
        ),
        None => {
            let in_window = points
                .iter()
                .filter(|(t, _)| *t >= start && *t <= deadline)
                .map(|p| p.1);
            let extreme = if up { in_window.max() } else { in_window.min() };
            format!(
                "never {cmp} {n} after {ref_text} (t={start:.1}s); {} in the window: {}{}",
                if up { "most" } else { "fewest" },
                extreme
                    .or(at_start.map(|p| p.1))
                    .map_or("none".into(), |v| v.to_string()),
                completeness(c, &DEPLOYMENTS)
            )
        }
    };
    result(
        e,
        description,
        reached.is_some_and(|(t, _)| t <= deadline),
        evidence,
    )
}

/// The end of the load: the window after the last one with viewers or publishers.
fn load_end(load: &[TimelinePoint]) -> Option<f64> {
    let busy = |p: &TimelinePoint| p.publishers > 0 || p.players.values().any(|pp| pp.active > 0);
    let last = load.iter().rposition(busy)?;
    load.get(last + 1).or(load.get(last)).map(|p| p.t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::correlate::analyse;
    use crate::k8s::correlate::tests::{cluster, ev, hpa, load};
    use crate::scenario::fault::FaultEvent;
    use crate::units::HumanDuration;
    use crate::verdict::Verdict;

    fn exp(kind: ExpectKind) -> Expectation {
        Expectation::new(kind)
    }

    fn report() -> ClusterReport {
        let mut r = analyse(&cluster(), &load());
        r.workloads = vec!["xiu-edge".into()];
        r
    }

    const STAGES: [Duration; 3] = [
        Duration::ZERO,
        Duration::from_secs(10),
        Duration::from_secs(59),
    ];

    #[test]
    fn scale_up_in_time_passes_with_evidence() {
        let e = Expectation {
            replicas: Some(3),
            within: Some(HumanDuration::secs(30)),
            after_stage: Some(1),
            ..exp(ExpectKind::ScaleUp)
        };
        let r = &judge(&[e], Some(&report()), &load(), &STAGES, FaultRecord::NONE)[0];
        assert!(r.pass, "{r:?}");
        assert!(
            r.evidence
                .contains("3 ready at t=32.0s, 22.0s after stage 1 starts"),
            "{}",
            r.evidence
        );
    }

    #[test]
    fn scale_up_too_late_fails() {
        let e = Expectation {
            replicas: Some(3),
            within: Some(HumanDuration::secs(15)),
            after_stage: Some(1),
            ..exp(ExpectKind::ScaleUp)
        };
        let r = &judge(&[e], Some(&report()), &load(), &STAGES, FaultRecord::NONE)[0];
        assert!(!r.pass);
        assert!(r.evidence.contains("only at t=32.0s"), "{}", r.evidence);
        let never = Expectation {
            replicas: Some(5),
            within: Some(HumanDuration::secs(60)),
            after: Some(HumanDuration::secs(10)),
            ..exp(ExpectKind::ScaleUp)
        };
        let r = &judge(
            &[never],
            Some(&report()),
            &load(),
            &STAGES,
            FaultRecord::NONE,
        )[0];
        assert!(!r.pass);
        assert!(
            r.evidence.contains("never >= 5") && r.evidence.contains("most in the window: 3"),
            "{}",
            r.evidence
        );
    }

    #[test]
    fn scale_down_defaults_to_load_end() {
        let e = Expectation {
            replicas: Some(1),
            within: Some(HumanDuration::secs(20)),
            ..exp(ExpectKind::ScaleDown)
        };
        let r = &judge(
            std::slice::from_ref(&e),
            Some(&report()),
            &load(),
            &STAGES,
            FaultRecord::NONE,
        )[0];
        // Load ends at t=60; one ready replica at t=76.
        assert!(r.pass, "{r:?}");
        assert!(
            r.evidence.contains("16.0s after the load ends"),
            "{}",
            r.evidence
        );
        let r = &judge(&[e], Some(&report()), &[], &STAGES, FaultRecord::NONE)[0];
        assert!(!r.pass && r.evidence.contains("cannot tell"), "{r:?}");
    }

    #[test]
    fn a_refused_metrics_api_says_nothing_about_pods() {
        // 403 on pods.metrics.k8s.io: CPU samples are missing, restarts are not.
        let mut rep = report();
        rep.permission_denied
            .push(super::super::correlate::MissingData {
                verb: "list".into(),
                resource: "pods.metrics.k8s.io".into(),
                namespace: "ns".into(),
                message: "missing permission".into(),
            });
        let e = Expectation {
            max: Some(5),
            ..exp(ExpectKind::MaxRestarts)
        };
        let r = &judge(
            std::slice::from_ref(&e),
            Some(&rep),
            &load(),
            &STAGES,
            FaultRecord::NONE,
        )[0];
        assert_eq!(r.status, Verdict::Pass, "{r:?}");
        assert!(!r.evidence.contains("could not be read"), "{}", r.evidence);
        // A 403 on pods itself leaves nothing to judge.
        rep.permission_denied[0].resource = "pods".into();
        let r = &judge(&[e], Some(&rep), &load(), &STAGES, FaultRecord::NONE)[0];
        assert_eq!(r.status, Verdict::Inconclusive, "{r:?}");
        assert!(
            r.evidence.contains("pods could not be read"),
            "{}",
            r.evidence
        );
    }

    #[test]
    fn oom_restarts_probes_and_drops() {
        let rep = report();
        let results = judge(
            &[
                exp(ExpectKind::NoOomKilled),
                Expectation {
                    max: Some(1),
                    ..exp(ExpectKind::MaxRestarts)
                },
                Expectation {
                    max: Some(0),
                    ..exp(ExpectKind::MaxProbeFailures)
                },
                Expectation {
                    max: Some(0),
                    ..exp(ExpectKind::MaxViewersDroppedPerScaleDown)
                },
                exp(ExpectKind::NoFlapping),
            ],
            Some(&rep),
            &load(),
            &STAGES,
            FaultRecord::NONE,
        );
        assert!(!results[0].pass);
        assert!(
            results[0]
                .evidence
                .contains("t=40.0s xiu-edge-a (200 MiB before, 100 viewers)"),
            "{}",
            results[0].evidence
        );
        assert!(results[1].pass, "{:?}", results[1]);
        assert!(results[2].pass);
        assert!(results[3].pass, "{:?}", results[3]);
        assert!(results[4].pass, "{:?}", results[4]);
    }

    #[test]
    fn without_a_cluster_fault_kinds_are_judged_and_cluster_kinds_are_not_passed() {
        use crate::scenario::fault::{FaultAction, FaultTarget};
        let kill = FaultEvent::done_at(30.0, FaultAction::Kill, FaultTarget::Origin);
        let results = judge(
            &[
                Expectation {
                    max: Some(1000),
                    ..exp(ExpectKind::MaxViewersDropped)
                },
                exp(ExpectKind::NoOomKilled),
            ],
            None,
            &load(),
            &STAGES,
            FaultRecord {
                events: &[kill],
                load_end: None,
            },
        );
        assert!(
            results[0].evidence.contains("kill origin 0 at t=30.0s"),
            "{:?}",
            results[0]
        );
        assert_ne!(results[0].status, Verdict::Inconclusive, "{:?}", results[0]);
        assert_eq!(results[1].status, Verdict::Inconclusive);
    }

    #[test]
    fn flapping_fails_with_times() {
        let mut c = cluster();
        c.push(ev(100.0, hpa(2, 1)));
        let rep = analyse(&c, &load());
        let r = &judge(
            &[exp(ExpectKind::NoFlapping)],
            Some(&rep),
            &load(),
            &STAGES,
            FaultRecord::NONE,
        )[0];
        assert!(!r.pass);
        assert!(
            r.evidence.contains("1→3→1→2 at t=20.0s, 75.0s, 100.0s"),
            "{}",
            r.evidence
        );
    }

    #[test]
    fn stage_starts_of_longest_ramp() {
        let s = crate::scenario::parse(
            std::path::Path::new("s.toml"),
            r#"[target.local]
[[publishers]]
name = "cams"
stream = "cam-{i}"
ramp = [{ duration = "5s", target = 1 }]
[[players]]
name = "v"
protocol = "flv"
publishers = "cams"
ramp = [{ duration = "10s", target = 5 }, { duration = "20s", target = 50 }, { duration = "5s", target = 0 }]
"#,
        )
        .unwrap();
        assert_eq!(stage_count(&s), 3);
        assert_eq!(
            stage_starts(&s),
            [
                Duration::ZERO,
                Duration::from_secs(10),
                Duration::from_secs(30)
            ]
        );
    }
}

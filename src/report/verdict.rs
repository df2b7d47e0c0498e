//! The run's verdict, decided in one place from a [`Report`]'s typed values: `xiuload run`,
//! `xiuload report` (rebuild) and the exit code all read what this returns.
//!
//! What can make a run fail or be inconclusive, besides its thresholds and `[[expect]]`:
//! - a client that panicked (its slot died; whatever it would have measured is missing);
//! - a group whose every session failed (nothing reached a viewer: there is nothing to judge
//!   latency or stalls on, and a threshold on "errors per session" may not catch it);
//! - a run in which no client ran at all (inconclusive: there is nothing to judge).

use super::model::{PlayerGroupReport, PublisherGroupReport, Report};
use crate::verdict::{Judged, Overall, overall};

pub fn judge(report: &Report) -> Overall {
    let mut items: Vec<Judged> = Vec::new();
    match &report.knee {
        // A knee run is expected to break a threshold at its last step: it passes when it found
        // a knee (a step that held), and fails when even the first step broke.
        Some(k) if k.knee.is_some() => items.push(Judged::pass()),
        Some(k) => items.push(Judged::fail(format!(
            "capacity knee of group {}: even the first step broke a threshold",
            k.group
        ))),
        None => items.extend(report.thresholds.iter().map(|t| {
            if t.pass {
                Judged::pass()
            } else {
                Judged::fail(format!(
                    "threshold {} ({}) {}: measured {}",
                    t.metric,
                    t.scope,
                    t.limit_text(),
                    t.value.map_or("nothing".to_string(), |v| v.to_string())
                ))
            }
        })),
    }
    items.extend(report.expectations.iter().map(|e| e.judged()));
    items.extend(report.loader.workers.iter().filter_map(|w| {
        w.lost_at_s.map(|at| {
            Judged::inconclusive(format!(
                "the load was short: worker {} was lost at t={at:.0}s with {:.0}% of the planned clients; what it measured before is merged, what it would have measured after is missing",
                w.index,
                w.load_share * 100.0
            ))
        })
    }));
    items.extend(report.players.iter().map(player_health));
    items.extend(report.publishers.iter().map(publisher_health));
    let ran = report
        .players
        .iter()
        .any(|g| g.summary.whole_run.sessions > 0 || g.summary.whole_run.errors.total() > 0)
        || report
            .publishers
            .iter()
            .any(|g| g.whole_run.sessions > 0 || g.whole_run.errors.total() > 0);
    let has_groups = !report.players.is_empty() || !report.publishers.is_empty();
    if has_groups && !ran {
        items.push(Judged::inconclusive(
            "no client session started during the run: there is nothing to judge",
        ));
    }
    overall(items)
}

/// Sessions that panicked: the slot caught it and counted it as an error of its own kind.
fn panics(errors: &crate::metrics::stats::ErrorCounts) -> u64 {
    let kind = crate::metrics::stats::ErrorKind::Panic.to_string();
    errors.0.get(&kind).copied().unwrap_or(0)
}

fn player_health(g: &PlayerGroupReport) -> Judged {
    let whole = &g.summary.whole_run;
    let panicked = panics(&whole.errors);
    if panicked > 0 {
        return Judged::fail(format!(
            "viewer group {}: {panicked} client session(s) panicked",
            g.name
        ));
    }
    let tried = whole.sessions + whole.errors.total();
    if tried > 0 && whole.sessions_with_media == 0 {
        return Judged::fail(format!(
            "viewer group {}: no session received media ({} error(s): {})",
            g.name,
            whole.errors.total(),
            error_list(&whole.errors)
        ));
    }
    Judged::pass()
}

fn publisher_health(g: &PublisherGroupReport) -> Judged {
    let whole = &g.whole_run;
    let panicked = panics(&whole.errors);
    if panicked > 0 {
        return Judged::fail(format!(
            "publisher group {}: {panicked} client session(s) panicked",
            g.name
        ));
    }
    if whole.sessions == 0 && whole.errors.total() > 0 {
        return Judged::fail(format!(
            "publisher group {}: no publisher got to publish ({} error(s): {})",
            g.name,
            whole.errors.total(),
            error_list(&whole.errors)
        ));
    }
    Judged::pass()
}

fn error_list(errors: &crate::metrics::stats::ErrorCounts) -> String {
    errors
        .0
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::stats::ErrorCounts;
    use crate::report::model::{PlayerSummary, WholeRun};
    use crate::report::thresholds::ThresholdResult;
    use crate::verdict::Verdict;

    fn errors(kinds: &[(&str, u64)]) -> ErrorCounts {
        ErrorCounts(kinds.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    fn viewers(sessions: u64, with_media: u64, errs: &[(&str, u64)]) -> PlayerGroupReport {
        PlayerGroupReport {
            name: "v".into(),
            protocol: "flv".into(),
            summary: PlayerSummary {
                whole_run: WholeRun {
                    sessions,
                    sessions_with_media: with_media,
                    errors: errors(errs),
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_panicked_client_fails_the_group_even_with_media() {
        let j = player_health(&viewers(10, 10, &[("panic", 1)]));
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.why.contains("1 client session(s) panicked"), "{}", j.why);
    }

    #[test]
    fn a_group_whose_every_session_failed_fails() {
        let j = player_health(&viewers(0, 0, &[("connect", 1_000)]));
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.why.contains("connect 1000"), "{}", j.why);
        assert_eq!(
            player_health(&viewers(10, 9, &[("eof", 1)])).verdict,
            Verdict::Pass
        );
    }

    /// A finished report (the fixture) reshaped: one viewer group that got media, no thresholds,
    /// expectations, knee or workers, so each test adds the one thing it judges.
    fn healthy_report() -> Report {
        let text = include_str!("../../tests/fixtures/report/report.json");
        let mut r: Report = serde_json::from_str(text).expect("the fixture is a report");
        r.players = vec![viewers(10, 10, &[])];
        r.publishers.clear();
        r.thresholds.clear();
        r.expectations.clear();
        r.knee = None;
        r.loader.workers.clear();
        r
    }

    fn threshold(pass: bool, value: Option<f64>) -> ThresholdResult {
        ThresholdResult {
            metric: "startup_ms.p99".into(),
            scope: "all".into(),
            min: None,
            max: Some(3000.0),
            value,
            pass,
            note: None,
        }
    }

    fn expectation(status: Verdict) -> crate::k8s::ExpectationResult {
        crate::k8s::ExpectationResult {
            kind: "scale_up".into(),
            description: "xiu-edge scales up".into(),
            status,
            pass: status == Verdict::Pass,
            evidence: "replicas 2 -> 4".into(),
            inconclusive: (status == Verdict::Inconclusive).then(|| "no HPA seen".to_string()),
        }
    }

    #[test]
    fn a_healthy_run_with_passing_thresholds_passes() {
        let mut r = healthy_report();
        r.thresholds = vec![threshold(true, Some(800.0))];
        r.expectations = vec![expectation(Verdict::Pass)];
        let o = judge(&r);
        assert_eq!(o.verdict, Verdict::Pass, "{:?}", o.reasons);
        assert!(o.reasons.is_empty());
    }

    #[test]
    fn a_failed_threshold_fails_and_says_what_was_measured() {
        let mut r = healthy_report();
        r.thresholds = vec![threshold(true, Some(1.0)), threshold(false, Some(4200.0))];
        let o = judge(&r);
        assert_eq!(o.verdict, Verdict::Fail);
        let why = o.reasons.join("\n");
        assert!(
            why.contains("startup_ms.p99 (all) ≤ 3000: measured 4200"),
            "{why}"
        );
        // Nothing measured is a failure too, and says "nothing".
        r.thresholds = vec![threshold(false, None)];
        assert!(judge(&r).reasons.join("\n").contains("measured nothing"));
    }

    #[test]
    fn what_could_not_be_judged_is_inconclusive_and_a_failure_outranks_it() {
        let mut r = healthy_report();
        r.expectations = vec![expectation(Verdict::Inconclusive)];
        let o = judge(&r);
        assert_eq!(o.verdict, Verdict::Inconclusive);
        assert!(
            o.reasons.join("\n").contains("no HPA seen"),
            "{:?}",
            o.reasons
        );
        r.thresholds = vec![threshold(false, Some(5000.0))];
        assert_eq!(judge(&r).verdict, Verdict::Fail);
    }

    #[test]
    fn a_lost_worker_makes_the_run_inconclusive() {
        let mut r = healthy_report();
        r.thresholds = vec![threshold(true, Some(800.0))];
        r.loader.workers = vec![crate::metrics::loader::WorkerHealth {
            index: 1,
            lost_at_s: Some(42.0),
            load_share: 0.5,
            ..Default::default()
        }];
        let o = judge(&r);
        assert_eq!(o.verdict, Verdict::Inconclusive);
        let why = o.reasons.join("\n");
        assert!(why.contains("worker 1 was lost at t=42s with 50%"), "{why}");
    }

    #[test]
    fn a_run_in_which_no_client_ran_is_never_a_pass() {
        let mut r = healthy_report();
        r.players = vec![viewers(0, 0, &[])];
        r.thresholds = vec![threshold(true, Some(1.0))];
        let o = judge(&r);
        assert_eq!(o.verdict, Verdict::Inconclusive);
        assert!(o.reasons.join("\n").contains("nothing to judge"));
    }

    #[test]
    fn a_knee_run_passes_when_a_step_held_despite_its_broken_last_step() {
        let mut r = healthy_report();
        // The step that broke is in the thresholds of the knee, not the run's.
        r.thresholds = vec![threshold(false, Some(9000.0))];
        let step = crate::report::knee::StepResult {
            step: 0,
            target: 100,
            active_mean: 100.0,
            pass: true,
            thresholds: vec![threshold(true, Some(900.0))],
            mbps_in: 200.0,
            server_cpu_percent: None,
            server_rss_mib: None,
            loader_saturated_seconds: 0,
        };
        let mut knee = crate::report::knee::KneeReport {
            group: "v".into(),
            clients: crate::report::knee::KneeClients::Viewers,
            steps: vec![step.clone()],
            knee: None,
            broke_at: Some(1),
            cpu_percent_per_viewer: None,
            rss_kib_per_viewer: None,
            mbps_per_viewer: None,
            servers: 1,
            target_audience: None,
            headroom: 0.3,
            pods_needed: None,
            target_streams: None,
            origins_needed: None,
            note: String::new(),
        };
        knee.knee = Some(step.clone());
        r.knee = Some(knee.clone());
        assert_eq!(judge(&r).verdict, Verdict::Pass);
        knee.knee = None;
        r.knee = Some(knee);
        let o = judge(&r);
        assert_eq!(o.verdict, Verdict::Fail);
        assert!(o.reasons.join("\n").contains("even the first step broke"));
    }
}

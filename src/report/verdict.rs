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
}

//! `summary.md` and the end-of-run terminal summary (the same text: Markdown reads fine in a
//! terminal).

use super::model::{PlayerSummary, Report, StopReason, Verdict};
use super::text::{errors, pcts};
use std::fmt::Write;

fn player_row(out: &mut String, name: &str, protocol: &str, p: &PlayerSummary) {
    let _ = writeln!(
        out,
        "| {name} | {protocol} | {} / {} | {} / {} | {} | {} | {} | {:.2}% | {} | {:.1} |",
        p.sessions_with_media,
        p.sessions,
        p.whole_run.sessions_with_media,
        p.whole_run.sessions,
        pcts(&p.startup_ms),
        pcts(&p.latency_ms),
        p.stalls,
        p.stall_ratio * 100.0,
        errors(&p.errors),
        p.mbps,
    );
}

/// What the run did to the servers and what the local kubelet did about it; without a cluster
/// section, the expectations judged on it.
fn faults(out: &mut String, r: &Report) {
    let show_expectations = r.cluster.is_none() && !r.expectations.is_empty();
    if r.faults.is_empty() && r.kubelet.is_empty() && !show_expectations {
        return;
    }
    let _ = writeln!(out, "\n## Faults\n");
    for f in &r.faults {
        let _ = writeln!(out, "- **fault** {f}");
    }
    for k in &r.kubelet {
        let _ = writeln!(out, "- **kubelet** {k}");
    }
    if show_expectations {
        out.push('\n');
        out.push_str(&crate::k8s::summary::expectations_markdown(&r.expectations));
    }
}

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# xiuload run `{}`: {}\n",
        r.run.name,
        r.verdict.shout()
    );
    if r.verdict != Verdict::Pass {
        for reason in &r.verdict_reasons {
            let _ = writeln!(out, "- **{}**: {reason}", r.verdict.as_str());
        }
        if !r.verdict_reasons.is_empty() {
            out.push('\n');
        }
    }
    let stopped = match r.run.stopped_by {
        StopReason::Completed => "ran to the end of its plan".to_string(),
        StopReason::Interrupted => format!(
            "**interrupted** after {:.1}s of {:.1}s planned: partial results",
            r.run.duration_s, r.run.planned_duration_s
        ),
    };
    let _ = writeln!(
        out,
        "- run `{}` against {} from {}, {stopped}",
        r.run.id, r.run.target, r.run.started_at
    );
    let _ = writeln!(
        out,
        "- measured after a {:.0}s warm-up (\"whole run\" columns include it: a publisher that connected during the warm-up counts there, not in the judged figures); percentiles are p50 / p95 / p99 in ms",
        r.run.warmup_s
    );
    if r.loader.saturated {
        let _ = writeln!(
            out,
            "- **WARNING: the load generator was saturated**: {}. Results describe xiuload, not the server; use more or bigger load-generator pods.",
            r.loader.reasons.join("; ")
        );
    } else {
        let _ = writeln!(
            out,
            "- load generator healthy: CPU mean {:.0}% / max {:.0}% of one core ({} cores), event-loop lag p99 {} ms",
            r.loader.cpu_percent_mean,
            r.loader.cpu_percent_max,
            r.loader.cores,
            r.loader
                .lag_ms_p99
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "–".into())
        );
    }
    for w in &r.loader.workers {
        let _ = writeln!(out, "- {}", worker_line(w));
    }

    for note in &r.notes {
        let _ = writeln!(out, "- note: {note}");
    }

    faults(&mut out, r);
    if !r.players.is_empty() {
        let _ = writeln!(out, "\n## Players\n");
        let _ = writeln!(
            out,
            "| group | protocol | served / sessions | whole run: served / sessions | startup ms | latency ms | stalls | stall time | errors | Mbit/s |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for g in &r.players {
            player_row(&mut out, &g.name, &g.protocol, &g.summary);
        }
        if r.players.len() > 1 {
            player_row(&mut out, "**all**", "", &r.all_players);
        }
        let lost: u64 = r.players.iter().map(|g| g.summary.lost_frames).sum();
        let unstamped: u64 = r.players.iter().map(|g| g.summary.unstamped_frames).sum();
        let _ = writeln!(
            out,
            "\nFrames: {} received, {lost} lost, {} duplicated, {} reordered, {unstamped} without our stamp.",
            r.all_players.frames, r.all_players.duplicate_frames, r.all_players.reordered_frames
        );
        if let Some(hls) = r.protocols.get("hls") {
            let _ = writeln!(
                out,
                "HLS: {} segments ({} slower than real time, {} skipped), {} stale playlists, playlist fetch {} ms, segment download {} ms.",
                hls.segments,
                hls.slow_segments,
                hls.skipped_segments,
                hls.stale_playlists,
                pcts(&hls.playlist_ms),
                pcts(&hls.segment_ms)
            );
        }
    }
    if !r.publishers.is_empty() {
        let _ = writeln!(out, "\n## Publishers\n");
        let _ = writeln!(
            out,
            "| group | streams | sessions | connect ms | whole run: sessions, connect ms | send lateness ms | frames | errors | Mbit/s |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for p in &r.publishers {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {}, {} | {} | {} | {} | {:.1} |",
                p.name,
                p.streams.len(),
                p.sessions,
                pcts(&p.connect_ms),
                p.whole_run.sessions,
                pcts(&p.whole_run.connect_ms),
                pcts(&p.lateness_ms),
                p.frames,
                errors(&p.errors),
                p.mbps
            );
        }
    }
    if let Some(k) = &r.knee {
        let _ = writeln!(out, "\n## Capacity knee (group `{}`)\n", k.group);
        let _ = writeln!(out, "{}.\n", k.note);
        let _ = writeln!(
            out,
            "| step | target | active | pass | Mbit/s | server CPU % | server RSS MiB | failed thresholds |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for s in &k.steps {
            let failed: Vec<String> = s
                .thresholds
                .iter()
                .filter(|t| !t.pass)
                .map(|t| {
                    format!(
                        "`{}` {} = {}",
                        t.metric,
                        t.scope,
                        t.value.map(|v| v.to_string()).unwrap_or_else(|| "–".into())
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {:.1} | {} | {} | {} |",
                s.step + 1,
                s.target,
                s.active_mean,
                if s.pass { "✅" } else { "❌" },
                s.mbps_in,
                s.server_cpu_percent
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_else(|| "–".into()),
                s.server_rss_mib
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or_else(|| "–".into()),
                failed.join(", ")
            );
        }
        if let Some(knee) = &k.knee {
            let per = |v: Option<f64>, unit: &str| {
                v.map(|v| format!("{v:.3} {unit}"))
                    .unwrap_or_else(|| "–".into())
            };
            let (who, one) = match k.clients {
                crate::report::knee::KneeClients::Viewers => ("viewers", "viewer"),
                crate::report::knee::KneeClients::Publishers => ("publishers", "publisher"),
            };
            let _ = writeln!(
                out,
                "\nAt the knee ({:.0} {who} on {} server(s)): per {one} {} server CPU, {} server memory, {} delivered to viewers.",
                knee.active_mean,
                k.servers,
                per(k.cpu_percent_per_viewer, "% of a core"),
                per(k.rss_kib_per_viewer, "KiB"),
                per(k.mbps_per_viewer, "Mbit/s"),
            );
        }
        if let (Some(streams), Some(origins)) = (k.target_streams, k.origins_needed) {
            let _ = writeln!(
                out,
                "For {streams} concurrent streams with {:.0} % headroom: **{origins} origins**.",
                k.headroom * 100.0
            );
        }
        if let (Some(audience), Some(pods)) = (k.target_audience, k.pods_needed) {
            let _ = writeln!(
                out,
                "For {audience} concurrent viewers with {:.0} % headroom: **{pods} pods**.",
                k.headroom * 100.0
            );
        }
    }
    if let Some(cluster) = &r.cluster {
        out.push('\n');
        out.push_str(&crate::k8s::summary::render_markdown(
            cluster,
            &r.expectations,
        ));
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(out, "\n## Thresholds\n");
        let _ = writeln!(out, "| | metric | scope | limit | measured |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for t in &r.thresholds {
            let limit = t.limit_text();
            let value = t
                .value
                .map(|v| format!("{v}"))
                .unwrap_or_else(|| t.note.clone().unwrap_or_else(|| "–".into()));
            let mark = if t.pass { "✅ pass" } else { "❌ FAIL" };
            let _ = writeln!(
                out,
                "| {mark} | `{}` | {} | {limit} | {value} |",
                t.metric, t.scope
            );
        }
    }
    out
}

/// One worker of a distributed run: its health, and its loss or gaps.
pub fn worker_line(w: &crate::metrics::loader::WorkerHealth) -> String {
    let h = &w.health;
    let mut line = format!(
        "worker {} ({:.0}% of the clients): CPU mean {:.0}% / max {:.0}% of one core, lag p99 {} ms, RSS max {} MiB",
        w.index,
        w.load_share * 100.0,
        h.cpu_percent_mean,
        h.cpu_percent_max,
        h.lag_ms_p99.map_or("–".into(), |v| format!("{v:.1}")),
        w.rss_mib_max.map_or("–".into(), |v| format!("{v:.0}")),
    );
    if h.saturated {
        line.push_str(&format!(", **saturated** ({})", h.reasons.join("; ")));
    }
    match (w.lost_at_s, w.first_missing_s) {
        (Some(at), _) => line.push_str(&format!(", **lost at t={at:.0}s**")),
        (None, Some(at)) => line.push_str(&format!(
            ", {} second(s) missing from t={at:.0}s (cut off, not lost)",
            w.missing_windows
        )),
        (None, None) => {}
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real local-smoke report, written before reports had `notes`.
    fn fixture() -> Report {
        serde_json::from_str(include_str!("../../tests/fixtures/report/report.json")).unwrap()
    }

    #[test]
    fn faults_are_listed_with_their_expectations_before_the_players() {
        use crate::scenario::fault::{FaultAction, FaultEvent, FaultTarget};
        let mut r = fixture();
        assert!(r.faults.is_empty(), "reports before faults read as none");
        assert!(!render(&r).contains("## Faults"));
        let mut restart = FaultEvent::done_at(10.0, FaultAction::Restart, FaultTarget::Origin);
        restart.done_s = Some(15.5);
        r.faults.push(restart);
        r.kubelet.push(crate::local::KubeletEvent {
            at_s: 10.2,
            edge: 1,
            action: crate::local::kubelet::KubeletAction::Restart,
            container: Some("xiu".into()),
            restarts: Some(1),
            reason: "exited: signal: 9 (SIGKILL)".into(),
            done_s: Some(10.6),
            error: None,
        });
        r.expectations.push(crate::k8s::ExpectationResult {
            kind: "max_viewers_dropped".into(),
            description: "at most 5 viewers dropped".into(),
            status: crate::verdict::Verdict::Fail,
            pass: false,
            evidence: "12 dropped".into(),
            inconclusive: None,
        });
        let md = render(&r);
        let faults = md.find("## Faults").expect("a faults section");
        assert!(faults < md.find("## Players").unwrap(), "{md}");
        assert!(
            md.contains("- **fault** t=10.0s restart origin 0: done at t=15.5s"),
            "{md}"
        );
        assert!(
            md.contains("- **kubelet** t=10.2s restart edge 1 xiu (restart #1): exited: signal: 9 (SIGKILL); up at t=10.6s"),
            "{md}"
        );
        assert!(
            md.contains("| **FAIL** | at most 5 viewers dropped | 12 dropped |"),
            "{md}"
        );
    }

    #[test]
    fn notes_are_listed_under_the_run_line_and_older_reports_have_none() {
        let mut r = fixture();
        assert!(r.notes.is_empty());
        assert!(!render(&r).contains("note:"));
        r.notes = vec!["players group \"fans\": expect about 18 viewers".into()];
        let md = render(&r);
        let note = md
            .find("- note: players group \"fans\": expect about 18 viewers")
            .expect("note rendered");
        assert!(note < md.find("## Players").unwrap(), "{md}");
    }
}

//! Issue 13: the local topology acts as the kubelet would for deploy/'s edge pods. The scenarios
//! `scenarios/local-edge-kill.toml` and `local-edge-hang.toml` run unchanged against real xiu
//! 0.14.0: an edge killed by a fault is restarted without a restart fault and its viewers move
//! to the ready edge meanwhile; an edge hung by SIGSTOP is taken out of the viewers' rotation by
//! its failed readiness probes and restarted by its failed liveness probes (preStop drain, grace
//! period, SIGKILL), then comes back into rotation.

mod common;

use std::path::Path;
use xiuload::local::KubeletEvent;
use xiuload::local::kubelet::KubeletAction;
use xiuload::metrics::timeline::{TimelinePoint, read_timeline};
use xiuload::report::model::{Report, Verdict};
use xiuload::scenario::fault::FaultOutcome;

/// The first event of `action` on edge `edge`, which must exist.
fn first(r: &Report, edge: u32, action: KubeletAction) -> &KubeletEvent {
    r.kubelet
        .iter()
        .find(|e| e.edge == edge && e.action == action)
        .unwrap_or_else(|| panic!("no {action:?} of edge {edge} in {:#?}", r.kubelet))
}

fn expectation<'a>(r: &'a Report, kind: &str) -> &'a xiuload::k8s::ExpectationResult {
    r.expectations
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} expectation in {:#?}", r.expectations))
}

/// Viewer sessions that ended with an error in the seconds `(from, to]`.
fn viewer_errors(timeline: &[TimelinePoint], from: f64, to: f64) -> u64 {
    timeline
        .iter()
        .filter(|p| p.t > from && p.t <= to)
        .flat_map(|p| p.players.values())
        .map(|p| p.errors)
        .sum()
}

/// The kubelet's actions are marked on the timeline, in the second they happened.
fn marked(dir: &Path, e: &KubeletEvent) {
    let timeline = read_timeline(&dir.join("timeline.jsonl")).unwrap();
    let p = timeline
        .iter()
        .find(|p| p.kubelet.contains(&e.label()))
        .unwrap_or_else(|| panic!("{} is not marked on the timeline", e.label()));
    assert!(
        p.t >= e.at_s - 0.01 && p.t < e.at_s + 1.5,
        "{} at t={} marked at t={}",
        e.label(),
        e.at_s,
        p.t
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_is_restarted_by_the_kubelet_and_its_viewers_move_to_the_ready_edge() {
    common::xiu_bin();
    let out = tempfile::tempdir().unwrap();
    let outcome = common::run(&common::scenario_text("local-edge-kill.toml"), out.path()).await;
    let r = &outcome.report;
    assert_eq!(r.faults.len(), 1, "{:#?}", r.faults);
    let kill = &r.faults[0];
    assert_eq!(kill.outcome, FaultOutcome::Done, "{kill:?}");

    // The kill takes edge 0 out of rotation at once (its xiu container is gone)...
    let out_of = first(r, 0, KubeletAction::OutOfRotation);
    assert!(
        out_of.at_s - kill.at_s < 0.5,
        "out of rotation {:.2}s after the kill",
        out_of.at_s - kill.at_s
    );
    assert!(out_of.reason.contains("xiu killed by a fault"), "{out_of}");
    // ... the kubelet starts its xiu again at once (the first restart has no back-off), bound 2 s...
    let restart = first(r, 0, KubeletAction::Restart);
    assert_eq!(restart.container.as_deref(), Some("xiu"));
    assert_eq!(restart.restarts, Some(1));
    assert!(restart.error.is_none(), "{restart}");
    let up = restart.done_s.expect("the restarted xiu came up") - kill.at_s;
    assert!(up < 2.0, "xiu up {up:.1}s after the kill, bound 2 s");
    // ... and the edge is back in rotation once its probes pass: the next readiness tick of the
    // xiu container (period 5 s) after its startup probe; bound 12 s.
    let back = first(r, 0, KubeletAction::BackInRotation);
    let back_after = back.at_s - kill.at_s;
    assert!(
        back_after > 0.0 && back_after < 12.0,
        "back in rotation {back_after:.1}s after the kill, bound 12 s"
    );
    // Edge 1 never left the rotation, and nothing else was restarted.
    assert!(r.kubelet.iter().all(|e| e.edge == 0), "{:#?}", r.kubelet);
    assert_eq!(
        r.kubelet
            .iter()
            .filter(|e| e.action == KubeletAction::Restart)
            .count(),
        1
    );

    // Viewers were served again within 5 s, on the ready edge: the five viewers of edge 0 each
    // lost their session once and got the stream from edge 1 at their first retry. Sent back to
    // edge 0 (no rotation) they would fail again on the restarted xiu until its sidecar relayed
    // the stream into it.
    assert_eq!(
        expectation(r, "recovered_within").status,
        Verdict::Pass,
        "{:#?}",
        r.expectations
    );
    assert_eq!(expectation(r, "max_viewers_dropped").status, Verdict::Pass);
    let timeline = read_timeline(&out.path().join("timeline.jsonl")).unwrap();
    let failed = viewer_errors(&timeline, kill.at_s - 0.5, back.at_s);
    assert!(
        (1..=6).contains(&failed),
        "{failed} viewer sessions failed between the kill and the return to rotation"
    );
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.verdict_reasons);

    // The report shows what the kubelet did: report.json, summary.md, the charts, the timeline.
    let json = common::read_json(&out.path().join("report.json"));
    assert_eq!(json["kubelet"][0]["action"], "out_of_rotation");
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("- **kubelet** ") && summary.contains("restart edge 0 xiu (restart #1)"),
        "{summary}"
    );
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains(r#"<tr data-kubelet="restart edge 0 xiu">"#));
    for e in [out_of, restart, back] {
        marked(out.path(), e);
    }
}

/// Hung, not dead: the readiness probe (the sidecar's RTMP handshake) fails 3 times at 5 s, so
/// edge 0 leaves the rotation within about 20 s; the liveness probe (`GET /` on xiu's API, 5 s
/// timeout) fails 6 times at 10 s, about 60 s; then the kubelet stops the container: the preStop
/// hook (the sidecar's `/drain`, 10 s locally as the viewers cannot be counted), SIGINT (pending:
/// the process is stopped), SIGKILL at the end of the 40 s grace; starts it again; the sidecar's
/// drain ends with the old xiu, and the edge returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_edge_leaves_the_rotation_and_is_restarted_by_its_failed_liveness_probes() {
    common::xiu_bin();
    let out = tempfile::tempdir().unwrap();
    let outcome = common::run(&common::scenario_text("local-edge-hang.toml"), out.path()).await;
    let r = &outcome.report;
    let stop = &r.faults[0];
    assert_eq!(stop.outcome, FaultOutcome::Done, "{stop:?}");

    let out_of = first(r, 0, KubeletAction::OutOfRotation);
    let after = |e: &KubeletEvent| e.at_s - stop.at_s;
    assert!(
        (8.0..25.0).contains(&after(out_of)),
        "out of rotation {:.1}s after the stop: 3 readiness failures at 5 s expected",
        after(out_of)
    );
    assert!(
        out_of.reason.contains("sidecar readiness probe") && out_of.reason.contains("3 times"),
        "{out_of}"
    );
    let restart = first(r, 0, KubeletAction::Restart);
    assert_eq!(restart.container.as_deref(), Some("xiu"));
    assert!(
        restart.reason.contains("xiu liveness probe")
            && restart.reason.contains("6 times in a row"),
        "{restart}"
    );
    // 6 liveness failures (≈ 55-65 s) + the grace period (40 s) the stopped xiu ignores.
    assert!(
        (90.0..112.0).contains(&after(restart)),
        "restarted {:.1}s after the stop",
        after(restart)
    );
    assert!(restart.done_s.is_some(), "{restart}");
    let back = first(r, 0, KubeletAction::BackInRotation);
    assert!(
        back.at_s > restart.at_s && back.at_s - restart.at_s < 15.0,
        "back in rotation {:.1}s after the restart",
        back.at_s - restart.at_s
    );
    assert!(r.kubelet.iter().all(|e| e.edge == 0), "{:#?}", r.kubelet);

    // The viewers left on the hung edge were served again by edge 1 once edge 0 was out of
    // rotation, long before the restart: without the rotation they would reconnect to the hung
    // edge until then.
    let recovered = expectation(r, "recovered_within");
    assert_eq!(recovered.status, Verdict::Pass, "{recovered:#?}");
    assert!(r.verdict == Verdict::Pass, "{:?}", r.verdict_reasons);
    for e in [out_of, restart, back] {
        marked(out.path(), e);
    }
}

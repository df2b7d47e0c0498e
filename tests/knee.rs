//! Capacity knee against a local xiu: steps are judged one by one and the run stops at the first
//! step that breaks a threshold.

mod common;

fn scenario(threshold: &str) -> String {
    format!(
        r#"
[run]
name = "knee-test"
[target.local]
[[publishers]]
name = "cams"
stream = "knee"
count = 1
video = {{ width = 640, height = 360, fps = 25, bitrate = "800kbps", gop = "1s" }}
[[players]]
name = "viewers"
protocol = "flv"
publishers = "cams"
[knee]
group = "viewers"
start = 2
step = 2
max = 6
step_duration = "5s"
settle = "2s"
ramp = "1s"
target_audience = 1000
headroom = 0.5
{threshold}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_that_hold_give_a_knee_with_server_costs_and_a_fleet_size() {
    let _ = common::xiu_bin();
    let out = tempfile::tempdir().unwrap();
    let text = scenario("[[thresholds]]\nmetric = \"error_rate\"\nmax = 0.5\n");
    let outcome = common::run(&text, out.path()).await;
    let k = outcome.report.knee.expect("knee report");
    assert_eq!(
        k.steps.iter().map(|s| s.target).collect::<Vec<_>>(),
        [2, 4, 6],
        "{k:#?}"
    );
    assert!(k.steps.iter().all(|s| s.pass), "{k:#?}");
    assert!(
        k.broke_at.is_none() && k.note.contains("raise `max`"),
        "{}",
        k.note
    );
    let knee = k.knee.as_ref().unwrap();
    assert_eq!(knee.target, 6);
    assert!(
        (5.0..=6.0).contains(&knee.active_mean),
        "{}",
        knee.active_mean
    );
    assert!(knee.server_cpu_percent.is_some_and(|c| c > 0.0), "{knee:?}");
    assert!(knee.server_rss_mib.is_some_and(|m| m > 1.0), "{knee:?}");
    // 6 viewers on one server at 50 % headroom: 3 per pod for 1000 viewers.
    let expected = (1000.0 / (knee.active_mean * 0.5)).ceil() as u64;
    assert_eq!(k.pods_needed, Some(expected));
    assert!(
        k.mbps_per_viewer.is_some_and(|m| m > 0.5 && m < 1.5),
        "{:?}",
        k.mbps_per_viewer
    );
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(summary.contains("Capacity knee"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_breaks_a_threshold_stops_the_run() {
    let _ = common::xiu_bin();
    let out = tempfile::tempdir().unwrap();
    // Nobody gets latency under a microsecond: the first step breaks.
    let text = scenario("[[thresholds]]\nmetric = \"latency_ms.p50\"\nmax = 0.001\n");
    let started = std::time::Instant::now();
    let outcome = common::run(&text, out.path()).await;
    let k = outcome.report.knee.expect("knee report");
    assert_eq!(k.steps.len(), 1, "{k:#?}");
    assert_eq!(k.broke_at, Some(0));
    assert!(k.knee.is_none() && k.pods_needed.is_none());
    assert!(k.note.contains("start lower"), "{}", k.note);
    assert_eq!(
        outcome.report.verdict,
        xiuload::report::model::Verdict::Fail
    );
    // Stopped after the first step, not after all three (15 s).
    assert!(started.elapsed().as_secs() < 11, "{:?}", started.elapsed());
}

/// Ingest capacity: the knee steps a publisher group, and sizes the origins for a number of
/// streams; a threshold on the publishers judges each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knee_of_publishers_gives_publishers_per_origin_and_origins_needed() {
    let _ = common::xiu_bin();
    let out = tempfile::tempdir().unwrap();
    let text = r#"
[run]
name = "ingest-knee-test"
[target.local]
[[publishers]]
name = "cams"
stream = "cam-{i}"
video = { width = 320, height = 180, fps = 25, bitrate = "400kbps", gop = "1s" }
[knee]
group = "cams"
start = 1
step = 2
max = 5
step_duration = "4s"
settle = "2s"
ramp = "1s"
target_streams = 200
headroom = 0.3
[[thresholds]]
metric = "lateness_ms.p99"
scope = "publishers"
max = 1000
"#;
    let outcome = common::run(text, out.path()).await;
    let k = outcome.report.knee.expect("knee report");
    assert_eq!(k.clients, xiuload::report::knee::KneeClients::Publishers);
    assert_eq!(
        k.steps.iter().map(|s| s.target).collect::<Vec<_>>(),
        [1, 3, 5],
        "{k:#?}"
    );
    let knee = k.knee.as_ref().expect("every step held");
    assert_eq!(knee.target, 5);
    assert!(
        (4.0..=5.0).contains(&knee.active_mean),
        "{}",
        knee.active_mean
    );
    // One origin took the publishers: origins for 200 streams at 30 % headroom.
    assert_eq!(k.servers, 1);
    let per_origin = knee.active_mean * 0.7;
    assert_eq!(k.origins_needed, Some((200.0 / per_origin).ceil() as u64));
    assert_eq!(k.pods_needed, None);
    // Every stream of the last step published once.
    let p = &outcome.report.publishers[0];
    assert_eq!(p.streams.len(), 5);
    assert_eq!(p.whole_run.sessions, 5, "{:?}", p.whole_run);
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(summary.contains("origins**"), "{summary}");
}

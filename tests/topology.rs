//! The production topology on loopback: origin + 2 edges + sidecars, as `deploy/` runs it.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_spread_over_edges_are_served_from_their_first_request() {
    let _ = common::xiu_bin();
    let out = tempfile::tempdir().unwrap();
    // No warm-up: every error counts, including the first request to each edge, which xiu would
    // answer with an empty 200 if the sidecar had not subscribed the edge already.
    let text = r#"
[run]
duration = "20s"

[target.local]
edges = 2

[[publishers]]
name = "cams"
stream = "topo-{i}"
count = 2
video = { width = 640, height = 360, fps = 25, bitrate = "800kbps", gop = "1s" }

[[players]]
name = "flv-viewers"
protocol = "flv"
publishers = "cams"
ramp = [{ duration = "3s", target = 0 }, { duration = "1s", target = 4 }, { duration = "16s", target = 4 }]
reconnect = { max_attempts = 0, backoff = "30s" }

[[players]]
name = "rtmp-viewers"
protocol = "rtmp"
publishers = "cams"
ramp = [{ duration = "3s", target = 0 }, { duration = "1s", target = 2 }, { duration = "16s", target = 2 }]
reconnect = { max_attempts = 0, backoff = "30s" }

[[players]]
name = "hls-viewers"
protocol = "hls"
publishers = "cams"
first_frame_timeout = "15s"
ramp = [{ duration = "4s", target = 0 }, { duration = "1s", target = 2 }, { duration = "15s", target = 2 }]
reconnect = { max_attempts = 0, backoff = "30s" }
"#;
    let outcome = common::run(text, out.path()).await;
    let r = &outcome.report;
    assert!(r.run.target.contains("2 edges"), "{}", r.run.target);
    for g in &r.players {
        let s = &g.summary;
        let mut errors = s.errors.clone();
        errors.merge(&s.errors_during_warmup);
        assert!(errors.0.is_empty(), "{}: {:?}", g.name, errors.0);
        assert!(s.sessions > 0, "{}", g.name);
        assert_eq!(
            s.sessions_with_media, s.sessions,
            "{}: a viewer got nothing",
            g.name
        );
        assert_eq!(s.lost_frames, 0, "{}", g.name);
        assert!(s.latency_ms.p50_ms.is_some(), "{}", g.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_over_two_origins_reach_viewers_on_every_edge() {
    // `[target.local] origins = 2`: publishers go through HAProxy (the publish LoadBalancer's
    // stand-in) and land on either origin; each edge's sidecar relays every stream from whichever
    // origin holds it.
    let _ = common::xiu_bin();
    let out = tempfile::tempdir().unwrap();
    let text = r#"
[run]
duration = "14s"

[target.local]
origins = 2
edges = 2

[[publishers]]
name = "cams"
stream = "ingest-{i}"
count = 4
video = { width = 640, height = 360, fps = 25, bitrate = "800kbps", gop = "1s" }

[[players]]
name = "flv-viewers"
protocol = "flv"
publishers = "cams"
ramp = [{ duration = "4s", target = 0 }, { duration = "1s", target = 8 }, { duration = "9s", target = 8 }]
reconnect = { max_attempts = 0, backoff = "30s" }
"#;
    let outcome = common::run(text, out.path()).await;
    let r = &outcome.report;
    assert!(
        r.run.target.contains("2 local origins behind HAProxy"),
        "{}",
        r.run.target
    );
    assert_eq!(r.publishers[0].whole_run.sessions, 4);
    let s = &r.players[0].summary;
    let mut errors = s.errors.clone();
    errors.merge(&s.errors_during_warmup);
    assert!(errors.0.is_empty(), "{:?}", errors.0);
    assert_eq!(s.whole_run.sessions, 8);
    assert_eq!(s.whole_run.sessions_with_media, 8, "a viewer got nothing");
    assert_eq!(
        r.verdict,
        xiuload::verdict::Verdict::Pass,
        "{:?}",
        r.verdict_reasons
    );
}

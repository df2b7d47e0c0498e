//! End-to-end runs against a real xiu 0.14.0 on loopback.

mod common;

use std::time::Duration;
use xiuload::report::model::StopReason;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_to_flv_hls_and_rtmp_players_measures_clean_playback() {
    let xiu = common::start_xiu().await;
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[run]
duration = "22s"
warmup = "10s"
{target}
[[publishers]]
name = "cams"
stream = "e2e-{{i}}"
count = 1
video = {{ width = 640, height = 360, fps = 25, bitrate = "800kbps", gop = "1s" }}

[[players]]
name = "flv-viewers"
protocol = "flv"
publishers = "cams"
ramp = [{{ duration = "2s", target = 0 }}, {{ duration = "1s", target = 3 }}, {{ duration = "19s", target = 3 }}]

[[players]]
name = "rtmp-viewers"
protocol = "rtmp"
publishers = "cams"
ramp = [{{ duration = "2s", target = 0 }}, {{ duration = "1s", target = 2 }}, {{ duration = "19s", target = 2 }}]

[[players]]
name = "hls-viewers"
protocol = "hls"
publishers = "cams"
first_frame_timeout = "15s"
ramp = [{{ duration = "3s", target = 0 }}, {{ duration = "1s", target = 2 }}, {{ duration = "18s", target = 2 }}]

[[thresholds]]
metric = "error_rate"
max = 0.0
"#,
        target = common::remote_target(&xiu)
    );
    let outcome = common::run(&text, out.path()).await;
    let r = &outcome.report;
    assert_eq!(r.run.stopped_by, StopReason::Completed);
    for g in &r.players {
        let s = &g.summary;
        assert!(
            s.errors.0.is_empty(),
            "{} errors after warm-up: {:?}",
            g.name,
            s.errors
        );
        assert!(s.frames > 0, "{} received no frames", g.name);
        assert_eq!(s.lost_frames, 0, "{} lost frames", g.name);
        assert_eq!(
            s.unstamped_frames, 0,
            "{}: frames without our stamp",
            g.name
        );
        let p50 = s
            .latency_ms
            .p50_ms
            .unwrap_or_else(|| panic!("{}: no latency", g.name));
        // Loopback: FLV/RTMP deliver within a frame or two (xiu may hold a GOP at start); HLS
        // adds a segment (2 s) or more.
        let limit = if g.protocol == "hls" {
            12_000.0
        } else {
            1_500.0
        };
        assert!(p50 > 0.0 && p50 < limit, "{}: latency p50 {p50} ms", g.name);
    }
    let flv = &r.protocols["flv"];
    // 3 viewers of an 800 kbit/s + 128 kbit/s stream.
    assert!(flv.mbps > 2.0 && flv.mbps < 3.5, "flv Mbit/s {}", flv.mbps);
    assert!(r.publishers[0].lateness_ms.p99_ms.unwrap() < 100.0);
    assert_eq!(r.verdict, xiuload::report::model::Verdict::Pass);
    // Files a user reads.
    let json = common::read_json(&out.path().join("report.json"));
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["verdict"], "pass");
    let timeline =
        xiuload::metrics::timeline::read_timeline(&out.path().join("timeline.jsonl")).unwrap();
    assert!(timeline.len() >= 20, "{} timeline points", timeline.len());
    assert!(
        timeline
            .iter()
            .any(|p| p.players.get("hls").is_some_and(|h| h.active == 2))
    );
    assert!(
        std::fs::read_to_string(out.path().join("summary.md"))
            .unwrap()
            .contains("PASS")
    );
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("data-title=\"Connected clients\"") && html.contains("PASS"));
    // The publisher connected during the 10 s warm-up: the judged figures have no session of
    // it, the whole-run ones do, and the summary shows both, labelled.
    let cams = &r.publishers[0];
    assert_eq!(cams.sessions, 0);
    assert_eq!(cams.whole_run.sessions, 1);
    assert_eq!(cams.whole_run.connect_ms.count, 1);
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("whole run: sessions, connect ms") && summary.contains("| cams | 1 | 0 |"),
        "{summary}"
    );
    assert!(html.contains("whole run: sessions, connect ms"));
    xiu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_of_a_missing_stream_count_errors_instead_of_hanging() {
    let xiu = common::start_xiu().await;
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[run]
duration = "6s"
{target}
[[players]]
name = "flv-viewers"
protocol = "flv"
streams = ["does-not-exist"]
count = 1
first_frame_timeout = "2s"
reconnect = {{ max_attempts = 0, backoff = "10s" }}

[[players]]
name = "rtmp-viewers"
protocol = "rtmp"
streams = ["does-not-exist"]
count = 1
first_frame_timeout = "2s"
reconnect = {{ max_attempts = 0, backoff = "10s" }}

[[players]]
name = "hls-viewers"
protocol = "hls"
streams = ["does-not-exist"]
count = 1
first_frame_timeout = "2s"
reconnect = {{ max_attempts = 0, backoff = "10s" }}
"#,
        target = common::remote_target(&xiu)
    );
    let started = std::time::Instant::now();
    let outcome = common::run(&text, out.path()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "run hung: {:?}",
        started.elapsed()
    );
    let by_name = |n: &str| {
        &outcome
            .report
            .players
            .iter()
            .find(|g| g.name == n)
            .unwrap()
            .summary
    };
    // xiu's HTTP-FLV answers an unknown stream with an empty 200.
    assert_eq!(
        by_name("flv-viewers").errors.0.get("empty_200"),
        Some(&1),
        "{:?}",
        by_name("flv-viewers").errors
    );
    // RTMP says Play.Start anyway; nothing arrives.
    assert_eq!(
        by_name("rtmp-viewers").errors.0.get("no_media"),
        Some(&1),
        "{:?}",
        by_name("rtmp-viewers").errors
    );
    // HLS: 404 playlists until the first-frame timeout.
    assert_eq!(
        by_name("hls-viewers").errors.0.get("no_media"),
        Some(&1),
        "{:?}",
        by_name("hls-viewers").errors
    );
    assert!(by_name("hls-viewers").sessions_with_media == 0);
    // No thresholds are set, yet no viewer got media: that is not a pass.
    assert_eq!(
        outcome.report.verdict,
        xiuload::report::model::Verdict::Fail
    );
    assert!(
        outcome
            .report
            .verdict_reasons
            .iter()
            .any(|r| r.contains("hls-viewers: no session received media")),
        "{:?}",
        outcome.report.verdict_reasons
    );
    xiu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_killed_mid_run_shows_as_player_eofs_and_the_report_is_written() {
    let xiu = common::start_xiu().await;
    let out = tempfile::tempdir().unwrap();
    // An independent publisher (ffmpeg) that we kill mid-run.
    let mut ffmpeg = tokio::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-f",
            "flv",
        ])
        .arg(format!("rtmp://127.0.0.1:{}/live/victim", xiu.ports.rtmp))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed (scripts/install-deps.sh)");
    let text = format!(
        r#"
[run]
duration = "12s"
{target}
[[players]]
name = "flv-viewers"
protocol = "flv"
streams = ["victim"]
first_frame_timeout = "5s"
ramp = [{{ duration = "2s", target = 0 }}, {{ duration = "1s", target = 2 }}, {{ duration = "9s", target = 2 }}]
reconnect = {{ max_attempts = 0, backoff = "20s" }}

[[players]]
name = "rtmp-viewers"
protocol = "rtmp"
streams = ["victim"]
first_frame_timeout = "5s"
ramp = [{{ duration = "2s", target = 0 }}, {{ duration = "1s", target = 2 }}, {{ duration = "9s", target = 2 }}]
reconnect = {{ max_attempts = 0, backoff = "20s" }}
"#,
        target = common::remote_target(&xiu)
    );
    let run = tokio::spawn({
        let out = out.path().to_path_buf();
        async move { common::run(&text, &out).await }
    });
    // Kill the publisher once the players have watched for a while.
    let timeline = out.path().join("timeline.jsonl");
    let watched = wait_for(Duration::from_secs(12), || {
        xiuload::metrics::timeline::read_timeline(&timeline)
            .map(|t| {
                t.iter()
                    .filter(|p| p.players.get("flv").is_some_and(|f| f.mbps > 0.0))
                    .count()
                    >= 2
            })
            .unwrap_or(false)
    })
    .await;
    assert!(watched, "players never received the ffmpeg stream");
    ffmpeg.kill().await.unwrap();
    let outcome = run.await.unwrap();
    for g in &outcome.report.players {
        let eofs = g.summary.errors.0.get("eof").copied().unwrap_or(0);
        assert!(
            eofs >= 1,
            "{}: expected EOF errors, got {:?}",
            g.name,
            g.summary.errors
        );
        assert!(g.summary.sessions_with_media >= 2, "{}", g.name);
    }
    assert!(out.path().join("report.json").exists());
    xiu.stop().await;
}

/// Polls a condition that has no event to wait on (a file another task appends to), bounded.
async fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if ready() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ready()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_are_served_in_prometheus_format_during_the_run() {
    let xiu = common::start_xiu().await;
    let out = tempfile::tempdir().unwrap();
    let port = xiuload::local::xiu::free_ports(1).unwrap()[0];
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let text = format!(
        "[run]\nduration = \"8s\"\n{}\n[[publishers]]\nname = \"cams\"\nstream = \"prom\"\ncount = 1\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"flv\"\npublishers = \"cams\"\n\
         ramp = [{{ duration = \"1s\", target = 0 }}, {{ duration = \"7s\", target = 2 }}]\n",
        common::remote_target(&xiu)
    );
    let options = xiuload::run::RunOptions {
        scenario_file: "prom.toml".into(),
        out_dir: Some(out.path().to_path_buf()),
        status_line: false,
        metrics_addr: Some(addr),
        ..Default::default()
    };
    let run = tokio::spawn(xiuload::run::run(
        common::parse(&text),
        options,
        std::future::pending(),
    ));
    let url = format!("http://{addr}/metrics");
    let client = reqwest::Client::new();
    let scraped = {
        let mut found = String::new();
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(r) = client.get(&url).send().await {
                let body = r.text().await.unwrap_or_default();
                if body.contains("xiuload_players_active{group=\"viewers\",protocol=\"flv\"} 2") {
                    found = body;
                    break;
                }
            }
        }
        found
    };
    run.await.unwrap().unwrap();
    xiu.stop().await;
    assert!(
        !scraped.is_empty(),
        "never scraped 2 active viewers from {url}"
    );
    assert!(scraped.contains("# TYPE xiuload_player_bytes_total counter"));
    assert!(
        scraped.contains("xiuload_publishers_active{group=\"cams\"} 1"),
        "{scraped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_send_the_origin_token_from_the_named_environment_variable() {
    // An origin as deploy/ runs it: RTMP push auth on, publishers need the token.
    let xiu = xiuload::local::LocalXiu::start(&common::xiu_bin(), 2, Some("s3cr3t"))
        .await
        .unwrap_or_else(|e| panic!("xiu did not start: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("token.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
[run]
duration = "5s"
warmup = "0s"
{target}publish_token_env = "XIULOAD_TEST_PUBLISH_TOKEN"
[[publishers]]
name = "cams"
stream = "tok-{{i}}"
count = 1
[[players]]
name = "viewers"
protocol = "flv"
publishers = "cams"
count = 1
start_jitter = "1s"
"#,
            target = common::remote_target(&xiu)
        ),
    )
    .unwrap();
    let run = |token: Option<&str>, out: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xiuload"));
        cmd.arg("run")
            .arg(&scenario)
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--quiet")
            .env_remove("XIULOAD_TEST_PUBLISH_TOKEN");
        if let Some(t) = token {
            cmd.env("XIULOAD_TEST_PUBLISH_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let unset = run(None, "unset");
    assert_eq!(unset.status.code(), Some(xiuload::exit::RUNTIME_FAILURE));
    assert!(
        String::from_utf8_lossy(&unset.stderr).contains("XIULOAD_TEST_PUBLISH_TOKEN is not set"),
        "{}",
        String::from_utf8_lossy(&unset.stderr)
    );
    let wrong = run(Some("guess"), "wrong");
    assert_eq!(
        wrong.status.code(),
        Some(xiuload::exit::CHECK_FAILED),
        "a refused publisher fails the run: {}",
        String::from_utf8_lossy(&wrong.stdout)
    );
    let right = run(Some("s3cr3t"), "right");
    let report = common::read_json(&dir.path().join("right/report.json"));
    assert_eq!(
        right.status.code(),
        Some(xiuload::exit::OK),
        "{}",
        String::from_utf8_lossy(&right.stdout)
    );
    assert!(report["players"][0]["whole_run"]["sessions_with_media"].as_u64() >= Some(1));
    xiu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_by_a_stranger_is_caught_instead_of_measuring_the_stranger() {
    // Another process binds xiu's HTTP-FLV port between choosing it and xiu starting: xiu logs
    // the bind error and goes on without that listener, and a connect to the port succeeds
    // (the stranger answers). Start-up must notice whose listener it is.
    let bin = common::xiu_bin();
    let p = xiuload::local::xiu::free_ports(4).unwrap();
    let stranger = std::net::TcpListener::bind(("0.0.0.0", p[2])).unwrap();
    let ports = xiuload::local::XiuPorts {
        rtmp: p[0],
        hls: p[1],
        flv: p[2],
        api: p[3],
    };
    let err = match xiuload::local::LocalXiu::start_with_ports(&bin, ports, 2, None).await {
        Ok(_) => panic!("xiu started although port {} is someone else's", p[2]),
        Err(e) => e,
    };
    assert!(
        matches!(err, xiuload::local::xiu::LocalError::PortTaken { port, .. } if port == p[2]),
        "{err}"
    );
    drop(stranger);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sampler_follows_a_restarted_origin_under_its_new_pid() {
    let bin = common::xiu_bin();
    let mut topology = xiuload::local::LocalTopology::start(&bin, 2, 0, "live")
        .await
        .unwrap();
    let servers = topology.servers();
    let before = topology.origin.pid().unwrap();
    assert_eq!(servers.snapshot(), [before]);
    topology.restart_origin(0).await.unwrap();
    let after = topology.origin.pid().unwrap();
    assert_ne!(before, after);
    assert_eq!(
        servers.snapshot(),
        [after],
        "the dead pid left, the new one came"
    );
    topology.stop().await;
    assert!(servers.snapshot().is_empty());
}

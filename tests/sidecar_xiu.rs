//! End-to-end with real xiu 0.14 on loopback: origins and edges configured as deploy/ runs them
//! (edges never pull; RTMP publishing on an edge needs the relay token), ffmpeg publishers, and
//! the sidecar relaying every stream into every edge.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xiuload::local::{LocalTopology, LocalXiu, TopologyOptions};
use xiuload::rtmp::connection::RtmpConnection;
use xiuload::rtmp::url::RtmpBase;
use xiuload::sidecar::{OriginEndpoints, SidecarConfig, run};

/// How soon an edge serves a stream after its origin lists it, when nothing fails: one poll
/// interval of the sidecar (500 ms in these tests, 2 s by default), the relay's HTTP-FLV connect
/// and RTMP publish (a few ms on loopback), and the first tag (the origin's GOP cache sends it at
/// once). Asserted with margin for a loaded CI machine; the tests print what they measure.
const RELAY_BOUND: Duration = Duration::from_secs(6);

/// Kills the child when dropped, so a failing assertion leaves nothing behind.
struct Proc(Child);

impl Proc {
    /// SIGINT lets ffmpeg close its RTMP session cleanly (the origin unpublishes at once).
    fn interrupt(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A 320x240 H.264 + AAC publisher (keyframe every second), what a camera sends.
fn ffmpeg_publish(url: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "25", "-c:a", "aac", "-f", "flv"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    Proc(child)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

/// Polls `cond` every 100 ms (xiu announces nothing; its API and listeners are all there is)
/// until it holds or `limit` passes; returns how long it took.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bytes an HTTP-FLV player gets within `limit` (stops counting past 20 kB).
async fn flv_bytes(url: &str, limit: Duration) -> usize {
    let read = async {
        let mut n = 0;
        if let Ok(mut r) = reqwest::get(url).await {
            while let Ok(Some(c)) = r.chunk().await {
                n += c.len();
                if n > 20_000 {
                    break;
                }
            }
        }
        n
    };
    tokio::time::timeout(limit, read).await.unwrap_or(0)
}

fn flv_url(xiu: &LocalXiu, stream: &str) -> String {
    format!("http://127.0.0.1:{}/live/{stream}.flv", xiu.ports.flv)
}

async fn lists(api_port: u16, stream: &str) -> bool {
    let url = format!("http://127.0.0.1:{api_port}/api/query_whole_streams?top=100");
    match http().get(&url).send().await {
        Ok(r) => r
            .text()
            .await
            .unwrap_or_default()
            .contains(&format!("\"stream_name\":\"{stream}\"")),
        Err(_) => false,
    }
}

async fn status(url: &str) -> (u16, String) {
    match http().get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn options(origins: u32, edges: u32) -> TopologyOptions {
    TopologyOptions::new(2, origins, edges, "live")
}

/// Issue 13 defect 1: with xiu's own pull, one FLV request while the origin was down left the edge
/// unable to pull that stream until xiu restarted (0 bytes of FLV, 404 for HLS) while the
/// sidecar's probes said 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_serves_again_after_a_request_while_the_origin_was_down() {
    let bin = common::xiu_bin();
    let mut topo = LocalTopology::start_with(&bin, options(1, 1))
        .await
        .unwrap();
    let edge = &topo.edges[0];
    let (edge_flv, health) = (flv_url(&edge.xiu, "s1"), edge.health);
    let playlist = format!("http://127.0.0.1:{}/live/s1/s1.m3u8", edge.xiu.ports.hls);

    topo.origin.kill().await;
    // A viewer asks the edge while the origin is down: nothing to serve yet.
    assert_eq!(flv_bytes(&edge_flv, Duration::from_secs(2)).await, 0);
    assert_eq!(flv_bytes(&edge_flv, Duration::from_secs(2)).await, 0);

    topo.restart_origin(0).await.unwrap();
    let origin_rtmp = topo.origin.ports.rtmp;
    let origin_api = topo.origin.ports.api;
    let _publisher = ffmpeg_publish(&format!("rtmp://127.0.0.1:{origin_rtmp}/live/s1"));
    wait_for(
        "the origin to list live/s1",
        Duration::from_secs(15),
        || lists(origin_api, "s1"),
    )
    .await;
    let took = wait_for(
        "the edge to serve live/s1 over HTTP-FLV",
        RELAY_BOUND,
        || async { flv_bytes(&edge_flv, Duration::from_secs(2)).await > 0 },
    )
    .await;
    eprintln!("edge serves FLV {took:?} after the origin listed the stream");
    // HLS too: the relay publishes, so the edge's own remuxer cuts segments (2 s fragments).
    let hls = wait_for(
        "the edge's HLS playlist",
        Duration::from_secs(15),
        || async { status(&playlist).await.0 == 200 },
    )
    .await;
    eprintln!("edge HLS playlist 200 {:?} after FLV", hls);
    wait_for("/readyz 200", Duration::from_secs(5), || async {
        status(&format!("http://{health}/readyz")).await.0 == 200
    })
    .await;
    topo.stop().await;
}

/// `/readyz` is false while the edge cannot serve a stream the origin has (here: the edge refuses
/// the relay's publishes, its token is wrong), and names it; `/livez` stays 200 (the relay loop is
/// alive and keeps retrying).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_false_while_the_edge_lacks_an_origin_stream() {
    let bin = common::xiu_bin();
    let origin = LocalXiu::start(&bin, 2, None).await.unwrap();
    let edge = LocalXiu::start(&bin, 2, Some("right-token")).await.unwrap();
    let _publisher = ffmpeg_publish(&format!("rtmp://127.0.0.1:{}/live/s1", origin.ports.rtmp));
    wait_for(
        "the origin to list live/s1",
        Duration::from_secs(15),
        || lists(origin.ports.api, "s1"),
    )
    .await;
    let listen: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = edge.ports;
    let config = SidecarConfig {
        origins: vec![OriginEndpoints {
            api: format!("http://127.0.0.1:{}", origin.ports.api),
            flv: format!("http://127.0.0.1:{}", origin.ports.flv),
        }],
        edge_flv: format!("http://127.0.0.1:{}", p.flv),
        edge_rtmp: SocketAddr::from(([127, 0, 0, 1], p.rtmp)),
        edge_api: format!("http://127.0.0.1:{}", p.api),
        edge_hls: format!("http://127.0.0.1:{}", p.hls),
        app: "live".into(),
        listen,
        poll_interval: Duration::from_millis(500),
        relay_token: Some("wrong-token".into()),
        drain_timeout: Duration::from_secs(5),
        new_stream_grace: Duration::from_secs(2),
        pod: None,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sidecar = tokio::spawn(run(config, async {
        let _ = stop_rx.await;
    }));
    let readyz = format!("http://{listen}/readyz");
    wait_for(
        "/readyz to name live/s1",
        Duration::from_secs(10),
        || async {
            let (code, body) = status(&readyz).await;
            code == 503
                && body.contains("edge-serves-every-origin-stream: FAILED")
                && body.contains("live/s1")
        },
    )
    .await;
    let (code, body) = status(&format!("http://{listen}/livez")).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        !lists(p.api, "s1").await,
        "the edge took a publish with a wrong token"
    );
    let _ = stop_tx.send(());
    let res = tokio::time::timeout(Duration::from_secs(5), sidecar).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "{res:?}");
    edge.stop().await;
    origin.stop().await;
}

/// Edges refuse publishers without the relay token (issue 13 defect 2, edge side), and playing
/// over HTTP-FLV, HLS and RTMP needs none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_refuses_a_publisher_without_the_token() {
    let bin = common::xiu_bin();
    let edge = LocalXiu::start(&bin, 2, Some("relay-secret"))
        .await
        .unwrap();
    let base = RtmpBase {
        host: "127.0.0.1".into(),
        port: edge.ports.rtmp,
    };
    for name in ["intruder", "intruder?token=guess"] {
        let (mut conn, _) =
            RtmpConnection::open(&base, "live", Duration::from_secs(5), false, 1 << 24)
                .await
                .unwrap();
        let r = conn.publish(name, Duration::from_secs(3)).await;
        assert!(r.is_err(), "the edge accepted a publish of {name:?}");
    }
    assert!(!lists(edge.ports.api, "intruder").await);

    let (mut conn, _) = RtmpConnection::open(&base, "live", Duration::from_secs(5), false, 1 << 24)
        .await
        .unwrap();
    conn.publish("probe?token=relay-secret", Duration::from_secs(3))
        .await
        .expect("the token is accepted");
    drop(conn);

    let _publisher = ffmpeg_publish(&format!(
        "rtmp://127.0.0.1:{}/live/s1?token=relay-secret",
        edge.ports.rtmp
    ));
    wait_for("the edge to list live/s1", Duration::from_secs(15), || {
        lists(edge.ports.api, "s1")
    })
    .await;
    assert!(flv_bytes(&flv_url(&edge, "s1"), Duration::from_secs(5)).await > 0);
    let playlist = format!("http://127.0.0.1:{}/live/s1/s1.m3u8", edge.ports.hls);
    wait_for("HLS without a token", Duration::from_secs(15), || async {
        status(&playlist).await.0 == 200
    })
    .await;
    let (mut player, _) =
        RtmpConnection::open(&base, "live", Duration::from_secs(5), true, 1 << 24)
            .await
            .unwrap();
    player.play("s1", Duration::from_secs(5)).await.unwrap();
    let media = tokio::time::timeout(Duration::from_secs(5), player.next_media()).await;
    assert!(
        matches!(media, Ok(Ok(_))),
        "RTMP play got no media: {media:?}"
    );
    edge.stop().await;
}

/// Issue 15: a publisher that reconnects to another origin is found there, and its stream reaches
/// viewers on every edge again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_republished_to_another_origin_reaches_every_edge() {
    let bin = common::xiu_bin();
    let topo = LocalTopology::start_with(&bin, options(2, 2))
        .await
        .unwrap();
    let o0 = topo.origin.ports;
    let o1 = topo.other_origins[0].ports;
    let edges: Vec<String> = topo.edges.iter().map(|e| flv_url(&e.xiu, "s1")).collect();

    let first = ffmpeg_publish(&format!("rtmp://127.0.0.1:{}/live/s1", o0.rtmp));
    wait_for("origin 0 to list live/s1", Duration::from_secs(15), || {
        lists(o0.api, "s1")
    })
    .await;
    for url in &edges {
        wait_for(
            "each edge to serve it from origin 0",
            RELAY_BOUND,
            || async { flv_bytes(url, Duration::from_secs(2)).await > 0 },
        )
        .await;
    }

    first.interrupt();
    wait_for(
        "origin 0 to drop live/s1",
        Duration::from_secs(10),
        || async { !lists(o0.api, "s1").await },
    )
    .await;
    let _second = ffmpeg_publish(&format!("rtmp://127.0.0.1:{}/live/s1", o1.rtmp));
    wait_for("origin 1 to list live/s1", Duration::from_secs(15), || {
        lists(o1.api, "s1")
    })
    .await;
    let listed = Instant::now();
    for url in &edges {
        wait_for(
            "each edge to serve it from origin 1",
            RELAY_BOUND,
            || async { flv_bytes(url, Duration::from_secs(2)).await > 0 },
        )
        .await;
    }
    eprintln!(
        "both edges serve the republished stream {:?} after origin 1 listed it",
        listed.elapsed()
    );
    assert!(!lists(o0.api, "s1").await, "origin 0 still has the stream");
    for e in &topo.edges {
        wait_for("/readyz 200", Duration::from_secs(5), || async {
            status(&format!("http://{}/readyz", e.health)).await.0 == 200
        })
        .await;
    }
    topo.stop().await;
}

/// `/drain` flips readiness at once and returns when the edge's last viewer leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_flips_readiness_and_returns_once_viewers_are_gone() {
    let bin = common::xiu_bin();
    let topo = LocalTopology::start_with(&bin, options(1, 1))
        .await
        .unwrap();
    let edge = &topo.edges[0];
    let health = edge.health;
    let _publisher = ffmpeg_publish(&format!(
        "rtmp://127.0.0.1:{}/live/s1",
        topo.origin.ports.rtmp
    ));
    let url = flv_url(&edge.xiu, "s1");
    wait_for(
        "the edge to serve live/s1",
        Duration::from_secs(20),
        || async { flv_bytes(&url, Duration::from_secs(2)).await > 0 },
    )
    .await;
    // One viewer that stays until dropped.
    let mut viewer = reqwest::get(&url).await.unwrap();
    assert!(viewer.chunk().await.unwrap().is_some());
    let api = format!(
        "http://127.0.0.1:{}/api/query_whole_streams?top=10",
        edge.xiu.ports.api
    );
    wait_for(
        "xiu to count the viewer",
        Duration::from_secs(5),
        || async { status(&api).await.1.contains("RtmpRemux2HttpFlv") },
    )
    .await;
    wait_for("/readyz 200", Duration::from_secs(10), || async {
        status(&format!("http://{health}/readyz")).await.0 == 200
    })
    .await;

    // No client timeout here: a drain may take up to the drain timeout (10 s in the topology).
    let drain = tokio::spawn(async move {
        let r = reqwest::get(format!("http://{health}/drain"))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    wait_for(
        "/readyz to say draining",
        Duration::from_secs(3),
        || async {
            let (code, body) = status(&format!("http://{health}/readyz")).await;
            code == 503 && body.contains("not-draining: FAILED")
        },
    )
    .await;
    assert!(
        !drain.is_finished(),
        "drain returned with a viewer connected"
    );
    let left = Instant::now();
    drop(viewer);
    let (code, body) = drain.await.unwrap();
    assert_eq!(code, 200);
    assert!(body.starts_with("drained"), "{body}");
    eprintln!(
        "drain returned {:?} after the last viewer left",
        left.elapsed()
    );
    assert!(left.elapsed() < Duration::from_secs(3));
    topo.stop().await;
}

//! What the sidecar's relay costs per stream: N synthetic 2 Mbit/s H.264 publishers on a local
//! origin, a `xiuload sidecar` process relaying them into a local edge, and the sidecar's CPU
//! (from /proc, over a 20 s window once every stream is on the edge) and RSS.
//!
//! A measurement, not a check: `#[ignore]`d, run by hand, e.g.
//! `RELAY_COST_STREAMS=50 cargo test --release --test relay_cost -- --ignored --nocapture`
//! (`XIULOAD_BIN` picks another xiuload binary for the sidecar).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xiuload::local::LocalXiu;
use xiuload::media::h264::{SyntheticVideo, VideoParams};
use xiuload::media::stamp::FrameStamp;
use xiuload::rtmp::connection::RtmpConnection;
use xiuload::rtmp::url::RtmpBase;

const BITRATE_BPS: u64 = 2_000_000;
const FPS: u32 = 25;
const WINDOW: Duration = Duration::from_secs(20);

/// Publishes `stream` at `FPS` until the run ends (bounded by `until`).
async fn publish(video: SyntheticVideo, base: RtmpBase, stream: String, until: Instant) {
    let (mut conn, _) = RtmpConnection::open(&base, "live", Duration::from_secs(5), false, 1 << 24)
        .await
        .expect("connect to the origin");
    conn.publish(&stream, Duration::from_secs(5))
        .await
        .expect("publish");
    conn.send_video(video.avc_sequence_header_tag(), 0)
        .await
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let step = video.frame_duration();
    let mut i = 0u64;
    while Instant::now() < until {
        let at = t0 + step * i as u32;
        loop {
            tokio::select! {
                r = conn.readable() => { r.unwrap(); conn.drain_input().await.unwrap(); conn.take_events().for_each(drop); }
                _ = tokio::time::sleep_until(at) => break,
            }
        }
        let stamp = FrameStamp {
            stream_tag: 1,
            sequence: i,
            sent_at_unix_micros: 0,
        };
        conn.send_video(
            video.frame_tag(i, &stamp),
            (step * i as u32).as_millis() as u32,
        )
        .await
        .unwrap();
        i += 1;
    }
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(") ").unwrap().1;
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

async fn edge_streams(api: u16) -> usize {
    let url = format!("http://127.0.0.1:{api}/api/query_whole_streams?top=1000");
    match reqwest::get(&url).await {
        Ok(r) => r
            .text()
            .await
            .unwrap_or_default()
            .matches("\"stream_name\"")
            .count(),
        Err(_) => 0,
    }
}

async fn edge_recv_kbps(api: u16) -> u64 {
    let url = format!("http://127.0.0.1:{api}/api/query_whole_streams?top=1000");
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entries: Vec<serde_json::Value> = match &v["data"] {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Object(m) => m.values().cloned().collect(),
        _ => Vec::new(),
    };
    entries
        .iter()
        .filter_map(|e| e.pointer("/publisher/recv_bitrate(kbits~1s)")?.as_u64())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand"]
async fn relay_cost_per_stream() {
    let n: usize = std::env::var("RELAY_COST_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let bin = common::xiu_bin();
    let origin = LocalXiu::start(&bin, 2, None).await.unwrap();
    let edge = LocalXiu::start(&bin, 2, Some("cost")).await.unwrap();
    let video = SyntheticVideo::new(&VideoParams {
        width: 1280,
        height: 720,
        fps: FPS,
        bitrate_bps: BITRATE_BPS,
        gop_frames: FPS * 2,
    })
    .unwrap();
    let until = Instant::now() + Duration::from_secs(120);
    let base = RtmpBase {
        host: "127.0.0.1".into(),
        port: origin.ports.rtmp,
    };
    let publishers: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(publish(
                video.clone(),
                base.clone(),
                format!("cost-{i}"),
                until,
            ))
        })
        .collect();

    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let exe = std::env::var("XIULOAD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_xiuload").into());
    let (o, e) = (origin.ports, edge.ports);
    let mut sidecar = Command::new(&exe)
        .arg("sidecar")
        .args(["--origin-api", &format!("http://127.0.0.1:{}", o.api)])
        .args(["--origin-flv", &format!("http://127.0.0.1:{}", o.flv)])
        .args(["--edge-api", &format!("http://127.0.0.1:{}", e.api)])
        .args(["--edge-flv", &format!("http://127.0.0.1:{}", e.flv)])
        .args(["--edge-hls", &format!("http://127.0.0.1:{}", e.hls)])
        .args(["--edge-rtmp", &format!("127.0.0.1:{}", e.rtmp)])
        .args(["--listen", &listen.to_string()])
        .env("XIU_RELAY_TOKEN", "cost")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = sidecar.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while edge_streams(e.api).await < n {
        assert!(
            Instant::now() < deadline,
            "the edge never got all {n} streams"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Settle past start-up, then measure.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(WINDOW).await;
    let (c1, secs) = (cpu_ticks(pid), t0.elapsed().as_secs_f64());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (c1 - c0) as f64 / hz / secs * 100.0;
    let rss = rss_kib(pid) as f64 / 1024.0;
    assert_eq!(
        edge_streams(e.api).await,
        n,
        "a relay dropped during the window"
    );
    // What really went through: xiu's own count of what the edge received (refreshed every 5 s).
    let edge_kbps = edge_recv_kbps(e.api).await;
    println!(
        "edge receives {:.1} Mbit/s in total",
        edge_kbps as f64 / 1000.0
    );
    assert!(
        edge_kbps as f64 >= 0.8 * (n as u64 * BITRATE_BPS) as f64 / 1000.0,
        "the relays carried {edge_kbps} kbit/s, not {n} x {BITRATE_BPS} bit/s: the figures would flatter the relay"
    );
    println!(
        "relay cost: {n} streams of {} Mbit/s: sidecar {cpu:.1} % of a core ({:.2} % per stream), RSS {rss:.1} MiB ({:.2} MiB per stream) [{exe}]",
        BITRATE_BPS / 1_000_000,
        cpu / n as f64,
        rss / n as f64
    );
    let _ = sidecar.kill();
    let _ = sidecar.wait();
    for p in publishers {
        p.abort();
    }
    edge.stop().await;
    origin.stop().await;
}

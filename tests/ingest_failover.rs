//! Issue 15: publishers reach two origins through a real L4 balancer (HAProxy on loopback); one
//! origin is killed; its publisher reconnects through the balancer to the other, and the edges'
//! sidecars find the stream there: every edge serves it again within a bound. A stream on the
//! surviving origin never stalls meanwhile.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xiuload::local::{LocalTopology, TopologyOptions};
use xiuload::media::h264::{SyntheticVideo, VideoParams};
use xiuload::media::stamp::FrameStamp;
use xiuload::rtmp::connection::RtmpConnection;
use xiuload::rtmp::url::RtmpBase;

/// From the kill to every edge serving the stream again: HAProxy's health check (300 ms) or a
/// redispatched connect, the publisher's reconnect (200 ms after its connection broke), the origin
/// listing it, one sidecar poll (500 ms here), the relay's connect. Asserted with margin for a
/// loaded machine; the test prints what it measures.
const FAILOVER_BOUND: Duration = Duration::from_secs(10);

fn video() -> SyntheticVideo {
    SyntheticVideo::new(&VideoParams {
        width: 320,
        height: 240,
        fps: 25,
        bitrate_bps: 500_000,
        gop_frames: 25,
    })
    .unwrap()
}

/// Publishes `stream` at 25 fps to `port` until `until`, reconnecting 200 ms after any failure
/// (what an encoder does when its server goes away). Counts connections.
async fn publish(port: u16, stream: &'static str, until: Instant, connections: Arc<AtomicU64>) {
    let video = video();
    let base = RtmpBase {
        host: "127.0.0.1".into(),
        port,
    };
    while Instant::now() < until {
        let session = async {
            let (mut conn, _) =
                RtmpConnection::open(&base, "live", Duration::from_secs(2), false, 1 << 24)
                    .await
                    .ok()?;
            conn.publish(stream, Duration::from_secs(2)).await.ok()?;
            connections.fetch_add(1, Ordering::SeqCst);
            conn.send_video(video.avc_sequence_header_tag(), 0)
                .await
                .ok()?;
            let t0 = tokio::time::Instant::now();
            let step = video.frame_duration();
            for i in 0u64.. {
                if Instant::now() >= until {
                    return Some(());
                }
                let at = t0 + step * i as u32;
                loop {
                    tokio::select! {
                        r = conn.readable() => {
                            r.ok()?;
                            conn.drain_input().await.ok()?;
                            conn.take_events().for_each(drop);
                        }
                        _ = tokio::time::sleep_until(at) => break,
                    }
                }
                let stamp = FrameStamp {
                    stream_tag: 7,
                    sequence: i,
                    sent_at_unix_micros: 0,
                };
                let ts = (step * i as u32).as_millis() as u32;
                conn.send_video(video.frame_tag(i, &stamp), ts).await.ok()?;
            }
            Some(())
        };
        if session.await.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn lists(api_port: u16, stream: &str) -> bool {
    let url = format!("http://127.0.0.1:{api_port}/api/query_whole_streams?top=100");
    match reqwest::get(&url).await {
        Ok(r) => r
            .text()
            .await
            .unwrap_or_default()
            .contains(&format!("\"stream_name\":\"{stream}\"")),
        Err(_) => false,
    }
}

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

/// Polls every 100 ms (xiu announces nothing) until `cond` holds; panics after `limit`.
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

/// Reads an FLV viewer and returns the longest pause between chunks (bytes counted in `got`).
async fn longest_gap(url: String, until: Instant, got: Arc<AtomicU64>) -> Duration {
    let mut resp = reqwest::get(&url).await.unwrap();
    let mut last = Instant::now();
    let mut worst = Duration::ZERO;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(c))) => {
                got.fetch_add(c.len() as u64, Ordering::SeqCst);
                worst = worst.max(last.elapsed());
                last = Instant::now();
            }
            Ok(_) => return Duration::MAX, // the body ended: the stream stopped
            Err(_) => break,
        }
    }
    worst.max(until.saturating_duration_since(last))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_origin_publisher_moves_and_every_edge_serves_again() {
    let bin = common::xiu_bin();
    let mut topo = LocalTopology::start_with(&bin, TopologyOptions::new(2, 2, 2, "live"))
        .await
        .unwrap();
    let apis = [topo.origin.ports.api, topo.other_origins[0].ports.api];
    let until = Instant::now() + Duration::from_secs(60);
    let connections = Arc::new(AtomicU64::new(0));
    let mover = tokio::spawn(publish(
        topo.publish_port(),
        "moving",
        until,
        connections.clone(),
    ));
    wait_for(
        "an origin to take the publisher",
        Duration::from_secs(10),
        || async { lists(apis[0], "moving").await || lists(apis[1], "moving").await },
    )
    .await;
    let doomed = if lists(apis[0], "moving").await { 0 } else { 1 };
    let survivor = 1 - doomed;
    let survivor_rtmp = topo.origin_mut(survivor).unwrap().ports.rtmp;
    // A stream that lives on the surviving origin all along.
    let stayer = tokio::spawn(publish(
        survivor_rtmp,
        "staying",
        until,
        Arc::new(AtomicU64::new(0)),
    ));
    let edge_urls = |s: &str| -> Vec<String> {
        topo.edges
            .iter()
            .map(|e| format!("http://127.0.0.1:{}/live/{s}.flv", e.xiu.ports.flv))
            .collect()
    };
    let (moving, staying) = (edge_urls("moving"), edge_urls("staying"));
    for url in moving.iter().chain(&staying) {
        wait_for(
            "every edge to serve both streams",
            Duration::from_secs(10),
            || async { flv_bytes(url, Duration::from_secs(2)).await > 0 },
        )
        .await;
    }
    // A viewer of the staying stream on each edge, across the kill.
    let watch_until = Instant::now() + Duration::from_secs(12);
    let watchers: Vec<_> = staying
        .iter()
        .map(|u| {
            let got = Arc::new(AtomicU64::new(0));
            (
                tokio::spawn(longest_gap(u.clone(), watch_until, got.clone())),
                got,
            )
        })
        .collect();

    let killed = Instant::now();
    topo.origin_mut(doomed).unwrap().kill().await;
    wait_for(
        "the publisher to land on the other origin",
        FAILOVER_BOUND,
        || lists(apis[survivor], "moving"),
    )
    .await;
    for url in &moving {
        wait_for(
            "every edge to serve the moved stream",
            FAILOVER_BOUND,
            || async { flv_bytes(url, Duration::from_secs(2)).await > 0 },
        )
        .await;
    }
    let took = killed.elapsed();
    eprintln!("every edge serves the moved stream {took:?} after its origin was killed");
    assert!(took < FAILOVER_BOUND, "{took:?}");
    assert!(
        connections.load(Ordering::SeqCst) >= 2,
        "the publisher never reconnected"
    );

    for (w, got) in watchers {
        let gap = w.await.unwrap();
        assert!(got.load(Ordering::SeqCst) > 0);
        assert!(
            gap < Duration::from_secs(2),
            "the stream on the surviving origin stalled for {gap:?}"
        );
    }
    mover.abort();
    stayer.abort();
    topo.stop().await;
}

//! The sidecar against fake origin/edge servers (no xiu needed): retries the
//! empty first FLV answer, holds the subscription, drops it when the stream
//! leaves the origin, and reports failed checks by name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xiuload::sidecar::{SidecarConfig, run};

const WITH_S1: &str = r#"{"error_code":0,"desp":"succ","data":[{"publisher":{"identifier":{"rtmp":{"app_name":"live","stream_name":"s1"}}},"subscriber_count":1}]}"#;
const EMPTY: &str = r#"{"error_code":0,"desp":"succ","data":{}}"#;

#[derive(Default)]
struct Edge {
    requests: AtomicUsize,
    closed_by_client: AtomicBool,
}

/// Like xiu: the first request for a stream gets an empty 200, later ones a
/// body that keeps flowing until the client goes away.
async fn fake_edge_flv(listener: tokio::net::TcpListener, edge: Arc<Edge>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let edge = edge.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let n = edge.requests.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                return;
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nFLV")
                .await;
            for _ in 0..200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if s.write_all(&[0u8; 512]).await.is_err() {
                    edge.closed_by_client.store(true, Ordering::SeqCst);
                    return;
                }
            }
        });
    }
}

async fn wait(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_retries_and_unsubscribes() {
    let streams = Arc::new(std::sync::Mutex::new(WITH_S1));
    let s2 = streams.clone();
    let origin = Router::new().route("/", get(|| async { "usage" })).route(
        "/api/query_whole_streams",
        get(move || async move { *s2.lock().unwrap() }),
    );
    let ol = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = ol.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(ol, origin).await });

    let edge = Arc::new(Edge::default());
    let el = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge_addr = el.local_addr().unwrap();
    tokio::spawn(fake_edge_flv(el, edge.clone()));

    let listen: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let closed_rtmp: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cfg = SidecarConfig {
        origin_api: format!("http://{origin_addr}"),
        edge_flv: format!("http://{edge_addr}"),
        edge_rtmp: closed_rtmp,
        edge_api: format!("http://{origin_addr}"),
        edge_hls: format!("http://{edge_addr}"),
        app: "live".into(),
        listen,
        poll_interval: Duration::from_millis(300),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sidecar = tokio::spawn(run(cfg, async {
        let _ = stop_rx.await;
    }));

    // Empty first answer, then a retry that sticks.
    wait(
        "a retry after the empty first answer",
        Duration::from_secs(5),
        || edge.requests.load(Ordering::SeqCst) >= 2,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        edge.requests.load(Ordering::SeqCst),
        2,
        "one task per stream, held open"
    );

    let http = reqwest::Client::new();
    let livez = http
        .get(format!("http://{listen}/livez"))
        .send()
        .await
        .unwrap();
    assert_eq!(livez.status(), 200);
    let readyz = http
        .get(format!("http://{listen}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 503);
    let body = readyz.text().await.unwrap();
    assert!(body.contains("edge-rtmp-handshake: FAILED"), "{body}");
    assert!(body.contains("origin-first-sync: ok"), "{body}");

    // The stream leaves the origin: the subscription is dropped.
    *streams.lock().unwrap() = EMPTY;
    wait(
        "the subscription to be dropped",
        Duration::from_secs(5),
        || edge.closed_by_client.load(Ordering::SeqCst),
    )
    .await;

    let _ = stop_tx.send(());
    let res = tokio::time::timeout(Duration::from_secs(5), sidecar).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "{res:?}");
}

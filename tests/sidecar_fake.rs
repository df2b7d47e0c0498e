//! The sidecar against fake origin/edge/API servers (no xiu needed): it retries a relay whose
//! origin answers xiu's empty FLV body, `/readyz` names the stream the edge does not serve,
//! `/drain` flips readiness and waits for the edge's viewers (or its timeout), and the Pod's
//! deletion cost follows the viewer count.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, patch};
use xiuload::sidecar::{OriginEndpoints, PodRef, SidecarConfig, run};

const WITH_S1: &str = r#"{"error_code":0,"desp":"succ","data":[{"publisher":{"id":"p1","identifier":{"rtmp":{"app_name":"live","stream_name":"s1"}}},"subscriber_count":1}]}"#;

/// The edge's API: no `live` stream, `viewers` RTMP/FLV subscribers on another app's stream
/// (plus xiu's HLS remuxer, which is no viewer).
fn edge_streams(viewers: u64) -> String {
    let mut subs = vec![r#""hls":{"sub_type":"RtmpRemux2Hls"}"#.to_string()];
    subs.extend((0..viewers).map(|i| format!(r#""v{i}":{{"sub_type":"RtmpRemux2HttpFlv"}}"#)));
    format!(
        r#"{{"error_code":0,"data":[{{"publisher":{{"identifier":{{"rtmp":{{"app_name":"other","stream_name":"x"}}}}}},"subscribers":{{{}}}}}]}}"#,
        subs.join(",")
    )
}

async fn serve(app: Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn wait(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Fakes {
    origin: SocketAddr,
    edge_api: SocketAddr,
    flv_requests: Arc<AtomicUsize>,
    viewers: Arc<AtomicU64>,
}

async fn fakes() -> Fakes {
    let flv_requests = Arc::new(AtomicUsize::new(0));
    let counter = flv_requests.clone();
    let origin = serve(
        Router::new()
            .route("/api/query_whole_streams", get(|| async { WITH_S1 }))
            // xiu's answer for a stream it cannot play: 200 with an empty body.
            .route(
                "/live/s1.flv",
                get(move || async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    ""
                }),
            ),
    )
    .await;
    let viewers = Arc::new(AtomicU64::new(0));
    let edge_api = serve(
        Router::new()
            .route(
                "/api/query_whole_streams",
                get(|State(v): State<Arc<AtomicU64>>| async move {
                    edge_streams(v.load(Ordering::SeqCst))
                }),
            )
            .route("/", get(|| async { "usage" }))
            .with_state(viewers.clone()),
    )
    .await;
    Fakes {
        origin,
        edge_api,
        flv_requests,
        viewers,
    }
}

fn config(f: &Fakes, listen: SocketAddr) -> SidecarConfig {
    SidecarConfig {
        origins: vec![OriginEndpoints {
            api: format!("http://{}", f.origin),
            flv: format!("http://{}", f.origin),
        }],
        edge_flv: format!("http://{}", f.edge_api),
        edge_rtmp: free_addr(),
        edge_api: format!("http://{}", f.edge_api),
        edge_hls: format!("http://{}", f.edge_api),
        app: "live".into(),
        listen,
        poll_interval: Duration::from_millis(300),
        relay_token: Some("t".into()),
        drain_timeout: Duration::from_secs(3),
        new_stream_grace: Duration::from_millis(500),
        pod: None,
    }
}

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_names_missing_streams_and_drains() {
    let f = fakes().await;
    let listen = free_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sidecar = tokio::spawn(run(config(&f, listen), async {
        let _ = stop_rx.await;
    }));

    // An empty answer is retried (backoff 0.5 s, 1 s, ...), never given up on.
    wait(
        "three relay attempts against an empty origin answer",
        Duration::from_secs(8),
        || f.flv_requests.load(Ordering::SeqCst) >= 3,
    )
    .await;

    let (status, body) = get_text(&format!("http://{listen}/livez")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_text(&format!("http://{listen}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("edge-serves-every-origin-stream: FAILED")
            && body.contains("live/s1 (origin 0"),
        "{body}"
    );
    assert!(body.contains("not-draining: ok"), "{body}");
    let (_, body) = get_text(&format!("http://{listen}/startupz")).await;
    assert!(body.contains("origins-and-edge-api: ok"), "{body}");

    // Viewers stay: /drain flips readiness and returns at its timeout, saying so.
    f.viewers.store(2, Ordering::SeqCst);
    let started = Instant::now();
    let drain = tokio::spawn(get_text_owned(format!("http://{listen}/drain")));
    let readyz = format!("http://{listen}/readyz");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (_, body) = get_text(&readyz).await;
        if body.contains("not-draining: FAILED") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never said draining: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!drain.is_finished(), "two viewers are still connected");
    let (status, body) = drain.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("drain timeout") && body.contains("2 viewer(s)"),
        "{body}"
    );
    assert!(started.elapsed() >= Duration::from_secs(3));

    // Viewers leave during a drain: it returns once they are gone, well before the timeout.
    let drain = tokio::spawn(get_text_owned(format!("http://{listen}/drain")));
    tokio::task::yield_now().await;
    assert!(!drain.is_finished());
    let left_at = Instant::now();
    f.viewers.store(0, Ordering::SeqCst);
    let (status, body) = drain.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("drained"), "{body}");
    assert!(left_at.elapsed() < Duration::from_secs(2));
    // Readiness stays false: the edge is leaving.
    let (status, _) = get_text(&format!("http://{listen}/readyz")).await;
    assert_eq!(status, 503);

    let _ = stop_tx.send(());
    let res = tokio::time::timeout(Duration::from_secs(5), sidecar).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "{res:?}");
}

async fn get_text_owned(url: String) -> (u16, String) {
    get_text(&url).await
}

#[derive(Default)]
struct FakeKube {
    patches: Mutex<Vec<String>>,
    forbid: std::sync::atomic::AtomicBool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_deletion_cost_follows_viewers() {
    let f = fakes().await;
    let kube = Arc::new(FakeKube::default());
    let api = serve(
        Router::new()
            .route(
                "/api/v1/namespaces/ns/pods/edge-0",
                patch(
                    |State(k): State<Arc<FakeKube>>, body: String| async move {
                        if k.forbid.load(Ordering::SeqCst) {
                            return (
                                axum::http::StatusCode::FORBIDDEN,
                                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"edge-0\" is forbidden","reason":"Forbidden","code":403}"#.to_string(),
                            );
                        }
                        k.patches.lock().unwrap().push(body);
                        (
                            axum::http::StatusCode::OK,
                            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"edge-0","namespace":"ns"}}"#.to_string(),
                        )
                    },
                ),
            )
            .with_state(kube.clone()),
    )
    .await;
    let mut cfg = config(&f, free_addr());
    cfg.pod = Some(PodRef {
        name: "edge-0".into(),
        namespace: "ns".into(),
        kube: Some(kube::Config::new(format!("http://{api}").parse().unwrap())),
    });
    f.viewers.store(3, Ordering::SeqCst);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sidecar = tokio::spawn(run(cfg, async {
        let _ = stop_rx.await;
    }));
    let count = || kube.patches.lock().unwrap().len();
    wait("the first patch", Duration::from_secs(5), || count() >= 1).await;
    assert_eq!(
        kube.patches.lock().unwrap()[0],
        r#"{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"3"}}}"#
    );
    f.viewers.store(5, Ordering::SeqCst);
    // At most one patch per 5 s.
    wait("the second patch", Duration::from_secs(8), || count() >= 2).await;
    assert!(kube.patches.lock().unwrap()[1].contains(r#""5""#));
    // A 403 is not fatal: the relay loop and probes go on.
    kube.forbid.store(true, Ordering::SeqCst);
    f.viewers.store(6, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(count(), 2);
    assert!(!sidecar.is_finished());
    let _ = stop_tx.send(());
    let res = tokio::time::timeout(Duration::from_secs(5), sidecar).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "{res:?}");
}

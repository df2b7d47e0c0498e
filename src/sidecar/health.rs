//! The probe endpoints `/livez`, `/readyz`, `/startupz` (text/plain, the body names each check and
//! why it failed) and `/drain` for the edge's preStop hook.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use super::readiness::{Drain, NotReady, Snapshot, readiness, started};
use super::rtmp_probe::HandshakeError;
use super::xiu_api::get_viewers;
use super::{SidecarConfig, SidecarError, rtmp_probe};

/// Every check gets this long. The kubelet's default probe timeout is also
/// 1 s, so the checks of one probe run concurrently, never one after another.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How often `/drain` asks the edge how many viewers it still has. xiu tells no one when a viewer
/// leaves, so this is a poll.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// Written by the relay loop, read by the probes.
#[derive(Default)]
pub struct SharedState {
    last_tick: Mutex<Option<Instant>>,
    snapshot: Mutex<Snapshot>,
    drain: Mutex<Drain>,
}

impl SharedState {
    pub fn mark_tick(&self) {
        *self.last_tick.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.snapshot.lock().unwrap_or_else(|p| p.into_inner()));
    }
    fn snapshot(&self) -> Snapshot {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn last_tick(&self) -> Option<Instant> {
        *self.last_tick.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn drain(&self) -> std::sync::MutexGuard<'_, Drain> {
        self.drain.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// The relay loop's poll of the edge's API: whether it answered.
    pub fn edge_polled(&self, answered: bool) {
        let mut d = self.drain();
        let next = d.after_poll(answered);
        if *d != next && next == Drain::Serving {
            tracing::info!(
                "the edge's xiu went away and answers again: it was restarted, draining is over"
            );
        }
        *d = next;
    }
}

#[derive(Clone)]
struct Ctx {
    config: Arc<SidecarConfig>,
    state: Arc<SharedState>,
    http: reqwest::Client,
}

pub fn serve(
    listener: tokio::net::TcpListener,
    config: SidecarConfig,
    state: Arc<SharedState>,
    mut stop: watch::Receiver<bool>,
) -> Result<impl Future<Output = std::io::Result<()>>, SidecarError> {
    let ctx = Ctx {
        config: Arc::new(config),
        state,
        http: reqwest::Client::builder().timeout(CHECK_TIMEOUT).build()?,
    };
    let app = Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/startupz", get(startupz))
        .route("/drain", get(drain))
        .with_state(ctx);
    Ok(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await
    })
}

/// Why one check of a probe failed: its line in the probe body.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailed {
    #[error("the relay loop has not ticked yet")]
    NeverTicked,
    #[error("the relay loop last ticked {ago:?} ago (limit {limit:?})")]
    Stalled { ago: Duration, limit: Duration },
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(Duration),
    /// An HLS or HTTP-FLV listener gave no HTTP answer at all.
    #[error("{url}: {source}")]
    NoHttpAnswer {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(transparent)]
    NotReady(#[from] NotReady),
    #[error("draining: this edge is leaving (GET /drain was called)")]
    Draining,
}

type Check = (&'static str, Result<(), CheckFailed>);

/// The relay loop is alive (it ticks every 250 ms, polls included).
async fn livez(State(ctx): State<Ctx>) -> impl IntoResponse {
    let tick = tick_fresh(
        ctx.state.last_tick(),
        Instant::now(),
        ctx.config.poll_interval,
    );
    report(&[("relay-loop", tick)])
}

/// The edge's listeners really serve: a full RTMP handshake, and HLS and HTTP-FLV answer HTTP.
async fn listener_checks(ctx: &Ctx) -> [Check; 3] {
    let rtmp = async {
        match tokio::time::timeout(CHECK_TIMEOUT, rtmp_probe::handshake(ctx.config.edge_rtmp)).await
        {
            Ok(r) => r.map_err(CheckFailed::from),
            Err(_) => Err(CheckFailed::HandshakeTimeout(CHECK_TIMEOUT)),
        }
    };
    let (rtmp, hls, flv) = tokio::join!(
        rtmp,
        http_check(&ctx.http, &ctx.config.edge_hls),
        http_check(&ctx.http, &ctx.config.edge_flv),
    );
    [
        ("edge-rtmp-handshake", rtmp),
        ("edge-hls", hls),
        ("edge-flv", flv),
    ]
}

async fn startupz(State(ctx): State<Ctx>) -> impl IntoResponse {
    let [rtmp, hls, flv] = listener_checks(&ctx).await;
    let synced = started(&ctx.state.snapshot()).map_err(CheckFailed::from);
    report(&[rtmp, hls, flv, ("origins-and-edge-api", synced)])
}

async fn readyz(State(ctx): State<Ctx>) -> impl IntoResponse {
    let [rtmp, hls, flv] = listener_checks(&ctx).await;
    let streams = readiness(
        &ctx.state.snapshot(),
        Instant::now(),
        ctx.config.new_stream_grace,
    )
    .map_err(CheckFailed::from);
    let draining = if *ctx.state.drain() != Drain::Serving {
        Err(CheckFailed::Draining)
    } else {
        Ok(())
    };
    report(&[
        rtmp,
        hls,
        flv,
        ("edge-serves-every-origin-stream", streams),
        ("not-draining", draining),
    ])
}

/// Readiness goes false for good, then this answers 200 once the edge has no RTMP/FLV viewers
/// left or `drain_timeout` has passed, whichever comes first (the body says which).
async fn drain(State(ctx): State<Ctx>) -> impl IntoResponse {
    {
        let mut d = ctx.state.drain();
        *d = d.begin();
    }
    tracing::info!("draining: readiness false, waiting for viewers to leave");
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + ctx.config.drain_timeout;
    let last = loop {
        let viewers = get_viewers(&ctx.http, &ctx.config.edge_api).await;
        if matches!(viewers, Ok(0)) {
            let msg = format!(
                "drained: no viewers left after {:.1}s\n",
                started.elapsed().as_secs_f64()
            );
            tracing::info!("{}", msg.trim_end());
            return (StatusCode::OK, msg);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break viewers;
        }
        tokio::time::sleep_until((now + DRAIN_POLL).min(deadline)).await;
    };
    let left = match last {
        Ok(n) => format!("{n} viewer(s) still connected"),
        Err(e) => format!("viewers unknown ({e})"),
    };
    let msg = format!(
        "drain timeout after {:?}: {left}\n",
        ctx.config.drain_timeout
    );
    tracing::warn!("{}", msg.trim_end());
    (StatusCode::OK, msg)
}

/// The HLS/FLV roots answer 404 or an empty 200: any HTTP answer proves the listener.
async fn http_check(http: &reqwest::Client, base: &str) -> Result<(), CheckFailed> {
    let url = format!("{}/", base.trim_end_matches('/'));
    match http.get(&url).send().await {
        Ok(_) => Ok(()),
        Err(source) => Err(CheckFailed::NoHttpAnswer { url, source }),
    }
}

/// The loop ticks every 250 ms and polls within a 2 s timeout; three poll intervals (at least
/// 6 s) without a tick means it is stuck.
pub fn tick_fresh(
    last: Option<Instant>,
    now: Instant,
    poll_interval: Duration,
) -> Result<(), CheckFailed> {
    let limit = (poll_interval * 3).max(Duration::from_secs(6));
    match last {
        None => Err(CheckFailed::NeverTicked),
        Some(t) if now.duration_since(t) > limit => Err(CheckFailed::Stalled {
            ago: now.duration_since(t),
            limit,
        }),
        Some(_) => Ok(()),
    }
}

pub fn report(checks: &[Check]) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let ok = checks.iter().all(|(_, r)| r.is_ok());
    let body: String = checks
        .iter()
        .map(|(name, r)| match r {
            Ok(()) => format!("{name}: ok\n"),
            Err(e) => format!("{name}: FAILED: {e}\n"),
        })
        .collect();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness() {
        let now = Instant::now();
        let i = Duration::from_secs(2);
        let never = tick_fresh(None, now, i).unwrap_err();
        assert_eq!(never.to_string(), "the relay loop has not ticked yet");
        assert!(tick_fresh(Some(now), now, i).is_ok());
        let stalled = tick_fresh(Some(now), now + Duration::from_secs(7), i).unwrap_err();
        assert_eq!(
            stalled.to_string(),
            "the relay loop last ticked 7s ago (limit 6s)"
        );
    }

    #[test]
    fn report_names_failed_checks() {
        let (status, _, body) = report(&[
            ("a", Ok(())),
            ("b", Err(CheckFailed::Draining)),
            ("c", Err(NotReady::EdgeApiSilent.into())),
            ("d", Err(CheckFailed::HandshakeTimeout(CHECK_TIMEOUT))),
        ]);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "a: ok\n\
             b: FAILED: draining: this edge is leaving (GET /drain was called)\n\
             c: FAILED: the edge's API did not answer the last poll\n\
             d: FAILED: no handshake within 1s\n"
        );
        let (status, _, _) = report(&[("a", Ok(()))]);
        assert_eq!(status, StatusCode::OK);
    }
}

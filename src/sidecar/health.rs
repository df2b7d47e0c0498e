//! The probe endpoints: `/livez`, `/readyz`, `/startupz` (text/plain, the
//! body names each check and why it failed).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use super::{SidecarConfig, SidecarError, rtmp_probe};

/// Every check gets this long. The kubelet's default probe timeout is also
/// 1 s, so the checks of one probe run concurrently, never one after another.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Written by the reconcile loop, read by the probes.
#[derive(Default)]
pub struct SharedState {
    last_tick: Mutex<Option<Instant>>,
    synced: AtomicBool,
}

impl SharedState {
    pub fn mark_tick(&self) {
        *self.last_tick.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }
    fn last_tick(&self) -> Option<Instant> {
        *self.last_tick.lock().unwrap_or_else(|p| p.into_inner())
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
        .route("/startupz", get(readyz))
        .with_state(ctx);
    Ok(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await
    })
}

type Check = (&'static str, Result<(), String>);

async fn livez(State(ctx): State<Ctx>) -> impl IntoResponse {
    let tick = tick_fresh(
        ctx.state.last_tick(),
        Instant::now(),
        ctx.config.poll_interval,
    );
    let api = http_check(&ctx.http, &ctx.config.edge_api, true).await;
    report(&[("reconcile-loop", tick), ("edge-api", api)])
}

async fn readyz(State(ctx): State<Ctx>) -> impl IntoResponse {
    let rtmp = async {
        match tokio::time::timeout(CHECK_TIMEOUT, rtmp_probe::handshake(ctx.config.edge_rtmp)).await
        {
            Ok(r) => r,
            Err(_) => Err(format!("no handshake within {CHECK_TIMEOUT:?}")),
        }
    };
    let (rtmp, hls, flv) = tokio::join!(
        rtmp,
        http_check(&ctx.http, &ctx.config.edge_hls, false),
        http_check(&ctx.http, &ctx.config.edge_flv, false),
    );
    let synced = if ctx.state.synced.load(Ordering::Relaxed) {
        Ok(())
    } else {
        Err("no successful poll of the origin API yet".into())
    };
    report(&[
        ("edge-rtmp-handshake", rtmp),
        ("edge-hls", hls),
        ("edge-flv", flv),
        ("origin-first-sync", synced),
    ])
}

/// `need_success`: the xiu API's `/` answers 200; the HLS/FLV roots answer
/// 404 or an empty 200, so for them any HTTP answer proves the listener.
async fn http_check(http: &reqwest::Client, base: &str, need_success: bool) -> Result<(), String> {
    let url = format!("{}/", base.trim_end_matches('/'));
    match http.get(&url).send().await {
        Ok(r) if need_success && !r.status().is_success() => {
            Err(format!("{url} answered {}", r.status()))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// The loop ticks every 250 ms; three poll intervals without one means it is
/// stuck.
pub fn tick_fresh(
    last: Option<Instant>,
    now: Instant,
    poll_interval: Duration,
) -> Result<(), String> {
    match last {
        None => Err("the reconcile loop has not ticked yet".into()),
        Some(t) if now.duration_since(t) > poll_interval * 3 => Err(format!(
            "the reconcile loop last ticked {:?} ago (limit {:?})",
            now.duration_since(t),
            poll_interval * 3
        )),
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
        assert!(tick_fresh(None, now, i).is_err());
        assert!(tick_fresh(Some(now), now, i).is_ok());
        assert!(tick_fresh(Some(now), now + Duration::from_secs(7), i).is_err());
    }

    #[test]
    fn report_names_failed_checks() {
        let (status, _, body) = report(&[("a", Ok(())), ("b", Err("down".into()))]);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "a: ok\nb: FAILED: down\n");
        let (status, _, _) = report(&[("a", Ok(()))]);
        assert_eq!(status, StatusCode::OK);
    }
}

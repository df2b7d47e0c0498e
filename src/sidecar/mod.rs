//! `xiuload sidecar`: runs beside a xiu 0.14 edge and relays every live stream of the origins
//! into it: lists each origin's streams from its HTTP API, pulls each stream over HTTP-FLV from the
//! origin that holds it, and publishes it into the local edge over RTMP (with the relay token).
//! Also serves the edge's probes (`/livez`, `/readyz`, `/startupz`), `/drain` for the preStop hook,
//! and keeps the Pod's deletion cost equal to the edge's viewer count.
//!
//! Why a relay of our own instead of xiu's `[rtmp.pull]`: xiu 0.14's pull client gives up after
//! one failed connect (the edge then stays dead for that stream until xiu restarts), takes one
//! static origin address (so several origins cannot be served), and pulls only when an RTMP/FLV
//! player asks (HLS never triggers it). The relay retries forever with bounded backoff, follows a
//! stream to whichever origin lists it, and makes every stream live on the edge before anyone asks.

mod deletion_cost;
mod health;
mod origins;
mod plan;
mod readiness;
mod reconcile;
mod relay;
mod rtmp_probe;
pub mod streams;
mod xiu_api;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use deletion_cost::{DeletionCost, PodRef, patch_body};
pub use origins::{OriginEndpoints, OriginsError, pair_origins};
pub use plan::{Action, Relay, SubState, backoff, plan};
pub use readiness::{EdgeView, MissingStream, NotReady, Snapshot, readiness};
pub use streams::{StreamKey, parse_streams, parse_viewers};

#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// Every origin: its xiu HTTP API (stream list) and HTTP-FLV base (what is relayed).
    pub origins: Vec<OriginEndpoints>,
    /// This edge's HTTP-FLV base, e.g. `http://127.0.0.1:8081`.
    pub edge_flv: String,
    /// This edge's RTMP listener: the relay publishes here, the probe handshakes here.
    pub edge_rtmp: SocketAddr,
    /// This edge's xiu HTTP API base (what it serves, its viewers).
    pub edge_api: String,
    /// This edge's HLS base (readiness).
    pub edge_hls: String,
    /// Only streams of this RTMP app are relayed; empty means all apps.
    pub app: String,
    /// Where the health server listens.
    pub listen: SocketAddr,
    pub poll_interval: Duration,
    /// Appended as `?token=` to every publish into the edge (the edge's RTMP push password).
    pub relay_token: Option<String>,
    /// How long `GET /drain` waits for the edge's viewers to leave.
    pub drain_timeout: Duration,
    /// A stream an origin has listed for less than this is not yet required for readiness: the
    /// relay needs a poll interval and a connect to bring it to the edge.
    pub new_stream_grace: Duration,
    /// The Pod whose `controller.kubernetes.io/pod-deletion-cost` follows the viewer count.
    pub pod: Option<PodRef>,
}

impl Default for SidecarConfig {
    fn default() -> Self {
        SidecarConfig {
            origins: vec![OriginEndpoints {
                api: "http://xiu-origin:8000".into(),
                flv: "http://xiu-origin:8081".into(),
            }],
            edge_flv: "http://127.0.0.1:8081".into(),
            edge_rtmp: SocketAddr::from(([127, 0, 0, 1], 1935)),
            edge_api: "http://127.0.0.1:8000".into(),
            edge_hls: "http://127.0.0.1:8080".into(),
            app: "live".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            poll_interval: Duration::from_secs(2),
            relay_token: None,
            drain_timeout: Duration::from_secs(120),
            new_stream_grace: Duration::from_secs(10),
            pod: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("health server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("cannot build HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("no origin given (--origin-api)")]
    NoOrigin,
}

/// Runs the relay loop and the health server until `shutdown` resolves; then stops every relay
/// (the edge unpublishes those streams) and the server.
pub async fn run(
    config: SidecarConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SidecarError> {
    if config.origins.is_empty() {
        return Err(SidecarError::NoOrigin);
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| SidecarError::Bind {
            addr: config.listen,
            source,
        })?;
    let state = Arc::new(health::SharedState::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let server = health::serve(listener, config.clone(), state.clone(), stop_rx.clone())?;
    let mut server = tokio::spawn(server);
    let reconcile = tokio::spawn(reconcile::run_loop(config, state, stop_rx)?);

    // Stop on request, or early if the health server dies: a sidecar whose
    // probes cannot answer would only get the pod killed later anyway.
    let early = tokio::select! {
        _ = shutdown => None,
        r = &mut server => Some(r),
    };
    let _ = stop_tx.send(true);
    let _ = reconcile.await;
    let result = match early {
        Some(r) => r,
        None => server.await,
    };
    match result {
        Ok(r) => r.map_err(SidecarError::Serve),
        Err(_) => Ok(()), // the server task panicked or was cancelled: nothing left to stop
    }
}

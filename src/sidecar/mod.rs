//! `xiuload sidecar`: runs beside a xiu 0.14 edge and keeps one HTTP-FLV
//! subscription per live stream of the origin, so the edge pulls (and remuxes
//! to HLS) every stream before any viewer asks; also serves deep probes.
//!
//! Why: a xiu edge pulls from the origin only when an RTMP/FLV player asks,
//! the first such player gets an empty 200, and HLS requests never trigger a
//! pull. Without this an HLS viewer on a fresh edge gets 404s forever.

mod edge_admin;
mod health;
mod plan;
mod reconcile;
mod rtmp_probe;
pub mod streams;
mod subscriber;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use plan::{Action, SubState, backoff, plan};
pub use streams::{StreamKey, parse_streams};

#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// The origin's xiu HTTP API, e.g. `http://xiu-origin:8000`.
    pub origin_api: String,
    /// This edge's HTTP-FLV base, e.g. `http://127.0.0.1:8081`.
    pub edge_flv: String,
    /// This edge's RTMP listener (for the handshake probe).
    pub edge_rtmp: SocketAddr,
    /// This edge's xiu HTTP API base (liveness).
    pub edge_api: String,
    /// This edge's HLS base (readiness).
    pub edge_hls: String,
    /// Only streams of this RTMP app are mirrored; empty means all apps.
    pub app: String,
    /// Where the health server listens.
    pub listen: SocketAddr,
    pub poll_interval: Duration,
}

impl Default for SidecarConfig {
    fn default() -> Self {
        SidecarConfig {
            origin_api: "http://xiu-origin:8000".into(),
            edge_flv: "http://127.0.0.1:8081".into(),
            edge_rtmp: SocketAddr::from(([127, 0, 0, 1], 1935)),
            edge_api: "http://127.0.0.1:8000".into(),
            edge_hls: "http://127.0.0.1:8080".into(),
            app: "live".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            poll_interval: Duration::from_secs(2),
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
}

/// Runs the reconcile loop and the health server until `shutdown` resolves;
/// then aborts every subscription and stops the server.
pub async fn run(
    config: SidecarConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SidecarError> {
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

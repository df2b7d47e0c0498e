//! The production topology on loopback: one origin that publishers reach, N edges that pull from
//! it, and beside each edge the sidecar that keeps it subscribed to every live stream, exactly as
//! `deploy/` runs them in a cluster (same xiu config shape, distinct ports).

use super::xiu::{LocalError, LocalXiu, free_ports};
use crate::sidecar::SidecarConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Edge {
    pub xiu: LocalXiu,
    /// The sidecar's probe server.
    pub health: SocketAddr,
}

pub struct LocalTopology {
    pub origin: LocalXiu,
    pub edges: Vec<Edge>,
    sidecars: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LocalTopology {
    /// Starts the origin, then the edges and their sidecars, and waits until every sidecar says
    /// ready (its edge answers RTMP, HLS and HTTP-FLV, and the first sync with the origin is done).
    pub async fn start(
        bin: &Path,
        hls_fragment_secs: u32,
        edges: u32,
        app: &str,
    ) -> Result<LocalTopology, LocalError> {
        let origin = LocalXiu::start(bin, hls_fragment_secs, None).await?;
        let sidecars = CancellationToken::new();
        let mut topology = LocalTopology {
            origin,
            edges: Vec::new(),
            sidecars: sidecars.clone(),
            tasks: Vec::new(),
        };
        let origin_rtmp = topology.origin.ports.rtmp;
        let origin_api = format!("http://127.0.0.1:{}", topology.origin.ports.api);
        for _ in 0..edges {
            let xiu =
                LocalXiu::start(bin, hls_fragment_secs, Some(("127.0.0.1", origin_rtmp))).await?;
            let p = xiu.ports;
            let health = SocketAddr::from(([127, 0, 0, 1], free_ports(1)?[0]));
            let config = SidecarConfig {
                origin_api: origin_api.clone(),
                edge_flv: format!("http://127.0.0.1:{}", p.flv),
                edge_rtmp: SocketAddr::from(([127, 0, 0, 1], p.rtmp)),
                edge_api: format!("http://127.0.0.1:{}", p.api),
                edge_hls: format!("http://127.0.0.1:{}", p.hls),
                app: app.to_string(),
                listen: health,
                // Faster than in a pod: local runs are short and start streams right away.
                poll_interval: Duration::from_millis(500),
            };
            let stop = sidecars.clone();
            topology.tasks.push(tokio::spawn(async move {
                let _ = crate::sidecar::run(config, stop.cancelled_owned()).await;
            }));
            topology.edges.push(Edge { xiu, health });
        }
        for edge in &topology.edges {
            wait_ready(edge.health, Duration::from_secs(20)).await?;
        }
        Ok(topology)
    }

    /// Process ids of every xiu in the topology.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.origin)
            .chain(self.edges.iter().map(|e| &e.xiu))
            .filter_map(|x| x.pid())
            .collect()
    }

    /// The servers viewers are spread over: the edges, or the one xiu.
    pub fn serving(&self) -> u32 {
        (self.edges.len() as u32).max(1)
    }

    /// Stops sidecars first (so they do not chase a vanishing origin), then edges, then the origin.
    pub async fn stop(self) {
        self.sidecars.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        for edge in self.edges {
            edge.xiu.stop().await;
        }
        self.origin.stop().await;
    }
}

/// Polls the sidecar's `/readyz` (the sidecar has no push notification; this is the same probe
/// the kubelet uses), bounded.
async fn wait_ready(health: SocketAddr, limit: Duration) -> Result<(), LocalError> {
    let client = reqwest::Client::new();
    let url = format!("http://{health}/readyz");
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = r.text().await.unwrap_or_default(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(LocalError::NotReady(
        limit,
        format!("sidecar {url} not ready: {last}"),
    ))
}

//! The production topology on loopback, as `deploy/` runs it in a cluster: origins that publishers
//! reach, N edges that never pull (RTMP push auth on, with a token the topology generates), and
//! beside each edge the sidecar relaying every origin stream into it (same xiu config shape,
//! distinct ports).

use super::balancer::{LocalBalancer, find_haproxy};
use super::rotation::Rotation;
use super::xiu::{LocalError, LocalXiu, free_ports, sweep_stale_dirs};
use crate::metrics::loader::PidSet;
use crate::sidecar::{OriginEndpoints, SidecarConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Edge {
    pub xiu: LocalXiu,
    /// The sidecar's probe server (`/livez`, `/readyz`, `/startupz`, `/drain`).
    pub health: SocketAddr,
    pub sidecar: Sidecar,
}

/// An edge's sidecar, run as a task of this process: what it was started with (to start it
/// again, as the kubelet restarts a container) and the task.
pub struct Sidecar {
    config: SidecarConfig,
    /// A child of the topology's token: the topology stops every sidecar at once.
    stop: CancellationToken,
    /// `None` once it ended and that was seen.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sidecar {
    fn spawn(config: SidecarConfig, all: &CancellationToken) -> Sidecar {
        let stop = all.child_token();
        let (run, until) = (config.clone(), stop.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = crate::sidecar::run(run, until.cancelled_owned()).await {
                tracing::error!(error = %e, "local sidecar failed");
            }
        });
        Sidecar {
            config,
            stop,
            task: Some(task),
        }
    }

    /// Asks it to stop and waits for it, bounded (it stops its relays and its server).
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }

    /// Resolves when the task ends by itself (it failed); never once that was seen, or after
    /// [`Sidecar::stop`]. Cancel-safe.
    pub async fn ended(&mut self) {
        match &mut self.task {
            Some(t) => {
                let _ = t.await;
                self.task = None;
            }
            None => std::future::pending().await,
        }
    }
}

impl Edge {
    /// Starts the sidecar again on the same address after [`Sidecar::stop`] (a container
    /// restart: its state, `draining` included, starts over).
    pub fn start_sidecar(&mut self, all: &CancellationToken) {
        self.sidecar = Sidecar::spawn(self.sidecar.config.clone(), all);
    }
}

/// What it takes to start an edge's xiu again: a cheap copy for whoever supervises the edges.
#[derive(Debug, Clone)]
pub struct EdgeLauncher {
    bin: PathBuf,
    hls_fragment_secs: u32,
    relay_token: String,
    /// The topology's sidecars, parent of each edge's.
    pub sidecars: CancellationToken,
}

impl EdgeLauncher {
    /// Kills `xiu` if it runs and starts it again on the same ports with the same relay token
    /// (an edge container restarting); its sidecar relays into it again.
    pub async fn restart(&self, xiu: &mut LocalXiu) -> Result<(), LocalError> {
        xiu.restart(&self.bin, self.hls_fragment_secs, Some(&self.relay_token))
            .await
    }
}

/// How to lay the topology out; [`TopologyOptions::new`] gives deploy/'s shape with timings for
/// short local runs.
#[derive(Debug, Clone)]
pub struct TopologyOptions {
    pub hls_fragment_secs: u32,
    /// At least 1. Publishers reach the first unless they are pointed elsewhere.
    pub origins: u32,
    pub edges: u32,
    pub app: String,
    /// The sidecars' poll of the origins' stream lists.
    pub poll_interval: Duration,
    pub new_stream_grace: Duration,
    pub drain_timeout: Duration,
}

impl TopologyOptions {
    pub fn new(hls_fragment_secs: u32, origins: u32, edges: u32, app: &str) -> Self {
        TopologyOptions {
            hls_fragment_secs,
            origins: origins.max(1),
            edges,
            app: app.to_string(),
            // Faster than in a pod: local runs are short and start streams right away.
            poll_interval: Duration::from_millis(500),
            new_stream_grace: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

pub struct LocalTopology {
    /// The first origin (the only one unless `origins` > 1).
    pub origin: LocalXiu,
    /// Origins 2..N.
    pub other_origins: Vec<LocalXiu>,
    /// With several origins: HAProxy in front of their RTMP ports, where publishers connect (the
    /// publish LoadBalancer of a cluster).
    pub balancer: Option<LocalBalancer>,
    pub edges: Vec<Edge>,
    /// The edges that take new viewers (all, until a kubelet takes one out).
    pub rotation: Rotation,
    /// The edges' RTMP push password: only the sidecars know it.
    pub relay_token: String,
    /// Every xiu's pid, restarts included, for the server CPU/RSS sampler.
    servers: PidSet,
    bin: PathBuf,
    options: TopologyOptions,
    sidecars: CancellationToken,
}

impl LocalTopology {
    /// One origin and `edges` edges (the shape `[target.local] edges = N` asks for).
    pub async fn start(
        bin: &Path,
        hls_fragment_secs: u32,
        edges: u32,
        app: &str,
    ) -> Result<LocalTopology, LocalError> {
        Self::start_with(bin, TopologyOptions::new(hls_fragment_secs, 1, edges, app)).await
    }

    /// Starts the origins, then the edges and their sidecars, and waits until every sidecar says
    /// ready (its edge answers RTMP, HLS and HTTP-FLV, and serves what the origins list).
    pub async fn start_with(
        bin: &Path,
        options: TopologyOptions,
    ) -> Result<LocalTopology, LocalError> {
        sweep_stale_dirs();
        let origin = LocalXiu::start(bin, options.hls_fragment_secs, None).await?;
        let mut other_origins = Vec::new();
        for _ in 1..options.origins.max(1) {
            other_origins.push(LocalXiu::start(bin, options.hls_fragment_secs, None).await?);
        }
        let balancer = if other_origins.is_empty() {
            None
        } else {
            let haproxy = find_haproxy()?;
            let backends: Vec<u16> = std::iter::once(&origin)
                .chain(&other_origins)
                .map(|o| o.ports.rtmp)
                .collect();
            Some(LocalBalancer::start(&haproxy, &backends).await?)
        };
        let relay_token = format!("{:032x}", rand::random::<u128>());
        let mut topology = LocalTopology {
            origin,
            other_origins,
            balancer,
            edges: Vec::new(),
            rotation: Rotation::all_ready(options.edges as usize),
            relay_token,
            servers: PidSet::default(),
            bin: bin.to_path_buf(),
            options: options.clone(),
            sidecars: CancellationToken::new(),
        };
        let origins: Vec<OriginEndpoints> = topology
            .origins()
            .map(|o| OriginEndpoints {
                api: format!("http://127.0.0.1:{}", o.ports.api),
                flv: format!("http://127.0.0.1:{}", o.ports.flv),
            })
            .collect();
        for _ in 0..options.edges {
            let xiu = LocalXiu::start(bin, options.hls_fragment_secs, Some(&topology.relay_token))
                .await?;
            let p = xiu.ports;
            let health = SocketAddr::from(([127, 0, 0, 1], free_ports(1)?[0]));
            let config = SidecarConfig {
                origins: origins.clone(),
                edge_flv: format!("http://127.0.0.1:{}", p.flv),
                edge_rtmp: SocketAddr::from(([127, 0, 0, 1], p.rtmp)),
                edge_api: format!("http://127.0.0.1:{}", p.api),
                edge_hls: format!("http://127.0.0.1:{}", p.hls),
                app: options.app.clone(),
                listen: health,
                poll_interval: options.poll_interval,
                relay_token: Some(topology.relay_token.clone()),
                drain_timeout: options.drain_timeout,
                new_stream_grace: options.new_stream_grace,
                pod: None,
            };
            let sidecar = Sidecar::spawn(config, &topology.sidecars);
            topology.edges.push(Edge {
                xiu,
                health,
                sidecar,
            });
        }
        for edge in &topology.edges {
            wait_ready(edge.health, Duration::from_secs(20)).await?;
        }
        let servers = topology.servers.clone();
        topology.origin.follow_in(&servers);
        for xiu in topology.other_origins.iter_mut() {
            xiu.follow_in(&servers);
        }
        for edge in topology.edges.iter_mut() {
            edge.xiu.follow_in(&servers);
        }
        Ok(topology)
    }

    /// Every origin, the first one first.
    pub fn origins(&self) -> impl Iterator<Item = &LocalXiu> {
        std::iter::once(&self.origin).chain(&self.other_origins)
    }

    /// Where publishers connect: the balancer with several origins, else the origin.
    pub fn publish_port(&self) -> u16 {
        self.balancer
            .as_ref()
            .map_or(self.origin.ports.rtmp, |b| b.port)
    }

    pub fn origin_mut(&mut self, i: usize) -> Option<&mut LocalXiu> {
        match i {
            0 => Some(&mut self.origin),
            _ => self.other_origins.get_mut(i - 1),
        }
    }

    /// Kills origin `i` and starts it again on the same ports (an origin pod restarting).
    pub async fn restart_origin(&mut self, i: usize) -> Result<(), LocalError> {
        let (bin, frag) = (self.bin.clone(), self.options.hls_fragment_secs);
        match self.origin_mut(i) {
            Some(o) => o.restart(&bin, frag, None).await,
            None => Ok(()),
        }
    }

    pub fn edge_mut(&mut self, i: usize) -> Option<&mut LocalXiu> {
        self.edges.get_mut(i).map(|e| &mut e.xiu)
    }

    /// Kills edge `i`'s xiu and starts it again on the same ports with the same relay token (an
    /// edge container restarting); its sidecar keeps running and relays into it again.
    pub async fn restart_edge(&mut self, i: usize) -> Result<(), LocalError> {
        let launcher = self.edge_launcher();
        match self.edge_mut(i) {
            Some(e) => launcher.restart(e).await,
            None => Ok(()),
        }
    }

    pub fn edge_launcher(&self) -> EdgeLauncher {
        EdgeLauncher {
            bin: self.bin.clone(),
            hls_fragment_secs: self.options.hls_fragment_secs,
            relay_token: self.relay_token.clone(),
            sidecars: self.sidecars.clone(),
        }
    }

    /// The grace an edge container gets to stop (the local drain plus deploy/'s slack).
    pub fn termination_grace(&self) -> Duration {
        super::probes::termination_grace(self.options.drain_timeout)
    }

    /// Every xiu's process id, kept current across restarts (what the server CPU/RSS figures
    /// sample).
    pub fn servers(&self) -> PidSet {
        self.servers.clone()
    }

    /// The servers viewers are spread over: the edges, or the one xiu.
    pub fn serving(&self) -> u32 {
        (self.edges.len() as u32).max(1)
    }

    /// Stops sidecars first (so they do not chase vanishing origins), then edges, then origins.
    pub async fn stop(mut self) {
        self.sidecars.cancel();
        for edge in &mut self.edges {
            edge.sidecar.stop().await;
        }
        for edge in self.edges {
            edge.xiu.stop().await;
        }
        if let Some(b) = self.balancer {
            b.stop().await;
        }
        self.origin.stop().await;
        for o in self.other_origins {
            o.stop().await;
        }
    }
}

/// Polls the sidecar's `/readyz` (the sidecar has no push notification; this is the same probe
/// the kubelet uses), bounded.
pub async fn wait_ready(health: SocketAddr, limit: Duration) -> Result<(), LocalError> {
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

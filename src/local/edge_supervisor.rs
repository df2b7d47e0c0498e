//! One edge's kubelet: owns the edge (its xiu and its sidecar) while the load runs, probes both
//! containers on their periods, acts on the results with the rules of [`super::probes`], keeps
//! the edge in the viewers' [`Rotation`] while the pod would be Ready, restarts containers, and
//! carries out the faults aimed at the edge ([`Action`]).

use super::kubelet_record::{KubeletAction, KubeletLog};
use super::probes::{Change, Check, Container, CrashBackoff, EdgePort, PodProbes, ProbeKind};
use super::process_action::{Action, ActionError, Process, Request};
use super::rotation::Rotation;
use super::topology::{Edge, EdgeLauncher};
use crate::clock::RunClock;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What an edge's supervisor needs besides the edge.
pub(super) struct EdgeContext {
    pub(super) index: usize,
    pub(super) launcher: EdgeLauncher,
    pub(super) grace: Duration,
    pub(super) http: reqwest::Client,
    pub(super) rotation: Rotation,
    pub(super) log: KubeletLog,
    pub(super) clock: RunClock,
}

/// One probe's answer, for the container instance (`generation`) it was sent to.
struct ProbeResult {
    container: Container,
    kind: ProbeKind,
    generation: u64,
    outcome: Result<(), ProbeFailed>,
}

/// Why one probe failed, as the kubelet would word it in its event.
#[derive(Debug, thiserror::Error)]
enum ProbeFailed {
    /// Outside 200-399.
    #[error("HTTP {0}")]
    Status(u16),
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    #[error(transparent)]
    Http(reqwest::Error),
    #[error(transparent)]
    Connect(std::io::Error),
    #[error("no connection within {0:?}")]
    NoConnection(Duration),
}

enum Wake {
    Stop,
    Command(Request),
    Exited(Container, String),
    Probe(ProbeResult),
    Due,
}

/// One edge's kubelet. Per container: the pure probe state, its instance count (answers to an
/// instance gone are dropped), back-off, restart count, a pending restart, and each probe's
/// next tick (the probes keep their phase across restarts, as the kubelet's probe workers do).
pub(super) struct EdgeWorker {
    ctx: EdgeContext,
    pod: PodProbes,
    generation: [u64; 2],
    backoff: [CrashBackoff; 2],
    restarts: [u32; 2],
    pending: [Option<(Instant, String)>; 2],
    next: [[Instant; 3]; 2],
    in_flight: [[bool; 3]; 2],
    last_failure: [[String; 3]; 2],
    probes: JoinSet<ProbeResult>,
}

impl EdgeWorker {
    pub(super) fn new(ctx: EdgeContext) -> EdgeWorker {
        let now = Instant::now();
        let next = Container::BOTH.map(|c| ProbeKind::ALL.map(|k| now + c.spec().probe(k).period));
        EdgeWorker {
            ctx,
            pod: PodProbes::serving(),
            generation: [0; 2],
            backoff: [CrashBackoff::default(); 2],
            restarts: [0; 2],
            pending: [None, None],
            next,
            in_flight: [[false; 3]; 2],
            last_failure: Default::default(),
            probes: JoinSet::new(),
        }
    }

    fn process(&self) -> Process {
        Process::Edge(self.ctx.index)
    }

    pub(super) async fn run(
        mut self,
        mut edge: Edge,
        mut requests: mpsc::Receiver<Request>,
        stop: CancellationToken,
    ) -> Edge {
        loop {
            let wake_at = self.next_wake();
            let xiu_runs = self.pod.is_running(Container::Xiu) && edge.xiu.pid().is_some();
            let sidecar_runs = self.pod.is_running(Container::Sidecar);
            let wake = tokio::select! {
                _ = stop.cancelled() => Wake::Stop,
                Some(request) = requests.recv() => Wake::Command(request),
                how = edge.xiu.exited(), if xiu_runs => Wake::Exited(Container::Xiu, format!("exited: {how}")),
                _ = edge.sidecar.ended(), if sidecar_runs => Wake::Exited(Container::Sidecar, "its task ended".into()),
                Some(Ok(result)) = self.probes.join_next(), if !self.probes.is_empty() => Wake::Probe(result),
                _ = tokio::time::sleep_until(wake_at) => Wake::Due,
            };
            if let Wake::Stop = wake {
                break;
            }
            let handled = async {
                match wake {
                    Wake::Stop => {}
                    Wake::Command((action, reply)) => {
                        let result = self.command(&mut edge, action).await;
                        let _ = reply.send(result);
                    }
                    Wake::Exited(c, why) => self.gone(c, why),
                    Wake::Probe(r) => self.probed(&mut edge, r).await,
                    Wake::Due => {
                        self.restart_due(&mut edge).await;
                        self.probe_due(&edge);
                    }
                }
            };
            // A container being stopped can take the whole grace period: the run's end does
            // not wait for it (the topology stops what is left).
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = handled => {}
            }
        }
        self.probes.abort_all();
        edge
    }

    /// The earliest pending restart or probe tick.
    fn next_wake(&self) -> Instant {
        let restarts = self.pending.iter().flatten().map(|(at, _)| *at);
        let ticks = self.next.iter().flatten().copied();
        restarts
            .chain(ticks)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
    }

    async fn command(&mut self, edge: &mut Edge, action: Action) -> Result<(), ActionError> {
        let running = edge.xiu.pid().is_some();
        match action {
            Action::Start => {
                let started = self.ctx.launcher.restart(&mut edge.xiu).await;
                self.pending[Container::Xiu as usize] = None;
                match started {
                    Ok(()) => {
                        self.started(Container::Xiu);
                        self.update_rotation("xiu started again by a fault".into());
                        Ok(())
                    }
                    Err(source) => {
                        self.gone(Container::Xiu, format!("did not start: {source}"));
                        Err(ActionError::NotBack {
                            process: self.process(),
                            source,
                        })
                    }
                }
            }
            Action::Down => {
                if running {
                    edge.xiu.kill().await;
                    self.gone(Container::Xiu, "killed by a fault (SIGKILL)".into());
                }
                Ok(())
            }
            _ if !running => Err(ActionError::NotRunning(self.process())),
            Action::Kill => {
                edge.xiu.kill().await;
                self.gone(Container::Xiu, "killed by a fault (SIGKILL)".into());
                Ok(())
            }
            Action::Signal(signal) => {
                edge.xiu.signal(signal);
                Ok(())
            }
        }
    }

    /// Container `c` is no longer running: the pod is unready, a restart is planned after the
    /// back-off.
    fn gone(&mut self, c: Container, why: String) {
        let now = Instant::now();
        self.pod.exited(c);
        self.generation[c as usize] += 1;
        let delay = self.backoff[c as usize].delay(now.into_std());
        self.pending[c as usize] = Some((now + delay, why.clone()));
        self.update_rotation(format!("{} {why}", c.as_str()));
    }

    fn started(&mut self, c: Container) {
        self.pod.started(c);
        self.generation[c as usize] += 1;
        // The startup probe of a new container runs at once.
        self.next[c as usize][ProbeKind::Startup as usize] = Instant::now();
    }

    /// Puts the edge in or out of the viewers' rotation as the pod's readiness says, recording
    /// a change.
    fn update_rotation(&self, reason: String) {
        let ready = self.pod.ready();
        if self.ctx.rotation.set(self.ctx.index, ready) {
            let action = if ready {
                KubeletAction::BackInRotation
            } else {
                KubeletAction::OutOfRotation
            };
            let reason = if ready {
                "every container runs and is ready".to_string()
            } else {
                reason
            };
            self.ctx
                .log
                .push(&self.ctx.clock, self.ctx.index, action, None, None, reason);
        }
    }

    async fn probed(&mut self, edge: &mut Edge, r: ProbeResult) {
        let (c, k) = (r.container as usize, r.kind as usize);
        self.in_flight[c][k] = false;
        if r.generation != self.generation[c] || !self.pod.is_running(r.container) {
            return;
        }
        let spec = r.container.spec();
        let probe = spec.probe(r.kind);
        if let Err(e) = &r.outcome {
            self.last_failure[c][k] = e.to_string();
        }
        let what = format!(
            "{} {} probe ({})",
            r.container.as_str(),
            r.kind.as_str(),
            describe(probe.check)
        );
        match self
            .pod
            .container(r.container)
            .observe(spec, r.kind, r.outcome.is_ok())
        {
            Some(Change::Ready) => self.update_rotation(String::new()),
            Some(Change::Unready) => self.update_rotation(format!(
                "{what} failed {} times in a row, last: {}",
                probe.failure_threshold, self.last_failure[c][k]
            )),
            Some(Change::Restart { failures, .. }) => {
                let why = format!(
                    "{what} failed {failures} times in a row, last: {}",
                    self.last_failure[c][k]
                );
                self.kill_container(edge, r.container).await;
                self.gone(r.container, format!("killed: {why}"));
            }
            Some(Change::Started) | None => {}
        }
    }

    /// Stops a container as the kubelet does: its preStop hook (bounded by the grace period),
    /// then its stop signal, then SIGKILL once the grace period is over.
    async fn kill_container(&mut self, edge: &mut Edge, c: Container) {
        let began = Instant::now();
        let hook = c.spec().pre_stop;
        let _ = run_check(&self.ctx.http, hook, edge, self.ctx.grace).await;
        // The kubelet gives a container whose hook used up the grace 2 s more.
        let left = self
            .ctx
            .grace
            .saturating_sub(began.elapsed())
            .max(Duration::from_secs(2));
        match c {
            Container::Xiu => {
                edge.xiu.terminate(left).await;
            }
            Container::Sidecar => edge.sidecar.stop().await,
        }
    }

    /// Starts every container whose restart is due.
    async fn restart_due(&mut self, edge: &mut Edge) {
        let now = Instant::now();
        for c in Container::BOTH {
            let Some((at, why)) = self.pending[c as usize].clone() else {
                continue;
            };
            if at > now {
                continue;
            }
            self.pending[c as usize] = None;
            self.restarts[c as usize] += 1;
            let event = self.ctx.log.push(
                &self.ctx.clock,
                self.ctx.index,
                KubeletAction::Restart,
                Some(c),
                Some(self.restarts[c as usize]),
                why,
            );
            let result = match c {
                Container::Xiu => self.ctx.launcher.restart(&mut edge.xiu).await,
                Container::Sidecar => {
                    edge.start_sidecar(&self.ctx.launcher.sidecars);
                    Ok(())
                }
            };
            match &result {
                Ok(()) => self.started(c),
                // Still down: the next attempt after the back-off.
                Err(e) => self.gone(c, format!("did not start: {e}")),
            }
            self.ctx.log.finish(event, &self.ctx.clock, result);
        }
    }

    /// Sends every probe whose tick has come, for a running container it applies to.
    fn probe_due(&mut self, edge: &Edge) {
        let now = Instant::now();
        for c in Container::BOTH {
            for kind in ProbeKind::ALL {
                let (ci, ki) = (c as usize, kind as usize);
                let probe = *c.spec().probe(kind);
                if self.next[ci][ki] > now {
                    continue;
                }
                // The next tick; ticks missed while busy are skipped, as a ticker drops them.
                while self.next[ci][ki] <= now {
                    self.next[ci][ki] += probe.period;
                }
                let applies = self.pod.is_running(c)
                    && self.pod.containers[ci].runs(kind)
                    && !self.in_flight[ci][ki];
                if !applies {
                    continue;
                }
                self.in_flight[ci][ki] = true;
                let (http, generation) = (self.ctx.http.clone(), self.generation[ci]);
                let target = address(edge, probe.check);
                self.probes.spawn(async move {
                    ProbeResult {
                        container: c,
                        kind,
                        generation,
                        outcome: check_at(&http, probe.check, target, probe.timeout).await,
                    }
                });
            }
        }
    }
}

fn address(edge: &Edge, check: Check) -> SocketAddr {
    let port = match check {
        Check::HttpGet { port, .. } | Check::TcpSocket { port } => port,
    };
    let loopback = |p| SocketAddr::from(([127, 0, 0, 1], p));
    match port {
        EdgePort::XiuApi => loopback(edge.xiu.ports.api),
        EdgePort::XiuRtmp => loopback(edge.xiu.ports.rtmp),
        EdgePort::SidecarHealth => edge.health,
    }
}

fn describe(check: Check) -> String {
    let port = |p: EdgePort| match p {
        EdgePort::XiuApi => "api",
        EdgePort::XiuRtmp => "rtmp",
        EdgePort::SidecarHealth => "health",
    };
    match check {
        Check::HttpGet { port: p, path } => format!("GET {path} on {}", port(p)),
        Check::TcpSocket { port: p } => format!("TCP connect to {}", port(p)),
    }
}

async fn run_check(
    http: &reqwest::Client,
    check: Check,
    edge: &Edge,
    timeout: Duration,
) -> Result<(), ProbeFailed> {
    check_at(http, check, address(edge, check), timeout).await
}

/// One probe, as the kubelet judges it: an HTTP status from 200 to 399, or a TCP connection
/// accepted, within `timeout`.
async fn check_at(
    http: &reqwest::Client,
    check: Check,
    at: SocketAddr,
    timeout: Duration,
) -> Result<(), ProbeFailed> {
    match check {
        Check::HttpGet { path, .. } => {
            let answer = http
                .get(format!("http://{at}{path}"))
                .timeout(timeout)
                .send()
                .await;
            match answer {
                Ok(r) if (200..400).contains(&r.status().as_u16()) => Ok(()),
                Ok(r) => Err(ProbeFailed::Status(r.status().as_u16())),
                Err(e) if e.is_timeout() => Err(ProbeFailed::NoAnswer(timeout)),
                Err(e) => Err(ProbeFailed::Http(e)),
            }
        }
        Check::TcpSocket { .. } => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(at)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(ProbeFailed::Connect(e)),
                Err(_) => Err(ProbeFailed::NoConnection(timeout)),
            }
        }
    }
}

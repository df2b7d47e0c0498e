//! The local kubelet: while a run's load goes on, the local topology's edges are supervised as
//! the kubelet supervises deploy/'s edge pods ([`super::probes`] has the numbers and the rules).
//! Each edge gets a task that owns it: it runs both containers' startup, readiness and liveness
//! probes on their periods, keeps the edge in the viewers' rotation exactly while the pod
//! would be Ready, restarts a container whose liveness (or startup) probe failed `failureThreshold`
//! times in a row (preStop hook, SIGINT, SIGKILL after the grace period, as the kubelet stops a
//! container) or that exited, with the crash-loop back-off, and records each of these as a
//! [`KubeletEvent`].
//!
//! Faults reach the processes through [`Kubelet::act`], so a fault and the kubelet never act on
//! the same process at once. Origins are not supervised: a killed origin stays down.

use super::edge_supervisor::{EdgeContext, EdgeWorker};
use super::process_action::Request;
use super::topology::{Edge, LocalTopology};
use crate::clock::RunClock;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use super::kubelet_record::{KubeletAction, KubeletEvent, KubeletLog};
pub use super::process_action::{Action, ActionError, Process};

struct EdgeHandle {
    commands: mpsc::Sender<Request>,
    task: JoinHandle<Edge>,
}

/// The running kubelet: owns the topology until [`Kubelet::stop`].
pub struct Kubelet {
    topology: LocalTopology,
    edges: Vec<EdgeHandle>,
    stop: CancellationToken,
    log: KubeletLog,
}

impl Kubelet {
    /// Takes the topology and supervises its edges from now on (every edge is ready: the
    /// topology starts only then).
    pub fn start(mut topology: LocalTopology, clock: RunClock) -> Kubelet {
        let stop = CancellationToken::new();
        let log = KubeletLog::default();
        let launcher = topology.edge_launcher();
        let grace = topology.termination_grace();
        let http = reqwest::Client::builder()
            // A probe opens its own connection, as the kubelet's do: a pooled one would hide a
            // listener that stopped accepting.
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default();
        let edges = std::mem::take(&mut topology.edges)
            .into_iter()
            .enumerate()
            .map(|(index, edge)| {
                let (commands, requests) = mpsc::channel(4);
                let worker = EdgeWorker::new(EdgeContext {
                    index,
                    launcher: launcher.clone(),
                    grace,
                    http: http.clone(),
                    rotation: topology.rotation.clone(),
                    log: log.clone(),
                    clock,
                });
                let task = tokio::spawn(worker.run(edge, requests, stop.clone()));
                EdgeHandle { commands, task }
            })
            .collect();
        Kubelet {
            topology,
            edges,
            stop,
            log,
        }
    }

    pub fn log(&self) -> KubeletLog {
        self.log.clone()
    }

    /// Does `action` to `process`'s xiu (through the edge's supervisor for an edge).
    pub async fn act(&mut self, process: Process, action: Action) -> Result<(), ActionError> {
        match process {
            Process::Edge(i) => {
                let edge = self
                    .edges
                    .get(i)
                    .ok_or(ActionError::NoSuchProcess(process))?;
                let (reply, answer) = oneshot::channel();
                edge.commands
                    .send((action, reply))
                    .await
                    .map_err(|_| ActionError::SupervisorGone(process))?;
                answer
                    .await
                    .map_err(|_| ActionError::SupervisorGone(process))?
            }
            Process::Origin(i) => {
                let origin = self
                    .topology
                    .origin_mut(i)
                    .ok_or(ActionError::NoSuchProcess(process))?;
                let running = origin.pid().is_some();
                match action {
                    Action::Start => self
                        .topology
                        .restart_origin(i)
                        .await
                        .map_err(|source| ActionError::NotBack { process, source }),
                    Action::Down => {
                        origin.kill().await;
                        Ok(())
                    }
                    _ if !running => Err(ActionError::NotRunning(process)),
                    Action::Kill => {
                        origin.kill().await;
                        Ok(())
                    }
                    Action::Signal(signal) => {
                        origin.signal(signal);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Stops supervising and gives the topology back, every edge in its place.
    pub async fn stop(mut self) -> LocalTopology {
        self.stop.cancel();
        for (i, handle) in self.edges.into_iter().enumerate() {
            match handle.task.await {
                Ok(edge) => self.topology.edges.push(edge),
                // Its processes were killed when the task's edge was dropped.
                Err(e) => eprintln!("warning: the local kubelet of edge {i} failed: {e}"),
            }
        }
        self.topology
    }
}

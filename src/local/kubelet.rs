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
use super::topology::{Edge, LocalTopology};
use super::xiu::LocalError;
use crate::clock::RunClock;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use super::kubelet_record::{KubeletAction, KubeletEvent, KubeletLog};

/// A process of the local topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Origin(usize),
    Edge(usize),
}

/// "origin 0", "edge 1": how the fault record names it.
impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Process::Origin(i) => write!(f, "origin {i}"),
            Process::Edge(i) => write!(f, "edge {i}"),
        }
    }
}

/// Whether a process killed earlier is started again: only edges are supervised.
fn comes_back(process: Process) -> &'static str {
    match process {
        Process::Edge(_) => "; the kubelet starts it again after its back-off",
        Process::Origin(_) => "",
    }
}

/// Why a fault's action on a process did not happen; the fault record keeps its text.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0} does not exist")]
    NoSuchProcess(Process),
    /// The edge's supervising task has ended (the run is stopping).
    #[error("{0}'s supervisor is gone")]
    SupervisorGone(Process),
    /// Killed earlier and not started again: nothing to kill or signal.
    #[error("{0} is not running (killed earlier{note})", note = comes_back(*.0))]
    NotRunning(Process),
    #[error("{process} did not come back: {source}")]
    NotBack {
        process: Process,
        #[source]
        source: LocalError,
    },
}

/// What a fault does to a process's xiu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL; an error when it is not running.
    Kill,
    /// SIGKILL if it runs (the first half of a `restart`).
    Down,
    /// Started again on the same ports, killed first if it runs.
    Start,
    /// A signal (SIGSTOP, SIGCONT); an error when it is not running.
    Signal(libc::c_int),
}

pub(super) type Request = (Action, oneshot::Sender<Result<(), ActionError>>);

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault record (report.json, the journal) and tests/faults.rs read these texts.
    #[test]
    fn action_errors_read_as_the_fault_record_has_them() {
        assert_eq!(
            ActionError::NoSuchProcess(Process::Edge(3)).to_string(),
            "edge 3 does not exist"
        );
        assert_eq!(
            ActionError::SupervisorGone(Process::Edge(0)).to_string(),
            "edge 0's supervisor is gone"
        );
        assert_eq!(
            ActionError::NotRunning(Process::Origin(1)).to_string(),
            "origin 1 is not running (killed earlier)"
        );
        assert_eq!(
            ActionError::NotRunning(Process::Edge(1)).to_string(),
            "edge 1 is not running (killed earlier; the kubelet starts it again after its back-off)"
        );
        assert_eq!(
            ActionError::NotBack {
                process: Process::Origin(0),
                source: LocalError::NoBalancer,
            }
            .to_string(),
            format!("origin 0 did not come back: {}", LocalError::NoBalancer)
        );
    }
}

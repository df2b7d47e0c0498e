//! What a fault asks of one process of the local topology, and why it may not happen: the
//! vocabulary the kubelet ([`super::kubelet`]) takes and each edge's supervisor carries out.

use super::xiu::LocalError;
use tokio::sync::oneshot;

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

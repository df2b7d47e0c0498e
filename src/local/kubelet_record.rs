//! The local kubelet's record: what it did, when and why ([`KubeletEvent`]), shared live with
//! the run's collecting loop ([`KubeletLog`]) and written into the report.

use super::probes::Container;
use super::xiu::LocalError;
use crate::clock::RunClock;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeletAction {
    /// The pod stopped being Ready: new viewers go to the other edges.
    OutOfRotation,
    /// Ready again: new viewers come to it again.
    BackInRotation,
    /// A container was started again.
    Restart,
}

/// One thing the local kubelet did, in `report.json` (`kubelet`) and marked on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubeletEvent {
    /// Seconds on the run clock.
    pub at_s: f64,
    pub edge: u32,
    pub action: KubeletAction,
    /// `restart`: `xiu` or `sidecar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `restart`: this container's restart count, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    /// Why: the probe that failed and its last answer, how the container exited.
    pub reason: String,
    /// `restart`: when the new container answered on its ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_s: Option<f64>,
    /// `restart`: why the new container did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl KubeletEvent {
    /// "edge 1 out of rotation", "restart edge 1 xiu": the label of its timeline and chart marks.
    pub fn label(&self) -> String {
        match self.action {
            KubeletAction::OutOfRotation => format!("edge {} out of rotation", self.edge),
            KubeletAction::BackInRotation => format!("edge {} back in rotation", self.edge),
            KubeletAction::Restart => format!(
                "restart edge {} {}",
                self.edge,
                self.container.as_deref().unwrap_or("?")
            ),
        }
    }
}

impl std::fmt::Display for KubeletEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t={:.1}s {}", self.at_s, self.label())?;
        if let Some(n) = self.restarts {
            write!(f, " (restart #{n})")?;
        }
        write!(f, ": {}", self.reason)?;
        match (&self.error, self.done_s) {
            (Some(e), _) => write!(
                f,
                "; FAILED to start ({})",
                e.lines().next().unwrap_or_default()
            ),
            (None, Some(done)) => write!(f, "; up at t={done:.1}s"),
            (None, None) if self.action == KubeletAction::Restart => {
                write!(f, "; not up when the run stopped")
            }
            (None, None) => Ok(()),
        }
    }
}

/// The record of what the kubelet did, shared with the collecting loop (timeline marks).
#[derive(Clone, Default)]
pub struct KubeletLog(Arc<Mutex<Vec<KubeletEvent>>>);

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

impl KubeletLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<KubeletEvent>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event that happens now; returns its place. The time is read under the lock,
    /// for the reason the fault log does (no mark falls between two timeline points).
    pub(super) fn push(
        &self,
        clock: &RunClock,
        edge: usize,
        action: KubeletAction,
        container: Option<Container>,
        restarts: Option<u32>,
        reason: String,
    ) -> usize {
        let mut log = self.lock();
        log.push(KubeletEvent {
            at_s: secs(clock.elapsed()),
            edge: edge as u32,
            action,
            container: container.map(|c| c.as_str().to_string()),
            restarts,
            reason,
            done_s: None,
            error: None,
        });
        log.len() - 1
    }

    /// Records how the restart of `event` ended: when the container was up, or why it did not
    /// start.
    pub(super) fn finish(&self, event: usize, clock: &RunClock, result: Result<(), LocalError>) {
        let done = secs(clock.elapsed());
        if let Some(e) = self.lock().get_mut(event) {
            match result {
                Ok(()) => e.done_s = Some(done),
                Err(why) => e.error = Some(why.to_string()),
            }
        }
    }

    pub fn events(&self) -> Vec<KubeletEvent> {
        self.lock().clone()
    }

    /// Labels of the events in the window `(since, until]` (seconds on the run clock).
    pub fn labels(&self, since: f64, until: f64) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|e| e.at_s > since && e.at_s <= until)
            .map(KubeletEvent::label)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_what_the_kubelet_did_and_mark_their_second() {
        let log = KubeletLog::default();
        let clock = RunClock::start_now();
        let out = log.push(
            &clock,
            1,
            KubeletAction::OutOfRotation,
            None,
            None,
            "sidecar readiness probe failed 3 times".into(),
        );
        let restart = log.push(
            &clock,
            1,
            KubeletAction::Restart,
            Some(Container::Xiu),
            Some(2),
            "exited: signal: 9 (SIGKILL)".into(),
        );
        assert_eq!(out, 0);
        let not_ready = LocalError::NotReady(Duration::from_secs(5), "its log".into());
        log.finish(restart, &clock, Err(not_ready));
        let events = log.events();
        assert_eq!(events[0].label(), "edge 1 out of rotation");
        assert_eq!(events[1].label(), "restart edge 1 xiu");
        let text = events[1].to_string();
        assert!(
            text.ends_with(
                "restart edge 1 xiu (restart #2): exited: signal: 9 (SIGKILL); FAILED to start \
                 (xiu did not answer on its ports within 5s; its log:)"
            ),
            "{text}"
        );
        let at = events[0].at_s;
        assert_eq!(log.labels(at - 1.0, at).len(), 2);
        assert!(log.labels(at, at + 1.0).is_empty(), "(since, until]");
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["action"], "out_of_rotation");
        assert!(json.get("container").is_none());
        let back: KubeletEvent =
            serde_json::from_value(serde_json::to_value(&events[1]).unwrap()).unwrap();
        assert_eq!(back, events[1]);
    }
}

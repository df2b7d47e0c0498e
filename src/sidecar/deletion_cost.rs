//! Keeps the Pod's `controller.kubernetes.io/pod-deletion-cost` equal to the edge's viewer count,
//! so a scale-down removes the edges with the fewest viewers first.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::watch;

pub const ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
/// At most one patch per this long: every patch is a write to etcd, and the ReplicaSet controller
/// only reads the annotation when it scales down.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// The Pod to annotate (env `POD_NAME`, `POD_NAMESPACE`).
#[derive(Debug, Clone)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
    /// How to reach the API server; `None`: in-cluster (the Pod's service account), falling
    /// back to a kubeconfig.
    pub kube: Option<kube::Config>,
}

/// "What to patch when": the last value the API server accepted and the last attempt.
#[derive(Debug, Clone, Default)]
pub struct DeletionCost {
    accepted: Option<i32>,
    attempted_at: Option<Instant>,
}

impl DeletionCost {
    /// The value to patch now, if any: the viewer count changed since the last accepted patch and
    /// the last attempt is at least [`MIN_INTERVAL`] old.
    pub fn due(&self, viewers: u64, now: Instant) -> Option<i32> {
        // The field is an int32.
        let value = i32::try_from(viewers).unwrap_or(i32::MAX);
        if self.accepted == Some(value) {
            return None;
        }
        match self.attempted_at {
            Some(t) if now.saturating_duration_since(t) < MIN_INTERVAL => None,
            _ => Some(value),
        }
    }

    pub fn attempted(&mut self, now: Instant) {
        self.attempted_at = Some(now);
    }

    pub fn accepted(&mut self, value: i32) {
        self.accepted = Some(value);
    }
}

/// A JSON merge patch that sets only the annotation (the value is a string, as annotations are).
pub fn patch_body(value: i32) -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {ANNOTATION: value.to_string()}}})
}

/// Patches whenever [`DeletionCost::due`] says so, reading the viewer count the relay loop
/// publishes, until `stop` changes. A 403 (no RBAC for it) is logged once and retried quietly;
/// nothing here stops the relay.
pub async fn run(
    pod: PodRef,
    mut viewers: watch::Receiver<Option<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let config = match pod.kube.clone() {
        Some(c) => Ok(c),
        None => match kube::Config::incluster() {
            Ok(c) => Ok(c),
            Err(_) => kube::Config::infer().await.map_err(|e| e.to_string()),
        },
    };
    let client = match config.and_then(|c| kube::Client::try_from(c).map_err(|e| e.to_string())) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no Kubernetes API access: the pod deletion cost stays unset");
            return;
        }
    };
    let pods: Api<Pod> = Api::namespaced(client, &pod.namespace);
    let mut state = DeletionCost::default();
    let mut forbidden_logged = false;
    let mut ticker = tokio::time::interval(MIN_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = viewers.changed() => if r.is_err() { return },
            _ = ticker.tick() => {}
        }
        let Some(count) = *viewers.borrow() else {
            continue;
        };
        let now = Instant::now();
        let Some(value) = state.due(count, now) else {
            continue;
        };
        state.attempted(now);
        let patch = Patch::Merge(patch_body(value));
        match pods.patch(&pod.name, &PatchParams::default(), &patch).await {
            Ok(_) => {
                tracing::debug!(value, "pod deletion cost set");
                state.accepted(value);
            }
            Err(kube::Error::Api(e)) if e.code == 403 => {
                if !forbidden_logged {
                    forbidden_logged = true;
                    tracing::warn!(pod = %pod.name, error = %e.message,
                        "may not patch this pod (RBAC: pods patch): the deletion cost stays unset");
                }
            }
            Err(e) => {
                tracing::warn!(pod = %pod.name, error = %e, "cannot patch the pod deletion cost")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_changes_at_most_every_interval() {
        let t0 = Instant::now();
        let mut s = DeletionCost::default();
        assert_eq!(s.due(3, t0), Some(3), "first value goes out at once");
        s.attempted(t0);
        s.accepted(3);
        assert_eq!(
            s.due(3, t0 + MIN_INTERVAL * 10),
            None,
            "unchanged: no patch"
        );
        assert_eq!(s.due(4, t0 + MIN_INTERVAL / 2), None, "too soon");
        assert_eq!(s.due(4, t0 + MIN_INTERVAL), Some(4));
        // A failed attempt is retried, not before the interval.
        s.attempted(t0 + MIN_INTERVAL);
        assert_eq!(s.due(4, t0 + MIN_INTERVAL * 3 / 2), None);
        assert_eq!(s.due(4, t0 + MIN_INTERVAL * 2), Some(4));
        assert_eq!(s.due(u64::MAX, t0 + MIN_INTERVAL * 2), Some(i32::MAX));
    }

    #[test]
    fn body_sets_only_the_annotation() {
        assert_eq!(
            patch_body(7).to_string(),
            r#"{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"7"}}}"#
        );
    }
}

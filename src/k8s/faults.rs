//! Cluster faults (`delete_pod`, `rollout_restart`, `scale`): which API requests carry out a
//! `[[fault]]` on the `[kube]` section's workloads (pure), and the thin step that sends them.
//!
//! The requests are the ones `kubectl` sends for the same commands, so RBAC written for kubectl
//! (deploy/components/xiuload-faults) covers them:
//! - `delete_pod`: GET the workload (its `spec.selector.matchLabels`) unless the fault names a
//!   `selector`, LIST the pods it selects, DELETE the first by name (`pods = "one"`) or all;
//! - `rollout_restart`: strategic-merge PATCH of the workload setting the pod template's
//!   `kubectl.kubernetes.io/restartedAt` annotation (what `kubectl rollout restart` does);
//! - `scale`: merge PATCH of the workload's `/scale` subresource with `spec.replicas`.

use super::config::{KubeSection, WorkloadKind};
use crate::scenario::fault::{Fault, FaultAction, FaultTarget, PodChoice};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::Request;
use serde_json::{Value, json};
use std::time::SystemTime;

/// The annotation `kubectl rollout restart` sets; its change makes the controller roll the pods.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultPlanError {
    #[error("{0} is not a cluster fault")]
    NotCluster(&'static str),
    #[error("[kube] names no {0} workload for this fault to act on")]
    NoWorkload(&'static str),
    #[error("scale needs `replicas`")]
    NoReplicas,
    #[error("{kind} {name} has no spec.selector.matchLabels to find its pods by")]
    NoSelector { kind: &'static str, name: String },
    #[error("no pod matches the selector {0:?}: nothing to delete")]
    NoPods(String),
    #[error("cannot build the request: {0}")]
    Request(String),
}

/// What one cluster fault does, resolved against `[kube]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterFault {
    pub namespace: String,
    pub kind: WorkloadKind,
    /// The workload's name.
    pub name: String,
    pub action: ClusterAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClusterAction {
    DeletePods {
        /// The fault's own selector; `None` means the workload's.
        selector: Option<String>,
        pods: PodChoice,
    },
    RolloutRestart,
    Scale(u32),
}

/// Resolves `fault` against the `[kube]` section: which workload, which action.
pub fn plan(fault: &Fault, section: &KubeSection) -> Result<ClusterFault, FaultPlanError> {
    let workload = match fault.target {
        FaultTarget::Edge => section.edge.as_ref(),
        FaultTarget::Origin => section.origin.as_ref(),
    }
    .ok_or(FaultPlanError::NoWorkload(fault.target.as_str()))?;
    let action = match fault.action {
        FaultAction::DeletePod => ClusterAction::DeletePods {
            selector: fault.selector.clone(),
            pods: fault.pods.unwrap_or(PodChoice::One),
        },
        FaultAction::RolloutRestart => ClusterAction::RolloutRestart,
        FaultAction::Scale => {
            ClusterAction::Scale(fault.replicas.ok_or(FaultPlanError::NoReplicas)?)
        }
        local => return Err(FaultPlanError::NotCluster(local.as_str())),
    };
    Ok(ClusterFault {
        namespace: section.namespace.clone(),
        kind: workload.kind,
        name: workload.name.clone(),
        action,
    })
}

fn workloads(namespace: &str, kind: WorkloadKind) -> Request {
    let plural = match kind {
        WorkloadKind::Deployment => "deployments",
        WorkloadKind::StatefulSet => "statefulsets",
    };
    Request::new(format!("/apis/apps/v1/namespaces/{namespace}/{plural}"))
}

fn pods(namespace: &str) -> Request {
    Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
}

fn built<E: std::fmt::Display>(
    r: Result<http::Request<Vec<u8>>, E>,
) -> Result<http::Request<Vec<u8>>, FaultPlanError> {
    r.map_err(|e| FaultPlanError::Request(e.to_string()))
}

impl ClusterFault {
    /// GET of the workload, whose pod selector `delete_pod` lists by.
    pub fn get_workload(&self) -> Result<http::Request<Vec<u8>>, FaultPlanError> {
        built(workloads(&self.namespace, self.kind).get(&self.name, &Default::default()))
    }

    /// LIST of the pods `selector` picks.
    pub fn list_pods(&self, selector: &str) -> Result<http::Request<Vec<u8>>, FaultPlanError> {
        built(pods(&self.namespace).list(&ListParams::default().labels(selector)))
    }

    pub fn delete_pod(&self, pod: &str) -> Result<http::Request<Vec<u8>>, FaultPlanError> {
        built(pods(&self.namespace).delete(pod, &DeleteParams::default()))
    }

    /// The strategic-merge PATCH `kubectl rollout restart` sends, stamped `now`.
    pub fn restart(&self, now: SystemTime) -> Result<http::Request<Vec<u8>>, FaultPlanError> {
        let at = humantime::format_rfc3339_seconds(now).to_string();
        let body = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}});
        built(workloads(&self.namespace, self.kind).patch(
            &self.name,
            &PatchParams::default(),
            &Patch::Strategic(body),
        ))
    }

    /// The merge PATCH of the `/scale` subresource `kubectl scale` sends.
    pub fn scale(&self, replicas: u32) -> Result<http::Request<Vec<u8>>, FaultPlanError> {
        let body = json!({"spec": {"replicas": replicas}});
        built(workloads(&self.namespace, self.kind).patch_subresource(
            "scale",
            &self.name,
            &PatchParams::default(),
            &Patch::Merge(body),
        ))
    }
}

/// The equality selector (`a=b,c=d`) of a workload's `spec.selector.matchLabels`.
pub fn selector_of(fault: &ClusterFault, workload: &Value) -> Result<String, FaultPlanError> {
    let labels = workload["spec"]["selector"]["matchLabels"]
        .as_object()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| FaultPlanError::NoSelector {
            kind: fault.kind.object_kind(),
            name: fault.name.clone(),
        })?;
    Ok(labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(","))
}

/// The pods to delete from a pod list: the first by name, or all (by name), so a run is
/// repeatable. An empty list is an error: a fault that deletes nothing did not happen.
pub fn pods_to_delete(
    list: &Value,
    choice: PodChoice,
    selector: &str,
) -> Result<Vec<String>, FaultPlanError> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(FaultPlanError::NoPods(selector.to_string()));
    }
    if choice == PodChoice::One {
        names.truncate(1);
    }
    Ok(names)
}

/// Why a planned cluster fault did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FaultExecError {
    /// The request could not be built, or the API's answer left nothing to act on (no selector,
    /// no pod).
    #[error(transparent)]
    Plan(#[from] FaultPlanError),
    /// The API server refused or did not answer `request` (`METHOD /path`); the text carries the
    /// kube error's whole chain, as a fault record has no other place for it.
    #[error("{request}: {}", super::watch::describe(.source))]
    Api {
        request: String,
        #[source]
        source: kube::Error,
    },
}

/// Carries out `fault` with `client`: Ok, or which step failed and why.
pub async fn execute(client: &kube::Client, fault: &ClusterFault) -> Result<(), FaultExecError> {
    let send = |req: Result<http::Request<Vec<u8>>, FaultPlanError>| async {
        let req = req?;
        let request = format!("{} {}", req.method(), req.uri().path());
        client
            .request::<Value>(req)
            .await
            .map_err(|source| FaultExecError::Api { request, source })
    };
    match &fault.action {
        ClusterAction::RolloutRestart => send(fault.restart(SystemTime::now())).await.map(drop),
        ClusterAction::Scale(n) => send(fault.scale(*n)).await.map(drop),
        ClusterAction::DeletePods { selector, pods } => {
            let selector = match selector {
                Some(s) => s.clone(),
                None => {
                    let workload = send(fault.get_workload()).await?;
                    selector_of(fault, &workload)?
                }
            };
            let list = send(fault.list_pods(&selector)).await?;
            let names = pods_to_delete(&list, *pods, &selector)?;
            for name in names {
                send(fault.delete_pod(&name)).await?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::cluster::Workload;
    use std::time::Duration;

    fn section() -> KubeSection {
        let mut s = KubeSection::new("live");
        s.edge = Some(Workload {
            kind: WorkloadKind::Deployment,
            name: "xiu-edge".into(),
        });
        s.origin = Some(Workload {
            kind: WorkloadKind::StatefulSet,
            name: "xiu-origin".into(),
        });
        s
    }

    fn fault(text: &str) -> Fault {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn planned(text: &str) -> ClusterFault {
        plan(&fault(text), &section()).unwrap()
    }

    fn line(r: &http::Request<Vec<u8>>) -> String {
        format!("{} {}", r.method(), r.uri())
    }

    fn body(r: &http::Request<Vec<u8>>) -> Value {
        serde_json::from_slice(r.body()).unwrap()
    }

    fn content_type(r: &http::Request<Vec<u8>>) -> &str {
        r.headers()[http::header::CONTENT_TYPE].to_str().unwrap()
    }

    #[test]
    fn rollout_restart_patches_the_pod_template_annotation() {
        let f = planned("at = \"5s\"\naction = \"rollout_restart\"\ntarget = \"edge\"");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_547_600);
        let r = f.restart(now).unwrap();
        assert_eq!(
            line(&r),
            "PATCH /apis/apps/v1/namespaces/live/deployments/xiu-edge?"
        );
        assert_eq!(content_type(&r), "application/strategic-merge-patch+json");
        assert_eq!(
            body(&r),
            json!({"spec": {"template": {"metadata": {"annotations":
                {"kubectl.kubernetes.io/restartedAt": "2026-12-06T09:00:00Z"}}}}})
        );
    }

    #[test]
    fn scale_patches_the_scale_subresource_of_the_right_kind() {
        let f = planned("at = \"5s\"\naction = \"scale\"\ntarget = \"origin\"\nreplicas = 3");
        assert_eq!(f.action, ClusterAction::Scale(3));
        let r = f.scale(3).unwrap();
        assert_eq!(
            line(&r),
            "PATCH /apis/apps/v1/namespaces/live/statefulsets/xiu-origin/scale?"
        );
        assert_eq!(content_type(&r), "application/merge-patch+json");
        assert_eq!(body(&r), json!({"spec": {"replicas": 3}}));
    }

    #[test]
    fn delete_pod_lists_by_the_workload_selector_and_deletes_the_first_by_name() {
        let f = planned("at = \"5s\"\naction = \"delete_pod\"\ntarget = \"edge\"");
        assert_eq!(
            f.action,
            ClusterAction::DeletePods {
                selector: None,
                pods: PodChoice::One
            }
        );
        assert_eq!(
            line(&f.get_workload().unwrap()),
            "GET /apis/apps/v1/namespaces/live/deployments/xiu-edge"
        );
        let deployment =
            json!({"spec": {"selector": {"matchLabels": {"app": "xiu", "tier": "edge"}}}});
        let selector = selector_of(&f, &deployment).unwrap();
        assert_eq!(selector, "app=xiu,tier=edge");
        assert_eq!(
            line(&f.list_pods(&selector).unwrap()),
            "GET /api/v1/namespaces/live/pods?&labelSelector=app%3Dxiu%2Ctier%3Dedge"
        );
        let list = json!({"items": [
            {"metadata": {"name": "xiu-edge-b"}},
            {"metadata": {"name": "xiu-edge-a"}},
        ]});
        assert_eq!(
            pods_to_delete(&list, PodChoice::One, &selector).unwrap(),
            ["xiu-edge-a"]
        );
        assert_eq!(
            pods_to_delete(&list, PodChoice::All, &selector).unwrap(),
            ["xiu-edge-a", "xiu-edge-b"]
        );
        let d = f.delete_pod("xiu-edge-a").unwrap();
        assert_eq!(line(&d), "DELETE /api/v1/namespaces/live/pods/xiu-edge-a?");
    }

    #[test]
    fn nothing_to_act_on_is_an_error_not_a_quiet_success() {
        let f = planned(
            "at = \"5s\"\naction = \"delete_pod\"\ntarget = \"edge\"\nselector = \"app=gone\"",
        );
        assert_eq!(
            pods_to_delete(&json!({"items": []}), PodChoice::All, "app=gone"),
            Err(FaultPlanError::NoPods("app=gone".into()))
        );
        assert_eq!(
            selector_of(&f, &json!({"spec": {}}))
                .unwrap_err()
                .to_string(),
            "Deployment xiu-edge has no spec.selector.matchLabels to find its pods by"
        );
        let mut no_origin = section();
        no_origin.origin = None;
        assert_eq!(
            plan(
                &fault("at = \"5s\"\naction = \"rollout_restart\"\ntarget = \"origin\""),
                &no_origin
            ),
            Err(FaultPlanError::NoWorkload("origin"))
        );
        assert_eq!(
            plan(
                &fault("at = \"5s\"\naction = \"kill\"\ntarget = \"origin\""),
                &section()
            ),
            Err(FaultPlanError::NotCluster("kill"))
        );
    }
}

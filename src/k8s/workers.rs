//! A distributed run's workers in a cluster: creates the ConfigMap and the Indexed Job
//! ([`super::job`] builds them), follows the Job's pods with a watch, waits until every worker is
//! Running and Ready, reaches each worker through the API server's pod proxy (as
//! [`super::metrics`] reaches xiu: `pods/{pod}:{port}/proxy/...`, no Service, Ingress or
//! port-forward), and deletes what it created.
//!
//! What the pods say is read by pure functions ([`WorkerPod::from_pod`], [`readiness`]), tested
//! without a cluster; the I/O around them is thin.

use super::client::ClientError;
use super::config::KubeSection;
use super::job::{INDEX_ANNOTATION, run_selector};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One proxied request to a worker may take this long (the API server, then the pod).
const PROXY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot create {what} {name} in namespace {namespace}: {message}")]
    Create {
        what: &'static str,
        name: String,
        namespace: String,
        message: String,
    },
    #[error("{0}")]
    NotReady(String),
}

/// Where a worker's pod is in its life, as far as the run cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Not running yet; `unschedulable` holds the scheduler's message once it gave up for now,
    /// `waiting` a container's waiting reason (ImagePullBackOff, CreateContainerConfigError).
    Pending {
        unschedulable: Option<String>,
        waiting: Option<String>,
    },
    Running {
        ready: bool,
    },
    Succeeded,
    /// With what the pod or its container said.
    Failed(String),
}

/// A worker's pod: its name, its completion index and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPod {
    pub name: String,
    pub index: Option<u32>,
    pub state: PodState,
    /// Being deleted (evicted, drained, deleted by hand): as good as gone.
    pub terminating: bool,
}

impl WorkerPod {
    pub fn from_pod(pod: &Pod) -> WorkerPod {
        let index = pod
            .annotations()
            .get(INDEX_ANNOTATION)
            .or_else(|| pod.labels().get(INDEX_ANNOTATION))
            .and_then(|i| i.parse().ok());
        let status = pod.status.clone().unwrap_or_default();
        let conditions = status.conditions.clone().unwrap_or_default();
        let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
        let containers = status.container_statuses.clone().unwrap_or_default();
        let state = match status.phase.as_deref() {
            Some("Running") => PodState::Running {
                ready: condition("Ready").is_some_and(|c| c.status == "True"),
            },
            Some("Succeeded") => PodState::Succeeded,
            Some("Failed") => {
                let terminated = containers
                    .iter()
                    .find_map(|c| c.state.as_ref()?.terminated.clone());
                let why = match terminated {
                    Some(t) => format!(
                        "{} (exit {}){}",
                        t.reason.unwrap_or_else(|| "terminated".into()),
                        t.exit_code,
                        t.message.map(|m| format!(": {m}")).unwrap_or_default()
                    ),
                    None => status
                        .reason
                        .clone()
                        .into_iter()
                        .chain(status.message.clone())
                        .collect::<Vec<_>>()
                        .join(": "),
                };
                PodState::Failed(if why.is_empty() { "failed".into() } else { why })
            }
            _ => PodState::Pending {
                unschedulable: condition("PodScheduled")
                    .filter(|c| c.status == "False")
                    .map(|c| {
                        let reason = c.reason.clone().unwrap_or_else(|| "Unschedulable".into());
                        match &c.message {
                            Some(m) => format!("{reason}: {m}"),
                            None => reason,
                        }
                    }),
                waiting: containers.iter().find_map(|c| {
                    let w = c.state.as_ref()?.waiting.clone()?;
                    let reason = w.reason?;
                    Some(match w.message {
                        Some(m) => format!("{reason}: {m}"),
                        None => reason,
                    })
                }),
            },
        };
        WorkerPod {
            name: pod.name_any(),
            index,
            state,
            terminating: pod.metadata.deletion_timestamp.is_some(),
        }
    }

    /// Why this pod will not serve its worker any more, if it will not.
    pub fn gone(&self) -> Option<String> {
        match &self.state {
            PodState::Failed(why) => Some(format!("pod {} failed: {why}", self.name)),
            _ if self.terminating => Some(format!("pod {} is being deleted", self.name)),
            _ => None,
        }
    }
}

/// Whether every worker `0..workers` has a Running, Ready pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The pod of each worker, by index.
    Ready(Vec<String>),
    Waiting,
    /// A worker's pod ended before the run started: it will not come.
    Failed(String),
}

pub fn readiness(pods: &[WorkerPod], workers: u32) -> Readiness {
    let mut names = Vec::new();
    for index in 0..workers {
        let mine = pods.iter().filter(|p| p.index == Some(index));
        if let Some(why) = mine.clone().find_map(|p| match &p.state {
            PodState::Failed(_) | PodState::Succeeded => {
                Some(p.gone().unwrap_or(format!("pod {} ended", p.name)))
            }
            _ => None,
        }) {
            return Readiness::Failed(format!("worker {index}: {why} before the run started"));
        }
        match mine
            .into_iter()
            .find(|p| p.state == PodState::Running { ready: true } && !p.terminating)
        {
            Some(p) => names.push(p.name.clone()),
            None => return Readiness::Waiting,
        }
    }
    Readiness::Ready(names)
}

/// What keeps workers from being ready, one line a worker, for the error at the scheduling
/// timeout: the scheduler's message for a pod it could not place, a container's waiting reason.
pub fn not_ready_report(pods: &[WorkerPod], workers: u32) -> String {
    (0..workers)
        .filter_map(|index| {
            let pod = pods.iter().find(|p| p.index == Some(index));
            let line = match pod {
                None => format!(
                    "worker {index}: no pod was created (the Job's events say why: quota, admission)"
                ),
                Some(p) => match &p.state {
                    PodState::Running { ready: true } => return None,
                    PodState::Running { ready: false } => {
                        format!("worker {index}: pod {} is running but not ready", p.name)
                    }
                    PodState::Pending {
                        unschedulable: Some(why),
                        ..
                    } => format!(
                        "worker {index}: pod {} cannot be scheduled: {why}",
                        p.name
                    ),
                    PodState::Pending {
                        waiting: Some(why), ..
                    } => format!("worker {index}: pod {} is waiting: {why}", p.name),
                    PodState::Pending { .. } => {
                        format!("worker {index}: pod {} is still Pending", p.name)
                    }
                    _ => format!(
                        "worker {index}: {}",
                        p.gone().unwrap_or_else(|| format!("pod {} ended", p.name))
                    ),
                },
            };
            Some(line)
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// The cluster client a distributed run uses: `[kube]`'s kubeconfig and context when the
/// scenario has one, else the standard resolution; and the namespace (`[distributed]`'s, else
/// the context's).
pub async fn connect(
    kube: Option<&KubeSection>,
    namespace: Option<&str>,
) -> Result<(Client, String), ClientError> {
    let mut section = KubeSection::new(namespace.unwrap_or("default"));
    if let Some(k) = kube {
        section.kubeconfig = k.kubeconfig.clone();
        section.context = k.context.clone();
    }
    let client = super::client::client(&section).await?;
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| client.default_namespace().to_string());
    Ok((client, namespace))
}

/// The run's objects in the cluster, and the watch on its pods.
pub struct WorkerJob {
    client: Client,
    pub namespace: String,
    pub name: String,
    port: u16,
    pods: watch::Receiver<Vec<WorkerPod>>,
    watcher: JoinHandle<()>,
}

impl WorkerJob {
    /// Creates the ConfigMap, then the Job (deleting the ConfigMap again when the Job is
    /// refused), and starts watching the run's pods.
    pub async fn create(
        client: Client,
        namespace: &str,
        run_id: &str,
        config_map: ConfigMap,
        job: Job,
        port: u16,
    ) -> Result<WorkerJob, WorkersError> {
        let name = job.name_any();
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        let refused = |what: &'static str, e: kube::Error| WorkersError::Create {
            what,
            name: name.clone(),
            namespace: namespace.to_string(),
            message: describe(&e),
        };
        maps.create(&PostParams::default(), &config_map)
            .await
            .map_err(|e| refused("ConfigMap", e))?;
        if let Err(e) = jobs.create(&PostParams::default(), &job).await {
            let _ = maps.delete(&name, &DeleteParams::default()).await;
            return Err(refused("Job", e));
        }
        let (tx, pods) = watch::channel(Vec::new());
        let watcher = tokio::spawn(follow_pods(
            Api::namespaced(client.clone(), namespace),
            run_selector(run_id),
            tx,
        ));
        Ok(WorkerJob {
            client,
            namespace: namespace.to_string(),
            name,
            port,
            pods,
            watcher,
        })
    }

    /// The run's pods as last seen.
    pub fn pods(&self) -> Vec<WorkerPod> {
        self.pods.borrow().clone()
    }

    /// Waits until every worker's pod is Running and Ready; returns their names by index. At
    /// `timeout`, says why each one that is not ready is not.
    pub async fn wait_ready(
        &self,
        workers: u32,
        timeout: Duration,
    ) -> Result<Vec<String>, WorkersError> {
        let mut pods = self.pods.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = pods.borrow_and_update().clone();
            match readiness(&seen, workers) {
                Readiness::Ready(names) => return Ok(names),
                Readiness::Failed(why) => return Err(WorkersError::NotReady(why)),
                Readiness::Waiting => {}
            }
            match tokio::time::timeout_at(deadline, pods.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    return Err(WorkersError::NotReady(format!(
                        "the workers were not all ready within {}s:\n  {}",
                        timeout.as_secs(),
                        not_ready_report(&self.pods(), workers)
                    )));
                }
            }
        }
    }

    /// `GET` a worker's path (`/windows?after=3`) through the pod proxy.
    pub async fn get(&self, pod: &str, path: &str) -> Result<String, ProxyError> {
        self.proxy(http::Method::GET, pod, path).await
    }

    /// `POST` to a worker's path (`/start?at_unix_ms=...`, `/stop`) through the pod proxy.
    pub async fn post(&self, pod: &str, path: &str) -> Result<String, ProxyError> {
        self.proxy(http::Method::POST, pod, path).await
    }

    async fn proxy(
        &self,
        method: http::Method,
        pod: &str,
        path: &str,
    ) -> Result<String, ProxyError> {
        let uri = format!(
            "/api/v1/namespaces/{}/pods/{pod}:{}/proxy{path}",
            self.namespace, self.port
        );
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Vec::new())
            .map_err(ProxyError::Request)?;
        match tokio::time::timeout(PROXY_TIMEOUT, self.client.request_text(request)).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => Err(ProxyError::Answered(describe(&e))),
            Err(_) => Err(ProxyError::Timeout(PROXY_TIMEOUT)),
        }
    }

    /// Deletes the Job (its pods with it) and the ConfigMap; says what could not be deleted.
    pub async fn delete(&self) -> Result<(), DeleteError> {
        self.watcher.abort();
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let job = not_deleted(jobs.delete(&self.name, &DeleteParams::background()).await);
        let map = not_deleted(maps.delete(&self.name, &DeleteParams::default()).await);
        if job.is_none() && map.is_none() {
            return Ok(());
        }
        Err(DeleteError {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            job: job.unwrap_or_else(|| "Job deleted".into()),
            map: map.unwrap_or_else(|| "ConfigMap deleted".into()),
        })
    }
}

/// The run's Job or ConfigMap is still there: what each delete said, and how to finish by hand.
#[derive(Debug, thiserror::Error)]
#[error(
    "could not delete Job/ConfigMap {name} in namespace {namespace} ({job}; {map}): delete them with `kubectl -n {namespace} delete job,configmap {name}`"
)]
pub struct DeleteError {
    pub name: String,
    pub namespace: String,
    /// What the Job's delete said ("Job deleted" when it went).
    pub job: String,
    /// What the ConfigMap's delete said ("ConfigMap deleted" when it went).
    pub map: String,
}

impl Drop for WorkerJob {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Keeps `tx` holding the run's pods as the API server lists and watches them; a watch that
/// breaks (the API server away) is resumed with kube-rs's backoff, the last list kept meanwhile.
async fn follow_pods(api: Api<Pod>, selector: String, tx: watch::Sender<Vec<WorkerPod>>) {
    let (store, writer) = reflector::store();
    let config = watcher::Config::default().labels(&selector);
    let stream = reflector(writer, watcher(api, config).default_backoff());
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if event.is_err() {
            continue;
        }
        let mut pods: Vec<WorkerPod> = store
            .state()
            .iter()
            .map(|p| WorkerPod::from_pod(p))
            .collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        if tx.send(pods).is_err() {
            return;
        }
    }
}

/// Why a delete failed, or `None` when the object went: one already gone counts as deleted.
fn not_deleted<T>(r: Result<T, kube::Error>) -> Option<String> {
    match r {
        Ok(_) => None,
        Err(kube::Error::Api(s)) if s.code == 404 => None,
        Err(e) => Some(describe(&e)),
    }
}

/// Why a call to a worker through the API server's pod proxy got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The API server (or the worker behind it) answered with an error, in its own words.
    #[error("{0}")]
    Answered(String),
    #[error("no answer within {}s through the API server", .0.as_secs())]
    Timeout(Duration),
    #[error("cannot build the request: {0}")]
    Request(http::Error),
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "forbidden: {} (the coordinator's Role: deploy/components/xiuload-coordinator)",
            s.message
        ),
        // A worker's own answer through the proxy is plain text, which kube-rs wraps in a Status
        // whose reason is its own words, not the API server's.
        kube::Error::Api(s) if s.reason.contains(' ') || s.reason.is_empty() => {
            format!("{} {}", s.code, s.message)
        }
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_delete_says_what_each_delete_said_and_how_to_finish() {
        let e = DeleteError {
            name: "xiuload-run-1".into(),
            namespace: "load".into(),
            job: "forbidden: jobs".into(),
            map: "ConfigMap deleted".into(),
        };
        assert_eq!(
            e.to_string(),
            "could not delete Job/ConfigMap xiuload-run-1 in namespace load (forbidden: jobs; \
             ConfigMap deleted): delete them with `kubectl -n load delete job,configmap xiuload-run-1`"
        );
    }

    #[test]
    fn an_object_already_gone_counts_as_deleted() {
        let gone = kube::Error::Api(Box::new(
            kube::core::Status::failure("jobs \"x\" not found", "NotFound").with_code(404),
        ));
        assert_eq!(not_deleted::<()>(Err(gone)), None);
        assert_eq!(not_deleted(Ok(())), None);
        let forbidden = kube::Error::Api(Box::new(
            kube::core::Status::failure("jobs is forbidden", "Forbidden").with_code(403),
        ));
        let why = not_deleted::<()>(Err(forbidden)).unwrap();
        assert!(why.starts_with("forbidden: jobs is forbidden"), "{why}");
    }
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
        PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::BTreeMap;

    fn pod(name: &str, index: u32, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some(BTreeMap::from([(
                    INDEX_ANNOTATION.to_string(),
                    index.to_string(),
                )])),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn condition(
        kind: &str,
        status: &str,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> PodCondition {
        PodCondition {
            type_: kind.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            message: message.map(str::to_string),
            ..Default::default()
        }
    }

    fn with_conditions(mut p: Pod, conditions: Vec<PodCondition>) -> Pod {
        p.status.as_mut().unwrap().conditions = Some(conditions);
        p
    }

    fn ready(name: &str, index: u32) -> Pod {
        with_conditions(
            pod(name, index, "Running"),
            vec![condition("Ready", "True", None, None)],
        )
    }

    fn unschedulable(name: &str, index: u32) -> Pod {
        with_conditions(
            pod(name, index, "Pending"),
            vec![condition(
                "PodScheduled",
                "False",
                Some("Unschedulable"),
                Some("0/3 nodes are available: 3 Insufficient cpu."),
            )],
        )
    }

    fn read(pods: &[Pod]) -> Vec<WorkerPod> {
        pods.iter().map(WorkerPod::from_pod).collect()
    }

    #[test]
    fn pod_states_are_read_from_phase_conditions_and_containers() {
        let w = WorkerPod::from_pod(&ready("w-0-abc", 0));
        assert_eq!(w.index, Some(0));
        assert_eq!(w.state, PodState::Running { ready: true });
        assert_eq!(w.gone(), None);
        let not_ready = WorkerPod::from_pod(&pod("w-1", 1, "Running"));
        assert_eq!(not_ready.state, PodState::Running { ready: false });
        let u = WorkerPod::from_pod(&unschedulable("w-2", 2));
        assert_eq!(
            u.state,
            PodState::Pending {
                unschedulable: Some(
                    "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.".into()
                ),
                waiting: None
            }
        );
        let mut pulling = pod("w-3", 3, "Pending");
        pulling.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "worker".into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ImagePullBackOff".into()),
                    message: Some("Back-off pulling image \"x\"".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        assert_eq!(
            WorkerPod::from_pod(&pulling).state,
            PodState::Pending {
                unschedulable: None,
                waiting: Some("ImagePullBackOff: Back-off pulling image \"x\"".into())
            }
        );
        let mut killed = pod("w-4", 4, "Failed");
        killed.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "worker".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    reason: Some("OOMKilled".into()),
                    exit_code: 137,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let k = WorkerPod::from_pod(&killed);
        assert_eq!(k.gone().unwrap(), "pod w-4 failed: OOMKilled (exit 137)");
        let mut evicted = ready("w-5", 5);
        evicted.metadata.deletion_timestamp = Some(Time(Default::default()));
        assert_eq!(
            WorkerPod::from_pod(&evicted).gone().unwrap(),
            "pod w-5 is being deleted"
        );
    }

    #[test]
    fn ready_only_when_every_index_has_a_ready_pod() {
        let two = read(&[ready("w-0", 0), ready("w-1", 1)]);
        assert_eq!(
            readiness(&two, 2),
            Readiness::Ready(vec!["w-0".into(), "w-1".into()])
        );
        assert_eq!(readiness(&two, 3), Readiness::Waiting);
        let one_pending = read(&[ready("w-0", 0), unschedulable("w-1", 1)]);
        assert_eq!(readiness(&one_pending, 2), Readiness::Waiting);
        let one_failed = read(&[ready("w-0", 0), pod("w-1", 1, "Failed")]);
        assert_eq!(
            readiness(&one_failed, 2),
            Readiness::Failed("worker 1: pod w-1 failed: failed before the run started".into())
        );
    }

    #[test]
    fn the_report_names_each_pod_that_is_not_ready_and_why() {
        let pods = read(&[
            ready("w-0", 0),
            unschedulable("w-1", 1),
            pod("w-2", 2, "Running"),
        ]);
        let report = not_ready_report(&pods, 4);
        assert_eq!(
            report,
            "worker 1: pod w-1 cannot be scheduled: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.\n  \
             worker 2: pod w-2 is running but not ready\n  \
             worker 3: no pod was created (the Job's events say why: quota, admission)"
        );
    }
}

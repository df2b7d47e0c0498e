//! The fake API server's Job controller and kubelet, for distributed runs: an Indexed Job's
//! worker `i` is a real `xiuload worker` process on loopback (`JOB_COMPLETION_INDEX=i`, the
//! scenario read from the Job's ConfigMap into a temporary file, `--listen 127.0.0.1:0`), and its
//! Pod goes Pending → Running → Ready (the kubelet's readiness probe is a `GET /readyz` on the
//! process) → Succeeded or Failed as the process exits. Deleting the Job or a pod kills the
//! process. With [`Jobs::unschedulable`] set, pods stay Pending with `PodScheduled=False`.

use super::{Shared, apply_value, delete_object};
use k8s_openapi::api::batch::v1::Job;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

const XIULOAD: &str = env!("CARGO_BIN_EXE_xiuload");
/// What the scheduler says of a pod it cannot place.
pub const UNSCHEDULABLE_MESSAGE: &str = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// How often the stand-in kubelet probes a worker's readiness.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// Bounds the readiness probing of one worker (it prepares synthetic media first).
const PROBE_FOR: Duration = Duration::from_secs(60);

/// One worker: its Job, index, pod, and (once started) its address and process id.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    pub job: String,
    pub index: u32,
    pub pod: String,
    pub addr: Option<SocketAddr>,
    pub pid: Option<u32>,
    /// Its pod was deleted (with the Job, or alone): the process is killed.
    pub deleted: bool,
    kill: CancellationToken,
}

#[derive(Default)]
pub struct Jobs {
    workers: HashMap<String, WorkerHandle>,
    /// New pods stay Pending, unschedulable.
    pub unschedulable: bool,
    /// Scenario files, worker logs and their windows logs.
    scratch: Option<tempfile::TempDir>,
}

impl Jobs {
    pub fn address(&self, pod: &str) -> Option<SocketAddr> {
        self.workers
            .get(pod)
            .filter(|w| !w.deleted)
            .and_then(|w| w.addr)
    }

    pub fn workers(&self) -> Vec<WorkerHandle> {
        let mut all: Vec<WorkerHandle> = self.workers.values().cloned().collect();
        all.sort_by_key(|w| (w.job.clone(), w.index));
        all
    }

    /// The pod was deleted: its process goes too (no status is published for it). The
    /// worker stays listed, for tests to look at.
    pub fn kill(&mut self, pod: &str) {
        if let Some(w) = self.workers.get_mut(pod) {
            w.deleted = true;
            w.kill.cancel();
        }
    }

    pub fn kill_all(&mut self) {
        for w in self.workers.values() {
            w.kill.cancel();
        }
    }

    pub fn scratch(&mut self) -> PathBuf {
        self.scratch
            .get_or_insert_with(|| tempfile::tempdir().unwrap())
            .path()
            .to_path_buf()
    }
}

/// Deletes a Job's pods (and so their processes).
pub fn delete_job(inner: &Shared, job: &str) {
    let pods: Vec<String> = {
        let g = inner.lock().unwrap();
        g.jobs
            .workers
            .values()
            .filter(|w| w.job == job && !w.deleted)
            .map(|w| w.pod.clone())
            .collect()
    };
    for pod in pods {
        inner.lock().unwrap().jobs.kill(&pod);
        delete_object(inner, "pods", &pod);
    }
}

/// The Job controller: one pod a completion index, each run by [`run_pod`].
pub fn start_job(inner: Shared, object: Value) {
    let job: Job = serde_json::from_value(object).expect("a Job the fake can read");
    let name = job.metadata.name.clone().unwrap();
    let spec = job.spec.clone().unwrap();
    let template = spec.template.clone();
    let pod_spec = template.spec.clone().unwrap();
    let container = pod_spec.containers[0].clone();
    let map_name = pod_spec
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.config_map.as_ref().map(|c| c.name.clone()))
        .expect("the worker pod mounts a ConfigMap");
    let scenario_text = {
        let g = inner.lock().unwrap();
        g.collections["configmaps"].objects[&map_name]["data"]["scenario.toml"]
            .as_str()
            .expect("the ConfigMap holds scenario.toml")
            .to_string()
    };
    let dir = inner.lock().unwrap().jobs.scratch().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, scenario_text).unwrap();
    let unschedulable = inner.lock().unwrap().jobs.unschedulable;
    for index in 0..spec.completions.unwrap_or(1) as u32 {
        let pod = format!("{name}-{index}-{:05x}", 0xa11ce + index);
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
        labels.insert(INDEX_ANNOTATION.into(), index.to_string());
        let scheduled = if unschedulable {
            json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                   "message": UNSCHEDULABLE_MESSAGE})
        } else {
            json!({"type": "PodScheduled", "status": "True"})
        };
        apply_value(
            &inner,
            "pods",
            json!({
                "metadata": {"name": pod, "labels": labels,
                             "annotations": {INDEX_ANNOTATION: index.to_string()}},
                "spec": serde_json::to_value(&pod_spec).unwrap(),
                "status": {"phase": "Pending", "conditions": [scheduled]},
            }),
        );
        let handle = WorkerHandle {
            job: name.clone(),
            index,
            pod: pod.clone(),
            addr: None,
            pid: None,
            deleted: false,
            kill: CancellationToken::new(),
        };
        inner
            .lock()
            .unwrap()
            .jobs
            .workers
            .insert(pod.clone(), handle.clone());
        if !unschedulable {
            let args = worker_args(
                container.args.clone().unwrap_or_default(),
                &scenario,
                &dir,
                index,
            );
            let env: Vec<(String, String)> = container
                .env
                .iter()
                .flatten()
                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                .collect();
            tokio::spawn(run_pod(inner.clone(), handle, args, env, dir.clone()));
        }
    }
}

/// The container's args as a loopback process takes them: the scenario from the temporary file,
/// any free port, and the windows it sends also written to the scratch directory.
fn worker_args(
    mut args: Vec<String>,
    scenario: &std::path::Path,
    dir: &std::path::Path,
    index: u32,
) -> Vec<String> {
    assert_eq!(args.first().map(String::as_str), Some("worker"), "{args:?}");
    args[1] = scenario.display().to_string();
    if let Some(i) = args.iter().position(|a| a == "--listen") {
        args[i + 1] = "127.0.0.1:0".into();
    }
    args.push("--windows-log".into());
    args.push(
        dir.join(format!("worker-{index}.windows.jsonl"))
            .display()
            .to_string(),
    );
    args
}

fn set_status(inner: &Shared, pod: &str, status: Value) {
    let current = inner.lock().unwrap().collections["pods"]
        .objects
        .get(pod)
        .cloned();
    // A deleted pod is not brought back by a late status.
    if let Some(mut object) = current {
        object["status"] = status;
        apply_value(inner, "pods", object);
    }
}

/// The kubelet's part: start the process, probe it until ready, report how it ended.
async fn run_pod(
    inner: Shared,
    handle: WorkerHandle,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
) {
    let pod = handle.pod.clone();
    let scheduled = json!({"type": "PodScheduled", "status": "True"});
    let log = std::fs::File::create(dir.join(format!("worker-{}.log", handle.index))).unwrap();
    let mut child = tokio::process::Command::new(XIULOAD)
        .args(&args)
        .envs(env)
        .env("JOB_COMPLETION_INDEX", handle.index.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("xiuload worker starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::select! {
        l = lines.next_line() => l.ok().flatten(),
        _ = handle.kill.cancelled() => None,
    };
    let addr: Option<SocketAddr> = first
        .as_deref()
        .and_then(|l| l.rsplit_once("http://"))
        .and_then(|(_, a)| a.trim().parse().ok());
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    {
        let mut g = inner.lock().unwrap();
        if let Some(w) = g.jobs.workers.get_mut(&pod) {
            w.addr = addr;
            w.pid = child.id();
        }
    }
    let running = |ready: bool| {
        json!({"phase": "Running", "podIP": "127.0.0.1",
               "conditions": [scheduled.clone(),
                              {"type": "Ready", "status": if ready { "True" } else { "False" }}],
               "containerStatuses": [{"name": "worker", "ready": ready, "restartCount": 0,
                                      "image": "xiuload", "imageID": "", "state": {"running": {}}}]})
    };
    set_status(&inner, &pod, running(false));
    if let Some(addr) = addr {
        let probe = async {
            let http = reqwest::Client::new();
            loop {
                let ok = http
                    .get(format!("http://{addr}/readyz"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    return;
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
        };
        tokio::select! {
            r = tokio::time::timeout(PROBE_FOR, probe) => {
                if r.is_ok() {
                    set_status(&inner, &pod, running(true));
                }
            }
            _ = handle.kill.cancelled() => {}
            _ = child.wait() => {}
        }
    }
    let exit = tokio::select! {
        s = child.wait() => s.ok(),
        _ = handle.kill.cancelled() => {
            let _ = child.kill().await;
            return;
        }
    };
    let code = exit.and_then(|s| s.code()).unwrap_or(137);
    let (phase, reason) = if code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    set_status(
        &inner,
        &pod,
        json!({"phase": phase,
               "conditions": [scheduled, {"type": "Ready", "status": "False"}],
               "containerStatuses": [{"name": "worker", "ready": false, "restartCount": 0,
                                      "image": "xiuload", "imageID": "",
                                      "state": {"terminated": {"exitCode": code, "reason": reason}}}]}),
    );
}

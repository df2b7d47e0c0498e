//! An in-process fake Kubernetes API server for tests: it speaks the real wire format for the
//! handful of namespaced collections xiuload's watcher reads (list with `metadata.resourceVersion`,
//! `?watch=1` streams of `{"type","object"}` lines with increasing resourceVersions, bookmarks,
//! `timeoutSeconds`), and lets a test script what a real cluster does to watchers: `410 Gone`,
//! dropped connections, `403 Forbidden`. PodMetrics lists and the pod proxy (forwarded to a real
//! local xiu) complete it. It is a test double only, never part of the product.
//!
//! It also stands in for the Job controller and the kubelet of a distributed run
//! ([`fake_jobs`]): ConfigMaps and Jobs are created (`POST`) and deleted (`DELETE`), an Indexed
//! Job starts real `xiuload worker` processes on loopback whose Pods it publishes, and the pod
//! proxy reaches them. Lists and watches honour equality `labelSelector`s.
//!
//! For cluster faults it takes `PATCH` of an object (merged as a JSON merge patch, which covers
//! the strategic patch of `rollout restart`: it has no lists) and of a workload's `/scale`
//! subresource, and `DELETE` of a pod; every request's time and every patch's body are kept.

#![allow(dead_code)]

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

#[path = "fake_jobs.rs"]
mod fake_jobs;
pub use fake_jobs::WorkerHandle;

/// Collections served, by the key tests use: (URL prefix without namespace part, apiVersion, list kind).
const COLLECTIONS: &[(&str, &str, &str, &str)] = &[
    ("pods", "/api/v1", "v1", "Pod"),
    ("events", "/api/v1", "v1", "Event"),
    (
        "horizontalpodautoscalers",
        "/apis/autoscaling/v2",
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
    ),
    ("deployments", "/apis/apps/v1", "apps/v1", "Deployment"),
    ("statefulsets", "/apis/apps/v1", "apps/v1", "StatefulSet"),
    (
        "events.k8s.io",
        "/apis/events.k8s.io/v1",
        "events.k8s.io/v1",
        "Event",
    ),
    ("configmaps", "/api/v1", "v1", "ConfigMap"),
    ("jobs", "/apis/batch/v1", "batch/v1", "Job"),
];

#[derive(Clone, Debug)]
enum Ctrl {
    Event {
        rv: u64,
        kind: &'static str,
        object: Value,
    },
    /// Send an ERROR event with a 410 Status, as an API server does when the watch's
    /// resourceVersion has been compacted away.
    Gone,
    /// Cut the connection mid-stream.
    Drop,
}

struct Collection {
    objects: BTreeMap<String, Value>,
    history: Vec<(u64, &'static str, Value)>,
    /// Watches from a resourceVersion below this get `410 Gone`.
    compacted_before: u64,
    tx: broadcast::Sender<Ctrl>,
}

struct Inner {
    namespace: String,
    rv: u64,
    collections: HashMap<&'static str, Collection>,
    forbidden: BTreeSet<String>,
    pod_metrics: Vec<Value>,
    xiu_upstream: Option<u16>,
    requests: Vec<String>,
    /// When each of `requests` came.
    request_times: Vec<std::time::Instant>,
    /// Each PATCH: (request line, Content-Type, body).
    patches: Vec<(String, String, Value)>,
    request_seen: Arc<tokio::sync::Notify>,
    down: bool,
    /// The Job controller and kubelet stand-in: worker processes by pod name.
    jobs: fake_jobs::Jobs,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeApiServer {
    pub addr: SocketAddr,
    inner: Shared,
    app: Router,
    shutdown: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// Serves `app` on `listener` until the returned sender fires (then stops accepting and closes
/// idle connections, as a stopping API server does).
fn serve(listener: tokio::net::TcpListener, app: Router) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    tx
}

impl FakeApiServer {
    pub async fn start(namespace: &str) -> FakeApiServer {
        let collections = COLLECTIONS
            .iter()
            .map(|(key, ..)| {
                (
                    *key,
                    Collection {
                        objects: BTreeMap::new(),
                        history: Vec::new(),
                        compacted_before: 0,
                        tx: broadcast::channel(256).0,
                    },
                )
            })
            .collect();
        let inner = Arc::new(Mutex::new(Inner {
            namespace: namespace.to_string(),
            rv: 100,
            collections,
            forbidden: BTreeSet::new(),
            pod_metrics: Vec::new(),
            xiu_upstream: None,
            requests: Vec::new(),
            request_times: Vec::new(),
            patches: Vec::new(),
            request_seen: Arc::new(tokio::sync::Notify::new()),
            down: false,
            jobs: fake_jobs::Jobs::default(),
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = serve(listener, app.clone());
        FakeApiServer {
            addr,
            inner,
            app,
            shutdown: Mutex::new(Some(shutdown)),
        }
    }

    /// The API server goes away: open watches are cut, requests in flight get 503, the port
    /// stops accepting connections.
    pub fn outage(&self) {
        self.inner.lock().unwrap().down = true;
        for (key, ..) in COLLECTIONS {
            self.drop_watches(key);
        }
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }

    /// The API server is back on the same address, with its state (and history) intact.
    pub async fn restore(&self) {
        // The old listener closes asynchronously (its serve task drains after the shutdown
        // signal); the OS offers no event for "port free again", so retry briefly, bounded.
        let mut attempt = 0;
        let listener = loop {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            match socket.bind(self.addr).and_then(|()| socket.listen(1024)) {
                Ok(l) => break l,
                Err(_) if attempt < 100 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.inner.lock().unwrap().down = false;
        *self.shutdown.lock().unwrap() = Some(serve(listener, self.app.clone()));
    }

    /// A kubeconfig file for this server, as `kubectl config view --raw` would write it.
    pub fn write_kubeconfig(&self, path: &std::path::Path) {
        let ns = self.inner.lock().unwrap().namespace.clone();
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: {ns}\n\
                 users:\n- name: tester\n  user:\n    token: not-a-secret\n",
                self.addr
            ),
        )
        .unwrap();
    }

    /// Creates or replaces an object (any k8s-openapi type), as ADDED or MODIFIED.
    pub fn apply<T: serde::Serialize>(&self, collection: &'static str, object: &T) {
        apply_value(
            &self.inner,
            collection,
            serde_json::to_value(object).unwrap(),
        );
    }

    /// Deletes an object; a Job's or pod's worker processes go with it.
    pub fn delete(&self, collection: &'static str, name: &str) {
        delete_object(&self.inner, collection, name);
        match collection {
            "jobs" => fake_jobs::delete_job(&self.inner, name),
            "pods" => self.inner.lock().unwrap().jobs.kill(name),
            _ => {}
        }
    }

    /// New worker pods stay Pending: the scheduler finds no node for them.
    pub fn set_unschedulable(&self, unschedulable: bool) {
        self.inner.lock().unwrap().jobs.unschedulable = unschedulable;
    }

    /// The worker processes of every Job created so far (by Job, then index).
    pub fn workers(&self) -> Vec<WorkerHandle> {
        self.inner.lock().unwrap().jobs.workers()
    }

    /// Where a Job's workers have their scenario, logs (`worker-<i>.log`) and windows
    /// (`worker-<i>.windows.jsonl`).
    pub fn job_dir(&self, job: &str) -> std::path::PathBuf {
        self.inner.lock().unwrap().jobs.scratch().join(job)
    }

    /// The objects of a collection now (e.g. whether a run's Job is still there).
    pub fn objects(&self, collection: &'static str) -> Vec<Value> {
        let g = self.inner.lock().unwrap();
        g.collections[collection]
            .objects
            .values()
            .cloned()
            .collect()
    }

    /// Compacts the collection's history: open watches get `410 Gone` and must relist.
    pub fn expire(&self, collection: &'static str) {
        let mut g = self.inner.lock().unwrap();
        let rv = g.rv;
        let c = g.collections.get_mut(collection).unwrap();
        c.compacted_before = rv;
        c.history.clear();
        let _ = c.tx.send(Ctrl::Gone);
    }

    /// Cuts every open watch connection of the collection mid-stream.
    pub fn drop_watches(&self, collection: &'static str) {
        let g = self.inner.lock().unwrap();
        let _ = g.collections[collection].tx.send(Ctrl::Drop);
    }

    /// Answers `403 Forbidden` for a collection key (or `podmetrics`).
    pub fn forbid(&self, key: &str) {
        self.inner.lock().unwrap().forbidden.insert(key.to_string());
    }

    /// Sets what `metrics.k8s.io/v1beta1` reports: (pod, cpu quantity, memory quantity).
    pub fn set_pod_metrics(&self, pods: &[(&str, &str, &str)]) {
        let mut g = self.inner.lock().unwrap();
        let ns = g.namespace.clone();
        g.pod_metrics = pods
            .iter()
            .map(|(name, cpu, mem)| {
                json!({
                    "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-01-01T00:00:00Z"},
                    "timestamp": "2026-01-01T00:00:00Z",
                    "window": "15s",
                    "containers": [{"name": "xiu", "usage": {"cpu": cpu, "memory": mem}}]
                })
            })
            .collect();
    }

    /// Forwards `pods/<pod>:<port>/proxy/...` to a local xiu API on this port.
    pub fn set_xiu_upstream(&self, api_port: u16) {
        self.inner.lock().unwrap().xiu_upstream = Some(api_port);
    }

    /// Request lines seen so far ("GET /path?query"), for assertions about what the client asked.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Request lines with the moment each came.
    pub fn timed_requests(&self) -> Vec<(std::time::Instant, String)> {
        let g = self.inner.lock().unwrap();
        g.request_times
            .iter()
            .copied()
            .zip(g.requests.iter().cloned())
            .collect()
    }

    /// The PATCH requests seen: (request line, Content-Type, body).
    pub fn patches(&self) -> Vec<(String, String, Value)> {
        self.inner.lock().unwrap().patches.clone()
    }

    /// How many requests so far contain every one of `parts`.
    pub fn count_requests(&self, parts: &[&str]) -> usize {
        let g = self.inner.lock().unwrap();
        g.requests
            .iter()
            .filter(|r| parts.iter().all(|p| r.contains(p)))
            .count()
    }

    /// Waits (bounded) until more than `already` requests contain every one of `parts`.
    pub async fn wait_for_requests(&self, parts: &[&str], already: usize, timeout: Duration) {
        let notify = self.inner.lock().unwrap().request_seen.clone();
        tokio::time::timeout(timeout, async {
            loop {
                let seen = notify.notified();
                tokio::pin!(seen);
                seen.as_mut().enable();
                if self.count_requests(parts) > already {
                    return;
                }
                seen.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no new request with {parts:?} within {timeout:?}"))
    }
}

/// Creates or replaces an object, as ADDED or MODIFIED; returns it as stored.
fn apply_value(inner: &Shared, collection: &'static str, mut object: Value) -> Value {
    let mut g = inner.lock().unwrap();
    g.rv += 1;
    let rv = g.rv;
    let ns = g.namespace.clone();
    let (_, _, api_version, kind) = COLLECTIONS.iter().find(|c| c.0 == collection).unwrap();
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    object["metadata"]["namespace"] = json!(ns);
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    if object["metadata"]["uid"].is_null() {
        object["metadata"]["uid"] = json!(format!("uid-{collection}-{name}"));
    }
    let c = g.collections.get_mut(collection).unwrap();
    let kind = if c.objects.insert(name, object.clone()).is_some() {
        "MODIFIED"
    } else {
        "ADDED"
    };
    c.history.push((rv, kind, object.clone()));
    let _ = c.tx.send(Ctrl::Event {
        rv,
        kind,
        object: object.clone(),
    });
    object
}

/// Removes an object (DELETED); what it was, if it was there.
fn delete_object(inner: &Shared, collection: &'static str, name: &str) -> Option<Value> {
    let mut g = inner.lock().unwrap();
    g.rv += 1;
    let rv = g.rv;
    let c = g.collections.get_mut(collection).unwrap();
    let mut object = c.objects.remove(name)?;
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    c.history.push((rv, "DELETED", object.clone()));
    let _ = c.tx.send(Ctrl::Event {
        rv,
        kind: "DELETED",
        object: object.clone(),
    });
    Some(object)
}

/// Whether an object's labels match an equality selector (`a=b,c=d`; empty matches all).
fn selected(object: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        let (key, value) = term.split_once('=').unwrap_or((term, ""));
        let value = value.trim_start_matches('=');
        object["metadata"]["labels"][key.trim()].as_str() == Some(value.trim())
    })
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
        self.inner.lock().unwrap().jobs.kill_all();
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn json_response(code: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let ns = {
        let mut g = inner.lock().unwrap();
        g.requests.push(format!("{method} {uri}"));
        g.request_times.push(std::time::Instant::now());
        if method == Method::PATCH {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            g.patches
                .push((format!("{method} {uri}"), content_type, body));
        }
        g.request_seen.notify_waiters();
        if g.down {
            return json_response(
                503,
                &status(503, "ServiceUnavailable", "the API server is shutting down"),
            );
        }
        g.namespace.clone()
    };
    // Pod proxy: /api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<rest>
    let pods_prefix = format!("/api/v1/namespaces/{ns}/pods/");
    if let Some(rest) = path.strip_prefix(&pods_prefix)
        && let Some((pod_port, tail)) = rest.split_once("/proxy/")
    {
        let pod = pod_port.split(':').next().unwrap_or(pod_port);
        let worker = inner.lock().unwrap().jobs.address(pod);
        return match worker {
            Some(addr) => forward(addr, method, tail, uri.query()).await,
            None => proxy(&inner, tail, uri.query()).await,
        };
    }
    if path == format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods") {
        let g = inner.lock().unwrap();
        if g.forbidden.contains("podmetrics") {
            return json_response(
                403,
                &status(
                    403,
                    "Forbidden",
                    &format!(
                        "pods.metrics.k8s.io is forbidden: User \"system:serviceaccount:{ns}:xiuload-watcher\" cannot list resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"{ns}\""
                    ),
                ),
            );
        }
        return json_response(
            200,
            &json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": g.pod_metrics}),
        );
    }
    let mut item: Option<String> = None;
    let mut scale = false;
    let Some((key, _, api_version, kind)) = COLLECTIONS
        .iter()
        .find(|(key, prefix, ..)| {
            let plural = if *key == "events.k8s.io" {
                "events"
            } else {
                key
            };
            let base = format!("{prefix}/namespaces/{ns}/{plural}");
            if path == base {
                return true;
            }
            match path.strip_prefix(&format!("{base}/")) {
                Some(name) if !name.contains('/') => {
                    item = Some(name.to_string());
                    true
                }
                Some(name)
                    if matches!(*key, "deployments" | "statefulsets")
                        && name.ends_with("/scale")
                        && name.matches('/').count() == 1 =>
                {
                    item = Some(name.trim_end_matches("/scale").to_string());
                    scale = true;
                    true
                }
                _ => false,
            }
        })
        .copied()
    else {
        return json_response(
            404,
            &status(
                404,
                "NotFound",
                &format!("the server could not find {path}"),
            ),
        );
    };
    if inner.lock().unwrap().forbidden.contains(key) {
        return json_response(
            403,
            &status(
                403,
                "Forbidden",
                &format!("{key} is forbidden: cannot list resource in the namespace \"{ns}\""),
            ),
        );
    }
    match (&method, item) {
        (&Method::PATCH, Some(name)) => return patch(&inner, key, &name, scale, &body),
        (_, Some(_)) if scale => {
            return json_response(
                405,
                &status(405, "MethodNotAllowed", &format!("{method} {path}")),
            );
        }
        (&Method::POST, None) => return create(&inner, key, &body),
        (&Method::DELETE, Some(name)) => return remove(&inner, key, &name),
        (&Method::GET, Some(name)) => {
            let found = inner.lock().unwrap().collections[key]
                .objects
                .get(&name)
                .cloned();
            return match found {
                Some(object) => json_response(200, &object),
                None => not_found(key, &name),
            };
        }
        (&Method::GET, None) => {}
        _ => {
            return json_response(
                405,
                &status(405, "MethodNotAllowed", &format!("{method} {path}")),
            );
        }
    }
    let selector = q.get("labelSelector");
    let watching = matches!(q.get("watch").map(String::as_str), Some("1" | "true"));
    if !watching {
        let g = inner.lock().unwrap();
        let items: Vec<&Value> = g.collections[key]
            .objects
            .values()
            .filter(|o| selected(o, selector))
            .collect();
        return json_response(
            200,
            &json!({"apiVersion": api_version, "kind": format!("{kind}List"),
                    "metadata": {"resourceVersion": g.rv.to_string()}, "items": items}),
        );
    }
    watch(inner, key, api_version, kind, &q)
}

fn not_found(key: &str, name: &str) -> Response {
    json_response(
        404,
        &status(404, "NotFound", &format!("{key} \"{name}\" not found")),
    )
}

/// `POST` to a collection: stores the object (409 when the name is taken); a Job starts its
/// workers.
fn create(inner: &Shared, key: &'static str, body: &[u8]) -> Response {
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return json_response(400, &status(400, "BadRequest", "the body is not JSON"));
    };
    let Some(name) = object["metadata"]["name"].as_str().map(str::to_string) else {
        return json_response(400, &status(400, "BadRequest", "metadata.name is required"));
    };
    if inner.lock().unwrap().collections[key]
        .objects
        .contains_key(&name)
    {
        return json_response(
            409,
            &status(
                409,
                "AlreadyExists",
                &format!("{key} \"{name}\" already exists"),
            ),
        );
    }
    object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    let stored = apply_value(inner, key, object);
    if key == "jobs" {
        fake_jobs::start_job(inner.clone(), stored.clone());
    }
    json_response(201, &stored)
}

/// RFC 7386 merge of `patch` into `target`.
fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (k, v) in fields {
        if v.is_null() {
            target.as_object_mut().unwrap().remove(k);
        } else {
            merge(&mut target[k], v);
        }
    }
}

/// `PATCH` of an object (MODIFIED), or of a workload's `/scale` (its `spec.replicas`; answered
/// with the Scale object).
fn patch(inner: &Shared, key: &'static str, name: &str, scale: bool, body: &[u8]) -> Response {
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return json_response(400, &status(400, "BadRequest", "the body is not JSON"));
    };
    let Some(mut object) = inner.lock().unwrap().collections[key]
        .objects
        .get(name)
        .cloned()
    else {
        return not_found(key, name);
    };
    if scale {
        let Some(replicas) = patch["spec"]["replicas"].as_u64() else {
            return json_response(400, &status(400, "BadRequest", "spec.replicas is required"));
        };
        object["spec"]["replicas"] = json!(replicas);
        let stored = apply_value(inner, key, object);
        return json_response(
            200,
            &json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": name, "namespace": stored["metadata"]["namespace"]},
                    "spec": {"replicas": replicas}, "status": {"replicas": replicas}}),
        );
    }
    merge(&mut object, &patch);
    json_response(200, &apply_value(inner, key, object))
}

/// `DELETE` of one object; a Job takes its pods (and their processes) with it, a pod its process.
fn remove(inner: &Shared, key: &'static str, name: &str) -> Response {
    if delete_object(inner, key, name).is_none() {
        return not_found(key, name);
    }
    match key {
        "jobs" => fake_jobs::delete_job(inner, name),
        "pods" => inner.lock().unwrap().jobs.kill(name),
        _ => {}
    }
    json_response(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "kind": key}}),
    )
}

fn watch(
    inner: Shared,
    key: &'static str,
    api_version: &str,
    kind: &str,
    q: &HashMap<String, String>,
) -> Response {
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let selector = q.get("labelSelector").cloned();
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(290),
    );
    // Subscribe and snapshot under one lock: no event can fall between history and live stream.
    let (mut rx, backlog, gone, current) = {
        let g = inner.lock().unwrap();
        let c = &g.collections[key];
        let backlog: Vec<(u64, &'static str, Value)> = c
            .history
            .iter()
            .filter(|(rv, _, o)| *rv > from && selected(o, selector.as_ref()))
            .cloned()
            .collect();
        (c.tx.subscribe(), backlog, from < c.compacted_before, g.rv)
    };
    let (mut tx, body_rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let line = |v: Value| Ok(Bytes::from(format!("{v}\n")));
    let bookmark = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": kind,
                          "metadata": {"resourceVersion": current.to_string()}}});
    tokio::spawn(async move {
        if gone {
            let _ = tx
                .send(line(json!({"type": "ERROR", "object": status(410, "Expired", "too old resource version")})))
                .await;
            return;
        }
        for (_, kind, object) in backlog {
            if tx
                .send(line(json!({"type": kind, "object": object})))
                .await
                .is_err()
            {
                return;
            }
        }
        if bookmarks && tx.send(line(bookmark)).await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return, // timeoutSeconds: end the watch cleanly, the client re-watches
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(_)) => return,
                Ok(Ok(m)) => m,
            };
            let out = match msg {
                Ctrl::Event { rv, .. } if rv <= from => continue,
                Ctrl::Event { ref object, .. } if !selected(object, selector.as_ref()) => continue,
                Ctrl::Event { kind, object, .. } => line(json!({"type": kind, "object": object})),
                Ctrl::Gone => {
                    let _ = tx
                        .send(line(json!({"type": "ERROR", "object": status(410, "Expired", "too old resource version")})))
                        .await;
                    return;
                }
                Ctrl::Drop => Err(std::io::Error::other("connection dropped by the test")),
            };
            let dropping = out.is_err();
            if tx.send(out).await.is_err() || dropping {
                return;
            }
        }
    });
    let _ = inner; // the stream holds no lock
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body_rx))
        .unwrap()
}

async fn proxy(inner: &Shared, tail: &str, query: Option<&str>) -> Response {
    let Some(port) = inner.lock().unwrap().xiu_upstream else {
        return json_response(
            503,
            &status(
                503,
                "ServiceUnavailable",
                "no xiu behind this fake pod proxy",
            ),
        );
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    forward(addr, Method::GET, tail, query).await
}

/// The pod proxy's forwarding: the same method, path and query to `addr`; its status and body.
async fn forward(addr: SocketAddr, method: Method, tail: &str, query: Option<&str>) -> Response {
    let url = format!(
        "http://{addr}/{tail}{}",
        query.map(|q| format!("?{q}")).unwrap_or_default()
    );
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    match reqwest::Client::new().request(method, &url).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            (StatusCode::from_u16(code).unwrap(), body).into_response()
        }
        Err(e) => json_response(
            503,
            &status(503, "ServiceUnavailable", &format!("proxy to {url}: {e}")),
        ),
    }
}

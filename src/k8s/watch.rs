//! kube-rs watchers (list + watch with backoff, relist after `410 Gone`) for the kinds the
//! recorder needs. Each watcher forwards what it sees as [`Observed`] values and turns its errors
//! into gap markers and permission notes, so one missing permission or a flaky API server costs
//! that data only, never the run.

use super::config::KubeSection;
pub use super::record::Delivery;
use super::timeline::EventKind;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::api::events::v1::Event as EventsV1Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// What the watchers and pollers hand to the recorder task.
#[derive(Debug)]
pub enum Observed {
    Hpa(Box<HorizontalPodAutoscaler>),
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    Pod(Box<Pod>),
    PodDeleted(Box<Pod>),
    PodRelistStarted,
    PodRelistDone,
    CoreEvent(Box<CoreEvent>, Delivery),
    EventsV1(Box<EventsV1Event>, Delivery),
    /// Already a domain event (gaps, permissions, samples from the pollers).
    Note(EventKind),
    /// A watcher's first list is complete (its `Source::name`): what was not seen by now is not
    /// there, which a user should hear about while the run goes on.
    Listed(&'static str),
}

/// The resource a watcher reads, named as RBAC names it (for "missing permission" messages).
#[derive(Debug, Clone)]
pub struct Source {
    /// Short name used in gap markers, e.g. `pods`.
    pub name: &'static str,
    /// RBAC resource, e.g. `horizontalpodautoscalers.autoscaling`.
    pub resource: &'static str,
    pub namespace: String,
    /// The API server's URL, named in connection errors.
    pub server: String,
}

/// A 403 from the API server, as the missing permission.
pub fn permission_denied(source: &Source, verb: &str, status: &kube::core::Status) -> EventKind {
    EventKind::PermissionDenied {
        verb: verb.to_string(),
        resource: source.resource.to_string(),
        namespace: source.namespace.clone(),
        message: format!(
            "missing permission: {verb} {} in namespace {} ({}); this data is left out of the run",
            source.resource, source.namespace, status.message
        ),
    }
}

fn api_status(e: &watcher::Error) -> Option<(&'static str, &kube::core::Status)> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s)) => Some(("list", s)),
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(("watch", s)),
        watcher::Error::WatchError(s) => Some(("watch", s)),
        _ => None,
    }
}

/// First and longest wait before re-creating a watcher after the API server failed it.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs one watcher until the task is aborted (or permission is denied).
///
/// Gaps: a `410 Gone` is handled by kube-rs itself (it relists); any other failure (API server
/// unreachable, a 5xx) makes this function start a fresh watcher after a backoff, so the resume
/// is a full relist whose end is a definite `gap_end`, and anything that changed meanwhile is
/// re-diffed by the recorder. A watch connection that just ends is resumed by kube-rs from its
/// last resourceVersion without loss, so it is not a gap.
pub async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    source: Source,
    tx: UnboundedSender<Observed>,
    wrap: fn(watcher::Event<K>) -> Vec<Observed>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut listed_once = false;
    let mut in_gap = false;
    let mut retry = RETRY_FIRST;
    let gap_start = |reason: String| {
        Observed::Note(EventKind::GapStart {
            source: source.name.to_string(),
            reason,
        })
    };
    loop {
        let mut stream = std::pin::pin!(watcher(api.clone(), config.clone()).default_backoff());
        let mut listing = false;
        while let Some(item) = stream.next().await {
            let mut out = Vec::new();
            let mut restart = false;
            match item {
                Ok(event) => {
                    match &event {
                        watcher::Event::Init => {
                            // A second list means the watch could not resume where it was:
                            // Events in between may be lost (objects are re-diffed).
                            if listed_once && !in_gap {
                                in_gap = true;
                                out.push(gap_start("watch restarted with a full relist".into()));
                            }
                            listing = true;
                        }
                        watcher::Event::InitDone => {
                            listing = false;
                            if !listed_once {
                                out.push(Observed::Listed(source.name));
                            }
                            listed_once = true;
                            retry = RETRY_FIRST;
                        }
                        _ => {}
                    }
                    if in_gap && !listing {
                        in_gap = false;
                        out.push(Observed::Note(EventKind::GapEnd {
                            source: source.name.to_string(),
                        }));
                    }
                    out.extend(wrap(event));
                }
                Err(e) => match api_status(&e) {
                    Some((verb, status)) if status.code == 403 => {
                        tracing::warn!(
                            resource = source.resource,
                            "permission denied: {}",
                            status.message
                        );
                        let _ = tx.send(Observed::Note(permission_denied(&source, verb, status)));
                        return;
                    }
                    Some((_, status)) if status.code == 410 => {
                        if !in_gap {
                            in_gap = true;
                            out.push(gap_start(
                                "410 Gone: resourceVersion expired, relisting".into(),
                            ));
                        }
                    }
                    _ => {
                        if !in_gap {
                            in_gap = true;
                            out.push(gap_start(format!(
                                "API server {} unreachable or the watch failed: {}",
                                source.server,
                                describe(&e)
                            )));
                        }
                        restart = true;
                    }
                },
            }
            for o in out {
                if tx.send(o).is_err() {
                    return;
                }
            }
            if restart {
                break;
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// An error and its causes, outermost first: kube-rs wraps the cause that tells a user what to do
/// ("Connection refused", "certificate verify failed") several layers deep.
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

fn objects<K>(e: watcher::Event<K>, apply: fn(K) -> Observed) -> Vec<Observed> {
    match e {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => vec![apply(o)],
        _ => Vec::new(),
    }
}

/// Like [`objects`], keeping whether each object came from a list or live from the watch.
fn delivered<K>(e: watcher::Event<K>, apply: fn(K, Delivery) -> Observed) -> Vec<Observed> {
    match e {
        watcher::Event::InitApply(o) => vec![apply(o, Delivery::Listed)],
        watcher::Event::Apply(o) => vec![apply(o, Delivery::Live)],
        _ => Vec::new(),
    }
}

/// Starts every watcher for `section`; each is its own task so one stuck stream stalls nothing else.
pub fn spawn_all(
    client: &Client,
    section: &KubeSection,
    server: &str,
    tx: &UnboundedSender<Observed>,
) -> Vec<JoinHandle<()>> {
    let ns = section.namespace.as_str();
    let src = |name, resource| Source {
        name,
        resource,
        namespace: ns.to_string(),
        server: server.to_string(),
    };
    let cfg = watcher::Config::default;
    let mut tasks = vec![
        tokio::spawn(run(
            Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns),
            cfg(),
            src(
                "horizontalpodautoscalers",
                "horizontalpodautoscalers.autoscaling",
            ),
            tx.clone(),
            |e| objects(e, |o| Observed::Hpa(Box::new(o))),
        )),
        tokio::spawn(run(
            Api::<Pod>::namespaced(client.clone(), ns),
            match &section.pod_selector {
                Some(sel) => cfg().labels(sel),
                None => cfg(),
            },
            src("pods", "pods"),
            tx.clone(),
            |e| match e {
                watcher::Event::Init => vec![Observed::PodRelistStarted],
                watcher::Event::InitDone => vec![Observed::PodRelistDone],
                watcher::Event::Delete(p) => vec![Observed::PodDeleted(Box::new(p))],
                other => objects(other, |o| Observed::Pod(Box::new(o))),
            },
        )),
        tokio::spawn(run(
            Api::<CoreEvent>::namespaced(client.clone(), ns),
            cfg(),
            src("events", "events"),
            tx.clone(),
            |e| delivered(e, |o, d| Observed::CoreEvent(Box::new(o), d)),
        )),
        tokio::spawn(run(
            Api::<EventsV1Event>::namespaced(client.clone(), ns),
            cfg(),
            src("events.events.k8s.io", "events.events.k8s.io"),
            tx.clone(),
            |e| delivered(e, |o, d| Observed::EventsV1(Box::new(o), d)),
        )),
    ];
    let workloads = section.edge.iter().chain(section.origin.iter());
    let wants = |k| workloads.clone().any(|w| w.kind == k);
    use super::config::WorkloadKind;
    if wants(WorkloadKind::Deployment) {
        tasks.push(tokio::spawn(run(
            Api::<Deployment>::namespaced(client.clone(), ns),
            cfg(),
            src("deployments", "deployments.apps"),
            tx.clone(),
            |e| objects(e, |o| Observed::Deployment(Box::new(o))),
        )));
    }
    if wants(WorkloadKind::StatefulSet) {
        tasks.push(tokio::spawn(run(
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            cfg(),
            src("statefulsets", "statefulsets.apps"),
            tx.clone(),
            |e| objects(e, |o| Observed::StatefulSet(Box::new(o))),
        )));
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> Box<kube::core::Status> {
        Box::new(kube::core::Status {
            code,
            message: message.into(),
            ..Default::default()
        })
    }

    #[test]
    fn api_errors_are_classified_by_verb() {
        let list = watcher::Error::InitialListFailed(kube::Error::Api(status(403, "forbidden")));
        assert!(matches!(api_status(&list), Some(("list", s)) if s.code == 403));
        let watch = watcher::Error::WatchStartFailed(kube::Error::Api(status(403, "forbidden")));
        assert!(matches!(api_status(&watch), Some(("watch", _))));
        let gone = watcher::Error::WatchError(status(410, "too old resource version"));
        assert!(matches!(api_status(&gone), Some(("watch", s)) if s.code == 410));
        assert!(api_status(&watcher::Error::NoResourceVersion).is_none());
    }

    #[test]
    fn permission_denied_names_verb_resource_and_namespace() {
        let source = Source {
            name: "horizontalpodautoscalers",
            resource: "horizontalpodautoscalers.autoscaling",
            namespace: "xiu".into(),
            server: "https://127.0.0.1:6443".into(),
        };
        match permission_denied(&source, "watch", &status(403, "nope")) {
            EventKind::PermissionDenied { message, verb, .. } => {
                assert_eq!(verb, "watch");
                assert_eq!(
                    message,
                    "missing permission: watch horizontalpodautoscalers.autoscaling in namespace xiu (nope); this data is left out of the run"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

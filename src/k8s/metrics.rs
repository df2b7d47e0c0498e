//! Polled data: `metrics.k8s.io/v1beta1` PodMetrics (the metrics API cannot be watched) and each
//! pod's xiu API through the API server's pod proxy (works from outside the cluster, with the
//! same credentials and RBAC as everything else: `get pods/proxy`).

use super::config::KubeSection;
use super::quantity::{cpu_millicores, memory_bytes};
use super::timeline::EventKind;
use super::watch::{Observed, Source, permission_denied};
use kube::api::GetParams;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::core::Request;
use kube::{Api, Client};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

/// One PodMetrics object → (pod, CPU millicores, memory bytes), summed over containers.
pub fn pod_usage(obj: &DynamicObject) -> Option<(String, f64, u64)> {
    let name = obj.metadata.name.clone()?;
    let containers = obj.data.get("containers")?.as_array()?;
    let mut cpu = 0.0;
    let mut mem = 0;
    for c in containers {
        let usage = c.get("usage")?;
        cpu += usage
            .get("cpu")
            .and_then(|v| v.as_str())
            .and_then(cpu_millicores)
            .unwrap_or(0.0);
        mem += usage
            .get("memory")
            .and_then(|v| v.as_str())
            .and_then(memory_bytes)
            .unwrap_or(0);
    }
    Some((name, (cpu * 10.0).round() / 10.0, mem))
}

#[derive(Debug, Clone, PartialEq)]
pub struct XiuSummary {
    pub streams: u32,
    pub subscribers: u32,
    pub recv_kbps: f64,
    pub send_kbps: f64,
}

/// Why an answer of xiu's stream API could not be summed.
#[derive(Debug, thiserror::Error)]
pub enum XiuStatsError {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    /// xiu answered with a non-zero `error_code`; `desp` is its description, as sent.
    #[error("xiu error: {desp}")]
    Xiu { desp: serde_json::Value },
    #[error("unexpected data: {0}")]
    UnexpectedData(serde_json::Value),
}

/// Sums xiu's `GET /api/query_whole_streams` answer. xiu sends `"data": {}` (not `[]`) when it
/// has no streams.
pub fn parse_xiu_streams(body: &str) -> Result<XiuSummary, XiuStatsError> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(XiuStatsError::NotJson)?;
    if v.get("error_code").and_then(|c| c.as_i64()).unwrap_or(0) != 0 {
        let desp = v.get("desp").cloned().unwrap_or_default();
        return Err(XiuStatsError::Xiu { desp });
    }
    let entries = match v.get("data") {
        Some(serde_json::Value::Array(a)) => a.as_slice(),
        Some(serde_json::Value::Object(o)) if o.is_empty() => &[],
        Some(serde_json::Value::Null) | None => &[],
        Some(other) => return Err(XiuStatsError::UnexpectedData(other.clone())),
    };
    let num = |v: Option<&serde_json::Value>| v.and_then(|x| x.as_f64()).unwrap_or(0.0);
    let mut s = XiuSummary {
        streams: entries.len() as u32,
        subscribers: 0,
        recv_kbps: 0.0,
        send_kbps: 0.0,
    };
    for e in entries {
        s.subscribers += num(e.get("subscriber_count")) as u32;
        s.recv_kbps += num(e.pointer("/publisher/recv_bitrate(kbits~1s)"));
        if let Some(subs) = e.get("subscribers").and_then(|x| x.as_object()) {
            s.send_kbps += subs
                .values()
                .map(|sub| num(sub.get("send_bitrate(kbits/s)")))
                .sum::<f64>();
        }
    }
    Ok(s)
}

fn metrics_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "pods"),
    )
}

/// Polls PodMetrics every `metrics_interval` until aborted or refused.
pub async fn poll_pod_metrics(
    client: Client,
    section: KubeSection,
    server: String,
    tx: UnboundedSender<Observed>,
) {
    let api = metrics_api(&client, &section.namespace);
    let source = Source {
        name: "podmetrics",
        resource: "pods.metrics.k8s.io",
        namespace: section.namespace.clone(),
        server,
    };
    let mut params = ListParams::default();
    if let Some(sel) = &section.pod_selector {
        params = params.labels(sel);
    }
    let mut tick = tokio::time::interval(section.metrics_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let sent = match api.list(&params).await {
            Ok(list) => {
                if std::mem::take(&mut failing) {
                    let _ = tx.send(Observed::Note(EventKind::GapEnd {
                        source: source.name.into(),
                    }));
                }
                list.items
                    .iter()
                    .filter_map(pod_usage)
                    .try_for_each(|(pod, cpu, mem)| {
                        tx.send(Observed::Note(EventKind::PodMetrics {
                            pod,
                            cpu_millicores: cpu,
                            memory_bytes: mem,
                        }))
                        .map_err(|_| ())
                    })
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                let _ = tx.send(Observed::Note(permission_denied(&source, "list", &status)));
                return;
            }
            Err(e) if !failing => {
                failing = true;
                tx.send(Observed::Note(EventKind::GapStart {
                    source: source.name.into(),
                    reason: format!(
                        "metrics API at {}: {}",
                        source.server,
                        super::watch::describe(&e)
                    ),
                }))
                .map_err(|_| ())
            }
            Err(_) => Ok(()),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Scrapes every known pod's xiu API every `xiu_stats_interval`. `pods` is kept current by the
/// recorder. A pod that does not answer gets one warning until it answers again.
pub async fn poll_xiu_stats(
    client: Client,
    section: KubeSection,
    mut pods: watch::Receiver<Vec<String>>,
    tx: UnboundedSender<Observed>,
) {
    let base = Request::new(format!("/api/v1/namespaces/{}/pods", section.namespace));
    let mut tick = tokio::time::interval(section.xiu_stats_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing: BTreeSet<String> = BTreeSet::new();
    loop {
        tick.tick().await;
        let names = pods.borrow_and_update().clone();
        for pod in names {
            let path = format!(
                "{pod}:{}/proxy/api/query_whole_streams?top=100",
                section.xiu_api_port
            );
            let Ok(req) = base.get(&path, &GetParams::default()) else {
                continue;
            };
            let answer =
                tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await;
            let note = match answer
                .map_err(|_| "timed out after 5s".to_string())
                .and_then(|r| {
                    r.map_err(|e| match e {
                        kube::Error::Api(s) if s.code == 403 => {
                            "permission denied: get pods/proxy".to_string()
                        }
                        other => other.to_string(),
                    })
                }) {
                Ok(body) => match parse_xiu_streams(&body) {
                    Ok(s) => {
                        failing.remove(&pod);
                        Some(EventKind::XiuStats {
                            pod: pod.clone(),
                            streams: s.streams,
                            subscribers: s.subscribers,
                            recv_kbps: s.recv_kbps,
                            send_kbps: s.send_kbps,
                        })
                    }
                    Err(e) => warn_once(&mut failing, &pod, e.to_string()),
                },
                Err(e) => warn_once(&mut failing, &pod, e.to_string()),
            };
            if let Some(n) = note
                && tx.send(Observed::Note(n)).is_err()
            {
                return;
            }
        }
    }
}

fn warn_once(failing: &mut BTreeSet<String>, pod: &str, message: String) -> Option<EventKind> {
    failing.insert(pod.to_string()).then(|| EventKind::Warning {
        source: format!("xiu-stats/{pod}"),
        message: format!("xiu API of pod {pod} did not answer: {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_metrics_sum_containers() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
            "metadata": {"name": "xiu-edge-a"}, "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
            "containers": [
                {"name": "xiu", "usage": {"cpu": "250m", "memory": "100Mi"}},
                {"name": "tini", "usage": {"cpu": "1500u", "memory": "1Mi"}}
            ]
        }))
        .unwrap();
        assert_eq!(
            pod_usage(&obj),
            Some(("xiu-edge-a".into(), 251.5, 101 << 20))
        );
    }

    #[test]
    fn xiu_streams_empty_object_and_entries() {
        let empty = parse_xiu_streams(r#"{"error_code":0,"desp":"succ","data":{}}"#).unwrap();
        assert_eq!((empty.streams, empty.subscribers), (0, 0));
        let one = parse_xiu_streams(
            r#"{"error_code":0,"desp":"succ","data":[{"publisher":{"recv_bitrate(kbits/s)":2100},
            "subscriber_count":3,"subscribers":{"a":{"send_bitrate(kbits/s)":2000},"b":{"send_bitrate(kbits/s)":1000}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            one,
            XiuSummary {
                streams: 1,
                subscribers: 3,
                recv_kbps: 2100.0,
                send_kbps: 3000.0
            }
        );
        assert!(matches!(
            parse_xiu_streams("<html>"),
            Err(XiuStatsError::NotJson(_))
        ));
        let refused = parse_xiu_streams(r#"{"error_code":-1,"desp":"no such app"}"#).unwrap_err();
        assert_eq!(refused.to_string(), r#"xiu error: "no such app""#);
        let odd = parse_xiu_streams(r#"{"error_code":0,"data":7}"#).unwrap_err();
        assert_eq!(odd.to_string(), "unexpected data: 7");
    }
}

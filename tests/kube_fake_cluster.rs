//! The cluster watcher against an in-process fake API server (tests/support/fake_apiserver.rs)
//! reached through a generated kubeconfig, as a user's cluster would be. A scripted timeline (HPA
//! 1 → 3 → 1 with SuccessfulRescale events, failing readiness probes, an OOMKilled restart, a
//! `410 Gone`, a dropped watch, a 403 on PodMetrics) is checked end to end: recorded timeline,
//! journal, correlations and expectation verdicts.
//!
//! `real_cluster_smoke` needs a real cluster and is ignored by default: run it with
//! `XIULOAD_TEST_NAMESPACE=<ns> cargo test --test kube_fake_cluster -- --ignored` and a kubeconfig
//! whose identity has the Role in deploy/base/rbac-xiuload-watcher.yaml.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use fake_apiserver::FakeApiServer;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
    HorizontalPodAutoscalerStatus,
};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Event as CoreEvent, ObjectReference,
    Pod, PodCondition, PodStatus,
};
use k8s_openapi::api::events::v1::{Event as EventsV1Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use xiuload::clock::RunClock;
use xiuload::k8s::config::{ExpectKind, Expectation, KubeSection, Workload, WorkloadKind};
use xiuload::k8s::timeline::{EventCategory, ProbeKind};
use xiuload::k8s::{ClusterEvent, EventKind, KubeSession, analyse, judge, read_journal};
use xiuload::metrics::timeline::{ProtocolPoint, TimelinePoint};
use xiuload::units::HumanDuration;

const NS: &str = "xiu-test";
const WAIT: Duration = Duration::from_secs(20);

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn hpa(desired: i32, current: i32) -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        metadata: meta("xiu-edge"),
        spec: Some(HorizontalPodAutoscalerSpec {
            min_replicas: Some(1),
            max_replicas: 5,
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: "xiu-edge".into(),
            },
            ..Default::default()
        }),
        status: Some(HorizontalPodAutoscalerStatus {
            desired_replicas: desired,
            current_replicas: Some(current),
            ..Default::default()
        }),
    }
}

fn deployment(replicas: i32, ready: i32) -> Deployment {
    Deployment {
        metadata: meta("xiu-edge"),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            replicas: Some(replicas),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            updated_replicas: Some(replicas),
            ..Default::default()
        }),
    }
}

fn pod(name: &str, ready: bool, restarts: i32, last_reason: Option<&str>) -> Pod {
    let cond = |t: &str| PodCondition {
        type_: t.into(),
        status: if ready { "True" } else { "False" }.into(),
        ..Default::default()
    };
    Pod {
        metadata: meta(name),
        spec: None,
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![cond("Ready"), cond("ContainersReady")]),
            container_statuses: Some(vec![ContainerStatus {
                name: "xiu".into(),
                image: "ghcr.io/example/xiu:0.14.0".into(),
                image_id: String::new(),
                ready,
                restart_count: restarts,
                last_state: last_reason.map(|r| ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        reason: Some(r.into()),
                        exit_code: 137,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// One Event as both APIs show it (same stored object, same uid).
fn event(
    fake: &FakeApiServer,
    uid: &str,
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
    count: i32,
) {
    // Happening now: Events last seen before the watch began are history to the recorder.
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut m = meta(&format!("{name}.{uid}"));
    m.uid = Some(uid.into());
    let regarding = ObjectReference {
        kind: Some(kind.into()),
        name: Some(name.into()),
        namespace: Some(NS.into()),
        ..Default::default()
    };
    fake.apply(
        "events",
        &CoreEvent {
            metadata: m.clone(),
            involved_object: regarding.clone(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            count: Some(count),
            last_timestamp: Some(Time(now)),
            type_: Some("Normal".into()),
            ..Default::default()
        },
    );
    fake.apply(
        "events.k8s.io",
        &EventsV1Event {
            metadata: m,
            regarding: Some(regarding),
            reason: Some(reason.into()),
            note: Some(message.into()),
            event_time: Some(MicroTime(now)),
            series: (count > 1).then_some(EventSeries {
                count,
                last_observed_time: MicroTime(now),
            }),
            ..Default::default()
        },
    );
}

fn section(kubeconfig: &std::path::Path) -> KubeSection {
    let mut s = KubeSection::new(NS);
    s.kubeconfig = Some(kubeconfig.to_path_buf());
    s.edge = Some(Workload {
        kind: WorkloadKind::Deployment,
        name: "xiu-edge".into(),
    });
    s.metrics_interval = HumanDuration::secs(1);
    s.xiu_stats = false;
    s
}

/// Recorded events as they arrive, kept so a wait also finds events that arrived while waiting
/// for another (watchers run concurrently; their order is not the script's).
struct Waiter {
    rx: broadcast::Receiver<ClusterEvent>,
    seen: Vec<ClusterEvent>,
}

impl Waiter {
    fn new(session: &KubeSession) -> Waiter {
        Waiter {
            rx: session.subscribe(),
            seen: Vec::new(),
        }
    }

    /// Everything from here on happens after this mark.
    fn mark(&self) -> usize {
        self.seen.len()
    }

    /// Waits (bounded) for an event matching `pred` at or after `mark`.
    async fn wait_for(
        &mut self,
        mark: usize,
        what: &str,
        pred: impl Fn(&EventKind) -> bool,
    ) -> ClusterEvent {
        if let Some(e) = self.seen[mark..].iter().find(|e| pred(&e.kind)) {
            return e.clone();
        }
        let (rx, seen) = (&mut self.rx, &mut self.seen);
        tokio::time::timeout(WAIT, async {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        seen.push(e.clone());
                        if pred(&e.kind) {
                            return e;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => panic!("lagged by {n} events"),
                    Err(broadcast::error::RecvError::Closed) => {
                        panic!("session ended while waiting for {what}")
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out after {WAIT:?} waiting for {what}; seen: {seen:#?}",
                seen = self.seen
            )
        })
    }
}

fn desired(n: u32) -> impl Fn(&EventKind) -> bool {
    move |k| matches!(k, EventKind::Hpa { desired_replicas, .. } if *desired_replicas == n)
}

fn seed(fake: &FakeApiServer) {
    fake.apply("horizontalpodautoscalers", &hpa(1, 1));
    fake.apply("deployments", &deployment(1, 1));
    fake.apply("pods", &pod("xiu-edge-a", true, 0, None));
    // Not ours: must not show up.
    fake.apply("pods", &pod("unrelated-0", true, 3, Some("Error")));
    fake.set_pod_metrics(&[
        ("xiu-edge-a", "900m", "200Mi"),
        ("unrelated-0", "1m", "1Mi"),
    ]);
    // Events last for an hour: one from before the run is history, not a probe failure of it.
    let an_hour_ago =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(3600);
    let mut m = meta("xiu-edge-a.old");
    m.uid = Some("old-liveness".into());
    fake.apply(
        "events",
        &CoreEvent {
            metadata: m,
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("xiu-edge-a".into()),
                namespace: Some(NS.into()),
                ..Default::default()
            },
            reason: Some("Unhealthy".into()),
            message: Some("Liveness probe failed: connection refused".into()),
            count: Some(7),
            last_timestamp: Some(Time(an_hour_ago)),
            ..Default::default()
        },
    );
}

/// Load, built after the fact on the same clock: 10 viewers, 100 from `step`, 0 from `drop`, and 4
/// player errors just after `down` (the scale-down).
fn load(step: f64, drop_t: f64, down: f64, end: f64) -> Vec<TimelinePoint> {
    let mut out = Vec::new();
    let mut t = 0.1;
    while t <= end + 1.0 {
        let v = if t < step {
            10
        } else if t < drop_t {
            100
        } else {
            0
        };
        let errors = if t > down && t <= down + 0.1 + 1e-9 {
            4
        } else {
            0
        };
        out.push(TimelinePoint {
            t: (t * 10.0f64).round() / 10.0,
            mbps_in: v as f64 * 2.0,
            errors,
            players: [(
                "flv".to_string(),
                ProtocolPoint {
                    active: v,
                    mbps: v as f64 * 2.0,
                    errors,
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        });
        t += 0.1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_cluster_timeline_is_recorded_correlated_and_judged() {
    let fake = FakeApiServer::start(NS).await;
    seed(&fake);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let clock = RunClock::start_now();
    let session = KubeSession::start(&section(&kubeconfig), clock, dir.path())
        .await
        .unwrap();
    let mut w = Waiter::new(&session);

    // Initial state through the first lists.
    let m = w.mark();
    w.wait_for(m, "HPA at 1", desired(1)).await;
    w.wait_for(
        m,
        "pod a metrics",
        |k| matches!(k, EventKind::PodMetrics { pod, .. } if pod == "xiu-edge-a"),
    )
    .await;

    // The load steps up; the HPA reacts. The sleeps are the script's clock (a baseline, then the
    // HPA's reaction time, which the correlation must measure), not synchronisation.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let step = clock.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = w.mark();
    fake.apply("horizontalpodautoscalers", &hpa(3, 1));
    event(
        &fake,
        "rescale-up",
        "HorizontalPodAutoscaler",
        "xiu-edge",
        "SuccessfulRescale",
        "New size: 3; reason: cpu resource utilization (percentage of request) above target",
        1,
    );
    let up = w.wait_for(m, "HPA at 3", desired(3)).await;
    w.wait_for(
        m,
        "rescale event",
        |k| matches!(k, EventKind::K8sEvent { reason, .. } if reason == "SuccessfulRescale"),
    )
    .await;
    let m = w.mark();
    fake.apply("deployments", &deployment(3, 1));
    fake.apply("pods", &pod("xiu-edge-b", false, 0, None));
    fake.apply("pods", &pod("xiu-edge-c", false, 0, None));
    // Pod c fails its readiness probe, three times (one Event, its count going up).
    event(
        &fake,
        "probe-c",
        "Pod",
        "xiu-edge-c",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
        1,
    );
    event(
        &fake,
        "probe-c",
        "Pod",
        "xiu-edge-c",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
        3,
    );
    fake.apply("pods", &pod("xiu-edge-b", true, 0, None));
    fake.apply("deployments", &deployment(3, 2));
    w.wait_for(m, "probe count 3", |k| {
        matches!(k, EventKind::K8sEvent { count: 3, .. })
    })
    .await;
    w.wait_for(m, "2 ready", |k| {
        matches!(k, EventKind::Workload { ready: 2, .. })
    })
    .await;

    // The pods watch's history is compacted: 410 Gone, relist, gap marked. Pod c becomes ready
    // meanwhile and must still be seen (through the relist).
    let m = w.mark();
    fake.expire("pods");
    fake.apply("pods", &pod("xiu-edge-c", true, 0, None));
    w.wait_for(
        m,
        "pods gap end",
        |k| matches!(k, EventKind::GapEnd { source } if source == "pods"),
    )
    .await;
    // Pod a is OOMKilled under the load.
    let m = w.mark();
    fake.apply("pods", &pod("xiu-edge-a", true, 1, Some("OOMKilled")));
    w.wait_for(m, "OOM restart", |k| {
        matches!(k, EventKind::PodRestart { .. })
    })
    .await;
    let m = w.mark();
    fake.apply("deployments", &deployment(3, 3));
    w.wait_for(m, "3 ready", |k| {
        matches!(k, EventKind::Workload { ready: 3, .. })
    })
    .await;

    // The HPA watch connection drops. kube-rs treats a cut stream like a watch timeout and
    // re-watches from the last resourceVersion, so nothing is lost and no gap is marked: the next
    // change arrives through the resumed watch.
    let hpa_watch = ["horizontalpodautoscalers", "watch=true"];
    let watches = fake.count_requests(&hpa_watch);
    fake.drop_watches("horizontalpodautoscalers");
    fake.wait_for_requests(&hpa_watch, watches, WAIT).await;

    // The load goes away; the HPA scales down and two pods go.
    // The load holds a little longer, then goes away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let drop_t = clock.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = w.mark();
    fake.apply("horizontalpodautoscalers", &hpa(1, 3));
    event(
        &fake,
        "rescale-down",
        "HorizontalPodAutoscaler",
        "xiu-edge",
        "SuccessfulRescale",
        "New size: 1; reason: All metrics below target",
        1,
    );
    let down = w.wait_for(m, "HPA back at 1", desired(1)).await;
    let m = w.mark();
    fake.delete("pods", "xiu-edge-b");
    fake.delete("pods", "xiu-edge-c");
    fake.apply("deployments", &deployment(1, 1));
    w.wait_for(
        m,
        "pod c deleted",
        |k| matches!(k, EventKind::PodDeleted { pod } if pod == "xiu-edge-c"),
    )
    .await;
    w.wait_for(m, "1 ready", |k| {
        matches!(k, EventKind::Workload { ready: 1, .. })
    })
    .await;

    let stopping = Instant::now();
    let timeline = session.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_millis(500),
        "stop took {:?}",
        stopping.elapsed()
    );

    // --- The recorded timeline.
    let kinds: Vec<&EventKind> = timeline.events.iter().map(|e| &e.kind).collect();
    assert!(matches!(kinds[0], EventKind::Session { namespace, .. } if namespace == NS));
    let hpa_desired: Vec<u32> = kinds
        .iter()
        .filter_map(|k| match k {
            EventKind::Hpa {
                desired_replicas, ..
            } => Some(*desired_replicas),
            _ => None,
        })
        .collect();
    assert_eq!(hpa_desired, [1, 3, 1]);
    let rescales: Vec<&EventCategory> = kinds
        .iter()
        .filter_map(|k| match k {
            EventKind::K8sEvent {
                reason, category, ..
            } if reason == "SuccessfulRescale" => Some(category),
            _ => None,
        })
        .collect();
    // Seen through both Event APIs, recorded once each.
    assert_eq!(rescales.len(), 2, "{rescales:?}");
    assert!(matches!(
        rescales[0],
        EventCategory::Rescale {
            new_size: Some(3),
            ..
        }
    ));
    let probe_lines: Vec<(u32, u32)> = kinds
        .iter()
        .filter_map(|k| match k {
            EventKind::K8sEvent {
                count,
                new,
                category:
                    EventCategory::Unhealthy {
                        probe: Some(ProbeKind::Readiness),
                    },
                ..
            } => Some((*count, *new)),
            _ => None,
        })
        .collect();
    assert_eq!(probe_lines, [(1, 1), (3, 2)]);
    assert!(kinds.iter().any(
        |k| matches!(k, EventKind::PodStatus { pod, ready: true, .. } if pod == "xiu-edge-c")
    ));
    assert!(kinds.iter().any(|k| matches!(k, EventKind::GapStart { source, reason } if source == "pods" && reason.contains("410"))));
    assert!(
        !kinds
            .iter()
            .any(|k| format!("{k:?}").contains("unrelated-0")),
        "pods outside the workloads leak in"
    );
    // Everything recorded is in the journal, in order.
    let journal = read_journal(&dir.path().join("cluster.jsonl")).unwrap();
    assert_eq!(journal, timeline);

    // --- Correlations.
    let end = clock.elapsed().as_secs_f64();
    let load = load(step, drop_t, down.at.t, end);
    let report = analyse(&timeline, &load);
    assert_eq!(
        report.scale_decisions.len(),
        2,
        "{:#?}",
        report.scale_decisions
    );
    let reaction = &report.scale_ups[0];
    let after = reaction.decision_after_s.expect("load step found");
    assert!(
        (after - (up.at.t - step)).abs() < 0.2 && after >= 0.0,
        "reaction {after}s"
    );
    assert!(
        reaction.first_pod_ready_t.is_some() && reaction.all_ready_t.is_some(),
        "{reaction:?}"
    );
    assert_eq!(report.scale_decisions[0].per_pod_viewers, Some(100.0));
    assert!(report.flapping.is_empty());
    let oom = report
        .incidents
        .iter()
        .find(|i| i.kind == "oom_killed")
        .expect("OOM incident");
    assert_eq!(oom.object, "xiu-edge-a");
    assert_eq!(oom.pod_memory_bytes, Some(200 << 20));
    assert_eq!(oom.pod_cpu_millicores, Some(900.0));
    assert_eq!(report.totals.probe_failures, 3);
    assert_eq!(report.scale_downs[0].viewers_disconnected, 4);
    assert!(
        report
            .gaps
            .iter()
            .any(|g| g.source == "pods" && g.end.is_some())
    );
    assert!(report.permission_denied.is_empty());

    // --- Verdicts: one passing, one failing, with evidence.
    let scale_up = Expectation {
        replicas: Some(3),
        within: Some(HumanDuration::secs(60)),
        after_stage: Some(1),
        ..Expectation::new(ExpectKind::ScaleUp)
    };
    let no_oom = Expectation {
        kind: ExpectKind::NoOomKilled,
        replicas: None,
        within: None,
        after_stage: None,
        ..scale_up.clone()
    };
    let stages = [Duration::ZERO, Duration::from_secs_f64(step)];
    let verdicts = judge(
        &[scale_up, no_oom],
        Some(&report),
        &load,
        &stages,
        xiuload::scenario::fault::FaultRecord::NONE,
    );
    assert!(verdicts[0].pass, "{:?}", verdicts[0]);
    assert!(
        verdicts[0].evidence.contains("3 ready at t="),
        "{}",
        verdicts[0].evidence
    );
    assert!(!verdicts[1].pass);
    assert!(
        verdicts[1]
            .evidence
            .contains("xiu-edge-a (200 MiB before, 100 viewers)"),
        "{}",
        verdicts[1].evidence
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_pod_metrics_names_the_permission_and_the_rest_goes_on() {
    let fake = FakeApiServer::start(NS).await;
    fake.forbid("podmetrics");
    fake.forbid("events.k8s.io");
    seed(&fake);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let session = KubeSession::start(&section(&kubeconfig), RunClock::start_now(), dir.path())
        .await
        .unwrap();
    let mut w = Waiter::new(&session);
    let m = w.mark();
    let denied = w
        .wait_for(m, "permission denied", |k| {
            matches!(k, EventKind::PermissionDenied { resource, .. } if resource == "pods.metrics.k8s.io")
        })
        .await;
    match &denied.kind {
        EventKind::PermissionDenied {
            verb,
            resource,
            namespace,
            message,
        } => {
            assert_eq!(
                (verb.as_str(), resource.as_str(), namespace.as_str()),
                ("list", "pods.metrics.k8s.io", NS)
            );
            assert!(
                message
                    .contains("missing permission: list pods.metrics.k8s.io in namespace xiu-test"),
                "{message}"
            );
        }
        _ => unreachable!(),
    }
    // Watching goes on without metrics.
    let m = w.mark();
    fake.apply("horizontalpodautoscalers", &hpa(2, 1));
    w.wait_for(m, "HPA at 2", desired(2)).await;
    // core/v1 Events still arrive although events.k8s.io/v1 is refused.
    event(
        &fake,
        "probe-x",
        "Pod",
        "xiu-edge-a",
        "Unhealthy",
        "Startup probe failed: timeout",
        1,
    );
    w.wait_for(m, "core Event", |k| {
        matches!(
            k,
            EventKind::K8sEvent {
                category: EventCategory::Unhealthy {
                    probe: Some(ProbeKind::Startup)
                },
                ..
            }
        )
    })
    .await;
    let timeline = session.stop().await;
    let report = analyse(&timeline, &[]);
    let mut refused: Vec<(&str, &str)> = report
        .permission_denied
        .iter()
        .map(|d| (d.verb.as_str(), d.resource.as_str()))
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        [
            ("list", "events.events.k8s.io"),
            ("list", "pods.metrics.k8s.io")
        ]
    );
    assert!(
        !timeline
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PodMetrics { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_proxy_scrapes_a_real_local_xiu() {
    let bin = xiuload::local::find_xiu_binary(None).unwrap_or_else(|e| panic!("{e}"));
    let xiu = xiuload::local::LocalXiu::start(&bin, 2, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeApiServer::start(NS).await;
    fake.set_xiu_upstream(xiu.ports.api);
    seed(&fake);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let mut s = section(&kubeconfig);
    s.xiu_stats = true;
    s.xiu_stats_interval = HumanDuration::secs(1);
    let session = KubeSession::start(&s, RunClock::start_now(), dir.path())
        .await
        .unwrap();
    let mut w = Waiter::new(&session);
    let m = w.mark();
    let stats = w
        .wait_for(m, "xiu stats", |k| matches!(k, EventKind::XiuStats { .. }))
        .await;
    // No publisher: xiu answers `"data": {}`, which is zero streams, not an error.
    assert!(
        matches!(&stats.kind, EventKind::XiuStats { pod, streams: 0, subscribers: 0, .. } if pod == "xiu-edge-a"),
        "{stats:?}"
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.contains("/pods/xiu-edge-a:8000/proxy/api/query_whole_streams?top=100"))
    );
    session.stop().await;
    xiu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_command_uses_kubeconfig_env_and_writes_reports() {
    let fake = FakeApiServer::start(NS).await;
    seed(&fake);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let scenario = dir.path().join("s.toml");
    std::fs::write(
        &scenario,
        format!(
            "[run]\nduration = \"10s\"\n[target]\nflv_base = \"http://127.0.0.1:9\"\n\
             [[players]]\nname = \"v\"\nprotocol = \"flv\"\nstreams = [\"s\"]\ncount = 1\n\
             [kube]\nnamespace = \"{NS}\"\nedge = {{ name = \"xiu-edge\" }}\nxiu_stats = false\nmetrics_interval = \"1s\"\n\
             [[expect]]\nkind = \"no_oom_killed\"\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_xiuload"))
        .args(["watch", "--scenario"])
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .args(["--duration", "3s"])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(WAIT, status)
        .await
        .expect("watch finishes")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let journal = read_journal(&out.join("cluster.jsonl")).unwrap();
    assert!(journal.events.iter().any(|e| matches!(
        e.kind,
        EventKind::Hpa {
            desired_replicas: 1,
            ..
        }
    )));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cluster-report.json")).unwrap()).unwrap();
    assert_eq!(report["expectations"][0]["pass"], true);
    assert!(
        std::fs::read_to_string(out.join("cluster-summary.md"))
            .unwrap()
            .contains("no container OOMKilled")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_outage_is_a_marked_gap_and_watching_resumes() {
    let fake = FakeApiServer::start(NS).await;
    seed(&fake);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let session = KubeSession::start(&section(&kubeconfig), RunClock::start_now(), dir.path())
        .await
        .unwrap();
    let mut w = Waiter::new(&session);
    let m = w.mark();
    w.wait_for(m, "HPA at 1", desired(1)).await;
    let m = w.mark();
    fake.outage();
    let gap = w
        .wait_for(m, "HPA gap", |k| {
            matches!(k, EventKind::GapStart { source, .. } if source == "horizontalpodautoscalers")
        })
        .await;
    // The cluster moves on while we cannot see it.
    fake.apply("horizontalpodautoscalers", &hpa(2, 1));
    let m = w.mark();
    fake.restore().await;
    let back = w.wait_for(m, "HPA at 2 after the outage", desired(2)).await;
    let end = w
        .wait_for(
            m,
            "HPA gap end",
            |k| matches!(k, EventKind::GapEnd { source } if source == "horizontalpodautoscalers"),
        )
        .await;
    assert!(gap.at.t < end.at.t && (end.at.t - back.at.t).abs() < 0.5);
    let timeline = session.stop().await;
    let report = analyse(&timeline, &[]);
    let g = report
        .gaps
        .iter()
        .find(|g| g.source == "horizontalpodautoscalers")
        .unwrap();
    assert!(g.end.is_some(), "{g:?}");
    assert_eq!(
        report.scale_decisions.len(),
        1,
        "the change made during the outage is seen"
    );
}

/// A real `xiuload run` loads a local xiu while the watcher scrapes that xiu through the fake
/// API server's pod proxy; the run's timeline joins the cluster timeline by wall clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_run_is_seen_through_the_pod_proxy_and_joins_the_cluster_timeline() {
    let bin = xiuload::local::find_xiu_binary(None).unwrap_or_else(|e| panic!("{e}"));
    let xiu = xiuload::local::LocalXiu::start(&bin, 2, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeApiServer::start(NS).await;
    fake.set_xiu_upstream(xiu.ports.api);
    seed(&fake);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let mut s = section(&kubeconfig);
    s.xiu_stats = true;
    s.xiu_stats_interval = HumanDuration::secs(1);
    let session = KubeSession::start(&s, RunClock::start_now(), dir.path())
        .await
        .unwrap();
    let mut w = Waiter::new(&session);
    let scenario = dir.path().join("load.toml");
    std::fs::write(
        &scenario,
        format!(
            "[run]\nduration = \"12s\"\n[target]\nrtmp_publish = \"rtmp://127.0.0.1:{}\"\nflv_base = \"http://127.0.0.1:{}\"\n\
             [[publishers]]\nname = \"cams\"\nstream = \"cam-{{i}}\"\ncount = 1\nvideo = {{ bitrate = \"500kbps\" }}\n\
             [[players]]\nname = \"v\"\nprotocol = \"flv\"\npublishers = \"cams\"\ncount = 3\n",
            xiu.ports.rtmp, xiu.ports.flv
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_xiuload"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let m = w.mark();
    let serving = w
        .wait_for(m, "xiu serving the run's viewers", |k| {
            matches!(k, EventKind::XiuStats { pod, streams: 1, subscribers, .. } if pod == "xiu-edge-a" && *subscribers >= 3)
        })
        .await;
    // The HPA adds a pod; the proxy shows it serving (it reaches the same xiu).
    let m = w.mark();
    fake.apply("horizontalpodautoscalers", &hpa(2, 1));
    // The new pod comes after the decision, as the Deployment controller makes it.
    w.wait_for(m, "HPA at 2", desired(2)).await;
    fake.apply("pods", &pod("xiu-edge-b", true, 0, None));
    fake.apply("deployments", &deployment(2, 2));
    w.wait_for(m, "pod b serving", |k| {
        matches!(k, EventKind::XiuStats { pod, subscribers, .. } if pod == "xiu-edge-b" && *subscribers > 0)
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(60), run.wait_with_output())
        .await
        .expect("the run ends")
        .unwrap()
        .status;
    assert!(
        status.success(),
        "xiuload run: {status}; xiu log:\n{}",
        xiu.log_tail()
    );
    let timeline = session.stop().await;
    xiu.stop().await;

    let load = xiuload::metrics::timeline::read_timeline(&out.join("timeline.jsonl")).unwrap();
    let load = xiuload::k8s::correlate::rebase_load(&load, timeline.start_unix_ms);
    let at_serving =
        xiuload::k8s::correlate::load_at(&load, serving.at.t).expect("load at that time");
    assert_eq!(at_serving.viewers, 3, "{at_serving:?}");
    let report = analyse(&timeline, &load);
    let up = &report.scale_ups[0];
    assert!(
        up.first_serving_t.is_some() && up.first_pod_ready_t.is_some(),
        "{up:?}"
    );
    assert_eq!(
        report.scale_decisions[0].per_pod_viewers,
        Some(3.0),
        "{:#?} {:#?}",
        report.scale_decisions,
        report.replicas
    );
}

/// Needs a real cluster: `XIULOAD_TEST_NAMESPACE=<ns>` and a kubeconfig (or in-cluster config).
#[tokio::test]
#[ignore = "needs cluster"]
async fn real_cluster_smoke() {
    let ns = std::env::var("XIULOAD_TEST_NAMESPACE").expect("set XIULOAD_TEST_NAMESPACE");
    let mut s = KubeSection::new(&ns);
    s.pod_selector = Some("app=xiu".into());
    s.edge = Some(Workload {
        kind: WorkloadKind::Deployment,
        name: "xiu-edge".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let session = KubeSession::start(&s, RunClock::start_now(), dir.path())
        .await
        .unwrap();
    let mut w = Waiter::new(&session);
    let m = w.mark();
    w.wait_for(m, "any HPA", |k| matches!(k, EventKind::Hpa { .. }))
        .await;
    let timeline = session.stop().await;
    assert!(
        timeline
            .events
            .iter()
            .all(|e| !matches!(e.kind, EventKind::PermissionDenied { .. })),
        "{timeline:#?}"
    );
}

/// `xiuload run` with `[kube]`: the watcher runs on the run's clock, and report.json and
/// summary.md carry the cluster analysis and the `[[expect]]` verdicts, which decide the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_kube_section_reports_cluster_and_expectations() {
    let fake = FakeApiServer::start(NS).await;
    seed(&fake);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let xiu = xiuload::local::LocalXiu::start(
        &xiuload::local::find_xiu_binary(None).unwrap_or_else(|e| panic!("{e}")),
        2,
        None,
    )
    .await
    .unwrap();
    let p = xiu.ports;
    let text = format!(
        r#"
[run]
duration = "6s"
[target]
rtmp_publish = "rtmp://127.0.0.1:{rtmp}"
flv_base = "http://127.0.0.1:{flv}"
[[publishers]]
name = "cams"
stream = "kube-run"
count = 1
[[players]]
name = "viewers"
protocol = "flv"
publishers = "cams"
ramp = [{{ duration = "1s", target = 0 }}, {{ duration = "5s", target = 2 }}]
[kube]
namespace = "{NS}"
kubeconfig = "{kubeconfig}"
edge = {{ kind = "deployment", name = "xiu-edge" }}
metrics_interval = "1s"
xiu_stats = false
[[expect]]
kind = "max_restarts"
max = 0
[[expect]]
kind = "scale_up"
replicas = 3
within = "2s"
after = "0s"
"#,
        rtmp = p.rtmp,
        flv = p.flv,
        kubeconfig = kubeconfig.display()
    );
    let scenario = xiuload::scenario::parse(std::path::Path::new("kube-run.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("out");
    let outcome = xiuload::run::run(
        scenario,
        xiuload::run::RunOptions {
            scenario_file: "kube-run.toml".into(),
            out_dir: Some(out.clone()),
            status_line: false,
            metrics_addr: None,
            ..Default::default()
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    xiu.stop().await;
    let r = &outcome.report;
    assert!(r.cluster.is_some(), "no cluster analysis in the report");
    assert_eq!(r.expectations.len(), 2, "{:?}", r.expectations);
    // No restarts happened; the HPA stayed at 1, so the scale-up expectation fails with evidence.
    assert!(r.expectations[0].pass, "{:?}", r.expectations[0]);
    assert!(!r.expectations[1].pass, "{:?}", r.expectations[1]);
    assert!(!r.expectations[1].evidence.is_empty());
    assert_eq!(r.verdict, xiuload::report::model::Verdict::Fail);
    assert!(out.join("cluster.jsonl").exists());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(json["cluster"].is_object() && json["expectations"].is_array());
    // The player group really ran beside the watcher.
    assert!(r.players[0].summary.frames > 0);
    // The watcher's per-pod data feeds `xiuload hpa-replay`.
    let replay: xiuload::hpa::replay::ReplayInput =
        serde_json::from_str(&std::fs::read_to_string(out.join("hpa-input.json")).unwrap())
            .unwrap();
    assert!(
        !replay.samples.is_empty(),
        "no PodMetrics polls in hpa-input.json"
    );
    assert!(replay.samples.iter().any(|s| {
        s.pods
            .iter()
            .any(|p| p.name == "xiu-edge-a" && p.cpu_millicores.is_some())
    }));
    // `xiuload report <dir>` rebuilds the cluster analysis from cluster.jsonl + timeline.jsonl.
    std::fs::remove_file(out.join("report.html")).unwrap();
    xiuload::report::rebuild::rebuild(&out).unwrap();
    let rebuilt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(rebuilt["expectations"].as_array().map(Vec::len), Some(2));
    assert_eq!(rebuilt["verdict"], "fail");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("Replicas"),
        "the HTML report draws the cluster"
    );
}

/// Runs `xiuload watch` for `duration` with `KUBECONFIG=kubeconfig`; returns (exit code,
/// stdout, stderr).
async fn watch_cli(
    dir: &std::path::Path,
    kubeconfig: &std::path::Path,
    scenario_text: &str,
    duration: &str,
) -> (Option<i32>, String, String) {
    let scenario = dir.join("watch.toml");
    std::fs::write(&scenario, scenario_text).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xiuload"))
        .args(["watch", "--scenario"])
        .arg(&scenario)
        .arg("--out")
        .arg(dir.join("out"))
        .args(["--duration", duration])
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("watch finishes")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn watch_only(expect: &str) -> String {
    format!(
        "[kube]\nnamespace = \"{NS}\"\nedge = {{ name = \"xiu-edge\" }}\nxiu_stats = false\nmetrics_interval = \"1s\"\n{expect}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_against_a_closed_port_is_inconclusive_and_names_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = watch_cli(
        dir.path(),
        &kubeconfig,
        &watch_only(
            "[[expect]]\nkind = \"no_oom_killed\"\n[[expect]]\nkind = \"max_restarts\"\nmax = 0\n",
        ),
        "2s",
    )
    .await;
    assert_eq!(
        code,
        Some(xiuload::exit::INCONCLUSIVE),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("INCONCLUSIVE"), "{stdout}");
    let journal = std::fs::read_to_string(dir.path().join("out/cluster.jsonl")).unwrap();
    assert!(
        journal.contains(&format!("127.0.0.1:{port}"))
            && journal.to_lowercase().contains("connection refused"),
        "a gap names the API server and the cause: {journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_kubeconfig_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("broken-kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\nclusters: [[[\n").unwrap();
    let (code, _, stderr) = watch_cli(
        dir.path(),
        &kubeconfig,
        &watch_only("[[expect]]\nkind = \"no_oom_killed\"\n"),
        "1s",
    )
    .await;
    assert_eq!(code, Some(xiuload::exit::RUNTIME_FAILURE), "{stderr}");
    assert!(
        stderr.contains(&kubeconfig.display().to_string()),
        "the error names the file: {stderr}"
    );
    assert!(!stderr.contains("not running in a pod"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_and_hpa_that_never_appear_are_warned_about_and_inconclusive() {
    // The namespace is empty: no edge Deployment, no HPA, no pod.
    let fake = FakeApiServer::start(NS).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let (code, stdout, stderr) = watch_cli(
        dir.path(),
        &kubeconfig,
        &watch_only(
            "[[expect]]\nkind = \"no_oom_killed\"\n[[expect]]\nkind = \"no_flapping\"\n\
             [[expect]]\nkind = \"max_viewers_dropped_per_scale_down\"\nmax = 0\n",
        ),
        "2s",
    )
    .await;
    assert_eq!(
        code,
        Some(xiuload::exit::INCONCLUSIVE),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("warning: cluster watch: Deployment xiu-edge not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no HorizontalPodAutoscaler targets the watched workloads"),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/cluster-report.json")).unwrap())
            .unwrap();
    for e in report["expectations"].as_array().unwrap() {
        assert_eq!(e["status"], "inconclusive", "{e}");
        assert_eq!(e["pass"], false, "{e}");
    }
    assert!(
        report["expectations"][2]["inconclusive"]
            .as_str()
            .unwrap()
            .contains("no load"),
        "{}",
        report["expectations"][2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_setup_does_not_shift_the_cluster_against_the_load() {
    // A local xiu that takes 2 s to start: setup is slow, as a real xiu start or a slow
    // kubeconfig can be. The cluster record and the load must still share one time zero.
    let fake = FakeApiServer::start(NS).await;
    seed(&fake);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let real_xiu = xiuload::local::find_xiu_binary(None).unwrap_or_else(|e| panic!("{e}"));
    let slow_xiu = dir.path().join("slow-xiu");
    std::fs::write(
        &slow_xiu,
        format!("#!/bin/sh\nsleep 2\nexec '{}' \"$@\"\n", real_xiu.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&slow_xiu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = format!(
        r#"
[run]
duration = "4s"
[target.local]
xiu_bin = "{xiu}"
[[publishers]]
name = "cams"
stream = "slow-setup"
count = 1
[[players]]
name = "viewers"
protocol = "flv"
publishers = "cams"
count = 1
[kube]
namespace = "{NS}"
kubeconfig = "{kubeconfig}"
edge = {{ kind = "deployment", name = "xiu-edge" }}
metrics_interval = "1s"
xiu_stats = false
"#,
        xiu = slow_xiu.display(),
        kubeconfig = kubeconfig.display()
    );
    let scenario = xiuload::scenario::parse(std::path::Path::new("slow.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("out");
    let before_setup_ms = xiuload::clock::unix_micros_now() / 1000;
    let outcome = xiuload::run::run(
        scenario,
        xiuload::run::RunOptions {
            scenario_file: "slow.toml".into(),
            out_dir: Some(out.clone()),
            status_line: false,
            metrics_addr: None,
            ..Default::default()
        },
        std::future::pending(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let start = outcome.report.run.start_unix_ms;
    assert!(
        start >= before_setup_ms + 2000,
        "time zero is when the load starts, after the 2 s setup: zero {start}, setup began {before_setup_ms}"
    );
    let journal = read_journal(&out.join("cluster.jsonl")).unwrap();
    assert_eq!(
        journal.start_unix_ms, start,
        "the cluster watcher and the load share one time zero"
    );
    // The same wall instant is the same t on both sides.
    let load = xiuload::metrics::timeline::read_timeline(&out.join("timeline.jsonl")).unwrap();
    assert!(!load.is_empty());
    for p in &load {
        assert!(
            (p.wall_ms as i64 - start as i64 - (p.t * 1000.0).round() as i64).abs() <= 1,
            "{p:?}"
        );
    }
    for e in &journal.events {
        assert!(
            (e.at.wall_ms as i64 - start as i64 - (e.at.t * 1000.0).round() as i64).abs() <= 1,
            "{e:?}"
        );
    }
}

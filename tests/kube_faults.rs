//! Cluster faults end to end: a run with `[kube]` against the in-process fake API server
//! (tests/support/fake_apiserver.rs) and load on a real local xiu, with one `delete_pod`, one
//! `rollout_restart` and one `scale`. The API server must see the requests kubectl would send for
//! the same commands, at the faults' moments, and the report must say each fault was done.

mod common;
#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use fake_apiserver::FakeApiServer;
use serde_json::json;
use std::time::{Duration, SystemTime};
use xiuload::scenario::fault::{FaultAction, FaultOutcome};

const NS: &str = "xiu-faults";

fn seed(fake: &FakeApiServer) {
    fake.apply(
        "deployments",
        &json!({"metadata": {"name": "xiu-edge"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "xiu-edge"}},
                         "template": {"metadata": {"labels": {"app": "xiu-edge"}}}}}),
    );
    fake.apply(
        "statefulsets",
        &json!({"metadata": {"name": "xiu-origin"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "xiu-origin"}}}}),
    );
    // Listed out of name order: "one" pod is the first by name, not the first listed.
    for (name, app) in [
        ("xiu-edge-b", "xiu-edge"),
        ("xiu-edge-a", "xiu-edge"),
        ("xiu-origin-0", "xiu-origin"),
    ] {
        fake.apply(
            "pods",
            &json!({"metadata": {"name": name, "labels": {"app": app}},
                    "status": {"phase": "Running"}}),
        );
    }
}

/// When the first request line containing every one of `parts` came.
fn when(fake: &FakeApiServer, parts: &[&str]) -> std::time::Instant {
    fake.timed_requests()
        .into_iter()
        .find(|(_, line)| parts.iter().all(|p| line.contains(p)))
        .unwrap_or_else(|| panic!("no request with {parts:?}: {:#?}", fake.requests()))
        .0
}

/// Runs a scenario of `duration` with one publisher, `[kube]` on the fake API server (edge
/// Deployment, origin StatefulSet) and `rest` (players, faults) against a real local xiu.
async fn run_with_kube(fake: &FakeApiServer, duration: &str, rest: &str) -> xiuload::run::Outcome {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let xiu = common::start_xiu().await;
    let text = format!(
        r#"
[run]
duration = "{duration}"
{target}
[[publishers]]
name = "cams"
stream = "faults"
count = 1
[kube]
namespace = "{NS}"
kubeconfig = "{kubeconfig}"
edge = {{ kind = "deployment", name = "xiu-edge" }}
origin = {{ kind = "statefulset", name = "xiu-origin" }}
metrics_interval = "1s"
xiu_stats = false
{rest}"#,
        target = common::remote_target(&xiu),
        kubeconfig = kubeconfig.display()
    );
    let outcome = common::run(&text, &dir.path().join("out")).await;
    xiu.stop().await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_faults_send_kubectls_requests_at_their_moments() {
    let fake = FakeApiServer::start(NS).await;
    seed(&fake);
    let started = SystemTime::now();
    let outcome = run_with_kube(
        &fake,
        "7s",
        r#"
[[players]]
name = "viewers"
protocol = "flv"
publishers = "cams"
count = 2
[[fault]]
at = "2s"
action = "delete_pod"
target = "edge"
[[fault]]
at = "3s"
action = "rollout_restart"
target = "edge"
[[fault]]
at = "4s"
action = "scale"
target = "origin"
replicas = 2
"#,
    )
    .await;

    // The report: each fault done, at its moment on the run clock.
    let faults = &outcome.report.faults;
    let actions: Vec<FaultAction> = faults.iter().map(|f| f.action).collect();
    assert_eq!(
        actions,
        [
            FaultAction::DeletePod,
            FaultAction::RolloutRestart,
            FaultAction::Scale
        ]
    );
    for (f, due) in faults.iter().zip([2.0, 3.0, 4.0]) {
        assert_eq!(f.outcome, FaultOutcome::Done, "{f}");
        assert!((f.at_s - due).abs() < 0.5, "{f} was due at {due}s");
    }

    // delete_pod: the workload's selector, its pods, the first of them by name.
    let ns_pods = format!("/api/v1/namespaces/{NS}/pods");
    when(
        &fake,
        &["GET /apis/apps/v1/namespaces/xiu-faults/deployments/xiu-edge"],
    );
    when(&fake, &["GET ", &ns_pods, "labelSelector=app%3Dxiu-edge"]);
    let deleted = when(&fake, &[&format!("DELETE {ns_pods}/xiu-edge-a")]);
    assert_eq!(
        fake.count_requests(&["DELETE "]),
        1,
        "one pod only: {:#?}",
        fake.requests()
    );
    let pods: Vec<String> = fake
        .objects("pods")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pods, ["xiu-edge-b", "xiu-origin-0"]);

    // rollout_restart: kubectl's strategic-merge patch of the pod template's annotation.
    let patches = fake.patches();
    assert_eq!(patches.len(), 2, "{patches:#?}");
    let (line, content_type, body) = &patches[0];
    assert!(
        line.starts_with("PATCH /apis/apps/v1/namespaces/xiu-faults/deployments/xiu-edge?"),
        "{line}"
    );
    assert_eq!(content_type, "application/strategic-merge-patch+json");
    let stamp =
        body["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .unwrap_or_else(|| panic!("no restartedAt in {body}"));
    let stamped = humantime::parse_rfc3339(stamp).unwrap();
    let offset = stamped.duration_since(started).unwrap_or_default();
    assert!(
        offset >= Duration::from_secs(1) && offset <= Duration::from_secs(10),
        "restartedAt {stamp} is {offset:?} after the run began"
    );
    let deployment = &fake.objects("deployments")[0];
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        stamp,
        "the stored deployment carries the annotation"
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["app"],
        "xiu-edge"
    );
    let restarted = when(&fake, &["PATCH ", "/deployments/xiu-edge"]);

    // scale: a merge patch of the StatefulSet's /scale subresource.
    let (line, content_type, body) = &patches[1];
    assert!(
        line.starts_with(
            "PATCH /apis/apps/v1/namespaces/xiu-faults/statefulsets/xiu-origin/scale?"
        ),
        "{line}"
    );
    assert_eq!(content_type, "application/merge-patch+json");
    assert_eq!(body, &json!({"spec": {"replicas": 2}}));
    assert_eq!(fake.objects("statefulsets")[0]["spec"]["replicas"], 2);
    let scaled = when(&fake, &["PATCH ", "/statefulsets/xiu-origin/scale"]);

    // The requests came a fault's spacing apart (1 s), not all at once.
    for (earlier, later, gap) in [(deleted, restarted, 1.0), (restarted, scaled, 1.0)] {
        let apart = later.duration_since(earlier).as_secs_f64();
        assert!((apart - gap).abs() < 0.4, "{apart}s apart, expected {gap}s");
    }
    // The load ran beside them.
    assert!(outcome.report.players[0].summary.frames > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cluster_fault_is_recorded_with_the_api_error() {
    let fake = FakeApiServer::start(NS).await;
    seed(&fake);
    fake.forbid("pods");
    let outcome = run_with_kube(
        &fake,
        "3s",
        r#"
[[fault]]
at = "1s"
action = "delete_pod"
target = "edge"
selector = "app=xiu-edge"
"#,
    )
    .await;
    let f = &outcome.report.faults[0];
    assert_eq!(f.outcome, FaultOutcome::Failed, "{f}");
    let error = f.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("/pods") && error.contains("forbidden"),
        "the API's refusal is named: {error}"
    );
    assert_eq!(fake.objects("pods").len(), 3, "nothing was deleted");
}

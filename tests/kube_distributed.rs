//! Distributed runs on Kubernetes, against the in-process fake API server
//! (tests/support/fake_apiserver.rs): `xiuload run` with `[distributed]` creates a ConfigMap and an
//! Indexed Job, the fake starts a real `xiuload worker` process per index on loopback and
//! publishes its Pod, and the coordinator reaches the workers only through the API server's pod
//! proxy, against a real local xiu. Checked: the shards add up to the plan, the merge is exact,
//! and each failure (an unschedulable worker, a worker pod that fails, Ctrl-C, an API server
//! outage) behaves as README "Running bigger than one machine" says.
//!
//! `real_cluster_distributed_run` needs a real cluster and is ignored by default.

mod common;
#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use common::distributed::{figures, read_records, totals};
use fake_apiserver::FakeApiServer;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use xiuload::run::assembler::WindowRecord;

const XIULOAD: &str = env!("CARGO_BIN_EXE_xiuload");
const NS: &str = "xiuload-test";

/// tests/common's distributed scenario (3 publishers, 12 HTTP-FLV and 6 RTMP viewers for
/// `seconds`) over 3 worker pods.
fn scenario(xiu: &xiuload::local::LocalXiu, seconds: u32, schedule_timeout: &str) -> String {
    format!(
        "{}\n[distributed]\nworkers = 3\nnamespace = \"{NS}\"\nschedule_timeout = \"{schedule_timeout}\"\n",
        common::distributed::scenario(xiu, seconds)
    )
}

struct Cluster {
    fake: FakeApiServer,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn cluster() -> Cluster {
    let fake = FakeApiServer::start(NS).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    Cluster {
        fake,
        dir,
        kubeconfig,
    }
}

impl Cluster {
    fn out(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Starts `xiuload run` on `text` with this cluster's kubeconfig.
    fn run(&self, text: &str, extra: &[&str]) -> tokio::process::Child {
        let file = self.dir.path().join("scenario.toml");
        std::fs::write(&file, text).unwrap();
        tokio::process::Command::new(XIULOAD)
            .arg("run")
            .arg(&file)
            .args(["--quiet", "--out", self.out().to_str().unwrap()])
            .args(extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("XIU_BIN", common::xiu_bin())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// The one Job the run created (its name is the run id's).
    fn job_name(&self) -> String {
        let workers = self.fake.workers();
        assert!(!workers.is_empty(), "no Job was created");
        workers[0].job.clone()
    }

    fn worker_records(&self, index: u32) -> Vec<WindowRecord> {
        read_records(
            &self
                .fake
                .job_dir(&self.job_name())
                .join(format!("worker-{index}.windows.jsonl")),
        )
    }

    /// The coordinator's merged windows hold exactly what the 3 workers sent; returns those.
    fn assert_merge_is_exact(&self) -> Vec<WindowRecord> {
        let every: Vec<WindowRecord> = (0..3).flat_map(|w| self.worker_records(w)).collect();
        assert_eq!(
            figures(&read_records(&self.out().join("windows.jsonl"))),
            figures(&every)
        );
        every
    }

    /// Neither the Job, nor its ConfigMap, nor a pod is left, and no worker process runs.
    fn assert_cleaned_up(&self) {
        assert_eq!(self.fake.objects("jobs"), Vec::<serde_json::Value>::new());
        assert_eq!(
            self.fake.objects("configmaps"),
            Vec::<serde_json::Value>::new()
        );
        assert_eq!(self.fake.objects("pods"), Vec::<serde_json::Value>::new());
        for w in self.fake.workers() {
            if let Some(pid) = w.pid {
                assert!(!alive(pid), "worker {} (pid {pid}) still runs", w.index);
            }
        }
    }
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry: its state letter says it is dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
}

/// Waits for the coordinator to end (bounded); its exit status and stderr.
async fn finish(mut child: tokio::process::Child, limit: Duration) -> (ExitStatus, String) {
    let mut stderr = child.stderr.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let read = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut sink).await;
    });
    let status = tokio::time::timeout(limit, child.wait())
        .await
        .expect("xiuload did not exit in time")
        .unwrap();
    (status, read.await.unwrap())
}

/// Waits (bounded) until `path` holds at least `lines` lines: the run has measured that much.
async fn lines_in(path: &Path, lines: usize, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while std::fs::read_to_string(path).map_or(0, |t| t.lines().count()) < lines {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not reach {lines} lines",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_pods_make_the_plans_load_and_merge_it_exactly() {
    let xiu = common::start_xiu().await;
    let c = cluster().await;
    let run = c.run(&scenario(&xiu, 10, "60s"), &[]);
    let (status, stderr) = finish(run, Duration::from_secs(120)).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("created Job xiuload-distributed-"),
        "{stderr}"
    );

    // The shards add up to the plan at every steady second, and nothing went missing.
    let out = c.out();
    let timeline = xiuload::metrics::timeline::read_timeline(&out.join("timeline.jsonl")).unwrap();
    let steady: Vec<_> = timeline.iter().filter(|p| p.t > 4.0 && p.t < 9.5).collect();
    assert!(steady.len() >= 4, "{timeline:?}");
    for p in &steady {
        assert_eq!(p.publishers, 3, "t={}", p.t);
        assert_eq!(p.players["flv"].active, 12, "t={}", p.t);
        assert_eq!(p.players["rtmp"].active, 6, "t={}", p.t);
        assert!(p.workers_missing.is_empty(), "t={}", p.t);
    }

    // The merge is exact: what the coordinator merged is what the workers sent.
    let every = c.assert_merge_is_exact();
    let workers: Vec<Vec<WindowRecord>> = (0..3).map(|w| c.worker_records(w)).collect();
    let (players, publishers) = totals(&every);
    assert!(players[0].frames > 0 && players[1].frames > 0);
    assert_eq!(publishers[0].sessions, 3, "each stream published once");
    for (w, records) in workers.iter().enumerate() {
        assert_eq!(totals(records).1[0].sessions, 1, "worker {w}: one stream");
        assert!(
            records.last().unwrap().last,
            "worker {w} sent its last window"
        );
    }
    let report = common::read_json(&out.join("report.json"));
    assert_eq!(report["run"]["workers"], 3);
    assert!(
        report["loader"]["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["lost_at_s"].is_null())
    );

    // Every worker was reached through the pod proxy: started with one time zero, read from.
    let job = c.job_name();
    for w in c.fake.workers() {
        let proxy = format!("/pods/{}:9470/proxy/", w.pod);
        assert_eq!(
            c.fake
                .count_requests(&["POST", &proxy, "start?at_unix_ms="]),
            1,
            "{}",
            w.pod
        );
        assert!(c.fake.count_requests(&["GET", &proxy, "windows?after="]) > 5);
        assert!(w.pod.starts_with(&format!("{job}-{}-", w.index)));
    }
    c.assert_cleaned_up();
    drop(xiu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unschedulable_worker_stops_the_run_before_load_naming_the_pod_and_the_scheduler() {
    let xiu = common::start_xiu().await;
    let c = cluster().await;
    c.fake.set_unschedulable(true);
    let run = c.run(&scenario(&xiu, 10, "2s"), &[]);
    let (status, stderr) = finish(run, Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(3), "{stderr}");
    let pod = &c.fake.workers()[0].pod;
    assert!(
        stderr.contains(&format!("worker 0: pod {pod} cannot be scheduled: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu")),
        "{stderr}"
    );
    assert!(stderr.contains("not all ready within 2s"), "{stderr}");
    // No load: no window was merged, and the error report says why.
    let out = c.out();
    assert_eq!(
        std::fs::read_to_string(out.join("windows.jsonl")).unwrap(),
        ""
    );
    let report = common::read_json(&out.join("report.json"));
    assert!(
        report.to_string().contains("cannot be scheduled"),
        "{report}"
    );
    c.assert_cleaned_up();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_leaves_the_job_and_config_map_for_their_logs() {
    let xiu = common::start_xiu().await;
    let c = cluster().await;
    c.fake.set_unschedulable(true);
    let run = c.run(&scenario(&xiu, 10, "1s"), &["--keep"]);
    let (status, stderr) = finish(run, Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(3), "{stderr}");
    let job = c.job_name();
    assert!(
        stderr.contains(&format!("kept Job and ConfigMap {job}")),
        "{stderr}"
    );
    assert_eq!(c.fake.objects("jobs").len(), 1);
    assert_eq!(c.fake.objects("configmaps").len(), 1);
    assert_eq!(c.fake.objects("pods").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pod_that_fails_mid_run_is_lost_and_the_load_short() {
    let xiu = common::start_xiu().await;
    let c = cluster().await;
    let run = c.run(&scenario(&xiu, 12, "60s"), &[]);
    let out = c.out();
    lines_in(&out.join("timeline.jsonl"), 4, Duration::from_secs(90)).await;
    let victim = c.fake.workers().into_iter().find(|w| w.index == 1).unwrap();
    // The process dies as an OOM kill ends it: the pod goes Failed.
    unsafe { libc::kill(victim.pid.unwrap() as i32, libc::SIGKILL) };
    let (status, stderr) = finish(run, Duration::from_secs(90)).await;
    assert_eq!(status.code(), Some(4), "inconclusive: {stderr}");
    assert!(
        stderr.contains(&format!(
            "worker 1 pod {} failed: Error (exit 137)",
            victim.pod
        )) || stderr.contains(&format!("worker 1 is gone: pod {}", victim.pod)),
        "{stderr}"
    );

    let report = common::read_json(&out.join("report.json"));
    let lost_at = report["loader"]["workers"][1]["lost_at_s"]
        .as_f64()
        .expect("worker 1 lost");
    assert!((3.0..12.0).contains(&lost_at), "{report}");
    assert!(report["loader"]["workers"][0]["lost_at_s"].is_null());
    assert!(report["loader"]["workers"][2]["lost_at_s"].is_null());
    assert_eq!(report["verdict"], "inconclusive");
    assert!(
        report["verdict_reasons"]
            .to_string()
            .contains("worker 1 was lost"),
        "{}",
        report["verdict_reasons"]
    );
    // What it sent before is in the merge: the survivors' windows and a prefix of its own.
    let survivors: Vec<WindowRecord> = [0, 2].iter().flat_map(|w| c.worker_records(*w)).collect();
    common::distributed::assert_merged_survivors_and_what_the_dead_sent(
        &read_records(&out.join("windows.jsonl")),
        &survivors,
        &c.worker_records(1),
    );
    c.assert_cleaned_up();
    drop(xiu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_workers_merges_what_they_measured_and_deletes_the_job() {
    let xiu = common::start_xiu().await;
    let c = cluster().await;
    let run = c.run(&scenario(&xiu, 60, "60s"), &[]);
    let out = c.out();
    lines_in(&out.join("timeline.jsonl"), 3, Duration::from_secs(90)).await;
    unsafe { libc::kill(run.id().unwrap() as i32, libc::SIGINT) };
    let (status, stderr) = finish(run, Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(130), "{stderr}");
    let report = common::read_json(&out.join("report.json"));
    assert_eq!(report["run"]["stopped_by"], "interrupted");
    assert!(report["run"]["duration_s"].as_f64().unwrap() < 30.0);
    for w in 0..3 {
        assert!(
            c.worker_records(w).last().unwrap().last,
            "worker {w} was told to stop and said it had"
        );
    }
    let every = c.assert_merge_is_exact();
    assert!(totals(&every).0[0].frames > 0);
    assert_eq!(c.fake.count_requests(&["POST", "/proxy/stop"]), 3);
    c.assert_cleaned_up();
    drop(xiu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_outage_mid_run_is_caught_up_from_the_workers_buffers() {
    let xiu = common::start_xiu().await;
    let c = cluster().await;
    let run = c.run(&scenario(&xiu, 16, "60s"), &[]);
    let out = c.out();
    lines_in(&out.join("timeline.jsonl"), 4, Duration::from_secs(90)).await;
    // The API server is away for a few seconds (a control-plane restart): the workers go on.
    c.fake.outage();
    let merged_before = read_records(&out.join("windows.jsonl")).len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let merged_during = read_records(&out.join("windows.jsonl")).len();
    c.fake.restore().await;
    let (status, stderr) = finish(run, Duration::from_secs(90)).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    // Nothing was merged while the workers could not be reached (at most the second in flight).
    assert!(
        merged_during <= merged_before + 1,
        "{merged_before} -> {merged_during}"
    );
    assert!(stderr.contains("answers again after"), "{stderr}");

    // No worker lost, no second without one, and the merge holds every window they sent.
    let timeline = xiuload::metrics::timeline::read_timeline(&out.join("timeline.jsonl")).unwrap();
    assert!(
        timeline.iter().all(|p| p.workers_missing.is_empty()),
        "{timeline:?}"
    );
    // One merged window a worker's window: no second skipped or merged twice.
    let merged = read_records(&out.join("windows.jsonl")).len();
    for w in 0..3 {
        assert_eq!(c.worker_records(w).len(), merged, "worker {w}");
    }
    c.assert_merge_is_exact();
    let report = common::read_json(&out.join("report.json"));
    assert!(
        report["loader"]["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["lost_at_s"].is_null()),
        "{}",
        report["loader"]["workers"]
    );
    // The gap is marked even though it was caught up: the report says who was out of reach when.
    let notes = report["notes"].to_string();
    assert!(notes.contains("could not be reached from t="), "{notes}");
    c.assert_cleaned_up();
    drop(xiu);
}

#[test]
fn render_prints_the_config_map_and_the_indexed_job() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    let text = "[run]\nduration = \"30s\"\n[target]\nflv_base = \"http://127.0.0.1:8081\"\nrtmp_publish = \"rtmp://127.0.0.1:1935\"\n\
                [[publishers]]\nname = \"cams\"\nstream = \"cam-{i}\"\ncount = 2\n\
                [[players]]\nname = \"v\"\nprotocol = \"flv\"\npublishers = \"cams\"\ncount = 8\n";
    std::fs::write(&file, text).unwrap();
    let render = |args: &[&str]| {
        std::process::Command::new(XIULOAD)
            .arg("render")
            .arg(&file)
            .args(args)
            .output()
            .unwrap()
    };
    let none = render(&[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no [distributed] section"));

    let output = render(&["--workers", "4", "--run-id", "nightly-7"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).unwrap();
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "{yaml}");
    assert_eq!(docs[0]["kind"], "ConfigMap");
    assert_eq!(docs[0]["data"]["scenario.toml"], text);
    assert_eq!(docs[1]["kind"], "Job");
    assert_eq!(docs[1]["metadata"]["name"], "xiuload-nightly-7");
    assert_eq!(
        docs[1]["metadata"]["labels"]["xiuload.io/run-id"],
        "nightly-7"
    );
    assert_eq!(docs[1]["spec"]["completions"], 4);
    assert_eq!(docs[1]["spec"]["completionMode"], "Indexed");
    // What a user renders, the workers can read: the scenario in the ConfigMap validates.
    std::fs::write(
        dir.path().join("back.toml"),
        docs[0]["data"]["scenario.toml"].as_str().unwrap(),
    )
    .unwrap();
    xiuload::scenario::load(&dir.path().join("back.toml")).unwrap();

    let bad = render(&["--workers", "0"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Needs a real cluster: `XIULOAD_TEST_NAMESPACE=<ns>`, a kubeconfig whose identity has the Role of
/// deploy/components/xiuload-coordinator, `XIULOAD_TEST_FLV_BASE`/`XIULOAD_TEST_RTMP_PUBLISH` of a
/// xiu the cluster's pods reach, and `XIULOAD_TEST_IMAGE`, an image of this build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs cluster"]
async fn real_cluster_distributed_run() {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("set {k}"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenario.toml");
    std::fs::write(
        &file,
        format!(
            "[run]\nduration = \"30s\"\n[target]\nflv_base = \"{}\"\nrtmp_publish = \"{}\"\n\
             [[publishers]]\nname = \"cams\"\nstream = \"dist-{{i}}\"\ncount = 2\n\
             [[players]]\nname = \"v\"\nprotocol = \"flv\"\npublishers = \"cams\"\ncount = 20\n\
             [distributed]\nworkers = 2\nnamespace = \"{}\"\nimage = \"{}\"\n",
            env("XIULOAD_TEST_FLV_BASE"),
            env("XIULOAD_TEST_RTMP_PUBLISH"),
            env("XIULOAD_TEST_NAMESPACE"),
            env("XIULOAD_TEST_IMAGE"),
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let output = tokio::process::Command::new(XIULOAD)
        .arg("run")
        .arg(&file)
        .args(["--quiet", "--out", out.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = common::read_json(&out.join("report.json"));
    assert_eq!(report["run"]["workers"], 2);
    assert_eq!(report["publishers"][0]["whole_run"]["sessions"], 2);
}

#[test]
fn the_staging_example_splits_8000_viewers_over_8_workers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/staging-distributed.toml");
    let s = xiuload::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let d = s.distributed.as_ref().expect("[distributed]");
    assert_eq!(d.workers, 8);
    let viewers: u32 = s
        .players
        .iter()
        .map(|g| xiuload::scenario::max_slots(g.count, g.ramp.as_deref()))
        .sum();
    assert_eq!(viewers, 8000);
    // Each worker's share is what one machine holds (about 1000 HTTP-FLV viewers).
    let share = xiuload::scenario::shard::Shard::new(0, d.workers)
        .unwrap()
        .share_of(viewers);
    assert_eq!(share, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pod_deleted_mid_run_is_lost() {
    let xiu = common::start_xiu().await;
    let c = cluster().await;
    let run = c.run(&scenario(&xiu, 10, "60s"), &[]);
    lines_in(&c.out().join("timeline.jsonl"), 4, Duration::from_secs(90)).await;
    let victim = c.fake.workers().into_iter().find(|w| w.index == 2).unwrap();
    // Drained off its node, or deleted by hand: the pod goes, and its process with it.
    c.fake.delete("pods", &victim.pod);
    let (status, stderr) = finish(run, Duration::from_secs(90)).await;
    assert_eq!(status.code(), Some(4), "inconclusive: {stderr}");
    assert!(
        stderr.contains(&format!("worker 2 is gone: pod {} was deleted", victim.pod)),
        "{stderr}"
    );
    let report = common::read_json(&c.out().join("report.json"));
    assert!(
        report["loader"]["workers"][2]["lost_at_s"]
            .as_f64()
            .is_some()
    );
    assert!(report["loader"]["workers"][0]["lost_at_s"].is_null());
    c.assert_cleaned_up();
    drop(xiu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_waiting_for_workers_deletes_what_was_created() {
    let xiu = common::start_xiu().await;
    let c = cluster().await;
    c.fake.set_unschedulable(true);
    let run = c.run(&scenario(&xiu, 10, "5m"), &[]);
    // The coordinator watches the run's pods once it has created the Job: it is waiting.
    c.fake
        .wait_for_requests(
            &["GET", "/pods?", "labelSelector=xiuload.io"],
            0,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(c.fake.objects("pods").len(), 3);
    unsafe { libc::kill(run.id().unwrap() as i32, libc::SIGINT) };
    let (status, stderr) = finish(run, Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted before the run's time zero"),
        "{stderr}"
    );
    c.assert_cleaned_up();
}

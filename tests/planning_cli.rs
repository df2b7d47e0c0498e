//! The planning subcommands as users run them: `report`, `hpa-replay`, `compare`, with their
//! outputs and exit codes. Fixtures: tests/fixtures/report (a real local-smoke run),
//! tests/fixtures/report-b (the same run edited: error_rate fixed, flv latency −20 %, an
//! expectation added), tests/fixtures/hpa (a hand-written cluster run's `hpa-input.json` and HPA
//! specs).

use std::path::{Path, PathBuf};
use std::process::Command;

fn xiuload() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xiuload"))
}

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn report_rebuilds_html_and_summary_with_cluster_data() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("report"), dir.path());
    // What `xiuload watch --out <run dir>` leaves beside a run without [kube].
    let watched = serde_json::json!({
        "cluster": {
            "namespace": "xiu", "workloads": ["xiu-edge"],
            "replicas": [{"t": 0.0, "workload": "xiu-edge", "desired": 2, "current": 2, "ready": 1, "load": null}],
            "scale_decisions": [], "scale_ups": [], "scale_downs": [],
            "incidents": [{"t": 3.0, "kind": "ProbeFailed", "object": "pod/xiu-edge-0", "probe": null,
                           "count": 1, "message": "readyz 503", "load": null,
                           "pod_cpu_millicores": null, "pod_memory_bytes": null}],
            "experience_windows": [], "flapping": [], "gaps": [], "permission_denied": [],
            "totals": {"probe_failures": 1, "restarts": 0, "oom_killed": 0, "metric_failures": 0}
        },
        "expectations": []
    });
    std::fs::write(
        dir.path().join("cluster-report.json"),
        serde_json::to_vec(&watched).unwrap(),
    )
    .unwrap();
    let out = xiuload().arg("report").arg(dir.path()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("data-title=\"Replicas\""));
    assert!(html.contains("ProbeFailed"));
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.starts_with("# xiuload run `local-smoke`: FAIL"), "{md}");
}

#[test]
fn report_on_a_missing_or_unfinished_run_dir_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = xiuload()
        .arg("report")
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("report.json"));
    std::fs::write(
        dir.path().join("report.json"),
        "{\"schema_version\": 1, \"status\": \"running\"}",
    )
    .unwrap();
    let out = xiuload().arg("report").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not finished"));
}

#[test]
fn hpa_replay_prints_a_table_and_writes_html_and_json() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("hpa/run"), dir.path());
    let out = xiuload()
        .arg("hpa-replay")
        .arg(dir.path())
        .arg("--hpa")
        .arg(fixture("hpa/cpu-70-default.yaml"))
        .arg("--hpa")
        .arg(fixture("hpa/cpu-50-fast-down.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| t (s) | actual | cpu-70-default | cpu-50-fast-down |"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("hpa-replay.json")).unwrap())
            .unwrap();
    let specs = json["specs"].as_array().unwrap();
    assert_eq!(specs.len(), 2);
    let max = |i: usize| {
        specs[i]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_u64().unwrap())
            .max()
            .unwrap()
    };
    // Peak 2400m on 500m requests: 70 % needs ceil(2400 / 350) = 7 pods, 50 % needs 10.
    assert_eq!((max(0), max(1)), (7, 10));
    let html = std::fs::read_to_string(dir.path().join("hpa-replay.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("cpu-50-fast-down"));
}

#[test]
fn hpa_replay_bad_yaml_or_missing_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("hpa/run"), dir.path());
    let out = xiuload()
        .arg("hpa-replay")
        .arg(dir.path())
        .args(["--hpa".as_ref(), fixture("hpa/bad.yaml").as_os_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yaml"));
    let empty = tempfile::tempdir().unwrap();
    let out = xiuload()
        .arg("hpa-replay")
        .arg(empty.path())
        .args([
            "--hpa".as_ref(),
            fixture("hpa/cpu-70-default.yaml").as_os_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hpa-input.json"));
}

#[test]
fn compare_shows_deltas_and_verdict_changes_and_writes_compare_md() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = xiuload()
        .arg("compare")
        .arg(fixture("report"))
        .arg(fixture("report-b"))
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| fixed | threshold `error_rate (all)` | FAIL | pass |"),
        "{stdout}"
    );
    assert!(stdout.contains("| new | expectation `scales out within 60 s` | – | pass |"));
    assert!(stdout.contains("| flv | latency p99 ms | 1244 | 995 | -249 | -20 % | better |"));
    let md = std::fs::read_to_string(out_dir.path().join("compare.md")).unwrap();
    assert_eq!(md.trim(), stdout.trim());
    let out = xiuload()
        .arg("compare")
        .arg(fixture("report"))
        .arg(out_dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn hpa_replay_into_a_closed_pipe_exits_quietly() {
    // `xiuload hpa-replay ... | head -0`: the reader is gone before the table is printed.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("hpa/run"), dir.path());
    let mut child = xiuload()
        .arg("hpa-replay")
        .arg(dir.path())
        .arg("--hpa")
        .arg(fixture("hpa/cpu-70-default.yaml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

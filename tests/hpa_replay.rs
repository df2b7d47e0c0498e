//! `xiuload hpa-replay` as users run it, against hand-written inputs in tests/fixtures/hpa:
//! `spike/` (one pod using its whole CPU request for 45 s) and `idle/` (ten pods at 1 % for three
//! minutes), with HPA specs beside them. The replica counts asserted are what kube-controller-
//! manager's HPA controller does with such input (see src/hpa/algorithm.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hpa")
        .join(p)
}

/// Runs `hpa-replay` on a copy of fixture run `run` (the command writes into the run directory).
fn replay(run: &str, args: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture(run).join("hpa-input.json"),
        dir.path().join("hpa-input.json"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xiuload"))
        .arg("hpa-replay")
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    (out, dir)
}

fn replicas(dir: &Path) -> Vec<Vec<u64>> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("hpa-replay.json")).unwrap())
            .unwrap();
    json["specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[1].as_u64().unwrap())
                .collect()
        })
        .collect()
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// Without a behavior block the controller doubles (at least +4) per sync: 1 → 4 → 8 → 10. The
// documented default behavior, which only applies when a behavior block exists, gives 1 → 5 → 10.
#[test]
fn spike_ramps_like_the_controller_with_and_without_behavior() {
    let no_behavior = fixture("cpu-10-no-behavior.yaml");
    let with_behavior = fixture("cpu-10-default-behavior.yaml");
    let (out, dir) = replay(
        "spike",
        &[
            "--hpa",
            no_behavior.to_str().unwrap(),
            "--hpa",
            with_behavior.to_str().unwrap(),
        ],
    );
    let table = ok(&out);
    assert!(table.contains("| 0 | 1 | 4 | 5 |"), "{table}");
    assert!(table.contains("| 15 | 1 | 8 | 10 |"), "{table}");
    assert_eq!(
        replicas(dir.path()),
        [vec![4, 8, 10, 10], vec![5, 10, 10, 10]]
    );
}

// The controller's flags are options with its defaults; ten idle pods hold for the whole
// downscale-stabilization window (5 min by default: the three-minute run never scales down), and
// drop once a shorter window has passed.
#[test]
fn controller_flags_change_the_replay_and_are_reported() {
    let spec = fixture("cpu-70-default.yaml");
    let (out, dir) = replay("idle", &["--hpa", spec.to_str().unwrap()]);
    ok(&out);
    assert!(replicas(dir.path())[0].iter().all(|&n| n == 10));
    let (out, dir) = replay(
        "idle",
        &[
            "--hpa",
            spec.to_str().unwrap(),
            "--downscale-stabilization",
            "1m",
            "--sync-period",
            "30s",
            "--tolerance",
            "0.05",
            "--cpu-initialization-period",
            "3m",
            "--initial-readiness-delay",
            "10s",
        ],
    );
    ok(&out);
    // Ticks at 0, 30, 60...: the count found at 0 s leaves the 60 s window at 60 s; minReplicas 2.
    assert_eq!(replicas(dir.path())[0], [10, 10, 2, 2, 2, 2, 2]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("hpa-replay.json")).unwrap())
            .unwrap();
    assert_eq!(json["sync_period_s"], 30.0);
    assert_eq!(json["controller"]["tolerance"], 0.05);
    assert_eq!(json["controller"]["downscale_stabilization_s"], 60.0);
    assert_eq!(json["controller"]["cpu_initialization_period_s"], 180.0);
    assert_eq!(json["controller"]["initial_readiness_delay_s"], 10.0);
}

#[test]
fn bad_controller_flags_exit_2_naming_the_flag() {
    let spec = fixture("cpu-70-default.yaml");
    for (flag, value) in [("--tolerance", "-0.1"), ("--sync-period", "0s")] {
        let arg = format!("{flag}={value}");
        let (out, _dir) = replay("idle", &["--hpa", spec.to_str().unwrap(), &arg]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{stderr}");
    }
}

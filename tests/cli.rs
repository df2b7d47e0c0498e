//! The binary as users run it: exit codes, error messages, signals.

mod common;

use serde::Deserialize;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn xiuload() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xiuload"))
}

#[test]
fn validate_accepts_every_example_scenario() {
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let out = xiuload().arg("validate").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validate_notes_viewers_a_steep_ramp_will_lose_to_xiu_and_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steep.toml");
    std::fs::write(
        &path,
        "[run]\nduration = \"20s\"\n[target]\nflv_base = \"http://127.0.0.1:8080\"\n[[players]]\nname = \"fans\"\nprotocol = \"flv\"\nstreams = [\"hot\"]\nramp = [{ duration = \"2s\", target = 600 }, { duration = \"18s\", target = 600 }]\n",
    )
    .unwrap();
    let out = xiuload().arg("validate").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // 300 joins a second for 2 s on one stream: 300² / 10,000 · 2 = 18 viewers.
    assert!(text.contains("steep.toml: ok"), "{text}");
    assert!(
        text.contains("steep.toml: note: players group \"fans\": expect about 18 viewers"),
        "{text}"
    );
}

#[test]
fn bad_scenario_exits_2_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "[run]\nduration = \"5s\"\n[target.local]\n[[players]]\nname = \"v\"\nprotocol = \"flv\"\nstreams = [\"a\"]\ncount = 1\nstartup_bufer = \"1s\"").unwrap();
    for sub in ["validate", "run"] {
        let out = xiuload().arg(sub).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{sub}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml:9:1"), "{sub}: {err}");
        assert!(err.contains("players[0].startup_bufer"), "{sub}: {err}");
        assert!(err.contains("hint:"), "{sub}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
}

#[test]
fn missing_file_and_bad_flags_exit_2() {
    let out = xiuload()
        .args(["validate", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml"));
    let out = xiuload().args(["run", "--frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = xiuload().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("run") && help.contains("validate") && help.contains("Exit codes"));
}

#[test]
fn unwritable_output_directory_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, "[run]\nduration = \"5s\"\n[target]\nflv_base = \"http://127.0.0.1:9\"\n[[players]]\nname = \"v\"\nprotocol = \"flv\"\nstreams = [\"a\"]\ncount = 1\n").unwrap();
    let started = Instant::now();
    let out = xiuload()
        .args(["run", "--quiet", "--out"])
        .arg(blocker.join("sub"))
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create output directory"));
}

#[test]
fn sigint_mid_run_writes_a_partial_report_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let scenario = dir.path().join("long.toml");
    std::fs::write(
        &scenario,
        "[run]\nduration = \"60s\"\n[target.local]\n[[publishers]]\nname = \"cams\"\ncount = 1\n\
         [[players]]\nname = \"v\"\nprotocol = \"flv\"\npublishers = \"cams\"\n\
         ramp = [{ duration = \"2s\", target = 0 }, { duration = \"58s\", target = 2 }]\n",
    )
    .unwrap();
    let _ = common::xiu_bin();
    let mut child = xiuload()
        .args(["run", "--quiet", "--out"])
        .arg(&out_dir)
        .arg(&scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until players have measured something: the timeline is the run's own
    // progress signal.
    let timeline = out_dir.join("timeline.jsonl");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let frames = xiuload::metrics::timeline::read_timeline(&timeline)
            .map(|t| {
                t.iter()
                    .any(|p| p.players.get("flv").is_some_and(|f| f.mbps > 0.0))
            })
            .unwrap_or(false);
        if frames {
            break;
        }
        assert!(Instant::now() < deadline, "no playback within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let signalled = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let report = common::read_json(&out_dir.join("report.json"));
    let stopped_report_written_in = signalled.elapsed();
    assert_eq!(report["run"]["stopped_by"], "interrupted");
    assert!(report["run"]["duration_s"].as_f64().unwrap() < 60.0);
    assert!(report["players"][0]["frames"].as_u64().unwrap() > 0);
    assert!(
        stopped_report_written_in < Duration::from_secs(4),
        "{stopped_report_written_in:?}"
    );
}

/// The sidecar arguments in deploy/ must be ones this binary accepts: a typo there is a crash loop
/// in every edge pod.
#[test]
fn deploy_sidecar_arguments_parse() {
    use clap::Parser;
    let rendered = Command::new("kubectl")
        .args([
            "kustomize",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/overlays/prod"),
        ])
        .output()
        .expect("kubectl is on the machine");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8(rendered.stdout).unwrap();
    let mut checked = 0;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_json::Value::deserialize(doc).unwrap();
        let containers = value
            .pointer("/spec/template/spec/containers")
            .and_then(|c| c.as_array())
            .cloned()
            .unwrap_or_default();
        for c in containers {
            let args: Vec<String> = c["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if args.first().map(String::as_str) != Some("sidecar") {
                continue;
            }
            let parsed = xiuload::cli::Cli::try_parse_from(
                std::iter::once("xiuload".to_string()).chain(args.clone()),
            );
            assert!(parsed.is_ok(), "{args:?}: {}", parsed.unwrap_err());
            checked += 1;
        }
    }
    assert!(
        checked >= 1,
        "no sidecar container found in deploy/overlays/prod"
    );
}

/// Disk full (issue 14, item 10) on the timeline: every write to it fails with ENOSPC (it is a
/// link to /dev/full). The failure is reported once, the run goes on to its end, and the report
/// and summary still come out.
#[test]
fn a_timeline_on_a_full_disk_is_reported_once_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::os::unix::fs::symlink("/dev/full", out_dir.join("timeline.jsonl")).unwrap();
    let scenario = dir.path().join("s.toml");
    // Nothing listens on port 9: the viewer fails to connect, which is all this run needs.
    std::fs::write(&scenario, "[run]\nduration = \"3s\"\n[target]\nflv_base = \"http://127.0.0.1:9\"\n[[players]]\nname = \"v\"\nprotocol = \"flv\"\nstreams = [\"a\"]\ncount = 1\n").unwrap();
    let out = xiuload()
        .args(["run", "--quiet", "--out"])
        .arg(&out_dir)
        .arg(&scenario)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A verdict (pass or fail), not an output error.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}{stdout}");
    assert_eq!(
        err.matches("No space left on device").count(),
        1,
        "reported once: {err}"
    );
    assert!(err.contains("the run goes on"), "{err}");
    assert!(
        stdout.contains("# xiuload run"),
        "summary on stdout: {stdout}"
    );
    let report = common::read_json(&out_dir.join("report.json"));
    assert_ne!(report["status"], "running");
    assert_eq!(report["run"]["stopped_by"], "completed");
}

#[test]
fn a_run_that_fails_before_load_leaves_an_error_report_not_a_running_one() {
    let dir = tempfile::tempdir().unwrap();
    // A xiu that exists but dies at once: the output directory is there, the load never starts.
    let broken_xiu = dir.path().join("xiu");
    std::fs::write(&broken_xiu, "#!/bin/sh\necho 'config error' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&broken_xiu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(
        &scenario,
        format!(
            "[run]\nduration = \"5s\"\n[target.local]\nxiu_bin = \"{}\"\n[[publishers]]\nname = \"cams\"\ncount = 1\n",
            broken_xiu.display()
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = xiuload()
        .args(["run", "--quiet", "--out"])
        .arg(&out_dir)
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "error", "{report}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("before any load")),
        "{report}"
    );
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(!summary.contains("in progress"), "{summary}");
}

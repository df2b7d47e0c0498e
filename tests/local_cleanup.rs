//! Issue 14 item 9: the local xius a `xiuload run` starts die with it, even when it is SIGKILLed,
//! and the next run removes the working directories such a run could not.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Children of `parent` named `xiu`, from /proc (pid, working directory).
fn xiu_children(parent: u32) -> Vec<(u32, PathBuf)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
        else {
            continue;
        };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm == "xiu" && ppid == Some(parent) {
            let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
            found.push((pid, cwd));
        }
    }
    found
}

/// Alive and not a zombie waiting for its new parent to reap it.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn sigkilled_run_leaves_no_xiu_behind() {
    let bin = common::xiu_bin();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
[run]
duration = "60s"
[target]
app = "live"
[target.local]
xiu_bin = "{}"
edges = 1
[[publishers]]
name = "cams"
stream = "cleanup"
count = 1
video = {{ width = 320, height = 240, fps = 10, bitrate = "200kbps", gop = "1s" }}
[[players]]
name = "v"
protocol = "flv"
publishers = "cams"
count = 1
"#,
            bin.display()
        ),
    )
    .unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_xiuload"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Origin and edge both started: /proc is the only place to see them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let xius = loop {
        let found = xiu_children(run.id());
        if found.len() >= 2 {
            break found;
        }
        assert!(
            Instant::now() < deadline && run.try_wait().unwrap().is_none(),
            "xiuload run did not start its two xius (found {found:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    run.kill().unwrap(); // SIGKILL: no destructor, no signal handler runs
    run.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    while xius.iter().any(|(pid, _)| running(*pid)) {
        assert!(
            Instant::now() < deadline,
            "xiu outlived the SIGKILLed xiuload: {:?}",
            xius.iter().filter(|(p, _)| running(*p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The directories stay (nothing runs at SIGKILL); the next topology start sweeps them.
    let dirs: Vec<&PathBuf> = xius.iter().map(|(_, d)| d).collect();
    assert!(
        dirs.iter().all(|d| d.starts_with(std::env::temp_dir())),
        "{dirs:?}"
    );
    xiuload::local::sweep_stale_dirs();
    for d in dirs {
        assert!(!d.exists(), "{} was not swept", d.display());
    }
}

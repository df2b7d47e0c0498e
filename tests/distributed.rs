//! Distributed runs with real processes: `xiuload run --local-workers N` (a coordinator and N
//! `xiuload worker` processes) and runs split by hand (`--shard`, `--start-at`, `xiuload merge`),
//! against a real xiu on loopback.

mod common;

use common::distributed::{figures, read_records, scenario, totals};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xiuload::run::assembler::WindowRecord;

const XIULOAD: &str = env!("CARGO_BIN_EXE_xiuload");

/// `xiuload run` of `text` with `workers` local workers, its output in `dir/run`.
fn local_workers_run(dir: &Path, text: &str, workers: u32) -> (PathBuf, Command) {
    let out = dir.join("run");
    let file = write_scenario(dir, text);
    let workers = workers.to_string();
    let command = xiuload(&[
        "run",
        file.to_str().unwrap(),
        "--local-workers",
        &workers,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    (out, command)
}

fn write_scenario(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn xiuload(args: &[&str]) -> Command {
    let mut c = Command::new(XIULOAD);
    c.args(args)
        .env("XIU_BIN", common::xiu_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn worker_records(out: &Path, worker: u32) -> Vec<WindowRecord> {
    read_records(&out.join(format!("worker-{worker}.windows.jsonl")))
}

/// The pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && pid != std::process::id() {
            pids.push(pid);
        }
    }
    pids
}

/// Waits (bounded) until `path` holds at least `lines` lines: the run has measured that much.
fn wait_for_lines(path: &Path, lines: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while std::fs::read_to_string(path).map_or(0, |t| t.lines().count()) < lines {
        assert!(
            Instant::now() < deadline,
            "{} did not reach {lines} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "xiuload did not exit in time");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_local_workers_make_the_plans_load_and_merge_it_exactly() {
    let xiu = common::start_xiu().await;
    let dir = tempfile::tempdir().unwrap();
    let (out, mut command) = local_workers_run(dir.path(), &scenario(&xiu, 10), 3);
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");

    // The shards add up to the plan at every steady second, and nothing went missing.
    let timeline = xiuload::metrics::timeline::read_timeline(&out.join("timeline.jsonl")).unwrap();
    let steady: Vec<_> = timeline.iter().filter(|p| p.t > 4.0 && p.t < 9.5).collect();
    assert!(steady.len() >= 4, "{timeline:?}");
    for p in &steady {
        assert_eq!(p.publishers, 3, "t={}", p.t);
        assert_eq!(p.players["flv"].active, 12, "t={}", p.t);
        assert_eq!(p.players["rtmp"].active, 6, "t={}", p.t);
        assert!(p.workers_missing.is_empty());
    }

    // The merge is exact: the coordinator's windows hold what the workers' windows hold, counter
    // for counter and histogram bucket for histogram bucket.
    let workers: Vec<Vec<WindowRecord>> = (0..3).map(|w| worker_records(&out, w)).collect();
    let every: Vec<WindowRecord> = workers.iter().flatten().cloned().collect();
    let merged = read_records(&out.join("windows.jsonl"));
    assert_eq!(figures(&merged), figures(&every));
    let (players, publishers) = totals(&every);
    assert!(players[0].frames > 0 && players[1].frames > 0);
    // Every stream published once: one publisher session per stream, one stream per worker.
    assert_eq!(publishers[0].sessions, 3);
    for (w, records) in workers.iter().enumerate() {
        let (_, p) = totals(records);
        assert_eq!(p[0].sessions, 1, "worker {w} publishes its one stream");
        assert!(
            records.last().unwrap().last,
            "worker {w} sent its last window"
        );
    }

    let report = common::read_json(&out.join("report.json"));
    assert_eq!(report["run"]["workers"], 3);
    let health = report["loader"]["workers"].as_array().unwrap();
    assert_eq!(health.len(), 3);
    let share: f64 = health
        .iter()
        .map(|w| w["load_share"].as_f64().unwrap())
        .sum();
    assert!((share - 1.0).abs() < 1e-9, "{share}");
    assert!(health.iter().all(|w| w["lost_at_s"].is_null()));
    // The workers are gone with the run.
    assert_eq!(
        processes_mentioning(out.to_str().unwrap()),
        Vec::<u32>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_lost_and_the_verdict_says_the_load_was_short() {
    let xiu = common::start_xiu().await;
    let dir = tempfile::tempdir().unwrap();
    let (out, mut command) = local_workers_run(dir.path(), &scenario(&xiu, 12), 3);
    let mut coordinator = command.spawn().unwrap();
    let log = out.join("worker-1.windows.jsonl");
    wait_for_lines(&log, 4, Duration::from_secs(60));
    let victim: Vec<u32> = processes_mentioning(log.to_str().unwrap());
    assert_eq!(victim.len(), 1, "worker 1's process: {victim:?}");
    unsafe { libc::kill(victim[0] as i32, libc::SIGKILL) };
    let status = wait_exit(&mut coordinator, Duration::from_secs(90));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut coordinator.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(4), "inconclusive: {stderr}");
    assert!(stderr.contains("worker 1 is gone"), "{stderr}");

    let report = common::read_json(&out.join("report.json"));
    let lost = &report["loader"]["workers"][1];
    let lost_at = lost["lost_at_s"].as_f64().expect("worker 1 lost");
    assert!((4.0..12.0).contains(&lost_at), "{lost}");
    assert!(report["loader"]["workers"][0]["lost_at_s"].is_null());
    assert!(report["loader"]["workers"][2]["lost_at_s"].is_null());
    let reasons = report["verdict_reasons"].to_string();
    assert!(reasons.contains("worker 1 was lost"), "{reasons}");
    assert_eq!(report["verdict"], "inconclusive");

    // What it sent before it died is in the merge, exactly: the survivors' windows and a prefix
    // of the dead worker's (it may have logged a window it never got to send). After, its
    // seconds are marked missing.
    let survivors: Vec<WindowRecord> = [0, 2]
        .iter()
        .flat_map(|w| worker_records(&out, *w))
        .collect();
    common::distributed::assert_merged_survivors_and_what_the_dead_sent(
        &read_records(&out.join("windows.jsonl")),
        &survivors,
        &worker_records(&out, 1),
    );
    let timeline = xiuload::metrics::timeline::read_timeline(&out.join("timeline.jsonl")).unwrap();
    assert!(
        timeline
            .iter()
            .filter(|p| p.t > lost_at + 0.5)
            .all(|p| p.workers_missing == [1]),
        "{timeline:?}"
    );
    // The survivors ran their shares to the end: 8 of the 12 FLV viewers.
    let late = timeline.iter().rfind(|p| p.t < 11.5).unwrap();
    assert_eq!(late.players["flv"].active, 8, "{late:?}");
    drop(xiu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_workers_and_keeps_what_they_measured() {
    let xiu = common::start_xiu().await;
    let dir = tempfile::tempdir().unwrap();
    let (out, mut command) = local_workers_run(dir.path(), &scenario(&xiu, 60), 2);
    let mut coordinator = command.spawn().unwrap();
    wait_for_lines(&out.join("timeline.jsonl"), 3, Duration::from_secs(60));
    unsafe { libc::kill(coordinator.id() as i32, libc::SIGINT) };
    let status = wait_exit(&mut coordinator, Duration::from_secs(60));
    assert_eq!(status.code(), Some(130));
    let report = common::read_json(&out.join("report.json"));
    assert_eq!(report["run"]["stopped_by"], "interrupted");
    assert!(report["run"]["duration_s"].as_f64().unwrap() < 30.0);
    for w in 0..2 {
        let records = worker_records(&out, w);
        assert!(
            records.last().unwrap().last,
            "worker {w} ended its load and said so"
        );
    }
    let every: Vec<WindowRecord> = (0..2).flat_map(|w| worker_records(&out, w)).collect();
    assert_eq!(
        figures(&read_records(&out.join("windows.jsonl"))),
        figures(&every)
    );
    assert!(totals(&every).0[0].frames > 0);
    assert_eq!(
        processes_mentioning(out.to_str().unwrap()),
        Vec::<u32>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_split_by_hand_merge_into_one_and_strangers_are_refused() {
    let xiu = common::start_xiu().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), &scenario(&xiu, 8));
    let start_at = (xiuload::clock::unix_micros_now() / 1000 + 2000).to_string();
    let part = |shard: &str, name: &str, at: &str| {
        let out = dir.path().join(name);
        let child = xiuload(&[
            "run",
            file.to_str().unwrap(),
            "--shard",
            shard,
            "--start-at",
            at,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
        (out, child)
    };
    let (a, mut a_run) = part("0/2", "a", &start_at);
    let (b, mut b_run) = part("1/2", "b", &start_at);
    for run in [&mut a_run, &mut b_run] {
        let status = wait_exit(run, Duration::from_secs(60));
        assert_eq!(status.code(), Some(0));
    }
    let merged = dir.path().join("merged");
    let output = xiuload(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let every: Vec<WindowRecord> = [&a, &b]
        .iter()
        .flat_map(|d| read_records(&d.join("windows.jsonl")))
        .collect();
    assert_eq!(
        figures(&read_records(&merged.join("windows.jsonl"))),
        figures(&every)
    );
    let timeline =
        xiuload::metrics::timeline::read_timeline(&merged.join("timeline.jsonl")).unwrap();
    let steady = timeline.iter().find(|p| p.t > 5.0 && p.t < 7.5).unwrap();
    assert_eq!(steady.players["flv"].active, 12);
    assert_eq!(steady.publishers, 3);
    let report = common::read_json(&merged.join("report.json"));
    assert_eq!(report["publishers"][0]["whole_run"]["sessions"], 3);

    // A run with another time zero is not part of this one (one in the past: its plan is over
    // as soon as it starts, which is all this needs).
    let stranger_at = (start_at.parse::<u64>().unwrap() - 60_000).to_string();
    let (c, mut c_run) = part("1/2", "c", &stranger_at);
    wait_exit(&mut c_run, Duration::from_secs(60));
    let output = xiuload(&[
        "merge",
        a.to_str().unwrap(),
        c.to_str().unwrap(),
        "--out",
        dir.path().join("bad").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("time zeros"), "{stderr}");
}

/// Per-second latency p50s of the steady part of a run's timeline.
fn steady_p50s(out: &Path, from: f64, to: f64) -> Vec<f64> {
    xiuload::metrics::timeline::read_timeline(&out.join("timeline.jsonl"))
        .unwrap()
        .iter()
        .filter(|p| p.t > from && p.t < to)
        .filter_map(|p| p.players.get("flv").and_then(|f| f.latency_p50_ms))
        .collect()
}

/// How far a run's own per-second figures wander: their range.
fn spread(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::MIN, f64::max);
    let min = xs.iter().copied().fold(f64::MAX, f64::min);
    max - min
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_workers_measure_what_one_process_measures() {
    let xiu = common::start_xiu().await;
    let dir = tempfile::tempdir().unwrap();
    // Both runs at once, on streams of their own, so the machine's load (other tests, the other
    // run) weighs on both alike; what remains between them is the run's own noise.
    let text = scenario(&xiu, 10);
    let start = |name: &str, extra: &[&str]| {
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, text.replace("cam-{i}", &format!("{name}-{{i}}"))).unwrap();
        let out = dir.path().join(name);
        let mut args = vec![
            "run".to_string(),
            file.display().to_string(),
            "--quiet".into(),
            "--out".into(),
            out.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (out, xiuload(&args).spawn().unwrap())
    };
    let (one, mut one_run) = start("one", &[]);
    let (three, mut three_run) = start("three", &["--local-workers", "3"]);
    for (name, run) in [("one", &mut one_run), ("three", &mut three_run)] {
        let status = wait_exit(run, Duration::from_secs(90));
        assert_eq!(status.code(), Some(0), "{name}");
    }
    let (a, b) = (
        common::read_json(&one.join("report.json")),
        common::read_json(&three.join("report.json")),
    );
    // The same plan serves the same sessions, group by group.
    for g in 0..2 {
        assert_eq!(
            a["players"][g]["summary"]["whole_run"]["sessions"],
            b["players"][g]["summary"]["whole_run"]["sessions"],
            "group {g}"
        );
    }
    assert_eq!(
        a["publishers"][0]["whole_run"]["sessions"],
        b["publishers"][0]["whole_run"]["sessions"]
    );
    let p50 = |r: &serde_json::Value| {
        r["protocols"]["flv"]["latency_ms"]["p50_ms"]
            .as_f64()
            .unwrap()
    };
    // Latency p50 agrees within what the two runs' own per-second p50s wander over the steady
    // seconds, twice over: six seconds of each run show only part of how far a run's p50 moves
    // on a shared 2-core machine (either run came out ~0.3 ms ahead, in either direction, with
    // per-second ranges of 0.2–0.3 ms each). A distorted measurement (a worker off the run's
    // clock, latencies merged from the wrong histograms) is off by far more.
    let noise =
        2.0 * (spread(&steady_p50s(&one, 3.5, 9.5)) + spread(&steady_p50s(&three, 3.5, 9.5)));
    let gap = (p50(&a) - p50(&b)).abs();
    eprintln!(
        "p50 {} vs {} ms, gap {gap:.3}, noise {noise:.3}",
        p50(&a),
        p50(&b)
    );
    assert!(
        gap <= noise,
        "p50 one process {} ms vs 3 workers {} ms: {gap:.3} ms apart, noise {noise:.3} ms",
        p50(&a),
        p50(&b)
    );
}

//! Cost of a load generator's viewer: CPU (% of one core) and RSS per HTTP-FLV player and per
//! publisher at 2 Mbit/s, for 100, 500 and 1000 players against a local xiu, beside the same
//! figures for `ffmpeg -i <flv url> -c copy -f null -` players measured in the same way.
//!
//!     cargo bench --bench players            # all sizes
//!     cargo bench --bench players -- 100     # only the listed sizes
//!
//! Prints figures; asserts nothing (targets are judged by a person reading them, see README).
//! CPU is split into user space (the client's own work) and kernel (system calls and the TCP
//! stack; on loopback that includes the server's transmit path that a reader's ACK sets off),
//! for xiuload and ffmpeg alike.

use std::path::Path;
use std::time::Duration;
use xiuload::local::{LocalXiu, find_xiu_binary};
use xiuload::metrics::loader::{parse_user_system_ticks, rss_bytes};
use xiuload::metrics::timeline::{TimelinePoint, read_timeline};

const MEASURE_FROM_S: f64 = 8.0;
const RUN_S: u32 = 18;
const FFMPEG_PLAYERS: usize = 10;
/// Runs per figure; the run with the median CPU is printed. A shared 2-core machine is noisy:
/// single runs of the same setup differed by a third.
const REPEATS: usize = 3;

fn main() {
    // `cargo test --all-targets` also runs bench targets (in a debug build): figures from there
    // would mislead, and the runs take minutes. `cargo bench` passes `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("players benchmark: skipped (run it with `cargo bench --bench players`)");
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 500, 1000]
    } else {
        sizes
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let bin = find_xiu_binary(None).unwrap_or_else(|e| panic!("{e}"));
        println!("xiuload player benchmark: 1 publisher at 2 Mbit/s video + 128 kbit/s audio, HTTP-FLV players, {RUN_S} s runs, measured from {MEASURE_FROM_S} s, median of {REPEATS} runs");
        println!("machine: {} cores\n", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));

        let base = median_of(REPEATS, || measure_xiuload(&bin, 0), |m| m.cpu.total()).await;
        println!(
            "publisher alone: xiuload CPU {:.2} % of a core (user {:.2}, kernel {:.2}), RSS {:.1} MiB (process total)",
            base.cpu.total(), base.cpu.user, base.cpu.system, base.rss_mib
        );
        println!();
        println!("| players | xiuload CPU % total | CPU % per player | of which user | of which kernel | RSS MiB total | RSS KiB per player | received Mbit/s | xiu CPU % | loader saturated |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for n in sizes {
            let m = median_of(REPEATS, || measure_xiuload(&bin, n), |m| m.cpu.total()).await;
            let per = |all: f64, alone: f64| (all - alone).max(0.0) / n as f64;
            let per_rss = (m.rss_mib - base.rss_mib).max(0.0) * 1024.0 / n as f64;
            println!(
                "| {n} | {:.1} | {:.4} | {:.4} | {:.4} | {:.1} | {per_rss:.1} | {:.0} | {:.1} | {} |",
                m.cpu.total(),
                per(m.cpu.total(), base.cpu.total()),
                per(m.cpu.user, base.cpu.user),
                per(m.cpu.system, base.cpu.system),
                m.rss_mib,
                m.mbps_in,
                m.xiu_cpu,
                m.saturated
            );
        }
        let (ff, ff_rss) = median_of(REPEATS, || measure_ffmpeg(&bin), |m| m.0.total()).await;
        println!();
        println!(
            "ffmpeg players ({FFMPEG_PLAYERS}, `ffmpeg -i <flv> -c copy -f null -`), per player: CPU {:.3} % of a core (user {:.3}, kernel {:.3}), RSS {:.1} MiB",
            ff.total(), ff.user, ff.system, ff_rss
        );
    });
}

/// CPU use as % of one core, user space and kernel apart.
#[derive(Clone, Copy, Default)]
struct Cpu {
    user: f64,
    system: f64,
}

impl Cpu {
    fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// CPU seconds (user, kernel) used so far by a process.
fn cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    parse_user_system_ticks(&stat)
        .map(|(u, s)| (u as f64 / hz, s as f64 / hz))
        .unwrap_or_default()
}

/// CPU of `pids` over `window`, from samples taken at its two ends.
async fn cpu_over(pids: &[u32], window: Duration) -> Cpu {
    let sum = || {
        pids.iter()
            .map(|p| cpu_seconds(*p))
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let before = sum();
    tokio::time::sleep(window).await;
    let after = sum();
    let secs = window.as_secs_f64();
    Cpu {
        user: (after.0 - before.0) / secs * 100.0,
        system: (after.1 - before.1) / secs * 100.0,
    }
}

/// Runs `measure` `times` times and keeps the run whose `key` is the median.
async fn median_of<T, F: std::future::Future<Output = T>>(
    times: usize,
    mut measure: impl FnMut() -> F,
    key: impl Fn(&T) -> f64,
) -> T {
    let mut runs = Vec::with_capacity(times);
    for _ in 0..times.max(1) {
        runs.push(measure().await);
    }
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    runs.swap_remove(runs.len() / 2)
}

struct Measured {
    cpu: Cpu,
    rss_mib: f64,
    mbps_in: f64,
    xiu_cpu: f64,
    saturated: bool,
}

fn steady(points: &[TimelinePoint]) -> Vec<&TimelinePoint> {
    points
        .iter()
        .filter(|p| p.t >= MEASURE_FROM_S && p.t <= RUN_S as f64 - 0.5)
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

async fn measure_xiuload(bin: &Path, players: usize) -> Measured {
    let xiu = LocalXiu::start(bin, 2, None).await.expect("xiu starts");
    let p = xiu.ports;
    let text = format!(
        r#"[run]
duration = "{RUN_S}s"
[target]
rtmp_publish = "rtmp://127.0.0.1:{}"
flv_base = "http://127.0.0.1:{}"
[[publishers]]
name = "cams"
stream = "bench"
count = 1
video = {{ bitrate = "2Mbps" }}
[[players]]
name = "viewers"
protocol = "flv"
publishers = "cams"
ramp = [{{ duration = "2s", target = 0 }}, {{ duration = "4s", target = {players} }}, {{ duration = "{}s", target = {players} }}]
"#,
        p.rtmp,
        p.flv,
        RUN_S - 6
    );
    let scenario = xiuload::scenario::parse(std::path::Path::new("bench.toml"), &text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let xiu_pid = xiu.pid().unwrap_or(0);
    // This process is the load generator: sample it over the steady window, beside the run.
    let own = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64(MEASURE_FROM_S)).await;
        let window = Duration::from_secs_f64(RUN_S as f64 - 0.5 - MEASURE_FROM_S);
        let pids = [std::process::id(), xiu_pid];
        let own = cpu_over(&pids[..1], window);
        let xiu = cpu_over(&pids[1..], window);
        tokio::join!(own, xiu)
    });
    let outcome = xiuload::run::run(
        scenario,
        xiuload::run::RunOptions {
            scenario_file: "bench.toml".into(),
            out_dir: Some(out.path().to_path_buf()),
            status_line: false,
            metrics_addr: None,
        },
        std::future::pending(),
    )
    .await
    .expect("run");
    let (cpu, xiu_cpu) = own.await.expect("sampler");
    xiu.stop().await;
    let points = read_timeline(&out.path().join("timeline.jsonl")).unwrap();
    let s = steady(&points);
    Measured {
        cpu,
        rss_mib: s
            .iter()
            .filter_map(|p| p.loader_rss_mib)
            .fold(0.0, f64::max),
        mbps_in: mean(s.iter().map(|p| p.mbps_in)),
        xiu_cpu: xiu_cpu.total(),
        saturated: outcome.report.loader.saturated,
    }
}

/// CPU and RSS MiB per ffmpeg player over a steady window of the same length.
async fn measure_ffmpeg(bin: &Path) -> (Cpu, f64) {
    let xiu = LocalXiu::start(bin, 2, None).await.expect("xiu starts");
    let p = xiu.ports;
    let text = format!(
        "[run]\nduration = \"{RUN_S}s\"\n[target]\nrtmp_publish = \"rtmp://127.0.0.1:{}\"\n[[publishers]]\nname = \"cams\"\nstream = \"bench\"\ncount = 1\nvideo = {{ bitrate = \"2Mbps\" }}\n",
        p.rtmp
    );
    let scenario = xiuload::scenario::parse(std::path::Path::new("bench.toml"), &text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        let dir = out.path().to_path_buf();
        async move {
            xiuload::run::run(
                scenario,
                xiuload::run::RunOptions {
                    scenario_file: "bench.toml".into(),
                    out_dir: Some(dir),
                    status_line: false,
                    metrics_addr: None,
                },
                async move { stop.cancelled().await },
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let url = format!("http://127.0.0.1:{}/live/bench.flv", p.flv);
    let mut children: Vec<tokio::process::Child> = (0..FFMPEG_PLAYERS)
        .map(|_| {
            tokio::process::Command::new("ffmpeg")
                .args(["-v", "quiet", "-i", &url, "-c", "copy", "-f", "null", "-"])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("ffmpeg is installed")
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    let window = Duration::from_secs_f64(RUN_S as f64 - 0.5 - MEASURE_FROM_S);
    let cpu = cpu_over(&pids, window).await;
    let rss: u64 = pids.iter().filter_map(|p| rss_bytes(*p)).sum();
    for c in &mut children {
        let _ = c.kill().await;
    }
    stop.cancel();
    let _ = run.await;
    xiu.stop().await;
    let n = pids.len().max(1) as f64;
    (
        Cpu {
            user: cpu.user / n,
            system: cpu.system / n,
        },
        rss as f64 / 1_048_576.0 / n,
    )
}

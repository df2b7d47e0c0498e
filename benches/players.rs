//! Cost of a load generator's viewer: CPU (% of one core) and RSS per HTTP-FLV player and per
//! publisher at 2 Mbit/s, for 100, 500 and 1000 players against a local xiu, beside the same
//! figures for `ffmpeg -i <flv url> -c copy -f null -` players measured in the same way, and for
//! a bare reader: the same number of connections on one epoll loop that read and discard, the
//! least any HTTP-FLV client can cost on this machine.
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
        println!("| players | xiuload CPU % total | CPU % per player | of which user | of which kernel | bare reader CPU % per player (user / kernel) | RSS MiB total | RSS KiB per player | received Mbit/s | xiu CPU % | loader saturated |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for n in sizes {
            let m = median_of(REPEATS, || measure_xiuload(&bin, n), |m| m.cpu.total()).await;
            let per = |all: f64, alone: f64| (all - alone).max(0.0) / n as f64;
            let per_rss = (m.rss_mib - base.rss_mib).max(0.0) * 1024.0 / n as f64;
            let bare = median_of(REPEATS, || measure_bare_reader(&bin, n), Cpu::total).await;
            println!(
                "| {n} | {:.1} | {:.4} | {:.4} | {:.4} | {:.4} ({:.4} / {:.4}) | {:.1} | {per_rss:.1} | {:.0} | {:.1} | {} |",
                m.cpu.total(),
                per(m.cpu.total(), base.cpu.total()),
                per(m.cpu.user, base.cpu.user),
                per(m.cpu.system, base.cpu.system),
                bare.total(),
                bare.user,
                bare.system,
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
            ..Default::default()
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

/// A xiu with one publisher (started by a publishers-only xiuload run in this process), for
/// clients that are not xiuload's own: ffmpeg and the bare reader.
struct PublisherOnly {
    xiu: LocalXiu,
    stop: tokio_util::sync::CancellationToken,
    run: tokio::task::JoinHandle<Result<xiuload::run::Outcome, xiuload::run::RunError>>,
    _out: tempfile::TempDir,
}

impl PublisherOnly {
    async fn start(bin: &Path) -> PublisherOnly {
        let xiu = LocalXiu::start(bin, 2, None).await.expect("xiu starts");
        let text = format!(
            "[run]\nduration = \"{RUN_S}s\"\n[target]\nrtmp_publish = \"rtmp://127.0.0.1:{}\"\n[[publishers]]\nname = \"cams\"\nstream = \"bench\"\ncount = 1\nvideo = {{ bitrate = \"2Mbps\" }}\n",
            xiu.ports.rtmp
        );
        let scenario = xiuload::scenario::parse(Path::new("bench.toml"), &text).unwrap();
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
                        ..Default::default()
                    },
                    async move { stop.cancelled().await },
                )
                .await
            }
        });
        // Long enough for the publisher to be accepted and xiu to hold a keyframe.
        tokio::time::sleep(Duration::from_secs(2)).await;
        PublisherOnly {
            xiu,
            stop,
            run,
            _out: out,
        }
    }

    fn flv_url(&self) -> String {
        format!("http://127.0.0.1:{}/live/bench.flv", self.xiu.ports.flv)
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.run.await;
        self.xiu.stop().await;
    }
}

/// CPU and RSS MiB per ffmpeg player over a steady window of the same length.
async fn measure_ffmpeg(bin: &Path) -> (Cpu, f64) {
    let publisher = PublisherOnly::start(bin).await;
    let url = publisher.flv_url();
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
    publisher.stop().await;
    let n = pids.len().max(1) as f64;
    (
        Cpu {
            user: cpu.user / n,
            system: cpu.system / n,
        },
        rss as f64 / 1_048_576.0 / n,
    )
}

/// CPU per viewer of the least an HTTP-FLV viewer can do here: `n` connections on one epoll
/// loop (mio) that read the body and throw it away: no parsing, no timers, no metrics. What
/// it costs is the kernel's price for receiving this stream on loopback (the copy, the ACK
/// each read sends, xiu's transmit that the ACK sets off), which every client pays.
async fn measure_bare_reader(bin: &Path, n: usize) -> Cpu {
    let publisher = PublisherOnly::start(bin).await;
    let port = publisher.xiu.ports.flv;
    // Same steady window as the xiuload runs: connections ramp up, then 4 s to settle.
    let settle = Duration::from_secs(4);
    let window = Duration::from_secs_f64(RUN_S as f64 - 0.5 - MEASURE_FROM_S);
    let cpu = tokio::task::spawn_blocking(move || bare_reader(port, n, settle, window))
        .await
        .expect("bare reader thread");
    publisher.stop().await;
    Cpu {
        user: cpu.user / n as f64,
        system: cpu.system / n as f64,
    }
}

/// The reader loop itself; CPU is the calling thread's over `window`, after `settle`.
fn bare_reader(port: u16, n: usize, settle: Duration, window: Duration) -> Cpu {
    use mio::{Events, Interest, Poll, Token};
    use std::io::{Read, Write};
    let mut poll = Poll::new().expect("epoll");
    let request = "GET /live/bench.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut streams: Vec<mio::net::TcpStream> = (0..n)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(request.as_bytes()).expect("request");
            s.set_nonblocking(true).expect("nonblocking");
            let mut s = mio::net::TcpStream::from_std(s);
            poll.registry()
                .register(&mut s, Token(i), Interest::READABLE)
                .expect("register");
            s
        })
        .collect();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 16 * 1024];
    let started = std::time::Instant::now();
    let mut measuring_since = None;
    while started.elapsed() < settle + window {
        if measuring_since.is_none() && started.elapsed() >= settle {
            measuring_since = Some(thread_cpu_seconds());
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .expect("poll");
        for event in &events {
            let stream = &mut streams[event.token().0];
            // Edge-triggered: read until the socket is drained. A short read means it is (the
            // same shortcut tokio takes), which saves the read that would say "would block".
            while let Ok(got) = stream.read(&mut buf) {
                if got < buf.len() {
                    break;
                }
            }
        }
    }
    let (u0, s0) = measuring_since.unwrap_or_default();
    let (u1, s1) = thread_cpu_seconds();
    let secs = window.as_secs_f64();
    Cpu {
        user: (u1 - u0) / secs * 100.0,
        system: (s1 - s0) / secs * 100.0,
    }
}

/// CPU seconds (user, kernel) of the calling thread.
fn thread_cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage writes into the struct we pass and has no other preconditions.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

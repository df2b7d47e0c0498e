//! What one more viewer costs the load generator: CPU (% of one core) and resident memory per
//! added viewer, for every player protocol (plain HTTP-FLV, HTTP-FLV over TLS, RTMP, HLS), on two
//! streams a local xiu serves:
//!
//! - **synthetic**: what xiuload's own publisher sends (2 Mbit/s video + 128 kbit/s audio, small
//!   evenly sized frames);
//! - **encoded**: a real libx264 stream that ffmpeg encodes at bench time (720p30 `testsrc2` +
//!   sine AAC, CBR 2 Mbit/s, 2 s GOP, keyframes of tens of KB), the kind of stream a viewer meets
//!   in production. The probe line printed before its table gives its measured bit rate and its
//!   biggest video tag.
//!
//! ```text
//! cargo bench --bench players                       # 200 viewers, every protocol, both streams
//! cargo bench --bench players -- 100 500 1000       # these sizes
//! cargo bench --bench players -- --repeats 1 --protocols rtmp --streams encoded
//! XIULOAD_BIN=/path/to/older/xiuload cargo bench --bench players   # viewers of another build
//! scripts/bench-viewers.sh [same arguments]
//! ```
//!
//! How it measures. The viewers run in a **child process** (`target/release/xiuload run`, the
//! binary users run), and only that process's `/proc/<pid>` figures count. Everything else runs
//! elsewhere: xiu and the ffmpeg encoder are processes of their own, and this bench process holds
//! the synthetic stream's publisher (a publishers-only `xiuload::run::run`) and the TLS terminator
//! in front of xiu's HTTP-FLV port (xiu has no TLS; the terminator is tokio-rustls with an rcgen
//! self-signed certificate, the HTTPS players skip verification). Measuring in-process, as this
//! bench did before, would have added the terminator's CPU and the publisher's memory to the
//! viewers'; a child process keeps them apart without any accounting by thread.
//!
//! Each run of the child holds 0 viewers for its first 4 s, ramps to N viewers over 3 s and holds
//! them to the end (19 s). CPU and RSS are sampled every 200 ms: the base is 1–4 s (0 viewers),
//! the steady state 10–18 s, both placed by the child's own run clock (its timeline's wall times).
//! Per added viewer = (steady − base) / N: what a viewer costs beyond the process's fixed cost.
//! RSS is each window's largest sample. Each figure is the median of `--repeats` runs (default
//! 3; single runs on a shared 2-core machine differ by up to a third), CPU and RSS each on its
//! own. The table also gives the viewers that were up (mean over the steady window; below N
//! means sessions failed and the per-viewer figures are off) and what they received.
//!
//! Context rows for HTTP-FLV, measured once per stream: 10 `ffmpeg -i <flv> -c copy -f null -`
//! players, and a **bare reader**: N connections on one epoll loop that read and discard, the
//! least any HTTP-FLV client can cost here (its RSS is not separable from this process: "–").
//!
//! Prints figures and the issue's targets beside them; asserts nothing (a person judges them,
//! README "Benchmark"). CPU splits into user space (the viewer's own work) and kernel (system
//! calls and the TCP stack; on loopback that includes xiu's transmit path that a reader's ACK
//! sets off).

// The tests' TLS terminator (self-signed, tokio-rustls), one copy for both.
#[path = "../tests/common/flv_server.rs"]
#[allow(dead_code)]
mod flv_server;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xiuload::local::{LocalXiu, find_xiu_binary};
use xiuload::metrics::loader::{parse_user_system_ticks, rss_bytes};
use xiuload::metrics::timeline::{TimelinePoint, read_timeline};

/// The child's run: 0 viewers until `RAMP_FROM_S`, N from `RAMP_FROM_S + RAMP_S` to `RUN_S`.
const RAMP_FROM_S: u32 = 4;
const RAMP_S: u32 = 3;
const RUN_S: u32 = 19;
/// Base window (0 viewers; the first second is start-up) and steady window (3 s after the ramp,
/// for connections to settle; the last second is shut-down).
const BASE_WINDOW_S: (f64, f64) = (1.0, 4.0);
const STEADY_WINDOW_S: (f64, f64) = (10.0, 18.0);
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
const FFMPEG_PLAYERS: usize = 10;
const APP: &str = "live";
const STREAM: &str = "bench";

fn main() {
    // `cargo test --all-targets` also runs bench targets (in a debug build): figures from there
    // would mislead, and the runs take minutes. `cargo bench` passes `--bench`.
    // The pure parts are checked there instead (this target has no test harness).
    if !std::env::args().any(|a| a == "--bench") {
        self_check();
        println!(
            "players benchmark: self-check passed; figures skipped (run it with `cargo bench --bench players`)"
        );
        return;
    }
    let args = Args::parse(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("players benchmark: {e}\n{}", Args::USAGE);
        std::process::exit(2)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let bin = find_xiu_binary(None).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "xiuload viewer benchmark: {} viewers per run, {RUN_S} s runs (0 viewers to {RAMP_FROM_S} s, then a {RAMP_S} s ramp), base {:?} s, steady {:?} s, median of {} runs",
            join(&args.sizes),
            BASE_WINDOW_S,
            STEADY_WINDOW_S,
            args.repeats
        );
        println!(
            "machine: {} cores (shared: xiu, the stream's source and the TLS terminator run beside the viewers)",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
        println!("viewers run by {}", xiuload_binary().display());
        let started = Instant::now();
        for kind in &args.streams {
            bench_stream(&bin, *kind, &args).await;
        }
        println!("\nbenchmark took {:.0} s", started.elapsed().as_secs_f64());
    });
}

#[derive(Debug)]
struct Args {
    sizes: Vec<usize>,
    repeats: usize,
    protocols: Vec<Protocol>,
    streams: Vec<StreamKind>,
}

impl Args {
    const USAGE: &str = "usage: cargo bench --bench players -- [SIZE...] [--repeats N] [--protocols flv,https,rtmp,hls] [--streams synthetic,encoded]";

    fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            sizes: Vec::new(),
            repeats: 3,
            protocols: Protocol::ALL.to_vec(),
            streams: vec![StreamKind::Synthetic, StreamKind::Encoded],
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--bench" => {}
                "--repeats" => {
                    parsed.repeats = value("--repeats")?
                        .parse()
                        .map_err(|_| "--repeats takes a number".to_string())?;
                }
                "--protocols" => {
                    parsed.protocols = value("--protocols")?
                        .split(',')
                        .map(Protocol::parse)
                        .collect::<Result<_, _>>()?;
                }
                "--streams" => {
                    parsed.streams = value("--streams")?
                        .split(',')
                        .map(StreamKind::parse)
                        .collect::<Result<_, _>>()?;
                }
                n => match n.parse::<usize>() {
                    Ok(n) if (1..=5000).contains(&n) => parsed.sizes.push(n),
                    _ => return Err(format!("unexpected argument {n:?}")),
                },
            }
        }
        if parsed.sizes.is_empty() {
            parsed.sizes.push(200);
        }
        parsed.repeats = parsed.repeats.max(1);
        Ok(parsed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Flv,
    Https,
    Rtmp,
    Hls,
}

impl Protocol {
    const ALL: [Protocol; 4] = [
        Protocol::Flv,
        Protocol::Https,
        Protocol::Rtmp,
        Protocol::Hls,
    ];

    fn parse(s: &str) -> Result<Protocol, String> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.key() == s)
            .ok_or_else(|| format!("unknown protocol {s:?} (flv, https, rtmp, hls)"))
    }

    fn key(self) -> &'static str {
        match self {
            Protocol::Flv => "flv",
            Protocol::Https => "https",
            Protocol::Rtmp => "rtmp",
            Protocol::Hls => "hls",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Protocol::Flv => "HTTP-FLV",
            Protocol::Https => "HTTPS-FLV",
            Protocol::Rtmp => "RTMP",
            Protocol::Hls => "HLS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Synthetic,
    Encoded,
}

impl StreamKind {
    fn parse(s: &str) -> Result<StreamKind, String> {
        match s {
            "synthetic" => Ok(StreamKind::Synthetic),
            "encoded" => Ok(StreamKind::Encoded),
            _ => Err(format!("unknown stream {s:?} (synthetic, encoded)")),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            StreamKind::Synthetic => {
                "synthetic: xiuload's publisher, 2 Mbit/s video + 128 kbit/s audio"
            }
            StreamKind::Encoded => {
                "encoded: ffmpeg libx264 720p30 testsrc2, CBR 2 Mbit/s (nal-hrd=cbr, 1 Mbit buffer), GOP 60, AAC 128 kbit/s"
            }
        }
    }
}

/// Benchmarks every protocol and size on one stream and prints its table.
async fn bench_stream(bin: &Path, kind: StreamKind, args: &Args) {
    println!("\n## Stream {}\n", kind.describe());
    let source = Source::start(bin, kind).await;
    let facts = probe_flv(source.xiu.ports.flv, Duration::from_secs(6)).await;
    println!(
        "probe (HTTP-FLV, {:.1} s of media): {:.2} Mbit/s, biggest video tag {:.1} KB, biggest audio tag {} B, {} video tags, {} keyframes",
        facts.media_span_ms as f64 / 1000.0,
        facts.mbps(),
        facts.biggest_video as f64 / 1000.0,
        facts.biggest_audio,
        facts.video_tags,
        facts.keyframes
    );
    if args.protocols.contains(&Protocol::Hls) {
        source.wait_for_playlist().await;
    }
    let mut rows: Vec<Row> = Vec::new();
    for &n in &args.sizes {
        for &protocol in &args.protocols {
            let mut runs = Vec::with_capacity(args.repeats);
            for _ in 0..args.repeats {
                runs.push(measure_viewers(&source, protocol, n).await);
            }
            rows.push(Row::median(protocol, n, runs));
        }
    }
    let mut context = Vec::new();
    if args.protocols.contains(&Protocol::Flv) {
        let largest = args.sizes.iter().copied().max().unwrap_or(200);
        context.push(measure_bare_reader(source.xiu.ports.flv, largest).await);
        context.push(measure_ffmpeg(source.xiu.ports.flv).await);
    }
    print_table(&rows, &context);
    source.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The stream's source: xiu plus a publisher, and the TLS terminator for HTTPS viewers.

enum Feeder {
    /// xiuload's own publisher, run in this process until cancelled.
    Synthetic {
        stop: tokio_util::sync::CancellationToken,
        run: tokio::task::JoinHandle<Result<xiuload::run::Outcome, xiuload::run::RunError>>,
        _out: tempfile::TempDir,
    },
    Ffmpeg(tokio::process::Child),
}

struct Source {
    xiu: LocalXiu,
    feeder: Feeder,
    /// TLS in front of xiu's HTTP-FLV port, in this process (its CPU is not the viewers').
    tls: flv_server::TlsFlvServer,
}

impl Source {
    async fn start(bin: &Path, kind: StreamKind) -> Source {
        let xiu = LocalXiu::start(bin, 2, None).await.expect("xiu starts");
        let publish_url = format!("rtmp://127.0.0.1:{}/{APP}/{STREAM}", xiu.ports.rtmp);
        let feeder = match kind {
            StreamKind::Synthetic => start_synthetic_publisher(xiu.ports.rtmp).await,
            StreamKind::Encoded => Feeder::Ffmpeg(start_ffmpeg_publisher(&publish_url)),
        };
        let tls = flv_server::tls_terminator(xiu.ports.flv).await;
        let source = Source { xiu, feeder, tls };
        source.wait_for_flv().await;
        source
    }

    /// Until xiu serves the stream over HTTP-FLV (it answers an unknown stream with an empty 200).
    async fn wait_for_flv(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if probe_flv(self.xiu.ports.flv, Duration::from_millis(500))
                .await
                .video_tags
                > 0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("xiu did not serve {APP}/{STREAM} within 30 s");
    }

    /// Until xiu has cut the first HLS segment: before that its playlist is a 404.
    async fn wait_for_playlist(&self) {
        let url = format!(
            "http://127.0.0.1:{}/{APP}/{STREAM}/{STREAM}.m3u8",
            self.xiu.ports.hls
        );
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("xiu did not serve the HLS playlist {url} within 30 s");
    }

    async fn stop(self) {
        match self.feeder {
            Feeder::Synthetic { stop, run, .. } => {
                stop.cancel();
                let _ = run.await;
            }
            Feeder::Ffmpeg(mut child) => {
                let _ = child.kill().await;
            }
        }
        self.tls.task.abort();
        self.xiu.stop().await;
    }
}

async fn start_synthetic_publisher(rtmp_port: u16) -> Feeder {
    let text = format!(
        "[run]\nduration = \"2h\"\n[target]\nrtmp_publish = \"rtmp://127.0.0.1:{rtmp_port}\"\n\
         [[publishers]]\nname = \"cams\"\nstream = \"{STREAM}\"\ncount = 1\nvideo = {{ bitrate = \"2Mbps\" }}\n"
    );
    let scenario = xiuload::scenario::parse(Path::new("bench-publisher.toml"), &text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        let dir = out.path().to_path_buf();
        async move {
            xiuload::run::run(
                scenario,
                xiuload::run::RunOptions {
                    scenario_file: "bench-publisher.toml".into(),
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
    Feeder::Synthetic {
        stop,
        run,
        _out: out,
    }
}

/// The encoded stream: 2 Mbit/s CBR H.264 (x264's HRD keeps it constant, filler included) plus
/// 128 kbit/s AAC, ~2.14 Mbit/s on the wire; `-re` paces it in real time.
fn start_ffmpeg_publisher(url: &str) -> tokio::process::Child {
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .args([
            "-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "1M",
        ])
        .args(["-g", "60", "-x264-params", "nal-hrd=cbr"])
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed (scripts/install-deps.sh)")
}

// ---------------------------------------------------------------------------------------------
// What the stream looks like: bit rate and the biggest tags, read from xiu's HTTP-FLV output.

#[derive(Debug, Default)]
struct StreamFacts {
    /// Media bytes (tag bodies) and the media time they cover, after the first second (xiu
    /// starts a viewer with its cached GOP in one burst).
    bytes_after_first_second: u64,
    media_span_ms: u64,
    biggest_video: usize,
    biggest_audio: usize,
    video_tags: u64,
    keyframes: u64,
}

impl StreamFacts {
    fn mbps(&self) -> f64 {
        if self.media_span_ms <= 1000 {
            return 0.0;
        }
        self.bytes_after_first_second as f64 * 8.0
            / ((self.media_span_ms - 1000) as f64 / 1000.0)
            / 1e6
    }
}

/// Reads `/live/bench.flv` for `window` and walks its tags (the FLV framing only).
async fn probe_flv(port: u16, window: Duration) -> StreamFacts {
    use futures::StreamExt;
    let url = format!("http://127.0.0.1:{port}/{APP}/{STREAM}.flv");
    let mut body = Vec::new();
    if let Ok(response) = reqwest::Client::new().get(&url).send().await {
        let mut chunks = response.bytes_stream();
        let _ = tokio::time::timeout(window, async {
            while let Some(Ok(chunk)) = chunks.next().await {
                body.extend_from_slice(&chunk);
            }
        })
        .await;
    }
    flv_facts(&body)
}

/// The FLV file header (9 bytes + PreviousTagSize0), then tags of an 11-byte header, a body and
/// a 4-byte PreviousTagSize.
fn flv_facts(flv: &[u8]) -> StreamFacts {
    let mut facts = StreamFacts::default();
    if flv.len() < 13 || &flv[..3] != b"FLV" {
        return facts;
    }
    let mut at = 13;
    let mut first_ts = None;
    while at + 11 <= flv.len() {
        let h = &flv[at..at + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]) as u64;
        let body = at + 11;
        if body + size > flv.len() {
            break;
        }
        let first = *first_ts.get_or_insert(ts);
        facts.media_span_ms = facts.media_span_ms.max(ts.saturating_sub(first));
        if ts > first + 1000 {
            facts.bytes_after_first_second += size as u64;
        }
        match h[0] & 0x1f {
            9 => {
                facts.video_tags += 1;
                facts.biggest_video = facts.biggest_video.max(size);
                if size > 0 && flv[body] >> 4 == 1 {
                    facts.keyframes += 1;
                }
            }
            8 => facts.biggest_audio = facts.biggest_audio.max(size),
            _ => {}
        }
        at = body + size + 4;
    }
    facts
}

// ---------------------------------------------------------------------------------------------
// One run of the viewers in a child `xiuload run`.

/// CPU use as % of one core, user space and kernel apart.
#[derive(Clone, Copy, Default, Debug)]
struct Cpu {
    user: f64,
    system: f64,
}

impl Cpu {
    fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// One run's figures.
#[derive(Debug)]
struct Run {
    /// Per added viewer.
    cpu: Cpu,
    rss_kib: f64,
    /// The process with 0 viewers.
    base_cpu: f64,
    base_rss_mib: f64,
    viewers_up: f64,
    mbps_in: f64,
    errors: u64,
    saturated: bool,
}

/// A `/proc` sample of the child.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Wall clock, ms since the Unix epoch (the child's timeline is in the same clock).
    wall_ms: f64,
    user_s: f64,
    system_s: f64,
    rss: u64,
}

fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (user, system) = parse_user_system_ticks(&stat)?;
    Some(Sample {
        wall_ms: wall_ms_now(),
        user_s: user as f64 / hz,
        system_s: system as f64 / hz,
        rss: rss_bytes(pid)?,
    })
}

fn wall_ms_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// CPU between the first sample at or after `from` and the last at or before `to` (run seconds),
/// and the largest RSS among the samples between.
fn window(samples: &[Sample], run_start_ms: f64, (from, to): (f64, f64)) -> Option<(Cpu, u64)> {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            let t = (s.wall_ms - run_start_ms) / 1000.0;
            t >= from && t <= to
        })
        .collect();
    let (first, last) = (inside.first()?, inside.last()?);
    let secs = (last.wall_ms - first.wall_ms) / 1000.0;
    if secs <= 0.5 {
        return None;
    }
    let cpu = Cpu {
        user: (last.user_s - first.user_s) / secs * 100.0,
        system: (last.system_s - first.system_s) / secs * 100.0,
    };
    Some((cpu, inside.iter().map(|s| s.rss).max()?))
}

fn scenario_text(source: &Source, protocol: Protocol, n: usize) -> String {
    let p = source.xiu.ports;
    let (player_protocol, tls) = match protocol {
        Protocol::Flv => ("flv", ""),
        Protocol::Https => ("flv", "[target.tls]\ninsecure_skip_verify = true\n"),
        Protocol::Rtmp => ("rtmp", ""),
        Protocol::Hls => ("hls", ""),
    };
    let flv_base = match protocol {
        Protocol::Https => format!("https://127.0.0.1:{}", source.tls.port),
        _ => format!("http://127.0.0.1:{}", p.flv),
    };
    let hold = RUN_S - RAMP_FROM_S - RAMP_S;
    format!(
        r#"[run]
duration = "{RUN_S}s"
[target]
app = "{APP}"
rtmp_play = "rtmp://127.0.0.1:{rtmp}"
flv_base = "{flv_base}"
hls_base = "http://127.0.0.1:{hls}"
{tls}
[[players]]
name = "viewers"
protocol = "{player_protocol}"
streams = ["{STREAM}"]
ramp = [{{ duration = "{RAMP_FROM_S}s", target = 0 }}, {{ duration = "{RAMP_S}s", target = {n} }}, {{ duration = "{hold}s", target = {n} }}]
"#,
        rtmp = p.rtmp,
        hls = p.hls,
    )
}

async fn measure_viewers(source: &Source, protocol: Protocol, n: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("viewers.toml");
    std::fs::write(&scenario, scenario_text(source, protocol, n)).unwrap();
    let out = dir.path().join("out");
    let log = std::fs::File::create(dir.path().join("xiuload.log")).unwrap();
    let mut child = tokio::process::Command::new(xiuload_binary())
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("xiuload binary");
    let pid = child.id().expect("child pid");
    let mut samples = Vec::new();
    let limit = Instant::now() + Duration::from_secs(RUN_S as u64 + 30);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.expect("wait for xiuload"),
            _ = tick.tick() => {
                if let Some(s) = sample(pid) {
                    samples.push(s);
                }
                if Instant::now() > limit {
                    let _ = child.kill().await;
                    panic!("xiuload run did not end within {} s", RUN_S + 30);
                }
            }
        }
    };
    let log = std::fs::read_to_string(dir.path().join("xiuload.log")).unwrap_or_default();
    let points = read_timeline(&out.join("timeline.jsonl"))
        .unwrap_or_else(|e| panic!("no timeline ({e}); xiuload exited {status}:\n{log}"));
    let run_start_ms = points
        .first()
        .map(|p| p.wall_ms as f64 - p.t * 1000.0)
        .expect("a timeline point");
    let (base_cpu, base_rss) = window(&samples, run_start_ms, BASE_WINDOW_S).expect("base samples");
    let (cpu, rss) = window(&samples, run_start_ms, STEADY_WINDOW_S).expect("steady samples");
    let steady: Vec<&TimelinePoint> = points
        .iter()
        .filter(|p| p.t > STEADY_WINDOW_S.0 && p.t <= STEADY_WINDOW_S.1)
        .collect();
    let mean = |f: &dyn Fn(&TimelinePoint) -> f64| {
        steady.iter().map(|p| f(p)).sum::<f64>() / steady.len().max(1) as f64
    };
    let report: serde_json::Value = std::fs::read_to_string(out.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let per = |all: f64, base: f64| (all - base) / n as f64;
    Run {
        cpu: Cpu {
            user: per(cpu.user, base_cpu.user),
            system: per(cpu.system, base_cpu.system),
        },
        rss_kib: per(rss as f64, base_rss as f64) / 1024.0,
        base_cpu: base_cpu.total(),
        base_rss_mib: base_rss as f64 / 1_048_576.0,
        viewers_up: mean(&|p| p.players.values().map(|g| g.active as f64).sum()),
        mbps_in: mean(&|p| p.mbps_in),
        errors: points.last().map_or(0, |p| p.errors),
        saturated: report["loader"]["saturated"].as_bool().unwrap_or(false),
    }
}

/// The xiuload built with this bench, or `$XIULOAD_BIN` (e.g. a copy of an older build, to
/// compare before and after with the same harness).
fn xiuload_binary() -> std::path::PathBuf {
    std::env::var_os("XIULOAD_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_xiuload").into())
}

// ---------------------------------------------------------------------------------------------
// Context rows: ffmpeg players and the bare reader (HTTP-FLV).

/// A row of the table: medians of the runs.
struct Row {
    label: String,
    protocol: Option<Protocol>,
    viewers: usize,
    cpu: Cpu,
    rss_kib: Option<f64>,
    viewers_up: Option<f64>,
    mbps_in: Option<f64>,
    errors: Option<u64>,
    base: Option<(f64, f64)>,
    saturated: bool,
}

impl Row {
    fn median(protocol: Protocol, viewers: usize, runs: Vec<Run>) -> Row {
        let med = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
        Row {
            label: protocol.label().to_string(),
            protocol: Some(protocol),
            viewers,
            cpu: Cpu {
                user: med(&|r| r.cpu.user),
                system: med(&|r| r.cpu.system),
            },
            rss_kib: Some(med(&|r| r.rss_kib)),
            viewers_up: Some(med(&|r| r.viewers_up)),
            mbps_in: Some(med(&|r| r.mbps_in)),
            errors: runs.iter().map(|r| r.errors).max(),
            base: Some((med(&|r| r.base_cpu), med(&|r| r.base_rss_mib))),
            saturated: runs.iter().any(|r| r.saturated),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// CPU over `window` of processes, from `/proc` samples at its two ends.
async fn cpu_over(pids: &[u32], window: Duration) -> Cpu {
    let sum = || {
        pids.iter()
            .filter_map(|p| sample(*p))
            .fold((0.0, 0.0), |a, s| (a.0 + s.user_s, a.1 + s.system_s))
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

/// Per player, `FFMPEG_PLAYERS` `ffmpeg -i <flv url> -c copy -f null -` over a steady window.
async fn measure_ffmpeg(flv_port: u16) -> Row {
    let url = format!("http://127.0.0.1:{flv_port}/{APP}/{STREAM}.flv");
    let mut children: Vec<tokio::process::Child> = (0..FFMPEG_PLAYERS)
        .map(|_| {
            tokio::process::Command::new("ffmpeg")
                .args([
                    "-v", "quiet", "-nostdin", "-i", &url, "-c", "copy", "-f", "null", "-",
                ])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("ffmpeg is installed")
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    let cpu = cpu_over(&pids, steady_length()).await;
    let rss: u64 = pids.iter().filter_map(|p| rss_bytes(*p)).sum();
    for c in &mut children {
        let _ = c.kill().await;
    }
    let n = pids.len().max(1) as f64;
    Row {
        label: format!("ffmpeg `-c copy -f null` ({FFMPEG_PLAYERS} processes, 1 run)"),
        protocol: None,
        viewers: pids.len(),
        cpu: Cpu {
            user: cpu.user / n,
            system: cpu.system / n,
        },
        rss_kib: Some(rss as f64 / 1024.0 / n),
        viewers_up: None,
        mbps_in: None,
        errors: None,
        base: None,
        saturated: false,
    }
}

fn steady_length() -> Duration {
    Duration::from_secs_f64(STEADY_WINDOW_S.1 - STEADY_WINDOW_S.0)
}

/// CPU per viewer of the least an HTTP-FLV viewer can do here: `n` connections on one epoll
/// loop (mio) that read the body and throw it away: no parsing, no timers, no metrics. What
/// it costs is the kernel's price for receiving this stream on loopback (the copy, the ACK
/// each read sends, xiu's transmit that the ACK sets off), which every client pays.
async fn measure_bare_reader(flv_port: u16, n: usize) -> Row {
    let settle = Duration::from_secs(4);
    let cpu =
        tokio::task::spawn_blocking(move || bare_reader(flv_port, n, settle, steady_length()))
            .await
            .expect("bare reader thread");
    Row {
        label: "bare reader (epoll, read and discard; 1 run)".into(),
        protocol: None,
        viewers: n,
        cpu: Cpu {
            user: cpu.user / n as f64,
            system: cpu.system / n as f64,
        },
        rss_kib: None,
        viewers_up: None,
        mbps_in: None,
        errors: None,
        base: None,
        saturated: false,
    }
}

/// The reader loop itself; CPU is the calling thread's over `window`, after `settle`.
fn bare_reader(port: u16, n: usize, settle: Duration, window: Duration) -> Cpu {
    use mio::{Events, Interest, Poll, Token};
    use std::io::{Read, Write};
    let mut poll = Poll::new().expect("epoll");
    let request =
        format!("GET /{APP}/{STREAM}.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
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
    let started = Instant::now();
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

// ---------------------------------------------------------------------------------------------
// The table.

/// The issue's target for a protocol and whether `row` meets it (`plain`: plain HTTP-FLV's row
/// at the same size).
fn target(row: &Row, plain: Option<&Row>) -> String {
    let rss = row.rss_kib.unwrap_or(f64::NAN);
    let mark = |ok: bool| if ok { "met" } else { "**not met**" };
    match row.protocol {
        Some(Protocol::Flv) => format!("RSS ≤ 40 KiB: {}", mark(rss <= 40.0)),
        Some(Protocol::Rtmp) => format!("RSS ≤ 160 KiB: {}", mark(rss <= 160.0)),
        Some(Protocol::Https) => match plain {
            Some(p) => {
                let (c, r) = ratios(row, p);
                format!(
                    "CPU ≤ 1.3×: {}; RSS ≤ 1.5×: {}",
                    mark(c <= 1.3),
                    mark(r <= 1.5)
                )
            }
            None => "≤ 1.3× CPU, ≤ 1.5× RSS of plain (plain not measured)".into(),
        },
        Some(Protocol::Hls) => match plain {
            Some(p) => format!(
                "RSS ≤ plain FLV's: {}",
                mark(rss <= p.rss_kib.unwrap_or(f64::NAN))
            ),
            None => "RSS ≤ plain FLV's (plain not measured)".into(),
        },
        None => "context".into(),
    }
}

/// CPU and RSS of `row` relative to `plain`.
fn ratios(row: &Row, plain: &Row) -> (f64, f64) {
    (
        row.cpu.total() / plain.cpu.total(),
        row.rss_kib.unwrap_or(f64::NAN) / plain.rss_kib.unwrap_or(f64::NAN),
    )
}

fn print_table(rows: &[Row], context: &[Row]) {
    println!();
    println!(
        "| protocol | viewers | CPU % per viewer (user / kernel) | RSS KiB per viewer | × plain FLV (CPU / RSS) | viewers up | Mbit/s in | errors | target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows.iter().chain(context) {
        let plain = rows
            .iter()
            .find(|r| r.protocol == Some(Protocol::Flv) && r.viewers == row.viewers);
        let ratio = match plain {
            Some(p) if row.protocol.is_some() => {
                let (c, r) = ratios(row, p);
                format!("{c:.2} / {r:.2}")
            }
            Some(p) => format!("{:.2} / –", row.cpu.total() / p.cpu.total()),
            None => "–".into(),
        };
        let opt = |v: Option<f64>, digits: usize| {
            v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
        };
        println!(
            "| {}{} | {} | {:.4} ({:.4} / {:.4}) | {} | {} | {} | {} | {} | {} |",
            row.label,
            if row.saturated {
                " (loader saturated)"
            } else {
                ""
            },
            row.viewers,
            row.cpu.total(),
            row.cpu.user,
            row.cpu.system,
            opt(row.rss_kib, 1),
            if row.protocol.is_some() {
                ratio
            } else {
                ratio.replace(" / –", "") + " (CPU)"
            },
            opt(row.viewers_up, 0),
            opt(row.mbps_in, 0),
            row.errors.map_or("–".into(), |e| e.to_string()),
            target(row, plain),
        );
    }
    let bases: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.base
                .map(|(cpu, rss)| format!("{} {}: {cpu:.2} % / {rss:.1} MiB", r.label, r.viewers))
        })
        .collect();
    println!(
        "\nxiuload with 0 viewers (the base subtracted; CPU % of a core / RSS): {}",
        bases.join("; ")
    );
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Checks of the pure parts, run by `cargo test --all-targets` (see `main`).

fn self_check() {
    // Arguments: defaults, sizes, filters, and errors.
    let parse = |a: &[&str]| Args::parse(a.iter().map(|s| s.to_string()));
    let d = parse(&["--bench"]).unwrap();
    assert_eq!((d.sizes.as_slice(), d.repeats), (&[200][..], 3));
    assert_eq!(d.protocols, Protocol::ALL.to_vec());
    let a = parse(&[
        "100",
        "--repeats",
        "1",
        "--protocols",
        "rtmp,hls",
        "500",
        "--streams",
        "encoded",
    ])
    .unwrap();
    assert_eq!(a.sizes, vec![100, 500]);
    assert_eq!(a.repeats, 1);
    assert_eq!(a.protocols, vec![Protocol::Rtmp, Protocol::Hls]);
    assert_eq!(a.streams, vec![StreamKind::Encoded]);
    assert!(parse(&["--protocols", "dash"]).is_err());
    assert!(parse(&["--repeats"]).is_err());
    assert!(parse(&["0"]).is_err());

    // FLV facts from a synthetic file: 25 fps, a keyframe each second, 1 Mbit/s of video.
    let video = xiuload::media::h264::SyntheticVideo::new(&xiuload::media::h264::VideoParams {
        width: 320,
        height: 240,
        fps: 25,
        bitrate_bps: 1_000_000,
        gop_frames: 25,
    })
    .unwrap();
    let flv = xiuload::media::flv_file::write_flv(Some(&video), None, 4);
    let facts = flv_facts(&flv);
    assert!((99..=101).contains(&facts.video_tags), "{facts:?}");
    assert!((4..=5).contains(&facts.keyframes), "{facts:?}");
    assert!((0.9..1.1).contains(&facts.mbps()), "{facts:?}");
    assert!(facts.biggest_video >= 4_000, "{facts:?}");
    // A truncated file counts only its whole tags; something that is not FLV counts nothing.
    assert!(flv_facts(&flv[..flv.len() / 2]).video_tags < facts.video_tags);
    assert_eq!(flv_facts(b"HTTP/1.1 200 OK").video_tags, 0);

    // Windows: CPU from the first and last sample inside, RSS the largest inside.
    let at = |t: f64, cpu_s: f64, rss: u64| Sample {
        wall_ms: 1_000_000.0 + t * 1000.0,
        user_s: cpu_s,
        system_s: cpu_s / 2.0,
        rss,
    };
    let samples = [
        at(0.5, 0.0, 9),
        at(1.0, 0.1, 10),
        at(3.0, 0.3, 30),
        at(4.0, 0.4, 20),
        at(4.5, 9.0, 99),
    ];
    let (cpu, rss) = window(&samples, 1_000_000.0, (1.0, 4.0)).unwrap();
    assert!(
        (cpu.user - 10.0).abs() < 1e-9 && (cpu.system - 5.0).abs() < 1e-9,
        "{cpu:?}"
    );
    assert_eq!(rss, 30);
    assert!(window(&samples, 1_000_000.0, (5.0, 6.0)).is_none());

    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
}

//! `xiuload run`: drive the scenario's publishers and players, collect measurements once a second,
//! and write the reports, also when stopped early.

mod assemble;
mod clients;
pub mod endpoints;
pub mod knee;
mod knee_tracker;
pub mod loops;
pub mod prometheus;
pub mod slots;
pub mod status;

use crate::clock::{RunClock, rfc3339_from_unix_micros};
use crate::local::{LocalError, LocalTopology, find_xiu_binary};
use crate::media::aac::{AudioParams, SyntheticAudio};
use crate::media::h264::{SyntheticVideo, VideoParams};
use crate::metrics::loader::{CpuSampler, LagProbe, LoaderHealth};
use crate::metrics::timeline::{PlayerSecond, TimelineWriter, build_point};
use crate::metrics::{GroupMetrics, PlayerStats, PublisherStats};
use crate::player::PlayerTiming;
use crate::report::model::*;
use crate::report::{OutputDir, OutputError};
use crate::rtmp::url::RtmpBase;
use crate::scenario::plan::{Shape, run_length};
use crate::scenario::select::Selector;
use crate::scenario::{PlayerGroup, Protocol, PublisherGroup, Scenario, Selection};
use assemble::build_report;
use clients::{PlayerSlotContext, PublisherSlotContext, player_slot, publisher_slot};
use endpoints::{Endpoints, stream_name};
use loops::ClientLoops;
use rand::{SeedableRng, rngs::StdRng};
use slots::{Placement, control};
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub scenario_file: PathBuf,
    /// Output directory; `reports/<run-id>` when absent.
    pub out_dir: Option<PathBuf>,
    /// Print the live status line (to stderr).
    pub status_line: bool,
    /// Serve live metrics in the Prometheus text format on this address.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("synthetic media for publisher group {group:?}: {message}")]
    Media { group: String, message: String },
    #[error("{0}")]
    Setup(String),
    #[error("cluster watch: {0}")]
    Kube(#[from] crate::kube::KubeError),
}

pub struct Outcome {
    pub report: Report,
    pub out: OutputDir,
}

struct PublisherGroupRun {
    config: PublisherGroup,
    shape: Shape,
    streams: Vec<String>,
    video: SyntheticVideo,
    audio: Option<SyntheticAudio>,
    metrics: Arc<GroupMetrics<PublisherStats>>,
    steady: PublisherStats,
    warmup: PublisherStats,
}

struct PlayerGroupRun {
    config: PlayerGroup,
    shape: Shape,
    streams: Arc<Vec<String>>,
    metrics: Arc<GroupMetrics<PlayerStats>>,
    steady: PlayerStats,
    warmup: PlayerStats,
}

/// The load shape a run drives a player group with: the knee's steps for the knee's group, else
/// the group's own count or ramp.
pub fn player_shape(scenario: &Scenario, g: &PlayerGroup) -> Shape {
    match &scenario.knee {
        Some(k) if k.group == g.name => Shape::Ramp(knee::stages(k)),
        _ => Shape::from_group(g.count, g.ramp.as_deref()),
    }
}

/// How long a run of `scenario` is planned to last: `run.duration`, else its longest shape.
pub fn planned_length(scenario: &Scenario) -> std::time::Duration {
    let shapes: Vec<Shape> = scenario
        .publishers
        .iter()
        .map(|p| Shape::from_group(p.count, p.ramp.as_deref()))
        .chain(scenario.players.iter().map(|g| player_shape(scenario, g)))
        .collect();
    run_length(scenario.run.duration.map(|d| d.0), &shapes)
}

/// Runs a validated scenario until its plan ends or `shutdown` resolves, then writes the report.
pub async fn run(
    scenario: Scenario,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<Outcome, RunError> {
    let clock = RunClock::start_now();
    let name = scenario.run.name.clone().unwrap_or_else(|| {
        options
            .scenario_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into())
    });
    let run_id = format!("{name}-{}", compact_timestamp(clock.start_unix_micros()));
    let out_dir = options
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    // Fail fast on a taken metrics port or a missing xiu, before creating any output.
    let metrics_listener = match options.metrics_addr {
        Some(addr) => Some(
            prometheus::bind(addr)
                .await
                .map_err(|e| RunError::Setup(format!("--metrics-addr {addr}: {e}")))?,
        ),
        None => None,
    };
    let xiu_bin = match &scenario.target.local {
        Some(local) => Some(find_xiu_binary(local.xiu_bin.as_deref())?),
        None => None,
    };
    let out = OutputDir::prepare(&out_dir)?;
    let timeline_path = out.path(OutputDir::TIMELINE);
    let mut timeline =
        TimelineWriter::create(&timeline_path).map_err(|source| OutputError::Write {
            path: timeline_path.clone(),
            source,
        })?;

    // The cluster watcher records from before the first client connects, on the run's clock.
    let kube = match &scenario.kube {
        Some(section) => Some(crate::kube::KubeSession::start(section, clock, &out.dir).await?),
        None => None,
    };

    // The target: a local xiu we start, or the cluster's addresses.
    let (local, endpoints, target_label) = match &scenario.target.local {
        Some(local) => {
            let bin = xiu_bin
                .as_deref()
                .expect("resolved above for local targets");
            let app = &scenario.target.app;
            let topology =
                LocalTopology::start(bin, local.hls_fragment_secs, local.edges, app).await?;
            let (endpoints, label) = local_endpoints(&topology, app);
            (Some(topology), endpoints, label)
        }
        None => {
            let e = Endpoints::from_target(&scenario.target).map_err(RunError::Setup)?;
            let label = e
                .rtmp_publish
                .as_ref()
                .map(|b| format!("rtmp://{}", b.addr()))
                .or_else(|| e.flv_base.first().cloned())
                .or_else(|| e.hls_base.first().cloned())
                .unwrap_or_else(|| "remote".into());
            (None, e, label)
        }
    };
    let endpoints = Arc::new(endpoints);
    let http = build_http_client(&scenario)?;

    let mut publishers = Vec::new();
    for g in &scenario.publishers {
        let video = SyntheticVideo::new(&VideoParams {
            width: g.video.width,
            height: g.video.height,
            fps: g.video.fps,
            bitrate_bps: g.video.bitrate.bps(),
            gop_frames: ((g.video.gop.0.as_secs_f64() * g.video.fps as f64).round() as u32).max(1),
        })
        .map_err(|e| RunError::Media {
            group: g.name.clone(),
            message: e.to_string(),
        })?;
        let audio = if g.audio.enabled {
            Some(
                SyntheticAudio::new(&AudioParams {
                    bitrate_bps: g.audio.bitrate.bps(),
                })
                .map_err(|e| RunError::Media {
                    group: g.name.clone(),
                    message: e.to_string(),
                })?,
            )
        } else {
            None
        };
        let shape = Shape::from_group(g.count, g.ramp.as_deref());
        let slots = crate::scenario::max_slots(g.count, g.ramp.as_deref());
        publishers.push(PublisherGroupRun {
            streams: (0..slots).map(|i| stream_name(&g.stream, i)).collect(),
            config: g.clone(),
            shape,
            video,
            audio,
            metrics: GroupMetrics::new(),
            steady: PublisherStats::default(),
            warmup: PublisherStats::default(),
        });
    }
    let mut players = Vec::new();
    for g in &scenario.players {
        let streams = match (&g.publishers, &g.streams) {
            (Some(group), _) => publishers
                .iter()
                .find(|p| &p.config.name == group)
                .map(|p| p.streams.clone())
                .unwrap_or_default(),
            (None, Some(list)) => list.clone(),
            (None, None) => Vec::new(),
        };
        players.push(PlayerGroupRun {
            shape: player_shape(&scenario, g),
            config: g.clone(),
            streams: Arc::new(streams),
            metrics: GroupMetrics::new(),
            steady: PlayerStats::default(),
            warmup: PlayerStats::default(),
        });
    }
    let planned = planned_length(&scenario);
    // The status line shows progress through the first ramp's stages.
    let shapes: Vec<Shape> = publishers
        .iter()
        .map(|p| p.shape.clone())
        .chain(players.iter().map(|p| p.shape.clone()))
        .collect();
    let warmup = scenario.run.warmup.0;

    let peak_players: usize = players.iter().map(|p| p.shape.peak() as usize).sum();
    let client_loops = Arc::new(
        ClientLoops::sized_for(peak_players)
            .map_err(|e| RunError::Setup(format!("cannot start the client event loops: {e}")))?,
    );

    // Load starts here.
    let root = CancellationToken::new();
    let run_start = tokio::time::Instant::now();
    let mut controllers = tokio::task::JoinSet::new();
    for (gi, g) in publishers.iter().enumerate() {
        let ctx = PublisherSlotContext {
            base: endpoints
                .rtmp_publish
                .clone()
                .ok_or_else(|| RunError::Setup("no rtmp_publish address".into()))?,
            app: endpoints.app.clone(),
            streams: g.streams.clone(),
            video: g.video.clone(),
            audio: g.audio.clone(),
            metrics: g.metrics.clone(),
            clock,
            config: g.config.clone(),
            seed: scenario.run.seed ^ ((gi as u64 + 1) * 0x9E37_79B9),
        };
        let ctx = Arc::new(ctx);
        // Publishers stay on the main runtime: a handful of paced senders, not worth a loop.
        controllers.spawn(control(
            g.shape.clone(),
            run_start,
            root.clone(),
            Placement::Here,
            move |i, token| publisher_slot(ctx.clone(), i, token),
        ));
    }
    for (gi, g) in players.iter().enumerate() {
        let selector = match g.config.select {
            Selection::RoundRobin => Selector::round_robin(g.streams.len()),
            Selection::Zipf { exponent } => Selector::zipf(g.streams.len(), exponent),
        };
        let ctx = Arc::new(PlayerSlotContext {
            endpoints: endpoints.clone(),
            http: http.clone(),
            streams: g.streams.clone(),
            selector: Mutex::new((
                selector,
                StdRng::seed_from_u64(scenario.run.seed ^ ((gi as u64 + 101) * 0x9E37_79B9)),
            )),
            timing_base: PlayerTiming {
                first_frame_timeout: g.config.first_frame_timeout.0,
                read_timeout: g.config.read_timeout.0,
                startup_buffer: g.config.startup_buffer.map(|d| d.0).unwrap_or(
                    match g.config.protocol {
                        Protocol::Hls => Duration::from_secs(2),
                        _ => Duration::from_millis(500),
                    },
                ),
                session_length: None,
            },
            metrics: g.metrics.clone(),
            clock,
            config: g.config.clone(),
        });
        controllers.spawn(control(
            g.shape.clone(),
            run_start,
            root.clone(),
            Placement::Loops(client_loops.clone()),
            move |i, token| player_slot(ctx.clone(), i, token),
        ));
    }
    let exposition = prometheus::Exposition::default();
    let metrics_server = metrics_listener.map(|l| exposition.serve(l, root.clone()));
    let lag = LagProbe::default();
    // Lag is sampled on the main runtime and on every client loop: any of them falling behind
    // makes the loader's timestamps late.
    let lag_tasks: Vec<_> = std::iter::once(lag.spawn(root.clone()))
        .chain(
            client_loops
                .handles()
                .map(|h| lag.spawn_on(h, root.clone())),
        )
        .collect();
    let mut cpu = CpuSampler::new();
    let mut servers = crate::metrics::loader::ProcessSampler::new(
        local.as_ref().map(|t| t.pids()).unwrap_or_default(),
    );
    let serving = local.as_ref().map(|t| t.serving()).unwrap_or(1);
    let mut knee = scenario.knee.clone().map(|k| {
        let groups: Vec<(String, String)> = players
            .iter()
            .map(|g| {
                (
                    g.config.name.clone(),
                    g.config.protocol.as_str().to_string(),
                )
            })
            .collect();
        knee_tracker::KneeTracker::new(k, &groups)
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut loader = LoaderHealth::new(cores);

    let tty = options.status_line && std::io::stderr().is_terminal();
    let mut ticker =
        tokio::time::interval_at(run_start + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = run_start;
    tokio::pin!(shutdown);
    let stopped_by = loop {
        let elapsed = run_start.elapsed();
        if elapsed >= planned {
            break StopReason::Completed;
        }
        let next_end = run_start + planned;
        tokio::select! {
            _ = &mut shutdown => break StopReason::Interrupted,
            _ = ticker.tick() => {},
            _ = tokio::time::sleep_until(next_end) => {},
        }
        let now = tokio::time::Instant::now();
        let second = collect_second(
            &mut publishers,
            &mut players,
            &clock,
            now.duration_since(run_start),
            now.duration_since(last_tick),
            warmup,
            &mut loader,
            &mut cpu,
            &lag,
            &mut servers,
        );
        let point = &second.point;
        last_tick = now;
        let knee_broke = knee.as_mut().is_some_and(|k| {
            let active = players
                .iter()
                .find(|g| g.config.name == k.section.group)
                .map(|g| g.metrics.active())
                .unwrap_or(0);
            k.add_second(
                now.duration_since(run_start),
                point,
                &second.players,
                &second.publishers,
                active,
                &scenario.thresholds,
                point.loader_cpu_percent.unwrap_or(0.0) >= 90.0 * cores as f64,
            )
        });
        let _ = timeline.append(point);
        if metrics_server.is_some() {
            exposition.set(render_exposition(&publishers, &players, point));
        }
        if options.status_line {
            let stage = shapes.iter().find_map(|s| match s {
                Shape::Ramp(st) => s
                    .stage_at(Duration::from_secs_f64(point.t))
                    .map(|i| (i, st.len())),
                _ => None,
            });
            let line = status::status_line(point, planned.as_secs_f64(), stage);
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else if (point.t as u64).is_multiple_of(5) {
                eprintln!("{line}");
            }
        }
        if knee_broke {
            // The knee is found: more load would only measure a broken server.
            break StopReason::Completed;
        }
    };
    if tty {
        eprintln!();
    }

    // Stop the load, briefly wait for sessions to account their last moments, then report.
    root.cancel();
    let stop_deadline = tokio::time::Instant::now() + Duration::from_millis(1000);
    while tokio::time::timeout_at(stop_deadline, controllers.join_next())
        .await
        .is_ok_and(|r| r.is_some())
    {}
    controllers.abort_all();
    for t in &lag_tasks {
        t.abort();
    }
    // Joining the loop threads blocks (briefly, for sessions that ignored the stop).
    let _ = tokio::task::spawn_blocking(move || drop(client_loops)).await;
    let now = tokio::time::Instant::now();
    let second = collect_second(
        &mut publishers,
        &mut players,
        &clock,
        now.duration_since(run_start),
        now.duration_since(last_tick),
        warmup,
        &mut loader,
        &mut cpu,
        &lag,
        &mut servers,
    );
    let _ = timeline.append(&second.point);
    // The timeline is read back from its file: it is what the report describes, flushed line by
    // line, and the cluster analysis joins against exactly that.
    let points = crate::metrics::timeline::read_timeline(&timeline_path).unwrap_or_default();
    let cluster = match kube {
        Some(session) => {
            let recorded = session.stop().await;
            let load = &points;
            let report = crate::kube::analyse(&recorded, load);
            // What `xiuload hpa-replay` needs: per-pod usage, readiness and requests per poll.
            let replay = crate::kube::replay_input::build(
                &recorded,
                &report.replicas,
                scenario
                    .kube
                    .as_ref()
                    .map_or(15.0, |k| k.metrics_interval.0.as_secs_f64()),
            );
            let _ = out.write(
                crate::hpa::replay::INPUT_FILE,
                &serde_json::to_vec_pretty(&replay).expect("replay input serialises"),
            );
            let verdicts = crate::kube::judge(
                &scenario.expect,
                &report,
                load,
                &crate::kube::expect::stage_starts(&scenario),
            );
            Some((report, verdicts))
        }
        None => None,
    };
    let knee_report = knee.map(|mut k| {
        if stopped_by == StopReason::Completed {
            k.finish_step(&scenario.thresholds);
        }
        knee::summarise(&k.section, k.results, serving)
    });

    let ended = now.duration_since(run_start);
    let report = build_report(
        &scenario,
        &options,
        &run_id,
        &name,
        &target_label,
        &clock,
        planned,
        ended,
        warmup,
        stopped_by,
        &publishers,
        &players,
        loader,
        knee_report,
        cluster,
    );
    out.write_report(&report, &points)?;
    if let Some(topology) = local {
        topology.stop().await;
    }
    Ok(Outcome { report, out })
}

fn render_exposition(
    publishers: &[PublisherGroupRun],
    players: &[PlayerGroupRun],
    last: &crate::metrics::timeline::TimelinePoint,
) -> String {
    let players: Vec<prometheus::PlayerGroupView<'_>> = players
        .iter()
        .map(|g| prometheus::PlayerGroupView {
            name: &g.config.name,
            protocol: g.config.protocol.as_str(),
            active: g.metrics.active(),
            totals: [&g.warmup, &g.steady],
        })
        .collect();
    let publishers: Vec<prometheus::PublisherGroupView<'_>> = publishers
        .iter()
        .map(|g| prometheus::PublisherGroupView {
            name: &g.config.name,
            active: g.metrics.active(),
            totals: [&g.warmup, &g.steady],
        })
        .collect();
    prometheus::render(&players, &publishers, last)
}

/// Publishers go to the origin; viewers are spread over the edges (or the one xiu).
fn local_endpoints(t: &LocalTopology, app: &str) -> (Endpoints, String) {
    let origin = t.origin.ports;
    let loopback = |port| RtmpBase {
        host: "127.0.0.1".into(),
        port,
    };
    let servers: Vec<crate::local::XiuPorts> = if t.edges.is_empty() {
        vec![origin]
    } else {
        t.edges.iter().map(|e| e.xiu.ports).collect()
    };
    let endpoints = Endpoints {
        app: app.to_string(),
        rtmp_publish: Some(loopback(origin.rtmp)),
        rtmp_play: servers.iter().map(|p| loopback(p.rtmp)).collect(),
        flv_base: servers
            .iter()
            .map(|p| format!("http://127.0.0.1:{}", p.flv))
            .collect(),
        hls_base: servers
            .iter()
            .map(|p| format!("http://127.0.0.1:{}", p.hls))
            .collect(),
        paths: endpoints::UrlPaths::default(),
    };
    let label = if t.edges.is_empty() {
        format!(
            "a local xiu (rtmp {}, http-flv {}, hls {})",
            origin.rtmp, origin.flv, origin.hls
        )
    } else {
        format!(
            "a local origin (rtmp {}) and {} edges with sidecars (http-flv {})",
            origin.rtmp,
            t.edges.len(),
            servers
                .iter()
                .map(|p| p.flv.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    (endpoints, label)
}

fn compact_timestamp(unix_micros: u64) -> String {
    // 2026-11-25T19:55:33.000Z -> 20261125-195533
    let s = rfc3339_from_unix_micros(unix_micros);
    format!(
        "{}{}{}-{}{}{}",
        &s[0..4],
        &s[5..7],
        &s[8..10],
        &s[11..13],
        &s[14..16],
        &s[17..19]
    )
}

fn build_http_client(scenario: &Scenario) -> Result<reqwest::Client, RunError> {
    let tls = &scenario.target.tls;
    let mut builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("xiuload/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &tls.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| RunError::Setup(format!("target.tls.ca_file {}: {e}", ca.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| RunError::Setup(format!("target.tls.ca_file {}: {e}", ca.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    if tls.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| RunError::Setup(format!("HTTP client: {e}")))
}

/// Takes every group's window, folds it into the run totals, and returns the timeline point.
#[allow(clippy::too_many_arguments)]
fn collect_second(
    publishers: &mut [PublisherGroupRun],
    players: &mut [PlayerGroupRun],
    clock: &RunClock,
    at: Duration,
    window: Duration,
    warmup: Duration,
    loader: &mut LoaderHealth,
    cpu: &mut CpuSampler,
    lag: &LagProbe,
    servers: &mut crate::metrics::loader::ProcessSampler,
) -> Second {
    let in_warmup = at <= warmup;
    let pub_windows: Vec<(u64, PublisherStats)> = publishers
        .iter()
        .map(|g| (g.metrics.active(), g.metrics.take_window()))
        .collect();
    let player_windows: Vec<(u64, PlayerStats)> = players
        .iter()
        .map(|g| (g.metrics.active(), g.metrics.take_window()))
        .collect();
    let point = {
        let pubs: Vec<(u64, &PublisherStats)> = pub_windows.iter().map(|(a, w)| (*a, w)).collect();
        let plays: Vec<PlayerSecond<'_>> = players
            .iter()
            .zip(&player_windows)
            .map(|(g, (active, w))| PlayerSecond {
                protocol: g.config.protocol.as_str(),
                active: *active,
                window: w,
            })
            .collect();
        let wall_ms = (clock.start_unix_micros() + at.as_micros() as u64) / 1000;
        build_point(
            at.as_secs_f64(),
            wall_ms,
            window.as_secs_f64(),
            &pubs,
            &plays,
        )
    };
    for (g, (_, w)) in publishers.iter_mut().zip(&pub_windows) {
        if in_warmup {
            g.warmup.merge(w)
        } else {
            g.steady.merge(w)
        }
    }
    for (g, (_, w)) in players.iter_mut().zip(&player_windows) {
        if in_warmup {
            g.warmup.merge(w)
        } else {
            g.steady.merge(w)
        }
    }
    // The last window of a run can be a few milliseconds long: a CPU share measured over it is
    // noise, so it is neither shown nor judged.
    let cpu_percent = cpu
        .sample()
        .filter(|_| window >= Duration::from_millis(500));
    let lag_window = lag.take_window();
    let mut point = point;
    point.loader_cpu_percent = cpu_percent.map(|c| (c * 10.0).round() / 10.0);
    point.loader_lag_ms_max = lag_window.max_ms();
    point.loader_rss_mib = crate::metrics::loader::rss_bytes(std::process::id())
        .map(|b| (b as f64 / 1_048_576.0 * 10.0).round() / 10.0);
    loader.add_second(cpu_percent, &lag_window);
    let (server_cpu, server_rss) = servers.sample();
    point.server_cpu_percent = server_cpu;
    point.server_rss_mib = server_rss;
    Second {
        point,
        players: player_windows.into_iter().map(|(_, w)| w).collect(),
        publishers: pub_windows.into_iter().map(|(_, w)| w).collect(),
    }
}

/// One collected second: the timeline point and the raw windows (for per-step judging).
struct Second {
    point: crate::metrics::timeline::TimelinePoint,
    players: Vec<PlayerStats>,
    publishers: Vec<PublisherStats>,
}

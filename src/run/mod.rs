//! `xiuload run`: set up, start the clock, drive the scenario's publishers and players, collect
//! measurements once a second, and write the reports, also when stopped early.
//!
//! A run is: [`setup`] (everything slow: output files, the local xiu, the kubeconfig, synthetic
//! media) → the run clock starts, one zero for the load and the cluster → group controllers
//! ([`slots`]) run the clients → the [`collector`] folds each second's windows → stop → the
//! report ([`assemble`]).

mod assemble;
pub mod assembler;
mod clients;
pub mod collector;
mod coordinator;
pub mod endpoints;
pub mod faults;
mod knee_tracker;
pub mod loops;
pub mod merge;
pub mod prometheus;
pub mod render;
mod setup;
pub mod slots;
mod sources;
pub mod status;
pub mod worker;

use crate::clock::RunClock;
use crate::k8s::KubeSession;
use crate::local::{LocalError, LocalTopology};
use crate::metrics::loader::{CpuSampler, LagProbe, ProcessSampler};
use crate::player::PlayerTiming;
use crate::report::model::*;
use crate::report::{OutputDir, OutputError};
use crate::rtmp::url::RtmpBase;
use crate::scenario::plan::Shape;
use crate::scenario::select::Selector;
use crate::scenario::shard::Shard;
use crate::scenario::{Protocol, Scenario, Selection};
use clients::{PlayerSlotContext, PublisherSlotContext, player_slot, publisher_slot};
use collector::{Collector, PlayerGroupInfo};
use endpoints::Endpoints;
use setup::{PlayerGroupRun, Prepared, PublisherGroupRun};
use slots::{Placement, control};
use sources::LocalSource;
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::report::knee;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub scenario_file: PathBuf,
    /// Output directory; `reports/<run-id>` when absent.
    pub out_dir: Option<PathBuf>,
    /// Print the live status line (to stderr).
    pub status_line: bool,
    /// Serve live metrics in the Prometheus text format on this address.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The run's time zero as a wall-clock instant (µs since the Unix epoch), shared by
    /// load generators run by hand on several machines so `xiuload merge` can join them.
    pub start_at_unix_micros: Option<u64>,
    /// Split the run over this many `xiuload worker` processes on this machine.
    pub local_workers: Option<u32>,
    /// Run only this part of the plan (a run split by hand over several machines, joined by
    /// `xiuload merge`).
    pub shard: Option<Shard>,
    /// Split the run over this many worker pods of a Kubernetes Indexed Job (overrides
    /// `[distributed].workers`); applied to the scenario before `run` by the caller.
    pub workers: Option<u32>,
    /// Leave the worker Job and ConfigMap in the cluster after the run.
    pub keep: bool,
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
    Kube(#[from] crate::k8s::KubeError),
    #[error("interrupted before the run's time zero: nothing was measured")]
    InterruptedBeforeStart,
}

pub struct Outcome {
    pub report: Report,
    pub out: OutputDir,
    /// The report files that could not be written (a full disk): the report itself is whole.
    pub write_error: Option<OutputError>,
}

/// Runs a validated scenario until its plan ends or `shutdown` resolves, then writes the report.
/// A failure once the output directory exists leaves an error report there that says why.
pub async fn run(
    scenario: Scenario,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<Outcome, RunError> {
    tokio::pin!(shutdown);
    let who = setup::identity(&scenario, &options);
    // Fail fast on a taken metrics port or a missing xiu, before creating any output.
    let metrics_listener = match options.metrics_addr {
        Some(addr) => Some(
            prometheus::bind(addr)
                .await
                .map_err(|e| RunError::Setup(format!("--metrics-addr {addr}: {e}")))?,
        ),
        None => None,
    };
    let xiu_bin = setup::check_xiu(&scenario)?;
    let out = OutputDir::prepare(&who.out_dir)?;
    let ready = get_ready(&scenario, &options, &who, xiu_bin, &out, shutdown.as_mut());
    let mut ready = match ready.await {
        Ok(ready) => ready,
        Err(e) => {
            out.write_error(&no_load_because(&e));
            return Err(e);
        }
    };
    let measured = measure(&scenario, &options, &mut ready, metrics_listener, shutdown);
    let Measured {
        stopped_by,
        ended,
        faults,
        collecting,
    } = match measured.await {
        Ok(measured) => measured,
        Err(e) => {
            out.write_error(&no_load_because(&e));
            return Err(e);
        }
    };
    let run = Finished {
        who,
        out,
        stopped_by,
        ended,
        clock: ready.clock,
        faults,
    };
    finish(
        scenario,
        options,
        run,
        ready.prepared,
        collecting,
        ready.kube,
    )
    .await
}

/// What the error report of a run that ended before its load says.
fn no_load_because(e: &RunError) -> String {
    match e {
        RunError::InterruptedBeforeStart => e.to_string(),
        _ => format!("the run stopped before any load: {e}"),
    }
}

/// Everything a run needs at its time zero, which has come.
struct Ready {
    prepared: Prepared,
    /// The workers making the load of a distributed run.
    fleet: Option<coordinator::Fleet>,
    /// One clock for the whole run: its zero is the instant the load starts, and the cluster
    /// watcher stamps on it too, so a cluster change and a load change at the same wall instant
    /// land at the same `t`, however long setup took. Workers are given the same instant.
    clock: RunClock,
    kube: Option<KubeSession>,
    /// Cluster faults act through the watcher's client, resolved before the clock started.
    fault_cluster: Option<faults::Cluster>,
}

/// Setup, the workers (if the run is split), the clock's zero and the cluster watcher. Workers
/// already started are stopped again when a later step fails.
async fn get_ready(
    scenario: &Scenario,
    options: &RunOptions,
    who: &setup::Identity,
    xiu_bin: Option<PathBuf>,
    out: &OutputDir,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Ready, RunError> {
    let mut prepared = setup::prepare(scenario, xiu_bin, out).await?;
    // `--local-workers` splits the run on this machine even when the scenario says how to split
    // it in a cluster.
    let fleet = match (options.local_workers, &scenario.distributed) {
        (Some(n), _) => {
            Some(coordinator::Fleet::spawn_local(&options.scenario_file, n, &prepared, out).await?)
        }
        (None, Some(section)) => Some(
            coordinator::Fleet::spawn_kube(
                scenario,
                section,
                &options.scenario_file,
                &who.id,
                options.keep,
                shutdown.as_mut(),
            )
            .await?,
        ),
        (None, None) => None,
    };
    let started = start_clock(&fleet, options.start_at_unix_micros, shutdown).await;
    let watched = started.and_then(|clock| {
        let kube = prepared.kube.take();
        let fault_cluster = match (&kube, &scenario.kube) {
            (Some(connected), Some(section)) => Some(faults::Cluster {
                client: connected.client(),
                section: section.clone(),
            }),
            _ => None,
        };
        let kube = kube.map(|c| c.start(clock, &out.dir)).transpose()?;
        Ok((clock, kube, fault_cluster))
    });
    match watched {
        Ok((clock, kube, fault_cluster)) => Ok(Ready {
            prepared,
            fleet,
            clock,
            kube,
            fault_cluster,
        }),
        Err(e) => {
            abandon(fleet).await;
            Err(e)
        }
    }
}

/// The run's clock, once its zero has come: the workers' agreed start, `--start-at`, or now.
async fn start_clock(
    fleet: &Option<coordinator::Fleet>,
    start_at_unix_micros: Option<u64>,
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<RunClock, RunError> {
    let clock = match (fleet, start_at_unix_micros) {
        (Some(f), _) => f.start().await?,
        (None, Some(at)) => RunClock::at_unix_micros(at),
        (None, None) => RunClock::start_now(),
    };
    tokio::select! {
        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(clock.start_instant())) => Ok(clock),
        _ = shutdown => Err(RunError::InterruptedBeforeStart),
    }
}

/// What the load phase leaves for the report.
struct Measured {
    stopped_by: StopReason,
    /// When the load stopped, on the run clock.
    ended: Duration,
    /// What the fault driver did.
    faults: Vec<crate::scenario::fault::FaultEvent>,
    collecting: Collecting,
}

/// From time zero until the plan ends or `shutdown`: the load (made here or by the workers),
/// the collector, the fault driver and the live metrics; then everything stops.
async fn measure(
    scenario: &Scenario,
    options: &RunOptions,
    ready: &mut Ready,
    metrics_listener: Option<tokio::net::TcpListener>,
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Measured, RunError> {
    let prepared = &mut ready.prepared;
    let load = match ready.fleet.take() {
        None => {
            let shard = options.shard.unwrap_or(Shard::WHOLE);
            LoadMaker::Here(Load::start(scenario, prepared, ready.clock, shard)?)
        }
        Some(fleet) => LoadMaker::Workers(fleet),
    };
    let lag = match &load {
        LoadMaker::Here(load) => Some(load.lag.clone()),
        LoadMaker::Workers(_) => None,
    };
    let stop_metrics = CancellationToken::new();
    let mut collecting = Collecting::new(scenario, options, prepared, lag, ready.clock);
    if let Some(listener) = metrics_listener {
        let exposition = prometheus::Exposition::default();
        exposition.serve(listener, stop_metrics.clone());
        collecting.exposition = Some(exposition);
    }
    // From here until the load stops, the fault driver holds the local topology.
    let driver = faults::Driver::start(
        &scenario.fault,
        &mut prepared.local,
        ready.fault_cluster.clone(),
        ready.clock,
    );
    collecting.faults = faults::Marks::new(driver.log());
    let (stopped_by, ended, faults) = match load {
        LoadMaker::Here(load) => {
            let stopped_by = collecting.until_done(prepared, shutdown).await;
            let ended = load.stop(prepared).await;
            let faults = driver.stop(&mut prepared.local).await;
            collecting.tick(ended, true, prepared);
            (stopped_by, ended, faults)
        }
        LoadMaker::Workers(fleet) => {
            let (stopped_by, ended) = fleet.drive(&mut collecting, prepared, shutdown).await;
            (stopped_by, ended, driver.stop(&mut prepared.local).await)
        }
    };
    stop_metrics.cancel();
    Ok(Measured {
        stopped_by,
        ended,
        faults,
        collecting,
    })
}

/// Stops the workers of a run that ends before its load (and deletes their Job).
async fn abandon(fleet: Option<coordinator::Fleet>) {
    if let Some(fleet) = fleet {
        fleet.abandon().await;
    }
}

/// The collecting side of a run: the collector, this process's window source (none when
/// workers make the load), the timeline file, and the live views (status line, Prometheus).
struct Collecting {
    collector: Collector,
    source: LocalSource,
    timeline: Option<crate::metrics::timeline::TimelineWriter>,
    /// `windows.jsonl`: every window as it was collected, what `xiuload merge` joins.
    windows: Option<crate::metrics::timeline::TimelineWriter>,
    last_seq: u64,
    /// What the report should say about how the windows were gathered (e.g. a worker that
    /// could not be reached for a while).
    notes: Vec<String>,
    exposition: Option<prometheus::Exposition>,
    status_line: bool,
    tty: bool,
    planned: Duration,
    shapes: Vec<Shape>,
    last_tick: Duration,
    /// Marks the timeline's points with the faults begun in their second.
    faults: faults::Marks,
}

impl Collecting {
    fn new(
        scenario: &Scenario,
        options: &RunOptions,
        p: &mut Prepared,
        lag: Option<LagProbe>,
        clock: RunClock,
    ) -> Collecting {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let groups: Vec<PlayerGroupInfo> = p
            .players
            .iter()
            .map(|g| PlayerGroupInfo {
                name: g.config.name.clone(),
                protocol: g.config.protocol,
            })
            .collect();
        Collecting {
            collector: Collector::new(
                clock,
                scenario.run.warmup.0,
                cores,
                &p.publishers
                    .iter()
                    .map(|g| g.config.name.clone())
                    .collect::<Vec<_>>(),
                &groups,
                scenario.thresholds.clone(),
                scenario.knee.clone(),
            ),
            source: LocalSource {
                publishers: p.publishers.iter().map(|g| g.metrics.clone()).collect(),
                players: p.players.iter().map(|g| g.metrics.clone()).collect(),
                cpu: CpuSampler::new(),
                lag: lag.unwrap_or_default(),
                servers: ProcessSampler::new(
                    p.local.as_ref().map(|t| t.servers()).unwrap_or_default(),
                ),
            },
            timeline: p.timeline.take(),
            windows: p.windows.take(),
            last_seq: 0,
            exposition: None,
            status_line: options.status_line,
            tty: options.status_line && std::io::stderr().is_terminal(),
            planned: p.plan.length,
            shapes: p.plan.shapes().cloned().collect(),
            last_tick: Duration::ZERO,
            notes: Vec::new(),
            faults: faults::Marks::default(),
        }
    }

    /// Collects a window every second until the plan ends, the knee is found or `shutdown`.
    async fn until_done(&mut self, p: &Prepared, shutdown: impl Future<Output = ()>) -> StopReason {
        let mut ticks = SecondTicks::new(self.collector.clock(), self.planned);
        tokio::pin!(shutdown);
        let stopped_by = loop {
            let at = tokio::select! {
                _ = &mut shutdown => break StopReason::Interrupted,
                at = ticks.next() => at,
            };
            let Some(at) = at else {
                break StopReason::Completed;
            };
            if self.tick(at, false, p).knee_broke {
                // The knee is found: more load would only measure a broken server.
                break StopReason::Completed;
            }
        };
        self.end_status_line();
        stopped_by
    }

    fn end_status_line(&self) {
        if self.tty {
            eprintln!();
        }
    }

    /// Takes this process's window ending `at` and adds it; `last` after the load stopped.
    fn tick(&mut self, at: Duration, last: bool, p: &Prepared) -> collector::Tick {
        let window = self.source.take(at, at.saturating_sub(self.last_tick));
        self.last_tick = at;
        self.add(window, last, p)
    }

    /// Adds a window (this process's, or the workers' merged) and shows it.
    fn add(&mut self, window: collector::Window, last: bool, p: &Prepared) -> collector::Tick {
        if let Some(log) = &mut self.windows {
            let at = window.at.as_secs_f64();
            self.last_seq = assembler::window_seq(at, self.last_seq, last);
            let record = assembler::WindowRecord {
                seq: self.last_seq,
                last,
                window,
            };
            let _ = log.append_line(&record, at);
            return self.show(record.window, p);
        }
        self.show(window, p)
    }

    fn show(&mut self, window: collector::Window, p: &Prepared) -> collector::Tick {
        let (since, at) = (window.at.saturating_sub(window.length), window.at);
        let tick = self.collector.add(window);
        let Some(point) = self.collector.last_point() else {
            return tick;
        };
        if let Some(timeline) = &mut self.timeline {
            // The writer reports its first failure itself and stops; the report still carries
            // every point, from memory.
            let index = self.collector.points().len() - 1;
            let marks = self.faults.take(index, since, at);
            let _ = if marks.is_empty() {
                timeline.append(point)
            } else {
                timeline.append(&marks.on(point))
            };
        }
        if let Some(exposition) = &self.exposition {
            exposition.set(render_exposition(
                &p.publishers,
                &p.players,
                &self.collector,
                point,
            ));
        }
        if self.status_line {
            let stage = self.shapes.iter().find_map(|s| match s {
                Shape::Ramp(st) => s
                    .stage_at(Duration::from_secs_f64(point.t))
                    .map(|i| (i, st.len())),
                _ => None,
            });
            let line = status::status_line(point, self.planned.as_secs_f64(), stage);
            if self.tty {
                eprint!("\r\x1b[2K{line}");
            } else if (point.t as u64).is_multiple_of(5) {
                eprintln!("{line}");
            }
        }
        tick
    }
}

/// A tick at every whole second of the run clock until the plan's end.
struct SecondTicks {
    clock: RunClock,
    planned: Duration,
    ticker: tokio::time::Interval,
}

impl SecondTicks {
    fn new(clock: RunClock, planned: Duration) -> SecondTicks {
        let zero = tokio::time::Instant::from_std(clock.start_instant());
        let mut ticker =
            tokio::time::interval_at(zero + Duration::from_secs(1), Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        SecondTicks {
            clock,
            planned,
            ticker,
        }
    }

    /// The run time of the next tick (the plan's end is one too); `None` once the plan is over.
    async fn next(&mut self) -> Option<Duration> {
        if self.clock.elapsed() >= self.planned {
            return None;
        }
        let end = tokio::time::Instant::from_std(self.clock.start_instant()) + self.planned;
        tokio::select! {
            _ = self.ticker.tick() => {},
            _ = tokio::time::sleep_until(end) => {},
        }
        Some(self.clock.elapsed())
    }
}

/// How a run ended.
struct Finished {
    who: setup::Identity,
    out: OutputDir,
    stopped_by: StopReason,
    ended: Duration,
    clock: RunClock,
    /// What the fault driver did.
    faults: Vec<crate::scenario::fault::FaultEvent>,
}

/// Joins the cluster's record with the load, judges, and writes the report.
async fn finish(
    scenario: Scenario,
    options: RunOptions,
    run: Finished,
    prepared: Prepared,
    mut collecting: Collecting,
    kube: Option<KubeSession>,
) -> Result<Outcome, RunError> {
    let mut points = collecting.collector.points().to_vec();
    collecting.faults.apply(&mut points);
    let cluster = match kube {
        Some(session) => Some(analyse_cluster(
            &scenario,
            session.stop().await,
            &points,
            &run.out,
        )),
        None => None,
    };
    // Fault expectations are judged on the load alone: with or without a watched cluster.
    let expectations = crate::k8s::judge(
        &scenario.expect,
        cluster.as_ref(),
        &points,
        &crate::k8s::expect::stage_starts(&scenario),
        crate::scenario::fault::FaultRecord {
            events: &run.faults,
            load_end: Some(prepared.plan.length.min(run.ended).as_secs_f64()),
        },
    );
    // The pods behind the measured capacity: the edges (or the one xiu) for viewers, the
    // origins for publishers.
    let (clients, servers) = if prepared.plan.knee_steps_publishers {
        let origins = prepared.local.as_ref().map(|t| t.origins().count() as u32);
        (knee::KneeClients::Publishers, origins.unwrap_or(1))
    } else {
        let serving = prepared.local.as_ref().map(|t| t.serving());
        (knee::KneeClients::Viewers, serving.unwrap_or(1))
    };
    let knee_report = collecting
        .collector
        .finish_knee(run.stopped_by == StopReason::Completed)
        .map(|(section, steps)| knee::summarise(&section, clients, steps, servers));
    let report = assemble::build_report(assemble::Inputs {
        scenario: &scenario,
        plan: &prepared.plan,
        options: &options,
        run_id: &run.who.id,
        name: &run.who.name,
        target: &prepared.target_label,
        clock: &run.clock,
        ended: run.ended,
        stopped_by: run.stopped_by,
        collector: &collecting.collector,
        knee: knee_report,
        cluster,
        expectations,
        faults: &run.faults,
        kubelet: &collecting.faults.kubelet_events(),
    });
    let mut report = report;
    report.notes.append(&mut collecting.notes);
    if let Some(cut) = collecting.timeline.as_ref().and_then(|t| t.failure()) {
        report.notes.push(format!(
            "timeline.jsonl stops at t={:.0}s ({}): report.json carries the whole run",
            cut.at_t, cut.message
        ));
    }
    // A full disk must not lose the run: the summary is printed whatever happens here.
    let write_error = run.out.write_report(&report, &points).err();
    if let Some(topology) = prepared.local {
        topology.stop().await;
    }
    Ok(Outcome {
        report,
        out: run.out,
        write_error,
    })
}

/// The cluster analysis, and `hpa-input.json` for `xiuload hpa-replay`.
fn analyse_cluster(
    scenario: &Scenario,
    recorded: crate::k8s::ClusterTimeline,
    load: &[crate::metrics::timeline::TimelinePoint],
    out: &OutputDir,
) -> crate::k8s::ClusterReport {
    let report = crate::k8s::analyse(&recorded, load);
    let replay = crate::hpa::input::build(
        &recorded,
        &report.replicas,
        scenario
            .kube
            .as_ref()
            .map_or(15.0, |k| k.metrics_interval.0.as_secs_f64()),
    );
    if let Err(e) = out.write(
        crate::hpa::replay::INPUT_FILE,
        &serde_json::to_vec_pretty(&replay).expect("replay input serialises"),
    ) {
        eprintln!("warning: {e}");
    }
    report
}

/// Who makes the load: this process, or the workers of a distributed run.
enum LoadMaker {
    Here(Load),
    Workers(coordinator::Fleet),
}

/// The running load: group controllers and the lag probes, all stopped by one token.
struct Load {
    stop: CancellationToken,
    controllers: JoinSet<()>,
    lag_tasks: Vec<JoinHandle<()>>,
    lag: LagProbe,
    clock: RunClock,
}

impl Load {
    fn start(
        scenario: &Scenario,
        p: &Prepared,
        clock: RunClock,
        shard: Shard,
    ) -> Result<Load, RunError> {
        let stop = CancellationToken::new();
        let run_start = tokio::time::Instant::from_std(clock.start_instant());
        let mut controllers = JoinSet::new();
        let base = setup::publish_base(&p.endpoints, p.publishers.len())?;
        let loops = p
            .client_loops
            .clone()
            .expect("the client loops live until the load stops");
        for (gi, g) in p.publishers.iter().enumerate() {
            let ctx = Arc::new(PublisherSlotContext {
                base: base.clone().expect("checked: publishers need an address"),
                app: p.endpoints.app.clone(),
                streams: g.streams.clone(),
                token: p.publish_token.clone(),
                video: g.video.clone(),
                audio: g.audio.clone(),
                metrics: g.metrics.clone(),
                clock,
                config: g.config.clone(),
                seed: scenario.run.seed ^ ((gi as u64 + 1) * 0x9E37_79B9),
            });
            // Publishers stay on the main runtime: a handful of paced senders, not worth a loop.
            controllers.spawn(control(
                g.shape.clone(),
                run_start,
                stop.clone(),
                Placement::Here,
                shard,
                move |i, token| publisher_slot(ctx.clone(), i, token),
            ));
        }
        for (gi, g) in p.players.iter().enumerate() {
            let ctx = Arc::new(player_context(scenario, p, g, gi, clock));
            controllers.spawn(control(
                g.shape.clone(),
                run_start,
                stop.clone(),
                Placement::Loops(loops.clone()),
                shard,
                move |i, token| player_slot(ctx.clone(), i, token),
            ));
        }
        let lag = LagProbe::default();
        // Lag is sampled on the main runtime and on every client loop: any of them falling
        // behind makes the loader's timestamps late.
        let lag_tasks = std::iter::once(lag.spawn(stop.clone()))
            .chain(loops.handles().map(|h| lag.spawn_on(h, stop.clone())))
            .collect();
        Ok(Load {
            stop,
            controllers,
            lag_tasks,
            lag,
            clock,
        })
    }

    /// Stops the load and briefly waits for sessions to account their last moments; returns
    /// when the load ended on the run clock.
    async fn stop(mut self, p: &mut Prepared) -> Duration {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1000);
        while tokio::time::timeout_at(deadline, self.controllers.join_next())
            .await
            .is_ok_and(|r| r.is_some())
        {}
        self.controllers.abort_all();
        for t in &self.lag_tasks {
            t.abort();
        }
        // Joining the loop threads blocks (briefly, for sessions that ignored the stop).
        let loops = p.client_loops.take();
        let _ = tokio::task::spawn_blocking(move || drop(loops)).await;
        self.clock.elapsed()
    }
}

fn player_context(
    scenario: &Scenario,
    p: &Prepared,
    g: &PlayerGroupRun,
    gi: usize,
    clock: RunClock,
) -> PlayerSlotContext {
    let selector = match g.config.select {
        Selection::RoundRobin => Selector::round_robin(g.streams.len()),
        Selection::Zipf { exponent } => Selector::zipf(g.streams.len(), exponent),
    };
    PlayerSlotContext {
        endpoints: p.endpoints.clone(),
        http: p.http.clone(),
        streams: g.streams.clone(),
        selector,
        seed: scenario.run.seed ^ ((gi as u64 + 101) * 0x9E37_79B9),
        slots: g.shape.peak(),
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
    }
}

fn render_exposition(
    publishers: &[PublisherGroupRun],
    players: &[PlayerGroupRun],
    c: &Collector,
    last: &crate::metrics::timeline::TimelinePoint,
) -> String {
    let players: Vec<prometheus::PlayerGroupView<'_>> = players
        .iter()
        .zip(&c.players)
        .zip(&c.players_active)
        .map(|((g, t), active)| prometheus::PlayerGroupView {
            name: &g.config.name,
            protocol: g.config.protocol.as_str(),
            active: *active,
            totals: [&t.warmup, &t.steady],
        })
        .collect();
    let publishers: Vec<prometheus::PublisherGroupView<'_>> = publishers
        .iter()
        .zip(&c.publishers)
        .zip(&c.publishers_active)
        .map(|((g, t), active)| prometheus::PublisherGroupView {
            name: &g.config.name,
            active: *active,
            totals: [&t.warmup, &t.steady],
        })
        .collect();
    prometheus::render(&players, &publishers, last)
}

/// Publishers go to the origin; viewers are spread over the edges (or the one xiu).
pub(super) fn local_endpoints(t: &LocalTopology, app: &str) -> (Endpoints, String) {
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
        // Through the balancer when there are several origins, as publishers reach deploy/'s.
        rtmp_publish: Some(loopback(t.publish_port())),
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
        // New viewer sessions skip edges the local kubelet took out of rotation.
        rotation: (!t.edges.is_empty()).then(|| t.rotation.clone()),
    };
    let label = if t.edges.is_empty() {
        format!(
            "a local xiu (rtmp {}, http-flv {}, hls {})",
            origin.rtmp, origin.flv, origin.hls
        )
    } else {
        let origins = match t.origins().count() {
            1 => format!("a local origin (rtmp {})", origin.rtmp),
            n => format!(
                "{n} local origins behind HAProxy (rtmp {})",
                t.publish_port()
            ),
        };
        format!(
            "{origins} and {} edges with sidecars (http-flv {})",
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

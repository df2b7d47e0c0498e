//! `xiuload worker`: one shard of a distributed run. It prepares its part of the load, says so,
//! waits for the coordinator's start instant (the run's one time zero), runs its slots of the
//! plan (see [`crate::scenario::shard`]) and keeps each second's window until the coordinator
//! has taken it, so a coordinator cut off for a while catches up when it comes back.
//!
//! Served over HTTP (the coordinator reaches it directly on this machine, or through the API
//! server's pod proxy in a cluster):
//! - `GET /readyz`: 200 once the load is prepared, 503 before (and with the reason, after a
//!   failure);
//! - `POST /start?at_unix_ms=N`: the run's time zero, a wall-clock instant;
//! - `GET /windows?after=N`: the windows after number `N`, as `{"phase", "records"}`; asking
//!   past the last window acknowledges it and lets the worker exit; `&ready=0,2` (a local
//!   topology's coordinator) puts exactly those edges in this worker's rotation;
//! - `POST /stop`: end the load now (Ctrl-C at the coordinator, a knee found).
//!
//! Nothing runs for ever: a worker never started exits after `start_timeout`, and a finished one
//! whose last window nobody takes exits after [`LINGER`].

use super::assembler::{WindowRecord, window_seq};
use super::collector::Window;
use super::endpoints::Endpoints;
use super::setup::prepare_load;
use super::sources::LocalSource;
use super::{Load, RunError};
use crate::clock::RunClock;
use crate::local::Rotation;
use crate::metrics::loader::{CpuSampler, ProcessSampler};
use crate::metrics::timeline::TimelineWriter;
use crate::scenario::Scenario;
use crate::scenario::shard::Shard;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a finished worker keeps its last window for a coordinator that has not taken it.
pub const LINGER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub shard: Shard,
    pub listen: SocketAddr,
    /// The endpoints the coordinator resolved (its local topology); without it, the scenario's
    /// `[target]`.
    pub endpoints_file: Option<PathBuf>,
    /// How long to wait for the start before giving up.
    pub start_timeout: Duration,
    /// Also append every window to this file (JSON lines), as a run's `windows.jsonl`.
    pub windows_log: Option<PathBuf>,
}

/// Where a worker is in its life, as `/windows` and `/readyz` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase", content = "reason")]
pub enum Phase {
    Preparing,
    Ready,
    Running,
    /// Its last window is in the buffer.
    Done,
    Failed(String),
}

/// `GET /windows`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowsReply {
    #[serde(flatten)]
    pub phase: Phase,
    pub records: Vec<WindowRecord>,
}

struct Shared {
    phase: Mutex<Phase>,
    start: watch::Sender<Option<u64>>,
    stop: CancellationToken,
    records: Mutex<VecDeque<WindowRecord>>,
    /// The coordinator took the last window.
    acknowledged: CancellationToken,
    /// This worker's copy of the local kubelet's rotation (a local topology with edges), kept
    /// in step by the coordinator's polls.
    rotation: std::sync::OnceLock<Rotation>,
}

impl Shared {
    fn new(phase: Phase) -> Self {
        Shared {
            phase: Mutex::new(phase),
            start: watch::channel(None).0,
            stop: CancellationToken::new(),
            records: Mutex::new(VecDeque::new()),
            acknowledged: CancellationToken::new(),
            rotation: std::sync::OnceLock::new(),
        }
    }

    fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    fn phase(&self) -> Phase {
        self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, record: WindowRecord) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(record);
    }
}

/// Binds `options.listen` and prints the address it got (`listening on http://ADDR`) as the
/// first line of stdout, for a coordinator that started this process with port 0.
pub async fn serve(
    scenario: Scenario,
    options: WorkerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| RunError::Setup(format!("--listen {}: {e}", options.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| RunError::Setup(format!("--listen {}: {e}", options.listen)))?;
    crate::outln!(
        "xiuload worker {} listening on http://{addr}",
        options.shard
    );
    let shared = Arc::new(Shared::new(Phase::Preparing));
    let server_stop = CancellationToken::new();
    let server = tokio::spawn({
        let app = router(shared.clone());
        let stop = server_stop.clone();
        async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        }
    });
    tokio::pin!(shutdown);
    let result = drive(&scenario, &options, &shared, &mut shutdown).await;
    if let Err(e) = &result {
        shared.set_phase(Phase::Failed(e.to_string()));
    }
    // Keep the windows (or the failure) until the coordinator has read them, within bounds.
    tokio::select! {
        _ = shared.acknowledged.cancelled() => {}
        _ = tokio::time::sleep(LINGER) => {}
        _ = &mut shutdown => {}
    }
    server_stop.cancel();
    let _ = server.await;
    result
}

async fn drive(
    scenario: &Scenario,
    options: &WorkerOptions,
    shared: &Shared,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<(), RunError> {
    let endpoints = match &options.endpoints_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| RunError::Setup(format!("--endpoints {}: {e}", path.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| RunError::Setup(format!("--endpoints {}: {e}", path.display())))?
        }
        None => Endpoints::from_target(&scenario.target),
    };
    if let Some(rotation) = &endpoints.rotation {
        let _ = shared.rotation.set(rotation.clone());
    }
    let mut prepared = prepare_load(scenario, endpoints, String::new())?;
    shared.set_phase(Phase::Ready);
    let mut start = shared.start.subscribe();
    let at_unix_ms = tokio::select! {
        got = start.wait_for(Option::is_some) => got.ok().and_then(|v| *v),
        _ = shared.stop.cancelled() => None,
        _ = tokio::time::sleep(options.start_timeout) => {
            return Err(RunError::Setup(format!(
                "{}: no start within {}s",
                options.shard,
                options.start_timeout.as_secs()
            )));
        }
        _ = shutdown.as_mut() => None,
    };
    let Some(at_unix_ms) = at_unix_ms else {
        // Stopped before it started: a last, empty window says so.
        shared.push(WindowRecord {
            seq: 1,
            last: true,
            window: Window::default(),
        });
        shared.set_phase(Phase::Done);
        return Ok(());
    };
    let clock = RunClock::at_unix_micros(at_unix_ms * 1000);
    tokio::time::sleep_until(tokio::time::Instant::from_std(clock.start_instant())).await;
    shared.set_phase(Phase::Running);
    let load = Load::start(scenario, &prepared, clock, options.shard)?;
    let mut source = LocalSource {
        publishers: prepared
            .publishers
            .iter()
            .map(|g| g.metrics.clone())
            .collect(),
        players: prepared.players.iter().map(|g| g.metrics.clone()).collect(),
        cpu: CpuSampler::new(),
        lag: load.lag.clone(),
        servers: ProcessSampler::new(Default::default()),
    };
    let planned = prepared.plan.length;
    let mut ticks = super::SecondTicks::new(clock, planned);
    let mut log = match &options.windows_log {
        Some(path) => Some(
            TimelineWriter::create(path)
                .map_err(|e| RunError::Setup(format!("--windows-log {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let mut seq = 0;
    let mut last_at = Duration::ZERO;
    let mut take = |at: Duration, last: bool, source: &mut LocalSource| {
        seq = window_seq(at.as_secs_f64(), seq, last);
        let window = source.take(at, at.saturating_sub(last_at));
        last_at = at;
        let record = WindowRecord { seq, last, window };
        if let Some(log) = &mut log {
            let _ = log.append_line(&record, at.as_secs_f64());
        }
        shared.push(record);
    };
    loop {
        let stop = shared.stop.clone();
        let at = tokio::select! {
            at = ticks.next() => at,
            _ = stop.cancelled() => None,
            _ = shutdown.as_mut() => None,
        };
        match at {
            Some(at) => take(at, false, &mut source),
            None => break,
        }
    }
    let ended = load.stop(&mut prepared).await;
    take(ended, true, &mut source);
    shared.set_phase(Phase::Done);
    Ok(())
}

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/readyz", get(readyz))
        .route("/start", post(start))
        .route("/stop", post(stop))
        .route("/windows", get(windows))
        .with_state(shared)
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    match s.phase() {
        Phase::Preparing => (StatusCode::SERVICE_UNAVAILABLE, "preparing").into_response(),
        Phase::Failed(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
        _ => (StatusCode::OK, "ready").into_response(),
    }
}

#[derive(Deserialize)]
struct StartQuery {
    at_unix_ms: u64,
}

async fn start(State(s): State<Arc<Shared>>, Query(q): Query<StartQuery>) -> Response {
    if s.phase() != Phase::Ready {
        return (
            StatusCode::CONFLICT,
            format!("cannot start: {:?}", s.phase()),
        )
            .into_response();
    }
    let mut accepted = false;
    s.start.send_if_modified(|at| {
        accepted = at.is_none();
        at.get_or_insert(q.at_unix_ms);
        accepted
    });
    if accepted {
        (StatusCode::OK, "started").into_response()
    } else {
        (StatusCode::CONFLICT, "already started").into_response()
    }
}

async fn stop(State(s): State<Arc<Shared>>) -> &'static str {
    s.stop.cancel();
    "stopping"
}

#[derive(Deserialize)]
struct WindowsQuery {
    #[serde(default)]
    after: u64,
    /// The edges the coordinator's kubelet has in rotation now (`Rotation::ready_list`).
    #[serde(default)]
    ready: Option<String>,
}

async fn windows(State(s): State<Arc<Shared>>, Query(q): Query<WindowsQuery>) -> Response {
    if let (Some(list), Some(rotation)) = (&q.ready, s.rotation.get())
        && let Err(e) = rotation.apply_ready_list(list)
    {
        // The coordinator and this worker read the same endpoints file: a bug, not a reason to
        // withhold the windows.
        tracing::warn!(error = %e, "the coordinator's rotation does not fit this worker's");
    }
    let phase = s.phase();
    let mut buffer = s.records.lock().unwrap_or_else(|e| e.into_inner());
    // What the coordinator has seen is acknowledged: it is dropped, which bounds the buffer by
    // how long the coordinator is away, not by the run's length.
    while buffer.front().is_some_and(|r| r.seq <= q.after) {
        if buffer.pop_front().is_some_and(|r| r.last) {
            s.acknowledged.cancel();
        }
    }
    let reply = WindowsReply {
        phase,
        records: buffer.iter().cloned().collect(),
    };
    drop(buffer);
    axum::Json(reply).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_poll_carries_the_coordinators_rotation_into_the_workers_viewers() {
        let shared = Arc::new(Shared::new(Phase::Running));
        let rotation = Rotation::all_ready(2);
        shared.rotation.set(rotation.clone()).unwrap();
        let poll = |ready: Option<&str>| {
            windows(
                State(shared.clone()),
                Query(WindowsQuery {
                    after: 0,
                    ready: ready.map(str::to_string),
                }),
            )
        };
        assert_eq!(poll(Some("1")).await.status(), StatusCode::OK);
        assert_eq!(
            rotation.pick(0),
            1,
            "viewer 0's edge 0 is out: edge 1 takes it"
        );
        // A poll without a list (a coordinator without a kubelet) leaves it as it is.
        poll(None).await;
        assert_eq!(rotation.ready_list(), "1");
        // A list that does not fit is refused, and the windows still go out.
        assert_eq!(poll(Some("7")).await.status(), StatusCode::OK);
        assert_eq!(rotation.ready_list(), "1");
        poll(Some("0,1")).await;
        assert_eq!(rotation.pick(0), 0);
    }

    #[test]
    fn replies_carry_the_phase_beside_the_records() {
        let reply = WindowsReply {
            phase: Phase::Failed("no rtmp_publish address".into()),
            records: vec![],
        };
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            text,
            r#"{"phase":"failed","reason":"no rtmp_publish address","records":[]}"#
        );
        let back: WindowsReply = serde_json::from_str(&text).unwrap();
        assert_eq!(back.phase, Phase::Failed("no rtmp_publish address".into()));
        let done: WindowsReply = serde_json::from_str(r#"{"phase":"done","records":[]}"#).unwrap();
        assert_eq!(done.phase, Phase::Done);
    }
}

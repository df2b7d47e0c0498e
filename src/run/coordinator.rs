//! The coordinator of a distributed run: starts the workers (`--local-workers N`: `xiuload worker`
//! processes on this machine; `[distributed]`: the pods of a Kubernetes Indexed Job), waits until
//! every one is ready, gives them one time zero, then takes their windows once a second, merges
//! them ([`super::assembler`]) and feeds the merged windows to the run's collector, exactly as a
//! one-process run feeds its own.
//!
//! Workers are reached over a [`Transport`]: plain HTTP on loopback for local processes, the API
//! server's pod proxy for pods (no Service, Ingress or port-forward; the same credentials as the
//! cluster watcher).
//!
//! A worker that dies (its process exits; its pod fails or is deleted) is marked lost at the
//! second it stopped: the run goes on with the others and the report says what share of the load
//! went with it. A worker that cannot be reached is waited for (its windows stay buffered on its
//! side) for the fleet's hold ([`HOLD_SECONDS`] locally, [`CLUSTER_HOLD_SECONDS`] in a cluster)
//! before its seconds are merged without it.

use super::assembler::Assembler;
use super::setup::Prepared;
use super::worker::{Phase, WindowsReply};
use super::{Collecting, RunError, SecondTicks};
use crate::clock::{RunClock, unix_micros_now};
use crate::k8s::workers::WorkerJob;
use crate::local::Rotation;
use crate::report::OutputDir;
use crate::report::model::StopReason;
use crate::scenario::Scenario;
use crate::scenario::worker_pods::DistributedSection;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// Seconds a merged second waits for a worker that has not sent it before it is merged without
/// that worker (which is then named missing for it).
pub const HOLD_SECONDS: u64 = 20;
/// The same in a cluster: every window goes through the API server, which can be away for a
/// while (a control-plane upgrade, a leader election) while the workers go on; they keep their
/// windows until taken, so two minutes of seconds are held back for them.
pub const CLUSTER_HOLD_SECONDS: u64 = 120;
/// A worker that cannot be reached for this long, while its process is gone or unknown, is lost.
const UNREACHABLE_LOST_AFTER: Duration = Duration::from_secs(30);
/// In a cluster: a little longer than the hold, so a worker behind an API server that is away is
/// not given up on before its seconds are.
const CLUSTER_UNREACHABLE_LOST_AFTER: Duration = Duration::from_secs(CLUSTER_HOLD_SECONDS + 30);
/// How long workers get to become ready (synthetic media, event loops).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Between the start order and the time zero: every worker must have it before it passes.
const START_LEAD: Duration = Duration::from_millis(1500);
/// After a stop order or the plan's end, how long the coordinator waits for last windows.
const FINISH_TIMEOUT: Duration = Duration::from_secs(20);

struct Worker {
    index: u32,
    place: Place,
    /// Highest window number taken.
    taken: u64,
    unreachable_since: Option<tokio::time::Instant>,
}

/// Where a worker runs.
enum Place {
    Process {
        base: String,
        // Boxed: a process handle is much larger than a pod's name.
        child: Box<Child>,
        log: PathBuf,
    },
    Pod {
        name: String,
    },
}

/// How the coordinator reaches its workers.
enum Transport {
    /// Processes on this machine, over loopback HTTP.
    Direct(reqwest::Client),
    /// Pods, through the API server's pod proxy; the Job is deleted at the end unless `keep`.
    Cluster { job: WorkerJob, keep: bool },
}

pub(super) struct Fleet {
    workers: Vec<Worker>,
    transport: Transport,
    /// Seconds held back for a worker that has not sent them.
    hold: u64,
    lost_after: Duration,
    /// The local kubelet's rotation, handed to the workers with every poll so their viewers
    /// skip the edges it took out (a local topology with edges only).
    rotation: Option<Rotation>,
}

/// Why a worker's answer could not be used.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// A worker process on this machine: not reachable, or its answer cut short.
    #[error("{0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("{status} {body}")]
    Refused {
        status: reqwest::StatusCode,
        body: String,
    },
    /// A worker pod, through the API server.
    #[error(transparent)]
    Proxy(#[from] crate::k8s::workers::ProxyError),
    #[error("a worker and a transport that do not go together")]
    Mismatch,
    /// An answer that is not the windows a worker sends.
    #[error("{0}")]
    Reply(serde_json::Error),
}

impl Fleet {
    /// Starts `n` worker processes on loopback against the endpoints this process resolved,
    /// and waits until every one is ready. Their stderr goes to `worker-<i>.log` in the run's
    /// directory.
    pub(super) async fn spawn_local(
        scenario_file: &Path,
        n: u32,
        prepared: &Prepared,
        out: &OutputDir,
    ) -> Result<Fleet, RunError> {
        let setup = |m: String| RunError::Setup(m);
        let endpoints = out.path("endpoints.json");
        std::fs::write(
            &endpoints,
            serde_json::to_vec_pretty(&*prepared.endpoints).expect("endpoints serialise"),
        )
        .map_err(|e| setup(format!("{}: {e}", endpoints.display())))?;
        let exe = std::env::current_exe().map_err(|e| {
            setup(format!(
                "cannot find the xiuload binary to start workers: {e}"
            ))
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| setup(format!("HTTP client: {e}")))?;
        let mut workers = Vec::new();
        for index in 0..n {
            let log = out.path(&format!("worker-{index}.log"));
            let stderr = std::fs::File::create(&log)
                .map_err(|e| setup(format!("{}: {e}", log.display())))?;
            let mut command = Command::new(&exe);
            command
                .arg("worker")
                .arg(scenario_file)
                .args(["--index", &index.to_string(), "--workers", &n.to_string()])
                .args(["--listen", "127.0.0.1:0", "--endpoints"])
                .arg(&endpoints)
                .arg("--windows-log")
                .arg(out.path(&format!("worker-{index}.windows.jsonl")))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .kill_on_drop(true);
            crate::local::die_with_parent(&mut command);
            let mut child = command
                .spawn()
                .map_err(|e| setup(format!("cannot start worker {index}: {e}")))?;
            let base = read_address(&mut child, index, &log).await?;
            workers.push(Worker {
                index,
                place: Place::Process {
                    base,
                    child: Box::new(child),
                    log,
                },
                taken: 0,
                unreachable_since: None,
            });
        }
        let fleet = Fleet {
            workers,
            transport: Transport::Direct(http),
            hold: HOLD_SECONDS,
            lost_after: UNREACHABLE_LOST_AFTER,
            rotation: prepared.endpoints.rotation.clone(),
        };
        fleet.wait_ready(&fleet.workers).await?;
        Ok(fleet)
    }

    /// Creates the run's ConfigMap and Indexed Job in the cluster and waits (at most
    /// `schedule_timeout`, or until `shutdown`) until every worker pod is Running and Ready.
    /// Whatever stops it deletes what it created (unless `keep`).
    pub(super) async fn spawn_kube<F: Future<Output = ()>>(
        scenario: &Scenario,
        section: &DistributedSection,
        scenario_file: &Path,
        run_id: &str,
        keep: bool,
        shutdown: Pin<&mut F>,
    ) -> Result<Fleet, RunError> {
        let setup = |m: String| RunError::Setup(m);
        let (client, namespace) =
            crate::k8s::workers::connect(scenario.kube.as_ref(), section.namespace.as_deref())
                .await
                .map_err(|e| setup(e.to_string()))?;
        let (config_map, job) =
            super::render::objects(scenario, section, scenario_file, run_id, Some(&namespace))?;
        let job = WorkerJob::create(client, &namespace, run_id, config_map, job, section.port)
            .await
            .map_err(|e| setup(e.to_string()))?;
        let timeout = section.schedule_timeout.0;
        eprintln!(
            "created Job {} in namespace {}: waiting up to {}s for {} workers to be ready",
            job.name,
            job.namespace,
            timeout.as_secs(),
            section.workers
        );
        let waited = tokio::select! {
            w = job.wait_ready(section.workers, timeout) => w.map_err(|e| setup(e.to_string())),
            _ = shutdown => Err(RunError::InterruptedBeforeStart),
        };
        let fleet = |workers| Fleet {
            workers,
            transport: Transport::Cluster { job, keep },
            hold: CLUSTER_HOLD_SECONDS,
            lost_after: CLUSTER_UNREACHABLE_LOST_AFTER,
            rotation: None,
        };
        match waited {
            Ok(names) => Ok(fleet(
                names
                    .into_iter()
                    .zip(0..)
                    .map(|(name, index)| Worker {
                        index,
                        place: Place::Pod { name },
                        taken: 0,
                        unreachable_since: None,
                    })
                    .collect(),
            )),
            Err(e) => {
                fleet(Vec::new()).reap().await;
                Err(e)
            }
        }
    }

    /// Sends `path` to a worker (`GET`, or `POST` when `post`); the body of a 2xx answer, or
    /// what went wrong.
    async fn call(&self, w: &Worker, post: bool, path: &str) -> Result<String, CallError> {
        match (&self.transport, &w.place) {
            (Transport::Direct(http), Place::Process { base, .. }) => {
                let url = format!("{base}{path}");
                let request = if post { http.post(url) } else { http.get(url) };
                let r = request.send().await?;
                let status = r.status();
                let body = r.text().await?;
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(CallError::Refused { status, body })
                }
            }
            (Transport::Cluster { job, .. }, Place::Pod { name }) => Ok(if post {
                job.post(name, path).await?
            } else {
                job.get(name, path).await?
            }),
            _ => Err(CallError::Mismatch),
        }
    }

    /// Why a worker will not answer any more, if it will not: its process exited, its pod
    /// failed or is gone.
    fn gone(&mut self, i: usize) -> Option<String> {
        let Fleet {
            workers, transport, ..
        } = self;
        match (&mut workers[i].place, transport) {
            (Place::Process { child, log, .. }, _) => {
                let status = child.try_wait().ok().flatten()?;
                Some(format!(
                    "is gone ({status}); its log ({}) ends: {}",
                    log.display(),
                    log_tail(log)
                ))
            }
            (Place::Pod { name }, Transport::Cluster { job, .. }) => {
                match job.pods().iter().find(|p| &p.name == name) {
                    Some(pod) => pod.gone(),
                    None => Some(format!("is gone: pod {name} was deleted")),
                }
            }
            (Place::Pod { .. }, Transport::Direct(_)) => None,
        }
    }

    /// Local workers only: a pod's readiness is the kubelet's probe on the same `/readyz`.
    async fn wait_ready(&self, workers: &[Worker]) -> Result<(), RunError> {
        let Transport::Direct(http) = &self.transport else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        for w in workers {
            let Place::Process { base, log, .. } = &w.place else {
                continue;
            };
            loop {
                let answer = http.get(format!("{base}/readyz")).send().await;
                match answer {
                    Ok(r) if r.status().is_success() => break,
                    Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                        let why = r.text().await.unwrap_or_default();
                        if why != "preparing" {
                            return Err(RunError::Setup(format!(
                                "worker {} failed to prepare: {why}",
                                w.index
                            )));
                        }
                    }
                    _ => {}
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(RunError::Setup(format!(
                        "worker {} was not ready within {}s; its log ({}) ends: {}",
                        w.index,
                        READY_TIMEOUT.as_secs(),
                        log.display(),
                        log_tail(log)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Gives every worker the run's time zero, a moment from now, and returns the run clock.
    pub(super) async fn start(&self) -> Result<RunClock, RunError> {
        let at_ms = (unix_micros_now() + START_LEAD.as_micros() as u64) / 1000;
        let path = format!("/start?at_unix_ms={at_ms}");
        let answers =
            futures::future::join_all(self.workers.iter().map(|w| self.call(w, true, &path))).await;
        for (w, answer) in self.workers.iter().zip(answers) {
            if let Err(e) = answer {
                return Err(RunError::Setup(format!(
                    "worker {} refused or missed the start: {e}",
                    w.index
                )));
            }
        }
        Ok(RunClock::at_unix_micros(at_ms * 1000))
    }

    /// Gives up before the run's time zero: tells the workers to stop, then [`Fleet::reap`]s.
    pub(super) async fn abandon(self) {
        self.stop_all().await;
        self.reap().await;
    }

    /// Takes the workers' windows until every worker has sent its last one (or is lost), and
    /// returns how the run ended and when, on the run clock.
    pub(super) async fn drive(
        mut self,
        collecting: &mut Collecting,
        prepared: &Prepared,
        shutdown: impl Future<Output = ()>,
    ) -> (StopReason, Duration) {
        let clock = collecting.collector.clock();
        let planned = collecting.planned;
        let mut assembler = Assembler::new(self.workers.len() as u32);
        // Windows are taken a moment after each whole second, when the workers have cut them.
        let mut ticks = SecondTicks::new(clock, planned + FINISH_TIMEOUT);
        let mut stopped_by = StopReason::Completed;
        let mut stop_sent: Option<tokio::time::Instant> = None;
        let mut ended = Duration::ZERO;
        tokio::pin!(shutdown);
        let mut shutdown_seen = false;
        loop {
            tokio::select! {
                _ = &mut shutdown, if !shutdown_seen => {
                    shutdown_seen = true;
                    stopped_by = StopReason::Interrupted;
                    self.stop_all().await;
                    stop_sent.get_or_insert_with(tokio::time::Instant::now);
                }
                at = ticks.next() => {
                    if at.is_none() {
                        // Far past the plan's end: whoever has not finished is not coming.
                        for w in assembler.running() {
                            assembler.mark_lost(w);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            self.poll(&mut assembler, &clock, &mut collecting.notes)
                .await;
            if stop_sent.is_some_and(|t| t.elapsed() >= FINISH_TIMEOUT) {
                for w in assembler.running() {
                    assembler.mark_lost(w);
                }
            }
            let give_up = assembler.newest().saturating_sub(self.hold);
            let merged = assembler.ready(give_up);
            let done = assembler.is_done();
            let count = merged.len();
            for (i, mut window) in merged.into_iter().enumerate() {
                let (cpu, rss) = collecting.source.servers.sample();
                window.loader.server_cpu_percent = cpu;
                window.loader.server_rss_mib = rss;
                ended = ended.max(window.at);
                let last = done && i + 1 == count;
                if collecting.add(window, last, prepared).knee_broke && stop_sent.is_none() {
                    // The knee is found: more load would only measure a broken server.
                    self.stop_all().await;
                    stop_sent = Some(tokio::time::Instant::now());
                }
            }
            if done {
                break;
            }
        }
        collecting.end_status_line();
        // Acknowledge the last windows, so the workers exit now rather than after their linger.
        self.poll(&mut assembler, &clock, &mut collecting.notes)
            .await;
        self.reap().await;
        (stopped_by, ended)
    }

    /// Takes every running worker's new windows; marks lost the workers that are gone.
    /// A worker that answers again after a while unreachable leaves a note for the report
    /// (`notes`), so a gap caught up from its buffer is still marked.
    async fn poll(&mut self, assembler: &mut Assembler, clock: &RunClock, notes: &mut Vec<String>) {
        let this = &*self;
        let replies = futures::future::join_all(self.workers.iter().map(|w| async move {
            let path = windows_path(w.taken, this.rotation.as_ref());
            let body = this.call(w, false, &path).await?;
            serde_json::from_str::<WindowsReply>(&body).map_err(CallError::Reply)
        }))
        .await;
        for (i, reply) in replies.into_iter().enumerate() {
            let index = self.workers[i].index;
            if assembler.is_lost(index) {
                continue;
            }
            match reply {
                Ok(reply) => {
                    let w = &mut self.workers[i];
                    if let Some(since) = w.unreachable_since.take() {
                        eprintln!(
                            "\nworker {index} answers again after {}s: catching up from its buffered windows",
                            since.elapsed().as_secs()
                        );
                        let run_time = |at: tokio::time::Instant| {
                            at.into_std()
                                .saturating_duration_since(clock.start_instant())
                                .as_secs_f64()
                        };
                        notes.push(unreachable_note(
                            index,
                            run_time(since),
                            run_time(tokio::time::Instant::now()),
                        ));
                    }
                    for record in reply.records {
                        w.taken = w.taken.max(record.seq);
                        assembler.offer(index, record);
                    }
                    if let Phase::Failed(reason) = reply.phase {
                        eprintln!("\nwarning: worker {index} failed: {reason}");
                        assembler.mark_lost(index);
                    }
                }
                Err(e) => {
                    let since = *self.workers[i]
                        .unreachable_since
                        .get_or_insert_with(tokio::time::Instant::now);
                    if let Some(why) = self.gone(i) {
                        eprintln!("\nwarning: worker {index} {why}");
                        assembler.mark_lost(index);
                    } else if since.elapsed() >= self.lost_after {
                        eprintln!(
                            "\nwarning: worker {index} unreachable for {}s ({e}): counted as lost",
                            self.lost_after.as_secs()
                        );
                        assembler.mark_lost(index);
                    }
                }
            }
        }
    }

    /// Tells every worker to end its load now.
    async fn stop_all(&self) {
        futures::future::join_all(self.workers.iter().map(|w| self.call(w, true, "/stop"))).await;
    }

    /// Waits briefly for the worker processes to exit (they do once their last window is
    /// taken), then kills what is left; deletes the cluster's Job and ConfigMap (unless kept).
    async fn reap(mut self) {
        for w in &mut self.workers {
            if let Place::Process { child, .. } = &mut w.place {
                let waited = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                if waited.is_err() {
                    let _ = child.kill().await;
                }
            }
        }
        if let Transport::Cluster { job, keep } = &self.transport {
            if *keep {
                eprintln!(
                    "kept Job and ConfigMap {} in namespace {} (--keep): `kubectl -n {} logs job/{}`, then `kubectl -n {} delete job,configmap {}`",
                    job.name, job.namespace, job.namespace, job.name, job.namespace, job.name
                );
            } else if let Err(e) = job.delete().await {
                eprintln!("warning: {e}");
            }
        }
    }
}

/// The report's note for a worker that could not be reached from `from_s` to `to_s` (run time).
/// A worker's poll: the windows after `taken`, and the edges in rotation now, if any. A worker
/// learns a rotation change with the next poll, within a second, as a cluster's endpoints take a
/// moment to reach the Ingress.
fn windows_path(taken: u64, rotation: Option<&Rotation>) -> String {
    match rotation {
        Some(r) => format!("/windows?after={taken}&ready={}", r.ready_list()),
        None => format!("/windows?after={taken}"),
    }
}

fn unreachable_note(worker: u32, from_s: f64, to_s: f64) -> String {
    format!(
        "worker {worker} could not be reached from t={from_s:.0}s to t={to_s:.0}s; its windows were taken from its buffer when it answered again (seconds held back longer than the coordinator waits are marked in timeline.jsonl's workers_missing)"
    )
}

/// The worker's first line of stdout: `xiuload worker ... listening on http://ADDR`.
async fn read_address(child: &mut Child, index: u32, log: &Path) -> Result<String, RunError> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    let line = match line {
        Ok(Ok(Some(line))) => line,
        _ => {
            return Err(RunError::Setup(format!(
                "worker {index} did not start; its log ({}) ends: {}",
                log.display(),
                log_tail(log)
            )));
        }
    };
    // Keep draining stdout so the worker never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    line.rsplit_once("listening on ")
        .map(|(_, url)| url.trim().to_string())
        .ok_or_else(|| {
            RunError::Setup(format!(
                "worker {index} said {line:?} instead of its address"
            ))
        })
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        return "(empty)".into();
    }
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_names_the_edges_in_rotation_only_for_a_local_topology() {
        assert_eq!(windows_path(7, None), "/windows?after=7");
        let rotation = Rotation::all_ready(3);
        rotation.set(0, false);
        assert_eq!(
            windows_path(7, Some(&rotation)),
            "/windows?after=7&ready=1,2"
        );
        rotation.set(1, false);
        rotation.set(2, false);
        assert_eq!(windows_path(0, Some(&rotation)), "/windows?after=0&ready=");
    }
}

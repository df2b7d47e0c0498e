//! The coordinator of a distributed run: starts the workers (`--local-workers N`: `xiuload worker`
//! processes on this machine), waits until every one is ready, gives them one time zero, then
//! takes their windows once a second, merges them ([`super::assembler`]) and feeds the merged
//! windows to the run's collector, exactly as a one-process run feeds its own.
//!
//! A worker that dies is marked lost at the second it stopped: the run goes on with the others
//! and the report says what share of the load went with it. A worker that cannot be reached is
//! waited for (its windows stay buffered on its side) for [`HOLD_SECONDS`] before its seconds
//! are merged without it.

use super::assembler::Assembler;
use super::setup::Prepared;
use super::worker::{Phase, WindowsReply};
use super::{Collecting, RunError, SecondTicks};
use crate::clock::{RunClock, unix_micros_now};
use crate::report::OutputDir;
use crate::report::model::StopReason;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// Seconds a merged second waits for a worker that has not sent it before it is merged without
/// that worker (which is then named missing for it).
pub const HOLD_SECONDS: u64 = 20;
/// A worker that cannot be reached for this long, while its process is gone or unknown, is lost.
const UNREACHABLE_LOST_AFTER: Duration = Duration::from_secs(30);
/// How long workers get to become ready (synthetic media, event loops).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Between the start order and the time zero: every worker must have it before it passes.
const START_LEAD: Duration = Duration::from_millis(1500);
/// After a stop order or the plan's end, how long the coordinator waits for last windows.
const FINISH_TIMEOUT: Duration = Duration::from_secs(20);

struct Worker {
    index: u32,
    base: String,
    child: Child,
    log: PathBuf,
    /// Highest window number taken.
    taken: u64,
    unreachable_since: Option<tokio::time::Instant>,
}

pub(super) struct Fleet {
    workers: Vec<Worker>,
    http: reqwest::Client,
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
                base,
                child,
                log,
                taken: 0,
                unreachable_since: None,
            });
        }
        let fleet = Fleet { workers, http };
        fleet.wait_ready().await?;
        Ok(fleet)
    }

    async fn wait_ready(&self) -> Result<(), RunError> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        for w in &self.workers {
            loop {
                let answer = self.http.get(format!("{}/readyz", w.base)).send().await;
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
                        w.log.display(),
                        log_tail(&w.log)
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
        for w in &self.workers {
            let url = format!("{}/start?at_unix_ms={at_ms}", w.base);
            match self.http.post(&url).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    return Err(RunError::Setup(format!(
                        "worker {} refused the start: {} {}",
                        w.index,
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )));
                }
                Err(e) => {
                    return Err(RunError::Setup(format!(
                        "worker {} could not be started: {e}",
                        w.index
                    )));
                }
            }
        }
        Ok(RunClock::at_unix_micros(at_ms * 1000))
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
            self.poll(&mut assembler).await;
            if stop_sent.is_some_and(|t| t.elapsed() >= FINISH_TIMEOUT) {
                for w in assembler.running() {
                    assembler.mark_lost(w);
                }
            }
            let give_up = assembler.newest().saturating_sub(HOLD_SECONDS);
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
        self.poll(&mut assembler).await;
        self.reap().await;
        (stopped_by, ended)
    }

    /// Takes every running worker's new windows; marks lost the workers that are gone.
    async fn poll(&mut self, assembler: &mut Assembler) {
        let http = &self.http;
        let replies = futures::future::join_all(self.workers.iter().map(|w| {
            let url = format!("{}/windows?after={}", w.base, w.taken);
            async move {
                let r = http.get(url).send().await.map_err(|e| e.to_string())?;
                let body = r
                    .error_for_status()
                    .map_err(|e| e.to_string())?
                    .bytes()
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::from_slice::<WindowsReply>(&body).map_err(|e| e.to_string())
            }
        }))
        .await;
        for (w, reply) in self.workers.iter_mut().zip(replies) {
            if assembler.is_lost(w.index) {
                continue;
            }
            match reply {
                Ok(reply) => {
                    w.unreachable_since = None;
                    for record in reply.records {
                        w.taken = w.taken.max(record.seq);
                        assembler.offer(w.index, record);
                    }
                    if let Phase::Failed(reason) = reply.phase {
                        eprintln!("\nwarning: worker {} failed: {reason}", w.index);
                        assembler.mark_lost(w.index);
                    }
                }
                Err(e) => {
                    let since = *w
                        .unreachable_since
                        .get_or_insert_with(tokio::time::Instant::now);
                    let exited = w.child.try_wait().ok().flatten();
                    if let Some(status) = exited {
                        eprintln!(
                            "\nwarning: worker {} is gone ({status}); its log ({}) ends: {}",
                            w.index,
                            w.log.display(),
                            log_tail(&w.log)
                        );
                        assembler.mark_lost(w.index);
                    } else if since.elapsed() >= UNREACHABLE_LOST_AFTER {
                        eprintln!(
                            "\nwarning: worker {} unreachable for {}s ({e}): counted as lost",
                            w.index,
                            UNREACHABLE_LOST_AFTER.as_secs()
                        );
                        assembler.mark_lost(w.index);
                    }
                }
            }
        }
    }

    /// Tells every worker to end its load now.
    async fn stop_all(&self) {
        let http = &self.http;
        futures::future::join_all(
            self.workers
                .iter()
                .map(|w| http.post(format!("{}/stop", w.base)).send()),
        )
        .await;
    }

    /// Waits briefly for the worker processes to exit (they do once their last window is
    /// taken), then kills what is left.
    async fn reap(mut self) {
        for w in &mut self.workers {
            let waited = tokio::time::timeout(Duration::from_secs(5), w.child.wait()).await;
            if waited.is_err() {
                let _ = w.child.kill().await;
            }
        }
    }
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

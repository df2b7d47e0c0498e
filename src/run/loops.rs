//! Event loops for client sessions: single-threaded tokio runtimes, one per thread, as many as
//! the planned viewers need and at most one per core; sessions are dealt out round-robin.
//!
//! Why not the process's multi-threaded runtime: a viewer wakes once per frame the server sends
//! (~70 times a second at 30 fps with audio) and does microseconds of work each time. On a
//! work-stealing runtime a good share of that goes to waking idle workers to steal work that is
//! not there, and to moving tasks between threads. Loaders such as wrk settle on the same shape: an event
//! loop per core, each owning its connections. Sessions never move, so a loop that falls
//! behind shows up in its own timer lag (the lag probe runs on every loop).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Threads that each drive one current-thread runtime until [`ClientLoops::shutdown`].
pub struct ClientLoops {
    loops: Vec<Loop>,
    next: AtomicUsize,
}

struct Loop {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Sessions one loop is given before another loop is started.
///
/// Why not always one per core: every frame the server fans out wakes each loop that holds a
/// viewer of it, so two loops of 100 viewers pay twice the `epoll_wait` and context switches of
/// one loop of 200, for capacity nobody needs. Measured here (2 cores, one 2 Mbit/s stream):
/// one loop for 500 viewers used ~10 % less CPU than two, with the same latency; at 1000 viewers
/// one loop was no cheaper and its latency p50 rose from ~14 ms to ~19 ms.
pub const PLAYERS_PER_LOOP: usize = 500;

/// Loops for `players` sessions on `cores` cores.
fn loops_for(players: usize, cores: usize) -> usize {
    players.div_ceil(PLAYERS_PER_LOOP).clamp(1, cores.max(1))
}

/// How long a loop gives sessions still running at shutdown before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

impl ClientLoops {
    /// Starts `count` loops (at least one).
    pub fn start(count: usize) -> std::io::Result<Self> {
        let mut loops = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("xiuload-clients-{i}"))
                .spawn(move || {
                    // Either a stop signal or the sender dropped: both mean the run is over.
                    let _ = runtime.block_on(stopped);
                    runtime.shutdown_timeout(SHUTDOWN_GRACE);
                })?;
            loops.push(Loop {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(ClientLoops {
            loops,
            next: AtomicUsize::new(0),
        })
    }

    /// Enough loops for `players` sessions at once: one per [`PLAYERS_PER_LOOP`], at most one
    /// per core the process may use (cgroup quotas included).
    pub fn sized_for(players: usize) -> std::io::Result<Self> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::start(loops_for(players, cores))
    }

    /// The loop for the next session.
    pub fn next_handle(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.loops.len();
        &self.loops[i].handle
    }

    pub fn handles(&self) -> impl Iterator<Item = &Handle> {
        self.loops.iter().map(|l| &l.handle)
    }

    /// Stops every loop and waits for its thread. Sessions still running get
    /// [`SHUTDOWN_GRACE`] and are then dropped.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for l in &mut self.loops {
            if let Some(stop) = l.stop.take() {
                let _ = stop.send(());
            }
        }
        for l in &mut self.loops {
            if let Some(thread) = l.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ClientLoops {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn one_loop_per_players_per_loop_up_to_one_per_core() {
        assert_eq!(loops_for(0, 8), 1);
        assert_eq!(loops_for(PLAYERS_PER_LOOP, 8), 1);
        assert_eq!(loops_for(PLAYERS_PER_LOOP + 1, 8), 2);
        assert_eq!(loops_for(100 * PLAYERS_PER_LOOP, 8), 8);
        assert_eq!(loops_for(100 * PLAYERS_PER_LOOP, 0), 1);
    }

    #[tokio::test]
    async fn sessions_are_dealt_round_robin_and_run_on_their_loop_thread() {
        let loops = ClientLoops::start(2).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            tasks.spawn_on(
                async { std::thread::current().name().map(str::to_string) },
                loops.next_handle(),
            );
        }
        let mut names = Vec::new();
        while let Some(name) = tasks.join_next().await {
            names.push(name.unwrap().unwrap());
        }
        let distinct: HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("xiuload-clients-")));
        loops.shutdown();
    }

    #[tokio::test]
    async fn shutdown_drops_sessions_that_do_not_end() {
        let loops = ClientLoops::start(1).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = loops.next_handle().spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await
        });
        loops.shutdown();
        // The session's future was dropped (its sender with it) and its task reports cancelled.
        assert!(rx.await.is_err());
        assert!(handle.await.unwrap_err().is_cancelled());
    }
}

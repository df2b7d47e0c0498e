//! Starting, waiting for and stopping a local xiu process.

use super::config::{XiuPorts, render_config};
use super::listeners::{Holder, holders};
use crate::metrics::loader::PidSet;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const XIU_VERSION: &str = "0.14.0";

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "xiu {XIU_VERSION} was not found (looked at {looked}).\n  Install it with: scripts/install-xiu.sh\n  \
         (which runs: apt-get install -y libopus-dev cmake pkg-config && \
         cargo install --locked xiu --version {XIU_VERSION} --root ~/.cache/xiuload/xiu-{XIU_VERSION})\n  \
         or point XIU_BIN (or [target.local] xiu_bin) at an existing binary"
    )]
    NotFound { looked: String },
    #[error("could not start {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("xiu exited during start-up ({status}); its log:\n{log}")]
    ExitedEarly { status: String, log: String },
    #[error("xiu did not answer on its ports within {0:?}; its log:\n{1}")]
    NotReady(Duration, String),
    #[error(
        "port {port} was taken by another process before xiu could bind it (xiu goes on \
         without that listener); its log:\n{log}"
    )]
    PortTaken { port: u16, log: String },
    #[error(
        "several local origins need HAProxy in front of them (the publish load balancer): \
         apt-get install haproxy, or point HAPROXY_BIN at it"
    )]
    NoBalancer,
    #[error("local topology I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Finds the xiu binary: explicit path, `$XIU_BIN`, the install script's cache, then `PATH`.
pub fn find_xiu_binary(explicit: Option<&Path>) -> Result<PathBuf, LocalError> {
    let mut named: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        named.push(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("XIU_BIN") {
        named.push(PathBuf::from(p));
    }
    named.push(default_cache_binary());
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("xiu"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if let Some(found) = named.iter().chain(&on_path).find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let mut looked: Vec<String> = named.iter().map(|p| p.display().to_string()).collect();
    looked.push("xiu on PATH".into());
    Err(LocalError::NotFound {
        looked: looked.join(", "),
    })
}

/// Where `scripts/install-xiu.sh` installs xiu.
pub fn default_cache_binary() -> PathBuf {
    let cache = std::env::var_os("XIULOAD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/xiuload")
        });
    cache.join(format!("xiu-{XIU_VERSION}/bin/xiu"))
}

/// Ports this process has handed out: none is handed out twice, so two local servers started
/// side by side (parallel tests, a topology's many xius) cannot be given the same port in the
/// window between choosing it and binding it. Bounded by the ports a process starts servers on.
static HANDED_OUT: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());

/// Free loopback ports, all held open while choosing so they are distinct, and never one this
/// process handed out before (another process can still take one before its server binds it:
/// [`LocalXiu`] checks who listens, see [`super::listeners`]).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let mut held = Vec::new();
    let mut ports = Vec::with_capacity(n);
    // Bounded: the kernel hands out distinct ports while they are held open.
    while ports.len() < n && held.len() < n + 1024 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        if handed_out.insert(port) {
            ports.push(port);
        }
        held.push(listener);
    }
    if ports.len() < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no free loopback port left that this process has not used",
        ));
    }
    Ok(ports)
}

/// Prefix of every local xiu's working directory under the system temp dir.
const DIR_PREFIX: &str = "xiuload-xiu-";
/// Written into each working directory: the xiuload process that owns it, so a later run can
/// remove what a SIGKILLed one left behind.
const OWNER_FILE: &str = "owner.pid";

/// Live local xius of this process, for [`kill_all_now`]: the exit paths that skip destructors.
static LIVE: std::sync::Mutex<Vec<(u32, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// Kills every local xiu this process started and removes their working directories, at once.
/// For exit paths that skip destructors (a second Ctrl-C calls `process::exit`).
pub fn kill_all_now() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for (pid, dir) in live {
        // SAFETY: kill(2) on a child we started and have not reaped (its pid is still ours).
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes working directories whose owning xiuload is gone (SIGKILL leaves them; its xius died
/// with it, see `die_with_parent`). Directories being created (no owner file yet) are left alone.
pub fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path().join(OWNER_FILE)) else {
            continue;
        };
        if let Ok(pid) = text.trim().parse::<i32>()
            && !process_alive(pid)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A running xiu with its own working directory (where it writes HLS segments).
pub struct LocalXiu {
    child: Child,
    pub ports: XiuPorts,
    dir: tempfile::TempDir,
    /// The pid it started with (the child forgets it once reaped).
    started_pid: Option<u32>,
    /// Where its pid is published for the server CPU/RSS sampler, restarts included.
    followed_by: Option<PidSet>,
}

impl LocalXiu {
    /// Starts xiu on fresh loopback ports and waits until its API and listeners answer.
    /// `push_token`: an edge as deploy/ runs it (publishing needs `?token=`, see `render_config`).
    pub async fn start(
        bin: &Path,
        hls_fragment_secs: u32,
        push_token: Option<&str>,
    ) -> Result<LocalXiu, LocalError> {
        // A port taken by a stranger in the moment between choosing and binding it is a race,
        // not a fault of xiu's: fresh ports get past it.
        let mut attempts_left = 3;
        loop {
            let p = free_ports(4)?;
            let ports = XiuPorts {
                rtmp: p[0],
                hls: p[1],
                flv: p[2],
                api: p[3],
            };
            match Self::start_with_ports(bin, ports, hls_fragment_secs, push_token).await {
                Err(LocalError::PortTaken { port, .. }) if attempts_left > 1 => {
                    attempts_left -= 1;
                    tracing::warn!(
                        port,
                        "a local xiu port was taken by another process: retrying on fresh ports"
                    );
                }
                other => return other,
            }
        }
    }

    pub async fn start_with_ports(
        bin: &Path,
        ports: XiuPorts,
        hls_fragment_secs: u32,
        push_token: Option<&str>,
    ) -> Result<LocalXiu, LocalError> {
        let dir = tempfile::Builder::new().prefix(DIR_PREFIX).tempdir()?;
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())?;
        let config = dir.path().join("xiu.toml");
        std::fs::write(&config, render_config(ports, hls_fragment_secs, push_token))?;
        let log = std::fs::File::create(dir.path().join("xiu.log"))?;
        let mut command = Command::new(bin);
        command
            .arg("-c")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| LocalError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
        if let Some(pid) = child.id() {
            LIVE.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((pid, dir.path().to_path_buf()));
        }
        let started_pid = child.id();
        let mut xiu = LocalXiu {
            child,
            ports,
            dir,
            started_pid,
            followed_by: None,
        };
        xiu.wait_ready(Duration::from_secs(20)).await?;
        Ok(xiu)
    }

    /// Starts xiu again on the same ports with the same config (a restart after `kill`), in a
    /// fresh working directory.
    pub async fn restart(
        &mut self,
        bin: &Path,
        hls_fragment_secs: u32,
        push_token: Option<&str>,
    ) -> Result<(), LocalError> {
        self.kill().await;
        let mut fresh =
            Self::start_with_ports(bin, self.ports, hls_fragment_secs, push_token).await?;
        if let Some(set) = &self.followed_by {
            fresh.follow_in(set);
        }
        // Dropping the old one forgets it and removes its working directory.
        drop(std::mem::replace(self, fresh));
        Ok(())
    }

    fn forget_live(&self) {
        let dir = self.dir.path();
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, d)| d != dir);
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), LocalError> {
        let deadline = tokio::time::Instant::now() + limit;
        let ports = [
            self.ports.api,
            self.ports.rtmp,
            self.ports.flv,
            self.ports.hls,
        ];
        loop {
            // xiu exits (with status 0) when its config does not load: catch that early.
            if let Some(status) = self.child.try_wait()? {
                return Err(LocalError::ExitedEarly {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            let mut all = true;
            for port in ports {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_err()
                {
                    all = false;
                    break;
                }
            }
            if all {
                // Something answers on every port; make sure it is this xiu.
                let pid = self.child.id();
                match pid.and_then(|pid| holders(pid, &ports)) {
                    None => return Ok(()),
                    Some(h) if h.iter().all(|h| *h == Holder::TheProcess) => return Ok(()),
                    Some(h) => {
                        if let Some(i) = h.iter().position(|h| *h == Holder::SomeoneElse) {
                            return Err(LocalError::PortTaken {
                                port: ports[i],
                                log: self.log_tail(),
                            });
                        }
                        // A listener of xiu's not up yet: poll again.
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LocalError::NotReady(limit, self.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Publishes this xiu's pid in `set` (and its restarts' pids, in its place) for as long as
    /// it lives.
    pub fn follow_in(&mut self, set: &PidSet) {
        if let Some(pid) = self.started_pid {
            set.insert(pid);
        }
        self.followed_by = Some(set.clone());
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn working_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("xiu.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops xiu the way it expects: SIGINT (the only signal it handles), then SIGKILL after a
    /// grace period.
    pub async fn stop(mut self) {
        self.forget_live();
        if let Some(pid) = self.child.id() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGINT);
            }
            if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    /// Kills xiu abruptly (tests of a dying server).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Resolves when xiu exits (at once if it already has); says how. Cancel-safe: a supervisor
    /// waits on it beside other work.
    pub async fn exited(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => format!("its status is unknown ({e})"),
        }
    }

    /// Stops xiu as a container runtime stops it: SIGINT (its stop signal), then SIGKILL when it
    /// has not exited within `grace`. Whether it exited before the SIGKILL.
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        if self.child.id().is_none() {
            return true;
        }
        self.signal(libc::SIGINT);
        if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
            return true;
        }
        self.kill().await;
        false
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) xiu: a hung server.
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }
}

impl Drop for LocalXiu {
    fn drop(&mut self) {
        // `kill_on_drop` kills the child; the directory goes with `dir`.
        self.forget_live();
        if let (Some(set), Some(pid)) = (&self.followed_by, self.started_pid) {
            set.remove(pid);
        }
    }
}

/// The child gets SIGKILL when the thread that started it exits: whatever way xiuload ends
/// (SIGKILL included), no xiu outlives it.
///
/// PR_SET_PDEATHSIG follows the spawning *thread*: spawns happen on the runtime's worker threads,
/// which live as long as the runtime.
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: getpid is async-signal-safe.
    let parent = unsafe { libc::getpid() };
    // SAFETY: between fork and exec only async-signal-safe calls: prctl, getppid.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("xiuload exited while starting xiu"));
            }
            Ok(())
        });
    }
}

//! Starting, waiting for and stopping a local xiu process.

use super::config::{XiuPorts, render_config};
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

/// Free loopback ports, all held open while choosing so they are distinct.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// A running xiu with its own working directory (where it writes HLS segments).
pub struct LocalXiu {
    child: Child,
    pub ports: XiuPorts,
    dir: tempfile::TempDir,
}

impl LocalXiu {
    /// Starts xiu on fresh loopback ports and waits until its API and listeners answer.
    pub async fn start(
        bin: &Path,
        hls_fragment_secs: u32,
        pull_from: Option<(&str, u16)>,
    ) -> Result<LocalXiu, LocalError> {
        let p = free_ports(4)?;
        let ports = XiuPorts {
            rtmp: p[0],
            hls: p[1],
            flv: p[2],
            api: p[3],
        };
        Self::start_with_ports(bin, ports, hls_fragment_secs, pull_from).await
    }

    pub async fn start_with_ports(
        bin: &Path,
        ports: XiuPorts,
        hls_fragment_secs: u32,
        pull_from: Option<(&str, u16)>,
    ) -> Result<LocalXiu, LocalError> {
        let dir = tempfile::Builder::new().prefix("xiuload-xiu-").tempdir()?;
        let config = dir.path().join("xiu.toml");
        std::fs::write(&config, render_config(ports, hls_fragment_secs, pull_from))?;
        let log = std::fs::File::create(dir.path().join("xiu.log"))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| LocalError::Spawn {
                bin: bin.to_path_buf(),
                source,
            })?;
        let mut xiu = LocalXiu { child, ports, dir };
        xiu.wait_ready(Duration::from_secs(20)).await?;
        Ok(xiu)
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
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LocalError::NotReady(limit, self.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
}

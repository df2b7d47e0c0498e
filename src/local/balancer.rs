//! A real L4 load balancer on loopback in front of the local origins, as the publish
//! LoadBalancer Service is in a cluster: HAProxy in TCP mode, from Debian's `haproxy` package.
//!
//! Why HAProxy and not a few lines of Rust: the point is that a local failover test exercises
//! what a cluster's L4 balancer does (health checks take a dead origin out, a new connection goes
//! to a live one), not what we think it does.

use super::xiu::{LocalError, die_with_parent, free_ports};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Finds `haproxy`: `$HAPROXY_BIN`, then `PATH`, then Debian's `/usr/sbin`.
pub fn find_haproxy() -> Result<PathBuf, LocalError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("HAPROXY_BIN") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("haproxy")));
    }
    candidates.push(PathBuf::from("/usr/sbin/haproxy"));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(LocalError::NoBalancer)
}

/// HAProxy config: one TCP frontend on `listen`, round-robin over `backends`, each health-checked
/// every 300 ms (one failure marks it down, so a killed origin leaves the rotation within about
/// 0.3 s); a connect that fails is redispatched to another backend; sessions of a backend marked
/// down are cut, as a pod that goes away cuts its connections.
pub fn render_haproxy_config(listen: u16, backends: &[u16]) -> String {
    let mut c = String::from(
        "global\n  maxconn 4096\n\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1h\n  \
         timeout server 1h\n  retries 2\n  option redispatch\n\n",
    );
    c.push_str(&format!(
        "frontend publish\n  bind 127.0.0.1:{listen}\n  default_backend origins\n\nbackend origins\n  balance roundrobin\n"
    ));
    for (i, port) in backends.iter().enumerate() {
        c.push_str(&format!(
            "  server origin{i} 127.0.0.1:{port} check inter 300ms fall 1 rise 2 on-marked-down shutdown-sessions\n"
        ));
    }
    c
}

pub struct LocalBalancer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl LocalBalancer {
    /// Starts HAProxy in front of `backends` (loopback ports) and waits until it accepts.
    pub async fn start(bin: &Path, backends: &[u16]) -> Result<LocalBalancer, LocalError> {
        let port = free_ports(1)?[0];
        let dir = tempfile::Builder::new()
            .prefix("xiuload-haproxy-")
            .tempdir()?;
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, render_haproxy_config(port, backends))?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let mut command = Command::new(bin);
        // -db: foreground, no daemon; -f: the config.
        command
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|source| LocalError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(LocalError::ExitedEarly {
                    status: status.to_string(),
                    log: std::fs::read_to_string(dir.path().join("haproxy.log"))
                        .unwrap_or_default(),
                });
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LocalError::NotReady(
                    Duration::from_secs(10),
                    "haproxy did not listen".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(LocalBalancer {
            child,
            port,
            _dir: dir,
        })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_balances_over_every_backend_with_checks() {
        let c = render_haproxy_config(7000, &[7001, 7002]);
        assert!(c.contains("bind 127.0.0.1:7000"));
        assert!(c.contains("server origin0 127.0.0.1:7001 check"));
        assert!(c.contains("server origin1 127.0.0.1:7002 check"));
        assert!(c.contains("option redispatch"));
        assert!(c.contains("mode tcp"));
    }
}

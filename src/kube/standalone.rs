//! `xiuload watch`: the cluster watcher alone, while some other tool makes the load. Also the
//! rebuild of the cluster report from a run directory (`xiuload report <run dir>`).

use super::correlate::{ClusterReport, analyse};
use super::expect::{ExpectationResult, judge, stage_starts};
use super::journal::{self, JournalError};
use super::session::KubeSession;
use crate::clock::RunClock;
use crate::exit;
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `cluster-report.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchReport {
    pub cluster: ClusterReport,
    pub expectations: Vec<ExpectationResult>,
}

/// Analyses a run directory: `cluster.jsonl` plus `timeline.jsonl` when there is one.
/// `Ok(None)` when the run did not watch a cluster.
pub fn rebuild(dir: &Path, scenario: &Scenario) -> Result<Option<WatchReport>, JournalError> {
    let path = dir.join(journal::FILE_NAME);
    if !path.exists() {
        return Ok(None);
    }
    let cluster = journal::read_journal(&path)?;
    let load =
        crate::metrics::timeline::read_timeline(&dir.join("timeline.jsonl")).unwrap_or_default();
    let report = analyse(&cluster, &load);
    let expectations = judge(&scenario.expect, &report, &load, &stage_starts(scenario));
    Ok(Some(WatchReport {
        cluster: report,
        expectations,
    }))
}

/// Runs `xiuload watch`; returns the exit code.
pub async fn watch_command(
    scenario_path: &Path,
    out: Option<PathBuf>,
    duration: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) -> i32 {
    let scenario = match crate::scenario::load(scenario_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return exit::BAD_INPUT;
        }
    };
    let Some(section) = scenario.kube.clone() else {
        eprintln!(
            "{}: no [kube] section: `xiuload watch` needs the namespace and workloads to watch",
            scenario_path.display()
        );
        return exit::BAD_INPUT;
    };
    let clock = RunClock::start_now();
    let dir = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "reports/watch-{}",
            clock.start_unix_micros() / 1_000_000
        ))
    });
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return exit::BAD_INPUT;
    }
    let session = match KubeSession::start(&section, clock, &dir).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::RUNTIME_FAILURE;
        }
    };
    eprintln!(
        "watching namespace {} ({}); recording to {}; Ctrl-C to stop",
        section.namespace,
        duration.map_or("until interrupted".to_string(), |d| format!(
            "for {}",
            crate::units::HumanDuration(d)
        )),
        dir.join(journal::FILE_NAME).display()
    );
    let interrupted = tokio::select! {
        _ = shutdown => true,
        _ = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        } => false,
    };
    drop(session.stop().await);
    let report = match rebuild(&dir, &scenario) {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => {
            eprintln!(
                "error: the cluster journal in {} could not be read back",
                dir.display()
            );
            return exit::RUNTIME_FAILURE;
        }
    };
    let md = super::summary::render_markdown(&report.cluster, &report.expectations);
    let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
    for (name, bytes) in [
        ("cluster-report.json", json.as_slice()),
        ("cluster-summary.md", md.as_bytes()),
    ] {
        if let Err(e) = std::fs::write(dir.join(name), bytes) {
            eprintln!("error: cannot write {}: {e}", dir.join(name).display());
            return exit::RUNTIME_FAILURE;
        }
    }
    println!("{md}\nReports in {}", dir.display());
    if interrupted {
        exit::INTERRUPTED
    } else if report.expectations.iter().all(|e| e.pass) {
        exit::OK
    } else {
        exit::CHECK_FAILED
    }
}

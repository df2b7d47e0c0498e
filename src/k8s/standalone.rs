//! `xiuload watch`: the cluster watcher alone, while some other tool makes the load. Also the
//! rebuild of the cluster report from a run directory (`xiuload report <run dir>`).

use super::config::{Expectation, KubeSection};
use super::correlate::{ClusterReport, analyse};
use super::expect::{judge, stage_starts};
use super::journal::{self, JournalError};
use super::judgement::ExpectationResult;
use super::session::KubeSession;
use crate::clock::RunClock;
use crate::scenario::Scenario;
use crate::scenario::fault::FaultRecord;
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

impl WatchReport {
    /// The file `xiuload watch` writes into its output directory.
    pub const FILE_NAME: &'static str = "cluster-report.json";

    /// The watcher's report in `dir`: `Ok(None)` when there is none, an error when there is one
    /// that cannot be read (the caller names the file).
    pub fn read(dir: &Path) -> Result<Option<WatchReport>, WatchReportError> {
        let path = dir.join(Self::FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(WatchReportError::Read(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(WatchReportError::Parse)
    }
}

/// Why a `cluster-report.json` that is there cannot be read; the caller names the file.
#[derive(Debug, thiserror::Error)]
pub enum WatchReportError {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Parse(serde_json::Error),
}

/// Analyses a run directory: `cluster.jsonl` plus `timeline.jsonl` when there is one.
/// `Ok(None)` when the run did not watch a cluster.
/// `faults`: what the run did for its `[[fault]]`s (from its report), which the fault
/// expectations are judged on again.
pub fn rebuild(
    dir: &Path,
    scenario: &Scenario,
    faults: FaultRecord<'_>,
) -> Result<Option<WatchReport>, JournalError> {
    rebuild_with(dir, &scenario.expect, &stage_starts(scenario), faults)
}

fn rebuild_with(
    dir: &Path,
    expect: &[Expectation],
    stages: &[Duration],
    faults: FaultRecord<'_>,
) -> Result<Option<WatchReport>, JournalError> {
    let path = dir.join(journal::FILE_NAME);
    if !path.exists() {
        return Ok(None);
    }
    let cluster = journal::read_journal(&path)?;
    let load =
        crate::metrics::timeline::read_timeline(&dir.join("timeline.jsonl")).unwrap_or_default();
    let report = analyse(&cluster, &load);
    let expectations = judge(expect, Some(&report), &load, stages, faults);
    Ok(Some(WatchReport {
        cluster: report,
        expectations,
    }))
}

/// What `xiuload watch` needs from its `--scenario` file.
#[derive(Debug)]
pub struct WatchPlan {
    pub kube: KubeSection,
    pub expect: Vec<Expectation>,
    pub stages: Vec<Duration>,
}

/// A watch-only file (nothing but `[kube]` and `[[expect]]`)...
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchOnly {
    kube: KubeSection,
    #[serde(default)]
    expect: Vec<Expectation>,
}

/// Why `--scenario` gives nothing to watch; each message starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum WatchPlanError {
    #[error("{}: cannot read scenario: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", .path.display())]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// A watch-only file whose `[kube]` or `[[expect]]` does not validate: one line a problem.
    #[error("{}", problem_lines(.path, .problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<crate::scenario::Problem>,
    },
    /// A whole scenario that does not load as `run` would load it.
    #[error(transparent)]
    Scenario(#[from] crate::scenario::LoadError),
    #[error(
        "{}: no [kube] section: `xiuload watch` needs the namespace and workloads to watch",
        .path.display()
    )]
    NoKube { path: PathBuf },
}

fn problem_lines(path: &Path, problems: &[crate::scenario::Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: field `{}`: {}", path.display(), p.field, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads `--scenario`: either a whole scenario (validated as `run` would) or a watch-only file
/// with just `[kube]` and `[[expect]]` (the load comes from another tool, so no stages).
pub fn load_watch_plan(path: &Path) -> Result<WatchPlan, WatchPlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| WatchPlanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let toml_error = |source| WatchPlanError::Toml {
        path: path.to_path_buf(),
        source,
    };
    let table: toml::Table = toml::from_str(&text).map_err(toml_error)?;
    if table.keys().all(|k| k == "kube" || k == "expect") {
        let w: WatchOnly = toml::from_str(&text).map_err(toml_error)?;
        let problems = super::config::validate(Some(&w.kube), &w.expect, 0, 0);
        if !problems.is_empty() {
            return Err(WatchPlanError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        return Ok(WatchPlan {
            kube: w.kube,
            expect: w.expect,
            stages: Vec::new(),
        });
    }
    let scenario = crate::scenario::load(path)?;
    let Some(kube) = scenario.kube.clone() else {
        return Err(WatchPlanError::NoKube {
            path: path.to_path_buf(),
        });
    };
    Ok(WatchPlan {
        stages: stage_starts(&scenario),
        expect: scenario.expect,
        kube,
    })
}

/// Why `xiuload watch` could not finish.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The scenario (its messages name the file, line and field).
    #[error(transparent)]
    Scenario(#[from] WatchPlanError),
    #[error("cannot create {path}: {source}")]
    OutputDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] super::KubeError),
    #[error("the cluster journal in {0} could not be read back")]
    Journal(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WatchError {
    pub fn blame(&self) -> crate::blame::Blame {
        match self {
            WatchError::Scenario(_) | WatchError::OutputDir { .. } => crate::blame::Blame::Input,
            _ => crate::blame::Blame::Runtime,
        }
    }
}

/// How a watch ended: judged, and whether Ctrl-C or SIGTERM stopped it.
#[derive(Debug)]
pub struct Watched {
    pub verdict: crate::verdict::Verdict,
    pub interrupted: bool,
}

/// Runs `xiuload watch`: records until `duration` or `shutdown`, then writes and prints the
/// cluster report.
pub async fn watch_command(
    scenario_path: &Path,
    out: Option<PathBuf>,
    duration: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) -> Result<Watched, WatchError> {
    let plan = load_watch_plan(scenario_path)?;
    let section = plan.kube.clone();
    let clock = RunClock::start_now();
    let dir = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "reports/watch-{}",
            clock.start_unix_micros() / 1_000_000
        ))
    });
    std::fs::create_dir_all(&dir).map_err(|source| WatchError::OutputDir {
        path: dir.clone(),
        source,
    })?;
    let session = KubeSession::start(&section, clock, &dir).await?;
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
    let report = match rebuild_with(&dir, &plan.expect, &plan.stages, FaultRecord::NONE) {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => return Err(WatchError::Journal(dir)),
    };
    let md = super::summary::render_markdown(&report.cluster, &report.expectations);
    let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
    for (name, bytes) in [
        (WatchReport::FILE_NAME, json.as_slice()),
        ("cluster-summary.md", md.as_bytes()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| WatchError::Write { path, source })?;
    }
    crate::outln!("{md}\nReports in {}", dir.display());
    let overall = crate::verdict::overall(report.expectations.iter().map(|e| e.judged()));
    for reason in &overall.reasons {
        eprintln!("{}: {reason}", overall.verdict.shout());
    }
    Ok(Watched {
        verdict: overall.verdict,
        interrupted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_only_file_needs_just_kube_and_expect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(
            &path,
            "[kube]\nnamespace = \"xiu\"\nedge = { name = \"xiu-edge\" }\n[[expect]]\nkind = \"no_oom_killed\"\n",
        )
        .unwrap();
        let plan = load_watch_plan(&path).unwrap();
        assert_eq!(plan.kube.namespace, "xiu");
        assert_eq!(plan.expect.len(), 1);
        std::fs::write(
            &path,
            "[kube]\nnamespace = \"Bad\"\nedge = { name = \"e\" }\n",
        )
        .unwrap();
        assert!(
            load_watch_plan(&path)
                .unwrap_err()
                .to_string()
                .contains("field `kube.namespace`")
        );
        // Anything else makes it a whole scenario, validated as such.
        std::fs::write(
            &path,
            "[run]\nduration = \"1s\"\n[kube]\nnamespace = \"xiu\"\n",
        )
        .unwrap();
        assert!(
            load_watch_plan(&path)
                .unwrap_err()
                .to_string()
                .contains("target")
        );
    }
}

//! `xiuload report <run dir>`: rebuilds `report.html` and `summary.md` from a run directory's
//! `report.json` and `timeline.jsonl` (and a watcher's `cluster-report.json` when present), e.g. after upgrading
//! xiuload or after the cluster watcher added its data.

use super::model::{Report, ReportHead, ReportStatus, SCHEMA_VERSION};
use super::{OutputDir, OutputError, html, markdown};
use crate::blame::Blame;
use crate::k8s::standalone::WatchReport;
use crate::metrics::timeline::{TimelinePoint, read_timeline};
use serde::de::IgnoredAny;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{path} is not a run directory: {source}")]
    Missing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a finished xiuload report: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path} is not a finished xiuload report: {reason}")]
    NotAReport {
        path: PathBuf,
        reason: ReportJsonError,
    },
    #[error("{path} is not a cluster report written by `xiuload watch`: {reason}")]
    WatchReport {
        path: PathBuf,
        reason: crate::k8s::standalone::WatchReportError,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl RunDirError {
    /// The input's fault unless writing failed.
    pub fn blame(&self) -> Blame {
        match self {
            RunDirError::Output(_) => Blame::Runtime,
            _ => Blame::Input,
        }
    }
}

/// `report.json` of a run directory. A placeholder, a failed run's note, another schema version or
/// anything else that is not a finished report is an error naming the file and saying which.
pub fn load_report(dir: &Path) -> Result<Report, RunDirError> {
    let path = dir.join(OutputDir::REPORT_JSON);
    let text = std::fs::read_to_string(&path).map_err(|source| RunDirError::Missing {
        path: path.clone(),
        source,
    })?;
    parse_report(&text).map_err(|reason| RunDirError::NotAReport { path, reason })
}

/// Why a `report.json` holds no finished report this xiuload can read.
#[derive(Debug, thiserror::Error)]
pub enum ReportJsonError {
    #[error("{0}")]
    Json(serde_json::Error),
    #[error("the run has not finished (placeholder report)")]
    Running,
    #[error("the run left no report to rebuild ({}): {why}", .status.as_str())]
    NoReport { status: ReportStatus, why: String },
    #[error("schema_version {found}, but this xiuload reads version {SCHEMA_VERSION}")]
    OtherSchema { found: u32 },
    #[error("{0} (written by another xiuload version?)")]
    Shape(serde_json::Error),
}

fn parse_report(text: &str) -> Result<Report, ReportJsonError> {
    // The head first: a placeholder or a failed run's note is told apart from a report whose
    // fields are missing, and a newer schema from a damaged file.
    // serde reads a struct from a JSON array too, field by field; a report is an object.
    serde_json::from_str::<BTreeMap<String, IgnoredAny>>(text).map_err(ReportJsonError::Json)?;
    let head: ReportHead = serde_json::from_str(text).map_err(ReportJsonError::Json)?;
    match head.status {
        Some(ReportStatus::Running) => return Err(ReportJsonError::Running),
        Some(status) => {
            let why = head.error.unwrap_or_else(|| "no reason recorded".into());
            return Err(ReportJsonError::NoReport { status, why });
        }
        None => {}
    }
    if let Some(found) = head.schema_version.filter(|v| *v != SCHEMA_VERSION) {
        return Err(ReportJsonError::OtherSchema { found });
    }
    serde_json::from_str(text).map_err(ReportJsonError::Shape)
}

/// Everything `report.html` is drawn from.
pub fn load_run(
    dir: &Path,
) -> Result<(Report, Vec<TimelinePoint>, Option<WatchReport>), RunDirError> {
    let report = load_report(dir)?;
    let tl_path = dir.join(OutputDir::TIMELINE);
    let timeline = read_timeline(&tl_path).map_err(|source| RunDirError::Missing {
        path: tl_path,
        source,
    })?;
    let cluster = read_watch_report(dir)?;
    Ok((report, timeline, cluster))
}

/// A watcher's `cluster-report.json` in `dir`, if there is one; one that cannot be read is an error
/// naming it.
pub fn read_watch_report(dir: &Path) -> Result<Option<WatchReport>, RunDirError> {
    WatchReport::read(dir).map_err(|reason| RunDirError::WatchReport {
        path: dir.join(WatchReport::FILE_NAME),
        reason,
    })
}

/// Rebuilds `summary.md` and `report.html` in place (and, when the run watched a cluster, the
/// cluster analysis and `[[expect]]` verdicts from `cluster.jsonl` + `timeline.jsonl`, written back
/// into `report.json`); returns the HTML's path.
pub fn rebuild(dir: &Path) -> Result<PathBuf, RunDirError> {
    let (mut report, timeline, cluster_file) = load_run(dir)?;
    let out = OutputDir {
        dir: dir.to_path_buf(),
    };
    let journal = dir.join(crate::k8s::journal::FILE_NAME);
    let faults = crate::scenario::fault::FaultRecord {
        events: &report.faults,
        load_end: Some(report.run.planned_duration_s.min(report.run.duration_s)),
    };
    match crate::k8s::standalone::rebuild(dir, &report.scenario, faults) {
        Ok(Some(watched)) => {
            report.cluster = Some(watched.cluster);
            report.expectations = watched.expectations;
            let overall = super::verdict::judge(&report);
            report.verdict = overall.verdict;
            report.verdict_reasons = overall.reasons;
            let json = serde_json::to_vec_pretty(&report).expect("report serialises");
            out.write(OutputDir::REPORT_JSON, &json)?;
        }
        Ok(None) => {}
        Err(e) => {
            return Err(RunDirError::Invalid {
                path: journal,
                message: e.to_string(),
            });
        }
    }
    let cluster = html::ClusterView::from_report(&report).or_else(|| {
        cluster_file.map(|w| html::ClusterView::from_cluster(&w.cluster, &w.expectations))
    });
    out.write(OutputDir::SUMMARY_MD, markdown::render(&report).as_bytes())?;
    out.write(
        OutputDir::REPORT_HTML,
        html::render(&report, &timeline, cluster.as_ref()).as_bytes(),
    )?;
    Ok(out.path(OutputDir::REPORT_HTML))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_and_missing_reports_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let e = rebuild(dir.path()).unwrap_err();
        assert_eq!(e.blame(), Blame::Input);
        assert!(e.to_string().contains("report.json"), "{e}");
        OutputDir::prepare(dir.path()).unwrap();
        let e = rebuild(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not finished"), "{e}");
    }

    #[test]
    fn a_failed_runs_note_says_why_it_has_no_report() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::prepare(dir.path()).unwrap();
        out.write_error("xiu did not start");
        let e = load_report(dir.path()).unwrap_err();
        assert!(
            matches!(
                &e,
                RunDirError::NotAReport {
                    reason: ReportJsonError::NoReport {
                        status: ReportStatus::Error,
                        why,
                    },
                    ..
                } if why == "xiu did not start"
            ),
            "{e}"
        );
    }
}

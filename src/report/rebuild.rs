//! `xiuload report <run dir>`: rebuilds `report.html` and `summary.md` from a run directory's
//! `report.json` and `timeline.jsonl` (and a watcher's `cluster-report.json` when present), e.g. after upgrading
//! xiuload or after the cluster watcher added its data.

use super::model::Report;
use super::{OutputDir, OutputError, html, markdown};
use crate::blame::Blame;
use crate::k8s::standalone::WatchReport;
use crate::metrics::timeline::{TimelinePoint, read_timeline};
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
    #[error("{path} is not a cluster report written by `xiuload watch`: {message}")]
    WatchReport { path: PathBuf, message: String },
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

/// `report.json` of a run directory, typed and raw (for fields outside the model).
pub fn load_report(dir: &Path) -> Result<(Report, serde_json::Value), RunDirError> {
    let path = dir.join(OutputDir::REPORT_JSON);
    let text = std::fs::read_to_string(&path).map_err(|source| RunDirError::Missing {
        path: path.clone(),
        source,
    })?;
    let invalid = |message: String| RunDirError::Invalid {
        path: path.clone(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    match value.get("status").and_then(|s| s.as_str()) {
        Some("running") => {
            return Err(invalid(
                "the run has not finished (placeholder report)".into(),
            ));
        }
        Some(status @ ("error" | "write_failed")) => {
            let why = value
                .get("error")
                .or_else(|| value.get("message"))
                .and_then(|m| m.as_str())
                .unwrap_or("no reason recorded");
            return Err(invalid(format!(
                "the run left no report to rebuild ({status}): {why}"
            )));
        }
        _ => {}
    }
    let report: Report = serde_json::from_value(value.clone())
        .map_err(|e| invalid(format!("{e} (written by another xiuload version?)")))?;
    Ok((report, value))
}

/// Everything `report.html` is drawn from.
pub fn load_run(
    dir: &Path,
) -> Result<(Report, Vec<TimelinePoint>, Option<WatchReport>), RunDirError> {
    let (report, _) = load_report(dir)?;
    let tl_path = dir.join(OutputDir::TIMELINE);
    let timeline = read_timeline(&tl_path).map_err(|source| RunDirError::Missing {
        path: tl_path,
        source,
    })?;
    let cluster = WatchReport::read(dir).map_err(|message| RunDirError::WatchReport {
        path: dir.join(WatchReport::FILE_NAME),
        message,
    })?;
    Ok((report, timeline, cluster))
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
}

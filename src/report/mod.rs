//! Reports: one model, several writers. Output files are created before the load starts so that a
//! bad path fails in the first second, not after an hour.

pub mod compare;
pub mod html;
pub mod knee;
pub mod markdown;
pub mod model;
pub mod rebuild;
pub mod svg;
pub mod text;
pub mod thresholds;
pub mod verdict;

pub use model::{Report, SCHEMA_VERSION};

use crate::k8s::standalone::WatchReport;
use crate::metrics::timeline::TimelinePoint;
use model::{ReportHead, ReportStatus};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot create output directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Some of the final report files could not be written; each failure is listed once.
    #[error("{}", .failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"))]
    Report { failures: Vec<OutputError> },
}

/// The run directory and its files.
#[derive(Debug, Clone)]
pub struct OutputDir {
    pub dir: PathBuf,
}

impl OutputDir {
    pub const REPORT_JSON: &'static str = "report.json";
    pub const SUMMARY_MD: &'static str = "summary.md";
    pub const TIMELINE: &'static str = "timeline.jsonl";
    /// Every per-second window with its raw histograms: what `xiuload merge` joins.
    pub const WINDOWS: &'static str = "windows.jsonl";
    pub const REPORT_HTML: &'static str = "report.html";

    /// Placeholders are padded to this size so that, when the final file cannot be written (a
    /// full disk), the placeholder can still be overwritten in place, in blocks it already owns,
    /// with a note saying so: a run's files never keep saying "running".
    const PLACEHOLDER_BYTES: usize = 1024;

    /// Creates the directory and placeholder files, proving they can be written.
    pub fn prepare(dir: &Path) -> Result<Self, OutputError> {
        std::fs::create_dir_all(dir).map_err(|source| OutputError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let out = OutputDir {
            dir: dir.to_path_buf(),
        };
        let placeholder = ReportHead::note(ReportStatus::Running, None);
        let mut json = serde_json::to_vec(&placeholder).expect("a report head serialises");
        json.push(b'\n');
        out.write(Self::REPORT_JSON, &padded(&json))?;
        out.write(Self::SUMMARY_MD, &padded(b"# xiuload run in progress\n"))?;
        Ok(out)
    }

    /// Replaces the "running" placeholders with an error report that says why the run stopped,
    /// so a run that failed before it measured anything never looks like one still going.
    /// Best effort: it is called on the way out of a failure.
    pub fn write_error(&self, message: &str) {
        let json = ReportHead::note(ReportStatus::Error, Some(message.to_string()));
        let json = serde_json::to_vec_pretty(&json).expect("a report head serialises");
        let md = format!("# xiuload run failed\n\n{message}\n");
        for (name, bytes) in [
            (Self::REPORT_JSON, json),
            (Self::SUMMARY_MD, md.into_bytes()),
        ] {
            if let Err(e) = self.write(name, &bytes) {
                eprintln!("warning: {e}");
            }
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), OutputError> {
        // Write-then-rename so a reader never sees half a report.
        let path = self.path(name);
        let tmp = self.path(&format!(".{name}.tmp"));
        let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &path));
        if result.is_err() {
            // A half-written temp file only holds space on a disk that is probably full.
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(|source| OutputError::Write { path, source })
    }

    /// Writes report.json, summary.md and report.html. A watcher's `cluster-report.json`, if
    /// already in the directory, is drawn in the HTML report.
    ///
    /// Every file is attempted, whatever happened to the others; the error lists each failure
    /// once. A placeholder whose final file could not be written is overwritten in place with a
    /// note saying so (or removed), so it never keeps saying "running".
    pub fn write_report(
        &self,
        report: &Report,
        timeline: &[TimelinePoint],
    ) -> Result<(), OutputError> {
        let json = serde_json::to_vec_pretty(report).expect("report serialises");
        let cluster = html::ClusterView::from_report(report).or_else(|| {
            // A watcher's report that cannot be read is left out of the drawing, not the run's.
            let watched = WatchReport::read(&self.dir).ok().flatten()?;
            Some(html::ClusterView::from_cluster(
                &watched.cluster,
                &watched.expectations,
            ))
        });
        let files = [
            (Self::REPORT_JSON, json),
            (Self::SUMMARY_MD, markdown::render(report).into_bytes()),
            (
                Self::REPORT_HTML,
                html::render(report, timeline, cluster.as_ref()).into_bytes(),
            ),
        ];
        let mut failures = Vec::new();
        for (name, bytes) in files {
            if let Err(e) = self.write(name, &bytes) {
                let reason = match &e {
                    OutputError::Write { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                self.replace_placeholder(name, &reason);
                failures.push(e);
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(OutputError::Report { failures })
        }
    }

    /// After `name` could not be written: its placeholder (if it has one) is overwritten in place
    /// with a note, without truncating first so no new block is needed; if even that fails the
    /// placeholder is removed.
    fn replace_placeholder(&self, name: &str, reason: &str) {
        // Bounded so the note fits the placeholder's blocks and stays whole JSON.
        let reason: String = reason.chars().take(300).collect();
        let note = match name {
            Self::REPORT_JSON => serde_json::to_vec(&ReportHead::note(
                ReportStatus::WriteFailed,
                Some(format!("the final report could not be written: {reason}")),
            ))
            .expect("a report head serialises"),
            Self::SUMMARY_MD => {
                format!("# xiuload run: the summary could not be written ({reason})\n").into_bytes()
            }
            _ => return,
        };
        let note = &note[..note.len().min(Self::PLACEHOLDER_BYTES)];
        let path = self.path(name);
        let overwritten = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(note)?;
                f.set_len(note.len() as u64)
            });
        if overwritten.is_err() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A placeholder padded with trailing whitespace (still valid JSON or Markdown).
fn padded(content: &[u8]) -> Vec<u8> {
    let mut out = content.to_vec();
    out.resize(OutputDir::PLACEHOLDER_BYTES.max(content.len()), b' ');
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> Report {
        serde_json::from_str(include_str!("../../tests/fixtures/report/report.json"))
            .expect("fixture report parses")
    }

    /// Makes the temp file `name` is written through a door to /dev/full: every write to it
    /// fails with "No space left on device", as on a full disk.
    fn fill(out: &OutputDir, name: &str) {
        std::os::unix::fs::symlink("/dev/full", out.path(&format!(".{name}.tmp"))).unwrap();
    }

    fn status(out: &OutputDir) -> String {
        let text = std::fs::read_to_string(out.path(OutputDir::REPORT_JSON)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["status"].as_str().unwrap_or("(none)").to_string()
    }

    #[test]
    fn placeholders_say_running_until_the_report_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::prepare(dir.path()).unwrap();
        assert_eq!(status(&out), "running");
        out.write_report(&sample_report(), &[]).unwrap();
        assert_eq!(status(&out), "(none)");
        assert!(out.path(OutputDir::REPORT_HTML).exists());
    }

    #[test]
    fn a_failed_write_removes_its_temp_file_and_the_placeholder_stops_saying_running() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::prepare(dir.path()).unwrap();
        fill(&out, OutputDir::REPORT_JSON);
        let err = out.write_report(&sample_report(), &[]).unwrap_err();
        let text = err.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("report.json") && text.contains("No space left"),
            "{text}"
        );
        assert!(!out.path(".report.json.tmp").exists());
        assert_eq!(status(&out), "write_failed");
        let note = std::fs::read_to_string(out.path(OutputDir::REPORT_JSON)).unwrap();
        assert!(note.contains("No space left on device"), "{note}");
        // The other files were still written.
        let summary = std::fs::read_to_string(out.path(OutputDir::SUMMARY_MD)).unwrap();
        assert!(!summary.contains("in progress"), "{summary}");
        assert!(out.path(OutputDir::REPORT_HTML).exists());
    }

    #[test]
    fn every_failed_file_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::prepare(dir.path()).unwrap();
        for name in [
            OutputDir::REPORT_JSON,
            OutputDir::SUMMARY_MD,
            OutputDir::REPORT_HTML,
        ] {
            fill(&out, name);
        }
        let OutputError::Report { failures } = out.write_report(&sample_report(), &[]).unwrap_err()
        else {
            panic!("expected the report's failures")
        };
        let paths: Vec<String> = failures
            .iter()
            .map(|f| match f {
                OutputError::Write { path, .. } => {
                    path.file_name().unwrap().to_string_lossy().into()
                }
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(paths, ["report.json", "summary.md", "report.html"]);
        assert_eq!(status(&out), "write_failed");
        let summary = std::fs::read_to_string(out.path(OutputDir::SUMMARY_MD)).unwrap();
        assert!(summary.contains("could not be written"), "{summary}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

//! Reports: one model, several writers. Output files are created before the load starts so that a
//! bad path fails in the first second, not after an hour.

pub mod compare;
pub mod html;
pub mod markdown;
pub mod model;
pub mod rebuild;
pub mod svg;
pub mod text;
pub mod thresholds;
pub mod verdict;

pub use model::{Report, SCHEMA_VERSION};

use crate::metrics::timeline::TimelinePoint;
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
    pub const REPORT_HTML: &'static str = "report.html";
    /// Written by the cluster watcher during cluster runs; drawn in `report.html` when present.
    pub const CLUSTER_JSON: &'static str = "cluster.json";

    /// Creates the directory and placeholder files, proving they can be written.
    pub fn prepare(dir: &Path) -> Result<Self, OutputError> {
        std::fs::create_dir_all(dir).map_err(|source| OutputError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let out = OutputDir {
            dir: dir.to_path_buf(),
        };
        out.write(
            Self::REPORT_JSON,
            b"{\"schema_version\": 1, \"status\": \"running\"}\n",
        )?;
        out.write(Self::SUMMARY_MD, b"# xiuload run in progress\n")?;
        Ok(out)
    }

    /// Replaces the "running" placeholders with an error report that says why the run stopped,
    /// so a run that failed before it measured anything never looks like one still going.
    /// Best effort: it is called on the way out of a failure.
    pub fn write_error(&self, message: &str) {
        let json = serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "status": "error",
            "error": message,
        });
        let json = serde_json::to_vec_pretty(&json).expect("a JSON value serialises");
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
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| OutputError::Write { path, source })
    }

    /// Writes report.json, summary.md and report.html. The cluster watcher's `cluster.json`, if
    /// already in the directory, is drawn in the HTML report.
    pub fn write_report(
        &self,
        report: &Report,
        timeline: &[TimelinePoint],
    ) -> Result<(), OutputError> {
        let json = serde_json::to_vec_pretty(report).expect("report serialises");
        self.write(Self::REPORT_JSON, &json)?;
        self.write(Self::SUMMARY_MD, markdown::render(report).as_bytes())?;
        let cluster = cluster_view(report).or_else(|| {
            std::fs::read_to_string(self.path(Self::CLUSTER_JSON))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        });
        self.write(
            Self::REPORT_HTML,
            html::render(report, timeline, cluster.as_ref()).as_bytes(),
        )
    }
}

/// The HTML report's cluster input (replicas, events, per-pod usage, expectations) from the
/// cluster analysis embedded in the report.
pub fn cluster_view(report: &Report) -> Option<serde_json::Value> {
    let c = report.cluster.as_ref()?;
    let mut events: Vec<serde_json::Value> = c
        .scale_decisions
        .iter()
        .map(|d| {
            serde_json::json!({
                "t": d.t,
                "kind": "scale",
                "message": format!("{} {}→{}", d.workload, d.from, d.to),
            })
        })
        .collect();
    events.extend(c.incidents.iter().map(|i| {
        serde_json::json!({"t": i.t, "kind": i.kind, "message": format!("{}: {}", i.object, i.message)})
    }));
    events.sort_by(|a, b| {
        a["t"]
            .as_f64()
            .partial_cmp(&b["t"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Some(serde_json::json!({
        "replicas": c.replicas,
        "events": events,
        "pods": c.pod_usage,
        "expectations": report
            .expectations
            .iter()
            .map(|e| serde_json::json!({"name": e.description, "pass": e.pass, "status": e.status, "evidence": e.evidence}))
            .collect::<Vec<_>>(),
    }))
}

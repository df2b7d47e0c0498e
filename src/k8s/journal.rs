//! `cluster.jsonl`: every [`ClusterEvent`] as one JSON line, flushed as it is written, so a killed
//! run keeps what it recorded and `xiuload report <run dir>` can rebuild the cluster part.

use super::timeline::{ClusterEvent, ClusterTimeline};
use std::io::Write;
use std::path::Path;

pub const FILE_NAME: &str = "cluster.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Journal {
    file: std::fs::File,
    path: String,
}

impl Journal {
    pub fn create(path: &Path) -> Result<Journal, JournalError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| JournalError::Write {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Journal {
            file,
            path: path.display().to_string(),
        })
    }

    pub fn append(&mut self, e: &ClusterEvent) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(e).map_err(|e| self.err(std::io::Error::other(e)))?;
        line.push(b'\n');
        // One write per line: a concurrent reader (or a crash) never sees half of two lines.
        self.file.write_all(&line).map_err(|e| self.err(e))?;
        self.file.flush().map_err(|e| self.err(e))
    }

    fn err(&self, source: std::io::Error) -> JournalError {
        JournalError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// Reads a journal back; a torn last line (killed run) and unknown lines are skipped.
pub fn read_journal(path: &Path) -> Result<ClusterTimeline, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|source| JournalError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut timeline = ClusterTimeline::default();
    for e in text
        .lines()
        .filter_map(|l| serde_json::from_str::<ClusterEvent>(l).ok())
    {
        timeline.push(e);
    }
    Ok(timeline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::timeline::{EventKind, Stamp};

    #[test]
    fn lines_read_back_and_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut j = Journal::create(&path).unwrap();
        j.append(&ClusterEvent {
            at: Stamp { t: 0.0, wall_ms: 5 },
            kind: EventKind::Session {
                namespace: "ns".into(),
                workloads: vec!["xiu-edge".into()],
                start_unix_ms: 5,
            },
        })
        .unwrap();
        j.append(&ClusterEvent {
            at: Stamp {
                t: 1.0,
                wall_ms: 1005,
            },
            kind: EventKind::PodAdded { pod: "p".into() },
        })
        .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"t\":2.0,\"wall")
            .unwrap();
        let t = read_journal(&path).unwrap();
        assert_eq!(t.namespace, "ns");
        assert_eq!(t.events.len(), 2);
        assert_eq!(t.events[1].kind, EventKind::PodAdded { pod: "p".into() });
    }
}

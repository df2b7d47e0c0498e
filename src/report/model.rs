//! The report view model: one structure that every writer (JSON, Markdown, terminal, HTML)
//! renders. `report.json` is this structure serialised; its schema is versioned and documented in
//! README.md ("Report reference").

use super::knee::KneeReport;
use super::thresholds::ThresholdResult;
use crate::metrics::loader::LoaderHealth;
use crate::metrics::stats::ErrorCounts;
use crate::metrics::{PlayerStats, PublisherStats, Summary};
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped on any incompatible change to `report.json`.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub run: RunInfo,
    pub scenario: Scenario,
    pub publishers: Vec<PublisherGroupReport>,
    pub players: Vec<PlayerGroupReport>,
    /// All player groups of one protocol merged.
    pub protocols: BTreeMap<String, PlayerSummary>,
    /// Every player merged.
    pub all_players: PlayerSummary,
    pub loader: LoaderHealth,
    pub thresholds: Vec<ThresholdResult>,
    /// `pass`, `fail` or `inconclusive` (see [`crate::report::verdict::judge`]).
    pub verdict: Verdict,
    /// Why the verdict is not `pass`: failures first, then what could not be judged.
    #[serde(default)]
    pub verdict_reasons: Vec<String>,
    /// What the cluster did and how it correlates with the load, when the scenario has `[kube]`.
    #[serde(default)]
    pub cluster: Option<crate::k8s::ClusterReport>,
    /// `[[expect]]` verdicts with their evidence; any failure makes the verdict `fail`.
    #[serde(default)]
    pub expectations: Vec<crate::k8s::ExpectationResult>,
    /// What the run did for each `[[fault]]`, in the order the actions began.
    #[serde(default)]
    pub faults: Vec<crate::scenario::fault::FaultEvent>,
    /// What the local topology's kubelet did (edges out of and back in the viewers' rotation,
    /// containers restarted), in the order it did it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet: Vec<crate::local::KubeletEvent>,
    /// Capacity-knee results when the scenario has a `[knee]` section.
    #[serde(default)]
    pub knee: Option<KneeReport>,
    /// What the scenario was expected to run into on xiu 0.14 whatever the cluster did (e.g. the
    /// viewers a steep ramp loses to xiu's subscriber-name collisions), as printed by `validate`.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Raw mergeable measurements (histograms in HdrHistogram V2 base64) after warm-up, per group,
    /// so reports of several load-generator pods combine exactly.
    pub raw: RawMeasurements,
}

/// What `report.json` says before (or instead of) a finished [`Report`]: the placeholder written
/// before the load, or the note left when the run failed or its report could not be written. A
/// finished report has no `status`. Readers look at this first, so that a file that is not a report
/// (yet) says why rather than which field is missing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReportHead {
    #[serde(default)]
    pub schema_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReportStatus>,
    /// Why the run left no report (`error`, `write_failed`); hand-written notes may say `message`.
    #[serde(default, alias = "message", skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReportHead {
    /// A `report.json` that stands where no finished report is (yet): the placeholder, or why
    /// there is none. Readers (`rebuild::load_report`) parse the same type.
    pub fn note(status: ReportStatus, error: Option<String>) -> ReportHead {
        ReportHead {
            schema_version: Some(SCHEMA_VERSION),
            status: Some(status),
            error,
        }
    }
}

/// `status` of a `report.json` that holds no finished report.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// The placeholder: the run has not finished.
    Running,
    /// The run stopped before it measured anything.
    Error,
    /// The final report could not be written (a full disk).
    WriteFailed,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Running => "running",
            ReportStatus::Error => "error",
            ReportStatus::WriteFailed => "write_failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The plan ran to its end.
    Completed,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub name: String,
    pub scenario_file: String,
    pub target: String,
    pub started_at: String,
    pub ended_at: String,
    /// Wall clock of the run's time zero, ms since the Unix epoch: the timeline's `t` is relative
    /// to it.
    pub start_unix_ms: u64,
    pub planned_duration_s: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub stopped_by: StopReason,
    /// A run that is one part of a run split by hand (`xiuload run --shard I/N`): which part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::scenario::shard::Shard>,
    /// A distributed run: how many workers made the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
}

pub use crate::verdict::Verdict;

/// Counts over the whole run, warm-up included: the judged figures above leave the warm-up out,
/// so a publisher that connected during the warm-up shows here and not there.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WholeRun {
    pub sessions: u64,
    /// Viewers only: sessions that received media.
    pub sessions_with_media: u64,
    pub errors: ErrorCounts,
    pub connect_ms: Summary,
}

impl WholeRun {
    fn of_players(steady: &PlayerStats, warmup: &PlayerStats) -> Self {
        let mut all = warmup.clone();
        all.merge(steady);
        WholeRun {
            sessions: all.sessions,
            sessions_with_media: all.sessions_with_media,
            errors: all.errors,
            connect_ms: all.connect.summary(),
        }
    }

    fn of_publishers(steady: &PublisherStats, warmup: &PublisherStats) -> Self {
        let mut all = warmup.clone();
        all.merge(steady);
        WholeRun {
            sessions: all.sessions,
            sessions_with_media: 0,
            errors: all.errors,
            connect_ms: all.connect.summary(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublisherGroupReport {
    pub name: String,
    pub streams: Vec<String>,
    pub sessions: u64,
    pub frames: u64,
    pub bytes: u64,
    pub mbps: f64,
    pub disconnects: u64,
    pub errors: ErrorCounts,
    pub errors_during_warmup: ErrorCounts,
    pub error_rate: f64,
    pub connect_ms: Summary,
    pub publish_accept_ms: Summary,
    pub lateness_ms: Summary,
    /// The whole run, warm-up included (the fields above are after warm-up).
    #[serde(default)]
    pub whole_run: WholeRun,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlayerGroupReport {
    pub name: String,
    pub protocol: String,
    #[serde(flatten)]
    pub summary: PlayerSummary,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
// Fields added within a schema version default to zero, so older reports still load.
#[serde(default)]
pub struct PlayerSummary {
    pub sessions: u64,
    pub sessions_with_media: u64,
    pub errors: ErrorCounts,
    pub errors_during_warmup: ErrorCounts,
    pub error_rate: f64,
    pub frames: u64,
    pub bytes: u64,
    pub mbps: f64,
    pub stalls: u64,
    pub stall_ratio: f64,
    pub lost_frames: u64,
    pub lost_frame_ratio: f64,
    pub duplicate_frames: u64,
    pub reordered_frames: u64,
    pub unstamped_frames: u64,
    pub reconnects: u64,
    pub abandoned: u64,
    pub segments: u64,
    pub slow_segments: u64,
    pub skipped_segments: u64,
    pub stale_playlists: u64,
    pub bad_playlists: u64,
    pub connect_ms: Summary,
    pub ttfb_ms: Summary,
    pub startup_ms: Summary,
    pub latency_ms: Summary,
    pub frame_gap_ms: Summary,
    pub stall_ms: Summary,
    pub playlist_ms: Summary,
    pub segment_ms: Summary,
    /// The whole run, warm-up included (the fields above are after warm-up).
    pub whole_run: WholeRun,
}

impl PlayerSummary {
    /// Summarises steady-state stats; `warmup` only contributes its error counts.
    pub fn from_stats(s: &PlayerStats, warmup: &PlayerStats, seconds: f64) -> Self {
        PlayerSummary {
            sessions: s.sessions,
            sessions_with_media: s.sessions_with_media,
            errors: s.errors.clone(),
            errors_during_warmup: warmup.errors.clone(),
            error_rate: round4(s.error_rate()),
            frames: s.frames,
            bytes: s.bytes,
            mbps: mbps(s.bytes, seconds),
            stalls: s.stalls,
            stall_ratio: round4(s.stall_ratio()),
            lost_frames: s.lost_frames,
            lost_frame_ratio: round4(s.lost_frame_ratio()),
            duplicate_frames: s.duplicate_frames,
            reordered_frames: s.reordered_frames,
            unstamped_frames: s.unstamped_frames,
            reconnects: s.reconnects,
            abandoned: s.abandoned,
            segments: s.segments,
            slow_segments: s.slow_segments,
            skipped_segments: s.skipped_segments,
            stale_playlists: s.stale_playlists,
            bad_playlists: s.bad_playlists,
            connect_ms: s.connect.summary(),
            ttfb_ms: s.ttfb.summary(),
            startup_ms: s.startup.summary(),
            latency_ms: s.latency.summary(),
            frame_gap_ms: s.frame_gap.summary(),
            stall_ms: s.stall.summary(),
            playlist_ms: s.playlist.summary(),
            segment_ms: s.segment.summary(),
            whole_run: WholeRun::of_players(s, warmup),
        }
    }
}

impl PublisherGroupReport {
    pub fn from_stats(
        name: &str,
        streams: Vec<String>,
        s: &PublisherStats,
        warmup: &PublisherStats,
        seconds: f64,
    ) -> Self {
        PublisherGroupReport {
            name: name.to_string(),
            streams,
            sessions: s.sessions,
            frames: s.frames,
            bytes: s.bytes,
            mbps: mbps(s.bytes, seconds),
            disconnects: s.disconnects,
            errors: s.errors.clone(),
            errors_during_warmup: warmup.errors.clone(),
            error_rate: round4(s.error_rate()),
            connect_ms: s.connect.summary(),
            publish_accept_ms: s.publish_accept.summary(),
            lateness_ms: s.lateness.summary(),
            whole_run: WholeRun::of_publishers(s, warmup),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawMeasurements {
    pub players: BTreeMap<String, PlayerStats>,
    pub publishers: BTreeMap<String, PublisherStats>,
}

pub fn mbps(bytes: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        0.0
    } else {
        ((bytes as f64 * 8.0 / 1e6 / seconds) * 100.0).round() / 100.0
    }
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

//! The scenario file's data model. Every table rejects unknown keys so that a typo is an error
//! with a location, not a silently ignored setting.

use super::local_target::LocalTarget;
// Part of the model's vocabulary (a player group plays one): named `scenario::Protocol` by the
// crate and its tests, and `validate` takes the model's names with a glob.
pub use super::protocol::Protocol;
pub use super::template::PathTemplate;
pub use crate::base_url::HttpBase;
pub use crate::rtmp::url::RtmpBase;
use crate::units::{BitRate, HumanDuration};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub run: RunSection,
    pub target: Target,
    #[serde(default)]
    pub publishers: Vec<PublisherGroup>,
    #[serde(default)]
    pub players: Vec<PlayerGroup>,
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    #[serde(default)]
    pub kube: Option<super::cluster::KubeSection>,
    #[serde(default)]
    pub expect: Vec<super::cluster::Expectation>,
    /// Capacity planning: step one group's clients up until a threshold breaks.
    pub knee: Option<KneeSection>,
    /// What the run does to the servers under load, and when.
    #[serde(default, rename = "fault")]
    pub fault: Vec<super::fault::Fault>,
    /// The run split over the pods of a Kubernetes Indexed Job.
    #[serde(default)]
    pub distributed: Option<super::worker_pods::DistributedSection>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KneeSection {
    /// The player group whose viewers, or the publisher group whose publishers, are stepped up
    /// (it has no `count`/`ramp` of its own).
    pub group: String,
    pub start: u32,
    pub step: u32,
    pub max: u32,
    /// How long each step lasts.
    pub step_duration: HumanDuration,
    /// The first part of each step is not judged: viewers are still joining.
    #[serde(default = "default_settle")]
    pub settle: HumanDuration,
    /// How fast each step's new viewers join.
    #[serde(default = "default_knee_ramp")]
    pub ramp: HumanDuration,
    /// Size the fleet for this many concurrent viewers (a knee of viewers).
    pub target_audience: Option<u64>,
    /// Size the origins for this many concurrent streams (a knee of publishers).
    #[serde(default)]
    pub target_streams: Option<u64>,
    /// Share of each pod kept free (0.3 = plan pods at 70 % of their measured knee).
    #[serde(default = "default_headroom")]
    pub headroom: f64,
}

fn default_settle() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_knee_ramp() -> HumanDuration {
    HumanDuration::secs(3)
}
fn default_headroom() -> f64 {
    0.3
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Shown in reports; defaults to the file name.
    pub name: Option<String>,
    /// Hard cap on the run's length. Required when a group uses `count` without `ramp`.
    pub duration: Option<HumanDuration>,
    /// Samples before this point are kept in the timeline but left out of thresholds: the first
    /// seconds of a live stream (HLS playlists not cut yet, edges pulling) are not steady state.
    #[serde(default)]
    pub warmup: HumanDuration,
    /// Seed for stream selection, churn and jitter, so two runs of one scenario offer the same load.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            name: None,
            duration: None,
            warmup: HumanDuration::default(),
            seed: default_seed(),
        }
    }
}

fn default_seed() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// xiu application name (`rtmp://host/<app>/<stream>`).
    #[serde(default = "default_app")]
    pub app: String,
    /// Start a xiu topology on loopback instead of targeting a cluster.
    pub local: Option<LocalTarget>,
    /// `rtmp://host[:port]` publishers connect to (the origin's LoadBalancer).
    pub rtmp_publish: Option<RtmpBase>,
    /// `rtmp://host[:port]` RTMP players connect to (the edges' LoadBalancer).
    pub rtmp_play: Option<RtmpBase>,
    /// `http(s)://host[:port]` serving `flv_path`.
    pub flv_base: Option<HttpBase>,
    /// `http(s)://host[:port]` serving `hls_path`.
    pub hls_base: Option<HttpBase>,
    /// Where the server serves a stream's HTTP-FLV, below `flv_base` (default: xiu's layout).
    #[serde(default = "PathTemplate::xiu_flv")]
    pub flv_path: PathTemplate,
    /// Where the server serves a stream's HLS playlist, below `hls_base` (default: xiu's layout;
    /// nginx-rtmp's is e.g. `/hls/{stream}.m3u8`).
    #[serde(default = "PathTemplate::xiu_hls")]
    pub hls_path: PathTemplate,
    #[serde(default)]
    pub tls: TlsSection,
    /// The environment variable holding the origin's publish token (xiu's RTMP push auth, as
    /// deploy/ sets it up): publishers send it as `?token=`. A name, never the secret itself,
    /// so scenario files can be committed.
    pub publish_token_env: Option<String>,
}

pub fn default_app() -> String {
    "live".to_string()
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Extra CA certificate (PEM) trusted for HTTPS targets, e.g. a staging issuer.
    pub ca_file: Option<PathBuf>,
    /// Turns certificate verification off. Only for throwaway test clusters.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A load shape: either a constant `count` for the whole run or k6-style `ramp` stages.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub duration: HumanDuration,
    pub target: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherGroup {
    pub name: String,
    /// Stream name pattern; `{i}` is the publisher's index in the group (0-based).
    #[serde(default = "default_stream_pattern")]
    pub stream: String,
    pub count: Option<u32>,
    pub ramp: Option<Vec<Stage>>,
    #[serde(default)]
    pub video: VideoSection,
    #[serde(default)]
    pub audio: AudioSection,
    #[serde(default)]
    pub start_jitter: HumanDuration,
    #[serde(default)]
    pub reconnect: ReconnectPolicy,
    /// Bounds connect + RTMP handshake + `connect`, and then `publish`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

pub use crate::player::{
    DEFAULT_MAX_PLAYLIST_BYTES, DEFAULT_MAX_SEGMENT_BYTES, DEFAULT_MAX_TAG_BYTES,
};

fn default_max_playlist_bytes() -> u64 {
    DEFAULT_MAX_PLAYLIST_BYTES
}
fn default_max_segment_bytes() -> u64 {
    DEFAULT_MAX_SEGMENT_BYTES
}
fn default_max_tag_bytes() -> u64 {
    DEFAULT_MAX_TAG_BYTES
}

fn default_stream_pattern() -> String {
    "stream-{i}".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSection {
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    #[serde(default = "default_video_bitrate")]
    pub bitrate: BitRate,
    /// Keyframe interval, in seconds of media (players start on a keyframe, HLS cuts on them).
    #[serde(default = "default_gop")]
    pub gop: HumanDuration,
}

impl Default for VideoSection {
    fn default() -> Self {
        VideoSection {
            width: default_width(),
            height: default_height(),
            fps: default_fps(),
            bitrate: default_video_bitrate(),
            gop: default_gop(),
        }
    }
}

fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}
fn default_fps() -> u32 {
    30
}
fn default_video_bitrate() -> BitRate {
    BitRate(2_000_000)
}
fn default_gop() -> HumanDuration {
    HumanDuration::secs(2)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSection {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_audio_bitrate")]
    pub bitrate: BitRate,
}

impl Default for AudioSection {
    fn default() -> Self {
        AudioSection {
            enabled: true,
            bitrate: default_audio_bitrate(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_audio_bitrate() -> BitRate {
    BitRate(128_000)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlayerGroup {
    pub name: String,
    pub protocol: Protocol,
    /// Which streams to watch: the streams of a publisher group in this scenario...
    pub publishers: Option<String>,
    /// ...or explicit stream names published by something else.
    pub streams: Option<Vec<String>>,
    #[serde(default)]
    pub select: Selection,
    pub count: Option<u32>,
    pub ramp: Option<Vec<Stage>>,
    /// Viewer churn: each viewer leaves after a random time in `[min, max]` and a new one joins.
    pub session: Option<SessionLength>,
    #[serde(default)]
    pub start_jitter: HumanDuration,
    /// Media buffered before playback starts (and after a stall) in the playback-buffer model.
    pub startup_buffer: Option<HumanDuration>,
    /// Startup longer than this counts as a `no_media` error (RTMP's Play.Start arrives even for a
    /// stream that does not exist, xiu's HTTP-FLV answers such a stream with an empty 200).
    #[serde(default = "default_first_frame_timeout")]
    pub first_frame_timeout: HumanDuration,
    /// No media for this long after startup ends the session with a `read_timeout` error.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: HumanDuration,
    #[serde(default)]
    pub reconnect: ReconnectPolicy,
    /// Bounds TCP connect (+ TLS) up to the response head; RTMP: connect, handshake, `connect`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// HLS: largest playlist and segment accepted, in bytes.
    #[serde(default = "default_max_playlist_bytes")]
    pub max_playlist_bytes: u64,
    #[serde(default = "default_max_segment_bytes")]
    pub max_segment_bytes: u64,
    /// HTTP-FLV: largest tag; RTMP: largest message, in bytes.
    #[serde(default = "default_max_tag_bytes")]
    pub max_tag_bytes: u64,
}

fn default_first_frame_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_read_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "mode", deny_unknown_fields)]
#[derive(Default)]
pub enum Selection {
    /// Viewer `n` watches stream `n mod streams`.
    #[default]
    RoundRobin,
    /// Popularity follows Zipf's law with this exponent: a few streams are hot.
    Zipf { exponent: f64 },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionLength {
    pub min: HumanDuration,
    pub max: HumanDuration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectPolicy {
    /// Reconnects after an error before the viewer (or publisher) gives up; a new one then takes
    /// its place after `backoff`.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Wait before the first reconnect; doubled on each further attempt.
    #[serde(default = "default_backoff")]
    pub backoff: HumanDuration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            max_attempts: default_attempts(),
            backoff: default_backoff(),
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> HumanDuration {
    HumanDuration::secs(1)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// `<metric>` or `<metric>.<stat>`, e.g. `startup_ms.p99`, `stall_ratio`, `error_rate`.
    pub metric: super::threshold::Metric,
    /// `all` players (default), a protocol (`flv`, `hls`, `rtmp`), a group name, or `publishers`.
    #[serde(default)]
    pub scope: super::threshold::Scope,
    pub max: Option<f64>,
    pub min: Option<f64>,
}

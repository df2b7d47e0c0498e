//! What one group of clients measured over some interval (a second of the timeline, or the whole
//! run). Mergeable and serialisable, so results of workers, seconds and pods combine exactly.

use super::histogram::LatencyHistogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Why a client session failed. Failures are measurements: counted by kind, never propagated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// TCP connect refused or unreachable.
    Connect,
    /// A connect, handshake or request took too long.
    Timeout,
    /// An HTTP status other than 200.
    HttpStatus(u16),
    /// xiu's HTTP-FLV answer for a stream it does not have: `200` with an empty body.
    EmptyStream,
    /// The server closed a playing/publishing connection.
    Eof,
    /// No media arrived within `first_frame_timeout` (e.g. RTMP `Play.Start` for a missing stream).
    NoMedia,
    /// Media stopped for longer than `read_timeout`.
    ReadTimeout,
    /// The server rejected a connect or publish request.
    Rejected,
    /// Bytes that do not parse (FLV, RTMP chunks, MPEG-TS, m3u8), or values out of range (an HLS
    /// duration of 10^19 s). Counted once per session, however many bad tags it saw.
    Protocol,
    /// Other I/O errors (reset, broken pipe).
    Io,
    /// TLS failed: certificate verification (an untrusted CA: set `target.tls.ca_file`) or the
    /// handshake.
    Tls,
    /// The server sent more than a configured bound: an HLS playlist or segment, an FLV tag or an
    /// RTMP message larger than the player group's `max_*_bytes`.
    TooLarge,
    /// Our client code panicked. Caught at the slot, which carries on; any fails the verdict.
    Panic,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::HttpStatus(code) => write!(f, "http_{code}"),
            ErrorKind::EmptyStream => f.write_str("empty_200"),
            ErrorKind::Eof => f.write_str("eof"),
            ErrorKind::NoMedia => f.write_str("no_media"),
            ErrorKind::ReadTimeout => f.write_str("read_timeout"),
            ErrorKind::Rejected => f.write_str("rejected"),
            ErrorKind::Protocol => f.write_str("protocol"),
            ErrorKind::Io => f.write_str("io"),
            ErrorKind::Tls => f.write_str("tls"),
            ErrorKind::TooLarge => f.write_str("too_large"),
            ErrorKind::Panic => f.write_str("panic"),
        }
    }
}

/// Error counts keyed by [`ErrorKind`]'s display name (stable strings in reports).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorCounts(pub BTreeMap<String, u64>);

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind) {
        *self.0.entry(kind.to_string()).or_default() += 1;
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }
}

/// The first detail seen for each error kind (a panic's message, what did not parse, which
/// certificate check failed), keyed like [`ErrorCounts`]: one short string per kind, so memory stays
/// bounded however many errors a run counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorExamples(pub BTreeMap<String, String>);

impl ErrorExamples {
    /// Longest detail kept, in bytes: enough for a message and its cause.
    pub const MAX_LEN: usize = 400;

    /// Keeps `detail` as the example of `kind` unless one is already kept.
    pub fn note(&mut self, kind: ErrorKind, detail: &str) {
        self.0
            .entry(kind.to_string())
            .or_insert_with(|| truncate(detail, Self::MAX_LEN));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps our examples; takes theirs only for kinds we have none of (the earlier one wins when
    /// windows are merged in order).
    pub fn merge(&mut self, other: &ErrorExamples) {
        for (k, v) in &other.0 {
            self.0.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
// Fields added within a schema version default to zero, so older reports still load.
#[serde(default)]
pub struct PlayerStats {
    /// TCP (+TLS) connect, or the RTMP handshake.
    pub connect: LatencyHistogram,
    /// Request sent → first byte of the response (HTTP) / of media (RTMP).
    pub ttfb: LatencyHistogram,
    /// Session start → first video keyframe (HLS: first segment with one).
    pub startup: LatencyHistogram,
    /// End-to-end: publisher's intended send time of a frame → its arrival here.
    pub latency: LatencyHistogram,
    /// Inter-arrival gaps of video frames (HLS: of segments).
    pub frame_gap: LatencyHistogram,
    /// Length of each stall in the playback-buffer model.
    pub stall: LatencyHistogram,
    /// HLS: playlist fetch time.
    pub playlist: LatencyHistogram,
    /// HLS: segment download time.
    pub segment: LatencyHistogram,
    pub sessions: u64,
    pub sessions_with_media: u64,
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub stalls: u64,
    pub stall_micros: u64,
    pub play_micros: u64,
    pub lost_frames: u64,
    pub duplicate_frames: u64,
    pub reordered_frames: u64,
    /// Frames whose embedded stamp was missing (a foreign publisher, or a corrupted frame).
    pub unstamped_frames: u64,
    pub reconnects: u64,
    /// Viewers who gave up after `reconnect.max_attempts`.
    pub abandoned: u64,
    /// HLS: segments downloaded; slower than real time; skipped (slid out of the window).
    pub segments: u64,
    pub slow_segments: u64,
    pub skipped_segments: u64,
    /// HLS: playlist fetches that returned the same live edge for longer than a target duration.
    pub stale_playlists: u64,
    /// HLS: playlist 404s before the first segment (xiu cuts the first one after a GOP or two).
    pub playlist_not_ready: u64,
    /// HLS: playlists that did not parse and were fetched again (xiu rewrites the file in place, so
    /// a reader can catch it half-written); three in a row end the session as a `protocol` error.
    pub bad_playlists: u64,
    pub errors: ErrorCounts,
    /// The first detail of each error kind counted in `errors`.
    #[serde(skip_serializing_if = "ErrorExamples::is_empty")]
    pub error_examples: ErrorExamples,
}

impl PlayerStats {
    pub fn merge(&mut self, o: &PlayerStats) {
        for (mine, theirs) in [
            (&mut self.connect, &o.connect),
            (&mut self.ttfb, &o.ttfb),
            (&mut self.startup, &o.startup),
            (&mut self.latency, &o.latency),
            (&mut self.frame_gap, &o.frame_gap),
            (&mut self.stall, &o.stall),
            (&mut self.playlist, &o.playlist),
            (&mut self.segment, &o.segment),
        ] {
            mine.merge(theirs);
        }
        for (mine, theirs) in [
            (&mut self.sessions, o.sessions),
            (&mut self.sessions_with_media, o.sessions_with_media),
            (&mut self.frames, o.frames),
            (&mut self.keyframes, o.keyframes),
            (&mut self.bytes, o.bytes),
            (&mut self.stalls, o.stalls),
            (&mut self.stall_micros, o.stall_micros),
            (&mut self.play_micros, o.play_micros),
            (&mut self.lost_frames, o.lost_frames),
            (&mut self.duplicate_frames, o.duplicate_frames),
            (&mut self.reordered_frames, o.reordered_frames),
            (&mut self.unstamped_frames, o.unstamped_frames),
            (&mut self.reconnects, o.reconnects),
            (&mut self.abandoned, o.abandoned),
            (&mut self.segments, o.segments),
            (&mut self.slow_segments, o.slow_segments),
            (&mut self.skipped_segments, o.skipped_segments),
            (&mut self.stale_playlists, o.stale_playlists),
            (&mut self.playlist_not_ready, o.playlist_not_ready),
            (&mut self.bad_playlists, o.bad_playlists),
        ] {
            *mine += theirs;
        }
        self.errors.merge(&o.errors);
        self.error_examples.merge(&o.error_examples);
    }

    /// Counts one error of `kind` and keeps `detail` if it is the first of its kind.
    pub fn add_error(&mut self, kind: ErrorKind, detail: &str) {
        self.errors.add(kind);
        self.error_examples.note(kind, detail);
    }

    /// Share of viewing time spent stalled.
    pub fn stall_ratio(&self) -> f64 {
        let total = self.stall_micros + self.play_micros;
        if total == 0 {
            0.0
        } else {
            self.stall_micros as f64 / total as f64
        }
    }

    /// Errors per session started.
    pub fn error_rate(&self) -> f64 {
        if self.sessions == 0 {
            0.0
        } else {
            self.errors.total() as f64 / self.sessions as f64
        }
    }

    pub fn lost_frame_ratio(&self) -> f64 {
        let expected = self.frames + self.lost_frames;
        if expected == 0 {
            0.0
        } else {
            self.lost_frames as f64 / expected as f64
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
// Fields added within a schema version default to zero, so older reports still load.
#[serde(default)]
pub struct PublisherStats {
    /// TCP connect + RTMP handshake + `connect` accepted.
    pub connect: LatencyHistogram,
    /// `publish` request → `NetStream.Publish.Start`.
    pub publish_accept: LatencyHistogram,
    /// How late each frame left against its intended send time (the schedule, not the previous
    /// send: a slow server cannot hide by slowing us down).
    pub lateness: LatencyHistogram,
    pub sessions: u64,
    pub frames: u64,
    pub bytes: u64,
    pub disconnects: u64,
    pub errors: ErrorCounts,
    /// The first detail of each error kind counted in `errors`.
    #[serde(skip_serializing_if = "ErrorExamples::is_empty")]
    pub error_examples: ErrorExamples,
}

impl PublisherStats {
    pub fn merge(&mut self, o: &PublisherStats) {
        self.connect.merge(&o.connect);
        self.publish_accept.merge(&o.publish_accept);
        self.lateness.merge(&o.lateness);
        self.sessions += o.sessions;
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.disconnects += o.disconnects;
        self.errors.merge(&o.errors);
        self.error_examples.merge(&o.error_examples);
    }

    /// Counts one error of `kind` and keeps `detail` if it is the first of its kind.
    pub fn add_error(&mut self, kind: ErrorKind, detail: &str) {
        self.errors.add(kind);
        self.error_examples.note(kind, detail);
    }

    pub fn error_rate(&self) -> f64 {
        if self.sessions == 0 {
            0.0
        } else {
            self.errors.total() as f64 / self.sessions as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_stats_merge_adds_everything() {
        let mut a = PlayerStats {
            sessions: 2,
            frames: 10,
            ..Default::default()
        };
        a.latency.record_micros(1000);
        a.errors.add(ErrorKind::HttpStatus(404));
        let mut b = PlayerStats {
            sessions: 1,
            frames: 5,
            ..Default::default()
        };
        b.latency.record_micros(3000);
        b.errors.add(ErrorKind::HttpStatus(404));
        b.errors.add(ErrorKind::EmptyStream);
        a.merge(&b);
        assert_eq!((a.sessions, a.frames, a.latency.count()), (3, 15, 2));
        assert_eq!(a.errors.0["http_404"], 2);
        assert_eq!(a.errors.0["empty_200"], 1);
        assert!((a.error_rate() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn ratios_handle_zero_denominators() {
        let s = PlayerStats::default();
        assert_eq!(
            (s.stall_ratio(), s.error_rate(), s.lost_frame_ratio()),
            (0.0, 0.0, 0.0)
        );
        let s = PlayerStats {
            stall_micros: 1,
            play_micros: 3,
            ..Default::default()
        };
        assert_eq!(s.stall_ratio(), 0.25);
    }

    #[test]
    fn the_first_example_of_each_kind_is_kept_and_bounded() {
        let mut a = PlayerStats::default();
        a.add_error(ErrorKind::Panic, "first");
        a.add_error(ErrorKind::Panic, "second");
        let long = "é".repeat(ErrorExamples::MAX_LEN);
        a.add_error(ErrorKind::Protocol, &long);
        assert_eq!(a.errors.0["panic"], 2);
        assert_eq!(a.error_examples.0["panic"], "first");
        assert!(a.error_examples.0["protocol"].len() <= ErrorExamples::MAX_LEN + '…'.len_utf8());
        let mut b = PlayerStats::default();
        b.add_error(ErrorKind::Panic, "later window");
        b.add_error(ErrorKind::Tls, "certificate verification failed");
        a.merge(&b);
        assert_eq!(a.error_examples.0["panic"], "first");
        assert_eq!(a.error_examples.0["tls"], "certificate verification failed");
        assert_eq!(a.errors.0["panic"], 3);
    }

    #[test]
    fn new_kinds_have_stable_names() {
        let names: Vec<String> = [ErrorKind::Tls, ErrorKind::TooLarge, ErrorKind::Panic]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["tls", "too_large", "panic"]);
    }

    #[test]
    fn stats_round_trip_through_json() {
        let mut s = PublisherStats::default();
        s.lateness.record_micros(1234);
        s.errors.add(ErrorKind::Eof);
        s.add_error(ErrorKind::Panic, "boom");
        let back: PublisherStats =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}

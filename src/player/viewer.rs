//! One viewer's session bookkeeping, shared by all protocols: startup, end-to-end latency from the
//! stamps in the frames, sequence gaps, frame gaps and the playback-buffer model.

use crate::clock::RunClock;
use crate::media::stamp::{FrameStamp, find_stamp_in_annexb, find_stamp_in_avcc};
use crate::metrics::buffer::{PlaybackBuffer, Transition};
use crate::metrics::sequence::SequenceTracker;
use crate::metrics::{ErrorKind, GroupMetrics, PlayerStats};
use crate::session::{PENDING_SETUP_GRACE, SessionEnd};
use std::time::{Duration, Instant};

pub struct Viewer<'a> {
    metrics: &'a GroupMetrics<PlayerStats>,
    clock: &'a RunClock,
    started: Instant,
    buffer: PlaybackBuffer,
    sequence: SequenceTracker,
    got_keyframe: bool,
    got_first_byte: bool,
    last_video_ts_ms: Option<u32>,
    last_arrival: Option<Instant>,
    flushed_play: Duration,
    flushed_stall: Duration,
    flushed_seq: (u64, u64, u64),
    /// Bytes read but not yet in the group's window: taking the group's lock on every read was a
    /// measurable share of a viewer's CPU, so they ride along with the next frame's record.
    unflushed_bytes: u64,
    bytes_flushed_at: Instant,
    /// The server answered the setup (TCP + TLS + response head; RTMP up to `Play.Start`).
    answered: bool,
    /// A `protocol` error was counted for this session already: it is counted once per session,
    /// however many bad tags follow, so `error_rate` stays per session.
    protocol_counted: bool,
}

/// Longest that received bytes wait before reaching the group's window without a frame (a stream
/// of audio only, a server sending no media): well inside the timeline's one-second windows.
const BYTES_FLUSH_PERIOD: Duration = Duration::from_millis(100);

/// Play and stall time the buffer model accounted since the last record, and its transitions.
struct BufferDelta {
    play: Duration,
    stall: Duration,
    transitions: Vec<Transition>,
}

/// What an HLS viewer keeps of an access unit until its segment is whole: a player can show a
/// segment's frames only once the segment has arrived, so that is when they count.
#[derive(Debug, Clone, Copy)]
pub struct HlsFrame {
    pub is_keyframe: bool,
    pub stamp: Option<crate::media::stamp::FrameStamp>,
}

impl HlsFrame {
    pub fn of(is_keyframe: bool, annexb_head: &[u8]) -> HlsFrame {
        HlsFrame {
            is_keyframe,
            stamp: find_stamp_in_annexb(annexb_head),
        }
    }
}

impl BufferDelta {
    fn apply(&self, s: &mut PlayerStats) {
        s.play_micros += self.play.as_micros() as u64;
        s.stall_micros += self.stall.as_micros() as u64;
        for t in &self.transitions {
            match t {
                Transition::StallBegan => s.stalls += 1,
                Transition::StallEnded { lasted } => s.stall.record(*lasted),
                Transition::Started | Transition::None => {}
            }
        }
    }
}

impl<'a> Viewer<'a> {
    /// Starts a session: counts it and starts its startup clock.
    pub fn start(
        metrics: &'a GroupMetrics<PlayerStats>,
        clock: &'a RunClock,
        startup_buffer: Duration,
    ) -> Self {
        metrics.record(|s| s.sessions += 1);
        Viewer {
            metrics,
            clock,
            started: Instant::now(),
            buffer: PlaybackBuffer::new(startup_buffer),
            sequence: SequenceTracker::default(),
            got_keyframe: false,
            got_first_byte: false,
            last_video_ts_ms: None,
            last_arrival: None,
            flushed_play: Duration::ZERO,
            flushed_stall: Duration::ZERO,
            flushed_seq: (0, 0, 0),
            unflushed_bytes: 0,
            bytes_flushed_at: Instant::now(),
            answered: false,
            protocol_counted: false,
        }
    }

    /// The server answered the session's setup (any status): from here on, a stop is not a
    /// pending setup.
    pub fn answered(&mut self) {
        self.answered = true;
    }

    /// Keeps `detail` as the group's example of `kind` (the count is made when the session ends).
    pub fn note(&self, kind: ErrorKind, detail: &str) {
        self.metrics.record(|s| s.error_examples.note(kind, detail));
    }

    /// Bytes that do not parse but leave the stream readable (a bad tag): counted as one
    /// `protocol` error for the whole session, with the first detail.
    pub fn protocol_trouble(&mut self, detail: &str) {
        if std::mem::replace(&mut self.protocol_counted, true) {
            return;
        }
        self.metrics
            .record(|s| s.add_error(ErrorKind::Protocol, detail));
    }

    /// Ends the session: counts its failure (once, and none when the run stopped it), counts a
    /// setup left pending past [`PENDING_SETUP_GRACE`] as a `timeout`, and accounts play and
    /// stall time. `outcome` is `None` when the session was cancelled.
    pub fn end(self, outcome: Option<SessionEnd>, stopped: bool) -> SessionEnd {
        let now = Instant::now();
        let end = match outcome {
            None => {
                let waited = now.saturating_duration_since(self.started);
                if !self.answered && waited >= PENDING_SETUP_GRACE {
                    let detail = format!(
                        "setup still pending after {waited:.1?} when the session was stopped"
                    );
                    self.metrics
                        .record(|s| s.add_error(ErrorKind::Timeout, &detail));
                }
                SessionEnd::Cancelled
            }
            // When the run stops, publishers and players stop together: a player that sees its
            // stream end in that instant was stopped, not failed.
            Some(SessionEnd::Failed(_)) if stopped => SessionEnd::Cancelled,
            Some(SessionEnd::Failed(ErrorKind::Protocol)) if self.protocol_counted => {
                SessionEnd::Failed(ErrorKind::Protocol)
            }
            Some(SessionEnd::Failed(kind)) => {
                self.metrics.record(|s| s.errors.add(kind));
                SessionEnd::Failed(kind)
            }
            Some(end) => end,
        };
        self.finish(now);
        end
    }

    pub fn started_at(&self) -> Instant {
        self.started
    }

    pub fn has_media(&self) -> bool {
        self.got_keyframe
    }

    pub fn connected(&self, after: Duration) {
        self.metrics.record(|s| s.connect.record(after));
    }

    /// Bytes received from the network (any kind).
    pub fn on_bytes(&mut self, now: Instant, n: usize) {
        let first = !self.got_first_byte && n > 0;
        self.got_first_byte |= n > 0;
        self.unflushed_bytes += n as u64;
        if !first && now.saturating_duration_since(self.bytes_flushed_at) < BYTES_FLUSH_PERIOD {
            return;
        }
        let ttfb = now.saturating_duration_since(self.started);
        let bytes = self.take_bytes(now);
        self.metrics.record(|s| {
            s.bytes += bytes;
            if first {
                s.ttfb.record(ttfb);
            }
        });
    }

    fn take_bytes(&mut self, now: Instant) -> u64 {
        self.bytes_flushed_at = now;
        std::mem::take(&mut self.unflushed_bytes)
    }

    /// An FLV/RTMP video tag body (5-byte AVC header + length-prefixed NAL units).
    pub fn on_flv_video(&mut self, now: Instant, timestamp_ms: u32, data: &[u8]) {
        let info = match crate::flv::tag::VideoTagInfo::parse(data) {
            Ok(info) => info,
            Err(e) => {
                self.protocol_trouble(&format!("video tag at {timestamp_ms} ms: {e}"));
                return;
            }
        };
        if info.avc_packet_type != Some(crate::flv::tag::AvcPacketType::Nalu) {
            return;
        }
        let media = match self.last_video_ts_ms {
            Some(prev) => Duration::from_millis(timestamp_ms.saturating_sub(prev).min(1000) as u64),
            None => Duration::ZERO,
        };
        self.last_video_ts_ms = Some(timestamp_ms);
        let payload = crate::flv::tag::VideoTagInfo::avc_payload(data);
        let stamp = find_stamp_in_avcc(payload, 4);
        self.on_frame(now, info.is_keyframe, stamp, Some(media));
    }

    /// An H.264 access unit of an HLS segment, already looked at (its keyframe flag and stamp),
    /// handed over when its whole segment has arrived: `now` is then. Media time is accounted per
    /// segment.
    pub fn on_hls_frame(&mut self, now: Instant, frame: HlsFrame) {
        self.on_frame(now, frame.is_keyframe, frame.stamp, None);
    }

    /// A whole HLS segment of `duration` media arrived.
    pub fn on_segment_media(&mut self, now: Instant, duration: Duration) {
        if self.got_keyframe {
            self.feed_buffer(now, duration);
        }
    }

    fn on_frame(
        &mut self,
        now: Instant,
        is_keyframe: bool,
        stamp: Option<FrameStamp>,
        media: Option<Duration>,
    ) {
        // A player cannot show anything before the first keyframe.
        let first = !self.got_keyframe && is_keyframe;
        if !self.got_keyframe && !is_keyframe {
            return;
        }
        self.got_keyframe = true;
        let startup = now.saturating_duration_since(self.started);
        let gap = self.last_arrival.map(|t| now.saturating_duration_since(t));
        self.last_arrival = Some(now);
        let latency = stamp.map(|st| {
            self.clock
                .unix_micros_at(now)
                .saturating_sub(st.sent_at_unix_micros)
        });
        if let Some(st) = stamp {
            self.sequence.observe(st.stream_tag, st.sequence);
        }
        let seq = (
            self.sequence.lost,
            self.sequence.duplicates,
            self.sequence.reordered,
        );
        let (d_lost, d_dup, d_reord) = (
            seq.0 as i64 - self.flushed_seq.0 as i64,
            seq.1 - self.flushed_seq.1,
            seq.2 - self.flushed_seq.2,
        );
        self.flushed_seq = seq;
        let buffer = media.map(|m| self.buffer_delta_after(now, m));
        let bytes = self.take_bytes(now);
        // One lock per frame for everything it changes.
        self.metrics.record(|s| {
            s.bytes += bytes;
            if let Some(b) = &buffer {
                b.apply(s);
            }
            s.frames += 1;
            if is_keyframe {
                s.keyframes += 1;
            }
            if first {
                s.startup.record(startup);
                s.sessions_with_media += 1;
            }
            if let Some(g) = gap {
                s.frame_gap.record(g);
            }
            match latency {
                Some(l) => s.latency.record_micros(l),
                None => s.unstamped_frames += 1,
            }
            // A late frame can take back a loss counted earlier in this session.
            s.lost_frames = (s.lost_frames as i64 + d_lost).max(0) as u64;
            s.duplicate_frames += d_dup;
            s.reordered_frames += d_reord;
        });
    }

    fn feed_buffer(&mut self, now: Instant, media: Duration) {
        let delta = self.buffer_delta_after(now, media);
        self.metrics.record(|s| delta.apply(s));
    }

    /// Feeds `media` to the buffer model and returns what changed since the last record.
    fn buffer_delta_after(&mut self, now: Instant, media: Duration) -> BufferDelta {
        let transitions = self.buffer.on_media(now, media);
        self.buffer_delta(transitions)
    }

    fn buffer_delta(&mut self, transitions: Vec<Transition>) -> BufferDelta {
        let play = self.buffer.play_time();
        let stall = self.buffer.stall_time();
        let delta = BufferDelta {
            play: play - self.flushed_play,
            stall: stall - self.flushed_stall,
            transitions,
        };
        self.flushed_play = play;
        self.flushed_stall = stall;
        delta
    }

    /// Accounts play and stall time (and bytes) up to `now`.
    fn finish(mut self, now: Instant) {
        let before = self.buffer.stalls();
        self.buffer.finish(now);
        let transitions: Vec<Transition> = (before..self.buffer.stalls())
            .map(|_| Transition::StallBegan)
            .collect();
        let delta = self.buffer_delta(transitions);
        let bytes = self.take_bytes(now);
        self.metrics.record(|s| {
            s.bytes += bytes;
            delta.apply(s);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::stamp::FrameStamp;

    /// An FLV AVC NALU tag body holding one stamp SEI, as a keyframe or not.
    fn video_tag(keyframe: bool, stamp: &FrameStamp) -> Vec<u8> {
        let sei = stamp.to_sei_nal();
        let mut tag = vec![if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        tag.extend_from_slice(&(sei.len() as u32).to_be_bytes());
        tag.extend_from_slice(&sei);
        tag
    }

    #[test]
    fn bytes_ride_with_frames_and_reach_the_window_by_the_end() {
        let metrics = GroupMetrics::<PlayerStats>::new();
        let clock = RunClock::start_now();
        let mut viewer = Viewer::start(&metrics, &clock, Duration::from_millis(100));
        let t0 = viewer.started_at();
        // The first read is recorded at once: it carries time to first byte.
        viewer.on_bytes(t0 + Duration::from_millis(5), 100);
        assert_eq!(metrics.record(|s| (s.bytes, s.ttfb.count())), (100, 1));
        // Later reads wait for a frame...
        viewer.on_bytes(t0 + Duration::from_millis(10), 50);
        viewer.on_bytes(t0 + Duration::from_millis(20), 25);
        assert_eq!(metrics.record(|s| s.bytes), 100);
        let stamp = FrameStamp {
            sent_at_unix_micros: clock.unix_micros_at(t0),
            sequence: 0,
            stream_tag: 7,
        };
        viewer.on_flv_video(t0 + Duration::from_millis(30), 0, &video_tag(true, &stamp));
        assert_eq!(
            metrics.record(|s| (s.bytes, s.frames, s.keyframes)),
            (175, 1, 1)
        );
        // ...or for the flush period, whichever comes first.
        viewer.on_bytes(t0 + Duration::from_millis(40), 10);
        assert_eq!(metrics.record(|s| s.bytes), 175);
        viewer.on_bytes(t0 + Duration::from_millis(30) + BYTES_FLUSH_PERIOD, 10);
        assert_eq!(metrics.record(|s| s.bytes), 195);
        // A second frame brings 200 ms of media: past the startup buffer, so playing.
        let next = FrameStamp {
            sequence: 1,
            ..stamp
        };
        viewer.on_flv_video(
            t0 + Duration::from_millis(150),
            200,
            &video_tag(false, &next),
        );
        assert_eq!(metrics.record(|s| (s.bytes, s.frames)), (195, 2));
        // Whatever is left reaches the window when the session ends.
        viewer.on_bytes(t0 + Duration::from_millis(200), 5);
        viewer.finish(t0 + Duration::from_millis(210));
        let (bytes, play) = metrics.record(|s| (s.bytes, s.play_micros));
        assert_eq!(bytes, 200);
        assert!(
            play > 0,
            "the buffer model's play time is accounted at the end"
        );
    }

    #[test]
    fn protocol_trouble_counts_once_per_session_with_the_first_detail() {
        let metrics = GroupMetrics::<PlayerStats>::new();
        let clock = RunClock::start_now();
        let mut viewer = Viewer::start(&metrics, &clock, Duration::from_millis(100));
        let now = viewer.started_at();
        // Zero-size video tags, thousands of them: one session, one `protocol` error.
        for ts in 0..5000 {
            viewer.on_flv_video(now, ts, &[]);
        }
        // The session then ends on a demuxer error: still the same one error.
        let end = viewer.end(Some(SessionEnd::Failed(ErrorKind::Protocol)), false);
        assert_eq!(end, SessionEnd::Failed(ErrorKind::Protocol));
        let s = metrics.take_window();
        assert_eq!((s.sessions, s.errors.total()), (1, 1), "{:?}", s.errors);
        assert!(
            s.error_examples.0["protocol"].starts_with("video tag at 0 ms"),
            "{:?}",
            s.error_examples
        );
        // A session with no bad tag that ends on a protocol error counts it too.
        let viewer = Viewer::start(&metrics, &clock, Duration::from_millis(100));
        viewer.end(Some(SessionEnd::Failed(ErrorKind::Protocol)), false);
        assert_eq!(metrics.take_window().errors.0["protocol"], 1);
    }

    #[test]
    fn a_setup_pending_when_stopped_is_a_timeout_once_it_has_waited() {
        let metrics = GroupMetrics::<PlayerStats>::new();
        let clock = RunClock::start_now();
        // Stopped at once: caught in the act, not an error.
        let viewer = Viewer::start(&metrics, &clock, Duration::from_millis(100));
        assert_eq!(viewer.end(None, true), SessionEnd::Cancelled);
        assert_eq!(metrics.take_window().errors.total(), 0);
        // Stopped after waiting past the grace with no answer: a timeout.
        let mut viewer = Viewer::start(&metrics, &clock, Duration::from_millis(100));
        viewer.started -= PENDING_SETUP_GRACE;
        assert_eq!(viewer.end(None, true), SessionEnd::Cancelled);
        let s = metrics.take_window();
        assert_eq!(s.errors.0["timeout"], 1);
        assert!(s.error_examples.0["timeout"].contains("setup still pending"));
        // Answered, then stopped: no error.
        let mut viewer = Viewer::start(&metrics, &clock, Duration::from_millis(100));
        viewer.started -= PENDING_SETUP_GRACE;
        viewer.answered();
        viewer.end(None, true);
        // A failure seen as the run stops is a stop.
        let viewer = Viewer::start(&metrics, &clock, Duration::from_millis(100));
        assert_eq!(
            viewer.end(Some(SessionEnd::Failed(ErrorKind::Eof)), true),
            SessionEnd::Cancelled
        );
        assert_eq!(metrics.take_window().errors.total(), 0);
    }
}

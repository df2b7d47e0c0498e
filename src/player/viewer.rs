//! One viewer's session bookkeeping, shared by all protocols: startup, end-to-end latency from the
//! stamps in the frames, sequence gaps, frame gaps and the playback-buffer model.

use crate::clock::RunClock;
use crate::media::stamp::{FrameStamp, find_stamp_in_annexb, find_stamp_in_avcc};
use crate::metrics::buffer::{PlaybackBuffer, Transition};
use crate::metrics::sequence::SequenceTracker;
use crate::metrics::{GroupMetrics, PlayerStats};
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
        }
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
        let ttfb = now.saturating_duration_since(self.started);
        self.metrics.record(|s| {
            s.bytes += n as u64;
            if first {
                s.ttfb.record(ttfb);
            }
        });
    }

    /// An FLV/RTMP video tag body (5-byte AVC header + length-prefixed NAL units).
    pub fn on_flv_video(&mut self, now: Instant, timestamp_ms: u32, data: &[u8]) {
        let Ok(info) = crate::flv::tag::VideoTagInfo::parse(data) else {
            self.metrics
                .record(|s| s.errors.add(crate::metrics::ErrorKind::Protocol));
            return;
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

    /// An H.264 access unit from an HLS segment (Annex B). Media time is accounted per segment.
    pub fn on_annexb_frame(&mut self, now: Instant, is_keyframe: bool, data: &[u8]) {
        let stamp = find_stamp_in_annexb(data);
        self.on_frame(now, is_keyframe, stamp, None);
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
        self.metrics.record(|s| {
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
        if let Some(m) = media {
            self.feed_buffer(now, m);
        }
    }

    fn feed_buffer(&mut self, now: Instant, media: Duration) {
        let transitions = self.buffer.on_media(now, media);
        self.flush_buffer(&transitions);
    }

    fn flush_buffer(&mut self, transitions: &[Transition]) {
        let play = self.buffer.play_time();
        let stall = self.buffer.stall_time();
        let (d_play, d_stall) = (play - self.flushed_play, stall - self.flushed_stall);
        self.flushed_play = play;
        self.flushed_stall = stall;
        self.metrics.record(|s| {
            s.play_micros += d_play.as_micros() as u64;
            s.stall_micros += d_stall.as_micros() as u64;
            for t in transitions {
                match t {
                    Transition::StallBegan => s.stalls += 1,
                    Transition::StallEnded { lasted } => s.stall.record(*lasted),
                    Transition::Started | Transition::None => {}
                }
            }
        });
    }

    /// Ends the session, accounting play and stall time up to `now`.
    pub fn finish(mut self, now: Instant) {
        let before = self.buffer.stalls();
        self.buffer.finish(now);
        let transitions: Vec<Transition> = (before..self.buffer.stalls())
            .map(|_| Transition::StallBegan)
            .collect();
        self.flush_buffer(&transitions);
    }
}

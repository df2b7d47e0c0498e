//! A synthetic RTMP publisher: sends precomputed H.264/AAC on a fixed schedule and measures how
//! late each frame leaves against that schedule.

use super::connection::RtmpConnection;
use super::url::RtmpBase;
use crate::clock::RunClock;
use crate::media::aac::SyntheticAudio;
use crate::media::h264::SyntheticVideo;
use crate::media::stamp::FrameStamp;
use crate::metrics::{GroupMetrics, PublisherStats};
use crate::session::SessionEnd;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct PublisherSpec {
    pub base: RtmpBase,
    pub app: String,
    pub stream: String,
    pub video: SyntheticVideo,
    pub audio: Option<SyntheticAudio>,
    /// Bounds TCP connect + handshake + `connect`, and then `publish` (each).
    pub connect_timeout: Duration,
}

/// Longest message a publisher accepts from the server: it only ever gets acks and status
/// messages, a few hundred bytes.
pub const MAX_SERVER_MESSAGE: u32 = 1 << 20;

/// Publishes until cancelled. Every failure is counted in `metrics` and returned as the end.
pub async fn publish_session(
    spec: &PublisherSpec,
    metrics: &Arc<GroupMetrics<PublisherStats>>,
    clock: &RunClock,
    cancel: &CancellationToken,
    stream_tag: u32,
) -> SessionEnd {
    metrics.record(|s| s.sessions += 1);
    let setup_started = std::time::Instant::now();
    let result = tokio::select! {
        _ = cancel.cancelled() => {
            // A setup the server left hanging until the end is a failure, not a stop.
            let waited = setup_started.elapsed();
            if waited >= crate::session::PENDING_SETUP_GRACE {
                let detail = format!(
                    "connect/publish to {} still pending after {waited:.1?} when the run stopped",
                    spec.base.addr()
                );
                metrics.record(|s| s.add_error(crate::metrics::ErrorKind::Timeout, &detail));
            }
            return SessionEnd::Cancelled;
        }
        r = setup(spec, metrics) => r,
    };
    let mut conn = match result {
        Ok(conn) => conn,
        Err(kind) => return SessionEnd::Failed(kind),
    };
    let _active = metrics.active_guard();
    match stream_media(spec, &mut conn, metrics, clock, cancel, stream_tag).await {
        Ok(()) => SessionEnd::Cancelled,
        Err(e) => {
            let kind = e.kind();
            let detail = e.to_string();
            metrics.record(|s| {
                s.add_error(kind, &detail);
                s.disconnects += 1;
            });
            SessionEnd::Failed(kind)
        }
    }
}

async fn setup(
    spec: &PublisherSpec,
    metrics: &GroupMetrics<PublisherStats>,
) -> Result<RtmpConnection, crate::metrics::ErrorKind> {
    let fail = |e: super::RtmpError| {
        let kind = e.kind();
        let detail = e.to_string();
        metrics.record(|s| s.add_error(kind, &detail));
        kind
    };
    let (mut conn, setup) = RtmpConnection::open(
        &spec.base,
        &spec.app,
        spec.connect_timeout,
        false,
        MAX_SERVER_MESSAGE,
    )
    .await
    .map_err(fail)?;
    metrics.record(|s| s.connect.record(setup.connected_in));
    let asked = std::time::Instant::now();
    conn.publish(&spec.stream, spec.connect_timeout)
        .await
        .map_err(fail)?;
    metrics.record(|s| s.publish_accept.record(asked.elapsed()));
    Ok(conn)
}

async fn stream_media(
    spec: &PublisherSpec,
    conn: &mut RtmpConnection,
    metrics: &GroupMetrics<PublisherStats>,
    clock: &RunClock,
    cancel: &CancellationToken,
    stream_tag: u32,
) -> Result<(), super::RtmpError> {
    let mut bytes = conn
        .send_video(spec.video.avc_sequence_header_tag(), 0)
        .await?;
    if let Some(audio) = &spec.audio {
        bytes += conn.send_audio(audio.aac_sequence_header_tag(), 0).await?;
    }
    metrics.record(|s| s.bytes += bytes as u64);

    let t0 = Instant::now();
    let video_step = spec.video.frame_duration();
    let audio_step = spec.audio.as_ref().map(|a| a.frame_duration());
    let (mut video_index, mut audio_index) = (0u64, 0u64);
    loop {
        let next_video = t0 + video_step * video_index as u32;
        let next_audio = audio_step.map(|step| t0 + step * audio_index as u32);
        let (intended, is_video) = match next_audio {
            Some(a) if a < next_video => (a, false),
            _ => (next_video, true),
        };
        // Wait for the intended send time, answering the server meanwhile (acks, pings): a
        // publisher that stops reading would be dropped.
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = conn.readable() => { r?; conn.drain_input().await?; conn.take_events().for_each(drop); }
                _ = tokio::time::sleep_until(intended) => break,
            }
        }
        let media_ms = (intended - t0).as_millis() as u32;
        let sent = if is_video {
            // The stamp carries the intended time, so end-to-end latency includes any delay on
            // our side too (no coordinated omission).
            let stamp = FrameStamp {
                stream_tag,
                sequence: video_index,
                sent_at_unix_micros: clock.unix_micros_at(intended.into_std()),
            };
            let tag = spec.video.frame_tag(video_index, &stamp);
            video_index += 1;
            conn.send_video(tag, media_ms).await?
        } else {
            audio_index += 1;
            let audio = spec
                .audio
                .as_ref()
                .expect("audio scheduled only when present");
            conn.send_audio(audio.frame_tag(), media_ms).await?
        };
        let lateness = Instant::now().saturating_duration_since(intended);
        metrics.record(|s| {
            s.bytes += sent as u64;
            if is_video {
                s.frames += 1;
                s.lateness.record(lateness);
            }
        });
    }
}

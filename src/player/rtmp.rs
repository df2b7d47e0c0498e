//! RTMP viewer. xiu answers `Play.Start` even for a stream that does not exist, so a session only
//! counts as served when a keyframe arrives.

use super::viewer::Viewer;
use super::{PlayerLimits, PlayerTiming};
use crate::clock::RunClock;
use crate::metrics::{ErrorKind, GroupMetrics, PlayerStats};
use crate::rtmp::url::RtmpBase;
use crate::rtmp::{RtmpConnection, RtmpError};
use crate::session::{SessionEnd, tokio_deadline};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

#[allow(clippy::too_many_arguments)]
pub async fn play_rtmp(
    base: &RtmpBase,
    app: &str,
    stream: &str,
    timing: &PlayerTiming,
    limits: &PlayerLimits,
    metrics: &Arc<GroupMetrics<PlayerStats>>,
    clock: &RunClock,
    cancel: &CancellationToken,
) -> SessionEnd {
    let _active = metrics.active_guard();
    let mut viewer = Viewer::start(metrics, clock, timing.startup_buffer);
    let outcome = crate::cancel::until_cancelled(
        cancel,
        watch(base, app, stream, timing, limits, &mut viewer),
    )
    .await;
    viewer.end(outcome, cancel.is_cancelled())
}

/// Fails the session with `e`'s kind, keeping its message as the group's example.
fn fail(viewer: &Viewer<'_>, e: &RtmpError) -> SessionEnd {
    let kind = e.kind();
    viewer.note(kind, &e.to_string());
    SessionEnd::Failed(kind)
}

async fn watch(
    base: &RtmpBase,
    app: &str,
    stream: &str,
    timing: &PlayerTiming,
    limits: &PlayerLimits,
    viewer: &mut Viewer<'_>,
) -> SessionEnd {
    let started = viewer.started_at();
    let connect_within = timing.first_frame_timeout.min(limits.connect_timeout);
    let (mut conn, setup) =
        match RtmpConnection::open(base, app, connect_within, true, limits.max_tag()).await {
            Ok(c) => c,
            Err(e) => return fail(viewer, &e),
        };
    viewer.connected(setup.connected_in);
    let remaining = timing.first_frame_timeout.saturating_sub(started.elapsed());
    if let Err(e) = conn.play(stream, remaining).await {
        return fail(viewer, &e);
    }
    viewer.answered();
    let started = tokio::time::Instant::from_std(started);
    let first_frame_deadline = tokio_deadline(started, timing.first_frame_timeout);
    let session_end = timing
        .session_length
        .map(|len| tokio_deadline(started, len));
    let mut counted = conn.bytes_read();
    loop {
        let deadline = if viewer.has_media() {
            tokio_deadline(tokio::time::Instant::now(), timing.read_timeout)
        } else {
            first_frame_deadline
        };
        let deadline = session_end.map_or(deadline, |e| e.min(deadline));
        let media = match tokio::time::timeout_at(deadline, conn.next_media()).await {
            Err(_) if session_end.is_some_and(|e| tokio::time::Instant::now() >= e) => {
                return SessionEnd::Completed;
            }
            Err(_) if viewer.has_media() => return SessionEnd::Failed(ErrorKind::ReadTimeout),
            Err(_) => return SessionEnd::Failed(ErrorKind::NoMedia),
            Ok(Err(RtmpError::Eof)) if !viewer.has_media() => {
                return SessionEnd::Failed(ErrorKind::NoMedia);
            }
            Ok(Err(e)) => return fail(viewer, &e),
            Ok(Ok(media)) => media,
        };
        let now = Instant::now();
        let read = conn.bytes_read();
        viewer.on_bytes(now, (read - counted) as usize);
        counted = read;
        if media.is_video {
            viewer.on_flv_video(now, media.timestamp_ms, &media.data);
        }
    }
}

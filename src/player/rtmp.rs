//! RTMP viewer. xiu answers `Play.Start` even for a stream that does not exist, so a session only
//! counts as served when a keyframe arrives.

use super::viewer::Viewer;
use super::{PlayerLimits, PlayerTiming};
use crate::clock::RunClock;
use crate::metrics::{ErrorKind, GroupMetrics, PlayerStats};
use crate::rtmp::url::RtmpBase;
use crate::rtmp::{RtmpConnection, RtmpError};
use crate::session::{Progress, SessionEnd, SessionTimer};
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
    // Boxed: see `flv::play_flv`.
    let session = Box::pin(watch(base, app, stream, timing, limits, &mut viewer));
    let outcome = crate::cancel::until_cancelled(cancel, session).await;
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
    let deadlines = timing.deadlines(limits, started);
    // The setup's steps take their budgets as durations (connect, handshake and `connect` by
    // the answer deadline; `play` by the first-frame deadline).
    let connect_within = deadlines.answer_by().saturating_duration_since(started);
    let (mut conn, setup) =
        match RtmpConnection::open(base, app, connect_within, true, limits.max_tag()).await {
            Ok(c) => c,
            Err(e) => return fail(viewer, &e),
        };
    viewer.connected(setup.connected_in);
    let remaining = deadlines
        .first_frame_by()
        .saturating_duration_since(Instant::now());
    if let Err(e) = conn.play(stream, remaining).await {
        return fail(viewer, &e);
    }
    viewer.answered();
    let mut counted = conn.bytes_read();
    let mut last_data = Instant::now();
    let mut timer = SessionTimer::new(deadlines.due(Progress::Answered));
    loop {
        let media = {
            // Pinned across timer wake-ups: a wake-up that finds no deadline passed must not drop
            // a message half read.
            let next = conn.next_media();
            tokio::pin!(next);
            loop {
                // Answered since `play` returned: only the first keyframe is awaited.
                let progress = Progress::of(true, viewer.has_media(), last_data);
                timer.aim(deadlines.due(progress));
                tokio::select! {
                    media = &mut next => break media,
                    _ = timer.fired() => {
                        if let Some(expired) = deadlines.check(Instant::now(), progress) {
                            return expired.session_end();
                        }
                    }
                }
            }
        };
        let media = match media {
            Err(RtmpError::Eof) if !viewer.has_media() => {
                return SessionEnd::Failed(ErrorKind::NoMedia);
            }
            Err(e) => return fail(viewer, &e),
            Ok(media) => media,
        };
        let now = Instant::now();
        last_data = now;
        let read = conn.bytes_read();
        viewer.on_bytes(now, (read - counted) as usize);
        counted = read;
        if media.is_video {
            viewer.on_flv_video(now, media.timestamp_ms, &media.data);
        }
    }
}

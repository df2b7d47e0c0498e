//! HTTP-FLV viewer: one long GET whose body is an FLV stream, parsed tag by tag.

use super::PlayerTiming;
use super::viewer::Viewer;
use crate::clock::RunClock;
use crate::flv::demux::{FlvDemuxer, FlvEvent, TagKind};
use crate::metrics::{ErrorKind, GroupMetrics, PlayerStats};
use crate::session::SessionEnd;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Maps a reqwest error to the kind counted in reports.
pub fn http_error_kind(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connect
    } else if let Some(status) = e.status() {
        ErrorKind::HttpStatus(status.as_u16())
    } else {
        ErrorKind::Io
    }
}

pub async fn play_flv(
    client: &reqwest::Client,
    url: &str,
    timing: &PlayerTiming,
    metrics: &Arc<GroupMetrics<PlayerStats>>,
    clock: &RunClock,
    cancel: &CancellationToken,
) -> SessionEnd {
    // Active from the request on: a viewer waiting for a slow server is still a viewer.
    let _active = metrics.active_guard();
    let mut viewer = Viewer::start(metrics, clock, timing.startup_buffer);
    let end = tokio::select! {
        biased;
        _ = cancel.cancelled() => SessionEnd::Cancelled,
        end = watch(client, url, timing, &mut viewer) => end,
    };
    // When the run stops, publishers and players stop together: a player that sees its stream
    // end in that instant was stopped, not failed.
    let end = match end {
        SessionEnd::Failed(_) if cancel.is_cancelled() => SessionEnd::Cancelled,
        end => end,
    };
    if let SessionEnd::Failed(kind) = end {
        metrics.record(|s| s.errors.add(kind));
    }
    viewer.finish(Instant::now());
    end
}

async fn watch(
    client: &reqwest::Client,
    url: &str,
    timing: &PlayerTiming,
    viewer: &mut Viewer<'_>,
) -> SessionEnd {
    let started = viewer.started_at();
    let first_frame_deadline = tokio::time::Instant::from_std(started + timing.first_frame_timeout);
    let session_end = timing
        .session_length
        .map(|len| tokio::time::Instant::from_std(started + len));

    let response = match tokio::time::timeout_at(first_frame_deadline, client.get(url).send()).await
    {
        Err(_) => return SessionEnd::Failed(ErrorKind::Timeout),
        Ok(Err(e)) => return SessionEnd::Failed(http_error_kind(&e)),
        Ok(Ok(r)) => r,
    };
    // reqwest does not expose the TCP/TLS connect step alone: "connect" for HTTP players is the
    // time to response headers, which includes it.
    viewer.connected(started.elapsed());
    if response.status() != reqwest::StatusCode::OK {
        return SessionEnd::Failed(ErrorKind::HttpStatus(response.status().as_u16()));
    }
    let mut response = response;
    let mut demux = FlvDemuxer::new();
    let mut total = 0usize;
    loop {
        let deadline = if viewer.has_media() {
            tokio::time::Instant::now() + timing.read_timeout
        } else {
            first_frame_deadline
        };
        let deadline = session_end.map_or(deadline, |e| e.min(deadline));
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) if session_end.is_some_and(|e| tokio::time::Instant::now() >= e) => {
                return SessionEnd::Completed;
            }
            Err(_) if viewer.has_media() => return SessionEnd::Failed(ErrorKind::ReadTimeout),
            Err(_) => return SessionEnd::Failed(ErrorKind::NoMedia),
            Ok(Err(e)) => return SessionEnd::Failed(http_error_kind(&e)),
            // xiu answers a stream it does not have with 200 and an empty body.
            Ok(Ok(None)) if total == 0 => return SessionEnd::Failed(ErrorKind::EmptyStream),
            Ok(Ok(None)) if !viewer.has_media() => return SessionEnd::Failed(ErrorKind::NoMedia),
            Ok(Ok(None)) => return SessionEnd::Failed(ErrorKind::Eof),
            Ok(Ok(Some(chunk))) => chunk,
        };
        let now = Instant::now();
        total += chunk.len();
        viewer.on_bytes(now, chunk.len());
        demux.push(&chunk);
        loop {
            match demux.next_event() {
                Ok(Some(FlvEvent::Tag(tag))) if tag.kind == TagKind::Video => {
                    viewer.on_flv_video(now, tag.timestamp_ms, &tag.data)
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return SessionEnd::Failed(ErrorKind::Protocol),
            }
        }
        if session_end.is_some_and(|e| tokio::time::Instant::now() >= e) {
            return SessionEnd::Completed;
        }
    }
}

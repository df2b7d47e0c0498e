//! HLS viewer: polls the media playlist at the live edge, downloads new segments in order, and
//! demuxes them only as far as the video access units (for the stamps in their SEI).

use super::PlayerTiming;
use super::flv::http_error_kind;
use super::viewer::Viewer;
use crate::clock::RunClock;
use crate::hls::playlist::{LiveEdgeCursor, MediaPlaylistView, parse_media_playlist, resolve_uri};
use crate::hls::ts::TsDemuxer;
use crate::metrics::{ErrorKind, GroupMetrics, PlayerStats};
use crate::session::SessionEnd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Segments behind the live edge a new viewer starts at (RFC 8216 §6.3.3 says at least three
/// target durations from the end).
const START_SEGMENTS_FROM_END: usize = 3;

/// Unparsable playlists tolerated in a row before the session fails (players retry them too).
const MAX_BAD_PLAYLISTS_IN_A_ROW: u32 = 3;

pub async fn play_hls(
    client: &reqwest::Client,
    playlist_url: &str,
    timing: &PlayerTiming,
    metrics: &Arc<GroupMetrics<PlayerStats>>,
    clock: &RunClock,
    cancel: &CancellationToken,
) -> SessionEnd {
    let _active = metrics.active_guard();
    let mut viewer = Viewer::start(metrics, clock, timing.startup_buffer);
    let end = super::watch_session(
        cancel,
        metrics,
        watch(client, playlist_url, timing, metrics, &mut viewer),
    )
    .await;
    viewer.finish(Instant::now());
    end
}

enum Fetch {
    Body(bytes::Bytes, Duration),
    Status(u16),
}

async fn fetch(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<Fetch, ErrorKind> {
    let started = Instant::now();
    let response = tokio::time::timeout(timeout, client.get(url).send())
        .await
        .map_err(|_| ErrorKind::Timeout)?
        .map_err(|e| http_error_kind(&e))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Ok(Fetch::Status(status));
    }
    let body = tokio::time::timeout(timeout, response.bytes())
        .await
        .map_err(|_| ErrorKind::Timeout)?
        .map_err(|e| http_error_kind(&e))?;
    Ok(Fetch::Body(body, started.elapsed()))
}

async fn watch(
    client: &reqwest::Client,
    playlist_url: &str,
    timing: &PlayerTiming,
    metrics: &GroupMetrics<PlayerStats>,
    viewer: &mut Viewer<'_>,
) -> SessionEnd {
    let started = viewer.started_at();
    let first_frame_deadline = started + timing.first_frame_timeout;
    let session_end = timing.session_length.map(|len| started + len);
    let mut cursor = LiveEdgeCursor::new(START_SEGMENTS_FROM_END);
    let mut connected = false;
    // The live edge (last segment's sequence) and when it last moved, for stale-playlist checks.
    let mut edge: Option<(u64, Instant)> = None;
    let mut stale_reported = false;
    let mut last_segment_at: Option<Instant> = None;
    let mut last_media_at = Instant::now();
    let mut bad_in_a_row = 0u32;
    loop {
        let now = Instant::now();
        if session_end.is_some_and(|e| now >= e) {
            return SessionEnd::Completed;
        }
        if !viewer.has_media() && now >= first_frame_deadline {
            return SessionEnd::Failed(ErrorKind::NoMedia);
        }
        if viewer.has_media() && now.duration_since(last_media_at) > timing.read_timeout {
            return SessionEnd::Failed(ErrorKind::ReadTimeout);
        }
        let playlist = match fetch(client, playlist_url, timing.read_timeout).await {
            Err(kind) => return SessionEnd::Failed(kind),
            // xiu serves no playlist until it cut the first segment: expected at first.
            Ok(Fetch::Status(404)) if !viewer.has_media() => {
                metrics.record(|s| s.playlist_not_ready += 1);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Ok(Fetch::Status(code)) => return SessionEnd::Failed(ErrorKind::HttpStatus(code)),
            Ok(Fetch::Body(body, took)) => {
                if !connected {
                    connected = true;
                    viewer.connected(took);
                }
                viewer.on_bytes(Instant::now(), body.len());
                metrics.record(|s| s.playlist.record(took));
                match parse_media_playlist(&body) {
                    Ok(view) => {
                        bad_in_a_row = 0;
                        view
                    }
                    Err(_) if bad_in_a_row < MAX_BAD_PLAYLISTS_IN_A_ROW => {
                        bad_in_a_row += 1;
                        metrics.record(|s| s.bad_playlists += 1);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Err(_) => return SessionEnd::Failed(ErrorKind::Protocol),
                }
            }
        };
        let target = playlist.target_duration.max(Duration::from_millis(500));
        let now = Instant::now();
        let live_edge = live_edge(&playlist);
        match edge {
            Some((seq, since)) if Some(seq) == live_edge => {
                // Unchanged for longer than 1.5 target durations: the playlist is stale.
                if !stale_reported && now.duration_since(since) > target * 3 / 2 {
                    stale_reported = true;
                    metrics.record(|s| s.stale_playlists += 1);
                }
            }
            _ => {
                edge = live_edge.map(|s| (s, now));
                stale_reported = false;
            }
        }
        let before_skipped = cursor.skipped();
        let new_segments = cursor.next_segments(&playlist);
        let skipped = cursor.skipped() - before_skipped;
        if skipped > 0 {
            metrics.record(|s| s.skipped_segments += skipped);
        }
        let got_new = !new_segments.is_empty();
        for segment in new_segments {
            let url = resolve_uri(playlist_url, &segment.uri);
            let body = match fetch(client, &url, timing.read_timeout.max(segment.duration * 3))
                .await
            {
                Err(kind) => return SessionEnd::Failed(kind),
                // The segment slid out of the window between playlist and request.
                Ok(Fetch::Status(404)) => {
                    metrics.record(|s| s.skipped_segments += 1);
                    continue;
                }
                Ok(Fetch::Status(code)) => return SessionEnd::Failed(ErrorKind::HttpStatus(code)),
                Ok(Fetch::Body(body, took)) => {
                    metrics.record(|s| {
                        s.segments += 1;
                        s.segment.record(took);
                        if took > segment.duration {
                            s.slow_segments += 1;
                        }
                    });
                    body
                }
            };
            let now = Instant::now();
            last_media_at = now;
            viewer.on_bytes(now, body.len());
            if let Some(prev) = last_segment_at.replace(now) {
                metrics.record(|s| s.frame_gap.record(now.duration_since(prev)));
            }
            let mut demux = TsDemuxer::new();
            demux.push(&body);
            demux.finish();
            while let Some(au) = demux.next_video_access_unit() {
                viewer.on_annexb_frame(now, au.is_keyframe, &au.data);
            }
            viewer.on_segment_media(now, segment.duration);
        }
        if playlist.ended {
            return SessionEnd::Completed;
        }
        // Reload as hls.js does: after the last segment's duration when the playlist changed,
        // after half a target duration when it did not. (RFC 8216 §6.3.4 allows waiting a whole
        // target duration; xiu advertises twice its segment length, so that policy alone would
        // make our viewers stall where real players do not.)
        let last = playlist
            .segments
            .last()
            .map(|s| s.duration)
            .unwrap_or(target);
        let wait = if got_new { last } else { target / 2 };
        let mut wake = Instant::now() + wait;
        if let Some(e) = session_end {
            wake = wake.min(e);
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
    }
}

fn live_edge(view: &MediaPlaylistView) -> Option<u64> {
    view.segments.last().map(|s| s.sequence)
}

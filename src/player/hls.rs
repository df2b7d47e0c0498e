//! HLS viewer: polls the media playlist at the live edge, downloads new segments in order, and
//! demuxes them only as far as the video access units (for the stamps in their SEI). Its GETs go
//! over one kept-alive connection of its own (`fetch`).

use super::fetch::{BodySink, Fetch, FetchError, Fetcher};
use super::viewer::{HlsFrame, Viewer};
use super::{PlayerLimits, PlayerTiming};
use crate::clock::RunClock;
use crate::hls::playlist::{LiveEdgeCursor, MediaPlaylistView, parse_media_playlist, resolve_uri};
use crate::hls::ts::{TsDemuxer, VIDEO_HEAD_KEPT};
use crate::metrics::{ErrorKind, GroupMetrics, PlayerStats};
use crate::session::{Progress, SessionEnd, deadline};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

/// Segments behind the live edge a new viewer starts at (RFC 8216 §6.3.3 says at least three
/// target durations from the end).
const START_SEGMENTS_FROM_END: usize = 3;

/// Unparsable playlists tolerated in a row before the session fails (players retry them too).
const MAX_BAD_PLAYLISTS_IN_A_ROW: u32 = 3;

pub async fn play_hls(
    tls: &TlsConnector,
    playlist_url: &str,
    timing: &PlayerTiming,
    limits: &PlayerLimits,
    metrics: &Arc<GroupMetrics<PlayerStats>>,
    clock: &RunClock,
    cancel: &CancellationToken,
) -> SessionEnd {
    let _active = metrics.active_guard();
    let mut viewer = Viewer::start(metrics, clock, timing.startup_buffer);
    // Boxed: see `flv::play_flv`.
    let session = Box::pin(watch(
        tls,
        playlist_url,
        timing,
        limits,
        metrics,
        &mut viewer,
    ));
    let outcome = crate::cancel::until_cancelled(cancel, session).await;
    viewer.end(outcome, cancel.is_cancelled())
}

/// GETs a playlist whole (bounded by `limit`, see [`Fetcher::get`]): it is small and parsed at once.
async fn fetch_whole(
    fetcher: &mut Fetcher<'_>,
    url: &str,
    timeout: Duration,
    limit: u64,
    what: &str,
) -> Result<(Fetch, Vec<u8>), FetchError> {
    let mut body = BoundedBody::new(limit, None);
    let answer = fetcher.get(url, timeout, limit, what, &mut body).await?;
    Ok((answer, body.into_inner()))
}

/// A response body that refuses to grow past a limit, and whose allocation never exceeds it
/// (a doubling `Vec` could reserve twice the limit).
struct BoundedBody {
    limit: u64,
    data: Vec<u8>,
}

impl BoundedBody {
    fn new(limit: u64, expected: Option<u64>) -> Self {
        let initial = expected.unwrap_or(0).min(limit).min(usize::MAX as u64) as usize;
        BoundedBody {
            limit,
            data: Vec::with_capacity(initial),
        }
    }

    /// Appends `chunk`, or returns the size the body would have reached.
    fn extend(&mut self, chunk: &[u8]) -> Result<(), u64> {
        let needed = self.data.len() as u64 + chunk.len() as u64;
        if needed > self.limit {
            return Err(needed);
        }
        if needed as usize > self.data.capacity() {
            let grown = (self.data.capacity() as u64 * 2)
                .max(needed)
                .min(self.limit) as usize;
            self.data.reserve_exact(grown - self.data.len());
        }
        self.data.extend_from_slice(chunk);
        Ok(())
    }

    fn into_inner(self) -> Vec<u8> {
        self.data
    }
}

impl BodySink for BoundedBody {
    fn expect(&mut self, content_length: Option<u64>) {
        *self = BoundedBody::new(self.limit, content_length);
    }

    fn take(&mut self, chunk: &[u8]) {
        // `Fetcher::get` refuses a body past the limit before handing it over.
        let fits = self.extend(chunk);
        debug_assert!(fits.is_ok(), "fetch checks the limit first");
    }
}

async fn watch(
    tls: &TlsConnector,
    playlist_url: &str,
    timing: &PlayerTiming,
    limits: &PlayerLimits,
    metrics: &GroupMetrics<PlayerStats>,
    viewer: &mut Viewer<'_>,
) -> SessionEnd {
    let deadlines = timing.deadlines(limits, viewer.started_at());
    let mut fetcher = Fetcher::new(tls);
    let mut cursor = LiveEdgeCursor::new(START_SEGMENTS_FROM_END);
    let mut connected = false;
    // The server answered a playlist request (any status).
    let mut answered = false;
    // The live edge (last segment's sequence) and when it last moved, for stale-playlist checks.
    let mut edge: Option<(u64, Instant)> = None;
    let mut stale_reported = false;
    let mut last_segment_at: Option<Instant> = None;
    let mut last_media_at = Instant::now();
    let mut bad_in_a_row = 0u32;
    loop {
        // Before the first answer a fetch bounds its own wait; then the first keyframe is due,
        // then segments within the read timeout.
        let progress = Progress::of(answered, viewer.has_media(), last_media_at);
        if let Some(expired) = deadlines.check(Instant::now(), progress) {
            return expired.session_end();
        }
        // Until the server first answers, the connect timeout bounds the wait too.
        let wait = if connected {
            timing.read_timeout
        } else {
            timing.read_timeout.min(limits.connect_timeout)
        };
        let answer = fetch_whole(
            &mut fetcher,
            playlist_url,
            wait,
            limits.max_playlist_bytes,
            "playlist",
        )
        .await;
        if answer.is_ok() {
            answered = true;
            viewer.answered();
        }
        let playlist = match answer {
            Err((kind, detail)) => {
                viewer.note(kind, &detail);
                return SessionEnd::Failed(kind);
            }
            // xiu serves no playlist until it cut the first segment: expected at first.
            Ok((Fetch::Status(404), _)) if !viewer.has_media() => {
                metrics.record(|s| s.playlist_not_ready += 1);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Ok((Fetch::Status(code), _)) => {
                return SessionEnd::Failed(ErrorKind::HttpStatus(code));
            }
            Ok((Fetch::Done(took), body)) => {
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
                    Err(e) => {
                        let detail = format!("playlist {playlist_url}: {e}");
                        viewer.note(ErrorKind::Protocol, &detail);
                        return SessionEnd::Failed(ErrorKind::Protocol);
                    }
                }
            }
        };
        let target = playlist.target_duration.max(Duration::from_millis(500));
        let now = Instant::now();
        let live_edge = live_edge(&playlist);
        match edge {
            Some((seq, since)) if Some(seq) == live_edge => {
                // Unchanged for longer than 1.5 target durations: the playlist is stale.
                if !stale_reported && now.duration_since(since) > target.saturating_mul(3) / 2 {
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
            let wait = timing.read_timeout.max(segment.duration.saturating_mul(3));
            // Demuxed as it arrives, keeping only each access unit's head: a viewer holds neither
            // the segment nor its keyframes.
            let mut sink = SegmentSink {
                demux: TsDemuxer::new().keeping_video_heads(VIDEO_HEAD_KEPT),
                frames: Vec::new(),
                bytes: 0,
            };
            let answer = fetcher
                .get(&url, wait, limits.max_segment_bytes, "segment", &mut sink)
                .await;
            let SegmentSink {
                mut demux,
                mut frames,
                bytes,
            } = sink;
            match answer {
                Err((kind, detail)) => {
                    viewer.note(kind, &detail);
                    return SessionEnd::Failed(kind);
                }
                // The segment slid out of the window between playlist and request.
                Ok(Fetch::Status(404)) => {
                    metrics.record(|s| s.skipped_segments += 1);
                    continue;
                }
                Ok(Fetch::Status(code)) => return SessionEnd::Failed(ErrorKind::HttpStatus(code)),
                Ok(Fetch::Done(took)) => {
                    metrics.record(|s| {
                        s.segments += 1;
                        s.segment.record(took);
                        if took > segment.duration {
                            s.slow_segments += 1;
                        }
                    });
                }
            }
            let now = Instant::now();
            last_media_at = now;
            // The last access unit has no length of its own: the segment's end completes it.
            demux.finish();
            collect_frames(&mut demux, &mut frames);
            for frame in frames {
                viewer.on_hls_frame(now, frame);
            }
            viewer.on_bytes(now, bytes);
            if let Some(prev) = last_segment_at.replace(now) {
                metrics.record(|s| s.frame_gap.record(now.duration_since(prev)));
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
        // Not kept while waiting: the next reload brings a new one.
        drop(playlist);
        // Both come from the server (bounded when parsed, and checked here all the same). Woken
        // early when a deadline comes first, so it is met on time.
        let progress = Progress::of(answered, viewer.has_media(), last_media_at);
        let wake = deadline(Instant::now(), wait).min(deadlines.due(progress));
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
    }
}

/// A segment's body on its way in: demuxed chunk by chunk, each frame reduced to what the viewer
/// needs (a few bytes), the bytes counted. The frames reach the viewer when the segment is whole,
/// as a player can only show them then; a segment that fails halfway shows none.
struct SegmentSink {
    demux: TsDemuxer,
    frames: Vec<HlsFrame>,
    bytes: usize,
}

impl BodySink for SegmentSink {
    fn take(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len();
        self.demux.push(chunk);
        collect_frames(&mut self.demux, &mut self.frames);
    }
}

fn collect_frames(demux: &mut TsDemuxer, frames: &mut Vec<HlsFrame>) {
    while let Some(au) = demux.next_video_access_unit() {
        frames.push(HlsFrame::of(au.is_keyframe, &au.data));
    }
}

fn live_edge(view: &MediaPlaylistView) -> Option<u64> {
    view.segments.last().map(|s| s.sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_body_stops_at_its_limit_and_never_allocates_past_it() {
        let mut body = BoundedBody::new(1000, None);
        for _ in 0..9 {
            body.extend(&[1u8; 100]).unwrap();
        }
        assert!(body.data.capacity() <= 1000);
        body.extend(&[1u8; 100]).unwrap();
        assert_eq!(body.extend(&[1u8; 1]), Err(1001));
        assert_eq!(body.data.capacity(), 1000);
        // A length announced up front is reserved once, up to the limit.
        let body = BoundedBody::new(1000, Some(600));
        assert_eq!(body.data.capacity(), 600);
        assert_eq!(BoundedBody::new(1000, Some(1 << 40)).data.capacity(), 1000);
    }
}

//! The HLS media playlist parser and live-edge cursor (`xiuload::hls::playlist`) as an HLS viewer
//! drives them: successive reloads of a playlist (the input split at NUL bytes, which no playlist
//! contains) each parsed, checked for staleness and gaps, the new segments taken from the cursor
//! and their URIs resolved against the playlist URL. The first byte is the cursor's
//! `start_from_end`.
//!
//! Besides not panicking: the cursor hands out each segment at most once and in order (a lower
//! sequence only after it counted a restart), and a relative URI resolves under the playlist's
//! origin.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xiuload::hls::playlist::{LiveEdgeCursor, parse_media_playlist, resolve_uri};

const PLAYLIST_URL: &str = "http://127.0.0.1:8080/live/cam/cam.m3u8";

fuzz_target!(|data: &[u8]| {
    let Some((&start_from_end, reloads)) = data.split_first() else {
        return;
    };
    let mut cursor = LiveEdgeCursor::new(usize::from(start_from_end % 8));
    // The highest sequence handed out so far.
    let mut handed: Option<u64> = None;
    for body in reloads.split(|&b| b == 0) {
        let Ok(view) = parse_media_playlist(body) else {
            continue;
        };
        for pair in view.segments.windows(2) {
            assert_eq!(pair[1].sequence, pair[0].sequence + 1);
        }
        let _ = cursor.is_stale(&view);
        let _ = cursor.detect_gap(&view);
        let restarts = cursor.restarts();
        let new = cursor.next_segments(&view);
        if cursor.restarts() > restarts {
            // The server's numbering started over: so does the order.
            handed = None;
        }
        for segment in &new {
            assert!(
                handed.is_none_or(|h| segment.sequence > h),
                "segment {} handed out again or out of order (after {handed:?})",
                segment.sequence
            );
            handed = Some(segment.sequence);
            let url = resolve_uri(PLAYLIST_URL, &segment.uri);
            let relative = !segment.uri.contains(':') && !segment.uri.starts_with("//");
            assert!(
                !relative || url.starts_with("http://127.0.0.1:8080"),
                "{:?} resolved to {url:?}",
                segment.uri
            );
            // A strange base must not upset the resolver either.
            let _ = resolve_uri(&segment.uri, "seg.ts");
            let _ = resolve_uri(&segment.uri, &segment.uri);
        }
        if let Some(last) = view.last_sequence() {
            // Equal, or ahead when this reload was a lagging copy of an earlier one.
            assert!(cursor.next_sequence().is_some_and(|next| next > last));
        }
    }
});

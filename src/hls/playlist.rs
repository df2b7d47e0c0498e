//! HLS media playlist handling for a live client: a small view over
//! m3u8-rs's parse result, plus the live-edge logic that decides which
//! segments to fetch, and URI resolution without pulling in a URL crate.

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlaylistError {
    #[error("expected a media playlist but got a master playlist (variant list)")]
    MasterPlaylist,
    #[error("playlist does not parse: {0}")]
    Parse(String),
    #[error("{tag}:{value} is longer than the {max} s a live playlist may announce", max = MAX_MEDIA_SECS)]
    Duration { tag: &'static str, value: String },
    #[error("EXT-X-MEDIA-SEQUENCE {0} leaves no room for the playlist's segments")]
    SequenceOverflow(u64),
}

/// Longest target or segment duration accepted. Live segments last seconds; a server announcing
/// more than a day is broken, and a viewer that waited on it (or added it to a clock) would hang
/// or overflow.
pub const MAX_MEDIA_SECS: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    /// Media sequence number (EXT-X-MEDIA-SEQUENCE + index).
    pub sequence: u64,
    /// URI as written in the playlist (see [`resolve_uri`]).
    pub uri: String,
    pub duration: Duration,
    /// EXT-X-DISCONTINUITY before this segment (e.g. publisher restarted).
    pub discontinuity: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlaylistView {
    pub media_sequence: u64,
    pub target_duration: Duration,
    pub segments: Vec<SegmentRef>,
    /// EXT-X-ENDLIST: no more segments will be added.
    pub ended: bool,
}

impl MediaPlaylistView {
    /// Sequence number of the newest segment, if any.
    pub fn last_sequence(&self) -> Option<u64> {
        self.segments.last().map(|s| s.sequence)
    }
}

pub fn parse_media_playlist(bytes: &[u8]) -> Result<MediaPlaylistView, PlaylistError> {
    let playlist = m3u8_rs::parse_playlist_res(bytes).map_err(|e| {
        // nom errors echo the remaining input; keep the message short.
        let mut msg = format!("{e:?}");
        msg.truncate(200);
        PlaylistError::Parse(msg)
    })?;
    let m = match playlist {
        m3u8_rs::Playlist::MediaPlaylist(m) => m,
        m3u8_rs::Playlist::MasterPlaylist(_) => return Err(PlaylistError::MasterPlaylist),
    };
    if m.target_duration > MAX_MEDIA_SECS {
        return Err(PlaylistError::Duration {
            tag: "#EXT-X-TARGETDURATION",
            value: m.target_duration.to_string(),
        });
    }
    // The cursor asks for the sequence after the last segment: it must exist.
    if m.media_sequence
        .checked_add(m.segments.len() as u64 + 1)
        .is_none()
    {
        return Err(PlaylistError::SequenceOverflow(m.media_sequence));
    }
    let mut segments = Vec::with_capacity(m.segments.len());
    for (i, s) in m.segments.iter().enumerate() {
        if f64::from(s.duration) > MAX_MEDIA_SECS as f64 {
            return Err(PlaylistError::Duration {
                tag: "#EXTINF",
                value: s.duration.to_string(),
            });
        }
        segments.push(SegmentRef {
            sequence: m.media_sequence + i as u64,
            uri: s.uri.clone(),
            duration: secs_to_duration(s.duration),
            discontinuity: s.discontinuity,
        });
    }
    Ok(MediaPlaylistView {
        media_sequence: m.media_sequence,
        target_duration: Duration::from_secs(m.target_duration),
        segments,
        ended: m.end_list,
    })
}

/// EXTINF durations are f32; round to microseconds so 6.006 stays 6.006 s
/// instead of picking up f32 noise. Negative/NaN become zero.
fn secs_to_duration(secs: f32) -> Duration {
    let micros = (f64::from(secs) * 1e6).round();
    if micros.is_finite() && micros > 0.0 {
        Duration::from_micros(micros as u64)
    } else {
        Duration::ZERO
    }
}

/// Segments that left the playlist window before the client fetched them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub first_missing: u64,
    pub count: u64,
}

/// Decides which segments a live client downloads, playing like a player
/// at the live edge: start a few segments back (the HLS spec advises not
/// starting closer than three target durations from the end), then fetch
/// each new segment exactly once, in order.
#[derive(Debug, Clone)]
pub struct LiveEdgeCursor {
    start_from_end: usize,
    next_sequence: Option<u64>,
    skipped: u64,
    restarts: u64,
    last_observed: Option<(u64, Option<u64>)>,
}

impl LiveEdgeCursor {
    /// `start_from_end`: how many of the newest segments the first call
    /// returns (3 is the usual choice; 0 means "only segments that appear
    /// from now on").
    pub fn new(start_from_end: usize) -> Self {
        Self {
            start_from_end,
            next_sequence: None,
            skipped: 0,
            restarts: 0,
            last_observed: None,
        }
    }

    /// New segments since the previous call, oldest first. Segments that
    /// slid out of the window unfetched are added to [`Self::skipped`].
    ///
    /// If the playlist jumps back by more than its whole window (the server
    /// restarted the stream and its numbering), the cursor starts over as on
    /// the first call and counts a restart; a smaller step back is treated
    /// as a lagging copy of the playlist and yields nothing.
    pub fn next_segments(&mut self, view: &MediaPlaylistView) -> Vec<SegmentRef> {
        let Some(last) = view.last_sequence() else {
            return Vec::new();
        };
        let start_index = match self.next_sequence {
            Some(next) if last + 1 < next => {
                if next - (last + 1) <= view.segments.len() as u64 {
                    return Vec::new();
                }
                self.restarts += 1;
                view.segments.len().saturating_sub(self.start_from_end)
            }
            Some(next) => {
                if let Some(gap) = self.detect_gap(view) {
                    // A numbering that jumps by ~2^64 (a hostile or broken server) must not
                    // overflow the count; found by the playlist fuzz target.
                    self.skipped = self.skipped.saturating_add(gap.count);
                }
                view.segments
                    .iter()
                    .position(|s| s.sequence >= next)
                    .unwrap_or(view.segments.len())
            }
            None => view.segments.len().saturating_sub(self.start_from_end),
        };
        self.next_sequence = Some(last + 1);
        view.segments[start_index..].to_vec()
    }

    /// Segments between the last one handed out and the oldest one still in
    /// `view`, i.e. lost because the client fell behind. Does not change
    /// state; [`Self::next_segments`] does the counting.
    pub fn detect_gap(&self, view: &MediaPlaylistView) -> Option<Gap> {
        let next = self.next_sequence?;
        (view.media_sequence > next).then(|| Gap {
            first_missing: next,
            count: view.media_sequence - next,
        })
    }

    /// True if neither the media sequence nor the newest segment advanced
    /// since the previous `is_stale` call. The caller decides whether that
    /// has lasted too long (the spec allows a reload to show no change; a
    /// playlist unchanged for more than ~1.5 target durations is a stall).
    /// An ended playlist is never stale.
    pub fn is_stale(&mut self, view: &MediaPlaylistView) -> bool {
        let key = (view.media_sequence, view.last_sequence());
        let stale = !view.ended && self.last_observed == Some(key);
        self.last_observed = Some(key);
        stale
    }

    /// Total segments that slid out of the window before being fetched.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Times the playlist numbering jumped back and the cursor restarted.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Sequence number expected next, once a playlist has been seen.
    pub fn next_sequence(&self) -> Option<u64> {
        self.next_sequence
    }
}

/// Resolves a segment (or variant) URI against the playlist's URL, per RFC
/// 3986 for the cases playlists use: absolute URLs, scheme-relative
/// `//host/x`, absolute paths `/x`, query-only `?q`, and relative paths with
/// `.`/`..` segments.
pub fn resolve_uri(playlist_url: &str, uri: &str) -> String {
    if has_scheme(uri) {
        return uri.to_string();
    }
    let (scheme, rest) = match playlist_url.split_once("://") {
        Some((scheme, rest)) if has_scheme(playlist_url) => (Some(scheme), rest),
        _ => (None, playlist_url),
    };
    if let Some(scheme) = scheme
        && uri.starts_with("//")
    {
        return format!("{scheme}:{uri}");
    }
    let (authority, base_path) = match scheme {
        Some(_) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            rest.split_at(end)
        }
        None => ("", rest),
    };
    let prefix = match scheme {
        Some(s) => format!("{s}://{authority}"),
        None => String::new(),
    };
    let base_path = &base_path[..base_path.find(['?', '#']).unwrap_or(base_path.len())];
    if uri.starts_with('/') {
        return prefix + &remove_dot_segments(uri);
    }
    if uri.is_empty() || uri.starts_with(['?', '#']) {
        return format!("{prefix}{base_path}{uri}");
    }
    let dir = match base_path.rfind('/') {
        Some(i) => &base_path[..=i],
        // "http://host" (no path) means "/"; a bare relative base has no dir.
        None if scheme.is_some() => "/",
        None => "",
    };
    prefix + &remove_dot_segments(&format!("{dir}{uri}"))
}

/// `scheme:` per RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn remove_dot_segments(path: &str) -> String {
    let split = path.find(['?', '#']).unwrap_or(path.len());
    let (p, tail) = path.split_at(split);
    let segs: Vec<&str> = p.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segs.len());
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        match *seg {
            "." => {}
            ".." => {
                // Never pop the empty root segment of an absolute path.
                if out.len() > 1 || (out.len() == 1 && !out[0].is_empty()) {
                    out.pop();
                }
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if last {
            out.push("");
        }
    }
    out.join("/") + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playlist(media_sequence: u64, n: usize, ended: bool) -> Vec<u8> {
        let mut s = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:{media_sequence}\n"
        );
        for i in 0..n {
            s += &format!("#EXTINF:3.970,\nseg{}.ts\n", media_sequence + i as u64);
        }
        if ended {
            s += "#EXT-X-ENDLIST\n";
        }
        s.into_bytes()
    }

    fn view(media_sequence: u64, n: usize) -> MediaPlaylistView {
        parse_media_playlist(&playlist(media_sequence, n, false)).unwrap()
    }

    fn seqs(segs: &[SegmentRef]) -> Vec<u64> {
        segs.iter().map(|s| s.sequence).collect()
    }

    #[test]
    fn durations_no_clock_can_take_are_refused() {
        let huge_target =
            b"#EXTM3U\n#EXT-X-TARGETDURATION:18446744073709551615\n#EXTINF:2,\n0.ts\n";
        let e = parse_media_playlist(huge_target).unwrap_err();
        assert_eq!(
            e.to_string(),
            "#EXT-X-TARGETDURATION:18446744073709551615 is longer than the 86400 s a live playlist may announce"
        );
        let huge_segment =
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:100000000000000000000000000000.5,\n0.ts\n";
        assert!(matches!(
            parse_media_playlist(huge_segment),
            Err(PlaylistError::Duration { tag: "#EXTINF", .. })
        ));
        let last_sequence =
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:2,\n0.ts\n";
        assert_eq!(
            parse_media_playlist(last_sequence),
            Err(PlaylistError::SequenceOverflow(u64::MAX))
        );
        // A day is still accepted.
        let day = b"#EXTM3U\n#EXT-X-TARGETDURATION:86400\n#EXTINF:86400,\n0.ts\n";
        assert_eq!(
            parse_media_playlist(day).unwrap().target_duration,
            Duration::from_secs(86_400)
        );
    }

    #[test]
    fn parses_media_playlist() {
        let v = view(100, 5);
        assert_eq!(v.media_sequence, 100);
        assert_eq!(v.target_duration, Duration::from_secs(4));
        assert!(!v.ended);
        assert_eq!(v.segments.len(), 5);
        assert_eq!(
            v.segments[2],
            SegmentRef {
                sequence: 102,
                uri: "seg102.ts".into(),
                duration: Duration::from_millis(3970),
                discontinuity: false,
            }
        );
        let ended = parse_media_playlist(&playlist(0, 2, true)).unwrap();
        assert!(ended.ended);
        assert_eq!(ended.last_sequence(), Some(1));
    }

    #[test]
    fn master_playlist_is_named_error() {
        let master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1280000\nlow/index.m3u8\n";
        let err = parse_media_playlist(master).unwrap_err();
        assert_eq!(err, PlaylistError::MasterPlaylist);
        assert!(err.to_string().contains("master playlist"));
        assert!(matches!(
            parse_media_playlist(b"<html>404</html>"),
            Err(PlaylistError::Parse(_))
        ));
    }

    #[test]
    fn cursor_starts_back_from_live_edge_then_follows() {
        let mut c = LiveEdgeCursor::new(3);
        assert_eq!(seqs(&c.next_segments(&view(10, 6))), vec![13, 14, 15]);
        // No change: nothing new.
        assert!(c.next_segments(&view(10, 6)).is_empty());
        // Window slides by two.
        assert_eq!(seqs(&c.next_segments(&view(12, 6))), vec![16, 17]);
        assert_eq!(c.skipped(), 0);
        assert_eq!(c.next_sequence(), Some(18));
        // Short playlist at start: everything.
        let mut c = LiveEdgeCursor::new(3);
        assert_eq!(seqs(&c.next_segments(&view(0, 2))), vec![0, 1]);
        // start_from_end 0: only future segments.
        let mut c = LiveEdgeCursor::new(0);
        assert!(c.next_segments(&view(5, 3)).is_empty());
        assert_eq!(seqs(&c.next_segments(&view(6, 3))), vec![8]);
        // Empty playlist.
        assert!(LiveEdgeCursor::new(3).next_segments(&view(0, 0)).is_empty());
    }

    #[test]
    fn gap_when_client_falls_behind() {
        let mut c = LiveEdgeCursor::new(3);
        c.next_segments(&view(10, 6)); // next = 16
        let late = view(20, 6); // 16..19 are gone
        assert_eq!(
            c.detect_gap(&late),
            Some(Gap {
                first_missing: 16,
                count: 4
            })
        );
        assert_eq!(seqs(&c.next_segments(&late)), vec![20, 21, 22, 23, 24, 25]);
        assert_eq!(c.skipped(), 4);
        assert_eq!(c.detect_gap(&view(21, 6)), None);
        assert_eq!(LiveEdgeCursor::new(3).detect_gap(&late), None);
    }

    #[test]
    fn restart_and_lagging_playlist() {
        let mut c = LiveEdgeCursor::new(3);
        c.next_segments(&view(100, 5)); // next = 105
        // One segment behind (stale CDN copy): nothing, no restart.
        assert!(c.next_segments(&view(99, 5)).is_empty());
        assert_eq!(c.restarts(), 0);
        // Numbering reset by a server restart.
        assert_eq!(seqs(&c.next_segments(&view(0, 4))), vec![1, 2, 3]);
        assert_eq!(c.restarts(), 1);
        assert_eq!(seqs(&c.next_segments(&view(1, 4))), vec![4]);
    }

    #[test]
    fn staleness() {
        let mut c = LiveEdgeCursor::new(3);
        assert!(!c.is_stale(&view(10, 5)));
        assert!(c.is_stale(&view(10, 5)));
        assert!(!c.is_stale(&view(10, 6))); // new segment appended
        assert!(!c.is_stale(&view(11, 5))); // window slid
        let ended = parse_media_playlist(&playlist(11, 5, true)).unwrap();
        assert!(!c.is_stale(&ended));
        assert!(!c.is_stale(&ended));
    }

    #[test]
    fn uri_resolution() {
        let base = "http://127.0.0.1:8080/app/stream/index.m3u8?token=abc";
        let cases = [
            ("seg1.ts", "http://127.0.0.1:8080/app/stream/seg1.ts"),
            ("./seg1.ts", "http://127.0.0.1:8080/app/stream/seg1.ts"),
            (
                "../other/seg1.ts?x=1",
                "http://127.0.0.1:8080/app/other/seg1.ts?x=1",
            ),
            ("../../../../x.ts", "http://127.0.0.1:8080/x.ts"),
            ("/live/seg1.ts", "http://127.0.0.1:8080/live/seg1.ts"),
            ("//cdn.example/a.ts", "http://cdn.example/a.ts"),
            ("https://cdn.example/a.ts", "https://cdn.example/a.ts"),
            ("HTTP://X/a.ts", "HTTP://X/a.ts"),
            ("?q=2", "http://127.0.0.1:8080/app/stream/index.m3u8?q=2"),
            ("sub/", "http://127.0.0.1:8080/app/stream/sub/"),
        ];
        for (uri, want) in cases {
            assert_eq!(resolve_uri(base, uri), want, "{uri}");
        }
        assert_eq!(resolve_uri("http://host", "a.ts"), "http://host/a.ts");
        assert_eq!(
            resolve_uri("https://host/x.m3u8", "a.ts"),
            "https://host/a.ts"
        );
        // Relative base without scheme still merges paths.
        assert_eq!(resolve_uri("live/index.m3u8", "a.ts"), "live/a.ts");
        assert_eq!(resolve_uri("index.m3u8", "a.ts"), "a.ts");
        assert_eq!(remove_dot_segments("/a/b/.."), "/a/");
        assert_eq!(remove_dot_segments("/a/./b"), "/a/b");
    }
}

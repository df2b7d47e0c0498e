//! HTTP-FLV viewer: one long GET whose body is an FLV stream, parsed tag by tag.
//!
//! One loop for http:// and https://: our own TCP connection, wrapped in rustls for https://,
//! read into a fixed buffer with our own response-head and chunked parsing (`http1`), tags parsed
//! in place and only the head of each kept. So a viewer's memory depends neither on the stream
//! (its biggest keyframe) nor on the scheme beyond what TLS itself holds.

use super::http1::{BodyDecoder, BodyKind, parse_head};
use super::target::{HttpStream, Target, connect};
use super::viewer::Viewer;
use super::{PlayerLimits, PlayerTiming, io_failure};
use crate::clock::RunClock;
use crate::flv::FlvError;
use crate::flv::demux::{FlvDemuxer, TagKind, TagRef};
use crate::metrics::{ErrorKind, GroupMetrics, PlayerStats};
use crate::session::{Expiry, Progress, SessionDeadlines, SessionEnd, SessionTimer};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

/// Read buffer of a plain-HTTP viewer: fixed, so a thousand viewers stay cheap (see `http1`); a
/// TLS viewer reads from rustls' own buffer instead. 8 KiB measured no more CPU than 16 KiB for
/// 200 viewers of a 2 Mbit/s stream (tags are parsed in place whatever the cut) and ~7 KiB less
/// memory per viewer.
const READ_BUF: usize = 8 * 1024;

/// Bytes of each tag's body a viewer keeps; the rest is skipped without being held, so a viewer's
/// memory does not grow with the stream's keyframes. What it needs from a video tag: the 5-byte
/// AVC header (`VideoTagInfo::parse`), then our stamp SEI, which our publisher puts first
/// (`SyntheticVideo::frame_tag`): a 4-byte length and at most ~60 bytes once escaped. The rest
/// leaves room for an access unit delimiter or parameter sets a remuxer might put in front.
pub const TAG_HEAD_KEPT: usize = 256;

pub async fn play_flv(
    tls: &TlsConnector,
    url: &str,
    timing: &PlayerTiming,
    limits: &PlayerLimits,
    metrics: &Arc<GroupMetrics<PlayerStats>>,
    clock: &RunClock,
    cancel: &CancellationToken,
) -> SessionEnd {
    // Active from the request on: a viewer waiting for a slow server is still a viewer.
    let _active = metrics.active_guard();
    let mut viewer = Viewer::start(metrics, clock, timing.startup_buffer);
    // Boxed here: a future passed by value is stored again by every async fn it goes through
    // (`until_cancelled`, the slot's panic guard...), which made each slot's task ~15 KiB, the
    // largest part of a viewer's memory. Behind a box each layer holds a pointer.
    let session = Box::pin(watch(tls, url, timing, limits, &mut viewer));
    let outcome = crate::cancel::until_cancelled(cancel, session).await;
    viewer.end(outcome, cancel.is_cancelled())
}

/// The kind a demuxer error is counted as: a tag over the bound is `too_large`.
fn flv_error_kind(e: &FlvError) -> ErrorKind {
    match e {
        FlvError::TagTooLarge { .. } => ErrorKind::TooLarge,
        _ => ErrorKind::Protocol,
    }
}

/// Fails the session with `kind`, keeping `detail` as the group's example of it.
fn fail(viewer: &Viewer<'_>, kind: ErrorKind, detail: &str) -> SessionEnd {
    viewer.note(kind, detail);
    SessionEnd::Failed(kind)
}

/// A failed response: the kind counted, and the detail kept when there is one worth keeping.
type Failure = (ErrorKind, Option<String>);

fn fail_with(viewer: &Viewer<'_>, (kind, detail): Failure) -> SessionEnd {
    match detail {
        Some(detail) => fail(viewer, kind, &detail),
        None => SessionEnd::Failed(kind),
    }
}

/// Connects (TCP, then TLS for https://) within the answer deadline and runs the session over
/// whichever stream that gave.
async fn watch(
    tls: &TlsConnector,
    url: &str,
    timing: &PlayerTiming,
    limits: &PlayerLimits,
    viewer: &mut Viewer<'_>,
) -> SessionEnd {
    let started = viewer.started_at();
    let deadlines = timing.deadlines(limits, started);
    let answer_by = tokio::time::Instant::from_std(deadlines.answer_by());
    let target = match Target::parse(url) {
        Ok(t) => t,
        Err(e) => return fail(viewer, ErrorKind::Protocol, &e.to_string()),
    };
    let request = target.request(false);
    let stream = match connect(tls, &target, answer_by).await {
        Ok(stream) => stream,
        Err((kind, detail)) => return fail(viewer, kind, &detail),
    };
    viewer.connected(started.elapsed());
    match stream {
        HttpStream::Plain(tcp) => {
            let stream = tokio::io::BufReader::with_capacity(READ_BUF, tcp);
            session(stream, &target, &request, url, &deadlines, limits, viewer).await
        }
        HttpStream::Tls(tls) => {
            session(tls, &target, &request, url, &deadlines, limits, viewer).await
        }
    }
}

/// What a viewer does with each tag: a video tag's head is a frame.
fn show<'v, 'm>(viewer: &'v mut Viewer<'m>, now: Instant) -> impl FnMut(TagRef<'_>) + 'v
where
    'm: 'v,
{
    move |tag| {
        if tag.kind == TagKind::Video {
            viewer.on_flv_video(now, tag.timestamp_ms, tag.data);
        }
    }
}

/// The request, then the response parsed straight from the stream's own buffer until it ends,
/// fails or a deadline passes: the same loop over plain TCP (a fixed `BufReader`) and over TLS
/// (rustls' buffer of decrypted bytes, read in place rather than copied out).
async fn session<S: AsyncBufRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: &Target,
    request: &str,
    url: &str,
    deadlines: &SessionDeadlines,
    limits: &PlayerLimits,
    viewer: &mut Viewer<'_>,
) -> SessionEnd {
    let (host, port) = (target.host.as_str(), target.port);
    // Flushed: over TLS the request waits in rustls until then.
    let sent = async {
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await
    };
    if let Err(e) = sent.await {
        let doing = format!("sending the request to {host}:{port}");
        let (kind, detail) = io_failure(&doing, &e, ErrorKind::Io);
        return fail(viewer, kind, &detail);
    }

    let mut response = FlvResponse::new(limits.max_tag());
    // The response head while it arrives in pieces (bounded by `http1::MAX_HEAD`); freed once
    // parsed.
    let mut head = Vec::new();
    let mut timer = SessionTimer::new(deadlines.due(Progress::Setup));
    let mut last_data = Instant::now();
    loop {
        let now_at = Progress::of(response.answered(), viewer.has_media(), last_data);
        timer.aim(deadlines.due(now_at));
        let read = tokio::select! {
            r = stream.fill_buf() => r,
            _ = timer.fired() => match deadlines.check(Instant::now(), now_at) {
                // Data came since the timer was armed: re-aim and read on.
                None => continue,
                Some(Expiry::Timeout) => {
                    let detail = format!("no response head from {url} in time");
                    return fail(viewer, ErrorKind::Timeout, &detail);
                }
                Some(expired) => return expired.session_end(),
            },
        };
        let arrived = match read {
            Ok(arrived) => arrived,
            // A TLS server that closes without close_notify has closed all the same.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => &[],
            Err(e) => {
                let doing = format!("reading from {host}:{port}");
                let (kind, detail) = io_failure(&doing, &e, ErrorKind::Io);
                return fail(viewer, kind, &detail);
            }
        };
        let n = arrived.len();
        let now = Instant::now();
        last_data = now;
        if n == 0 {
            return SessionEnd::Failed(response.ended(viewer.has_media()));
        }
        viewer.on_bytes(now, n);
        let finished = if response.answered() {
            response.on_body(arrived, show(viewer, now))
        } else {
            head.extend_from_slice(arrived);
            match response.on_head(&head) {
                Ok(None) => Ok(false),
                Err(failure) => return fail_with(viewer, failure),
                Ok(Some(head_len)) => {
                    viewer.answered();
                    let finished = response.on_body(&head[head_len..], show(viewer, now));
                    head = Vec::new();
                    finished
                }
            }
        };
        stream.consume(n);
        match finished {
            Err(failure) => return fail_with(viewer, failure),
            Ok(true) => return SessionEnd::Failed(response.ended(viewer.has_media())),
            Ok(false) => {}
        }
        if deadlines.ended(Instant::now()) {
            return SessionEnd::Completed;
        }
    }
}

/// An HTTP-FLV response as it arrives, sans I/O: its head, then its body (chunked, Content-Length
/// or until close) demuxed in place, keeping only each tag's head.
struct FlvResponse {
    /// The body, once the head has come.
    body: Option<BodyDecoder>,
    demux: FlvDemuxer,
}

impl FlvResponse {
    fn new(max_tag: u32) -> Self {
        FlvResponse {
            body: None,
            demux: FlvDemuxer::with_max_tag_size(max_tag as usize).keeping_tag_heads(TAG_HEAD_KEPT),
        }
    }

    /// The server sent a response head.
    fn answered(&self) -> bool {
        self.body.is_some()
    }

    /// The head, from what has arrived so far: `Ok(Some(len))` once complete (the body starts at
    /// `len`), `Ok(None)` while more is needed. Anything but a 200 fails the session.
    fn on_head(&mut self, arrived: &[u8]) -> Result<Option<usize>, Failure> {
        match parse_head(arrived) {
            Ok(None) => Ok(None),
            Err(e) => Err((ErrorKind::Protocol, Some(e.to_string()))),
            Ok(Some(h)) if h.status != 200 => Err((ErrorKind::HttpStatus(h.status), None)),
            Ok(Some(h)) => {
                self.body = Some(BodyDecoder::new(h.body));
                Ok(Some(h.len))
            }
        }
    }

    /// Body bytes as they arrived, tags handed to `on_tag`; `Ok(true)` once the body is complete.
    /// A Content-Length body is cut at its end: what the server sends after is not media.
    fn on_body(
        &mut self,
        arrived: &[u8],
        mut on_tag: impl FnMut(TagRef<'_>),
    ) -> Result<bool, Failure> {
        let FlvResponse { body, demux } = self;
        let body = body.get_or_insert_with(|| BodyDecoder::new(BodyKind::Close));
        let mut malformed = None;
        let step = body
            .decode(arrived, |piece| {
                if malformed.is_none()
                    && let Err(e) = demux.feed(piece, &mut on_tag)
                {
                    malformed = Some(e);
                }
            })
            .map_err(|e| (ErrorKind::Protocol, Some(e.to_string())))?;
        match malformed {
            Some(e) => Err((flv_error_kind(&e), Some(e.to_string()))),
            None => Ok(step.complete),
        }
    }

    /// What the response ending (the server closed, or the body is complete) means: xiu answers a
    /// stream it does not have with 200 and an empty body.
    fn ended(&self, has_media: bool) -> ErrorKind {
        match self.body {
            None => ErrorKind::Eof,
            Some(ref body) if body.received() == 0 => ErrorKind::EmptyStream,
            Some(_) if !has_media => ErrorKind::NoMedia,
            Some(_) => ErrorKind::Eof,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::tag::VideoTagInfo;
    use crate::media::h264::{SyntheticVideo, VideoParams};
    use crate::media::stamp::{FrameStamp, find_stamp_in_avcc};

    #[test]
    fn our_stamp_lies_within_the_head_a_viewer_keeps() {
        let video = SyntheticVideo::new(&VideoParams {
            width: 1920,
            height: 1080,
            fps: 30,
            bitrate_bps: 8_000_000,
            gop_frames: 30,
        })
        .unwrap();
        // Values whose bytes are mostly zeros: the most emulation-prevention bytes an SEI gets.
        for stamp in [
            FrameStamp {
                stream_tag: 0,
                sequence: 0,
                sent_at_unix_micros: 0,
            },
            FrameStamp {
                stream_tag: u32::MAX,
                sequence: 0x0000_0300_0002_0000,
                sent_at_unix_micros: 0x0000_0100_0003_0000,
            },
        ] {
            // A keyframe at 8 Mbit/s is far longer than the head.
            let tag = video.frame_tag(0, &stamp);
            assert!(tag.len() > 10 * TAG_HEAD_KEPT);
            let head = &tag[..TAG_HEAD_KEPT];
            assert!(VideoTagInfo::parse(head).unwrap().is_keyframe);
            let found = find_stamp_in_avcc(VideoTagInfo::avc_payload(head), 4);
            assert_eq!(found, Some(stamp));
            // Cut inside the SEI: the search ends quietly.
            assert_eq!(
                find_stamp_in_avcc(VideoTagInfo::avc_payload(&tag[..30]), 4),
                None
            );
        }
    }

    fn flv_body(video: &SyntheticVideo) -> Vec<u8> {
        crate::media::flv_file::write_flv(Some(video), None, 1)
    }

    fn small_video() -> SyntheticVideo {
        SyntheticVideo::new(&VideoParams {
            width: 320,
            height: 240,
            fps: 10,
            bitrate_bps: 400_000,
            gop_frames: 10,
        })
        .unwrap()
    }

    #[test]
    fn a_response_delimits_its_body_and_says_what_its_end_means() {
        let flv = flv_body(&small_video());
        // Content-Length, with bytes after the body that are not media.
        let mut r = FlvResponse::new(1 << 20);
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", flv.len());
        let mut wire = head.clone().into_bytes();
        wire.extend_from_slice(&flv);
        wire.extend_from_slice(b"garbage that is not FLV");
        assert_eq!(r.on_head(&wire[..10]), Ok(None));
        let start = r.on_head(&wire).unwrap().unwrap();
        assert_eq!(start, head.len());
        let mut stamps = 0;
        let done = r.on_body(&wire[start..], |t| {
            assert!(t.data.len() <= TAG_HEAD_KEPT && t.data.len() <= t.size);
            if t.kind == TagKind::Video && t.size > 5 {
                stamps += find_stamp_in_avcc(VideoTagInfo::avc_payload(t.data), 4).is_some() as u32;
            }
        });
        assert_eq!(done, Ok(true));
        assert_eq!(stamps, 10);
        assert_eq!(r.ended(true), ErrorKind::Eof);
        assert_eq!(r.ended(false), ErrorKind::NoMedia);

        // Chunked, cut anywhere: complete at the last chunk.
        let mut r = FlvResponse::new(1 << 20);
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(r.on_head(head), Ok(Some(head.len())));
        let mut chunked = format!("{:x}\r\n", flv.len()).into_bytes();
        chunked.extend_from_slice(&flv);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut tags = 0;
        let mut results = Vec::new();
        for piece in chunked.chunks(777) {
            results.push(r.on_body(piece, |_| tags += 1).unwrap());
        }
        assert_eq!(results.iter().filter(|&&d| d).count(), 1);
        assert_eq!(results.last(), Some(&true));
        assert!(tags > 10);

        // xiu's answer for a stream it does not have: 200 and nothing.
        let mut r = FlvResponse::new(1 << 20);
        r.on_head(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        assert_eq!(r.on_body(&[], |_| {}), Ok(true));
        assert_eq!(r.ended(false), ErrorKind::EmptyStream);
        // Closed before any head.
        assert_eq!(FlvResponse::new(1).ended(false), ErrorKind::Eof);
    }

    #[test]
    fn a_response_fails_by_kind() {
        let mut r = FlvResponse::new(1 << 20);
        assert_eq!(
            r.on_head(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
            Err((ErrorKind::HttpStatus(404), None))
        );
        assert!(!r.answered());
        let mut r = FlvResponse::new(1 << 20);
        assert!(matches!(
            r.on_head(b"NOT HTTP\r\n\r\n"),
            Err((ErrorKind::Protocol, Some(_)))
        ));
        // An HTML page where FLV was expected.
        let mut r = FlvResponse::new(1 << 20);
        r.on_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert!(matches!(
            r.on_body(b"<html>", |_| {}),
            Err((ErrorKind::Protocol, Some(d))) if d.contains("not an FLV stream")
        ));
        // A tag over the bound, refused at its header.
        let mut r = FlvResponse::new(100);
        r.on_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        let mut body = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        body.extend_from_slice(&[9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            r.on_body(&body, |_| {}),
            Err((ErrorKind::TooLarge, Some(d))) if d.contains("256 bytes")
        ));
        // A broken chunked coding.
        let mut r = FlvResponse::new(1 << 20);
        r.on_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap();
        assert!(matches!(
            r.on_body(b"zz\r\n", |_| {}),
            Err((ErrorKind::Protocol, Some(_)))
        ));
    }
}

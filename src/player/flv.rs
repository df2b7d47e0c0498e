//! HTTP-FLV viewer: one long GET whose body is an FLV stream, parsed tag by tag.

use super::PlayerTiming;
use super::viewer::Viewer;
use crate::clock::RunClock;
use crate::flv::demux::{FlvDemuxer, FlvEvent, TagKind, TagRef};
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
    let end = super::watch_session(cancel, metrics, async {
        if url.starts_with("http://") {
            watch_plain(url, timing, &mut viewer).await
        } else {
            watch(client, url, timing, &mut viewer).await
        }
    })
    .await;
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
        if drain_tags(&mut demux, viewer, now).is_err() {
            return SessionEnd::Failed(ErrorKind::Protocol);
        }
        if session_end.is_some_and(|e| tokio::time::Instant::now() >= e) {
            return SessionEnd::Completed;
        }
    }
}

/// What a viewer does with a tag parsed in place.
fn on_tag(viewer: &mut Viewer<'_>, now: Instant, tag: TagRef<'_>) {
    if tag.kind == TagKind::Video {
        viewer.on_flv_video(now, tag.timestamp_ms, tag.data);
    }
}

/// Hands every complete FLV tag to the viewer.
fn drain_tags(demux: &mut FlvDemuxer, viewer: &mut Viewer<'_>, now: Instant) -> Result<(), ()> {
    loop {
        match demux.next_event() {
            Ok(Some(FlvEvent::Tag(tag))) if tag.kind == TagKind::Video => {
                viewer.on_flv_video(now, tag.timestamp_ms, &tag.data)
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(_) => return Err(()),
        }
    }
}

/// Read buffer of a plain-HTTP viewer: fixed, so a thousand viewers stay cheap (see `http1`).
const READ_BUF: usize = 16 * 1024;

/// Plain `http://`: one TCP connection, a fixed read buffer, our own head and chunked parsing.
async fn watch_plain(url: &str, timing: &PlayerTiming, viewer: &mut Viewer<'_>) -> SessionEnd {
    use super::http1::{BodyKind, ChunkedDecoder, parse_head};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let started = viewer.started_at();
    let first_frame_deadline = tokio::time::Instant::from_std(started + timing.first_frame_timeout);
    let session_end = timing
        .session_length
        .map(|len| tokio::time::Instant::from_std(started + len));
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return SessionEnd::Failed(ErrorKind::Protocol);
    };
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let mut stream = match tokio::time::timeout_at(
        first_frame_deadline,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Err(_) => return SessionEnd::Failed(ErrorKind::Timeout),
        Ok(Err(_)) => return SessionEnd::Failed(ErrorKind::Connect),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    viewer.connected(started.elapsed());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: xiuload/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return SessionEnd::Failed(ErrorKind::Io);
    }

    let mut buf = vec![0u8; READ_BUF];
    let mut filled = 0;
    let mut head = None;
    let mut demux = FlvDemuxer::new();
    let mut chunked = ChunkedDecoder::default();
    let mut body_total: u64 = 0;
    // One timer for the whole session, moved only when its deadline moves by more than the slack:
    // re-arming a timer on every read was a measurable share of a viewer's CPU.
    const SLACK: std::time::Duration = std::time::Duration::from_millis(500);
    let mut last_data = tokio::time::Instant::now();
    let deadline_for = |has_media: bool, last_data: tokio::time::Instant| {
        let d = if has_media {
            last_data + timing.read_timeout
        } else {
            first_frame_deadline
        };
        session_end.map_or(d, |e| e.min(d))
    };
    let timer = tokio::time::sleep_until(deadline_for(false, last_data));
    tokio::pin!(timer);
    loop {
        let wanted = deadline_for(viewer.has_media(), last_data);
        if timer.is_elapsed() || wanted > timer.deadline() + SLACK || wanted < timer.deadline() {
            timer.as_mut().reset(wanted);
        }
        let n = tokio::select! {
            r = stream.read(&mut buf[filled..]) => match r {
                Ok(n) => n,
                Err(_) => return SessionEnd::Failed(ErrorKind::Io),
            },
            _ = &mut timer => {
                let now = tokio::time::Instant::now();
                if session_end.is_some_and(|e| now >= e) {
                    return SessionEnd::Completed;
                }
                if viewer.has_media() {
                    if now < last_data + timing.read_timeout {
                        // Data came since the timer was armed: re-arm and read on.
                        continue;
                    }
                    return SessionEnd::Failed(ErrorKind::ReadTimeout);
                }
                return SessionEnd::Failed(if head.is_none() { ErrorKind::Timeout } else { ErrorKind::NoMedia });
            }
        };
        let now = Instant::now();
        last_data = tokio::time::Instant::now();
        if n == 0 {
            // The server closed: xiu's answer for a stream it does not have is an empty 200.
            return match head {
                None => SessionEnd::Failed(ErrorKind::Eof),
                Some(_) if body_total == 0 => SessionEnd::Failed(ErrorKind::EmptyStream),
                Some(_) if !viewer.has_media() => SessionEnd::Failed(ErrorKind::NoMedia),
                Some(_) => SessionEnd::Failed(ErrorKind::Eof),
            };
        }
        viewer.on_bytes(now, n);
        filled += n;
        let body_start = match head {
            Some(_) => 0,
            None => match parse_head(&buf[..filled]) {
                Ok(None) if filled == buf.len() => return SessionEnd::Failed(ErrorKind::Protocol),
                Ok(None) => continue,
                Err(_) => return SessionEnd::Failed(ErrorKind::Protocol),
                Ok(Some(h)) if h.status != 200 => {
                    return SessionEnd::Failed(ErrorKind::HttpStatus(h.status));
                }
                Ok(Some(h)) => {
                    let len = h.len;
                    head = Some(h.body);
                    len
                }
            },
        };
        let body = &buf[body_start..filled];
        // A Content-Length body is cut at its end; what the server sends after is not media.
        let body = match head {
            Some(BodyKind::Length(len)) => {
                &body[..body.len().min(len.saturating_sub(body_total) as usize)]
            }
            _ => body,
        };
        let mut finished = false;
        let mut malformed = false;
        let mut feed = |piece: &[u8]| {
            body_total += piece.len() as u64;
            malformed |= demux.feed(piece, |tag| on_tag(viewer, now, tag)).is_err();
        };
        match head {
            Some(BodyKind::Chunked) => match chunked.decode(body, &mut feed) {
                Ok(done) => finished = done,
                Err(_) => return SessionEnd::Failed(ErrorKind::Protocol),
            },
            Some(BodyKind::Length(len)) => {
                feed(body);
                finished = body_total >= len;
            }
            _ => feed(body),
        }
        filled = 0;
        if malformed {
            return SessionEnd::Failed(ErrorKind::Protocol);
        }
        if finished {
            return match () {
                _ if body_total == 0 => SessionEnd::Failed(ErrorKind::EmptyStream),
                _ if !viewer.has_media() => SessionEnd::Failed(ErrorKind::NoMedia),
                _ => SessionEnd::Failed(ErrorKind::Eof),
            };
        }
        if session_end.is_some_and(|e| tokio::time::Instant::now() >= e) {
            return SessionEnd::Completed;
        }
    }
}

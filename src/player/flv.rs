//! HTTP-FLV viewer: one long GET whose body is an FLV stream, parsed tag by tag.

use super::viewer::Viewer;
use super::{PlayerLimits, PlayerTiming, http_error};
use crate::clock::RunClock;
use crate::flv::FlvError;
use crate::flv::demux::{FlvDemuxer, FlvEvent, TagKind, TagRef};
use crate::metrics::{ErrorKind, GroupMetrics, PlayerStats};
use crate::session::{SessionEnd, tokio_deadline};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub async fn play_flv(
    client: &reqwest::Client,
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
    let outcome = crate::cancel::until_cancelled(cancel, async {
        if url.starts_with("http://") {
            watch_plain(url, timing, limits, &mut viewer).await
        } else {
            watch(client, url, timing, limits, &mut viewer).await
        }
    })
    .await;
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

async fn watch(
    client: &reqwest::Client,
    url: &str,
    timing: &PlayerTiming,
    limits: &PlayerLimits,
    viewer: &mut Viewer<'_>,
) -> SessionEnd {
    let started = tokio::time::Instant::from_std(viewer.started_at());
    let first_frame_deadline = tokio_deadline(started, timing.first_frame_timeout);
    let session_end = timing
        .session_length
        .map(|len| tokio_deadline(started, len));
    let answer_deadline = first_frame_deadline.min(tokio_deadline(started, limits.connect_timeout));

    let response = match tokio::time::timeout_at(answer_deadline, client.get(url).send()).await {
        Err(_) => {
            let detail = format!("no response head from {url} in time");
            return fail(viewer, ErrorKind::Timeout, &detail);
        }
        Ok(Err(e)) => {
            let (kind, detail) = http_error(&e);
            return fail(viewer, kind, &detail);
        }
        Ok(Ok(r)) => r,
    };
    viewer.answered();
    // reqwest does not expose the TCP/TLS connect step alone: "connect" for HTTP players is the
    // time to response headers, which includes it.
    viewer.connected(started.elapsed());
    if response.status() != reqwest::StatusCode::OK {
        return SessionEnd::Failed(ErrorKind::HttpStatus(response.status().as_u16()));
    }
    let mut response = response;
    let mut demux = FlvDemuxer::with_max_tag_size(limits.max_tag() as usize);
    let mut total = 0usize;
    loop {
        let deadline = if viewer.has_media() {
            tokio_deadline(tokio::time::Instant::now(), timing.read_timeout)
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
            Ok(Err(e)) => {
                let (kind, detail) = http_error(&e);
                return fail(viewer, kind, &detail);
            }
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
        if let Err(e) = drain_tags(&mut demux, viewer, now) {
            return fail(viewer, flv_error_kind(&e), &e.to_string());
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
fn drain_tags(
    demux: &mut FlvDemuxer,
    viewer: &mut Viewer<'_>,
    now: Instant,
) -> Result<(), FlvError> {
    loop {
        match demux.next_event()? {
            Some(FlvEvent::Tag(tag)) if tag.kind == TagKind::Video => {
                viewer.on_flv_video(now, tag.timestamp_ms, &tag.data)
            }
            Some(_) => {}
            None => return Ok(()),
        }
    }
}

/// Read buffer of a plain-HTTP viewer: fixed, so a thousand viewers stay cheap (see `http1`).
const READ_BUF: usize = 16 * 1024;

/// Plain `http://`: one TCP connection, a fixed read buffer, our own head and chunked parsing.
async fn watch_plain(
    url: &str,
    timing: &PlayerTiming,
    limits: &PlayerLimits,
    viewer: &mut Viewer<'_>,
) -> SessionEnd {
    use super::http1::{BodyKind, ChunkedDecoder, parse_head};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let started = tokio::time::Instant::from_std(viewer.started_at());
    let first_frame_deadline = tokio_deadline(started, timing.first_frame_timeout);
    let session_end = timing
        .session_length
        .map(|len| tokio_deadline(started, len));
    // The connect timeout bounds TCP connect up to the response head.
    let answer_deadline = first_frame_deadline.min(tokio_deadline(started, limits.connect_timeout));
    let parsed = match reqwest::Url::parse(url) {
        Ok(p) => p,
        Err(e) => return fail(viewer, ErrorKind::Protocol, &format!("URL {url:?}: {e}")),
    };
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let mut stream = match tokio::time::timeout_at(
        answer_deadline,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Err(_) => {
            let detail = format!("TCP connect to {host}:{port} did not complete in time");
            return fail(viewer, ErrorKind::Timeout, &detail);
        }
        Ok(Err(e)) => {
            let detail = format!("TCP connect to {host}:{port}: {e}");
            return fail(viewer, ErrorKind::Connect, &detail);
        }
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
    let mut demux = FlvDemuxer::with_max_tag_size(limits.max_tag() as usize);
    let mut chunked = ChunkedDecoder::default();
    let mut body_total: u64 = 0;
    // One timer for the whole session, moved only when its deadline moves by more than the slack:
    // re-arming a timer on every read was a measurable share of a viewer's CPU.
    const SLACK: std::time::Duration = std::time::Duration::from_millis(500);
    let mut last_data = tokio::time::Instant::now();
    let deadline_for = |has_media: bool, answered: bool, last_data: tokio::time::Instant| {
        let d = if has_media {
            tokio_deadline(last_data, timing.read_timeout)
        } else if answered {
            first_frame_deadline
        } else {
            answer_deadline
        };
        session_end.map_or(d, |e| e.min(d))
    };
    let timer = tokio::time::sleep_until(deadline_for(false, false, last_data));
    tokio::pin!(timer);
    loop {
        let wanted = deadline_for(viewer.has_media(), head.is_some(), last_data);
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
                    if now < tokio_deadline(last_data, timing.read_timeout) {
                        // Data came since the timer was armed: re-arm and read on.
                        continue;
                    }
                    return SessionEnd::Failed(ErrorKind::ReadTimeout);
                }
                if head.is_none() {
                    let detail = format!("no response head from {url} in time");
                    return fail(viewer, ErrorKind::Timeout, &detail);
                }
                return SessionEnd::Failed(ErrorKind::NoMedia);
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
                Ok(None) if filled == buf.len() => {
                    let detail = format!("response head longer than {} bytes", buf.len());
                    return fail(viewer, ErrorKind::Protocol, &detail);
                }
                Ok(None) => continue,
                Err(e) => return fail(viewer, ErrorKind::Protocol, &e.to_string()),
                Ok(Some(h)) if h.status != 200 => {
                    return SessionEnd::Failed(ErrorKind::HttpStatus(h.status));
                }
                Ok(Some(h)) => {
                    viewer.answered();
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
        let mut malformed = None;
        let mut feed = |piece: &[u8]| {
            body_total += piece.len() as u64;
            if malformed.is_none()
                && let Err(e) = demux.feed(piece, |tag| on_tag(viewer, now, tag))
            {
                malformed = Some(e);
            }
        };
        match head {
            Some(BodyKind::Chunked) => match chunked.decode(body, &mut feed) {
                Ok(done) => finished = done,
                Err(e) => return fail(viewer, ErrorKind::Protocol, &e.to_string()),
            },
            Some(BodyKind::Length(len)) => {
                feed(body);
                finished = body_total >= len;
            }
            _ => feed(body),
        }
        filled = 0;
        if let Some(e) = malformed {
            return fail(viewer, flv_error_kind(&e), &e.to_string());
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

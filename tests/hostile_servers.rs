//! Small hostile servers on loopback, written here: each sends what a sane server never would
//! (chunk streams rml_rtmp cannot follow, absurd HLS durations, endless bodies, huge or empty FLV
//! tags, an untrusted certificate, silence), and the run must count what went wrong by kind:
//! never a panic, never a pass with dead clients, never memory that grows with what is sent.

mod common;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use std::future::Future;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xiuload::report::model::{Report, Verdict};

/// Accepts connections on a free loopback port and hands each to `handle`.
async fn serve<F, Fut>(handle: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(handle(socket));
        }
    });
    port
}

/// Reads an HTTP request head; returns its path.
async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    text.lines()
        .next()?
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
}

/// Keeps a connection open, sending nothing more, until the client closes it.
async fn hold(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Sends `piece` again and again as a chunked body until `cap` bytes, then holds the connection:
/// an endless body for any client that reads less than `cap`, without endangering the machine
/// when one does not stop (today's code read bodies whole).
async fn endless_chunked_body(mut s: TcpStream, piece: &[u8], cap: usize) {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
    chunk.extend_from_slice(piece);
    chunk.extend_from_slice(b"\r\n");
    let mut sent = 0;
    while sent < cap {
        if s.write_all(&chunk).await.is_err() {
            return;
        }
        sent += piece.len();
    }
    hold(s).await;
}

/// The server side of the RTMP handshake.
async fn rtmp_handshake(s: &mut TcpStream) -> Option<()> {
    let mut hs = Handshake::new(PeerType::Server);
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        match hs.process_bytes(&buf[..n]).ok()? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                s.write_all(&response_bytes).await.ok()?
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                s.write_all(&response_bytes).await.ok()?;
                return Some(());
            }
        }
    }
}

/// Runs a scenario in-process to its end.
async fn run(text: &str) -> Report {
    let dir = tempfile::tempdir().unwrap();
    common::run(text, &dir.path().join("out")).await.report
}

/// Error counts of the player group `name`, warm-up included.
fn player_errors(r: &Report, name: &str) -> std::collections::BTreeMap<String, u64> {
    let g = r.players.iter().find(|g| g.name == name).unwrap();
    let mut all = g.summary.errors.clone();
    all.merge(&g.summary.errors_during_warmup);
    all.0
}

fn player_example(r: &Report, group: &str, kind: &str) -> String {
    r.raw.players[group]
        .error_examples
        .0
        .get(kind)
        .cloned()
        .unwrap_or_default()
}

fn assert_no_panic(r: &Report) {
    for g in &r.players {
        assert!(!g.summary.errors.0.contains_key("panic"), "{}", g.name);
    }
    for p in &r.publishers {
        assert!(!p.errors.0.contains_key("panic"), "{}", p.name);
    }
}

/// Item 1: a message begun on one chunk stream, then a shorter one on another, made rml_rtmp's
/// chunk deserializer panic ("capacity overflow"): the publisher's and viewers' slots died and
/// the run passed with 0 errors. Now both are `protocol` errors and the run fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_chunks_that_crashed_rml_rtmp_are_protocol_errors_and_the_run_fails() {
    let port = serve(|mut s| async move {
        if rtmp_handshake(&mut s).await.is_none() {
            return;
        }
        // docs/upstream-rml_rtmp.md's reproduction.
        let mut bytes = vec![0x03, 0, 0, 0, 0x00, 0x01, 0x00, 0x14, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0u8; 128]);
        bytes.extend_from_slice(&[0x04, 0, 0, 0, 0x00, 0x00, 0x10, 0x14, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0u8; 16]);
        if s.write_all(&bytes).await.is_ok() {
            hold(s).await;
        }
    })
    .await;
    let r = run(&format!(
        "[run]\nduration = \"3s\"\n[target]\nrtmp_publish = \"rtmp://127.0.0.1:{port}\"\n\
         rtmp_play = \"rtmp://127.0.0.1:{port}\"\n\
         [[publishers]]\nname = \"cams\"\ncount = 1\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"rtmp\"\npublishers = \"cams\"\ncount = 2\n\
         [[thresholds]]\nmetric = \"error_rate\"\nmax = 0.5\n\
         [[thresholds]]\nmetric = \"error_rate\"\nscope = \"publishers\"\nmax = 0.5\n"
    ))
    .await;
    assert_no_panic(&r);
    let viewers = player_errors(&r, "viewers");
    assert!(
        viewers.get("protocol").copied().unwrap_or(0) >= 2,
        "{viewers:?}"
    );
    let publisher = &r.publishers[0];
    assert!(
        publisher.errors.0.get("protocol").copied().unwrap_or(0) >= 1,
        "{:?}",
        publisher.errors
    );
    let example = &r.raw.publishers["cams"].error_examples.0["protocol"];
    assert!(example.contains("interrupts a message"), "{example}");
    assert_eq!(r.verdict, Verdict::Fail);
}

/// Item 2: `#EXT-X-TARGETDURATION:18446744073709551615` panicked at `Instant::now() + wait`, and
/// the run passed. Now the playlist is a `protocol` error naming the tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hls_target_duration_no_clock_can_hold_is_a_protocol_error() {
    let port = serve(|mut s| async move {
        let Some(path) = read_request(&mut s).await else {
            return;
        };
        let response = if path.ends_with(".m3u8") {
            let body = "#EXTM3U\n#EXT-X-TARGETDURATION:18446744073709551615\n\
                        #EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\n0.ts\n";
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
        };
        let _ = s.write_all(response.as_bytes()).await;
    })
    .await;
    let r = run(&format!(
        "[run]\nduration = \"3s\"\n[target]\nhls_base = \"http://127.0.0.1:{port}\"\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"hls\"\nstreams = [\"s\"]\ncount = 2\n\
         [[thresholds]]\nmetric = \"error_rate\"\nmax = 0.5\n"
    ))
    .await;
    assert_no_panic(&r);
    let errors = player_errors(&r, "viewers");
    assert!(
        errors.get("protocol").copied().unwrap_or(0) >= 2,
        "{errors:?}"
    );
    let example = player_example(&r, "viewers", "protocol");
    assert!(
        example.contains("#EXT-X-TARGETDURATION:18446744073709551615"),
        "{example}"
    );
    assert_eq!(r.verdict, Verdict::Fail);
}

/// Item 4: HLS playlists and segments were read whole, so an endless one took a viewer's memory
/// to gigabytes. Now each is read up to the group's limit and then counted as `too_large`; the
/// xiuload process's RSS (its own timeline) stays near its idle size. Run as a child process so
/// that nothing else in this test binary weighs on the measurement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_hls_bodies_are_too_large_and_memory_stays_bounded() {
    // 48 MiB per connection, then held open: today's code kept each until its read timeout.
    const CAP: usize = 48 << 20;
    let port = serve(|mut s| async move {
        let Some(path) = read_request(&mut s).await else {
            return;
        };
        if path.contains("endless-playlist") {
            endless_chunked_body(s, &b"#EXTINF:2.0,\nx.ts\n".repeat(3000), CAP).await;
        } else if path.ends_with(".m3u8") {
            let body =
                "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\n0.ts\n";
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
        } else {
            endless_chunked_body(s, &[0x47; 64 * 1024], CAP).await;
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("endless.toml");
    let group = |name: &str| {
        format!(
            "[[players]]\nname = \"{name}\"\nprotocol = \"hls\"\nstreams = [\"{name}\"]\ncount = 2\n\
             max_playlist_bytes = 262144\nmax_segment_bytes = 4194304\n"
        )
    };
    std::fs::write(
        &scenario,
        format!(
            "[run]\nduration = \"5s\"\n[target]\nhls_base = \"http://127.0.0.1:{port}\"\n{}{}",
            group("endless-playlist"),
            group("endless-segment")
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_xiuload"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), output)
        .await
        .expect("the run ends")
        .unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    for (group, what) in [
        ("endless-playlist", "playlist"),
        ("endless-segment", "segment"),
    ] {
        let g = report["players"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == group)
            .unwrap();
        let too_large = g["errors"]["too_large"].as_u64().unwrap_or(0)
            + g["errors_during_warmup"]["too_large"].as_u64().unwrap_or(0);
        assert!(too_large >= 2, "{group}: {}", g["errors"]);
        let example = report["raw"]["players"][group]["error_examples"]["too_large"]
            .as_str()
            .unwrap_or_default();
        assert!(example.starts_with(what), "{group}: {example}");
    }
    let timeline = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap();
    let rss: Vec<f64> = timeline
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|p| p["loader_rss_mib"].as_f64())
        .collect();
    assert!(rss.len() >= 4, "{timeline}");
    let peak = rss.iter().cloned().fold(0.0, f64::max);
    // Four viewers at 4 MiB each at most, over an idle process of a few tens of MiB; reading
    // the bodies whole held 4 x 48 MiB.
    assert!(peak < 120.0, "RSS per second {rss:?}");
}

/// The FLV file header, then one tag header announcing `size` bytes of video.
fn flv_header_and_tag(size: u32) -> Vec<u8> {
    let mut b = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    b.push(9);
    b.extend_from_slice(&size.to_be_bytes()[1..]);
    b.extend_from_slice(&[0; 7]);
    b
}

/// Item 4, HTTP-FLV: a tag of 0xFFFFFF bytes was buffered whole (16 MiB per viewer). A tag over
/// the group's `max_tag_bytes` (4 MiB by default) is now `too_large`, refused at its header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_flv_tag_over_the_bound_is_too_large() {
    let port = serve(|mut s| async move {
        if read_request(&mut s).await.is_none() {
            return;
        }
        let mut body = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
        body.extend_from_slice(&flv_header_and_tag(0xFF_FFFF));
        if s.write_all(&body).await.is_err() {
            return;
        }
        // The tag's body, slowly and never all of it.
        for _ in 0..100 {
            if s.write_all(&[0x17; 64 * 1024]).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        hold(s).await;
    })
    .await;
    let r = run(&format!(
        "[run]\nduration = \"3s\"\n[target]\nflv_base = \"http://127.0.0.1:{port}\"\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"flv\"\nstreams = [\"s\"]\ncount = 2\n"
    ))
    .await;
    let errors = player_errors(&r, "viewers");
    assert!(
        errors.get("too_large").copied().unwrap_or(0) >= 2,
        "{errors:?}"
    );
    let example = player_example(&r, "viewers", "too_large");
    assert!(example.contains("16777215 bytes"), "{example}");
}

/// Item 4, RTMP: a message announcing 0xFFFFFF bytes made rml_rtmp reserve 16 MiB (twice: the
/// session and the media tap) and wait for them. It is now `too_large`, refused at its header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_message_over_the_bound_is_too_large() {
    let port = serve(|mut s| async move {
        if rtmp_handshake(&mut s).await.is_none() {
            return;
        }
        // A type 0 header on chunk stream 6: video, 0xFFFFFF bytes; then a trickle of them.
        let header = [0x06, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0];
        if s.write_all(&header).await.is_err() {
            return;
        }
        for _ in 0..20 {
            if s.write_all(&[0x17; 128]).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        hold(s).await;
    })
    .await;
    let r = run(&format!(
        "[run]\nduration = \"2s\"\n[target]\nrtmp_play = \"rtmp://127.0.0.1:{port}\"\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"rtmp\"\nstreams = [\"s\"]\ncount = 2\n"
    ))
    .await;
    let errors = player_errors(&r, "viewers");
    assert!(
        errors.get("too_large").copied().unwrap_or(0) >= 2,
        "{errors:?}"
    );
    let example = player_example(&r, "viewers", "too_large");
    assert!(example.contains("16777215 bytes"), "{example}");
}

/// A response head trickled in pieces, then a stream with a 3 MiB tag in it (under the 4 MiB
/// bound): the viewer puts the head together, skips the big tag without holding it, and plays
/// every frame around it (that the demuxer holds no more than a tag head is unit-tested in
/// `flv::demux`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_and_a_huge_allowed_tag_still_play() {
    let flv = common::flv_server::synthetic_flv(2);
    // The file header and the first tags (2 KB or so), a 3 MiB audio tag, then the rest.
    let mut cut = 13;
    while cut < 2000 {
        cut += flv_tag_len(&flv[cut..]);
    }
    let mut body = flv[..cut].to_vec();
    let big = 3 << 20;
    body.push(8);
    body.extend_from_slice(&(big as u32).to_be_bytes()[1..]);
    body.extend_from_slice(&[0; 7]);
    body.extend(std::iter::repeat_n(0xaf, big));
    body.extend_from_slice(&(11 + big as u32).to_be_bytes());
    body.extend_from_slice(&flv[cut..]);
    let body = Arc::new(body);
    let port = serve(move |mut s| {
        let body = body.clone();
        async move {
            if read_request(&mut s).await.is_none() {
                return;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: video/x-flv\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            for piece in head.as_bytes().chunks(7) {
                if s.write_all(piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let _ = s.write_all(&body).await;
            hold(s).await;
        }
    })
    .await;
    let r = run(&format!(
        "[run]\nduration = \"3s\"\n[target]\nflv_base = \"http://127.0.0.1:{port}\"\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"flv\"\nstreams = [\"s\"]\ncount = 1\n\
         reconnect = {{ max_attempts = 0, backoff = \"10s\" }}\n"
    ))
    .await;
    let g = &r.players[0].summary;
    let errors = player_errors(&r, "viewers");
    // Every frame of the two seconds, each with its stamp; the session ends at the body's end.
    assert_eq!(g.frames, 50, "{errors:?}");
    assert_eq!(g.unstamped_frames, 0);
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["eof"], "{errors:?}");
}

/// Bytes of the first tag in `tags`, with its PreviousTagSize.
fn flv_tag_len(tags: &[u8]) -> usize {
    let size = u32::from_be_bytes([0, tags[1], tags[2], tags[3]]) as usize;
    11 + size + 4
}

/// Item 6: zero-size FLV tags gave one `protocol` error per tag (5 million from 8 sessions), so
/// `error_rate`, "errors per session", meant nothing. Now a session counts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_size_flv_tags_are_one_protocol_error_per_session() {
    let port = serve(|mut s| async move {
        if read_request(&mut s).await.is_none() {
            return;
        }
        let mut body = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
        body.extend_from_slice(&flv_header_and_tag(0));
        // The first tag's PreviousTagSize, then 100,000 more empty video tags.
        let mut tag = 11u32.to_be_bytes().to_vec();
        body.extend_from_slice(&tag);
        tag = flv_header_and_tag(0)[13..].to_vec();
        tag.extend_from_slice(&11u32.to_be_bytes());
        for _ in 0..100_000 {
            body.extend_from_slice(&tag);
        }
        let _ = s.write_all(&body).await;
    })
    .await;
    let r = run(&format!(
        "[run]\nduration = \"3s\"\n[target]\nflv_base = \"http://127.0.0.1:{port}\"\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"flv\"\nstreams = [\"s\"]\ncount = 2\n\
         reconnect = {{ max_attempts = 10, backoff = \"200ms\" }}\n"
    ))
    .await;
    let g = &r.players[0].summary;
    let sessions = g.sessions;
    let errors = player_errors(&r, "viewers");
    let protocol = errors.get("protocol").copied().unwrap_or(0);
    assert!(sessions >= 2, "{sessions} sessions");
    assert!(
        (1..=sessions).contains(&protocol),
        "{protocol} protocol errors from {sessions} sessions: {errors:?}"
    );
    let example = player_example(&r, "viewers", "protocol");
    assert!(example.starts_with("video tag"), "{example}");
}

/// Item 8: an untrusted certificate read as `connect`. It is now `tls`, with what failed and the
/// hint to set `target.tls.ca_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_tls_error_with_the_ca_file_hint() {
    // The viewer gives up in the handshake; nothing is served.
    let port = common::flv_server::tls_flv_server(2).await.port;
    let r = run(&format!(
        "[run]\nduration = \"2s\"\n[target]\nflv_base = \"https://localhost:{port}\"\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"flv\"\nstreams = [\"s\"]\ncount = 1\n\
         reconnect = {{ max_attempts = 0, backoff = \"10s\" }}\n"
    ))
    .await;
    let errors = player_errors(&r, "viewers");
    assert_eq!(errors.get("tls"), Some(&1), "{errors:?}");
    let example = player_example(&r, "viewers", "tls");
    assert!(
        example.starts_with("certificate verification failed")
            && example.contains("target.tls.ca_file"),
        "{example}"
    );
}

/// Item 11: a publisher whose connect hung past the end of a short run was not counted, and the
/// run passed. Setups still pending at the end are now `timeout` errors, for publishers and
/// viewers alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setups_still_pending_at_the_end_are_timeouts() {
    // Accepts TCP, then says nothing: no RTMP handshake, no HTTP response head.
    let port = serve(hold).await;
    let r = run(&format!(
        "[run]\nduration = \"3s\"\n[target]\nrtmp_publish = \"rtmp://127.0.0.1:{port}\"\n\
         flv_base = \"http://127.0.0.1:{port}\"\n\
         [[publishers]]\nname = \"cams\"\ncount = 1\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"flv\"\npublishers = \"cams\"\ncount = 2\n\
         [[thresholds]]\nmetric = \"error_rate\"\nscope = \"publishers\"\nmax = 0.5\n"
    ))
    .await;
    let publisher = &r.publishers[0];
    assert_eq!(
        publisher.errors.0.get("timeout"),
        Some(&1),
        "{:?}",
        publisher.errors
    );
    let example = &r.raw.publishers["cams"].error_examples.0["timeout"];
    assert!(example.contains("still pending"), "{example}");
    let viewers = player_errors(&r, "viewers");
    assert_eq!(viewers.get("timeout"), Some(&2), "{viewers:?}");
    assert_eq!(r.verdict, Verdict::Fail);
}

/// Item 11: the group's `connect_timeout` bounds a hanging setup during the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_bounds_a_hanging_setup() {
    let port = serve(hold).await;
    let r = run(&format!(
        "[run]\nduration = \"3s\"\n[target]\nrtmp_publish = \"rtmp://127.0.0.1:{port}\"\n\
         rtmp_play = \"rtmp://127.0.0.1:{port}\"\n\
         [[publishers]]\nname = \"cams\"\ncount = 1\nconnect_timeout = \"1s\"\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"rtmp\"\npublishers = \"cams\"\ncount = 1\n\
         connect_timeout = \"1s\"\n"
    ))
    .await;
    let example = &r.raw.publishers["cams"].error_examples.0["timeout"];
    assert_eq!(example, "timed out waiting for RTMP handshake");
    let example = player_example(&r, "viewers", "timeout");
    assert_eq!(example, "timed out waiting for RTMP handshake");
    let viewers = player_errors(&r, "viewers");
    assert!(viewers["timeout"] >= 1, "{viewers:?}");
}

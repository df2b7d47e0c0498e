//! The RTMP viewer's connection path (`xiuload::rtmp::RtmpConnection`, the code a viewer runs):
//! a server on 127.0.0.1 completes a real RTMP handshake, then says what the fuzz input says, in
//! turns, and closes its side. The client opens (`connect`), plays and reads media until the
//! connection ends, handing each video message to the tag header parser and the stamp search, as
//! `player::rtmp` does. Everything the server says goes through rml_rtmp's client session and
//! xiuload's media tap (the chunk guard, which keeps each media message's timestamp and head).
//!
//! Input: the first byte's low bit sends the first turn right behind the handshake's S0S1S2 (the
//! client then finds it left over from the handshake) instead of after C2. Then turns, each a
//! 2-byte big-endian length and that many bytes (the last one takes what is left). After each
//! turn the server lets the client run until it waits for more, as a real server answers one
//! request at a time: without turns, the answer to `createStream` would arrive before the client
//! asked, and the session would rightly reject it.
//!
//! Besides not panicking: the client ends (the server closed, so every wait has its answer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xiuload::flv::tag::VideoTagInfo;
use xiuload::media::stamp::find_stamp_in_avcc;
use xiuload::rtmp::RtmpConnection;
use xiuload::rtmp::url::RtmpBase;

/// Never reached: the server always closes, so the client always has an answer. A hang past it
/// is a finding (libFuzzer's `-timeout` reports it).
const WAIT: Duration = Duration::from_secs(30);

struct Harness {
    runtime: tokio::runtime::Runtime,
    listener: TcpListener,
    base: RtmpBase,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // libFuzzer's own main does not set SIGPIPE to ignored as a Rust main does; a write to
        // a closed socket must be an error here, as in xiuload, not the end of the process.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let base = RtmpBase {
            host: "127.0.0.1".into(),
            port,
        };
        Harness {
            runtime,
            listener,
            base,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, wire)) = data.split_first() else {
        return;
    };
    let early = mode & 1 == 1;
    let turns = turns(wire);
    let h = harness();
    h.runtime.block_on(async {
        let served = serve(&h.listener, &turns, early);
        let watched = watch(&h.base);
        let (served, ()) = tokio::join!(served, watched);
        served.expect("the test server failed");
    });
});

/// The client side, as `player::rtmp::play_rtmp` drives it.
async fn watch(base: &RtmpBase) {
    let Ok((mut conn, _setup)) = RtmpConnection::open(base, "live", WAIT, true, 1 << 24).await
    else {
        return;
    };
    if conn.play("cam", WAIT).await.is_err() {
        return;
    }
    loop {
        match tokio::time::timeout(WAIT, conn.next_media()).await {
            Ok(Ok(media)) => {
                if media.is_video && VideoTagInfo::parse(&media.data).is_ok() {
                    let _ = find_stamp_in_avcc(VideoTagInfo::avc_payload(&media.data), 4);
                }
            }
            Ok(Err(_)) => return,
            Err(_) => panic!("no answer from a closed connection within {WAIT:?}"),
        }
    }
}

/// The server's turns: 2-byte big-endian length, then that many bytes.
fn turns(mut wire: &[u8]) -> Vec<&[u8]> {
    let mut turns = Vec::new();
    while let [hi, lo, rest @ ..] = wire {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (turn, after) = rest.split_at(len);
        turns.push(turn);
        wire = after;
    }
    turns
}

/// One connection: handshake, the turns, then close our side and wait for the client to close.
async fn serve(listener: &TcpListener, turns: &[&[u8]], early: bool) -> std::io::Result<()> {
    let (mut sock, _) = listener.accept().await?;
    let mut handshake = Handshake::new(PeerType::Server);
    let mut buf = vec![0u8; 8192];
    let mut turns = turns.iter();
    let mut sent_early = false;
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(n) => n,
            // The client had the first turn early and may have dropped the connection over it.
            Err(_) if sent_early => return Ok(()),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        let result = handshake
            .process_bytes(&buf[..n])
            .map_err(|e| std::io::Error::other(format!("server handshake: {e:?}")))?;
        match result {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await?;
                if early && !response_bytes.is_empty() && !sent_early {
                    if let Some(turn) = turns.next() {
                        sock.write_all(turn).await?;
                    }
                    sent_early = true;
                }
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                sock.write_all(&response_bytes).await?;
                break;
            }
        }
    }
    for turn in turns {
        // The client may already have given up (and closed or reset the connection).
        if !client_runs(&mut sock, &mut buf).await || sock.write_all(turn).await.is_err() {
            break;
        }
    }
    let _ = client_runs(&mut sock, &mut buf).await;
    let _ = sock.shutdown().await;
    drain_until_closed(&mut sock, &mut buf).await;
    // Reset rather than linger in TIME_WAIT: thousands of connections a second would use up
    // the loopback's ephemeral ports. (Deprecated because a non-zero linger blocks the thread on
    // drop; a zero one resets at once.)
    #[allow(deprecated)]
    let _ = sock.set_linger(Some(Duration::ZERO));
    Ok(())
}

/// Lets the client (the other task on this single-threaded runtime) take what was sent and
/// answer, reading whatever it says, until it has been quiet for a few scheduler rounds. Each
/// `yield_now` lets tokio poll the socket events before this task runs again. Returns false once
/// the client closed.
async fn client_runs(sock: &mut TcpStream, buf: &mut [u8]) -> bool {
    let mut quiet_rounds = 0;
    while quiet_rounds < 3 {
        tokio::task::yield_now().await;
        match sock.try_read(buf) {
            Ok(0) => return false,
            Ok(_) => quiet_rounds = 0,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => quiet_rounds += 1,
            Err(_) => return false,
        }
    }
    true
}

async fn drain_until_closed(sock: &mut TcpStream, buf: &mut [u8]) {
    while let Ok(n) = sock.read(buf).await {
        if n == 0 {
            return;
        }
    }
}

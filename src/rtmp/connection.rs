//! One RTMP client connection: TCP, handshake, then rml_rtmp's `ClientSession` fed with the bytes
//! we read and its packets written back in order (the session does no I/O itself).

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunk_guard::{ChunkError, ChunkGuard};
pub use super::chunk_guard::{MEDIA_HEAD_BYTES, MediaMessage};
use super::url::RtmpBase;
use crate::metrics::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("RTMP handshake failed: {0}")]
    Handshake(String),
    #[error("RTMP session error: {0}")]
    Session(String),
    #[error("server rejected the request: {0}")]
    Rejected(String),
    #[error("bad RTMP chunk stream: {0}")]
    Chunks(#[from] ChunkError),
    #[error("server closed the connection")]
    Eof,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl RtmpError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RtmpError::Connect { .. } => ErrorKind::Connect,
            RtmpError::Timeout(_) => ErrorKind::Timeout,
            RtmpError::Handshake(_) | RtmpError::Session(_) => ErrorKind::Protocol,
            RtmpError::Chunks(ChunkError::TooLarge { .. }) => ErrorKind::TooLarge,
            RtmpError::Chunks(_) => ErrorKind::Protocol,
            RtmpError::Rejected(_) => ErrorKind::Rejected,
            RtmpError::Eof => ErrorKind::Eof,
            // A reset or abort by the server ends the stream just like a close does.
            RtmpError::Io(e) if is_peer_close(e) => ErrorKind::Eof,
            RtmpError::Io(_) => ErrorKind::Io,
        }
    }
}

fn is_peer_close(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
    )
}

/// Bytes read from the socket at a time. Each viewer holds one such buffer for its whole session,
/// so it is small: at 2 Mbit/s a read rarely finds more than a frame (a keyframe of tens of KB
/// takes two or three reads). 64 KiB here was a quarter of an RTMP viewer's memory.
const READ_BUF_BYTES: usize = 16 * 1024;

pub struct RtmpConnection {
    stream: TcpStream,
    /// Sees every byte from the server before rml_rtmp does (see `chunk_guard`). With
    /// `tap_media` it also keeps the media for [`Self::next_media`]: xiu 0.14 sends media on
    /// message stream 0 while its `createStream` answered stream 1, and rml_rtmp's
    /// `ClientSession` silently drops media from a stream it did not open. ffmpeg accepts such
    /// media, so a viewer does too; the guard's tap sees it regardless of the stream id.
    guard: ChunkGuard,
    session: ClientSession,
    events: VecDeque<ClientSessionEvent>,
    read_buf: Box<[u8]>,
    bytes_read: u64,
}

/// How long a connection took to set up, for the connect histograms.
pub struct Setup {
    /// TCP connect + handshake + `connect` accepted.
    pub connected_in: Duration,
}

impl RtmpConnection {
    /// Connects, handshakes and sends `connect(app)`, waiting for it to be accepted.
    ///
    /// `tap_media` keeps every audio/video message for [`Self::next_media`] (players);
    /// `max_message` bounds what one message from the server may announce (`too_large` beyond).
    pub async fn open(
        base: &RtmpBase,
        app: &str,
        timeout: Duration,
        tap_media: bool,
        max_message: u32,
    ) -> Result<(Self, Setup), RtmpError> {
        let started = Instant::now();
        let deadline = crate::session::tokio_deadline(tokio::time::Instant::now(), timeout);
        let addr = base.addr();
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(&addr))
            .await
            .map_err(|_| RtmpError::Timeout("TCP connect"))?
            .map_err(|source| RtmpError::Connect { addr, source })?;
        stream.set_nodelay(true)?;
        let (stream, leftover) = tokio::time::timeout_at(deadline, handshake(stream))
            .await
            .map_err(|_| RtmpError::Timeout("RTMP handshake"))??;

        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(base.tc_url(app));
        let (session, initial) =
            ClientSession::new(config).map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        let guard = if tap_media {
            ChunkGuard::with_media_tap(max_message)
        } else {
            ChunkGuard::new(max_message)
        };
        let mut conn = RtmpConnection {
            stream,
            guard,
            session,
            events: VecDeque::new(),
            read_buf: vec![0; READ_BUF_BYTES].into_boxed_slice(),
            bytes_read: 0,
        };
        conn.apply(initial).await?;
        if !leftover.is_empty() {
            conn.handle_bytes(&leftover).await?;
        }
        let request = conn
            .session
            .request_connection(app.to_string())
            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        conn.apply(vec![request]).await?;
        tokio::time::timeout_at(deadline, async {
            loop {
                match conn.next_event().await? {
                    ClientSessionEvent::ConnectionRequestAccepted => return Ok(()),
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(RtmpError::Rejected(description));
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| RtmpError::Timeout("connect accepted"))??;
        Ok((
            conn,
            Setup {
                connected_in: started.elapsed(),
            },
        ))
    }

    /// Requests to publish `stream` live and waits for `Publish.Start`.
    pub async fn publish(&mut self, stream: &str, timeout: Duration) -> Result<(), RtmpError> {
        let r = self
            .session
            .request_publishing(stream.to_string(), PublishRequestType::Live)
            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        self.apply(vec![r]).await?;
        self.wait_for(timeout, "publish accepted", |e| {
            matches!(e, ClientSessionEvent::PublishRequestAccepted)
        })
        .await
    }

    /// Requests playback of `stream` and waits for `Play.Start`. xiu says `Play.Start` before it
    /// checks that the stream exists, so callers must still check that media arrives.
    pub async fn play(&mut self, stream: &str, timeout: Duration) -> Result<(), RtmpError> {
        let r = self
            .session
            .request_playback(stream.to_string())
            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        self.apply(vec![r]).await?;
        self.wait_for(timeout, "play accepted", |e| {
            matches!(e, ClientSessionEvent::PlaybackRequestAccepted)
        })
        .await
    }

    async fn wait_for(
        &mut self,
        timeout: Duration,
        what: &'static str,
        done: impl Fn(&ClientSessionEvent) -> bool,
    ) -> Result<(), RtmpError> {
        tokio::time::timeout(timeout, async {
            loop {
                let event = self.next_event().await?;
                if done(&event) {
                    return Ok(());
                }
                if let ClientSessionEvent::UnhandleableOnStatusCode { code } = &event
                    && (code.contains("Failed")
                        || code.contains("BadName")
                        || code.contains("Rejected"))
                {
                    return Err(RtmpError::Rejected(code.clone()));
                }
            }
        })
        .await
        .map_err(|_| RtmpError::Timeout(what))?
    }

    /// The next event raised by the session, reading from the socket as needed.
    /// Cancel-safe: an event is only removed from the queue when returned.
    pub async fn next_event(&mut self) -> Result<ClientSessionEvent, RtmpError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            self.read_once().await?;
        }
    }

    /// The next audio/video message (needs `tap_media`; its `data` is the body's head), reading
    /// as needed. Without the tap this waits for the connection to end. Session events raised
    /// meanwhile are dropped: a playing viewer only needs the session to answer the server
    /// (acks, pings), which it does while reading.
    pub async fn next_media(&mut self) -> Result<MediaMessage, RtmpError> {
        loop {
            self.events.clear();
            if let Some(m) = self.guard.next_media() {
                return Ok(m);
            }
            self.read_once().await?;
        }
    }

    /// Reads whatever the server sent and processes it (acks, pings, events).
    async fn read_once(&mut self) -> Result<(), RtmpError> {
        let n = self.stream.read(&mut self.read_buf).await?;
        if n == 0 {
            return Err(RtmpError::Eof);
        }
        self.bytes_read += n as u64;
        self.handle_read(n).await
    }

    /// Waits until the socket has something to read, without consuming it. Used in `select!`
    /// against the publisher's frame timer: it is cancel-safe, unlike a read.
    pub async fn readable(&self) -> Result<(), RtmpError> {
        self.stream.readable().await.map_err(RtmpError::Io)
    }

    /// Reads and processes what is available without blocking (after `readable`).
    pub async fn drain_input(&mut self) -> Result<(), RtmpError> {
        match self.stream.try_read(&mut self.read_buf) {
            Ok(0) => Err(RtmpError::Eof),
            Ok(n) => {
                self.bytes_read += n as u64;
                self.handle_read(n).await
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(RtmpError::Io(e)),
        }
    }

    /// Takes the events raised so far (e.g. while draining input during publishing).
    pub fn take_events(&mut self) -> impl Iterator<Item = ClientSessionEvent> + '_ {
        self.events.drain(..)
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Processes the first `n` bytes of the read buffer, in place (no copy per read).
    async fn handle_read(&mut self, n: usize) -> Result<(), RtmpError> {
        let results = Self::feed(&mut self.guard, &mut self.session, &self.read_buf[..n])?;
        self.apply(results).await
    }

    async fn handle_bytes(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        let results = Self::feed(&mut self.guard, &mut self.session, bytes)?;
        self.apply(results).await
    }

    fn feed(
        guard: &mut ChunkGuard,
        session: &mut ClientSession,
        bytes: &[u8],
    ) -> Result<Vec<ClientSessionResult>, RtmpError> {
        // Checked first: rml_rtmp panics on some chunk streams it cannot follow.
        guard.check(bytes)?;
        session
            .handle_input(bytes)
            .map_err(|e| RtmpError::Session(format!("{e:?}")))
    }

    async fn apply(&mut self, results: Vec<ClientSessionResult>) -> Result<(), RtmpError> {
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(packet) => {
                    self.stream.write_all(&packet.bytes).await?
                }
                ClientSessionResult::RaisedEvent(e) => self.events.push_back(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    /// Sends one FLV-style video tag body. Returns the bytes written.
    pub async fn send_video(&mut self, data: Bytes, timestamp_ms: u32) -> Result<usize, RtmpError> {
        let r = self
            .session
            .publish_video_data(data, RtmpTimestamp::new(timestamp_ms), false)
            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        self.send_packet(r).await
    }

    pub async fn send_audio(&mut self, data: Bytes, timestamp_ms: u32) -> Result<usize, RtmpError> {
        let r = self
            .session
            .publish_audio_data(data, RtmpTimestamp::new(timestamp_ms), false)
            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        self.send_packet(r).await
    }

    async fn send_packet(&mut self, r: ClientSessionResult) -> Result<usize, RtmpError> {
        match r {
            ClientSessionResult::OutboundResponse(packet) => {
                self.stream.write_all(&packet.bytes).await?;
                Ok(packet.bytes.len())
            }
            _ => Ok(0),
        }
    }
}

/// Client side of the RTMP handshake; returns bytes the server sent after it.
async fn handshake(mut stream: TcpStream) -> Result<(TcpStream, Vec<u8>), RtmpError> {
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| RtmpError::Handshake(format!("{e:?}")))?;
    stream.write_all(&p0p1).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(RtmpError::Eof);
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| RtmpError::Handshake(format!("{e:?}")))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                if !response_bytes.is_empty() {
                    stream.write_all(&response_bytes).await?;
                }
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                if !response_bytes.is_empty() {
                    stream.write_all(&response_bytes).await?;
                }
                return Ok((stream, remaining_bytes));
            }
        }
    }
}

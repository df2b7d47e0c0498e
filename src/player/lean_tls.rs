//! A TLS client stream that holds no buffer while its viewer waits for data: rustls' unbuffered
//! connection, fed one TLS record at a time from the socket.
//!
//! Why not tokio-rustls: its `ClientConnection` keeps a receive buffer per connection that rustls
//! grows by 4 KiB steps to hold a whole record (a 16 KiB record takes ~20 KiB) and shrinks only on
//! the next read, so between frames each HTTPS viewer held up to ~12 KiB for the 8 KiB records
//! of the benchmark's terminator, reallocated at every record; that made an HTTPS-FLV viewer cost
//! ~1.8x a plain one. Here the encrypted record is read whole into a buffer of its exact size, the
//! plaintext rustls hands over is kept until the viewer has consumed it, and both buffers are
//! freed as soon as the stream would wait on the socket.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::UnbufferedClientConnection;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use tokio_rustls::rustls::{self, ClientConfig};

/// The TLS record header: type, version, length (RFC 8446 §5.1).
const RECORD_HEADER: usize = 5;

/// The least a read asks for: as rustls reads, so that small records (audio frames) come several
/// to a read, and a read that gets less than it asked for tells tokio the socket is drained (no
/// extra `recv` that would block). A big record is read no further than its end.
const READ_AHEAD: usize = 4096;

pub struct LeanTlsStream {
    tcp: TcpStream,
    conn: UnbufferedClientConnection,
    /// Encrypted bytes read and not yet taken by rustls: the record being read (and, while a
    /// handshake message spans records, the records before it).
    incoming: Vec<u8>,
    /// Decrypted bytes not yet consumed, from `consumed` on.
    plaintext: Vec<u8>,
    consumed: usize,
    /// Encrypted bytes to send, from `sent` on.
    outgoing: Vec<u8>,
    sent: usize,
    /// The peer closed (close_notify, or the socket's end).
    eof: bool,
}

/// Where processing what was read left the connection.
enum Next {
    /// Decrypted data is ready.
    Plaintext,
    /// Nothing more can be done without reading from the socket.
    NeedInput,
    /// The peer closed the TLS session.
    Closed,
}

/// A rustls failure as an I/O error, as tokio-rustls reports it (so `player::io_failure` finds
/// it and names a certificate failure as such).
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Bytes still missing from the record being read at the end of `incoming`: records before it
/// are complete and left to rustls (a handshake message may span them).
fn missing_for_next_record(incoming: &[u8]) -> usize {
    let mut rest = incoming;
    loop {
        if rest.len() < RECORD_HEADER {
            return RECORD_HEADER - rest.len();
        }
        let record = RECORD_HEADER + u16::from_be_bytes([rest[3], rest[4]]) as usize;
        if rest.len() < record {
            return record - rest.len();
        }
        rest = &rest[record..];
    }
}

impl LeanTlsStream {
    /// The TLS handshake over `tcp` with the server named `name`.
    pub async fn connect(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        tcp: TcpStream,
    ) -> io::Result<LeanTlsStream> {
        let conn = UnbufferedClientConnection::new(config, name).map_err(tls_error)?;
        let mut stream = LeanTlsStream {
            tcp,
            conn,
            incoming: Vec::new(),
            plaintext: Vec::new(),
            consumed: 0,
            outgoing: Vec::new(),
            sent: 0,
            eof: false,
        };
        std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
        Ok(stream)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let cut_short = || io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        loop {
            // What rustls queued (our Finished included) goes out before anything else.
            ready!(self.poll_send(cx))?;
            if !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            match self.process()? {
                Next::Closed => return Poll::Ready(Err(cut_short())),
                Next::NeedInput if self.sent == self.outgoing.len() => {
                    if ready!(self.poll_read_tls(cx))? == 0 {
                        return Poll::Ready(Err(cut_short()));
                    }
                }
                Next::NeedInput | Next::Plaintext => {}
            }
        }
    }

    /// Runs rustls over what has been read until it produces plaintext, needs more input or sees
    /// the session closed; handshake records it produces are queued in `outgoing`.
    fn process(&mut self) -> io::Result<Next> {
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let next = match state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        if self.consumed == self.plaintext.len() {
                            self.plaintext.clear();
                            self.consumed = 0;
                        }
                        self.plaintext.extend_from_slice(record.payload);
                    }
                    Some(Next::Plaintext)
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    let Ok(()) =
                        append_grown(&mut self.outgoing, 0, |room| match encode.encode(room) {
                            Ok(n) => Ok(n),
                            Err(EncodeError::InsufficientSize(InsufficientSizeError {
                                required_size,
                            })) => Err(Grow::<std::convert::Infallible>::To(required_size)),
                            Err(EncodeError::AlreadyEncoded) => Ok(0),
                        });
                    None
                }
                // Sent before the next read (`poll_send`): rustls only needs to know it is due.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    None
                }
                ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => {
                    Some(Next::NeedInput)
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => Some(Next::Closed),
                _ => {
                    let unexpected = "TLS state this client does not handle (early data)";
                    return Err(io::Error::new(io::ErrorKind::InvalidData, unexpected));
                }
            };
            if discard > 0 {
                self.incoming.drain(..discard);
            }
            if let Some(next) = next {
                return Ok(next);
            }
        }
    }

    /// Nothing read is left unconsumed: no plaintext, no part of a record.
    pub fn is_drained(&self) -> bool {
        self.consumed == self.plaintext.len() && self.incoming.is_empty()
    }

    /// Reads from the socket what the record being read lacks, or [`READ_AHEAD`] when that is
    /// more (small records, several to a read, as rustls reads them). Ready(0) at the socket's end.
    fn poll_read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let start = self.incoming.len();
        let want = missing_for_next_record(&self.incoming).max(READ_AHEAD);
        self.incoming.resize(start + want, 0);
        let mut buf = ReadBuf::new(&mut self.incoming[start..]);
        let polled = Pin::new(&mut self.tcp).poll_read(cx, &mut buf);
        let n = buf.filled().len();
        self.incoming.truncate(start + n);
        match polled {
            Poll::Pending => {
                self.release_idle_buffers();
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => Poll::Ready(Ok(n)),
        }
    }

    /// While the stream waits on the socket it holds no buffer that has nothing in it.
    fn release_idle_buffers(&mut self) {
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        if self.consumed == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.consumed = 0;
        }
        if self.sent == self.outgoing.len() {
            self.outgoing = Vec::new();
            self.sent = 0;
        }
    }

    /// Sends what is queued in `outgoing`.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.outgoing.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Encrypts `data` into `outgoing`.
    fn encrypt(&mut self, data: &[u8]) -> io::Result<()> {
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let encrypted = match state.map_err(tls_error)? {
                ConnectionState::WriteTraffic(mut traffic) => {
                    append_grown(&mut self.outgoing, data.len() + 64, |room| {
                        match traffic.encrypt(data, room) {
                            Ok(n) => Ok(n),
                            Err(EncryptError::InsufficientSize(InsufficientSizeError {
                                required_size,
                            })) => Err(Grow::To(required_size)),
                            Err(e) => Err(Grow::Fail(io::Error::other(e.to_string()))),
                        }
                    })?;
                    true
                }
                ConnectionState::ReadTraffic(mut traffic) => {
                    // Data that came before the request is kept for the reader.
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        self.plaintext.extend_from_slice(record.payload);
                    }
                    false
                }
                ConnectionState::EncodeTlsData(_) | ConnectionState::TransmitTlsData(_) => {
                    // Only in a handshake, which `connect` completed.
                    let unexpected = "TLS handshake data after the handshake";
                    return Err(io::Error::new(io::ErrorKind::InvalidData, unexpected));
                }
                _ => {
                    let closed = "the TLS session is closed";
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, closed));
                }
            };
            if discard > 0 {
                self.incoming.drain(..discard);
            }
            if encrypted {
                return Ok(());
            }
        }
    }
}

impl AsyncRead for LeanTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for LeanTlsStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        loop {
            if this.consumed < this.plaintext.len() || this.eof {
                return Poll::Ready(Ok(&this.plaintext[this.consumed..]));
            }
            // Whatever rustls queued (a key update's answer, an alert) goes before waiting.
            ready!(this.poll_send(cx))?;
            match this.process()? {
                Next::Plaintext => continue,
                Next::Closed => {
                    this.eof = true;
                    this.release_idle_buffers();
                }
                Next::NeedInput => {
                    if ready!(this.poll_read_tls(cx))? == 0 {
                        // The socket ended without close_notify: the caller decides what that
                        // means, as with tokio-rustls.
                        this.eof = true;
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.consumed = (this.consumed + amt).min(this.plaintext.len());
    }
}

impl AsyncWrite for LeanTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // One request at a time: what is queued goes first, so `outgoing` stays one record.
        ready!(this.poll_send(cx))?;
        this.encrypt(buf)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// Why a write into [`append_grown`]'s room did not fit or failed.
enum Grow<E> {
    /// rustls needs this many bytes of room: try again with them.
    To(usize),
    Fail(E),
}

/// Appends to `out` what `write` puts into `room` bytes of space at its end (rustls' unbuffered
/// API writes into a caller's slice and says how much it needs when the slice is too small):
/// the space is grown to what `write` asks for and it is tried again; nothing is left behind
/// when it fails.
fn append_grown<E>(
    out: &mut Vec<u8>,
    mut room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Grow<E>>,
) -> Result<(), E> {
    loop {
        let start = out.len();
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Grow::To(needed)) => {
                out.truncate(start);
                room = needed;
            }
            Err(Grow::Fail(e)) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_grows_the_room_to_what_the_writer_asks_and_leaves_nothing_on_failure() {
        let mut out = b"ab".to_vec();
        let mut tries = Vec::new();
        let r: Result<(), ()> = append_grown(&mut out, 1, |room| {
            tries.push(room.len());
            if room.len() < 3 {
                return Err(Grow::To(3));
            }
            room[..3].copy_from_slice(b"cde");
            Ok(3)
        });
        assert_eq!((r, tries, &out[..]), (Ok(()), vec![1, 3], &b"abcde"[..]));
        let r = append_grown(&mut out, 8, |_| Err(Grow::Fail("refused")));
        assert_eq!((r, &out[..]), (Err("refused"), &b"abcde"[..]));
    }
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    /// A TLS server (tokio-rustls, self-signed for "localhost") that reads a request, answers
    /// `body` in writes of each of `pieces` bytes in turn (one TLS record each), then closes with
    /// close_notify. Returns its port and its certificate.
    async fn server(body: Vec<u8>, pieces: Vec<usize>) -> (u16, String) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let pem = cert.cert.pem();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, body, pieces) = (acceptor.clone(), body.clone(), pieces.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = [0u8; 64];
                    if tls.read(&mut request).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut rest = body.as_slice();
                    for size in pieces.iter().cycle() {
                        if rest.is_empty() {
                            break;
                        }
                        let (piece, after) = rest.split_at((*size).min(rest.len()));
                        tls.write_all(piece).await.unwrap();
                        tls.flush().await.unwrap();
                        rest = after;
                    }
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, pem)
    }

    async fn connect(port: u16, config: ClientConfig) -> io::Result<LeanTlsStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        LeanTlsStream::connect(Arc::new(config), name, tcp).await
    }

    #[tokio::test]
    async fn records_of_any_size_arrive_whole_and_in_order_and_nothing_is_held_after() {
        // Records from 1 byte to the 16 KiB maximum (a 20 KiB write is two records).
        let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (port, pem) = server(body.clone(), vec![1, 300, 4096, 20_000, 5, 16_384]).await;
        let config = crate::player::tls::client_config(Some(pem.as_bytes()), false).unwrap();
        let mut stream = connect(port, config).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        stream.flush().await.unwrap();
        let mut got = Vec::new();
        loop {
            let arrived = stream.fill_buf().await.unwrap();
            if arrived.is_empty() {
                break;
            }
            let n = arrived.len();
            // Never more than a record's plaintext at a time.
            assert!(n <= 16_384, "{n}");
            got.extend_from_slice(arrived);
            stream.consume(n);
        }
        assert!(
            got == body,
            "{} of {} bytes, or out of order",
            got.len(),
            body.len()
        );
        assert!(stream.is_drained());
        assert_eq!(stream.incoming.capacity() + stream.plaintext.capacity(), 0);
    }

    #[tokio::test]
    async fn an_untrusted_certificate_fails_the_handshake_as_rustls_says() {
        let (port, _) = server(b"x".to_vec(), vec![1]).await;
        let config = crate::player::tls::client_config(None, false).unwrap();
        let e = connect(port, config).await.err().expect("refused");
        let (kind, detail) =
            crate::player::io_failure("TLS handshake", &e, crate::metrics::ErrorKind::Connect);
        assert_eq!(kind, crate::metrics::ErrorKind::Tls);
        assert!(
            detail.starts_with("certificate verification failed"),
            "{detail}"
        );
    }

    #[test]
    fn reads_stop_at_the_end_of_the_record_being_read() {
        assert_eq!(missing_for_next_record(&[]), 5);
        assert_eq!(missing_for_next_record(&[23, 3, 3]), 2);
        // A header announcing 300 bytes, 10 of them here.
        let mut wire = vec![23, 3, 3, 1, 44];
        wire.extend_from_slice(&[0; 10]);
        assert_eq!(missing_for_next_record(&wire), 290);
        // That record complete: the next one's header.
        wire.extend_from_slice(&[0; 290]);
        assert_eq!(missing_for_next_record(&wire), 5);
        wire.extend_from_slice(&[22, 3, 3, 0]);
        assert_eq!(missing_for_next_record(&wire), 1);
    }
}

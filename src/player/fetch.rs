//! GETs of an HLS viewer (its playlist and segments) over one kept-alive HTTP/1.1 connection,
//! opened as the HTTP-FLV viewer opens its own (`target`), each response read through a fixed
//! buffer (plain TCP) or rustls' own (TLS) and parsed with `http1`.
//!
//! Why not reqwest: an HLS viewer spends most of its time between requests, and reqwest/hyper
//! kept each pooled connection's read and write buffers and its connection task meanwhile (HLS
//! viewers cost ~3.5x a plain HTTP-FLV viewer). Here a plain connection holds no buffer between
//! requests: the read buffer lives only while a response is read.

use super::http1::{BodyDecoder, BodyKind, parse_head};
use super::io_failure;
use super::target::{HttpStream, Target, connect};
use crate::metrics::ErrorKind;
use crate::session::tokio_deadline;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// Read buffer of a plain connection while a response is read (as the plain HTTP-FLV viewer's).
const READ_BUF: usize = 8 * 1024;

/// How a GET ended: its 200 body all read (and fed to the caller's sink) after the time given,
/// or another status (whose body is not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    Done(Duration),
    Status(u16),
}

/// A failed fetch: the kind counted and the detail kept.
pub type FetchError = (ErrorKind, String);

/// Where a GET hands a 200's body. The limit is checked before `take`.
pub trait BodySink {
    /// The length the response announced (within the limit), before any chunk.
    fn expect(&mut self, _content_length: Option<u64>) {}
    fn take(&mut self, chunk: &[u8]);
}

/// A viewer's HTTP client: at most one connection, kept between GETs while the server keeps it
/// and the next URL is on the same server.
pub struct Fetcher<'t> {
    tls: &'t TlsConnector,
    kept: Option<(Target, HttpStream)>,
}

/// How an exchange on a connection failed.
enum ExchangeError {
    /// The connection ended before any byte of the answer: a kept-alive connection the server
    /// closed meanwhile, worth one retry on a new one.
    ClosedUnanswered,
    Failed(FetchError),
}

/// What an exchange gave: the status (a 200's body all read), and whether its connection may
/// carry the next request.
struct Exchanged {
    status: u16,
    reusable: bool,
}

impl<'t> Fetcher<'t> {
    pub fn new(tls: &'t TlsConnector) -> Self {
        Fetcher { tls, kept: None }
    }

    /// GETs `url` within `timeout` (connecting included), handing a 200's body to `sink` as it
    /// streams in and giving up with `too_large` past `limit` bytes: a server that never ends a
    /// body cannot make a viewer read more, and the viewer holds no more of it than its sink
    /// keeps. `what` names the resource in failures ("playlist", "segment").
    pub async fn get(
        &mut self,
        url: &str,
        timeout: Duration,
        limit: u64,
        what: &str,
        sink: &mut impl BodySink,
    ) -> Result<Fetch, FetchError> {
        let started = Instant::now();
        let by = tokio_deadline(tokio::time::Instant::now(), timeout);
        let target =
            Target::parse(url).map_err(|e| (ErrorKind::Protocol, format!("{what} {e}")))?;
        let request = target.request(true);
        let read = async {
            let reused = self
                .kept
                .as_ref()
                .is_some_and(|(t, _)| t.same_server(&target));
            let first = self
                .exchange(&target, &request, by, limit, what, url, sink)
                .await;
            let result = match first {
                // Once only: a new connection that closes unanswered is the server's answer.
                Err(ExchangeError::ClosedUnanswered) if reused => {
                    self.exchange(&target, &request, by, limit, what, url, sink)
                        .await
                }
                other => other,
            };
            match result {
                Ok(Exchanged { status: 200, .. }) => Ok(Fetch::Done(started.elapsed())),
                Ok(Exchanged { status, .. }) => Ok(Fetch::Status(status)),
                Err(ExchangeError::Failed(e)) => Err(e),
                Err(ExchangeError::ClosedUnanswered) => Err((
                    ErrorKind::Eof,
                    format!("{what} {url}: the server closed the connection without answering"),
                )),
            }
        };
        // Boxed: the exchange (connect and TLS handshake included) is the largest state of a
        // viewer's session, and an HLS viewer is between requests most of the time. On the
        // heap it exists only while a request is under way instead of inline in the session's
        // future for the whole session.
        let answer = tokio::time::timeout_at(by, Box::pin(read)).await;
        answer.unwrap_or_else(|_| {
            // Whatever was half read is lost with the connection.
            self.kept = None;
            Err((
                ErrorKind::Timeout,
                format!("{what} {url}: no complete answer in {timeout:?}"),
            ))
        })
    }

    /// One request and its response on the kept connection (a new one when there is none for
    /// this server), keeping the connection afterwards only if it may carry the next request.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &mut self,
        target: &Target,
        request: &str,
        by: tokio::time::Instant,
        limit: u64,
        what: &str,
        url: &str,
        sink: &mut impl BodySink,
    ) -> Result<Exchanged, ExchangeError> {
        let (kept_target, mut stream) = match self.kept.take() {
            Some((t, stream)) if t.same_server(target) => (t, stream),
            _ => {
                let stream = connect(self.tls, target, by)
                    .await
                    .map_err(|(kind, detail)| {
                        ExchangeError::Failed((kind, format!("{what} {url}: {detail}")))
                    })?;
                (target.clone(), stream)
            }
        };
        let response = Response { limit, what, url };
        let exchanged = match &mut stream {
            HttpStream::Plain(tcp) => {
                // Only for this response: between requests a plain connection holds no buffer.
                let mut reader = tokio::io::BufReader::with_capacity(READ_BUF, tcp);
                let mut exchanged = response.exchange(&mut reader, request, sink).await?;
                // Bytes past the response were not asked for: the connection is out of step.
                exchanged.reusable &= reader.buffer().is_empty();
                exchanged
            }
            HttpStream::Tls(tls) => {
                let mut exchanged = response.exchange(&mut **tls, request, sink).await?;
                exchanged.reusable &= tls.is_drained();
                exchanged
            }
        };
        if exchanged.reusable {
            self.kept = Some((kept_target, stream));
        }
        Ok(exchanged)
    }
}

/// One GET's response, read from whatever stream carries it.
struct Response<'a> {
    limit: u64,
    what: &'a str,
    url: &'a str,
}

impl Response<'_> {
    fn failed(&self, kind: ErrorKind, why: impl std::fmt::Display) -> ExchangeError {
        ExchangeError::Failed((kind, format!("{} {}: {why}", self.what, self.url)))
    }

    fn io_failed(&self, doing: &str, e: &std::io::Error) -> ExchangeError {
        let doing = format!("{} {}: {doing}", self.what, self.url);
        ExchangeError::Failed(io_failure(&doing, e, ErrorKind::Io))
    }

    fn too_large(&self, bytes: u64) -> ExchangeError {
        let why = format!("{bytes} bytes or more, over the {} allowed", self.limit);
        self.failed(ErrorKind::TooLarge, why)
    }

    /// Sends `request`, then reads the head (gathered across reads) and a 200's body.
    async fn exchange<S: AsyncBufRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        request: &str,
        sink: &mut impl BodySink,
    ) -> Result<Exchanged, ExchangeError> {
        let sent = async {
            stream.write_all(request.as_bytes()).await?;
            // Over TLS the request waits in rustls until then.
            stream.flush().await
        };
        if let Err(e) = sent.await {
            return Err(match e.kind() {
                // A kept-alive connection the server closed meanwhile.
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    ExchangeError::ClosedUnanswered
                }
                _ => self.io_failed("sending the request", &e),
            });
        }

        // The head, gathered across reads (bounded by `http1::MAX_HEAD`); the bytes after it stay
        // in the stream's buffer for the body.
        let mut gathered = Vec::new();
        let head = loop {
            let arrived = match stream.fill_buf().await {
                Ok(arrived) => arrived,
                Err(e) if gathered.is_empty() && is_closed(&e) => {
                    return Err(ExchangeError::ClosedUnanswered);
                }
                Err(e) => return Err(self.io_failed("reading the response head", &e)),
            };
            if arrived.is_empty() {
                return Err(match gathered.is_empty() {
                    true => ExchangeError::ClosedUnanswered,
                    false => self.failed(ErrorKind::Eof, "the response head was cut short"),
                });
            }
            let before = gathered.len();
            gathered.extend_from_slice(arrived);
            let n = arrived.len();
            match parse_head(&gathered) {
                Err(e) => return Err(self.failed(ErrorKind::Protocol, e)),
                Ok(None) => stream.consume(n),
                Ok(Some(head)) => {
                    stream.consume(head.len - before);
                    break head;
                }
            }
        };
        drop(gathered);
        if head.status != 200 {
            // Its body is not read: the connection goes with it.
            return Ok(Exchanged {
                status: head.status,
                reusable: false,
            });
        }
        let content_length = match head.body {
            BodyKind::Length(len) if len > self.limit => return Err(self.too_large(len)),
            BodyKind::Length(len) => Some(len),
            _ => None,
        };
        sink.expect(content_length);
        let mut body = BodyDecoder::new(head.body);
        let mut complete = body.is_empty_and_complete();
        while !complete {
            let arrived = match stream.fill_buf().await {
                Ok(arrived) => arrived,
                Err(e) if body.kind() == BodyKind::Close && is_closed(&e) => &[],
                Err(e) => return Err(self.io_failed("reading the body", &e)),
            };
            if arrived.is_empty() {
                if body.kind() == BodyKind::Close {
                    break;
                }
                return Err(self.failed(ErrorKind::Eof, "the body was cut short"));
            }
            let limit = self.limit;
            let mut total = body.received();
            let step = body
                .decode(arrived, |piece| {
                    total += piece.len() as u64;
                    if total <= limit {
                        sink.take(piece);
                    }
                })
                .map_err(|e| self.failed(ErrorKind::Protocol, e))?;
            if total > limit {
                return Err(self.too_large(total));
            }
            stream.consume(step.used);
            complete = step.complete;
        }
        Ok(Exchanged {
            status: 200,
            reusable: head.keep_alive && body.kind() != BodyKind::Close,
        })
    }
}

/// A connection the peer ended: a TLS server that closes without close_notify, or a reset.
fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, BufReader};
    use tokio::net::TcpListener;

    /// Keeps the whole body, as the playlist sink does.
    #[derive(Default)]
    struct Kept {
        expected: Option<u64>,
        body: Vec<u8>,
    }

    impl BodySink for Kept {
        fn expect(&mut self, content_length: Option<u64>) {
            self.expected = content_length;
        }
        fn take(&mut self, chunk: &[u8]) {
            self.body.extend_from_slice(chunk);
        }
    }

    const RESPONSE: Response<'static> = Response {
        limit: 100,
        what: "segment",
        url: "http://h/s.ts",
    };

    /// The exchange over a stream whose peer answers `wire` (trickled a few bytes at a time)
    /// and then closes; what the sink got.
    async fn exchange(wire: &[u8]) -> (Result<Exchanged, ExchangeError>, Kept) {
        let (client, mut server) = tokio::io::duplex(7);
        let wire = wire.to_vec();
        let serving = tokio::spawn(async move {
            let mut request = [0u8; 64];
            let _ = server.read(&mut request).await;
            let _ = server.write_all(&wire).await;
        });
        let mut sink = Kept::default();
        let mut stream = BufReader::with_capacity(16, client);
        let result = RESPONSE
            .exchange(&mut stream, "GET /\r\n\r\n", &mut sink)
            .await;
        serving.abort();
        (result, sink)
    }

    fn failure(result: Result<Exchanged, ExchangeError>) -> FetchError {
        match result {
            Err(ExchangeError::Failed(e)) => e,
            Err(ExchangeError::ClosedUnanswered) => panic!("closed unanswered"),
            Ok(e) => panic!("answered {}", e.status),
        }
    }

    #[tokio::test]
    async fn bodies_of_every_kind_are_read_to_their_end() {
        let (result, sink) = exchange(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        let exchanged = result.ok().unwrap();
        assert_eq!((exchanged.status, exchanged.reusable), (200, true));
        assert_eq!(
            (sink.expected, sink.body.as_slice()),
            (Some(5), &b"hello"[..])
        );

        let (result, sink) = exchange(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
        )
        .await;
        assert!(result.ok().unwrap().reusable);
        assert_eq!((sink.expected, sink.body.as_slice()), (None, &b"hello"[..]));

        // The server says it closes, or delimits the body by closing: not kept.
        let (result, _) =
            exchange(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                .await;
        assert!(!result.ok().unwrap().reusable);
        let (result, sink) = exchange(b"HTTP/1.1 200 OK\r\n\r\nhello").await;
        assert!(!result.ok().unwrap().reusable);
        assert_eq!(sink.body, b"hello");

        // Another status: its body is not read and the connection is not kept.
        let (result, sink) =
            exchange(b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nno!").await;
        let exchanged = result.ok().unwrap();
        assert_eq!((exchanged.status, exchanged.reusable), (404, false));
        assert!(sink.body.is_empty());
    }

    #[tokio::test]
    async fn bodies_past_the_limit_or_cut_short_fail() {
        // Announced over the limit: refused before any byte of it.
        let (result, sink) = exchange(b"HTTP/1.1 200 OK\r\ncontent-length: 101\r\n\r\n").await;
        let (kind, detail) = failure(result);
        assert_eq!(kind, ErrorKind::TooLarge);
        assert!(
            detail.starts_with("segment http://h/s.ts: 101 bytes"),
            "{detail}"
        );
        assert!(sink.body.is_empty());
        // Not announced, found over the limit: the sink gets no more than the limit.
        let mut wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..30 {
            wire.extend_from_slice(b"a\r\n0123456789\r\n");
        }
        let (result, sink) = exchange(&wire).await;
        assert_eq!(failure(result).0, ErrorKind::TooLarge);
        assert!(sink.body.len() <= 100, "{}", sink.body.len());
        // Closed before its end.
        let (result, _) = exchange(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nhello").await;
        assert_eq!(failure(result).0, ErrorKind::Eof);
        let (result, _) = exchange(b"HTTP/1.1 200 OK\r\ncontent-le").await;
        assert_eq!(failure(result).0, ErrorKind::Eof);
        // Not HTTP.
        let (result, _) = exchange(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        assert_eq!(failure(result).0, ErrorKind::Protocol);
        // Closed without a byte: for the caller to retry on a new connection if it was kept.
        let (result, _) = exchange(b"").await;
        assert!(matches!(result, Err(ExchangeError::ClosedUnanswered)));
    }

    /// A server answering `body` to every request, closing each connection after `per_connection`
    /// answers; counts its connections.
    async fn server(per_connection: usize) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    for _ in 0..per_connection {
                        let mut request = Vec::new();
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(wire).await.is_err() {
                            return;
                        }
                    }
                    // Closed without a word, as a server whose keep-alive timeout passed.
                });
            }
        });
        (port, connections)
    }

    fn connector() -> TlsConnector {
        let config = crate::player::tls::client_config(None, false).unwrap();
        TlsConnector::from(Arc::new(config))
    }

    #[tokio::test]
    async fn gets_share_one_connection_and_survive_its_quiet_close() {
        let tls = connector();
        let mut fetcher = Fetcher::new(&tls);
        let second = Duration::from_secs(5);
        let (port, connections) = server(usize::MAX).await;
        for path in ["a.m3u8", "a-1.ts", "a.m3u8", "a-2.ts"] {
            let url = format!("http://127.0.0.1:{port}/live/{path}");
            let mut sink = Kept::default();
            let answer = fetcher.get(&url, second, 100, "segment", &mut sink).await;
            assert!(matches!(answer, Ok(Fetch::Done(_))), "{answer:?}");
            assert_eq!(sink.body, b"ok");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);

        // A server that closes after each answer: the next GET notices and reconnects once.
        let (port, connections) = server(1).await;
        for _ in 0..3 {
            let url = format!("http://127.0.0.1:{port}/live/a.m3u8");
            let answer = fetcher
                .get(&url, second, 100, "playlist", &mut Kept::default())
                .await;
            assert!(matches!(answer, Ok(Fetch::Done(_))), "{answer:?}");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 3);

        // Nobody listening: a connect failure, named.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/a.m3u8", closed.local_addr().unwrap());
        drop(closed);
        let (kind, detail) = fetcher
            .get(&url, second, 100, "playlist", &mut Kept::default())
            .await
            .unwrap_err();
        assert_eq!(kind, ErrorKind::Connect);
        assert!(
            detail.starts_with(&format!("playlist {url}: TCP connect")),
            "{detail}"
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/a.m3u8", listener.local_addr().unwrap());
        let tls = connector();
        let mut fetcher = Fetcher::new(&tls);
        let wait = Duration::from_millis(200);
        let (kind, detail) = fetcher
            .get(&url, wait, 100, "playlist", &mut Kept::default())
            .await
            .unwrap_err();
        assert_eq!(kind, ErrorKind::Timeout);
        assert!(detail.contains("no complete answer in 200ms"), "{detail}");
        drop(listener);
    }
}

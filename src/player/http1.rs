//! The little of HTTP/1.1 a viewer needs, sans I/O: the response head (via `httparse`, the parser
//! hyper itself uses) and its body, delimited by Content-Length, the chunked transfer coding xiu
//! answers HTTP-FLV with, or the connection's end.
//!
//! Why not reqwest: an HTTP-FLV viewer is one endless response, and reqwest/hyper grow each
//! connection's read buffer adaptively up to ~400 KiB with no knob to cap it, which made a viewer
//! cost ~300 KiB; an HLS viewer paid hyper's per-connection buffers and task between its short
//! requests. Reading into a fixed buffer keeps a thousand viewers cheap, over plain TCP and over
//! TLS alike (`player::flv`, `player::fetch`, `player::target`).

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Http1Error {
    #[error("malformed HTTP response head: {0}")]
    Head(String),
    #[error("response head larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("malformed chunked body: {0}")]
    Chunk(&'static str),
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Chunked,
    Length(u64),
    /// Until the server closes the connection.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub body: BodyKind,
    /// Bytes of the head, so the caller can tell where the body starts in its buffer.
    pub len: usize,
    /// The server keeps the connection for another request once this response is over: HTTP/1.1
    /// unless it says `Connection: close`, HTTP/1.0 only when it says `keep-alive`.
    pub keep_alive: bool,
}

pub const MAX_HEAD: usize = 16 * 1024;

/// Parses a response head from the start of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Http1Error> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            Err(Http1Error::HeadTooLarge(MAX_HEAD))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(Http1Error::Head(e.to_string())),
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or(0);
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
            };
            let connection = header("connection").unwrap_or_default();
            let says = |token: &str| connection.split(',').any(|t| t.trim() == token);
            let keep_alive = match response.version {
                Some(0) => says("keep-alive"),
                _ => !says("close"),
            };
            let body = if header("transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
                BodyKind::Chunked
            } else if let Some(n) = header("content-length").and_then(|v| v.parse().ok()) {
                BodyKind::Length(n)
            } else {
                BodyKind::Close
            };
            Ok(Some(Head {
                status,
                body,
                len,
                keep_alive,
            }))
        }
    }
}

/// Incremental decoder of the chunked transfer coding (RFC 9112 §7.1).
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    remaining: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    /// In a chunk extension, until LF.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty one.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

impl ChunkedDecoder {
    /// Decodes `input`, handing payload slices to `out`. Returns true once the last chunk and the
    /// trailer are complete.
    pub fn decode(&mut self, input: &[u8], out: impl FnMut(&[u8])) -> Result<bool, Http1Error> {
        self.decode_counted(input, out).map(|(_, done)| done)
    }

    /// [`decode`](Self::decode), also saying how many bytes of `input` the body took: it stops
    /// at the body's end, so what follows (the next response on a kept-alive connection) is left.
    pub fn decode_counted(
        &mut self,
        input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<(usize, bool), Http1Error> {
        use ChunkState::*;
        let mut i = 0;
        while i < input.len() && self.state != Done {
            let b = input[i];
            match self.state {
                Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).expect("hex digit") as u64;
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(digit))
                            .ok_or(Http1Error::Chunk("chunk size overflows"))?;
                    }
                    b';' | b' ' | b'\t' => self.state = Extension,
                    b'\r' => self.state = SizeLf,
                    b'\n' => self.end_size_line(),
                    _ => return Err(Http1Error::Chunk("bad character in chunk size")),
                },
                Extension => match b {
                    b'\r' => self.state = SizeLf,
                    b'\n' => self.end_size_line(),
                    _ => {}
                },
                SizeLf if b == b'\n' => self.end_size_line(),
                SizeLf => return Err(Http1Error::Chunk("expected LF after chunk size")),
                Data => {
                    let take = (self.remaining as usize).min(input.len() - i);
                    out(&input[i..i + take]);
                    self.remaining -= take as u64;
                    i += take;
                    if self.remaining == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr if b == b'\r' => self.state = DataLf,
                DataCr | DataLf if b == b'\n' => self.state = Size,
                DataCr | DataLf => return Err(Http1Error::Chunk("expected CRLF after chunk data")),
                TrailerStart => match b {
                    b'\r' => self.state = FinalLf,
                    b'\n' => self.state = Done,
                    _ => self.state = TrailerLine,
                },
                TrailerLine => {
                    if b == b'\r' {
                        self.state = TrailerLf
                    } else if b == b'\n' {
                        self.state = TrailerStart
                    }
                }
                TrailerLf if b == b'\n' => self.state = TrailerStart,
                TrailerLf => return Err(Http1Error::Chunk("expected LF in trailer")),
                FinalLf if b == b'\n' => self.state = Done,
                FinalLf => return Err(Http1Error::Chunk("expected LF at end of body")),
                Done => unreachable!("the loop stops at the body's end"),
            }
            i += 1;
        }
        Ok((i, self.state == Done))
    }

    fn end_size_line(&mut self) {
        if self.size == 0 {
            self.state = ChunkState::TrailerStart;
        } else {
            self.remaining = self.size;
            self.size = 0;
            self.state = ChunkState::Data;
        }
    }
}

/// A response body as it arrives, delimited as its head said.
#[derive(Debug)]
pub struct BodyDecoder {
    kind: BodyKind,
    chunked: ChunkedDecoder,
    /// Payload bytes so far (without the chunked coding's framing).
    received: u64,
}

/// What one [`BodyDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyStep {
    /// Bytes of the input that belonged to the body; any after them are not its.
    pub used: usize,
    /// The body is complete (never for a body that lasts until the connection closes).
    pub complete: bool,
}

impl BodyDecoder {
    pub fn new(kind: BodyKind) -> Self {
        BodyDecoder {
            kind,
            chunked: ChunkedDecoder::default(),
            received: 0,
        }
    }

    /// Decodes the bytes that arrived, handing the payload to `out`.
    pub fn decode(
        &mut self,
        arrived: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<BodyStep, Http1Error> {
        let received = &mut self.received;
        match self.kind {
            BodyKind::Chunked => {
                let (used, complete) = self.chunked.decode_counted(arrived, |piece| {
                    *received += piece.len() as u64;
                    out(piece)
                })?;
                Ok(BodyStep { used, complete })
            }
            BodyKind::Length(len) => {
                let rest = len - *received;
                let used = arrived
                    .len()
                    .min(usize::try_from(rest).unwrap_or(usize::MAX));
                if used > 0 {
                    *received += used as u64;
                    out(&arrived[..used]);
                }
                Ok(BodyStep {
                    used,
                    complete: *received == len,
                })
            }
            BodyKind::Close => {
                *received += arrived.len() as u64;
                if !arrived.is_empty() {
                    out(arrived);
                }
                Ok(BodyStep {
                    used: arrived.len(),
                    complete: false,
                })
            }
        }
    }

    /// Whether the body is complete before any byte of it: a Content-Length of 0.
    pub fn is_empty_and_complete(&self) -> bool {
        self.kind == BodyKind::Length(0)
    }

    /// Payload bytes so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn kind(&self) -> BodyKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut d = ChunkedDecoder::default();
        let mut body = Vec::new();
        let mut done = false;
        for c in chunks {
            done = d.decode(c, |p| body.extend_from_slice(p)).unwrap();
        }
        (body, done)
    }

    #[test]
    fn decodes_chunks_split_anywhere() {
        let wire = b"5\r\nhello\r\nB;ext=1\r\n, xiu world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let (body, done) = decode_all(&[wire]);
        assert_eq!(body, b"hello, xiu world");
        assert!(done);
        // One byte at a time gives the same.
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_all(&bytes), (b"hello, xiu world".to_vec(), true));
    }

    #[test]
    fn an_unfinished_stream_is_not_done() {
        let (body, done) = decode_all(&[b"3\r\nabc\r\n4\r\nde"]);
        assert_eq!(body, b"abcde");
        assert!(!done);
    }

    #[test]
    fn rejects_garbage() {
        let mut d = ChunkedDecoder::default();
        assert!(d.decode(b"zz\r\n", |_| {}).is_err());
        let mut d = ChunkedDecoder::default();
        assert!(d.decode(b"2\r\nabX", |_| {}).is_err());
        let mut d = ChunkedDecoder::default();
        assert!(d.decode(b"ffffffffffffffffffff\r\n", |_| {}).is_err());
    }

    #[test]
    fn parses_heads_of_xiu_answers() {
        let ok = b"HTTP/1.1 200 OK\r\naccess-control-allow-origin: *\r\ntransfer-encoding: chunked\r\ndate: x\r\n\r\nBODY";
        let head = parse_head(ok).unwrap().unwrap();
        assert_eq!(
            (head.status, head.body, &ok[head.len..]),
            (200, BodyKind::Chunked, &b"BODY"[..])
        );
        let missing = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            parse_head(missing).unwrap().unwrap().body,
            BodyKind::Length(0)
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nconn").unwrap(), None);
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
        let close = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(close.body, BodyKind::Close);
    }

    #[test]
    fn a_head_says_whether_the_connection_is_kept() {
        let kept = |head: &[u8]| parse_head(head).unwrap().unwrap().keep_alive;
        assert!(kept(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!kept(b"HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n"));
        assert!(!kept(
            b"HTTP/1.1 200 OK\r\nconnection: upgrade, close\r\n\r\n"
        ));
        assert!(!kept(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(kept(b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn a_body_ends_where_its_head_says_and_leaves_what_follows() {
        let next = b"HTTP/1.1 200 OK\r\n";
        // Content-Length, cut anywhere.
        let mut wire = b"0123456789".to_vec();
        wire.extend_from_slice(next);
        for cut in 0..wire.len() {
            let mut body = BodyDecoder::new(BodyKind::Length(10));
            let mut payload = Vec::new();
            let first = body
                .decode(&wire[..cut], |p| payload.extend_from_slice(p))
                .unwrap();
            let second = body
                .decode(&wire[first.used..], |p| payload.extend_from_slice(p))
                .unwrap();
            assert_eq!(payload, b"0123456789", "cut at {cut}");
            assert!(second.complete);
            assert_eq!(first.used + second.used, 10);
            assert_eq!(body.received(), 10);
        }
        // Chunked: the trailer's end is the body's end, byte for byte.
        let mut wire = b"3\r\nabc\r\n0\r\n\r\n".to_vec();
        let body_len = wire.len();
        wire.extend_from_slice(next);
        let mut body = BodyDecoder::new(BodyKind::Chunked);
        let mut payload = Vec::new();
        let step = body
            .decode(&wire, |p| payload.extend_from_slice(p))
            .unwrap();
        assert_eq!((step.used, step.complete), (body_len, true));
        assert_eq!((payload.as_slice(), body.received()), (&b"abc"[..], 3));
        // Until the connection closes: everything is body, and it is never complete.
        let mut body = BodyDecoder::new(BodyKind::Close);
        let step = body.decode(&wire, |_| {}).unwrap();
        assert_eq!((step.used, step.complete), (wire.len(), false));
        // An empty body is complete before it starts.
        assert!(BodyDecoder::new(BodyKind::Length(0)).is_empty_and_complete());
        assert!(!BodyDecoder::new(BodyKind::Chunked).is_empty_and_complete());
    }
}

//! The HTTP/1 response head parser and chunked decoder (`xiuload::player::http1`) as the
//! HTTP-FLV viewer (`player::flv::session`, plain or TLS; HLS viewers' `player::fetch` reads its
//! responses with the same parser) drives them: the response arrives in
//! reads cut as the first byte says, none longer than the viewer's 8 KiB buffer; the head is
//! gathered from the reads until it parses (or is too large), then the body is delimited
//! (chunked, Content-Length or close) and fed to the FLV demuxer in place, keeping only tag heads.
//!
//! Besides not panicking: the head's length lies within what was parsed, and a chunked body
//! decodes to the same bytes (and the same end or error) whether it came in one read or many.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xiuload::flv::demux::FlvDemuxer;
use xiuload::player::http1::{BodyKind, ChunkedDecoder, Http1Error, MAX_HEAD, parse_head};

/// The plain viewer's read buffer (`player::flv::READ_BUF`): no read is longer.
const READ_BUF: usize = 8 * 1024;

/// What the viewer keeps of each tag's body.
use xiuload::player::flv::TAG_HEAD_KEPT;

fuzz_target!(|data: &[u8]| {
    let (cuts, wire) = xiuload_fuzz::split_input(data);
    let mut reads = cuts.reads(wire);

    // The head, gathered from the reads that arrived so far. A read never overfills the buffer:
    // what does not fit stays on the wire (`carry`) for the next one.
    let mut filled: Vec<u8> = Vec::new();
    let mut carry: &[u8] = &[];
    let head = loop {
        let read = match std::mem::take(&mut carry) {
            [] => match reads.next() {
                Some(read) => read,
                None => return,
            },
            rest => rest,
        };
        let (now, later) = read.split_at(read.len().min(READ_BUF));
        carry = later;
        filled.extend_from_slice(now);
        match parse_head(&filled) {
            Ok(Some(head)) => break head,
            Ok(None) => assert!(
                filled.len() < MAX_HEAD,
                "an unfinished head grows without bound"
            ),
            Err(Http1Error::HeadTooLarge(max)) => {
                assert!(filled.len() >= max);
                // What the viewer gathers stays bounded: the limit plus one read.
                assert!(filled.len() < max + READ_BUF);
                return;
            }
            Err(_) => return,
        }
    };
    assert!(head.len <= filled.len());
    if head.status != 200 {
        return;
    }

    // The body: what followed the head in its read, then the later reads.
    let mut body = Body {
        kind: head.body,
        demux: FlvDemuxer::new().keeping_tag_heads(TAG_HEAD_KEPT),
        chunked: ChunkedDecoder::default(),
        total: 0,
        wire: Vec::new(),
        decoded: Vec::new(),
        chunked_result: Ok(false),
    };
    let first = filled[head.len..].to_vec();
    if body.read(&first) && (carry.is_empty() || body.read(carry)) {
        for read in reads {
            if !body.read(read) {
                break;
            }
        }
    }

    if head.body == BodyKind::Chunked {
        // The same body in one piece, up to where the cut decoding stopped.
        let mut once = Vec::new();
        let whole_result =
            ChunkedDecoder::default().decode(&body.wire, |p| once.extend_from_slice(p));
        assert_eq!(
            whole_result, body.chunked_result,
            "cuts changed the chunked decoding"
        );
        assert_eq!(once, body.decoded, "cuts changed the decoded body");
    }
});

/// A response body as the viewer consumes it.
struct Body {
    kind: BodyKind,
    demux: FlvDemuxer,
    chunked: ChunkedDecoder,
    /// Body bytes handed to the demuxer.
    total: u64,
    /// Everything read after the head, as it came.
    wire: Vec<u8>,
    /// What the chunked decoder handed out.
    decoded: Vec<u8>,
    chunked_result: Result<bool, Http1Error>,
}

impl Body {
    /// Takes one read; false once the body is over (or broken).
    fn read(&mut self, read: &[u8]) -> bool {
        self.wire.extend_from_slice(read);
        match self.kind {
            BodyKind::Chunked => {
                let (demux, total, decoded) = (&mut self.demux, &mut self.total, &mut self.decoded);
                self.chunked_result = self.chunked.decode(read, |piece| {
                    decoded.extend_from_slice(piece);
                    *total += piece.len() as u64;
                    let _ = demux.feed(piece, |_| {});
                });
                matches!(self.chunked_result, Ok(false))
            }
            BodyKind::Length(len) => {
                // A Content-Length body is cut at its end, as the viewer does.
                let take = read.len().min(len.saturating_sub(self.total) as usize);
                self.feed(&read[..take]);
                assert!(self.total <= len);
                self.total < len
            }
            BodyKind::Close => {
                self.feed(read);
                true
            }
        }
    }

    fn feed(&mut self, piece: &[u8]) {
        self.total += piece.len() as u64;
        let _ = self.demux.feed(piece, |_| {});
    }
}

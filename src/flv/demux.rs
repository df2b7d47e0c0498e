//! Sans-IO incremental FLV demuxer. Two ways in:
//! - [`FlvDemuxer::push`] then [`FlvDemuxer::next_event`]: owned events, every byte copied once
//!   (the sidecar's relay, which forwards whole tags);
//! - [`FlvDemuxer::feed`]: tags parsed in place from the caller's read buffer, only a tag split
//!   over reads is copied. Viewers use this one: the copy was ~8 % of a viewer's CPU. With
//!   [`FlvDemuxer::keeping_tag_heads`] it hands out only the first bytes of each tag's body and
//!   skips the rest unbuffered, so what it holds does not grow with the stream's biggest tag.

use bytes::{Buf, Bytes, BytesMut};

use super::FlvError;

/// Default cap on a tag body. The FLV size field is 24 bits (< 16 MiB), so
/// this only bites when a caller lowers it; it bounds buffering per tag.
pub const DEFAULT_MAX_TAG_SIZE: usize = 16 * 1024 * 1024;

const HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
const PREV_TAG_SIZE_LEN: usize = 4;
/// Real files use 9; anything much larger is garbage, not an extension.
const MAX_DATA_OFFSET: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    Audio,
    Video,
    Script,
    Other(u8),
}

impl TagKind {
    pub fn from_type(tag_type: u8) -> Self {
        match tag_type {
            8 => TagKind::Audio,
            9 => TagKind::Video,
            18 => TagKind::Script,
            other => TagKind::Other(other),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub kind: TagKind,
    /// 32-bit timestamp: 24-bit field plus the extended (high) byte.
    pub timestamp_ms: u32,
    /// Tag body; shares the demuxer's buffer allocation, no copy.
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvEvent {
    Header { has_audio: bool, has_video: bool },
    Tag(FlvTag),
}

/// A tag parsed in place by [`FlvDemuxer::feed`]: `data` borrows the caller's bytes (or, for a
/// tag that was split over reads, the demuxer's carry-over buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagRef<'a> {
    pub kind: TagKind,
    pub timestamp_ms: u32,
    /// The body, or only its head when the demuxer keeps tag heads.
    pub data: &'a [u8],
    /// The body's whole size, as its header announced.
    pub size: usize,
}

/// The fields of an 11-byte tag header.
struct TagHeader {
    kind: TagKind,
    timestamp_ms: u32,
    size: usize,
}

impl TagHeader {
    fn parse(h: &[u8]) -> TagHeader {
        TagHeader {
            // Bit 5 is the "filter" (encryption) flag; the type is the low 5 bits.
            kind: TagKind::from_type(h[0] & 0x1f),
            // 24-bit timestamp plus the extended (high) byte.
            timestamp_ms: u32::from_be_bytes([h[7], h[4], h[5], h[6]]),
            size: u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize,
        }
    }

    /// The header, refused when it announces more than `max` bytes of body.
    fn checked(h: &[u8], max: usize) -> Result<TagHeader, FlvError> {
        let header = TagHeader::parse(h);
        if header.size > max {
            return Err(FlvError::TagTooLarge {
                size: header.size,
                max,
            });
        }
        Ok(header)
    }

    /// Header, body and the PreviousTagSize after it.
    fn total(&self) -> usize {
        TAG_HEADER_LEN + self.size + PREV_TAG_SIZE_LEN
    }
}

/// The fields of the FLV file header.
struct FileHeader {
    has_audio: bool,
    has_video: bool,
    data_offset: u32,
}

/// Parses the file header from the start of `b`; `Ok(None)` when more bytes are needed. The
/// signature is checked on the first byte, so that a wrong URL (an HTML error page) fails fast.
fn parse_file_header(b: &[u8]) -> Result<Option<FileHeader>, FlvError> {
    let seen = b.len().min(3);
    if b[..seen] != b"FLV"[..seen] {
        let mut sig = [0u8; 3];
        sig[..seen].copy_from_slice(&b[..seen]);
        return Err(FlvError::BadSignature(sig));
    }
    if b.len() < HEADER_LEN {
        return Ok(None);
    }
    let data_offset = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
    if !(HEADER_LEN as u32..=MAX_DATA_OFFSET).contains(&data_offset) {
        return Err(FlvError::BadHeaderSize(data_offset));
    }
    Ok(Some(FileHeader {
        has_audio: b[4] & 0x04 != 0,
        has_video: b[4] & 0x01 != 0,
        data_offset,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    /// Skipping the rest of the header plus PreviousTagSize0.
    Skip(usize),
    Tag,
}

#[derive(Debug)]
pub struct FlvDemuxer {
    /// What `push` received and `next_event` has not consumed.
    buf: BytesMut,
    state: State,
    max_tag_size: usize,
    /// Most bytes of a tag's body `feed` hands out; the rest is skipped.
    head_limit: usize,
    /// `feed`'s bytes of the file header, or of a tag split over reads: its header, the head of
    /// its body and its PreviousTagSize. Never more than one tag's worth.
    carry: Vec<u8>,
    /// Bytes of the split tag `feed` has consumed (kept or skipped); 0 between tags.
    tag_read: usize,
    failed: Option<FlvError>,
    prev_tag_size_mismatches: u64,
}

impl Default for FlvDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvDemuxer {
    /// A demuxer expecting a stream that starts with the FLV file header.
    pub fn new() -> Self {
        Self::with_max_tag_size(DEFAULT_MAX_TAG_SIZE)
    }

    pub fn with_max_tag_size(max_tag_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            state: State::Header,
            max_tag_size,
            head_limit: usize::MAX,
            carry: Vec::new(),
            tag_read: 0,
            failed: None,
            prev_tag_size_mismatches: 0,
        }
    }

    /// Makes [`FlvDemuxer::feed`] hand out at most the first `head` bytes of each tag's body
    /// (`TagRef::size` still says the whole size) and skip the rest without buffering it: what
    /// the demuxer holds is then bounded by `head`, whatever the tags' sizes. Sizes are checked as
    /// before (the tag bound, PreviousTagSize). `push`/`next_event` still give whole tags.
    pub fn keeping_tag_heads(mut self, head: usize) -> Self {
        self.head_limit = head;
        self
    }

    /// Appends received bytes. Buffering grows only until the caller drains
    /// events; at most one tag (bounded by `max_tag_size`) stays buffered.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes received and held, not yet turned into events.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.carry.len()
    }

    /// Bytes the demuxer's buffers have room for: what it costs in memory.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity() + self.carry.capacity()
    }

    /// Bytes still missing from a tag whose header has arrived but whose body has not all come:
    /// the tag is complete when that many more arrive. `None` between tags.
    pub fn missing_from_tag(&self) -> Option<usize> {
        if self.state != State::Tag || self.failed.is_some() {
            return None;
        }
        if self.tag_read >= TAG_HEADER_LEN {
            let total = TagHeader::parse(&self.carry[..TAG_HEADER_LEN]).total();
            return Some(total - self.tag_read);
        }
        if self.buf.len() < TAG_HEADER_LEN {
            return None;
        }
        let total = TagHeader::parse(&self.buf[..TAG_HEADER_LEN]).total();
        Some(total.saturating_sub(self.buf.len()))
    }

    /// Parses `input` in place, calling `on_tag` for every complete tag (the FLV header is checked
    /// and skipped). Only bytes of a tag that continues in the next call are copied: all of them,
    /// or with [`FlvDemuxer::keeping_tag_heads`] its header, head and PreviousTagSize. A tag is
    /// handed out once its last byte has come, as a player could only show it then. Errors are
    /// those of [`FlvDemuxer::next_event`], and as sticky. Use one way in per demuxer.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_tag: impl FnMut(TagRef<'_>),
    ) -> Result<(), FlvError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.feed_tags(input, &mut on_tag);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.carry = Vec::new();
            self.tag_read = 0;
        }
        result
    }

    fn feed_tags(
        &mut self,
        input: &[u8],
        on_tag: &mut impl FnMut(TagRef<'_>),
    ) -> Result<(), FlvError> {
        let mut input = self.feed_file_header(input)?;
        if self.state != State::Tag {
            return Ok(());
        }
        loop {
            if self.tag_read == 0 {
                input = self.whole_tags_in_place(input, on_tag)?;
            }
            if input.is_empty() {
                return Ok(());
            }
            input = self.continue_split_tag(input, on_tag)?;
        }
    }

    /// The file header and PreviousTagSize0; returns what follows them in `input`.
    fn feed_file_header<'i>(&mut self, mut input: &'i [u8]) -> Result<&'i [u8], FlvError> {
        loop {
            match self.state {
                State::Header => {
                    let take = (HEADER_LEN - self.carry.len()).min(input.len());
                    self.carry.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let Some(header) = parse_file_header(&self.carry)? else {
                        return Ok(input);
                    };
                    self.carry = Vec::new();
                    self.state =
                        State::Skip(header.data_offset as usize - HEADER_LEN + PREV_TAG_SIZE_LEN);
                }
                State::Skip(n) => {
                    let k = n.min(input.len());
                    input = &input[k..];
                    if k < n {
                        self.state = State::Skip(n - k);
                        return Ok(input);
                    }
                    self.state = State::Tag;
                }
                State::Tag => return Ok(input),
            }
        }
    }

    /// Fast path: every whole tag at the start of `input`, straight from it; returns the rest (the
    /// start of a tag split over reads, or nothing).
    fn whole_tags_in_place<'i>(
        &mut self,
        mut input: &'i [u8],
        on_tag: &mut impl FnMut(TagRef<'_>),
    ) -> Result<&'i [u8], FlvError> {
        while input.len() >= TAG_HEADER_LEN {
            let header = TagHeader::checked(&input[..TAG_HEADER_LEN], self.max_tag_size)?;
            let total = header.total();
            if input.len() < total {
                break;
            }
            let end = TAG_HEADER_LEN + header.size;
            let prev =
                u32::from_be_bytes([input[end], input[end + 1], input[end + 2], input[end + 3]]);
            self.check_prev_tag_size(prev, end);
            let kept = header.size.min(self.head_limit);
            on_tag(TagRef {
                kind: header.kind,
                timestamp_ms: header.timestamp_ms,
                data: &input[TAG_HEADER_LEN..TAG_HEADER_LEN + kept],
                size: header.size,
            });
            input = &input[total..];
        }
        Ok(input)
    }

    /// Slow path: takes from `input` what the tag split over reads still needs, keeping its
    /// header, its head and its PreviousTagSize and skipping the rest of its body; hands it out
    /// when complete. Returns what follows in `input`.
    fn continue_split_tag<'i>(
        &mut self,
        mut input: &'i [u8],
        on_tag: &mut impl FnMut(TagRef<'_>),
    ) -> Result<&'i [u8], FlvError> {
        if self.tag_read < TAG_HEADER_LEN {
            let take = (TAG_HEADER_LEN - self.tag_read).min(input.len());
            self.carry.extend_from_slice(&input[..take]);
            self.tag_read += take;
            input = &input[take..];
            if self.tag_read < TAG_HEADER_LEN {
                return Ok(input);
            }
            let header = TagHeader::checked(&self.carry, self.max_tag_size)?;
            // Room for what this tag keeps, reserved once (a large tag in whole-tag mode is not
            // reallocated on every read).
            let kept = header.size.min(self.head_limit);
            self.carry.reserve_exact(kept + PREV_TAG_SIZE_LEN);
        }
        let header = TagHeader::parse(&self.carry[..TAG_HEADER_LEN]);
        let head_end = TAG_HEADER_LEN + header.size.min(self.head_limit);
        let body_end = TAG_HEADER_LEN + header.size;
        let total = header.total();
        while !input.is_empty() && self.tag_read < total {
            let at = self.tag_read;
            let (until, keep) = if at < head_end {
                (head_end, true)
            } else if at < body_end {
                (body_end, false)
            } else {
                (total, true)
            };
            let take = (until - at).min(input.len());
            if keep {
                self.carry.extend_from_slice(&input[..take]);
            }
            self.tag_read += take;
            input = &input[take..];
        }
        if self.tag_read == total {
            let n = self.carry.len();
            let prev = u32::from_be_bytes([
                self.carry[n - 4],
                self.carry[n - 3],
                self.carry[n - 2],
                self.carry[n - 1],
            ]);
            self.check_prev_tag_size(prev, body_end);
            on_tag(TagRef {
                kind: header.kind,
                timestamp_ms: header.timestamp_ms,
                data: &self.carry[TAG_HEADER_LEN..head_end],
                size: header.size,
            });
            self.carry.clear();
            self.tag_read = 0;
        }
        Ok(input)
    }

    fn check_prev_tag_size(&mut self, prev: u32, tag_len: usize) {
        if prev as usize != tag_len {
            self.prev_tag_size_mismatches += 1;
        }
    }

    /// Tags whose trailing PreviousTagSize disagreed with their size. Not an
    /// error (players ignore the field) but a sign of a sloppy muxer.
    pub fn prev_tag_size_mismatches(&self) -> u64 {
        self.prev_tag_size_mismatches
    }

    /// Next parsed event; `Ok(None)` means more bytes are needed. After an
    /// error the stream cannot be resynchronised, so the same error repeats.
    pub fn next_event(&mut self) -> Result<Option<FlvEvent>, FlvError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.step() {
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = BytesMut::new();
                Err(e)
            }
            ok => ok,
        }
    }

    fn step(&mut self) -> Result<Option<FlvEvent>, FlvError> {
        loop {
            match self.state {
                State::Header => {
                    let Some(header) = parse_file_header(&self.buf)? else {
                        return Ok(None);
                    };
                    self.buf.advance(HEADER_LEN);
                    self.state =
                        State::Skip(header.data_offset as usize - HEADER_LEN + PREV_TAG_SIZE_LEN);
                    return Ok(Some(FlvEvent::Header {
                        has_audio: header.has_audio,
                        has_video: header.has_video,
                    }));
                }
                State::Skip(n) => {
                    let k = n.min(self.buf.len());
                    self.buf.advance(k);
                    if k < n {
                        self.state = State::Skip(n - k);
                        return Ok(None);
                    }
                    self.state = State::Tag;
                }
                State::Tag => {
                    if self.buf.len() < TAG_HEADER_LEN {
                        return Ok(None);
                    }
                    let header =
                        TagHeader::checked(&self.buf[..TAG_HEADER_LEN], self.max_tag_size)?;
                    let total = header.total();
                    let TagHeader {
                        kind,
                        timestamp_ms,
                        size,
                    } = header;
                    if self.buf.len() < total {
                        // Reserve once so a large tag is not reallocated on
                        // every small push.
                        self.buf.reserve(total - self.buf.len());
                        return Ok(None);
                    }
                    self.buf.advance(TAG_HEADER_LEN);
                    let data = self.buf.split_to(size).freeze();
                    let prev = self.buf.get_u32();
                    self.check_prev_tag_size(prev, TAG_HEADER_LEN + size);
                    return Ok(Some(FlvEvent::Tag(FlvTag {
                        kind,
                        timestamp_ms,
                        data,
                    })));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::{AudioParams, SyntheticAudio};
    use crate::media::flv_file::write_flv;
    use crate::media::h264::{SyntheticVideo, VideoParams};
    use crate::media::stamp::find_stamp_in_avcc;

    fn sample_flv() -> Vec<u8> {
        let v = SyntheticVideo::new(&VideoParams {
            width: 320,
            height: 240,
            fps: 10,
            bitrate_bps: 100_000,
            gop_frames: 10,
        })
        .unwrap();
        let a = SyntheticAudio::new(&AudioParams {
            bitrate_bps: 32_000,
        })
        .unwrap();
        write_flv(Some(&v), Some(&a), 2)
    }

    fn drain(d: &mut FlvDemuxer, out: &mut Vec<FlvEvent>) {
        while let Some(ev) = d.next_event().unwrap() {
            out.push(ev);
        }
    }

    fn demux_in_chunks(data: &[u8], mut chunk: impl FnMut() -> usize) -> Vec<FlvEvent> {
        let mut d = FlvDemuxer::new();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let n = chunk().clamp(1, data.len() - pos);
            d.push(&data[pos..pos + n]);
            pos += n;
            drain(&mut d, &mut out);
        }
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.prev_tag_size_mismatches(), 0);
        out
    }

    #[test]
    fn whole_file_events() {
        let flv = sample_flv();
        let events = demux_in_chunks(&flv, || usize::MAX);
        assert_eq!(
            events[0],
            FlvEvent::Header {
                has_audio: true,
                has_video: true
            }
        );
        let tags: Vec<&FlvTag> = events
            .iter()
            .filter_map(|e| match e {
                FlvEvent::Tag(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(tags[0].kind, TagKind::Script);
        let video: Vec<&&FlvTag> = tags.iter().filter(|t| t.kind == TagKind::Video).collect();
        assert_eq!(video.len(), 1 + 20);
        // Frame 10 is at 1000 ms and carries its stamp.
        let f10 = video[11];
        assert_eq!(f10.timestamp_ms, 1000);
        assert_eq!(find_stamp_in_avcc(&f10.data[5..], 4).unwrap().sequence, 10);
        // Timestamps never go backwards in the interleaved file.
        assert!(
            tags.windows(2)
                .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
        );
    }

    #[test]
    fn byte_at_a_time_and_random_chunks_match_whole() {
        let flv = sample_flv();
        let whole = demux_in_chunks(&flv, || usize::MAX);
        assert_eq!(demux_in_chunks(&flv, || 1), whole);
        for seed in [1u64, 42, 0xdead_beef] {
            let chunks = demux_in_chunks(&flv, random_cuts(seed, 700));
            assert_eq!(chunks, whole, "seed {seed}");
        }
    }

    /// Piece sizes from 1 to `max`, from a deterministic xorshift so failures are reproducible.
    fn random_cuts(seed: u64, max: u64) -> impl FnMut() -> usize {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % max) as usize + 1
        }
    }

    /// The same stream through `feed`, cut into pieces by `chunk`, as owned events.
    fn feed_in_chunks(data: &[u8], mut chunk: impl FnMut() -> usize) -> Vec<FlvEvent> {
        let mut d = FlvDemuxer::new();
        let mut out = vec![FlvEvent::Header {
            has_audio: true,
            has_video: true,
        }];
        let mut pos = 0;
        while pos < data.len() {
            let n = chunk().clamp(1, data.len() - pos);
            d.feed(&data[pos..pos + n], |t| {
                out.push(FlvEvent::Tag(FlvTag {
                    kind: t.kind,
                    timestamp_ms: t.timestamp_ms,
                    data: Bytes::copy_from_slice(t.data),
                }))
            })
            .unwrap();
            pos += n;
        }
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.missing_from_tag(), None);
        out
    }

    #[test]
    fn feeding_in_place_matches_pushing_whatever_the_cuts() {
        let flv = sample_flv();
        let whole = demux_in_chunks(&flv, || usize::MAX);
        assert_eq!(feed_in_chunks(&flv, || usize::MAX), whole);
        assert_eq!(feed_in_chunks(&flv, || 1), whole);
        for seed in [7u64, 99, 0xfeed] {
            let chunks = feed_in_chunks(&flv, random_cuts(seed, 3000));
            assert_eq!(chunks, whole, "seed {seed}");
        }
    }

    /// A stream of tags around a head of `head` bytes: empty, shorter, exactly, one longer and
    /// much longer than it, with a wrong PreviousTagSize on one, and a 1 MB tag.
    fn tags_around_a_head(head: usize) -> Vec<u8> {
        let mut flv = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        let sizes = [0, 3, head - 1, head, head + 1, 5000, 1 << 20, 17];
        for (i, size) in sizes.into_iter().enumerate() {
            let kind = if i % 3 == 2 { 8 } else { 9 };
            flv.push(kind);
            flv.extend_from_slice(&(size as u32).to_be_bytes()[1..]);
            flv.extend_from_slice(&[0, 0, (i * 40) as u8, 0, 0, 0, 0]);
            flv.extend((0..size).map(|b| (b * 7 + i) as u8));
            let prev = if i == 4 { 1 } else { 11 + size as u32 };
            flv.extend_from_slice(&prev.to_be_bytes());
        }
        flv
    }

    /// A tag as handed out keeping heads: kind, timestamp, head, whole size.
    type Head = (TagKind, u32, Vec<u8>, usize);

    /// The tags `feed` hands out when keeping heads of `head` bytes, cut into reads by `cuts`
    /// (positions in `data`), with the most the demuxer ever held.
    fn feed_heads(data: &[u8], head: usize, cuts: &[usize]) -> (Vec<Head>, usize) {
        let mut d = FlvDemuxer::with_max_tag_size(4 << 20).keeping_tag_heads(head);
        let mut out = Vec::new();
        let mut most = 0;
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&data.len())) {
            d.feed(&data[from..to], |t| {
                assert_eq!(t.data.len(), t.size.min(head));
                out.push((t.kind, t.timestamp_ms, t.data.to_vec(), t.size))
            })
            .unwrap();
            most = most.max(d.buffer_capacity());
            from = to;
        }
        assert_eq!((d.buffered(), d.missing_from_tag()), (0, None));
        assert_eq!(d.prev_tag_size_mismatches(), 1);
        (out, most)
    }

    #[test]
    fn keeping_heads_a_tag_split_at_every_byte_gives_the_same_tags() {
        const HEAD: usize = 64;
        let flv = tags_around_a_head(HEAD);
        let (whole, _) = feed_heads(&flv, HEAD, &[]);
        // The heads are the tags' first bytes, whatever their sizes.
        let pushed = demux_in_chunks_lenient(&flv);
        let expected: Vec<_> = pushed
            .iter()
            .map(|t| {
                (
                    t.kind,
                    t.timestamp_ms,
                    t.data[..t.data.len().min(HEAD)].to_vec(),
                    t.data.len(),
                )
            })
            .collect();
        assert_eq!(whole, expected);
        assert_eq!(whole.len(), 8);
        // Every cut in the small tags' part, and around every tag boundary further on.
        let mut positions: Vec<usize> = (1..6000).collect();
        let mut at = 13;
        for (_, _, _, size) in &whole {
            at += 11 + size + 4;
            positions.extend(at.saturating_sub(20)..(at + 20).min(flv.len()));
        }
        for cut in positions {
            assert_eq!(feed_heads(&flv, HEAD, &[cut]).0, whole, "cut at {cut}");
        }
        // Byte by byte through the start, random reads through all of it.
        let bytes: Vec<usize> = (1..3000).collect();
        assert_eq!(feed_heads(&flv, HEAD, &bytes).0, whole);
        let mut next = random_cuts(5, 20_000);
        let mut cuts = Vec::new();
        let mut pos = 0;
        while pos < flv.len() {
            pos += next();
            cuts.push(pos.min(flv.len()));
        }
        assert_eq!(feed_heads(&flv, HEAD, &cuts).0, whole);
    }

    /// Whole tags through `push`, PreviousTagSize mismatches allowed.
    fn demux_in_chunks_lenient(data: &[u8]) -> Vec<FlvTag> {
        let mut d = FlvDemuxer::with_max_tag_size(4 << 20);
        d.push(data);
        let mut tags = Vec::new();
        while let Some(ev) = d.next_event().unwrap() {
            if let FlvEvent::Tag(t) = ev {
                tags.push(t);
            }
        }
        tags
    }

    #[test]
    fn keeping_heads_a_1_mb_tag_is_skipped_with_a_bounded_buffer() {
        const HEAD: usize = 256;
        let flv = tags_around_a_head(HEAD);
        // Reads of a viewer's size, so the 1 MB tag spans many of them.
        let cuts: Vec<usize> = (1..)
            .map(|i| i * 16 * 1024)
            .take_while(|&c| c < flv.len())
            .collect();
        let (tags, most) = feed_heads(&flv, HEAD, &cuts);
        let big = tags.iter().find(|t| t.3 == 1 << 20).expect("the 1 MB tag");
        assert_eq!(big.2.len(), HEAD);
        assert_eq!(big.2[..4], [6, 13, 20, 27]);
        assert!(
            most <= TAG_HEADER_LEN + HEAD + PREV_TAG_SIZE_LEN,
            "held {most} bytes"
        );
        // Whole tags through `feed` hold the whole 1 MB tag.
        let mut d = FlvDemuxer::with_max_tag_size(4 << 20);
        let mut most = 0;
        for piece in flv.chunks(16 * 1024) {
            d.feed(piece, |_| {}).unwrap();
            most = most.max(d.buffer_capacity());
        }
        assert!(most > 1 << 20);
    }

    #[test]
    fn keeping_heads_still_refuses_a_tag_over_the_bound() {
        let mut flv = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        flv.extend_from_slice(&[9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let too_large = Err(FlvError::TagTooLarge {
            size: 256,
            max: 100,
        });
        // Header in one read, and split over two.
        for cut in [flv.len(), 13 + 5] {
            let mut d = FlvDemuxer::with_max_tag_size(100).keeping_tag_heads(16);
            let first = d.feed(&flv[..cut], |_| {});
            let result = if cut == flv.len() {
                first
            } else {
                first.unwrap();
                d.feed(&flv[cut..], |_| {})
            };
            assert_eq!(result, too_large);
            // Sticky, and nothing held.
            assert_eq!(d.feed(&[0; 300], |_| {}), too_large);
            assert_eq!(d.buffer_capacity(), 0);
        }
    }

    #[test]
    fn a_split_tag_reports_what_it_still_misses() {
        let mut flv = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        flv.extend_from_slice(&[9, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0]);
        flv.extend_from_slice(&[0x17; 100]);
        flv.extend_from_slice(&111u32.to_be_bytes());
        let mut d = FlvDemuxer::new();
        let mut tags = 0;
        d.feed(&flv[..13 + 5], |_| tags += 1).unwrap();
        // Inside the tag header: the tag's size is not known yet.
        assert_eq!(d.missing_from_tag(), None);
        d.feed(&flv[18..13 + 40], |_| tags += 1).unwrap();
        assert_eq!(d.missing_from_tag(), Some(115 - 40));
        d.feed(&flv[13 + 40..], |_| tags += 1).unwrap();
        assert_eq!((tags, d.missing_from_tag(), d.buffered()), (1, None, 0));
    }

    #[test]
    fn feeding_reports_errors_and_keeps_them() {
        let mut d = FlvDemuxer::new();
        assert_eq!(
            d.feed(b"<html>", |_| {}),
            Err(FlvError::BadSignature(*b"<ht"))
        );
        assert!(d.feed(b"FLV", |_| {}).is_err());
        let mut d = FlvDemuxer::with_max_tag_size(100);
        d.feed(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00", |_| {})
            .unwrap();
        assert_eq!(
            d.feed(&[9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], |_| {}),
            Err(FlvError::TagTooLarge {
                size: 256,
                max: 100
            })
        );
        assert!(d.feed(&[0; 4], |_| {}).is_err());
    }

    #[test]
    fn extended_timestamp_and_other_kinds() {
        let mut flv = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        // Video tag at 0x12345678 ms, then type 0x0f, then an encrypted
        // (filter bit) audio tag.
        for (ty, ts) in [(9u8, 0x1234_5678u32), (0x0f, 5), (0x28, 6)] {
            flv.push(ty);
            flv.extend_from_slice(&[0, 0, 2]);
            flv.extend_from_slice(&ts.to_be_bytes()[1..]);
            flv.push((ts >> 24) as u8);
            flv.extend_from_slice(&[0, 0, 0, 0x27, 0x01]);
            flv.extend_from_slice(&13u32.to_be_bytes());
        }
        let ev = demux_in_chunks(&flv, || 5);
        assert_eq!(
            ev[0],
            FlvEvent::Header {
                has_audio: false,
                has_video: true
            }
        );
        let FlvEvent::Tag(t) = &ev[1] else { panic!() };
        assert_eq!((t.kind, t.timestamp_ms), (TagKind::Video, 0x1234_5678));
        assert_eq!(&t.data[..], &[0x27, 0x01]);
        let FlvEvent::Tag(t) = &ev[2] else { panic!() };
        assert_eq!(t.kind, TagKind::Other(0x0f));
        let FlvEvent::Tag(t) = &ev[3] else { panic!() };
        assert_eq!(t.kind, TagKind::Audio);
    }

    #[test]
    fn errors() {
        let mut d = FlvDemuxer::new();
        d.push(b"<ht");
        assert_eq!(d.next_event(), Err(FlvError::BadSignature(*b"<ht")));
        // Sticky.
        d.push(b"FLV");
        assert!(d.next_event().is_err());

        // Early detection on a single byte.
        let mut d = FlvDemuxer::new();
        d.push(b"H");
        assert!(matches!(d.next_event(), Err(FlvError::BadSignature(_))));

        let mut d = FlvDemuxer::new();
        d.push(b"FLV\x01\x05\x00\x00\x00\x03");
        assert_eq!(d.next_event(), Err(FlvError::BadHeaderSize(3)));

        let mut d = FlvDemuxer::with_max_tag_size(100);
        d.push(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        assert!(matches!(d.next_event(), Ok(Some(FlvEvent::Header { .. }))));
        d.push(&[9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            d.next_event(),
            Err(FlvError::TagTooLarge {
                size: 256,
                max: 100
            })
        );
    }

    #[test]
    fn header_with_larger_data_offset() {
        let mut flv = b"FLV\x01\x04\x00\x00\x00\x0c\xaa\xbb\xcc\x00\x00\x00\x00".to_vec();
        flv.extend_from_slice(&[8, 0, 0, 1, 0, 0, 7, 0, 0, 0, 0, 0xaf]);
        flv.extend_from_slice(&99u32.to_be_bytes()); // wrong on purpose
        let mut d = FlvDemuxer::new();
        d.push(&flv);
        assert!(matches!(d.next_event(), Ok(Some(FlvEvent::Header { .. }))));
        let Ok(Some(FlvEvent::Tag(t))) = d.next_event() else {
            panic!()
        };
        assert_eq!(
            (t.kind, t.timestamp_ms, &t.data[..]),
            (TagKind::Audio, 7, &[0xaf][..])
        );
        assert_eq!(d.prev_tag_size_mismatches(), 1);
        assert_eq!(d.next_event(), Ok(None));
    }
}

//! Sans-IO incremental FLV demuxer. Two ways in:
//! - [`FlvDemuxer::push`] then [`FlvDemuxer::next_event`]: owned events, every byte copied once;
//! - [`FlvDemuxer::feed`]: tags parsed in place from the caller's read buffer, only a tag split
//!   over reads is copied. Viewers use this one: the copy was ~8 % of a viewer's CPU.

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
    pub data: &'a [u8],
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
    buf: BytesMut,
    state: State,
    max_tag_size: usize,
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
            failed: None,
            prev_tag_size_mismatches: 0,
        }
    }

    /// Appends received bytes. Buffering grows only until the caller drains
    /// events; at most one tag (bounded by `max_tag_size`) stays buffered.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes received but not yet turned into events.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes still missing from a tag whose header has arrived but whose body has not all come:
    /// the tag is complete when that many more arrive. `None` between tags.
    pub fn missing_from_tag(&self) -> Option<usize> {
        if self.state != State::Tag || self.buf.len() < TAG_HEADER_LEN || self.failed.is_some() {
            return None;
        }
        let size = TagHeader::parse(&self.buf[..TAG_HEADER_LEN]).size;
        Some((TAG_HEADER_LEN + size + PREV_TAG_SIZE_LEN).saturating_sub(self.buf.len()))
    }

    /// Parses `input` in place, calling `on_tag` for every complete tag (the FLV header is checked
    /// and skipped). Only bytes of a tag that continues in the next call are copied. Errors are
    /// those of [`FlvDemuxer::next_event`], and as sticky.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on_tag: impl FnMut(TagRef<'_>),
    ) -> Result<(), FlvError> {
        // Slow path: finish what is buffered (the file header, or a tag split over reads),
        // topping the buffer up with no more than that unit needs.
        while self.state != State::Tag || !self.buf.is_empty() {
            if let Some(e) = &self.failed {
                return Err(e.clone());
            }
            if input.is_empty() {
                return Ok(());
            }
            let want = match self.state {
                State::Tag => self
                    .missing_from_tag()
                    .unwrap_or_else(|| TAG_HEADER_LEN - self.buf.len()),
                _ => input.len(),
            };
            let take = want.min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            while let Some(event) = self.next_event()? {
                if let FlvEvent::Tag(t) = event {
                    on_tag(TagRef {
                        kind: t.kind,
                        timestamp_ms: t.timestamp_ms,
                        data: &t.data,
                    });
                }
            }
        }
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        // Fast path: whole tags straight from `input`.
        while input.len() >= TAG_HEADER_LEN {
            let header = TagHeader::parse(&input[..TAG_HEADER_LEN]);
            let size = header.size;
            if size > self.max_tag_size {
                let e = FlvError::TagTooLarge {
                    size,
                    max: self.max_tag_size,
                };
                self.failed = Some(e.clone());
                return Err(e);
            }
            let total = TAG_HEADER_LEN + size + PREV_TAG_SIZE_LEN;
            if input.len() < total {
                break;
            }
            let end = TAG_HEADER_LEN + size;
            let prev =
                u32::from_be_bytes([input[end], input[end + 1], input[end + 2], input[end + 3]]);
            if prev as usize != end {
                self.prev_tag_size_mismatches += 1;
            }
            on_tag(TagRef {
                kind: header.kind,
                timestamp_ms: header.timestamp_ms,
                data: &input[TAG_HEADER_LEN..end],
            });
            input = &input[total..];
        }
        self.buf.extend_from_slice(input);
        Ok(())
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
                    if self.buf.len() < 3 {
                        // Check the signature as early as possible so that a
                        // wrong URL (HTML error page) fails fast.
                        if !b"FLV".starts_with(&self.buf) {
                            let mut sig = [0u8; 3];
                            sig[..self.buf.len()].copy_from_slice(&self.buf);
                            return Err(FlvError::BadSignature(sig));
                        }
                        return Ok(None);
                    }
                    if &self.buf[..3] != b"FLV" {
                        return Err(FlvError::BadSignature([
                            self.buf[0],
                            self.buf[1],
                            self.buf[2],
                        ]));
                    }
                    if self.buf.len() < HEADER_LEN {
                        return Ok(None);
                    }
                    let flags = self.buf[4];
                    let offset =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
                    if !(HEADER_LEN as u32..=MAX_DATA_OFFSET).contains(&offset) {
                        return Err(FlvError::BadHeaderSize(offset));
                    }
                    self.buf.advance(HEADER_LEN);
                    self.state = State::Skip(offset as usize - HEADER_LEN + PREV_TAG_SIZE_LEN);
                    return Ok(Some(FlvEvent::Header {
                        has_audio: flags & 0x04 != 0,
                        has_video: flags & 0x01 != 0,
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
                    let TagHeader {
                        kind,
                        timestamp_ms,
                        size,
                    } = TagHeader::parse(&self.buf[..TAG_HEADER_LEN]);
                    if size > self.max_tag_size {
                        return Err(FlvError::TagTooLarge {
                            size,
                            max: self.max_tag_size,
                        });
                    }
                    let total = TAG_HEADER_LEN + size + PREV_TAG_SIZE_LEN;
                    if self.buf.len() < total {
                        // Reserve once so a large tag is not reallocated on
                        // every small push.
                        self.buf.reserve(total - self.buf.len());
                        return Ok(None);
                    }
                    self.buf.advance(TAG_HEADER_LEN);
                    let data = self.buf.split_to(size).freeze();
                    let prev = self.buf.get_u32();
                    if prev as usize != TAG_HEADER_LEN + size {
                        self.prev_tag_size_mismatches += 1;
                    }
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

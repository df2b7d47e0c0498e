//! Checks the RTMP chunk stream a server sends before rml_rtmp's `ChunkDeserializer` sees it.
//!
//! Why: rml_rtmp 0.8 reassembles every chunk stream into one shared payload buffer and trusts the
//! headers it reads. A message started on one chunk stream and a shorter one begun on another makes
//! it subtract past zero and panic ("capacity overflow", `deserializer.rs:388`; see
//! docs/upstream-rml_rtmp.md); other orders silently mix two messages' bytes. An extended
//! timestamp below 0xFFFFFF on a continuation header underflows the same way. This guard follows
//! the chunk framing exactly as rml_rtmp does (header formats, chunk size changes, extended
//! timestamps), skips payloads without keeping them, and rejects what rml_rtmp cannot handle, plus
//! messages longer than the caller's bound (memory per connection stays bounded). Sans I/O: bytes
//! in, verdict out, across any split of the input.
//!
//! It also taps media for viewers (`with_media_tap`): since it follows the framing anyway, it
//! hands out each audio/video message's timestamp and the first [`MEDIA_HEAD_BYTES`] of its body,
//! whatever message stream it came on, without keeping the rest. Why not a second rml_rtmp
//! deserializer: that one reassembles every message whole, so a viewer's memory grew with the
//! stream's biggest keyframe (README "Benchmark").

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// RTMP's initial chunk size (spec §5.4.1), rml_rtmp's too.
const INITIAL_CHUNK_SIZE: u32 = 128;
/// A timestamp field of this value means a 4-byte extended timestamp follows.
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// Largest chunk size rml_rtmp accepts (31 bits).
const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
const SET_CHUNK_SIZE: u8 = 1;
const AMF0_COMMAND: u8 = 20;
/// An AMF3 command: rml_rtmp skips its first byte and reads the rest as an AMF0 command.
const AMF3_COMMAND: u8 = 17;
const AUDIO: u8 = 8;
const VIDEO: u8 = 9;

/// How much of each audio/video message's body the media tap keeps: what a viewer reads of a
/// frame. A video body starts with the 5-byte FLV video tag header (frame type, AVC packet type,
/// composition time), then AVCC NAL units; xiuload's publisher puts its SEI stamp (a 4-byte
/// length and a ~45-byte NAL) first, so it ends by byte ~55. 256 leaves room for a server that
/// puts an access unit delimiter or a small SEI of its own in front; a stamp behind a bigger NAL
/// (an encoder's parameter sets or version SEI) is not looked for, as the stamp search stops at a
/// NAL that runs past the head.
pub const MEDIA_HEAD_BYTES: usize = 256;

/// Audio or video received: its timestamp (rml_rtmp's reading of the chunk headers) and the first
/// [`MEDIA_HEAD_BYTES`] of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMessage {
    pub is_video: bool,
    pub timestamp_ms: u32,
    /// The whole body's length, of which `data` is the head.
    pub length: u32,
    /// The body's first bytes: all of it when it is at most [`MEDIA_HEAD_BYTES`].
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error(
        "chunk stream {new} interrupts a message on chunk stream {open} ({missing} bytes missing): interleaved messages are not supported"
    )]
    Interleaved { open: u32, new: u32, missing: u32 },
    #[error(
        "chunk stream {csid}: a type {format} header starts a new message while {missing} bytes of the previous one are missing"
    )]
    HeaderInsideMessage { csid: u32, format: u8, missing: u32 },
    #[error("chunk stream {csid}: a type {format} header with no earlier type 0 header")]
    NoPreviousHeader { csid: u32, format: u8 },
    #[error(
        "chunk stream {csid}: extended timestamp {value:#x} is below 0xffffff, where a delta header needs one"
    )]
    ExtendedTimestampTooSmall { csid: u32, value: u32 },
    #[error("SetChunkSize {0} is outside 1..=2147483647")]
    BadChunkSize(u32),
    #[error("message of {length} bytes on chunk stream {csid} is larger than the {max} allowed")]
    TooLarge { csid: u32, length: u32, max: u32 },
    /// rml_rtmp 0.8 panics on an AMF0 command of fewer than 3 values (`drain(..3)` in
    /// `amf0_command.rs`), found by the `rtmp` fuzz target.
    #[error(
        "chunk stream {csid}: an AMF0 command with {values} value(s); a command has a name, a transaction id and an object"
    )]
    ShortCommand { csid: u32, values: usize },
}

/// What a chunk stream remembers of its last header (rml_rtmp keeps the same).
#[derive(Debug, Clone, Copy)]
struct StreamHeader {
    /// The last 3-byte timestamp field (a type 3 header reuses it, extended marker included).
    timestamp_field: u32,
    message_length: u32,
    type_id: u8,
    /// The absolute timestamp of the stream's current (or last) message.
    timestamp: u32,
}

/// A message whose chunks are still arriving.
#[derive(Debug, Clone, Copy)]
struct OpenMessage {
    csid: u32,
    received: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Collecting a chunk header into `header`.
    Header,
    /// Skipping this many payload bytes of the current chunk.
    Payload(u32),
}

#[derive(Debug)]
pub struct ChunkGuard {
    max_message: u32,
    chunk_size: u32,
    streams: HashMap<u32, StreamHeader>,
    open: Option<OpenMessage>,
    stage: Stage,
    /// A header split over inputs: at most 3 (basic) + 11 (message) + 4 (extended) bytes.
    header: Vec<u8>,
    /// The chunk being read: its stream and (for the message's first bytes) a SetChunkSize value.
    current: u32,
    set_chunk_size: Vec<u8>,
    /// The AMF0 command being received (commands are small; bounded by `max_message`).
    command: Vec<u8>,
    failed: Option<ChunkError>,
    media: Option<MediaTap>,
}

/// The media tap's state: the head of the audio/video message being received, and the messages
/// complete but not yet taken.
#[derive(Debug, Default)]
struct MediaTap {
    head: Vec<u8>,
    complete: VecDeque<MediaMessage>,
}

impl ChunkGuard {
    /// `max_message`: longest message accepted, in bytes (the 24-bit length field allows 16 MiB).
    pub fn new(max_message: u32) -> Self {
        ChunkGuard {
            max_message,
            chunk_size: INITIAL_CHUNK_SIZE,
            streams: HashMap::new(),
            open: None,
            stage: Stage::Header,
            header: Vec::with_capacity(18),
            current: 0,
            set_chunk_size: Vec::new(),
            command: Vec::new(),
            failed: None,
            media: None,
        }
    }

    /// A guard that also keeps each audio/video message's head for [`Self::next_media`].
    pub fn with_media_tap(max_message: u32) -> Self {
        ChunkGuard {
            media: Some(MediaTap {
                head: Vec::with_capacity(MEDIA_HEAD_BYTES),
                complete: VecDeque::new(),
            }),
            ..Self::new(max_message)
        }
    }

    /// The oldest audio/video message completed by the bytes checked so far (with the media tap).
    pub fn next_media(&mut self) -> Option<MediaMessage> {
        self.media.as_mut()?.complete.pop_front()
    }

    /// Checks the next bytes of the stream. An error is final: the stream cannot be followed past
    /// it, and every later call returns it again.
    pub fn check(&mut self, mut input: &[u8]) -> Result<(), ChunkError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        while !input.is_empty() {
            let step = match self.stage {
                Stage::Payload(left) => {
                    let take = (left as usize).min(input.len());
                    let piece = &input[..take];
                    input = &input[take..];
                    self.payload(piece)
                }
                Stage::Header => {
                    let need = match self.header_len() {
                        Ok(n) => n,
                        Err(e) => return Err(self.fail(e)),
                    };
                    if self.header.len() < need {
                        let take = (need - self.header.len()).min(input.len());
                        self.header.extend_from_slice(&input[..take]);
                        input = &input[take..];
                    }
                    // The length needed can grow once the header's first bytes are known.
                    match self.header_len() {
                        Ok(n) if self.header.len() >= n => self.header_done(),
                        Ok(_) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = step {
                return Err(self.fail(e));
            }
        }
        Ok(())
    }

    fn fail(&mut self, e: ChunkError) -> ChunkError {
        self.failed = Some(e.clone());
        e
    }

    /// Bytes the current header needs, as far as its first bytes tell.
    fn header_len(&self) -> Result<usize, ChunkError> {
        let Some(&first) = self.header.first() else {
            return Ok(1);
        };
        let basic = match first & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let format = first >> 6;
        let message = [11, 7, 3, 0][format as usize];
        if self.header.len() < basic + message {
            return Ok(basic + message);
        }
        let csid = csid(&self.header);
        let field = match format {
            3 => match self.streams.get(&csid) {
                Some(h) => h.timestamp_field,
                None => return Err(ChunkError::NoPreviousHeader { csid, format }),
            },
            _ => u24(&self.header[basic..]),
        };
        let extended = if field >= EXTENDED_TIMESTAMP { 4 } else { 0 };
        Ok(basic + message + extended)
    }

    /// A whole chunk header has arrived: validate it against the stream's state.
    fn header_done(&mut self) -> Result<(), ChunkError> {
        let h = std::mem::take(&mut self.header);
        let format = h[0] >> 6;
        let basic = match h[0] & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let csid = csid(&h);
        if let Some(open) = self.open {
            if open.csid != csid {
                return Err(ChunkError::Interleaved {
                    open: open.csid,
                    new: csid,
                    missing: self.missing(open),
                });
            }
            if format != 3 {
                return Err(ChunkError::HeaderInsideMessage {
                    csid,
                    format,
                    missing: self.missing(open),
                });
            }
        }
        let previous = self.streams.get(&csid).copied();
        let mut header = match (format, previous) {
            (0, _) => StreamHeader {
                timestamp_field: 0,
                message_length: 0,
                type_id: 0,
                timestamp: 0,
            },
            (_, Some(p)) => p,
            (_, None) => return Err(ChunkError::NoPreviousHeader { csid, format }),
        };
        let fields = &h[basic..];
        if format <= 2 {
            header.timestamp_field = u24(fields);
        }
        if format <= 1 {
            header.message_length = u24(&fields[3..]);
            header.type_id = fields[6];
        }
        let starts_message = self.open.is_none();
        let mut timestamp = header.timestamp_field;
        if header.timestamp_field >= EXTENDED_TIMESTAMP {
            let at = basic + [11, 7, 3, 0][format as usize];
            let value = u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            // rml_rtmp subtracts 0xFFFFFF from a delta's extended timestamp at a message's start.
            if format != 0 && starts_message && value < EXTENDED_TIMESTAMP {
                return Err(ChunkError::ExtendedTimestampTooSmall { csid, value });
            }
            timestamp = value;
        }
        // As rml_rtmp (and the spec) read timestamps: a type 0 header's is absolute; types 1 and 2
        // carry a delta from the stream's previous message, and a type 3 header starting a message
        // repeats the last field as a delta. A continuation chunk changes nothing.
        if starts_message {
            header.timestamp = match format {
                0 => timestamp,
                _ => header.timestamp.wrapping_add(timestamp),
            };
        }
        if starts_message && header.message_length > self.max_message {
            return Err(ChunkError::TooLarge {
                csid,
                length: header.message_length,
                max: self.max_message,
            });
        }
        self.streams.insert(csid, header);
        let received = self.open.map_or(0, |o| o.received);
        let remaining = header.message_length - received;
        // As rml_rtmp: a message no longer than the chunk size comes whole in one chunk.
        let chunk = if header.message_length > self.chunk_size {
            remaining.min(self.chunk_size)
        } else {
            header.message_length
        };
        self.current = csid;
        if starts_message {
            self.set_chunk_size.clear();
            self.command.clear();
            if let Some(tap) = self.media.as_mut() {
                tap.head.clear();
            }
        }
        self.open = Some(OpenMessage { csid, received });
        self.stage = Stage::Payload(chunk);
        if chunk == 0 {
            self.chunk_done(header)?;
        }
        Ok(())
    }

    fn missing(&self, open: OpenMessage) -> u32 {
        self.streams
            .get(&open.csid)
            .map_or(0, |h| h.message_length.saturating_sub(open.received))
    }

    fn payload(&mut self, bytes: &[u8]) -> Result<(), ChunkError> {
        let Stage::Payload(left) = self.stage else {
            return Ok(());
        };
        let header = self.streams[&self.current];
        if header.type_id == SET_CHUNK_SIZE && self.set_chunk_size.len() < 4 {
            let take = (4 - self.set_chunk_size.len()).min(bytes.len());
            self.set_chunk_size.extend_from_slice(&bytes[..take]);
        }
        if header.type_id == AMF0_COMMAND || header.type_id == AMF3_COMMAND {
            self.command.extend_from_slice(bytes);
        }
        if let Some(tap) = self.media.as_mut()
            && (header.type_id == AUDIO || header.type_id == VIDEO)
            && tap.head.len() < MEDIA_HEAD_BYTES
        {
            let take = (MEDIA_HEAD_BYTES - tap.head.len()).min(bytes.len());
            tap.head.extend_from_slice(&bytes[..take]);
        }
        if let Some(open) = self.open.as_mut() {
            open.received += bytes.len() as u32;
        }
        let left = left - bytes.len() as u32;
        self.stage = Stage::Payload(left);
        if left == 0 {
            self.chunk_done(header)?;
        }
        Ok(())
    }

    /// The current chunk's payload is all there; close the message if it is complete.
    fn chunk_done(&mut self, header: StreamHeader) -> Result<(), ChunkError> {
        self.stage = Stage::Header;
        let Some(open) = self.open else {
            return Ok(());
        };
        if open.received < header.message_length {
            return Ok(());
        }
        self.open = None;
        if let Some(tap) = self.media.as_mut()
            && (header.type_id == AUDIO || header.type_id == VIDEO)
        {
            tap.complete.push_back(MediaMessage {
                is_video: header.type_id == VIDEO,
                timestamp_ms: header.timestamp,
                length: header.message_length,
                data: Bytes::copy_from_slice(&tap.head),
            });
        }
        if header.type_id == AMF0_COMMAND || header.type_id == AMF3_COMMAND {
            // As rml_rtmp reads it: an AMF3 command loses its first byte only when that byte is
            // 0 (the format byte Flash clients send); otherwise the whole body is read as AMF0.
            let body = match (header.type_id, self.command.first()) {
                (AMF3_COMMAND, Some(0)) => &self.command[1..],
                _ => &self.command[..],
            };
            // What does not decode is rml_rtmp's own (non-panicking) error to report.
            let decoded = rml_amf0::deserialize(&mut std::io::Cursor::new(body));
            if let Ok(values) = decoded
                && values.len() < 3
            {
                return Err(ChunkError::ShortCommand {
                    csid: open.csid,
                    values: values.len(),
                });
            }
        }
        // rml_rtmp's session applies a SetChunkSize before it reads the next chunk; so do we.
        if header.type_id == SET_CHUNK_SIZE && self.set_chunk_size.len() == 4 {
            let size = u32::from_be_bytes([
                self.set_chunk_size[0],
                self.set_chunk_size[1],
                self.set_chunk_size[2],
                self.set_chunk_size[3],
            ]);
            if size == 0 || size > MAX_CHUNK_SIZE {
                return Err(ChunkError::BadChunkSize(size));
            }
            self.chunk_size = size;
        }
        Ok(())
    }
}

fn csid(h: &[u8]) -> u32 {
    match h[0] & 0x3f {
        0 => h[1] as u32 + 64,
        1 => h[2] as u32 * 256 + h[1] as u32 + 64,
        x => x as u32,
    }
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    /// The reproduction in docs/upstream-rml_rtmp.md: a 256-byte message begun on chunk stream 3
    /// (its first 128-byte chunk), then a 16-byte message on chunk stream 4.
    pub(crate) fn interleaved_shorter_message() -> Vec<u8> {
        let mut bytes = vec![0x03, 0, 0, 0, 0x00, 0x01, 0x00, 0x14, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0u8; 128]);
        bytes.extend_from_slice(&[0x04, 0, 0, 0, 0x00, 0x00, 0x10, 0x14, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0u8; 16]);
        bytes
    }

    #[test]
    fn rml_rtmp_panics_on_the_reproduction_and_the_guard_rejects_it() {
        let bytes = interleaved_shorter_message();
        let panicked = std::panic::catch_unwind(|| {
            let mut d = ChunkDeserializer::new();
            let mut input = &bytes[..];
            while let Ok(Some(_)) = d.get_next_message(input) {
                input = &[];
            }
        });
        assert!(
            panicked.is_err(),
            "rml_rtmp no longer panics: the guard may be relaxed"
        );
        let mut guard = ChunkGuard::new(1 << 24);
        assert_eq!(
            guard.check(&bytes),
            Err(ChunkError::Interleaved {
                open: 3,
                new: 4,
                missing: 128
            })
        );
        // Final: later bytes get the same answer.
        assert!(guard.check(&[0]).is_err());
    }

    fn message(type_id: u8, len: usize, ts: u32, stream: u32) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            type_id,
            message_stream_id: stream,
            data: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>()),
        }
    }

    /// A stream as rml_rtmp's own serializer writes it: several chunk streams, long messages,
    /// extended timestamps, and a chunk size change half way.
    fn well_formed_stream() -> (Vec<u8>, usize) {
        let mut s = ChunkSerializer::new();
        let mut out = Vec::new();
        let mut count = 0;
        let mut push = |p: rml_rtmp::chunk_io::Packet| out.extend_from_slice(&p.bytes);
        for (i, (type_id, len)) in [(15u8, 300usize), (9, 1000), (8, 10), (18, 129)]
            .iter()
            .enumerate()
        {
            push(
                s.serialize(&message(*type_id, *len, i as u32 * 40, 1), false, false)
                    .unwrap(),
            );
            count += 1;
        }
        // SetChunkSize to 4096 (rml_rtmp writes the message and switches its own framing).
        push(s.set_max_chunk_size(4096, RtmpTimestamp::new(0)).unwrap());
        count += 1;
        for (i, ts) in [0x0200_0000u32, 0x0200_0021, 0x0200_0042]
            .iter()
            .enumerate()
        {
            push(
                s.serialize(&message(9, 5000 + i * 100, *ts, 1), false, false)
                    .unwrap(),
            );
            count += 1;
        }
        (out, count)
    }

    #[test]
    fn a_well_formed_stream_passes_however_it_is_split() {
        let (bytes, messages) = well_formed_stream();
        // rml_rtmp itself reads it all (the test data is sane).
        let mut d = ChunkDeserializer::new();
        let mut seen = 0;
        let mut input = &bytes[..];
        while let Some(m) = d.get_next_message(input).unwrap() {
            input = &[];
            seen += 1;

            if m.type_id == 1 {
                d.set_max_chunk_size(4096).unwrap();
            }
        }
        assert_eq!(seen, messages);
        for split in [usize::MAX, 1, 7, 129, 1000] {
            let mut guard = ChunkGuard::new(1 << 24);
            for piece in bytes.chunks(split.min(bytes.len())) {
                guard
                    .check(piece)
                    .unwrap_or_else(|e| panic!("split {split}: {e}"));
            }
            assert_eq!(guard.stage, Stage::Header, "split {split}");
            assert!(guard.open.is_none());
        }
    }

    /// Media as a server sends it, through rml_rtmp's serializer: audio of one size at one delta
    /// (so new messages get type 3 headers), video of one size at two deltas (type 2) and
    /// keyframes longer than the chunk size (type 1, continued by type 3), on message stream 1
    /// and for a while alternating with stream 0 (type 0); script data in between, a chunk size
    /// change, timestamps past 0xFFFFFF (extended) and a wrap past u32::MAX.
    fn media_stream() -> Vec<u8> {
        let mut s = ChunkSerializer::new();
        let mut out = Vec::new();
        let mut push = |p: rml_rtmp::chunk_io::Packet| out.extend_from_slice(&p.bytes);
        let (mut audio_ts, mut video_ts) = (0u32, 0u32);
        for i in 0..80u32 {
            let stream = if (40..50).contains(&i) { i % 2 } else { 1 };
            if i == 60 {
                (audio_ts, video_ts) = (0x0100_0000, 0x0100_0000);
            }
            if i == 70 {
                (audio_ts, video_ts) = (u32::MAX - 100, u32::MAX - 100);
            }
            audio_ts = audio_ts.wrapping_add(23);
            push(
                s.serialize(&message(AUDIO, 10, audio_ts, stream), false, false)
                    .unwrap(),
            );
            video_ts = video_ts.wrapping_add(if i % 3 == 0 { 34 } else { 33 });
            let len = if i % 4 == 0 { 30_000 + i as usize } else { 200 };
            push(
                s.serialize(&message(VIDEO, len, video_ts, stream), false, false)
                    .unwrap(),
            );
            if i % 10 == 5 {
                push(
                    s.serialize(&message(18, 40, video_ts, 1), false, false)
                        .unwrap(),
                );
            }
            if i == 20 {
                push(s.set_max_chunk_size(4096, RtmpTimestamp::new(0)).unwrap());
            }
        }
        // The same huge delta three times: type 3 headers that start a message with an extended
        // timestamp.
        for _ in 0..3 {
            audio_ts = audio_ts.wrapping_add(0x0100_0000);
            push(
                s.serialize(&message(AUDIO, 10, audio_ts, 1), false, false)
                    .unwrap(),
            );
        }
        out
    }

    /// What rml_rtmp reads from `bytes`: the audio/video messages, whole.
    fn rml_media(bytes: &[u8]) -> Vec<MessagePayload> {
        let mut d = ChunkDeserializer::new();
        let mut media = Vec::new();
        let mut input = bytes;
        while let Some(m) = d.get_next_message(input).unwrap() {
            input = &[];
            if m.type_id == 1 {
                let size = u32::from_be_bytes(m.data[..4].try_into().unwrap());
                d.set_max_chunk_size(size as usize).unwrap();
            }
            if m.type_id == AUDIO || m.type_id == VIDEO {
                media.push(m);
            }
        }
        media
    }

    #[test]
    fn the_media_tap_reads_what_rml_rtmp_reads_keeping_only_heads() {
        let bytes = media_stream();
        let expected: Vec<MediaMessage> = rml_media(&bytes)
            .into_iter()
            .map(|m| MediaMessage {
                is_video: m.type_id == VIDEO,
                timestamp_ms: m.timestamp.value,
                length: m.data.len() as u32,
                data: m.data.slice(..m.data.len().min(MEDIA_HEAD_BYTES)),
            })
            .collect();
        assert_eq!(expected.len(), 163);
        assert!(expected.iter().any(|m| m.timestamp_ms > EXTENDED_TIMESTAMP));
        assert!(
            expected[150..160].iter().any(|m| m.timestamp_ms < 100),
            "a wrap"
        );
        for split in [usize::MAX, 1, 5, 128, 4096, READ_LIKE] {
            let mut guard = ChunkGuard::with_media_tap(1 << 24);
            let mut got = Vec::new();
            for piece in bytes.chunks(split.min(bytes.len())) {
                guard
                    .check(piece)
                    .unwrap_or_else(|e| panic!("split {split}: {e}"));
                got.extend(std::iter::from_fn(|| guard.next_media()));
            }
            assert_eq!(got, expected, "split {split}");
        }
        // Without the tap, nothing is kept.
        let mut guard = ChunkGuard::new(1 << 24);
        guard.check(&bytes).unwrap();
        assert_eq!(guard.next_media(), None);
    }
    const READ_LIKE: usize = 16 * 1024 - 3;

    #[test]
    fn the_media_tap_holds_a_head_however_big_the_message() {
        let mut s = ChunkSerializer::new();
        let mut bytes = s
            .set_max_chunk_size(4096, RtmpTimestamp::new(0))
            .unwrap()
            .bytes;
        let big = message(VIDEO, 1 << 20, 1234, 1);
        bytes.extend_from_slice(&s.serialize(&big, false, false).unwrap().bytes);
        let mut guard = ChunkGuard::with_media_tap(4 << 20);
        let mut got = Vec::new();
        for piece in bytes.chunks(16 * 1024) {
            guard.check(piece).unwrap();
            let tap = guard.media.as_ref().unwrap();
            assert!(
                tap.head.capacity() <= MEDIA_HEAD_BYTES,
                "{}",
                tap.head.capacity()
            );
            assert!(guard.command.capacity() == 0 && guard.header.capacity() <= 18);
            got.extend(std::iter::from_fn(|| guard.next_media()));
        }
        assert_eq!(
            got,
            [MediaMessage {
                is_video: true,
                timestamp_ms: 1234,
                length: 1 << 20,
                data: big.data.slice(..MEDIA_HEAD_BYTES),
            }]
        );
    }

    #[test]
    fn an_empty_message_is_framed_as_rml_rtmp_frames_it() {
        // A zero-length message on stream 3, then a 2-byte one on stream 4.
        let bytes = [
            0x03, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, //
            0x04, 0, 0, 0, 0, 0, 2, 8, 0, 0, 0, 0, 0xaf, 0x01,
        ];
        let mut d = ChunkDeserializer::new();
        let mut lengths = Vec::new();
        let mut input = &bytes[..];
        while let Some(m) = d.get_next_message(input).unwrap() {
            input = &[];
            lengths.push(m.data.len());
        }
        assert_eq!(lengths, [0, 2]);
        let mut guard = ChunkGuard::new(1 << 24);
        guard.check(&bytes).unwrap();
        assert!(guard.open.is_none() && guard.stage == Stage::Header);
    }

    #[test]
    fn an_amf0_command_of_fewer_than_three_values_is_rejected() {
        use rml_amf0::Amf0Value;
        let command = |values: Vec<Amf0Value>| {
            let payload = rml_amf0::serialize(&values).unwrap();
            // Type 0 header on chunk stream 3: timestamp 0, length, type 20, message stream 0.
            let len = payload.len() as u32;
            let mut chunk = vec![0x03, 0, 0, 0];
            chunk.extend_from_slice(&len.to_be_bytes()[1..]);
            chunk.push(20);
            chunk.extend_from_slice(&[0, 0, 0, 0]);
            chunk.extend_from_slice(&payload);
            chunk
        };
        let short = command(vec![Amf0Value::Utf8String("_result".into())]);
        // The same as an AMF3 command (type 17, one format byte first), found by the rtmp target.
        let amf3 = [0x03, 0, 0, 0, 0, 0, 4, 17, 0, 0, 0, 0, 0, 2, 0, 1, b'x'];
        assert_eq!(
            ChunkGuard::new(1 << 20).check(&amf3),
            Err(ChunkError::ShortCommand { csid: 3, values: 1 })
        );
        // An AMF3 command without the format byte: rml_rtmp reads all of it as AMF0 (found by
        // the rtmp target once the guard skipped a first byte that was not 0).
        let bare = [0x03, 0, 0, 0, 0, 0, 4, 17, 0, 0, 0, 0, 2, 0, 1, b'x'];
        assert_eq!(
            ChunkGuard::new(1 << 20).check(&bare),
            Err(ChunkError::ShortCommand { csid: 3, values: 1 })
        );
        assert_eq!(
            ChunkGuard::new(1 << 20).check(&short),
            Err(ChunkError::ShortCommand { csid: 3, values: 1 })
        );
        let whole = command(vec![
            Amf0Value::Utf8String("_result".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Null,
        ]);
        assert_eq!(ChunkGuard::new(1 << 20).check(&whole), Ok(()));
    }

    #[test]
    fn rejects_what_rml_rtmp_cannot_follow() {
        // A new type 0 header on the same stream before its message is complete.
        let mut b = vec![0x03, 0, 0, 0, 0x00, 0x01, 0x00, 0x14, 0, 0, 0, 0];
        b.extend_from_slice(&[0u8; 128]);
        b.extend_from_slice(&[0x03, 0, 0, 0, 0x00, 0x00, 0x10, 0x14, 0, 0, 0, 0]);
        assert!(matches!(
            ChunkGuard::new(1 << 24).check(&b),
            Err(ChunkError::HeaderInsideMessage {
                csid: 3,
                format: 0,
                ..
            })
        ));
        // A type 3 header on a stream never opened.
        assert_eq!(
            ChunkGuard::new(1 << 24).check(&[0xc5]),
            Err(ChunkError::NoPreviousHeader { csid: 5, format: 3 })
        );
        // A type 1 header whose extended timestamp is below the marker.
        let mut b = vec![0x03, 0, 0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0xaf];
        b.extend_from_slice(&[0x43, 0xff, 0xff, 0xff, 0, 0, 1, 8, 0, 0, 0, 5, 0xaf]);
        assert_eq!(
            ChunkGuard::new(1 << 24).check(&b),
            Err(ChunkError::ExtendedTimestampTooSmall { csid: 3, value: 5 })
        );
        // SetChunkSize 0.
        let b = [0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            ChunkGuard::new(1 << 24).check(&b),
            Err(ChunkError::BadChunkSize(0))
        );
        // A message longer than the bound, refused at its header.
        let b = [0x06, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0];
        assert_eq!(
            ChunkGuard::new(4 << 20).check(&b),
            Err(ChunkError::TooLarge {
                csid: 6,
                length: 0xff_ffff,
                max: 4 << 20
            })
        );
    }
}

//! Sans-IO MPEG-TS demuxer, "only as far as needed" for a load-testing HLS
//! client: find the H.264 and AAC streams via PAT/PMT, reassemble video PES
//! packets into Annex B access units (to read stamps and keyframes), count
//! audio frames, and count continuity errors as a transport-health signal.
//!
//! Limitations (fine for HLS segments from live servers): PSI sections must
//! fit in one TS packet and their CRC is not checked; only the first program
//! and the first H.264/AAC stream of it are followed.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, Bytes, BytesMut};

pub const TS_PACKET_LEN: usize = 188;
const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;
const NULL_PID: u16 = 0x1fff;
pub const STREAM_TYPE_H264: u8 = 0x1b;
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// Fixed PES header part before optional fields.
const PES_FIXED_HEADER: usize = 9;

/// Bytes of each video access unit an HLS viewer keeps ([`TsDemuxer::keeping_video_heads`]); the
/// rest is only scanned for an IDR slice, so a viewer's memory does not grow with keyframes. What
/// it needs from the head is our stamp SEI, which our publisher puts first in every frame
/// (`SyntheticVideo::frame_tag`), at most ~60 bytes with its start code once escaped. A server
/// remuxing to TS may put an access unit delimiter (6 bytes) and, on keyframes, SPS and PPS
/// (tens of bytes) in front; 512 leaves room for all of that several times over.
pub const VIDEO_HEAD_KEPT: usize = 512;

/// One reassembled video PES: normally exactly one access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoAccessUnit {
    pub pts_90k: Option<u64>,
    pub dts_90k: Option<u64>,
    /// Annex B byte stream (start codes included): the whole access unit, or only its first
    /// bytes when the demuxer keeps heads ([`TsDemuxer::keeping_video_heads`]).
    pub data: Bytes,
    /// The whole access unit's size, whether or not all of it is in `data`.
    pub size: usize,
    /// Contains an IDR slice (NAL type 5), anywhere in the whole access unit.
    pub is_keyframe: bool,
}

/// Finds whether an Annex B stream fed in pieces has a NAL unit of type 5 (IDR slice), holding
/// only the last two bytes and whether a start code just ended, so a start code or NAL header
/// split between PES packets or reads is still seen. Same answer as looking at the first byte
/// after every `00 00 01` of the whole stream (as `annexb_nal_units` does).
#[derive(Debug, Clone)]
struct IdrScanner {
    /// The two bytes before the next one fed (non-zero at first: nothing precedes the stream).
    last_two: [u8; 2],
    /// The last byte fed ended a start code, so the next one is a NAL header.
    at_nal_header: bool,
    found: bool,
}

impl Default for IdrScanner {
    fn default() -> Self {
        IdrScanner {
            last_two: [0xff, 0xff],
            at_nal_header: false,
            found: false,
        }
    }
}

impl IdrScanner {
    fn feed(&mut self, data: &[u8]) {
        if self.found || data.is_empty() {
            return;
        }
        if self.at_nal_header && is_idr_header(data[0]) {
            self.found = true;
            return;
        }
        self.at_nal_header = false;
        // A start code ends at every 0x01 preceded by two zero bytes; those may be the carried
        // ones.
        let carried = self.last_two;
        let before = |i: usize| if i >= 1 { data[i - 1] } else { carried[1] };
        let before_that = |i: usize| if i >= 2 { data[i - 2] } else { carried[i] };
        for (i, _) in data.iter().enumerate().filter(|&(_, &b)| b == 1) {
            if before(i) != 0 || before_that(i) != 0 {
                continue;
            }
            match data.get(i + 1) {
                Some(&header) if is_idr_header(header) => {
                    self.found = true;
                    return;
                }
                Some(_) => {}
                None => self.at_nal_header = true,
            }
        }
        self.last_two = match data {
            [.., a, b] => [*a, *b],
            [b] => [self.last_two[1], *b],
            [] => self.last_two,
        };
    }
}

fn is_idr_header(nal_header: u8) -> bool {
    nal_header & 0x1f == 5
}

/// A PES packet being received. Its start (header and, for video, the head of its payload, or
/// all of it when heads are not limited) is kept; the rest is only counted and, for video,
/// scanned for an IDR slice.
#[derive(Debug, Default)]
struct PesAssembly {
    /// The kept start of the PES packet (header included), so a header split across TS packets
    /// needs no special handling.
    bytes: BytesMut,
    /// Bytes of the PES packet received so far, kept or not.
    received: usize,
    /// Payload bytes kept after the PES header (`usize::MAX`: all).
    head_limit: usize,
    idr: IdrScanner,
}

impl PesAssembly {
    fn new(head_limit: usize) -> Self {
        // With a limited head, the most ever kept is reserved once, so the buffer never grows
        // (nor doubles) past it.
        let bytes = if head_limit == usize::MAX {
            BytesMut::new()
        } else {
            BytesMut::with_capacity(max_kept_pes_bytes(head_limit))
        };
        PesAssembly {
            bytes,
            received: 0,
            head_limit,
            idr: IdrScanner::default(),
        }
    }

    /// Where the payload starts, once the fixed header has come.
    fn payload_start(&self) -> Option<usize> {
        (self.bytes.len() >= PES_FIXED_HEADER)
            .then(|| PES_FIXED_HEADER + usize::from(self.bytes[PES_FIXED_HEADER - 1]))
    }

    fn extend(&mut self, mut data: &[u8]) {
        // The fixed header is always kept whole: it says where the payload starts.
        if self.bytes.len() < PES_FIXED_HEADER {
            let take = (PES_FIXED_HEADER - self.bytes.len()).min(data.len());
            self.bytes.extend_from_slice(&data[..take]);
            self.received += take;
            data = &data[take..];
        }
        let Some(payload_start) = self.payload_start() else {
            return;
        };
        let at = self.received;
        let keep_until = payload_start.saturating_add(self.head_limit);
        if at < keep_until {
            let take = (keep_until - at).min(data.len());
            self.bytes.extend_from_slice(&data[..take]);
        }
        // Only payload bytes are scanned (PTS bytes could look like a start code), and none past
        // a declared end (the rest of the TS packet is not part of this PES).
        let scan_from = payload_start.saturating_sub(at).min(data.len());
        let end = declared_pes_len(&self.bytes).unwrap_or(usize::MAX);
        let scan_to = end.saturating_sub(at).min(data.len()).max(scan_from);
        self.idr.feed(&data[scan_from..scan_to]);
        self.received += data.len();
    }
}

/// The most a video PES assembly keeps with payload heads of `head` bytes: the fixed header, the
/// largest optional header (its length is one byte), then the head.
pub const fn max_kept_pes_bytes(head: usize) -> usize {
    PES_FIXED_HEADER + u8::MAX as usize + head
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video,
    Audio,
}

#[derive(Debug)]
pub struct TsDemuxer {
    buf: BytesMut,
    /// Payload bytes of each video access unit kept (`usize::MAX`: all).
    video_head_limit: usize,
    pmt_pid: Option<u16>,
    video_pid: Option<u16>,
    audio_pid: Option<u16>,
    last_cc: HashMap<u16, u8>,
    video: Option<PesAssembly>,
    audio: Option<PesAssembly>,
    video_out: VecDeque<VideoAccessUnit>,
    /// Lost sync; the next candidate must be confirmed by a following
    /// sync byte.
    syncing: bool,
    packets: u64,
    continuity_errors: u64,
    sync_losses: u64,
    dropped_pes: u64,
    audio_pes: u64,
    audio_frames: u64,
}

impl Default for TsDemuxer {
    fn default() -> Self {
        TsDemuxer {
            buf: BytesMut::new(),
            video_head_limit: usize::MAX,
            pmt_pid: None,
            video_pid: None,
            audio_pid: None,
            last_cc: HashMap::new(),
            video: None,
            audio: None,
            video_out: VecDeque::new(),
            syncing: false,
            packets: 0,
            continuity_errors: 0,
            sync_losses: 0,
            dropped_pes: 0,
            audio_pes: 0,
            audio_frames: 0,
        }
    }
}

impl TsDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the demuxer keep only the first `head` bytes of each video access unit
    /// ([`VideoAccessUnit::data`]); the rest is scanned for an IDR slice and counted, not held.
    /// So what a demuxer holds for video is bounded by [`max_kept_pes_bytes`]`(head)`, whatever
    /// the size of keyframes. Keyframe flags, timestamps and sizes are as without it.
    pub fn keeping_video_heads(mut self, head: usize) -> Self {
        self.video_head_limit = head;
        self
    }

    /// Feeds bytes; chunk boundaries may fall anywhere. Complete packets are
    /// processed immediately, so little more than a packet stays buffered.
    pub fn push(&mut self, mut data: &[u8]) {
        // In sync, packets are handled straight from `data`: only a packet cut by the chunk's
        // end is buffered, not the chunk (an HLS viewer's reads are 8 KiB, held by every
        // segment in flight). Lost sync takes the buffered path below.
        if !self.syncing && self.buf.first() == Some(&SYNC_BYTE) {
            // The packet the previous chunk began.
            let missing = TS_PACKET_LEN.saturating_sub(self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..missing]);
            data = &data[missing..];
            if self.buf.len() == TS_PACKET_LEN {
                let packet = std::mem::take(&mut self.buf);
                self.packets += 1;
                self.handle_packet(&packet);
                self.buf = packet;
                self.buf.clear();
            }
        }
        if !self.syncing && self.buf.is_empty() {
            while data.len() >= TS_PACKET_LEN && data[0] == SYNC_BYTE {
                let (packet, rest) = data.split_at(TS_PACKET_LEN);
                self.packets += 1;
                self.handle_packet(packet);
                data = rest;
            }
        }
        self.buf.extend_from_slice(data);
        loop {
            if self.buf.is_empty() {
                return;
            }
            if self.buf[0] != SYNC_BYTE {
                if !self.syncing {
                    self.sync_losses += 1;
                    self.syncing = true;
                }
                let skip = self
                    .buf
                    .iter()
                    .position(|&b| b == SYNC_BYTE)
                    .unwrap_or(self.buf.len());
                self.buf.advance(skip);
                continue;
            }
            if self.syncing {
                // 0x47 also occurs inside payloads; only trust a candidate
                // once the next packet starts with a sync byte too, waiting
                // for more data if needed.
                if self.buf.len() <= TS_PACKET_LEN {
                    return;
                }
                if self.buf[TS_PACKET_LEN] != SYNC_BYTE {
                    self.buf.advance(1);
                    continue;
                }
                self.syncing = false;
            }
            if self.buf.len() < TS_PACKET_LEN {
                return;
            }
            let packet = self.buf.split_to(TS_PACKET_LEN);
            self.packets += 1;
            self.handle_packet(&packet);
        }
    }

    /// End of input (e.g. end of an HLS segment): completes PES packets of
    /// unbounded length, since no following payload_unit_start will come.
    /// Leftover partial TS packets are discarded.
    pub fn finish(&mut self) {
        self.flush(Kind::Video);
        self.flush(Kind::Audio);
        self.buf.clear();
    }

    pub fn next_video_access_unit(&mut self) -> Option<VideoAccessUnit> {
        self.video_out.pop_front()
    }

    pub fn video_pid(&self) -> Option<u16> {
        self.video_pid
    }

    pub fn audio_pid(&self) -> Option<u16> {
        self.audio_pid
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Packets whose continuity_counter skipped (lost/reordered packets),
    /// excluding signalled discontinuities and single duplicates.
    pub fn continuity_errors(&self) -> u64 {
        self.continuity_errors
    }

    /// Times the byte stream had to be resynchronised on 0x47.
    pub fn sync_losses(&self) -> u64 {
        self.sync_losses
    }

    /// PES packets discarded because a continuity error corrupted them or a
    /// PES with a declared length ended early.
    pub fn dropped_pes(&self) -> u64 {
        self.dropped_pes
    }

    /// Completed audio PES packets.
    pub fn audio_pes(&self) -> u64 {
        self.audio_pes
    }

    /// ADTS frames (1024 samples each) found in completed audio PES packets.
    /// HLS muxers usually pack several per PES, so this is the number that
    /// measures audio continuity.
    pub fn audio_frames(&self) -> u64 {
        self.audio_frames
    }

    fn handle_packet(&mut self, p: &[u8]) {
        let transport_error = p[1] & 0x80 != 0;
        let pusi = p[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        let afc = (p[3] >> 4) & 0x03;
        let cc = p[3] & 0x0f;
        if transport_error || pid == NULL_PID {
            return;
        }
        let mut offset = 4;
        let mut discontinuity = false;
        if afc & 0x02 != 0 {
            let af_len = usize::from(p[4]);
            discontinuity = af_len > 0 && p[5] & 0x80 != 0;
            offset = 5 + af_len;
        }
        if afc & 0x01 == 0 || offset >= TS_PACKET_LEN {
            // No payload (or a malformed adaptation field eating it); the
            // counter only advances on packets with payload.
            return;
        }
        if let Some(&last) = self.last_cc.get(&pid)
            && !discontinuity
        {
            if cc == last {
                return; // duplicate packet, allowed once by the spec
            }
            if cc != (last + 1) & 0x0f {
                self.continuity_errors += 1;
                // The PES in progress lost bytes; do not hand out garbage.
                if let Some(kind) = self.kind_of(pid)
                    && self.slot(kind).take().is_some()
                {
                    self.dropped_pes += 1;
                }
            }
        }
        self.last_cc.insert(pid, cc);
        let payload = &p[offset..];

        if pid == PAT_PID {
            if pusi {
                self.parse_pat(payload);
            }
        } else if Some(pid) == self.pmt_pid {
            if pusi {
                self.parse_pmt(payload);
            }
        } else if let Some(kind) = self.kind_of(pid) {
            if pusi {
                self.flush(kind);
                let head_limit = match kind {
                    Kind::Video => self.video_head_limit,
                    // Audio PES packets are small (a few ADTS frames) and all of them is counted.
                    Kind::Audio => usize::MAX,
                };
                *self.slot(kind) = Some(PesAssembly::new(head_limit));
            }
            // Without a start seen (joined mid-PES or after an error), skip.
            let Some(pes) = self.slot(kind).as_mut() else {
                return;
            };
            pes.extend(payload);
            if let Some(total) = declared_pes_len(&pes.bytes)
                && pes.received >= total
            {
                self.flush(kind);
            }
        }
    }

    fn kind_of(&self, pid: u16) -> Option<Kind> {
        if Some(pid) == self.video_pid {
            Some(Kind::Video)
        } else if Some(pid) == self.audio_pid {
            Some(Kind::Audio)
        } else {
            None
        }
    }

    fn slot(&mut self, kind: Kind) -> &mut Option<PesAssembly> {
        match kind {
            Kind::Video => &mut self.video,
            Kind::Audio => &mut self.audio,
        }
    }

    fn flush(&mut self, kind: Kind) {
        let Some(pes) = self.slot(kind).take() else {
            return;
        };
        let is_keyframe = pes.idr.found;
        let Some(parsed) = parse_pes(pes.bytes.freeze(), pes.received) else {
            self.dropped_pes += 1;
            return;
        };
        match kind {
            Kind::Video => {
                self.video_out.push_back(VideoAccessUnit {
                    pts_90k: parsed.pts,
                    dts_90k: parsed.dts,
                    data: parsed.payload,
                    size: parsed.size,
                    is_keyframe,
                });
            }
            Kind::Audio => {
                self.audio_pes += 1;
                self.audio_frames += count_adts_frames(&parsed.payload);
            }
        }
    }

    /// PSI section start after pointer_field, or None if malformed.
    fn section(payload: &[u8]) -> Option<&[u8]> {
        let pointer = usize::from(*payload.first()?);
        let sec = payload.get(1 + pointer..)?;
        let len = usize::from(u16::from_be_bytes([*sec.get(1)? & 0x0f, *sec.get(2)?]));
        // Section body without the CRC32.
        sec.get(..(3 + len).checked_sub(4)?)
    }

    fn parse_pat(&mut self, payload: &[u8]) {
        let Some(sec) = Self::section(payload) else {
            return;
        };
        if sec.len() < 8 || sec[0] != 0x00 {
            return;
        }
        self.pmt_pid = sec[8..].chunks_exact(4).find_map(|e| {
            let program = u16::from_be_bytes([e[0], e[1]]);
            // Program 0 points at the network PID, not a PMT.
            (program != 0).then(|| u16::from_be_bytes([e[2] & 0x1f, e[3]]))
        });
    }

    fn parse_pmt(&mut self, payload: &[u8]) {
        let Some(sec) = Self::section(payload) else {
            return;
        };
        if sec.len() < 12 || sec[0] != 0x02 {
            return;
        }
        let info_len = usize::from(u16::from_be_bytes([sec[10] & 0x0f, sec[11]]));
        let mut es = sec.get(12 + info_len..).unwrap_or(&[]);
        let (mut video, mut audio) = (None, None);
        while es.len() >= 5 {
            let stream_type = es[0];
            let pid = u16::from_be_bytes([es[1] & 0x1f, es[2]]);
            let es_info_len = usize::from(u16::from_be_bytes([es[3] & 0x0f, es[4]]));
            match stream_type {
                STREAM_TYPE_H264 if video.is_none() => video = Some(pid),
                STREAM_TYPE_AAC_ADTS if audio.is_none() => audio = Some(pid),
                _ => {}
            }
            es = es.get(5 + es_info_len..).unwrap_or(&[]);
        }
        // A changed PID means a new stream; unfinished PES of the old one
        // cannot continue.
        if video != self.video_pid {
            self.video = None;
            self.video_pid = video;
        }
        if audio != self.audio_pid {
            self.audio = None;
            self.audio_pid = audio;
        }
    }
}

/// Total PES length (header included) if PES_packet_length is non-zero.
fn declared_pes_len(pes: &[u8]) -> Option<usize> {
    let len = usize::from(u16::from_be_bytes([*pes.get(4)?, *pes.get(5)?]));
    (len != 0).then_some(6 + len)
}

struct ParsedPes {
    pts: Option<u64>,
    dts: Option<u64>,
    /// The payload, or its kept head.
    payload: Bytes,
    /// The whole payload's size.
    size: usize,
}

/// Parses a PES packet of which `received` bytes came and the first of them are in `pes` (the
/// header, then all or the head of the payload).
fn parse_pes(pes: Bytes, received: usize) -> Option<ParsedPes> {
    if pes.len() < PES_FIXED_HEADER || pes[..3] != [0, 0, 1] {
        return None;
    }
    let end = match declared_pes_len(&pes) {
        Some(total) if received < total => return None, // truncated
        Some(total) => total,
        None => received,
    };
    let flags = pes[7];
    let header_len = usize::from(pes[8]);
    let start = PES_FIXED_HEADER + header_len;
    if start > end {
        return None;
    }
    let pts = (flags & 0x80 != 0)
        .then(|| pes.get(9..14).map(read_timestamp))
        .flatten();
    let dts = (flags & 0xc0 == 0xc0)
        .then(|| pes.get(14..19).map(read_timestamp))
        .flatten();
    let kept_end = end.min(pes.len());
    Some(ParsedPes {
        pts,
        dts,
        payload: pes.slice(start.min(kept_end)..kept_end),
        size: end - start,
    })
}

/// 33-bit PTS/DTS spread over 5 bytes with marker bits.
fn read_timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}

fn count_adts_frames(mut data: &[u8]) -> u64 {
    let mut n = 0;
    while data.len() >= 7 && data[0] == 0xff && data[1] & 0xf6 == 0xf0 {
        let len = usize::from(data[3] & 0x03) << 11
            | usize::from(data[4]) << 3
            | usize::from(data[5] >> 5);
        if len < 7 {
            break;
        }
        n += 1;
        data = data.get(len..).unwrap_or(&[]);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::stamp::annexb_nal_units;

    /// A tiny TS muxer: PAT, PMT and PES packetisation with stuffing.
    struct Mux {
        cc: HashMap<u16, u8>,
        out: Vec<u8>,
    }

    const PMT: u16 = 0x1000;
    const VID: u16 = 0x100;
    const AUD: u16 = 0x101;

    impl Mux {
        fn new() -> Self {
            let mut m = Mux {
                cc: HashMap::new(),
                out: Vec::new(),
            };
            let mut pat = vec![0u8, 0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1];
            pat.extend_from_slice(&(0xe000 | PMT).to_be_bytes());
            pat.extend_from_slice(&[0; 4]); // CRC (not checked)
            m.packet(PAT_PID, true, &pat, false);
            let mut pmt = vec![0u8, 0x02, 0xb0, 23, 0, 1, 0xc1, 0, 0];
            pmt.extend_from_slice(&(0xe000 | VID).to_be_bytes()); // PCR PID
            pmt.extend_from_slice(&[0xf0, 0]);
            pmt.extend_from_slice(&[STREAM_TYPE_H264, 0xe1, 0x00, 0xf0, 0]);
            pmt.extend_from_slice(&[STREAM_TYPE_AAC_ADTS, 0xe1, 0x01, 0xf0, 0]);
            pmt.extend_from_slice(&[0; 4]);
            m.packet(PMT, true, &pmt, false);
            m
        }

        /// One TS packet; pads with adaptation-field stuffing when short.
        fn packet(&mut self, pid: u16, pusi: bool, payload: &[u8], discontinuity: bool) {
            assert!(payload.len() <= 184);
            let cc = self.cc.entry(pid).or_insert(15);
            *cc = (*cc + 1) & 0x0f;
            let mut p = vec![SYNC_BYTE, (pusi as u8) << 6 | (pid >> 8) as u8, pid as u8];
            let stuffing = 184 - payload.len();
            if stuffing > 0 || discontinuity {
                let stuffing = stuffing.max(2);
                p.push(0x30 | *cc);
                p.push((stuffing - 1) as u8);
                if stuffing > 1 {
                    p.push(if discontinuity { 0x80 } else { 0 });
                    p.extend(std::iter::repeat_n(0xff, stuffing - 2));
                }
            } else {
                p.push(0x10 | *cc);
            }
            p.extend_from_slice(payload);
            assert_eq!(p.len(), TS_PACKET_LEN);
            self.out.extend_from_slice(&p);
        }

        fn pes(&mut self, pid: u16, stream_id: u8, pts: u64, es: &[u8], bounded: bool) {
            let mut pes = vec![0, 0, 1, stream_id];
            let len = if bounded { 3 + 5 + es.len() } else { 0 };
            pes.extend_from_slice(&(len as u16).to_be_bytes());
            pes.extend_from_slice(&[0x80, 0x80, 5]);
            pes.extend_from_slice(&[
                0x21 | ((pts >> 29) & 0x0e) as u8,
                (pts >> 22) as u8,
                0x01 | ((pts >> 14) & 0xfe) as u8,
                (pts >> 7) as u8,
                0x01 | ((pts << 1) & 0xfe) as u8,
            ]);
            pes.extend_from_slice(es);
            for (i, chunk) in pes.chunks(184).enumerate() {
                self.packet(pid, i == 0, chunk, false);
            }
        }
    }

    fn access_unit(idr: bool, fill: usize) -> Vec<u8> {
        let mut au = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1];
        au.extend_from_slice(if idr { &[0x65, 0x88] } else { &[0x41, 0x9a] });
        au.extend(std::iter::repeat_n(0x5a, fill));
        au
    }

    fn adts(frames: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..frames {
            let len = 7 + 10;
            out.extend_from_slice(&[
                0xff,
                0xf1,
                0x50,
                0x80 | (len >> 11) as u8,
                (len >> 3) as u8,
                ((len & 7) << 5) as u8 | 0x1f,
                0xfc,
            ]);
            out.extend_from_slice(&[0; 10]);
        }
        out
    }

    fn sample_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut m = Mux::new();
        let aus: Vec<Vec<u8>> = (0..5)
            .map(|i| access_unit(i % 4 == 0, 100 + i * 150))
            .collect();
        for (i, au) in aus.iter().enumerate() {
            m.pes(VID, 0xe0, 1 << 32 | (i as u64 * 3000), au, false);
            m.pes(AUD, 0xc0, i as u64 * 3000, &adts(3), true);
        }
        (m.out, aus)
    }

    fn collect(d: &mut TsDemuxer) -> Vec<VideoAccessUnit> {
        std::iter::from_fn(|| d.next_video_access_unit()).collect()
    }

    #[test]
    fn demuxes_video_and_audio_in_any_chunking() {
        let (ts, aus) = sample_stream();
        for chunk in [1usize, 7, 188, 200, 1000, ts.len()] {
            let mut d = TsDemuxer::new();
            let mut got = Vec::new();
            for c in ts.chunks(chunk) {
                d.push(c);
                got.extend(collect(&mut d));
            }
            // The last unbounded video PES only ends at finish().
            assert_eq!(got.len(), 4, "chunk {chunk}");
            d.finish();
            got.extend(collect(&mut d));
            assert_eq!(got.len(), 5);
            for (i, au) in got.iter().enumerate() {
                assert_eq!(au.data, aus[i]);
                assert_eq!(au.pts_90k, Some(1 << 32 | (i as u64 * 3000)));
                assert_eq!(au.is_keyframe, i % 4 == 0);
            }
            assert_eq!(d.video_pid(), Some(VID));
            assert_eq!(d.audio_pid(), Some(AUD));
            assert_eq!(d.audio_pes(), 5);
            assert_eq!(d.audio_frames(), 15);
            assert_eq!(d.continuity_errors(), 0);
            assert_eq!(d.sync_losses(), 0);
        }
    }

    /// A deterministic xorshift, for random splits without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// `data` cut into pieces of 1..=max bytes at random.
    fn random_pieces<'a>(data: &'a [u8], rng: &mut Rng, max: usize) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at((1 + rng.below(max)).min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }

    fn has_idr_whole(data: &[u8]) -> bool {
        annexb_nal_units(data).any(|n| is_idr_header(n[0]))
    }

    #[test]
    fn idr_scanner_agrees_with_whole_nal_parsing_in_any_split() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut cases: Vec<Vec<u8>> = vec![
            vec![0, 0, 1, 0x65],
            vec![0, 0, 0, 1, 0x41, 0, 0, 1, 0x25],
            vec![0, 0, 1],
            vec![0, 1, 0x65, 0, 0, 1, 0x41],
            vec![0, 0, 1, 0, 0, 1, 0x65],
            vec![0x65, 0, 0, 2, 0x65],
        ];
        // Random streams over a small alphabet, so start codes and type-5 headers are common.
        for _ in 0..300 {
            let len = rng.below(40);
            cases.push(
                (0..len)
                    .map(|_| [0, 0, 0, 1, 0x65, 0x41, 0x25, 0x05][rng.below(8)])
                    .collect(),
            );
        }
        for case in &cases {
            let expected = has_idr_whole(case);
            for max in [1, 2, 3, 5, 64] {
                let mut scanner = IdrScanner::default();
                for piece in random_pieces(case, &mut rng, max) {
                    scanner.feed(piece);
                }
                assert_eq!(scanner.found, expected, "{case:02x?} in pieces of <= {max}");
            }
        }
    }

    /// An access unit as our publisher's frames come out of a remuxer: AUD, stamp SEI, slice.
    fn stamped_access_unit(sequence: u64, idr: bool, fill: usize) -> Vec<u8> {
        use crate::media::stamp::FrameStamp;
        let mut au = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1];
        au.extend_from_slice(
            &FrameStamp {
                stream_tag: 7,
                sequence,
                sent_at_unix_micros: 1_700_000_000_000_000 + sequence,
            }
            .to_sei_nal(),
        );
        au.extend_from_slice(&[0, 0, 1]);
        au.extend_from_slice(if idr { &[0x65, 0x88] } else { &[0x41, 0x9a] });
        au.extend((0..fill).map(|i| (i % 251) as u8 | 0x10));
        au
    }

    fn stamped_stream() -> Vec<u8> {
        let mut m = Mux::new();
        for i in 0..12u64 {
            let au = stamped_access_unit(i, i % 5 == 0, [10, 3000, 40_000][i as usize % 3]);
            m.pes(VID, 0xe0, i * 3000, &au, i % 2 == 0 && au.len() < 60_000);
            m.pes(AUD, 0xc0, i * 3000, &adts(2), true);
        }
        m.out
    }

    /// What a viewer reads of one access unit: pts, keyframe, size and stamp sequence.
    type UnitSummary = (Option<u64>, bool, usize, u64);

    /// Every access unit's summary of `ts` fed in `pieces`, and the audio frames counted.
    fn summary(d: TsDemuxer, pieces: &[&[u8]]) -> (Vec<UnitSummary>, u64) {
        use crate::media::stamp::find_stamp_in_annexb;
        let mut d = d;
        let mut got = Vec::new();
        for piece in pieces {
            d.push(piece);
            got.extend(collect(&mut d));
        }
        d.finish();
        got.extend(collect(&mut d));
        let units = got
            .iter()
            .map(|au| {
                let stamp = find_stamp_in_annexb(&au.data).expect("stamp in the kept head");
                (au.pts_90k, au.is_keyframe, au.size, stamp.sequence)
            })
            .collect();
        (units, d.audio_frames())
    }

    #[test]
    fn video_heads_give_the_same_keyframes_stamps_and_sizes_in_any_split() {
        let ts = stamped_stream();
        let whole = summary(TsDemuxer::new(), &[&ts]);
        assert_eq!(whole.0.len(), 12);
        assert_eq!(whole.1, 24);
        for (i, (_, key, _, seq)) in whole.0.iter().enumerate() {
            assert_eq!((*key, *seq), (i % 5 == 0, i as u64));
        }
        let mut rng = Rng(42);
        let ones: Vec<&[u8]> = ts.chunks(1).collect();
        let randoms = random_pieces(&ts, &mut rng, 3000);
        for pieces in [vec![&ts[..]], ones, randoms] {
            let heads = TsDemuxer::new().keeping_video_heads(VIDEO_HEAD_KEPT);
            assert_eq!(summary(heads, &pieces), whole);
            assert_eq!(summary(TsDemuxer::new(), &pieces), whole);
        }
        // The heads are the access units' first bytes.
        let mut full = TsDemuxer::new();
        let mut heads = TsDemuxer::new().keeping_video_heads(VIDEO_HEAD_KEPT);
        full.push(&ts);
        heads.push(&ts);
        full.finish();
        heads.finish();
        for (f, h) in collect(&mut full).iter().zip(collect(&mut heads)) {
            assert_eq!(h.data, f.data[..f.size.min(VIDEO_HEAD_KEPT)]);
            assert_eq!(f.data.len(), f.size);
        }
    }

    #[test]
    fn a_megabyte_access_unit_is_held_in_bounded_memory() {
        const SIZE: usize = 1 << 20;
        // No IDR slice at the start: its only one comes last, after a start code that a TS
        // packet boundary can split, so the whole access unit must be scanned.
        let mut au = stamped_access_unit(3, false, SIZE);
        au.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x80]);
        let mut m = Mux::new();
        m.pes(VID, 0xe0, 90_000, &au, false);
        let bound = max_kept_pes_bytes(VIDEO_HEAD_KEPT);
        let mut d = TsDemuxer::new().keeping_video_heads(VIDEO_HEAD_KEPT);
        let mut most = 0;
        for piece in m.out.chunks(1316) {
            d.push(piece);
            if let Some(pes) = &d.video {
                most = most.max(pes.bytes.capacity());
            }
        }
        assert!(most <= bound, "held {most} bytes, bound {bound}");
        d.finish();
        let got = collect(&mut d);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].size, au.len());
        assert_eq!(got[0].data, au[..VIDEO_HEAD_KEPT]);
        assert!(got[0].is_keyframe);
    }

    #[test]
    fn empty_psi_sections_are_ignored() {
        // section_length 1 is shorter than the section's own CRC, so nothing of it is left: a
        // PAT or PMT like that must be skipped, not indexed (found by fuzzing: fuzz/regressions/ts/).
        let mut m = Mux::new();
        m.packet(PAT_PID, true, &[0, 0x00, 0xb0, 0x01], false);
        m.packet(PMT, true, &[0, 0x02, 0xb0, 0x01], false);
        let mut d = TsDemuxer::new();
        d.push(&m.out);
        d.finish();
        assert_eq!(d.packets(), 4);
        assert_eq!(d.video_pid(), Some(VID));
        assert_eq!(d.audio_pid(), Some(AUD));
    }

    #[test]
    fn lost_packet_counts_continuity_error_and_drops_pes() {
        let (mut ts, aus) = sample_stream();
        // Remove the continuation packet of a multi-packet video PES.
        let idx = ts
            .chunks(188)
            .position(|p| u16::from_be_bytes([p[1] & 0x1f, p[2]]) == VID && p[1] & 0x40 == 0)
            .unwrap();
        ts.drain(idx * 188..(idx + 1) * 188);
        let mut d = TsDemuxer::new();
        d.push(&ts);
        d.finish();
        let got = collect(&mut d);
        assert_eq!(d.continuity_errors(), 1);
        assert_eq!(d.dropped_pes(), 1);
        // AU 1 lost its tail and is dropped; the others are intact.
        let data: Vec<&Bytes> = got.iter().map(|au| &au.data).collect();
        assert_eq!(
            data,
            vec![&aus[0][..], &aus[2][..], &aus[3][..], &aus[4][..]]
        );
    }

    #[test]
    fn duplicates_and_discontinuity_flag_are_not_errors() {
        let mut m = Mux::new();
        m.pes(VID, 0xe0, 0, &access_unit(true, 10), false);
        let last = m.out[m.out.len() - 188..].to_vec();
        m.out.extend_from_slice(&last); // duplicate packet
        // Jump the counter but signal it.
        m.cc.insert(VID, 9);
        m.packet(
            VID,
            true,
            &[0, 0, 1, 0xe0, 0, 0, 0x80, 0, 0, 0, 0, 1, 0x41],
            true,
        );
        let mut d = TsDemuxer::new();
        d.push(&m.out);
        d.finish();
        assert_eq!(collect(&mut d).len(), 2);
        assert_eq!(d.continuity_errors(), 0);
    }

    #[test]
    fn in_sync_a_chunk_is_not_buffered_beyond_the_packet_it_cuts() {
        let (ts, _) = sample_stream();
        assert!(ts.len() > 3000, "{}", ts.len());
        let mut d = TsDemuxer::new();
        for c in ts.chunks(1000) {
            d.push(c);
            assert!(d.buf.len() < TS_PACKET_LEN, "{}", d.buf.len());
            // Room for the cut packet, never for the chunk.
            assert!(
                d.buf.capacity() <= 2 * TS_PACKET_LEN,
                "{}",
                d.buf.capacity()
            );
        }
        d.finish();
        assert_eq!(collect(&mut d).len(), 5);
    }

    #[test]
    fn resyncs_after_garbage() {
        let (ts, _) = sample_stream();
        let mut data = vec![0x00, 0x47, 0x12, 0x34];
        data.extend_from_slice(&ts[..188 * 3 + 50]);
        data.extend_from_slice(&[0xde, 0xad]); // junk inside a packet
        data.extend_from_slice(&ts[188 * 3 + 50..]);
        let mut d = TsDemuxer::new();
        for c in data.chunks(97) {
            d.push(c);
        }
        d.finish();
        assert!(d.sync_losses() >= 1);
        // At most the packet containing the junk is lost.
        let got = collect(&mut d);
        assert!(got.len() >= 4, "{}", got.len());
    }

    #[test]
    fn timestamps_and_adts_helpers() {
        assert_eq!(read_timestamp(&[0x21, 0, 1, 0, 1]), 0);
        assert_eq!(
            read_timestamp(&[0x2f, 0xff, 0xff, 0xff, 0xff]),
            (1 << 33) - 1
        );
        assert_eq!(count_adts_frames(&adts(4)), 4);
        assert_eq!(count_adts_frames(&[0xff, 0xf1]), 0);
    }

    /// Remux our synthetic FLV to MPEG-TS with ffmpeg (as a server's HLS
    /// path does) and check that every frame's stamp survives.
    #[test]
    fn ffmpeg_remuxed_synthetic_stream_keeps_stamps() {
        use crate::media::aac::{AudioParams, SyntheticAudio};
        use crate::media::flv_file::write_flv;
        use crate::media::h264::{SyntheticVideo, VideoParams};
        use crate::media::stamp::find_stamp_in_annexb;
        use std::process::Command;

        if !Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            eprintln!("NOTE: ffmpeg not on PATH; skipping TS remux check");
            return;
        }
        let v = SyntheticVideo::new(&VideoParams {
            width: 640,
            height: 360,
            fps: 25,
            bitrate_bps: 500_000,
            gop_frames: 25,
        })
        .unwrap();
        let a = SyntheticAudio::new(&AudioParams {
            bitrate_bps: 64_000,
        })
        .unwrap();
        let dir = std::env::temp_dir();
        let flv = dir.join(format!("xiuload-{}-remux.flv", std::process::id()));
        let ts = dir.join(format!("xiuload-{}-remux.ts", std::process::id()));
        std::fs::write(&flv, write_flv(Some(&v), Some(&a), 3)).unwrap();
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&flv)
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(&ts)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let data = std::fs::read(&ts).unwrap();
        let _ = std::fs::remove_file(&flv);
        let _ = std::fs::remove_file(&ts);

        // As a whole, and keeping only the heads as a viewer does: the stamps are within them.
        for d in [
            TsDemuxer::new(),
            TsDemuxer::new().keeping_video_heads(VIDEO_HEAD_KEPT),
        ] {
            let mut d = d;
            for c in data.chunks(1316) {
                d.push(c);
            }
            d.finish();
            let aus = collect(&mut d);
            assert_eq!(aus.len(), 75);
            for (i, au) in aus.iter().enumerate() {
                let stamp = find_stamp_in_annexb(&au.data).expect("stamp survives remux");
                assert_eq!(stamp.sequence, i as u64);
                assert_eq!(au.is_keyframe, i % 25 == 0, "frame {i}");
                assert!(au.pts_90k.is_some());
            }
            assert_eq!(d.continuity_errors(), 0);
            // 3 s of 1024-sample frames at 44.1 kHz.
            assert!(
                (129..=131).contains(&d.audio_frames()),
                "{}",
                d.audio_frames()
            );
        }
    }
}

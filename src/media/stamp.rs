//! Per-frame identity and send time, carried inside the H.264 bitstream as an
//! SEI `user_data_unregistered` message.
//!
//! Putting the stamp in the elementary stream (rather than in FLV/RTMP
//! metadata) is what lets a subscriber measure end-to-end latency on every
//! output protocol: servers remux RTMP to HTTP-FLV and HLS/MPEG-TS but keep
//! the NAL units, so the same SEI arrives whichever way the frame is read.

use super::bits::{nal_unit, unescape_rbsp};

/// UUID identifying xiuload stamps among other user_data_unregistered SEIs
/// (encoders such as x264 emit their own). Randomly generated, fixed forever.
pub const XIULOAD_SEI_UUID: [u8; 16] = [
    0x78, 0x69, 0x75, 0x6c, 0x6f, 0x61, 0x64, 0x2d, // "xiuload-"
    0x9c, 0x3e, 0x41, 0x52, 0xb7, 0x0d, 0xe4, 0x6a,
];

/// Version of the payload layout after the UUID; bump if fields change.
pub const STAMP_VERSION: u8 = 1;

const SEI_NAL_TYPE: u8 = 6;
const PAYLOAD_TYPE_USER_DATA_UNREGISTERED: u8 = 5;
/// UUID + version + stream_tag + sequence + sent_at.
const PAYLOAD_LEN: usize = 16 + 1 + 4 + 8 + 8;

/// Identity and send time of one published video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameStamp {
    /// Identifies the publisher/stream, so a subscriber can tell streams apart.
    pub stream_tag: u32,
    /// Frame counter within the stream; gaps reveal dropped frames.
    pub sequence: u64,
    /// Wall-clock send time; latency = receive time - this.
    pub sent_at_unix_micros: u64,
}

impl FrameStamp {
    /// The SEI NAL unit (header byte included; no start code or length
    /// prefix), with emulation prevention applied.
    pub fn to_sei_nal(&self) -> Vec<u8> {
        let mut rbsp = Vec::with_capacity(PAYLOAD_LEN + 3);
        rbsp.push(PAYLOAD_TYPE_USER_DATA_UNREGISTERED);
        // PAYLOAD_LEN < 255, so the size needs no 0xFF extension bytes.
        rbsp.push(PAYLOAD_LEN as u8);
        rbsp.extend_from_slice(&XIULOAD_SEI_UUID);
        rbsp.push(STAMP_VERSION);
        rbsp.extend_from_slice(&self.stream_tag.to_be_bytes());
        rbsp.extend_from_slice(&self.sequence.to_be_bytes());
        rbsp.extend_from_slice(&self.sent_at_unix_micros.to_be_bytes());
        // rbsp_trailing_bits: the payload is byte-aligned, so just the stop bit.
        rbsp.push(0x80);
        nal_unit(0, SEI_NAL_TYPE, &rbsp)
    }

    /// Parses an SEI NAL unit (header byte included) and returns our stamp if
    /// one of its messages is ours. Other SEI messages are skipped, so this
    /// also works if a server or transcoder merged SEIs.
    pub fn from_sei_nal(nal: &[u8]) -> Option<FrameStamp> {
        let (&header, payload) = nal.split_first()?;
        if header & 0x1f != SEI_NAL_TYPE {
            return None;
        }
        let rbsp = unescape_rbsp(payload);
        let mut pos = 0usize;
        // Each sei_message needs at least type + size bytes; a lone 0x80 is
        // the trailing bits.
        while pos + 2 <= rbsp.len() {
            let (payload_type, next) = read_ff_coded(&rbsp, pos)?;
            let (payload_size, next) = read_ff_coded(&rbsp, next)?;
            let start = next;
            let end = start.checked_add(payload_size)?;
            if end > rbsp.len() {
                return None;
            }
            if payload_type == usize::from(PAYLOAD_TYPE_USER_DATA_UNREGISTERED)
                && let Some(stamp) = parse_payload(&rbsp[start..end])
            {
                return Some(stamp);
            }
            pos = end;
        }
        None
    }
}

/// Reads an SEI payloadType/payloadSize value: a run of 0xFF bytes each
/// adding 255, then a final byte.
fn read_ff_coded(buf: &[u8], mut pos: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    loop {
        let b = *buf.get(pos)?;
        pos += 1;
        value = value.checked_add(usize::from(b))?;
        if b != 0xff {
            return Some((value, pos));
        }
    }
}

fn parse_payload(p: &[u8]) -> Option<FrameStamp> {
    if p.len() < PAYLOAD_LEN || p[..16] != XIULOAD_SEI_UUID || p[16] != STAMP_VERSION {
        return None;
    }
    let stream_tag = u32::from_be_bytes(p[17..21].try_into().ok()?);
    let sequence = u64::from_be_bytes(p[21..29].try_into().ok()?);
    let sent_at_unix_micros = u64::from_be_bytes(p[29..37].try_into().ok()?);
    Some(FrameStamp {
        stream_tag,
        sequence,
        sent_at_unix_micros,
    })
}

/// Looks for a stamp among length-prefixed NAL units (AVCC, as in FLV/RTMP
/// video payloads after the 5-byte AVC header). `length_size` is
/// lengthSizeMinusOne + 1 from the decoder configuration record (1..=4).
/// Stops quietly at a truncated or malformed length.
pub fn find_stamp_in_avcc(data: &[u8], length_size: usize) -> Option<FrameStamp> {
    if !(1..=4).contains(&length_size) {
        return None;
    }
    let mut rest = data;
    while rest.len() >= length_size {
        let len = rest[..length_size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[length_size..];
        if len > rest.len() {
            return None;
        }
        let (nal, tail) = rest.split_at(len);
        if nal.first().is_some_and(|h| h & 0x1f == SEI_NAL_TYPE)
            && let Some(stamp) = FrameStamp::from_sei_nal(nal)
        {
            return Some(stamp);
        }
        rest = tail;
    }
    None
}

/// Looks for a stamp in an Annex B byte stream (start-code separated NAL
/// units, as in MPEG-TS PES payloads).
pub fn find_stamp_in_annexb(data: &[u8]) -> Option<FrameStamp> {
    annexb_nal_units(data)
        .filter(|nal| nal.first().is_some_and(|h| h & 0x1f == SEI_NAL_TYPE))
        .find_map(FrameStamp::from_sei_nal)
}

/// Iterates the NAL units of an Annex B stream, without start codes.
///
/// Trailing zero bytes before a start code belong to the next 4-byte start
/// code (or are trailing_zero_8bits), never to the NAL, so they are trimmed.
pub fn annexb_nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = find_start_code(data, 0).map(|p| p + 3);
    std::iter::from_fn(move || {
        let start = pos?;
        let (end, next) = match find_start_code(data, start) {
            Some(sc) => (sc, Some(sc + 3)),
            None => (data.len(), None),
        };
        pos = next;
        let mut nal = &data[start..end];
        while let Some((&0, head)) = nal.split_last() {
            nal = head;
        }
        Some(nal)
    })
    .filter(|nal| !nal.is_empty())
}

/// Position of the next 00 00 01 at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nasty_stamps() -> Vec<FrameStamp> {
        vec![
            FrameStamp {
                stream_tag: 0,
                sequence: 0,
                sent_at_unix_micros: 0,
            },
            // Values whose big-endian bytes contain 00 00 0x sequences that
            // must be escaped.
            FrameStamp {
                stream_tag: 0x0000_0001,
                sequence: 0x0000_0300_0002_0000,
                sent_at_unix_micros: 0x0000_0100_0003_0000,
            },
            FrameStamp {
                stream_tag: u32::MAX,
                sequence: u64::MAX,
                sent_at_unix_micros: 1_700_000_000_123_456,
            },
        ]
    }

    fn has_start_code_emulation(nal: &[u8]) -> bool {
        nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2)
    }

    #[test]
    fn sei_roundtrip_with_emulation_prevention() {
        for s in nasty_stamps() {
            let nal = s.to_sei_nal();
            assert_eq!(nal[0], 0x06, "nal_ref_idc 0, type 6");
            assert!(!has_start_code_emulation(&nal), "{nal:02x?}");
            assert_eq!(FrameStamp::from_sei_nal(&nal), Some(s));
        }
        // The zero-heavy stamp really did need escaping.
        assert!(nasty_stamps()[1].to_sei_nal().len() > 41);
    }

    #[test]
    fn foreign_sei_and_other_nals_are_not_ours() {
        // x264-style user data with a different UUID.
        let mut rbsp = vec![5u8, 20];
        rbsp.extend_from_slice(&[0xdc; 16]);
        rbsp.extend_from_slice(b"x264");
        rbsp.push(0x80);
        let foreign = nal_unit(0, 6, &rbsp);
        assert_eq!(FrameStamp::from_sei_nal(&foreign), None);
        // Not an SEI at all.
        assert_eq!(FrameStamp::from_sei_nal(&[0x65, 0x88, 0x80]), None);
        assert_eq!(FrameStamp::from_sei_nal(&[]), None);
        // Truncated stamp.
        let nal = nasty_stamps()[2].to_sei_nal();
        assert_eq!(FrameStamp::from_sei_nal(&nal[..20]), None);
    }

    #[test]
    fn stamp_found_after_another_sei_message_in_same_nal() {
        let s = nasty_stamps()[2];
        let ours = s.to_sei_nal();
        // Prepend a recovery point SEI (type 6, size 1) to our messages.
        let mut rbsp = vec![6u8, 1, 0x80];
        rbsp.extend_from_slice(&unescape_rbsp(&ours[1..]));
        let merged = nal_unit(0, 6, &rbsp);
        assert_eq!(FrameStamp::from_sei_nal(&merged), Some(s));
    }

    #[test]
    fn find_in_avcc_and_annexb() {
        let s = nasty_stamps()[1];
        let sei = s.to_sei_nal();
        let slice = [0x65u8, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01];
        let mut avcc = Vec::new();
        for nal in [&[0x09u8, 0xf0][..], &sei, &slice] {
            avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            avcc.extend_from_slice(nal);
        }
        assert_eq!(find_stamp_in_avcc(&avcc, 4), Some(s));
        assert_eq!(find_stamp_in_avcc(&avcc[..20], 4), None);
        assert_eq!(find_stamp_in_avcc(&avcc, 0), None);

        let mut annexb = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1];
        annexb.extend_from_slice(&sei);
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(&slice);
        assert_eq!(find_stamp_in_annexb(&annexb), Some(s));
        let nals: Vec<&[u8]> = annexb_nal_units(&annexb).collect();
        assert_eq!(nals, vec![&[0x09, 0xf0][..], &sei[..], &slice[..]]);
        assert_eq!(find_stamp_in_annexb(&[0, 0, 1, 0x65, 0x88]), None);
    }
}

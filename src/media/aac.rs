//! Hand-built silent AAC-LC frames (44.1 kHz, **stereo**), padded with fill
//! elements to a target bitrate.
//!
//! Stereo was chosen because it is what typical publishers (OBS, ffmpeg
//! defaults) send, so server-side handling matches production.
//! Each frame is one raw_data_block: a CPE whose two channels have
//! max_sfb = 0 (no spectral data = digital silence), FIL elements of
//! EXT_FILL payload up to the size budget, then END.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::MediaError;
use super::bits::BitWriter;

pub const SAMPLE_RATE: u32 = 44_100;
pub const CHANNELS: u8 = 2;
pub const SAMPLES_PER_FRAME: u32 = 1024;

/// AAC's decoder input buffer is 6144 bits per channel; larger frames are
/// non-conformant, which caps the reachable bitrate.
const MAX_FRAME_BYTES: usize = 6144 / 8 * CHANNELS as usize;

const ID_CPE: u64 = 1;
const ID_FIL: u64 = 6;
const ID_END: u64 = 7;
/// Bits of a FIL element header: id (3) + count (4); +8 when escaped.
const FIL_HEADER_BITS: usize = 7;
const FIL_ESC_HEADER_BITS: usize = 15;
/// count = 15 + esc_count - 1, esc_count 8 bits.
const FIL_MAX_BYTES: usize = 15 + 255 - 1;
/// FLV AAC audio tag header: 0xAF (AAC, 44 kHz, 16 bit, stereo) + packet type.
const AAC_TAG_HEADER_LEN: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioParams {
    /// Target FLV audio tag body bytes * 8 per second. Values below the
    /// size of a bare silent frame (~3 kbit/s) give bare silent frames.
    pub bitrate_bps: u64,
}

/// A ready-to-send synthetic AAC stream. Clones share the frame bytes.
#[derive(Debug, Clone)]
pub struct SyntheticAudio {
    params: AudioParams,
    sequence_header_tag: Bytes,
    frame_tag: Bytes,
}

impl SyntheticAudio {
    pub fn new(params: &AudioParams) -> Result<Self, MediaError> {
        let per_frame =
            params.bitrate_bps as f64 * f64::from(SAMPLES_PER_FRAME) / f64::from(SAMPLE_RATE) / 8.0;
        let target_raw = (per_frame.round() as usize).saturating_sub(AAC_TAG_HEADER_LEN);
        if target_raw > MAX_FRAME_BYTES {
            return Err(MediaError::InvalidBitrate {
                bitrate_bps: params.bitrate_bps,
                reason: "AAC-LC stereo frames are limited to 1536 bytes (~529 kbit/s)",
            });
        }
        let raw = build_silent_frame(target_raw);

        let mut frame_tag = BytesMut::with_capacity(AAC_TAG_HEADER_LEN + raw.len());
        frame_tag.put_u8(0xaf);
        frame_tag.put_u8(1); // AACPacketType: raw
        frame_tag.put_slice(&raw);

        let mut seq = BytesMut::with_capacity(4);
        seq.put_u8(0xaf);
        seq.put_u8(0); // AACPacketType: sequence header
        seq.put_slice(&audio_specific_config());

        Ok(Self {
            params: params.clone(),
            sequence_header_tag: seq.freeze(),
            frame_tag: frame_tag.freeze(),
        })
    }

    pub fn params(&self) -> &AudioParams {
        &self.params
    }

    /// FLV AUDIO tag body with the AudioSpecificConfig; send before frames.
    pub fn aac_sequence_header_tag(&self) -> Bytes {
        self.sequence_header_tag.clone()
    }

    /// FLV AUDIO tag body with one silent frame (every frame is identical).
    pub fn frame_tag(&self) -> Bytes {
        self.frame_tag.clone()
    }

    /// 1024 samples at 44.1 kHz (~23.22 ms).
    pub fn frame_duration(&self) -> Duration {
        Duration::from_nanos(u64::from(SAMPLES_PER_FRAME) * 1_000_000_000 / u64::from(SAMPLE_RATE))
    }
}

/// AudioSpecificConfig: AAC-LC (2), 44.1 kHz (index 4), stereo (2),
/// GASpecificConfig all zero (1024-sample frames, no core coder, no ext).
fn audio_specific_config() -> [u8; 2] {
    let mut w = BitWriter::new();
    w.bits(5, 2);
    w.bits(4, 4);
    w.bits(4, u64::from(CHANNELS));
    w.bits(3, 0);
    let b = w.into_bytes();
    [b[0], b[1]]
}

/// Writes one silent individual_channel_stream (common_window = 0).
fn silent_ics(w: &mut BitWriter) {
    w.bits(8, 100); // global_gain: irrelevant without scalefactor bands
    // ics_info
    w.bit(false); // ics_reserved_bit
    w.bits(2, 0); // window_sequence: ONLY_LONG_SEQUENCE
    w.bit(false); // window_shape
    w.bits(6, 0); // max_sfb = 0: no sections, scalefactors or spectra
    w.bit(false); // predictor_data_present
    w.bit(false); // pulse_data_present
    w.bit(false); // tns_data_present
    w.bit(false); // gain_control_data_present
}

/// Builds a raw_data_block of exactly `target` bytes when `target` is at
/// least the bare frame size, otherwise the bare frame.
fn build_silent_frame(target: usize) -> Vec<u8> {
    let mut w = BitWriter::new();
    w.bits(3, ID_CPE);
    w.bits(4, 0); // element_instance_tag
    w.bit(false); // common_window
    silent_ics(&mut w);
    silent_ics(&mut w);

    // Bits left for FIL elements once END (3 bits) is accounted for; the
    // final byte alignment absorbs fewer than 8 leftover bits.
    let mut room = (target * 8).saturating_sub(w.bit_len() + 3);
    while room >= 8 {
        let cnt = if room >= FIL_ESC_HEADER_BITS + 8 * 15 {
            ((room - FIL_ESC_HEADER_BITS) / 8).min(FIL_MAX_BYTES)
        } else {
            ((room - FIL_HEADER_BITS) / 8).min(14)
        };
        write_fill_element(&mut w, cnt);
        let header = if cnt >= 15 {
            FIL_ESC_HEADER_BITS
        } else {
            FIL_HEADER_BITS
        };
        room -= header + 8 * cnt;
    }
    w.bits(3, ID_END);
    w.into_bytes()
}

/// fill_element with `cnt` bytes of one EXT_FILL extension_payload.
fn write_fill_element(w: &mut BitWriter, cnt: usize) {
    w.bits(3, ID_FIL);
    if cnt >= 15 {
        w.bits(4, 15);
        w.bits(8, (cnt - 15 + 1) as u64); // esc_count
    } else {
        w.bits(4, cnt as u64);
    }
    if cnt > 0 {
        w.bits(4, 0); // extension_type: EXT_FILL
        w.bits(4, 0); // fill_nibble
        for _ in 1..cnt {
            w.bits(8, 0b1010_0101); // fill_byte
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_is_aac_lc_44100_stereo() {
        assert_eq!(audio_specific_config(), [0x12, 0x10]);
        let a = SyntheticAudio::new(&AudioParams { bitrate_bps: 0 }).unwrap();
        assert_eq!(&a.aac_sequence_header_tag()[..], &[0xaf, 0, 0x12, 0x10]);
    }

    #[test]
    fn frame_sizes_hit_every_target() {
        let bare = build_silent_frame(0).len();
        assert_eq!(bare, 7);
        for target in bare..=MAX_FRAME_BYTES {
            assert_eq!(build_silent_frame(target).len(), target, "target {target}");
        }
    }

    #[test]
    fn bitrate_and_duration() {
        let a = SyntheticAudio::new(&AudioParams {
            bitrate_bps: 128_000,
        })
        .unwrap();
        let tag = a.frame_tag();
        assert_eq!(&tag[..2], &[0xaf, 1]);
        // 128000 * 1024 / 44100 / 8 = 371.5 bytes per tag.
        assert!((371..=372).contains(&tag.len()), "{}", tag.len());
        assert_eq!(a.frame_duration(), Duration::from_nanos(23_219_954));
        // Clones share storage rather than copying.
        assert_eq!(a.frame_tag().as_ptr(), tag.as_ptr());
        assert!(
            SyntheticAudio::new(&AudioParams {
                bitrate_bps: 600_000
            })
            .is_err()
        );
    }
}

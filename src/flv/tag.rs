//! Parsers for FLV VIDEO/AUDIO tag body headers. The same layout is the
//! payload of RTMP video/audio messages, so these serve both transports.

use super::FlvError;

/// FLV CodecID for AVC/H.264.
pub const CODEC_AVC: u8 = 7;
/// FLV SoundFormat for AAC.
pub const SOUND_FORMAT_AAC: u8 = 10;

const AVC_HEADER_LEN: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvcPacketType {
    SequenceHeader,
    Nalu,
    EndOfSequence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTagInfo {
    /// Raw FrameType (1 key, 2 inter, 3 disposable, 4 generated key, 5 info).
    pub frame_type: u8,
    pub is_keyframe: bool,
    pub codec_id: u8,
    /// Present for AVC only.
    pub avc_packet_type: Option<AvcPacketType>,
    /// Signed composition time offset (PTS - DTS); 0 for non-AVC.
    pub composition_time_ms: i32,
}

impl VideoTagInfo {
    /// Parses the 1-byte (or 5-byte for AVC) header of a video tag body.
    /// Enhanced-RTMP (ExHeader) tags are not interpreted: their codec_id is
    /// reported as the raw low nibble.
    pub fn parse(data: &[u8]) -> Result<VideoTagInfo, FlvError> {
        let &first = data.first().ok_or(FlvError::TooShort {
            what: "video tag",
            needed: 1,
            got: 0,
        })?;
        let frame_type = (first >> 4) & 0x07;
        let codec_id = first & 0x0f;
        let mut info = VideoTagInfo {
            frame_type,
            is_keyframe: frame_type == 1,
            codec_id,
            avc_packet_type: None,
            composition_time_ms: 0,
        };
        if codec_id == CODEC_AVC {
            if data.len() < AVC_HEADER_LEN {
                return Err(FlvError::TooShort {
                    what: "AVC video tag",
                    needed: AVC_HEADER_LEN,
                    got: data.len(),
                });
            }
            info.avc_packet_type = Some(match data[1] {
                0 => AvcPacketType::SequenceHeader,
                1 => AvcPacketType::Nalu,
                2 => AvcPacketType::EndOfSequence,
                other => return Err(FlvError::UnknownAvcPacketType(other)),
            });
            // 24-bit signed: place in the top of an i32, shift back down.
            info.composition_time_ms = i32::from_be_bytes([data[2], data[3], data[4], 0]) >> 8;
        }
        Ok(info)
    }

    /// The AVC payload after the 5-byte header: length-prefixed NAL units
    /// for `Nalu`, the AVCDecoderConfigurationRecord for `SequenceHeader`.
    /// Empty if the tag is too short.
    pub fn avc_payload(data: &[u8]) -> &[u8] {
        data.get(AVC_HEADER_LEN..).unwrap_or(&[])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AacPacketType {
    SequenceHeader,
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTagInfo {
    /// SoundFormat (10 = AAC).
    pub sound_format: u8,
    /// SoundRate index 0..=3 (5.5/11/22/44 kHz; always 3 for AAC).
    pub sound_rate: u8,
    /// true = 16-bit samples.
    pub sound_size_16bit: bool,
    /// true = stereo.
    pub stereo: bool,
    /// Present for AAC only.
    pub aac_packet_type: Option<AacPacketType>,
}

impl AudioTagInfo {
    pub fn parse(data: &[u8]) -> Result<AudioTagInfo, FlvError> {
        let &first = data.first().ok_or(FlvError::TooShort {
            what: "audio tag",
            needed: 1,
            got: 0,
        })?;
        let sound_format = first >> 4;
        let aac_packet_type = if sound_format == SOUND_FORMAT_AAC {
            match data.get(1) {
                Some(0) => Some(AacPacketType::SequenceHeader),
                Some(_) => Some(AacPacketType::Raw),
                None => {
                    return Err(FlvError::TooShort {
                        what: "AAC audio tag",
                        needed: 2,
                        got: 1,
                    });
                }
            }
        } else {
            None
        };
        Ok(AudioTagInfo {
            sound_format,
            sound_rate: (first >> 2) & 0x03,
            sound_size_16bit: first & 0x02 != 0,
            stereo: first & 0x01 != 0,
            aac_packet_type,
        })
    }

    pub fn is_aac_sequence_header(&self) -> bool {
        self.aac_packet_type == Some(AacPacketType::SequenceHeader)
    }

    /// The payload after the header (2 bytes for AAC, 1 otherwise).
    pub fn payload<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let skip = if self.aac_packet_type.is_some() { 2 } else { 1 };
        data.get(skip..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::{AudioParams, SyntheticAudio};
    use crate::media::h264::{SyntheticVideo, VideoParams};
    use crate::media::stamp::{FrameStamp, find_stamp_in_avcc};

    #[test]
    fn video_tags_from_synthetic_stream() {
        let v = SyntheticVideo::new(&VideoParams {
            width: 160,
            height: 90,
            fps: 30,
            bitrate_bps: 100_000,
            gop_frames: 30,
        })
        .unwrap();
        let seq = v.avc_sequence_header_tag();
        let info = VideoTagInfo::parse(&seq).unwrap();
        assert!(info.is_keyframe);
        assert_eq!(info.codec_id, CODEC_AVC);
        assert_eq!(info.avc_packet_type, Some(AvcPacketType::SequenceHeader));
        assert_eq!(VideoTagInfo::avc_payload(&seq)[0], 1); // configurationVersion

        let stamp = FrameStamp {
            stream_tag: 3,
            sequence: 31,
            sent_at_unix_micros: 9,
        };
        let tag = v.frame_tag(31, &stamp);
        let info = VideoTagInfo::parse(&tag).unwrap();
        assert!(!info.is_keyframe);
        assert_eq!(info.frame_type, 2);
        assert_eq!(info.avc_packet_type, Some(AvcPacketType::Nalu));
        assert_eq!(info.composition_time_ms, 0);
        assert_eq!(
            find_stamp_in_avcc(VideoTagInfo::avc_payload(&tag), 4),
            Some(stamp)
        );
    }

    #[test]
    fn video_edge_cases() {
        // Negative CTS -1 and positive 0x010203.
        let i = VideoTagInfo::parse(&[0x27, 1, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(i.composition_time_ms, -1);
        let i = VideoTagInfo::parse(&[0x17, 1, 1, 2, 3]).unwrap();
        assert_eq!(i.composition_time_ms, 0x010203);
        let i = VideoTagInfo::parse(&[0x17, 2, 0, 0, 0]).unwrap();
        assert_eq!(i.avc_packet_type, Some(AvcPacketType::EndOfSequence));
        assert_eq!(
            VideoTagInfo::parse(&[0x17, 9, 0, 0, 0]),
            Err(FlvError::UnknownAvcPacketType(9))
        );
        assert!(matches!(
            VideoTagInfo::parse(&[0x17, 1]),
            Err(FlvError::TooShort { .. })
        ));
        assert!(VideoTagInfo::parse(&[]).is_err());
        // Sorenson H.263 (codec 2) has no AVC header.
        let i = VideoTagInfo::parse(&[0x22]).unwrap();
        assert_eq!((i.codec_id, i.avc_packet_type), (2, None));
        assert!(VideoTagInfo::avc_payload(&[0x17]).is_empty());
    }

    #[test]
    fn audio_tags() {
        let a = SyntheticAudio::new(&AudioParams {
            bitrate_bps: 64_000,
        })
        .unwrap();
        let seq = a.aac_sequence_header_tag();
        let i = AudioTagInfo::parse(&seq).unwrap();
        assert_eq!(i.sound_format, SOUND_FORMAT_AAC);
        assert!(i.is_aac_sequence_header());
        assert!(i.stereo && i.sound_size_16bit);
        assert_eq!(i.sound_rate, 3);
        assert_eq!(i.payload(&seq), &[0x12, 0x10]);
        let frame = a.frame_tag();
        let i = AudioTagInfo::parse(&frame).unwrap();
        assert_eq!(i.aac_packet_type, Some(AacPacketType::Raw));
        assert!(!i.is_aac_sequence_header());
        // MP3 has a 1-byte header.
        let i = AudioTagInfo::parse(&[0x2f, 0xff, 0xfb]).unwrap();
        assert_eq!((i.sound_format, i.aac_packet_type), (2, None));
        assert_eq!(i.payload(&[0x2f, 0xff, 0xfb]), &[0xff, 0xfb]);
        assert!(AudioTagInfo::parse(&[0xaf]).is_err());
        assert!(AudioTagInfo::parse(&[]).is_err());
    }
}

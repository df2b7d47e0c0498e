//! Hand-built H.264 Constrained Baseline bitstream: a flat grey picture that
//! any decoder accepts, padded with filler data to a target bitrate.
//!
//! Why no encoder: a load tester wants thousands of streams at a chosen
//! bitrate with near-zero CPU. The picture content is irrelevant to the
//! server (it never decodes), but the stream must still be *valid* so that
//! players and ffprobe-based checks treat it like real video.
//!
//! Construction:
//! - IDR: every macroblock is I_16x16 with DC prediction and no residual
//!   (8 bits/MB), so the whole picture decodes to mid-grey.
//! - P: a single mb_skip_run covering the picture (copy of the reference).
//! - POC type 2 (output order = decode order, no B-frames); because POC type
//!   2 forbids consecutive non-reference pictures, every P frame is a
//!   reference (nal_ref_idc 2) with max_num_ref_frames 1.
//! - Filler data NAL units (type 12) carry the bitrate; servers and demuxers
//!   pass them through like any other NAL, so network load is realistic.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::MediaError;
use super::bits::{BitWriter, nal_unit};
use super::stamp::FrameStamp;

/// What the synthetic publisher should look like on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Target average of FLV video tag body bytes * 8 per second (what RTMP
    /// carries as message payload). Reached per GOP; 0 means no padding.
    pub bitrate_bps: u64,
    /// Keyframe interval in frames.
    pub gop_frames: u32,
}

/// log2(MaxFrameNum). frame_num may wrap within a GOP (legal for POC type 2),
/// so the smallest value is enough and keeps the P-slice table at 16 entries.
const LOG2_MAX_FRAME_NUM: u32 = 4;
const MAX_FRAME_NUM: usize = 1 << LOG2_MAX_FRAME_NUM;

/// FLV AVC video tag header (frame type/codec, AVCPacketType, CTS).
const AVC_TAG_HEADER_LEN: usize = 5;
const LENGTH_PREFIX: usize = 4;
/// Filler NAL: header byte + at least the 0x80 trailing byte.
const MIN_FILLER_NAL: usize = 2;
/// Unescaped SEI stamp NAL size, used only to plan minimum frame sizes:
/// `frame_tag` measures the real (escaped) SEI and shrinks the filler to
/// match, so escaping does not change the bitrate.
const SEI_NAL_LEN: usize = 41;

/// A ready-to-send synthetic H.264 stream. Cheap to clone (shared `Arc`).
#[derive(Debug, Clone)]
pub struct SyntheticVideo {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    params: VideoParams,
    sps: Bytes,
    pps: Bytes,
    sequence_header_tag: Bytes,
    /// IDR slice NAL units for idr_pic_id 0 and 1 (consecutive IDRs must
    /// differ in idr_pic_id).
    idr_slices: [Bytes; 2],
    /// P slice NAL units indexed by frame_num.
    p_slices: Vec<Bytes>,
    /// Target FLV tag body length for each position in the GOP.
    target_tag_len: Vec<usize>,
    /// 0xFF payload bytes that filler NAL units are cut from.
    filler_ff: Bytes,
}

impl SyntheticVideo {
    /// Precomputes parameter sets, slices and the per-GOP size plan.
    pub fn new(params: &VideoParams) -> Result<Self, MediaError> {
        validate(params)?;
        let mbs_w = params.width.div_ceil(16);
        let mbs_h = params.height.div_ceil(16);
        let total_mbs = mbs_w * mbs_h;

        let sps = Bytes::from(build_sps(params, mbs_w, mbs_h));
        let pps = Bytes::from(build_pps());
        let idr_slices = [
            Bytes::from(build_idr_slice(total_mbs, 0)),
            Bytes::from(build_idr_slice(total_mbs, 1)),
        ];
        let p_slices = (0..MAX_FRAME_NUM as u32)
            .map(|fnum| Bytes::from(build_p_slice(total_mbs, fnum)))
            .collect::<Vec<_>>();

        let fixed = |slice_len: usize| {
            AVC_TAG_HEADER_LEN + LENGTH_PREFIX + SEI_NAL_LEN + LENGTH_PREFIX + slice_len
        };
        // Plan sizes on cumulative targets so that an IDR bigger than its
        // share is paid back by the following P frames and the GOP average
        // lands on the target.
        let gop = params.gop_frames as usize;
        let per_frame = params.bitrate_bps as f64 / 8.0 / f64::from(params.fps);
        let mut target_tag_len = Vec::with_capacity(gop);
        let mut emitted = 0usize;
        for pos in 0..gop {
            let slice_len = if pos == 0 {
                idr_slices[0].len()
            } else {
                p_slices[pos % MAX_FRAME_NUM].len()
            };
            let cumulative = (per_frame * (pos + 1) as f64).round() as usize;
            let len = cumulative.saturating_sub(emitted).max(fixed(slice_len));
            emitted += len;
            target_tag_len.push(len);
        }
        let max_filler = target_tag_len.iter().copied().max().unwrap_or(0);
        let filler_ff = Bytes::from(vec![0xffu8; max_filler]);

        let sequence_header_tag = build_sequence_header_tag(&sps, &pps);
        Ok(Self {
            inner: Arc::new(Inner {
                params: params.clone(),
                sps,
                pps,
                sequence_header_tag,
                idr_slices,
                p_slices,
                target_tag_len,
                filler_ff,
            }),
        })
    }

    pub fn params(&self) -> &VideoParams {
        &self.inner.params
    }

    /// SPS NAL unit (no start code), e.g. for tests or SDP.
    pub fn sps(&self) -> &Bytes {
        &self.inner.sps
    }

    /// PPS NAL unit (no start code).
    pub fn pps(&self) -> &Bytes {
        &self.inner.pps
    }

    /// FLV VIDEO tag body carrying the AVCDecoderConfigurationRecord; must be
    /// sent before the first frame.
    pub fn avc_sequence_header_tag(&self) -> Bytes {
        self.inner.sequence_header_tag.clone()
    }

    pub fn is_keyframe(&self, frame_index: u64) -> bool {
        frame_index.is_multiple_of(u64::from(self.inner.params.gop_frames))
    }

    pub fn frame_duration(&self) -> Duration {
        Duration::from_secs(1) / self.inner.params.fps
    }

    /// FLV VIDEO tag body for frame `frame_index`: [SEI stamp][slice][filler],
    /// each with a 4-byte length prefix.
    pub fn frame_tag(&self, frame_index: u64, stamp: &FrameStamp) -> Bytes {
        let inner = &*self.inner;
        let gop = u64::from(inner.params.gop_frames);
        let pos = (frame_index % gop) as usize;
        let keyframe = pos == 0;
        let slice = if keyframe {
            &inner.idr_slices[((frame_index / gop) % 2) as usize]
        } else {
            // frame_num restarts at the IDR and counts every (reference) frame.
            &inner.p_slices[pos % MAX_FRAME_NUM]
        };
        let sei = stamp.to_sei_nal();
        let used = AVC_TAG_HEADER_LEN + LENGTH_PREFIX + sei.len() + LENGTH_PREFIX + slice.len();
        let filler_nal_len = inner.target_tag_len[pos]
            .saturating_sub(used)
            .saturating_sub(LENGTH_PREFIX);
        let with_filler = filler_nal_len >= MIN_FILLER_NAL;

        let mut out = BytesMut::with_capacity(used + LENGTH_PREFIX + filler_nal_len);
        out.put_u8(if keyframe { 0x17 } else { 0x27 });
        out.put_u8(1); // AVCPacketType: NALU
        out.put_slice(&[0, 0, 0]); // CTS: no reordering
        out.put_u32(sei.len() as u32);
        out.put_slice(&sei);
        out.put_u32(slice.len() as u32);
        out.put_slice(slice);
        if with_filler {
            out.put_u32(filler_nal_len as u32);
            out.put_u8(12); // nal_ref_idc 0, filler data
            out.put_slice(&inner.filler_ff[..filler_nal_len - MIN_FILLER_NAL]);
            out.put_u8(0x80);
        }
        out.freeze()
    }
}

fn validate(p: &VideoParams) -> Result<(), MediaError> {
    let dims = |reason| MediaError::InvalidDimensions {
        width: p.width,
        height: p.height,
        reason,
    };
    if p.width == 0 || p.height == 0 {
        return Err(dims("must be non-zero"));
    }
    // 4:2:0 cropping works in units of 2 luma samples.
    if !p.width.is_multiple_of(2) || !p.height.is_multiple_of(2) {
        return Err(dims("must be multiples of 2"));
    }
    if p.width > 8192 || p.height > 8192 {
        return Err(dims("must be at most 8192"));
    }
    if !(1..=240).contains(&p.fps) {
        return Err(MediaError::InvalidFrameRate(p.fps));
    }
    if p.gop_frames == 0 {
        return Err(MediaError::InvalidGop(p.gop_frames));
    }
    if p.bitrate_bps > 1_000_000_000 {
        return Err(MediaError::InvalidBitrate {
            bitrate_bps: p.bitrate_bps,
            reason: "must be at most 1 Gbit/s",
        });
    }
    Ok(())
}

/// Smallest level whose frame size, macroblock rate and bitrate limits
/// (Table A-1) fit, so that strict decoders do not refuse the stream.
fn pick_level(mbs_per_frame: u64, fps: u64, bitrate_bps: u64) -> u8 {
    // (level_idc, MaxFS, MaxMBPS, MaxBR in 1200 bit/s units for NAL HRD)
    const LEVELS: &[(u8, u64, u64, u64)] = &[
        (10, 99, 1485, 64),
        (11, 396, 3000, 192),
        (12, 396, 6000, 384),
        (13, 396, 11880, 768),
        (20, 396, 11880, 2000),
        (21, 792, 19800, 4000),
        (22, 1620, 20250, 4000),
        (30, 1620, 40500, 10000),
        (31, 3600, 108_000, 14000),
        (32, 5120, 216_000, 20000),
        (40, 8192, 245_760, 20000),
        (41, 8192, 245_760, 50000),
        (42, 8704, 522_240, 50000),
        (50, 22080, 589_824, 135_000),
        (51, 36864, 983_040, 240_000),
        (52, 36864, 2_073_600, 240_000),
        (60, 139_264, 4_177_920, 240_000),
        (61, 139_264, 8_355_840, 480_000),
        (62, 139_264, 16_711_680, 800_000),
    ];
    LEVELS
        .iter()
        .find(|&&(_, fs, mbps, br)| {
            mbs_per_frame <= fs && mbs_per_frame * fps <= mbps && bitrate_bps <= br * 1200
        })
        .map_or(62, |l| l.0)
}

fn build_sps(p: &VideoParams, mbs_w: u32, mbs_h: u32) -> Vec<u8> {
    let level = pick_level(u64::from(mbs_w * mbs_h), u64::from(p.fps), p.bitrate_bps);
    let mut w = BitWriter::new();
    w.bits(8, 66); // profile_idc: Baseline
    // constraint_set0 + constraint_set1: Constrained Baseline.
    w.bits(8, 0b1100_0000);
    w.bits(8, u64::from(level));
    w.ue(0); // seq_parameter_set_id
    w.ue(LOG2_MAX_FRAME_NUM - 4); // log2_max_frame_num_minus4
    w.ue(2); // pic_order_cnt_type: output order = decode order
    w.ue(1); // max_num_ref_frames
    w.bit(false); // gaps_in_frame_num_value_allowed_flag
    w.ue(mbs_w - 1); // pic_width_in_mbs_minus1
    w.ue(mbs_h - 1); // pic_height_in_map_units_minus1
    w.bit(true); // frame_mbs_only_flag
    w.bit(true); // direct_8x8_inference_flag
    let crop_right = (mbs_w * 16 - p.width) / 2; // CropUnitX = 2 for 4:2:0
    let crop_bottom = (mbs_h * 16 - p.height) / 2; // CropUnitY = 2 (frames only)
    let cropping = crop_right != 0 || crop_bottom != 0;
    w.bit(cropping);
    if cropping {
        w.ue(0);
        w.ue(crop_right);
        w.ue(0);
        w.ue(crop_bottom);
    }
    w.bit(true); // vui_parameters_present_flag
    w.bit(false); // aspect_ratio_info_present_flag
    w.bit(false); // overscan_info_present_flag
    w.bit(false); // video_signal_type_present_flag
    w.bit(false); // chroma_loc_info_present_flag
    // Timing info is what lets ffprobe report r_frame_rate instead of
    // guessing from millisecond FLV timestamps. A frame is two field ticks.
    w.bit(true); // timing_info_present_flag
    w.bits(32, 1); // num_units_in_tick
    w.bits(32, 2 * u64::from(p.fps)); // time_scale
    w.bit(true); // fixed_frame_rate_flag
    w.bit(false); // nal_hrd_parameters_present_flag
    w.bit(false); // vcl_hrd_parameters_present_flag
    w.bit(false); // pic_struct_present_flag
    // Bitstream restriction says "no reordering", so players need no
    // decoder delay.
    w.bit(true); // bitstream_restriction_flag
    w.bit(true); // motion_vectors_over_pic_boundaries_flag
    w.ue(0); // max_bytes_per_pic_denom: unrestricted
    w.ue(0); // max_bits_per_mb_denom: unrestricted
    w.ue(16); // log2_max_mv_length_horizontal
    w.ue(16); // log2_max_mv_length_vertical
    w.ue(0); // max_num_reorder_frames
    w.ue(1); // max_dec_frame_buffering
    nal_unit(3, 7, &w.rbsp_trailing_bits())
}

fn build_pps() -> Vec<u8> {
    let mut w = BitWriter::new();
    w.ue(0); // pic_parameter_set_id
    w.ue(0); // seq_parameter_set_id
    w.bit(false); // entropy_coding_mode_flag: CAVLC
    w.bit(false); // bottom_field_pic_order_in_frame_present_flag
    w.ue(0); // num_slice_groups_minus1
    w.ue(0); // num_ref_idx_l0_default_active_minus1
    w.ue(0); // num_ref_idx_l1_default_active_minus1
    w.bit(false); // weighted_pred_flag
    w.bits(2, 0); // weighted_bipred_idc
    w.se(0); // pic_init_qp_minus26
    w.se(0); // pic_init_qs_minus26
    w.se(0); // chroma_qp_index_offset
    // Present so slices can switch deblocking off (nothing to smooth, and it
    // keeps decode cost minimal for players under test).
    w.bit(true); // deblocking_filter_control_present_flag
    w.bit(false); // constrained_intra_pred_flag
    w.bit(false); // redundant_pic_cnt_present_flag
    nal_unit(3, 8, &w.rbsp_trailing_bits())
}

fn build_idr_slice(total_mbs: u32, idr_pic_id: u32) -> Vec<u8> {
    let mut w = BitWriter::new();
    w.ue(0); // first_mb_in_slice
    w.ue(7); // slice_type: I (all slices of the picture)
    w.ue(0); // pic_parameter_set_id
    w.bits(LOG2_MAX_FRAME_NUM, 0); // frame_num: 0 at IDR
    w.ue(idr_pic_id);
    // pic_order_cnt_type 2: no POC syntax.
    w.bit(false); // no_output_of_prior_pics_flag
    w.bit(false); // long_term_reference_flag
    w.se(0); // slice_qp_delta
    w.ue(1); // disable_deblocking_filter_idc
    for _ in 0..total_mbs {
        w.ue(3); // mb_type I_16x16_2_0_0: DC prediction, no coded blocks
        w.ue(0); // intra_chroma_pred_mode: DC
        w.se(0); // mb_qp_delta
        // Intra16x16DCLevel coeff_token: TotalCoeff 0, TrailingOnes 0. All
        // neighbours have zero coefficients, so nC is always 0 and the code
        // is "1".
        w.bit(true);
    }
    nal_unit(3, 5, &w.rbsp_trailing_bits())
}

fn build_p_slice(total_mbs: u32, frame_num: u32) -> Vec<u8> {
    let mut w = BitWriter::new();
    w.ue(0); // first_mb_in_slice
    w.ue(5); // slice_type: P (all slices of the picture)
    w.ue(0); // pic_parameter_set_id
    w.bits(LOG2_MAX_FRAME_NUM, u64::from(frame_num));
    w.bit(false); // num_ref_idx_active_override_flag
    w.bit(false); // ref_pic_list_modification_flag_l0
    w.bit(false); // adaptive_ref_pic_marking_mode_flag: sliding window
    w.se(0); // slice_qp_delta
    w.ue(1); // disable_deblocking_filter_idc
    w.ue(total_mbs); // mb_skip_run: every macroblock copies the reference
    nal_unit(2, 1, &w.rbsp_trailing_bits())
}

fn build_sequence_header_tag(sps: &[u8], pps: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(16 + sps.len() + pps.len());
    out.put_u8(0x17); // keyframe, AVC
    out.put_u8(0); // AVCPacketType: sequence header
    out.put_slice(&[0, 0, 0]); // CTS
    out.put_u8(1); // configurationVersion
    out.put_slice(&sps[1..4]); // profile, compatibility, level from the SPS
    out.put_u8(0xfc | 3); // lengthSizeMinusOne = 3
    out.put_u8(0xe0 | 1); // one SPS
    out.put_u16(sps.len() as u16);
    out.put_slice(sps);
    out.put_u8(1); // one PPS
    out.put_u16(pps.len() as u16);
    out.put_slice(pps);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::stamp::find_stamp_in_avcc;

    fn params(width: u32, height: u32) -> VideoParams {
        VideoParams {
            width,
            height,
            fps: 30,
            bitrate_bps: 2_000_000,
            gop_frames: 60,
        }
    }

    #[test]
    fn rejects_bad_params() {
        for (w, h) in [(0, 720), (1280, 0), (1279, 720), (1280, 721), (9000, 720)] {
            assert!(matches!(
                SyntheticVideo::new(&params(w, h)),
                Err(MediaError::InvalidDimensions { .. })
            ));
        }
        let mut p = params(1280, 720);
        p.fps = 0;
        assert_eq!(
            SyntheticVideo::new(&p).unwrap_err(),
            MediaError::InvalidFrameRate(0)
        );
        let mut p = params(1280, 720);
        p.gop_frames = 0;
        assert_eq!(
            SyntheticVideo::new(&p).unwrap_err(),
            MediaError::InvalidGop(0)
        );
    }

    #[test]
    fn level_selection() {
        assert_eq!(pick_level(3600, 30, 2_000_000), 31); // 720p30
        assert_eq!(pick_level(8160, 30, 4_000_000), 40); // 1080p30
        assert_eq!(pick_level(8160, 60, 6_000_000), 42); // 1080p60
        assert_eq!(pick_level(1 << 30, 1, 0), 62); // beyond the table
    }

    #[test]
    fn sequence_header_layout() {
        let v = SyntheticVideo::new(&params(1280, 720)).unwrap();
        let tag = v.avc_sequence_header_tag();
        assert_eq!(&tag[..5], &[0x17, 0, 0, 0, 0]);
        assert_eq!(tag[5], 1);
        assert_eq!(&tag[6..9], &[66, 0xc0, 31]);
        assert_eq!(tag[9], 0xff);
        assert_eq!(tag[10], 0xe1);
        let sps_len = u16::from_be_bytes([tag[11], tag[12]]) as usize;
        assert_eq!(&tag[13..13 + sps_len], &v.sps()[..]);
        assert_eq!(v.sps()[0], 0x67);
        assert_eq!(v.pps()[0], 0x68);
    }

    #[test]
    fn frames_carry_stamp_keyframes_and_budget() {
        let v = SyntheticVideo::new(&params(1280, 720)).unwrap();
        let mut total = 0usize;
        for i in 0..120u64 {
            let stamp = FrameStamp {
                stream_tag: 7,
                sequence: i,
                sent_at_unix_micros: i * 33_333,
            };
            let tag = v.frame_tag(i, &stamp);
            assert_eq!(v.is_keyframe(i), i % 60 == 0);
            assert_eq!(tag[0], if i % 60 == 0 { 0x17 } else { 0x27 });
            assert_eq!(tag[1], 1);
            assert_eq!(find_stamp_in_avcc(&tag[5..], 4), Some(stamp));
            // The second NAL is the slice of the right type.
            let sei_len = u32::from_be_bytes(tag[5..9].try_into().unwrap()) as usize;
            let slice_type = tag[9 + sei_len + 4] & 0x1f;
            assert_eq!(slice_type, if i % 60 == 0 { 5 } else { 1 });
            total += tag.len();
        }
        // Four seconds at 2 Mbit/s; only SEI escaping may add a few bytes.
        let expected = 2_000_000 / 8 * 4;
        assert!(total.abs_diff(expected) < 120 * 4, "{total} vs {expected}");
        assert_eq!(v.frame_duration(), Duration::from_nanos(33_333_333));
    }

    #[test]
    fn idr_overage_is_repaid_by_p_frames() {
        // 1080p IDR (~8 KB) exceeds a 300 kbit/s frame budget (1.25 KB).
        let mut p = params(1920, 1080);
        p.bitrate_bps = 300_000;
        let v = SyntheticVideo::new(&p).unwrap();
        let s = FrameStamp {
            stream_tag: 1,
            sequence: 1,
            sent_at_unix_micros: 1,
        };
        let idr = v.frame_tag(0, &s).len();
        assert!(idr > 8000);
        let gop: usize = (0..60).map(|i| v.frame_tag(i, &s).len()).sum();
        let expected = 300_000 / 8 * 2;
        assert!(gop.abs_diff(expected) < 200, "{gop} vs {expected}");
    }

    #[test]
    fn zero_bitrate_means_minimal_frames() {
        let mut p = params(320, 240);
        p.bitrate_bps = 0;
        let v = SyntheticVideo::new(&p).unwrap();
        let s = FrameStamp {
            stream_tag: 1,
            sequence: 1,
            sent_at_unix_micros: 1,
        };
        let tag = v.frame_tag(1, &s);
        assert!(tag.len() < 70, "{}", tag.len());
    }

    #[test]
    fn clone_shares_precomputed_data() {
        let v = SyntheticVideo::new(&params(640, 360)).unwrap();
        let c = v.clone();
        assert!(Arc::ptr_eq(&v.inner, &c.inner));
        assert_eq!(c.params().height, 360);
    }
}

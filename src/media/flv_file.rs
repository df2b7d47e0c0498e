//! Writes complete FLV files from the synthetic streams. Used to validate the
//! bitstreams with ffmpeg/ffprobe and as fixture data for demuxer tests.

use super::aac::SyntheticAudio;
use super::h264::SyntheticVideo;
use super::stamp::FrameStamp;

const TAG_AUDIO: u8 = 8;
const TAG_VIDEO: u8 = 9;
const TAG_SCRIPT: u8 = 18;

/// A complete FLV file with `seconds` of media: header, onMetaData, the
/// sequence headers, then audio and video tags interleaved by timestamp.
/// Video frames are stamped with stream_tag 0, sequence = frame index and
/// sent_at = the frame's presentation time in microseconds.
pub fn write_flv(
    video: Option<&SyntheticVideo>,
    audio: Option<&SyntheticAudio>,
    seconds: u32,
) -> Vec<u8> {
    let mut out = Vec::new();
    let flags = if audio.is_some() { 0x04 } else { 0 } | if video.is_some() { 0x01 } else { 0 };
    out.extend_from_slice(b"FLV");
    out.push(1);
    out.push(flags);
    out.extend_from_slice(&9u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // PreviousTagSize0

    write_tag(&mut out, TAG_SCRIPT, 0, &on_metadata(video, audio, seconds));
    if let Some(v) = video {
        write_tag(&mut out, TAG_VIDEO, 0, &v.avc_sequence_header_tag());
    }
    if let Some(a) = audio {
        write_tag(&mut out, TAG_AUDIO, 0, &a.aac_sequence_header_tag());
    }

    let end_us = u64::from(seconds) * 1_000_000;
    let video_frames = video.map_or(0, |v| u64::from(seconds) * u64::from(v.params().fps));
    let audio_frames = audio.map_or(0, |_| {
        (end_us * 44_100).div_ceil(1024 * 1_000_000) // frames starting before `end`
    });
    // Merge the two timelines in timestamp order, as a live publisher would.
    let (mut vi, mut ai) = (0u64, 0u64);
    loop {
        let v_us = video
            .filter(|_| vi < video_frames)
            .map(|v| vi * 1_000_000 / u64::from(v.params().fps));
        let a_us = audio
            .filter(|_| ai < audio_frames)
            .map(|_| ai * 1024 * 1_000_000 / 44_100);
        match (v_us, a_us) {
            (Some(vt), a) if a.is_none_or(|at| vt <= at) => {
                let v = video.expect("video present when it has a timestamp");
                let stamp = FrameStamp {
                    stream_tag: 0,
                    sequence: vi,
                    sent_at_unix_micros: vt,
                };
                write_tag(
                    &mut out,
                    TAG_VIDEO,
                    (vt / 1000) as u32,
                    &v.frame_tag(vi, &stamp),
                );
                vi += 1;
            }
            (_, Some(at)) => {
                let a = audio.expect("audio present when it has a timestamp");
                write_tag(&mut out, TAG_AUDIO, (at / 1000) as u32, &a.frame_tag());
                ai += 1;
            }
            _ => break,
        }
    }
    out
}

fn write_tag(out: &mut Vec<u8>, kind: u8, timestamp_ms: u32, data: &[u8]) {
    let size = data.len() as u32;
    out.push(kind);
    out.extend_from_slice(&size.to_be_bytes()[1..]);
    out.extend_from_slice(&timestamp_ms.to_be_bytes()[1..]);
    out.push((timestamp_ms >> 24) as u8); // TimestampExtended
    out.extend_from_slice(&[0, 0, 0]); // StreamID
    out.extend_from_slice(data);
    out.extend_from_slice(&(11 + size).to_be_bytes());
}

/// AMF0 `onMetaData` script data, so players know the streams up front.
fn on_metadata(
    video: Option<&SyntheticVideo>,
    audio: Option<&SyntheticAudio>,
    seconds: u32,
) -> Vec<u8> {
    let mut props: Vec<(&str, f64)> = vec![("duration", f64::from(seconds))];
    if let Some(v) = video {
        let p = v.params();
        props.extend([
            ("width", f64::from(p.width)),
            ("height", f64::from(p.height)),
            ("framerate", f64::from(p.fps)),
            ("videocodecid", 7.0),
            ("videodatarate", p.bitrate_bps as f64 / 1000.0),
        ]);
    }
    if let Some(a) = audio {
        props.extend([
            ("audiocodecid", 10.0),
            ("audiosamplerate", 44_100.0),
            ("audiosamplesize", 16.0),
            ("audiodatarate", a.params().bitrate_bps as f64 / 1000.0),
        ]);
    }
    let mut out = Vec::new();
    amf0_string(&mut out, "onMetaData");
    out.push(0x08); // ECMA array
    out.extend_from_slice(&(props.len() as u32).to_be_bytes());
    for (key, value) in props {
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.push(0x00); // number
        out.extend_from_slice(&value.to_be_bytes());
    }
    // stereo is a boolean; written separately for its type marker.
    if audio.is_some() {
        let key = "stereo";
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&[0x01, 0x01]);
        let n = u32::from_be_bytes(out[14..18].try_into().expect("4 bytes")) + 1;
        out[14..18].copy_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 9]); // object end
    out
}

fn amf0_string(out: &mut Vec<u8>, s: &str) {
    out.push(0x02);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;
    use crate::media::aac::AudioParams;
    use crate::media::h264::VideoParams;

    fn tool_available(name: &str) -> bool {
        Command::new(name)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xiuload-{}-{name}", std::process::id()))
    }

    /// Sums FLV tag body sizes per type by walking the file structure.
    fn tag_bytes(flv: &[u8]) -> (usize, usize, usize) {
        let (mut video, mut audio, mut pos, mut n) = (0, 0, 13, 0);
        while pos + 11 <= flv.len() {
            let size = u32::from_be_bytes([0, flv[pos + 1], flv[pos + 2], flv[pos + 3]]) as usize;
            let prev =
                u32::from_be_bytes(flv[pos + 11 + size..pos + 15 + size].try_into().unwrap());
            assert_eq!(prev as usize, 11 + size);
            // Skip sequence headers (packet type 0) so only media counts.
            let body = &flv[pos + 11..pos + 11 + size];
            match flv[pos] {
                TAG_VIDEO if body[1] == 1 => video += size,
                TAG_AUDIO if body[1] == 1 => audio += size,
                _ => {}
            }
            n += 1;
            pos += 15 + size;
        }
        assert_eq!(pos, flv.len());
        (video, audio, n)
    }

    #[test]
    fn file_structure() {
        let v = SyntheticVideo::new(&VideoParams {
            width: 320,
            height: 240,
            fps: 25,
            bitrate_bps: 500_000,
            gop_frames: 50,
        })
        .unwrap();
        let a = SyntheticAudio::new(&AudioParams {
            bitrate_bps: 64_000,
        })
        .unwrap();
        let flv = write_flv(Some(&v), Some(&a), 2);
        assert_eq!(&flv[..5], b"FLV\x01\x05");
        let (video, audio, tags) = tag_bytes(&flv);
        // meta + 2 sequence headers + 50 video + 87 audio frames.
        assert_eq!(tags, 3 + 50 + 87);
        assert!(video.abs_diff(500_000 / 8 * 2) < 500, "{video}");
        assert!(audio.abs_diff(64_000 / 8 * 2) < 400, "{audio}");
        let only_audio = write_flv(None, Some(&a), 1);
        assert_eq!(only_audio[4], 0x04);
    }

    struct Probe {
        width: u64,
        height: u64,
        r_frame_rate: String,
        codecs: Vec<String>,
        video_bitrate_ratio: f64,
    }

    /// Writes `secs` seconds of FLV, decodes it fully with ffmpeg (any
    /// decoder complaint fails) and reads stream info back with ffprobe.
    fn check_with_ffmpeg(vp: VideoParams, secs: u32) -> Option<Probe> {
        if !tool_available("ffprobe") || !tool_available("ffmpeg") {
            eprintln!("NOTE: ffmpeg/ffprobe not on PATH; skipping independent bitstream check");
            return None;
        }
        let v = SyntheticVideo::new(&vp).unwrap();
        let a = SyntheticAudio::new(&AudioParams {
            bitrate_bps: 128_000,
        })
        .unwrap();
        let flv = write_flv(Some(&v), Some(&a), secs);
        let path = temp_path(&format!("{}x{}.flv", vp.width, vp.height));
        std::fs::write(&path, &flv).unwrap();

        let decode = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&decode.stderr).to_string();
        let probe = Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-of", "json"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            decode.status.success() && stderr.is_empty(),
            "ffmpeg decode: {stderr}"
        );
        assert!(probe.status.success());
        let json = String::from_utf8_lossy(&probe.stdout).to_string();

        // Crude JSON field extraction keeps serde out of the dev-deps.
        let field = |name: &str| -> Vec<String> {
            json.match_indices(&format!("\"{name}\": "))
                .map(|(i, m)| {
                    let rest = &json[i + m.len()..];
                    let end = rest.find([',', '\n']).unwrap_or(rest.len());
                    rest[..end].trim_matches('"').to_string()
                })
                .collect()
        };
        let (video_bytes, _, _) = tag_bytes(&flv);
        let measured = video_bytes as f64 * 8.0 / f64::from(secs);
        Some(Probe {
            width: field("width")[0].parse().unwrap(),
            height: field("height")[0].parse().unwrap(),
            r_frame_rate: field("r_frame_rate")[0].clone(),
            codecs: field("codec_name"),
            video_bitrate_ratio: measured / vp.bitrate_bps as f64,
        })
    }

    fn assert_probe(vp: VideoParams) {
        let (w, h, fps, bitrate) = (vp.width, vp.height, vp.fps, vp.bitrate_bps);
        let Some(p) = check_with_ffmpeg(vp, 5) else {
            return;
        };
        eprintln!(
            "ffprobe: {}x{} r_frame_rate {} codecs {:?} video {:.0} bit/s (ratio {:.5} of configured)",
            p.width,
            p.height,
            p.r_frame_rate,
            p.codecs,
            p.video_bitrate_ratio * bitrate as f64,
            p.video_bitrate_ratio
        );
        assert_eq!((p.width, p.height), (u64::from(w), u64::from(h)));
        assert_eq!(p.r_frame_rate, format!("{fps}/1"));
        assert!(p.codecs.contains(&"h264".to_string()), "{:?}", p.codecs);
        assert!(p.codecs.contains(&"aac".to_string()), "{:?}", p.codecs);
        assert!(
            (0.9..=1.1).contains(&p.video_bitrate_ratio),
            "{}",
            p.video_bitrate_ratio
        );
    }

    #[test]
    fn ffprobe_accepts_720p30() {
        assert_probe(VideoParams {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_bps: 2_000_000,
            gop_frames: 60,
        });
    }

    #[test]
    fn ffprobe_accepts_360p_with_cropping() {
        assert_probe(VideoParams {
            width: 640,
            height: 360,
            fps: 25,
            bitrate_bps: 800_000,
            gop_frames: 50,
        });
    }

    #[test]
    fn ffprobe_accepts_1080p60() {
        assert_probe(VideoParams {
            width: 1920,
            height: 1080,
            fps: 60,
            bitrate_bps: 6_000_000,
            gop_frames: 120,
        });
    }
}

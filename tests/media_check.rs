//! Independent check of our synthetic media: what xiu serves for a xiuload publisher must decode
//! in ffmpeg without errors, with the configured resolution, frame rate and bit rate.

mod common;

use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_what_xiu_serves_for_a_synthetic_publisher() {
    let xiu = common::start_xiu().await;
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[run]
duration = "20s"
{target}
[[publishers]]
name = "cams"
stream = "check"
count = 1
video = {{ width = 1280, height = 720, fps = 30, bitrate = "2Mbps", gop = "2s" }}
audio = {{ enabled = true, bitrate = "128kbps" }}
"#,
        target = common::remote_target(&xiu)
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let out = out.path().to_path_buf();
        let stop = stop.clone();
        async move { common::run_until(&text, &out, async move { stop.cancelled().await }).await }
    });
    // Wait for xiu to list the stream (its API does once the publish is accepted): asked any
    // earlier, xiu answers an empty 200, and on a loaded machine the publisher can take seconds.
    let api = format!("http://127.0.0.1:{}/api/query_whole_streams", xiu.ports.api);
    let listed_by = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listing = match reqwest::get(&api).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if listing.contains("\"stream_name\":\"check\"") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < listed_by,
            "xiu never listed the published stream: {listing}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("http://127.0.0.1:{}/live/check.flv", xiu.ports.flv);
    let capture = out.path().join("capture.flv");
    // Listed is not always servable at once (xiu may still lack the sequence headers): retry,
    // bounded.
    let mut captured = false;
    for _ in 0..5 {
        let status = Command::new("ffmpeg")
            .args([
                "-v", "error", "-y", "-i", &url, "-t", "8", "-c", "copy", "-f", "flv",
            ])
            .arg(&capture)
            .stdin(Stdio::null())
            .status()
            .await
            .expect("ffmpeg is installed (scripts/install-deps.sh)");
        if status.success()
            && std::fs::metadata(&capture)
                .map(|m| m.len() > 100_000)
                .unwrap_or(false)
        {
            captured = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    run.await.unwrap();
    xiu.stop().await;
    assert!(captured, "could not capture the stream from xiu");

    // 1. Decodes without a single error message.
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&capture)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(decode.status.success());
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(errors.trim().is_empty(), "ffmpeg reported: {errors}");

    // 2. Resolution, frame rate and codecs.
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(&capture)
        .output()
        .unwrap();
    let streams: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let video = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(video["r_frame_rate"], "30/1");
    assert!(
        streams["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["codec_name"] == "aac"),
        "no AAC stream"
    );

    // 3. Bit rate: sum of video packet sizes over their time span, within ±10 % of 2 Mbit/s.
    let packets = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time,size",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&capture)
        .output()
        .unwrap();
    let rows: Vec<(f64, u64)> = String::from_utf8_lossy(&packets.stdout)
        .lines()
        .filter_map(|l| {
            let (t, s) = l.split_once(',')?;
            Some((t.parse().ok()?, s.trim().parse().ok()?))
        })
        .collect();
    assert!(rows.len() > 100, "{} video packets", rows.len());
    // Whole GOPs only, so the big keyframes do not skew a partial window.
    let span = rows.last().unwrap().0 - rows.first().unwrap().0 + 1.0 / 30.0;
    let bits: u64 = rows.iter().map(|(_, s)| s * 8).sum();
    let rate = bits as f64 / span;
    assert!(
        (rate - 2_000_000.0).abs() / 2_000_000.0 < 0.10,
        "measured {rate:.0} bit/s over {span:.2} s, configured 2000000"
    );
}

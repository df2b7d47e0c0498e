//! HTTPS targets: certificate verification is on by default, a custom CA is trusted when given,
//! and turning verification off is explicit. A local TLS server (self-signed) serves an FLV body.

mod common;

use common::flv_server::{TlsFlvServer, tls_flv_server, tls_terminator};

async fn run(server: &TlsFlvServer, tls: &str) -> xiuload::report::model::Report {
    run_at(server, "localhost", tls).await
}

async fn run_at(server: &TlsFlvServer, host: &str, tls: &str) -> xiuload::report::model::Report {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let tls = tls.replace("CA", &ca.display().to_string());
    let text = format!(
        "[run]\nduration = \"3s\"\n[target]\nflv_base = \"https://{host}:{}\"\n{tls}\n\
         [[players]]\nname = \"viewers\"\nprotocol = \"flv\"\nstreams = [\"s\"]\ncount = 1\n\
         first_frame_timeout = \"2s\"\nreconnect = {{ max_attempts = 0, backoff = \"10s\" }}\n",
        server.port
    );
    common::run(&text, &dir.path().join("out")).await.report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_verifies_certificates_unless_told_otherwise() {
    let server = tls_flv_server(3).await;

    // Default: the self-signed certificate is not trusted, so the viewer fails to connect.
    let r = run(&server, "").await;
    let s = &r.players[0].summary;
    assert_eq!(s.frames, 0, "an untrusted certificate must not be accepted");
    assert_eq!(s.errors.total(), 1, "{:?}", s.errors);
    let mut errors = s.errors.clone();
    errors.merge(&s.errors_during_warmup);
    assert_eq!(errors.0.get("tls"), Some(&1), "{:?}", errors);
    let example = &r.raw.players["viewers"].error_examples.0["tls"];
    assert!(
        example.starts_with("certificate verification failed")
            && example.contains(xiuload::player::CA_FILE_HINT),
        "{example}"
    );

    // The server's CA given explicitly: media arrives.
    let r = run(&server, "[target.tls]\nca_file = \"CA\"").await;
    let s = &r.players[0].summary;
    assert!(
        s.frames > 50,
        "{} frames with the CA trusted, errors {:?}",
        s.frames,
        s.errors
    );

    // Verification off, explicitly: media arrives too.
    let r = run(&server, "[target.tls]\ninsecure_skip_verify = true").await;
    assert!(r.players[0].summary.frames > 50);

    // Every frame's stamp was found in the head of the tag the viewer kept.
    let s = &r.players[0].summary;
    assert_eq!(s.unstamped_frames, 0, "{s:?}");
}

/// A certificate for another name is refused too: the viewer checks the name it asked for (SNI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_refuses_a_certificate_for_another_name() {
    let server = tls_flv_server(3).await;
    // The CA is trusted, but the certificate names "localhost", not "127.0.0.1".
    let r = run_at(&server, "127.0.0.1", "[target.tls]\nca_file = \"CA\"").await;
    let s = &r.players[0].summary;
    assert_eq!(s.frames, 0);
    let example = &r.raw.players["viewers"].error_examples.0["tls"];
    assert!(
        example.contains("certificate verification failed"),
        "{example}"
    );
}

/// HLS viewers over https:// (the playlist and every segment, on one kept-alive TLS connection
/// per viewer) play a real xiu's HLS through a TLS terminator, as behind a TLS Ingress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_over_https_plays_through_a_tls_terminator() {
    let xiu = common::start_xiu().await;
    let terminator = tls_terminator(xiu.ports.hls).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &terminator.ca_pem).unwrap();
    let text = format!(
        r#"
[run]
duration = "20s"

[target]
app = "live"
rtmp_publish = "rtmp://127.0.0.1:{rtmp}"
hls_base = "https://localhost:{tls}"
tls = {{ ca_file = "{ca}" }}

[[publishers]]
name = "cams"
stream = "tls-hls-{{i}}"
count = 1
video = {{ width = 320, height = 240, fps = 25, bitrate = "300kbps", gop = "1s" }}

[[players]]
name = "hls-viewers"
protocol = "hls"
publishers = "cams"
first_frame_timeout = "12s"
reconnect = {{ max_attempts = 0, backoff = "10s" }}
ramp = [{{ duration = "6s", target = 0 }}, {{ duration = "1s", target = 2 }}, {{ duration = "13s", target = 2 }}]
"#,
        rtmp = xiu.ports.rtmp,
        tls = terminator.port,
        ca = ca.display(),
    );
    let r = common::run(&text, &dir.path().join("out")).await.report;
    let g = &r.players[0];
    let mut errors = g.summary.errors.clone();
    errors.merge(&g.summary.errors_during_warmup);
    assert!(errors.0.is_empty(), "errors over https: {errors:?}");
    assert_eq!(g.summary.sessions_with_media, 2, "{:?}", g.summary);
    assert!(g.summary.frames > 50, "{} frames", g.summary.frames);
    assert_eq!(g.summary.unstamped_frames, 0);
    // Several playlists and segments per viewer over few TLS connections: kept alive. (Viewers
    // start once xiu has cut segments; a viewer drops its connection after an answer other than
    // 200, such as xiu's 404 for a playlist before the stream's first segment.)
    let segments = r.raw.players["hls-viewers"].segments;
    assert!(segments >= 4, "{segments} segments");
    let connections = terminator
        .accepted
        .load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("{connections} TLS connections, {segments} segments");
    assert!(
        connections >= 2 && connections * 2 <= segments as usize,
        "{connections} TLS connections for 2 viewers and {segments} segments"
    );
}

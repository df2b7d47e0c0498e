//! HTTPS targets: certificate verification is on by default, a custom CA is trusted when given,
//! and turning verification off is explicit. A local TLS server (self-signed) serves an FLV body.

use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TlsFlvServer {
    port: u16,
    ca_pem: String,
}

/// Serves `GET /live/s.flv` over TLS with a few seconds of synthetic FLV, to any number of clients.
async fn start_server() -> TlsFlvServer {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca_pem = cert.cert.pem();
    let key =
        tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let video = xiuload::media::h264::SyntheticVideo::new(&xiuload::media::h264::VideoParams {
        width: 320,
        height: 240,
        fps: 25,
        bitrate_bps: 300_000,
        gop_frames: 25,
    })
    .unwrap();
    let body = Arc::new(xiuload::media::flv_file::write_flv(Some(&video), None, 3));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = [0u8; 2048];
                let _ = tls.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsFlvServer { port, ca_pem }
}

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
    let scenario = xiuload::scenario::parse(std::path::Path::new("tls.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let options = xiuload::run::RunOptions {
        scenario_file: "tls.toml".into(),
        out_dir: Some(dir.path().join("out")),
        status_line: false,
        metrics_addr: None,
        ..Default::default()
    };
    xiuload::run::run(scenario, options, std::future::pending())
        .await
        .unwrap()
        .report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_verifies_certificates_unless_told_otherwise() {
    let server = start_server().await;

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
    let server = start_server().await;
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

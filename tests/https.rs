//! HTTPS targets: certificate verification is on by default, a custom CA is trusted when given,
//! and turning verification off is explicit. A local TLS server (self-signed) serves an FLV body.

mod common;

use common::flv_server::{TlsFlvServer, tls_flv_server};

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

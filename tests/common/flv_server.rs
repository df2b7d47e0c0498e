//! Synthetic FLV media and a TLS server that serves it: what the HTTPS and hostile-server tests
//! play against when no xiu is needed; and a TLS terminator in front of a xiu (also used by
//! benches/players.rs, which includes this file).

use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xiuload::media::h264::{SyntheticVideo, VideoParams};

/// `seconds` of a small synthetic stream (320x240, 25 fps, 300 kbit/s, a key frame a second) as
/// an FLV file: header, video tags, no audio.
pub fn synthetic_flv(seconds: u32) -> Vec<u8> {
    let video = SyntheticVideo::new(&VideoParams {
        width: 320,
        height: 240,
        fps: 25,
        bitrate_bps: 300_000,
        gop_frames: 25,
    })
    .expect("the synthetic stream's parameters are valid");
    xiuload::media::flv_file::write_flv(Some(&video), None, seconds)
}

/// A TLS server on a loopback port with a self-signed certificate for `localhost`.
pub struct TlsFlvServer {
    pub port: u16,
    /// The certificate, which is its own CA: what `target.tls.ca_file` trusts it by.
    pub ca_pem: String,
    /// TLS connections accepted so far.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    /// The accept loop: runs until the runtime ends or this is aborted.
    pub task: tokio::task::JoinHandle<()>,
}

/// Serves `seconds` of [`synthetic_flv`] over TLS to every client that completes the handshake
/// (whatever it asks for, then closes), until the test's runtime ends.
pub async fn tls_flv_server(seconds: u32) -> TlsFlvServer {
    let body = Arc::new(synthetic_flv(seconds));
    serve_tls(move |mut tls| {
        let body = body.clone();
        async move {
            let mut request = [0u8; 2048];
            let _ = tls.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(head.as_bytes()).await;
            let _ = tls.write_all(&body).await;
            let _ = tls.shutdown().await;
        }
    })
    .await
}

/// A TLS server on a loopback port whose every connection, once its handshake is done (a client
/// that does not trust the certificate gives up before) and counted, is handed to `serve`.
async fn serve_tls<F, Fut>(serve: F) -> TlsFlvServer
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (acceptor, ca_pem) = self_signed_acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted: Arc<std::sync::atomic::AtomicUsize> = Default::default();
    let counter = accepted.clone();
    let serve = Arc::new(serve);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            let serve = serve.clone();
            tokio::spawn(async move {
                // No Nagle delay: a live stream's small tags go out as they come.
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                serve(tls).await;
            });
        }
    });
    TlsFlvServer {
        port,
        ca_pem,
        accepted,
        task,
    }
}

/// A TLS acceptor with a self-signed certificate for `localhost`, and that certificate's PEM.
fn self_signed_acceptor() -> (tokio_rustls::TlsAcceptor, String) {
    // Several tests in one binary race to install it; the first wins and the rest find it there.
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
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_pem)
}

/// A TLS terminator on a loopback port in front of `backend` (a xiu HTTP port), as an Ingress
/// is in front of a cluster's xiu: each client's decrypted bytes go to a new connection to the
/// backend and back, keep-alive included, until either side closes.
pub async fn tls_terminator(backend: u16) -> TlsFlvServer {
    serve_tls(move |mut tls| async move {
        let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await else {
            return;
        };
        let _ = upstream.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
        let _ = tls.shutdown().await;
    })
    .await
}

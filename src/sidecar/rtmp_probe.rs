//! Deep RTMP check: a full client handshake, which only a live RTMP server
//! loop completes (a bare TCP accept does not).

use std::net::SocketAddr;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("write: {0}")]
    Write(#[source] std::io::Error),
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    #[error("server closed the connection during the handshake")]
    Closed,
    /// The server's bytes are no RTMP handshake (shown as rml_rtmp's variant name, which is what
    /// the probe body has always said).
    #[error("{0:?}")]
    Protocol(#[source] rml_rtmp::handshake::HandshakeError),
}

/// Callers wrap this in a timeout.
pub async fn handshake(addr: SocketAddr) -> Result<(), HandshakeError> {
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(HandshakeError::Connect)?;
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(HandshakeError::Protocol)?;
    tcp.write_all(&p0p1).await.map_err(HandshakeError::Write)?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.map_err(HandshakeError::Read)?;
        if n == 0 {
            return Err(HandshakeError::Closed);
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(HandshakeError::Protocol)?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                tcp.write_all(&response_bytes)
                    .await
                    .map_err(HandshakeError::Write)?;
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                tcp.write_all(&response_bytes)
                    .await
                    .map_err(HandshakeError::Write)?;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A minimal RTMP server side of the handshake, to test against.
    async fn serve_one(listener: tokio::net::TcpListener) {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut hs = Handshake::new(PeerType::Server);
        let mut buf = vec![0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            match hs.process_bytes(&buf[..n]).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    tcp.write_all(&response_bytes).await.unwrap()
                }
                HandshakeProcessResult::Completed { .. } => return,
            }
        }
    }

    #[tokio::test]
    async fn completes_against_an_rtmp_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(serve_one(l));
        let r = tokio::time::timeout(Duration::from_secs(5), handshake(addr)).await;
        assert!(matches!(r, Ok(Ok(()))), "{r:?}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn silent_server_does_not_complete() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Accepts and says nothing: a bare TCP check would pass, this must not.
        let _keep = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let r = tokio::time::timeout(Duration::from_millis(300), handshake(addr)).await;
        assert!(r.is_err(), "{r:?}");
    }

    #[tokio::test]
    async fn closed_port_fails() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = handshake(addr).await.unwrap_err();
        assert!(matches!(e, HandshakeError::Connect(_)), "{e:?}");
        assert!(e.to_string().starts_with("connect: "), "{e}");
    }

    #[tokio::test]
    async fn a_server_that_hangs_up_is_told_apart() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // Reads all of C0+C1 (so closing sends a FIN, not a reset), then hangs up unanswered.
            let mut c0c1 = [0u8; 1 + 1536];
            s.read_exact(&mut c0c1).await.unwrap();
        });
        let e = tokio::time::timeout(Duration::from_secs(5), handshake(addr))
            .await
            .expect("a closed connection ends the handshake at once")
            .unwrap_err();
        server.await.unwrap();
        assert!(matches!(e, HandshakeError::Closed), "{e:?}");
        assert_eq!(
            e.to_string(),
            "server closed the connection during the handshake"
        );
    }
}

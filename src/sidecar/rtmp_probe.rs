//! Deep RTMP check: a full client handshake, which only a live RTMP server
//! loop completes (a bare TCP accept does not).

use std::net::SocketAddr;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Callers wrap this in a timeout.
pub async fn handshake(addr: SocketAddr) -> Result<(), String> {
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| format!("{e:?}"))?;
    tcp.write_all(&p0p1)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection during the handshake".into());
        }
        match hs.process_bytes(&buf[..n]).map_err(|e| format!("{e:?}"))? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                tcp.write_all(&response_bytes)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                tcp.write_all(&response_bytes)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
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
        assert_eq!(r, Ok(Ok(())));
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
        assert!(handshake(addr).await.is_err());
    }
}

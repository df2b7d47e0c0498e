//! Players: HTTP-FLV, HLS and RTMP viewers. Each turns what arrives into viewer-experience
//! measurements through one [`viewer::Viewer`], so all protocols are measured alike.

pub mod fetch;
pub mod flv;
pub mod hls;
pub mod http1;
pub mod lean_tls;
pub mod rtmp;
pub mod target;
pub mod tls;
pub mod viewer;

use crate::metrics::ErrorKind;
use crate::session::{DeadlineBudget, SessionDeadlines};
use std::time::{Duration, Instant};

/// What HTTP viewers connect with, made once per run: the TLS connector HTTP-FLV and HLS viewers
/// wrap their own TCP connections in for https:// (`target::connect`).
#[derive(Clone)]
pub struct HttpClients {
    pub tls: tokio_rustls::TlsConnector,
}

/// What every player session needs to know besides its URL.
#[derive(Debug, Clone)]
pub struct PlayerTiming {
    pub first_frame_timeout: Duration,
    pub read_timeout: Duration,
    pub startup_buffer: Duration,
    /// Planned session length (viewer churn); `None` watches until cancelled.
    pub session_length: Option<Duration>,
}

impl PlayerTiming {
    /// The deadlines of a session that started at `started`.
    pub fn deadlines(&self, limits: &PlayerLimits, started: Instant) -> SessionDeadlines {
        SessionDeadlines::new(
            started,
            &DeadlineBudget {
                connect: limits.connect_timeout,
                first_frame: self.first_frame_timeout,
                read: self.read_timeout,
                session_length: self.session_length,
            },
        )
    }
}

/// Bounds on what one viewer accepts from a server, so its memory stays bounded whatever the
/// server sends (scenario keys of the player group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayerLimits {
    /// TCP connect (+ TLS) up to the response head; RTMP: connect, handshake and `connect`.
    pub connect_timeout: Duration,
    pub max_playlist_bytes: u64,
    pub max_segment_bytes: u64,
    /// An HTTP-FLV tag or an RTMP message.
    pub max_tag_bytes: u64,
}

/// Player limits on what a server may send (`too_large` beyond), so a viewer's memory stays
/// bounded whatever the server does.
pub const DEFAULT_MAX_PLAYLIST_BYTES: u64 = 1 << 20;
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 32 << 20;
/// Video keyframes of a 4K stream stay well under this.
pub const DEFAULT_MAX_TAG_BYTES: u64 = 4 << 20;

impl Default for PlayerLimits {
    fn default() -> Self {
        PlayerLimits {
            connect_timeout: Duration::from_secs(10),
            max_playlist_bytes: DEFAULT_MAX_PLAYLIST_BYTES,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
            max_tag_bytes: DEFAULT_MAX_TAG_BYTES,
        }
    }
}

impl PlayerLimits {
    /// `max_tag_bytes` as the demuxers take it (an FLV tag cannot exceed 24 bits anyway).
    pub fn max_tag(&self) -> u32 {
        self.max_tag_bytes.min(u32::MAX as u64) as u32
    }
}

/// The hint a certificate failure comes with.
pub const CA_FILE_HINT: &str = "if the server's certificate comes from a private CA, set target.tls.ca_file to that CA's PEM file";

/// The kind an I/O error of a viewer's own connection is counted as (`tls` when rustls failed
/// inside it, `otherwise` else), and the detail kept: what failed (a TLS failure says it with the
/// `ca_file` hint), or what was being done and why it failed.
pub fn io_failure(doing: &str, e: &std::io::Error, otherwise: ErrorKind) -> (ErrorKind, String) {
    match tls_failure(e) {
        Some(tls) => (ErrorKind::Tls, tls),
        None => (otherwise, format!("{doing}: {}", error_chain(e))),
    }
}

/// The error and its causes, joined: a wrapping error's own message often says only what it was
/// doing, not why it failed.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

/// A TLS failure somewhere in the error's causes, described. rustls' error sits inside an
/// `io::Error`, whose `source()` skips it, so each `io::Error` is opened by hand.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use tokio_rustls::rustls;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let inner = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in std::iter::once(c).chain(inner) {
            if let Some(r) = candidate.downcast_ref::<rustls::Error>() {
                return Some(describe_tls(r));
            }
        }
        cause = inner.or_else(|| c.source());
    }
    None
}

fn describe_tls(e: &tokio_rustls::rustls::Error) -> String {
    use tokio_rustls::rustls::Error as E;
    match e {
        E::InvalidCertificate(why) => {
            format!("certificate verification failed ({why:?}); {CA_FILE_HINT}")
        }
        E::NoCertificatesPresented => {
            format!("certificate verification failed (the server sent none); {CA_FILE_HINT}")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls;

    /// An error shaped as reqwest hands it over: rustls' error in an `io::Error`, under a wrapper.
    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_certificate_failure_inside_an_io_error_is_found_and_explained() {
        let rustls_error =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = Wrapper(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls_error,
        ));
        let found = tls_failure(&wrapped).expect("found through the io::Error");
        assert!(
            found.starts_with("certificate verification failed (UnknownIssuer)"),
            "{found}"
        );
        assert!(found.contains("target.tls.ca_file"), "{found}");
        let plain = Wrapper(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert_eq!(tls_failure(&plain), None);
        assert_eq!(error_chain(&plain), "client error (Connect): refused");
    }
}

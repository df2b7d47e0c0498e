//! Where an HTTP viewer connects and what it asks, from its URL, and the connection it opens
//! there: TCP, wrapped in rustls for https://. Shared by the HTTP-FLV viewer (one endless
//! response) and the HLS viewer (many short ones over one kept-alive connection), so both
//! connect, time out and name their failures alike.

use super::io_failure;
use super::lean_tls::LeanTlsStream;
use crate::metrics::ErrorKind;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("URL {url:?}: {reason}")]
    Unparsable { url: String, reason: String },
    #[error("URL {url:?}: {scheme}:// is not HTTP")]
    NotHttp { url: String, scheme: String },
    #[error("URL {url:?} has no host")]
    NoHost { url: String },
    #[error("URL {url:?}: {host} is not a TLS server name: {reason}")]
    ServerName {
        url: String,
        host: String,
        reason: String,
    },
}

/// A URL as an HTTP/1.1 client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host to connect to (an IPv6 address without its brackets).
    pub host: String,
    pub port: u16,
    /// `Some` for https://: the name the server's certificate must carry (and SNI).
    pub server_name: Option<ServerName<'static>>,
    /// The `Host` header: as reqwest writes it, the port only when the URL gives one other than
    /// the scheme's.
    host_header: String,
    /// Path and query, as the request line carries them.
    path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| TargetError::Unparsable {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let secure = match parsed.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(TargetError::NotHttp {
                    url: url.to_string(),
                    scheme: other.to_string(),
                });
            }
        };
        let host_in_url = parsed.host_str().ok_or_else(|| TargetError::NoHost {
            url: url.to_string(),
        })?;
        let host = host_in_url
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let server_name =
            match secure {
                false => None,
                true => Some(ServerName::try_from(host.clone()).map_err(|e| {
                    TargetError::ServerName {
                        url: url.to_string(),
                        host: host.clone(),
                        reason: e.to_string(),
                    }
                })?),
            };
        let port = parsed.port_or_known_default().unwrap_or(80);
        let host_header = match parsed.port() {
            Some(port) => format!("{host_in_url}:{port}"),
            None => host_in_url.to_string(),
        };
        let path = match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_string(),
        };
        Ok(Target {
            host,
            port,
            server_name,
            host_header,
            path,
        })
    }

    /// The GET request for this URL. `keep_alive` asks the server to keep the connection for the
    /// next request (HLS); otherwise the response ends with the connection (HTTP-FLV).
    pub fn request(&self, keep_alive: bool) -> String {
        let connection = if keep_alive { "keep-alive" } else { "close" };
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: xiuload/{}\r\nAccept: */*\r\nConnection: {connection}\r\n\r\n",
            self.path,
            self.host_header,
            env!("CARGO_PKG_VERSION")
        )
    }

    /// Whether a connection opened for `self` serves `other` too: same host, port and scheme.
    pub fn same_server(&self, other: &Target) -> bool {
        self.host == other.host
            && self.port == other.port
            && self.server_name.is_some() == other.server_name.is_some()
    }
}

/// An open connection to a target: plain TCP, or TLS over it. The TLS stream is boxed so that a
/// plain viewer, which holds this in its session, does not pay for rustls' state inline.
pub enum HttpStream {
    Plain(TcpStream),
    Tls(Box<LeanTlsStream>),
}

/// Connects to `target` (TCP, then TLS for https://) by `by`: a failure is counted as `timeout`
/// (not done in time), `connect` (TCP refused, handshake failed) or `tls` (the certificate or
/// the handshake refused), with what failed as its detail.
pub async fn connect(
    tls: &TlsConnector,
    target: &Target,
    by: tokio::time::Instant,
) -> Result<HttpStream, (ErrorKind, String)> {
    let (host, port) = (target.host.as_str(), target.port);
    let tcp = match tokio::time::timeout_at(by, TcpStream::connect((host, port))).await {
        Err(_) => {
            let detail = format!("TCP connect to {host}:{port} did not complete in time");
            return Err((ErrorKind::Timeout, detail));
        }
        Ok(Err(e)) => {
            let detail = format!("TCP connect to {host}:{port}: {e}");
            return Err((ErrorKind::Connect, detail));
        }
        Ok(Ok(s)) => s,
    };
    // Requests and their answers are small and latency is measured: no Nagle delay.
    let _ = tcp.set_nodelay(true);
    let Some(server_name) = target.server_name.clone() else {
        return Ok(HttpStream::Plain(tcp));
    };
    let handshake = LeanTlsStream::connect(tls.config().clone(), server_name, tcp);
    match tokio::time::timeout_at(by, handshake).await {
        Err(_) => {
            let detail = format!("TLS handshake with {host}:{port} did not complete in time");
            Err((ErrorKind::Timeout, detail))
        }
        Ok(Err(e)) => {
            let doing = format!("TLS handshake with {host}:{port}");
            Err(io_failure(&doing, &e, ErrorKind::Connect))
        }
        Ok(Ok(s)) => Ok(HttpStream::Tls(Box::new(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_urls() {
        let t = Target::parse("http://127.0.0.1:8080/live/cam-1.flv?token=a").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, &t.server_name),
            ("127.0.0.1", 8080, &None)
        );
        let request = t.request(false);
        assert!(
            request.starts_with("GET /live/cam-1.flv?token=a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
        );
        assert!(request.ends_with("Connection: close\r\n\r\n"));
        assert!(t.request(true).ends_with("Connection: keep-alive\r\n\r\n"));
        // https: the default port, left out of Host as reqwest does; the name for SNI.
        let t = Target::parse("https://edge.example.com/live/s.flv").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("edge.example.com", 443));
        assert_eq!(
            t.server_name,
            Some(ServerName::try_from("edge.example.com").unwrap())
        );
        assert!(t.request(false).contains("\r\nHost: edge.example.com\r\n"));
        // An IPv6 literal: connected to without brackets, named with them in Host.
        let t = Target::parse("https://[::1]:8443/s.flv").unwrap();
        assert_eq!(t.host, "::1");
        assert!(matches!(t.server_name, Some(ServerName::IpAddress(_))));
        assert!(t.request(false).contains("\r\nHost: [::1]:8443\r\n"));
        assert!(matches!(
            Target::parse("rtmp://x/live"),
            Err(TargetError::NotHttp { scheme, .. }) if scheme == "rtmp"
        ));
        assert!(matches!(
            Target::parse("not a url"),
            Err(TargetError::Unparsable { .. })
        ));
    }

    #[test]
    fn a_connection_serves_the_same_host_port_and_scheme_only() {
        let t = |url| Target::parse(url).unwrap();
        let playlist = t("http://127.0.0.1:8080/live/s/s.m3u8");
        assert!(playlist.same_server(&t("http://127.0.0.1:8080/live/s/s-12.ts")));
        assert!(!playlist.same_server(&t("http://127.0.0.1:8081/live/s/s-12.ts")));
        assert!(!playlist.same_server(&t("http://127.0.0.2:8080/live/s/s-12.ts")));
        assert!(!playlist.same_server(&t("https://127.0.0.1:8080/live/s/s-12.ts")));
    }
}

//! `rtmp://host[:port]` base URLs from scenarios.

use crate::base_url::{self, BaseUrlError, Kind};

/// Where an RTMP client connects. Read from and written as its URL, so scenario files and the
/// coordinator's messages to workers carry `rtmp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RtmpBase {
    /// IPv6 addresses keep their brackets, so `host:port` is a socket address.
    pub host: String,
    pub port: u16,
}

impl RtmpBase {
    /// The default port when the URL gives none.
    pub const DEFAULT_PORT: u16 = 1935;

    pub fn parse(url: &str) -> Result<Self, BaseUrlError> {
        let parts = base_url::parse(url, Kind::Rtmp)?;
        Ok(RtmpBase {
            host: parts.host,
            port: parts.port.unwrap_or(Self::DEFAULT_PORT),
        })
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The `tcUrl` sent in `connect`: some servers route on it.
    pub fn tc_url(&self, app: &str) -> String {
        format!("rtmp://{}:{}/{app}", self.host, self.port)
    }
}

impl TryFrom<String> for RtmpBase {
    type Error = BaseUrlError;

    fn try_from(url: String) -> Result<Self, BaseUrlError> {
        RtmpBase::parse(&url)
    }
}

impl From<RtmpBase> for String {
    fn from(b: RtmpBase) -> String {
        format!("rtmp://{}", b.addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_port_with_default() {
        assert_eq!(
            RtmpBase::parse("rtmp://origin.example.com").unwrap(),
            RtmpBase {
                host: "origin.example.com".into(),
                port: 1935
            }
        );
        let b = RtmpBase::parse("rtmp://127.0.0.1:19350/").unwrap();
        assert_eq!(b.addr(), "127.0.0.1:19350");
        assert_eq!(b.tc_url("live"), "rtmp://127.0.0.1:19350/live");
        assert!(RtmpBase::parse("http://x").is_err());
        assert!(RtmpBase::parse("rtmp://host:notaport").is_err());
        assert!(RtmpBase::parse("rtmp://host/live").is_err());
    }

    #[test]
    fn travels_as_its_url() {
        let b = RtmpBase::parse("rtmp://[::1]:19350").unwrap();
        assert_eq!(b.addr(), "[::1]:19350");
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"rtmp://[::1]:19350\"");
        assert_eq!(serde_json::from_str::<RtmpBase>(&json).unwrap(), b);
    }
}

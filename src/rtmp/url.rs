//! `rtmp://host[:port]` base URLs from scenarios.

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RtmpBase {
    pub host: String,
    pub port: u16,
}

impl RtmpBase {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| format!("{url:?} does not start with rtmp://"))?;
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
            ),
            _ => (authority.to_string(), 1935),
        };
        Ok(RtmpBase { host, port })
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The `tcUrl` sent in `connect`: some servers route on it.
    pub fn tc_url(&self, app: &str) -> String {
        format!("rtmp://{}:{}/{app}", self.host, self.port)
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
        let b = RtmpBase::parse("rtmp://127.0.0.1:19350/ignored").unwrap();
        assert_eq!(b.addr(), "127.0.0.1:19350");
        assert_eq!(b.tc_url("live"), "rtmp://127.0.0.1:19350/live");
        assert!(RtmpBase::parse("http://x").is_err());
        assert!(RtmpBase::parse("rtmp://host:notaport").is_err());
    }
}

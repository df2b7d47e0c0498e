//! Base URLs a scenario names (`rtmp://host[:port]`, `http(s)://host[:port][/prefix]`), parsed
//! once when the file is read: a typo fails there, with its line, rather than as every session
//! failing to connect, and nothing below the scenario parses a URL again.

use std::fmt;

/// Which base URL a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rtmp,
    Http,
}

impl Kind {
    fn schemes(self) -> &'static [&'static str] {
        match self {
            Kind::Rtmp => &["rtmp://"],
            Kind::Http => &["http://", "https://"],
        }
    }

    fn shape(self) -> &'static str {
        match self {
            Kind::Rtmp => "rtmp://host[:port]",
            Kind::Http => "http(s)://host[:port][/path]",
        }
    }
}

/// Why a base URL cannot be used, and what to write instead. The hint goes on its own line,
/// which the scenario loader shows as the error's hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}\nhint: {hint}")]
pub struct BaseUrlError {
    pub message: String,
    pub hint: String,
}

/// A base URL's parts, as the run connects to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The host as it goes into a socket address: IPv6 addresses keep their brackets.
    pub host: String,
    pub port: Option<u16>,
    /// Everything after the authority (empty, `/`, or an HTTP prefix such as `/media`).
    pub path: String,
}

/// Parses `url` as a base URL of `kind`, the way the run will use it.
pub fn parse(url: &str, kind: Kind) -> Result<Parts, BaseUrlError> {
    let fail = |what: String| {
        Err(BaseUrlError {
            message: format!("{url:?}: {what}"),
            hint: format!("write {}", kind.shape()),
        })
    };
    let Some(rest) = kind.schemes().iter().find_map(|s| url.strip_prefix(s)) else {
        return fail(format!("not a {} URL", kind.schemes().join(" or ")));
    };
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return fail(format!("contains {c:?}; URLs cannot hold spaces"));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.contains('@') {
        return fail("user names and passwords in the URL are not supported".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, after)) => match after.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return fail(format!("unexpected {after:?} after the IPv6 address")),
            },
            None => return fail("IPv6 address without a closing ']'".into()),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return fail("no host".into());
    }
    let ipv6 = authority.starts_with('[');
    let host_ok = if ipv6 {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    if !host_ok {
        return fail(format!("{host:?} is not a host name or IP address"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && !p.starts_with('+') => Some(n),
            _ => return fail(format!("port {p:?} is not a number from 1 to 65535")),
        },
    };
    match kind {
        Kind::Rtmp if !path.is_empty() && path != "/" => {
            return Err(BaseUrlError {
                message: format!("{url:?}: the path {path:?} would be ignored"),
                hint: "give rtmp://host[:port] only; the application name goes in `target.app`"
                    .into(),
            });
        }
        Kind::Http if path.contains(['?', '#']) => {
            return fail(
                "a base URL cannot hold a query or fragment; put it in flv_path/hls_path".into(),
            );
        }
        _ => {}
    }
    Ok(Parts {
        host: if ipv6 {
            format!("[{host}]")
        } else {
            host.to_string()
        },
        port,
        path: path.to_string(),
    })
}

/// An `http(s)://host[:port][/prefix]` base that HTTP-FLV or HLS paths are appended to; held
/// without a trailing `/` so that `base + path` never doubles it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpBase(String);

impl HttpBase {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HttpBase {
    type Error = BaseUrlError;

    fn try_from(url: String) -> Result<Self, BaseUrlError> {
        parse(&url, Kind::Http)?;
        Ok(HttpBase(url.trim_end_matches('/').to_string()))
    }
}

impl TryFrom<&str> for HttpBase {
    type Error = BaseUrlError;

    fn try_from(url: &str) -> Result<Self, BaseUrlError> {
        HttpBase::try_from(url.to_string())
    }
}

impl From<HttpBase> for String {
    fn from(b: HttpBase) -> String {
        b.0
    }
}

impl fmt::Display for HttpBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_that_the_run_can_use_pass() {
        for ok in [
            "rtmp://origin.example.com",
            "rtmp://127.0.0.1:1935",
            "rtmp://[::1]:1935",
            "rtmp://host/",
        ] {
            assert!(parse(ok, Kind::Rtmp).is_ok(), "{ok}");
        }
        for ok in [
            "http://127.0.0.1:8080",
            "https://httpflv.example.com/",
            "https://cdn.example.com/media",
            "http://[::1]:8080",
            "http://edge_1.internal:80/prefix/path",
        ] {
            assert!(parse(ok, Kind::Http).is_ok(), "{ok}");
        }
    }

    #[test]
    fn parts_are_what_a_socket_address_needs() {
        let p = parse("rtmp://[::1]:19350", Kind::Rtmp).unwrap();
        assert_eq!((p.host.as_str(), p.port), ("[::1]", Some(19350)));
        let p = parse("https://cdn.example.com/media", Kind::Http).unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.path.as_str()),
            ("cdn.example.com", None, "/media")
        );
    }

    #[test]
    fn unusable_base_urls_say_why() {
        for (bad, kind, says) in [
            ("http://x", Kind::Rtmp, "not a rtmp:// URL"),
            ("rtmp://x", Kind::Http, "not a http:// or https:// URL"),
            ("rtmp://:1935", Kind::Rtmp, "no host"),
            (
                "rtmp://host:99999",
                Kind::Rtmp,
                "is not a number from 1 to 65535",
            ),
            (
                "rtmp://host:0",
                Kind::Rtmp,
                "is not a number from 1 to 65535",
            ),
            (
                "rtmp://host:+80",
                Kind::Rtmp,
                "is not a number from 1 to 65535",
            ),
            ("rtmp://host/live", Kind::Rtmp, "would be ignored"),
            ("http://a b", Kind::Http, "URLs cannot hold spaces"),
            ("http://u:p@host", Kind::Http, "user names and passwords"),
            ("http://[::1", Kind::Http, "without a closing ']'"),
            ("http://[::1]x", Kind::Http, "after the IPv6 address"),
            ("http://ho$t", Kind::Http, "is not a host name"),
            ("http://host/x?a=b", Kind::Http, "query or fragment"),
            (
                "rtmp://127.0.0.1:",
                Kind::Rtmp,
                "not a number from 1 to 65535",
            ),
            (
                "rtmp://[nothex]:1935",
                Kind::Rtmp,
                "not a host name or IP address",
            ),
            ("http://", Kind::Http, "no host"),
            ("ftp://host", Kind::Http, "not a http:// or https:// URL"),
        ] {
            let e = parse(bad, kind).unwrap_err();
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn http_base_drops_the_trailing_slash_and_round_trips() {
        let b = HttpBase::try_from("https://httpflv.example.com/").unwrap();
        assert_eq!(b.as_str(), "https://httpflv.example.com");
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<HttpBase>(&json).unwrap(), b);
        assert!(serde_json::from_str::<HttpBase>("\"ftp://x\"").is_err());
    }
}

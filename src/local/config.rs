//! xiu 0.14 configuration that actually loads and serves HLS (see the facts file): the seed's
//! minimal config fails on `need_record` and `authsecret`, and HLS panics without `[hls.s3]`.

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XiuPorts {
    pub rtmp: u16,
    pub hls: u16,
    pub flv: u16,
    pub api: u16,
}

/// Renders a xiu 0.14 config. `push_token` makes the node an edge as deploy/ runs it: no
/// `[rtmp.pull]` (the sidecar relays into it), and RTMP publishing only with `?token=<push_token>`
/// (xiu's `[rtmp.auth]`, algorithm `simple`, the `[authsecret]` push password); playing over RTMP,
/// HTTP-FLV and HLS needs no token.
pub fn render_config(ports: XiuPorts, hls_fragment_secs: u32, push_token: Option<&str>) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "[rtmp]\nenabled = true\nport = {}\n", ports.rtmp);
    if push_token.is_some() {
        c.push_str(
            "[rtmp.auth]\npull_enabled = false\npush_enabled = true\nalgorithm = \"simple\"\n\n",
        );
    }
    let _ = writeln!(c, "[httpflv]\nenabled = true\nport = {}\n", ports.flv);
    let _ = writeln!(
        c,
        "[hls]\nenabled = true\nport = {}\nneed_record = false\nfragment = {hls_fragment_secs}\n",
        ports.hls
    );
    // xiu 0.14's HLS remuxer unwraps this table on the first publish (hls m3u8.rs:69).
    c.push_str("[hls.s3]\nenabled = false\nbucket = \"unused\"\nregion = \"unused\"\n\n");
    let _ = writeln!(c, "[httpapi]\nport = {}\n", ports.api);
    // Required even when auth is off: without it xiu prints an error and exits with status 0.
    c.push_str("[authsecret]\nkey = \"\"\npassword = \"\"\n");
    if let Some(token) = push_token {
        // TOML basic string; the topology's tokens are hex, this keeps any other one valid.
        let _ = writeln!(
            c,
            "push_password = {}",
            toml::Value::String(token.to_string())
        );
    }
    c.push('\n');
    c.push_str("[log]\nlevel = \"info\"\n");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_every_table_xiu_014_requires() {
        let ports = XiuPorts {
            rtmp: 1,
            hls: 2,
            flv: 3,
            api: 4,
        };
        let c = render_config(ports, 2, None);
        let v: toml::Table = toml::from_str(&c).unwrap();
        assert_eq!(v["hls"]["need_record"].as_bool(), Some(false));
        assert_eq!(v["hls"]["s3"]["enabled"].as_bool(), Some(false));
        assert!(v["authsecret"].is_table());
        assert_eq!(v["log"]["level"].as_str(), Some("info"));
        assert_eq!(v["httpapi"]["port"].as_integer(), Some(4));
        assert!(v["rtmp"].get("pull").is_none());
        assert!(v["rtmp"].get("auth").is_none());

        let edge: toml::Table = toml::from_str(&render_config(ports, 2, Some("s3cr\"t"))).unwrap();
        assert!(
            edge["rtmp"].get("pull").is_none(),
            "edges are relayed into, never pull"
        );
        assert_eq!(edge["rtmp"]["auth"]["push_enabled"].as_bool(), Some(true));
        assert_eq!(edge["rtmp"]["auth"]["pull_enabled"].as_bool(), Some(false));
        assert_eq!(edge["rtmp"]["auth"]["algorithm"].as_str(), Some("simple"));
        assert_eq!(
            edge["authsecret"]["push_password"].as_str(),
            Some("s3cr\"t")
        );
    }
}

//! Pure checks of a xiu 0.14 TOML config against the structs xiu deserializes
//! it into (`xiu-0.14.0/src/config/mod.rs`). xiu stops at the first serde
//! error; we list every problem so one lint run fixes them all.

use toml::{Table, Value};

#[derive(Clone, Copy)]
enum Ty {
    Bool,
    /// `usize` in xiu: a non-negative integer.
    UInt,
    /// `u16` (the pull port).
    U16,
    Int,
    Str,
    OneOf(&'static [&'static str]),
    Table(&'static [Field]),
    TableArray(&'static [Field]),
}

struct Field {
    name: &'static str,
    ty: Ty,
    required: bool,
}

const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}
const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

const AUTH: &[Field] = &[
    req("pull_enabled", Ty::Bool),
    opt("push_enabled", Ty::Bool),
    req("algorithm", Ty::OneOf(&["simple", "md5"])),
];
const PULL: &[Field] = &[
    req("enabled", Ty::Bool),
    req("address", Ty::Str),
    req("port", Ty::U16),
];
const PUSH: &[Field] = &[
    req("enabled", Ty::Bool),
    req("address", Ty::Str),
    req("port", Ty::UInt),
];
const RTMP: &[Field] = &[
    req("enabled", Ty::Bool),
    req("port", Ty::UInt),
    opt("gop_num", Ty::UInt),
    opt("gop_max_frame_num", Ty::UInt),
    opt("pull", Ty::Table(PULL)),
    opt("push", Ty::TableArray(PUSH)),
    opt("auth", Ty::Table(AUTH)),
];
const RTSP: &[Field] = &[
    req("enabled", Ty::Bool),
    req("port", Ty::UInt),
    opt("auth", Ty::Table(AUTH)),
    req("relay_enabled", Ty::Bool),
];
const SIMPLE: &[Field] = &[
    req("enabled", Ty::Bool),
    req("port", Ty::UInt),
    opt("auth", Ty::Table(AUTH)),
];
const S3: &[Field] = &[
    req("enabled", Ty::Bool),
    req("bucket", Ty::Str),
    req("region", Ty::Str),
    opt("access_key", Ty::Str),
    opt("secret_key", Ty::Str),
    opt("endpoint", Ty::Str),
    opt("prefix", Ty::Str),
];
const HLS: &[Field] = &[
    req("enabled", Ty::Bool),
    req("port", Ty::UInt),
    req("need_record", Ty::Bool),
    opt("auth", Ty::Table(AUTH)),
    opt("path", Ty::Str),
    opt("fragment", Ty::Int),
    opt("aof_ratio", Ty::Int),
    opt("live_ts_count", Ty::UInt),
    opt("prefix", Ty::Str),
    opt("s3", Ty::Table(S3)),
];
const LOG_FILE: &[Field] = &[
    req("enabled", Ty::Bool),
    req("rotate", Ty::Str),
    req("path", Ty::Str),
];
const LOG: &[Field] = &[req("level", Ty::Str), opt("file", Ty::Table(LOG_FILE))];
const HTTPAPI: &[Field] = &[req("port", Ty::UInt)];
const NOTIFY: &[Field] = &[
    req("enabled", Ty::Bool),
    opt("on_publish", Ty::Str),
    opt("on_unpublish", Ty::Str),
    opt("on_play", Ty::Str),
    opt("on_stop", Ty::Str),
    opt("on_hls", Ty::Str),
];
const AUTHSECRET: &[Field] = &[
    req("key", Ty::Str),
    req("password", Ty::Str),
    opt("push_password", Ty::Str),
];
/// Note `[log]` itself is optional (xiu then logs at info); only a `[log]`
/// table without `level` fails.
const ROOT: &[Field] = &[
    opt("rtmp", Ty::Table(RTMP)),
    opt("rtsp", Ty::Table(RTSP)),
    opt("webrtc", Ty::Table(SIMPLE)),
    opt("httpflv", Ty::Table(SIMPLE)),
    opt("hls", Ty::Table(HLS)),
    opt("httpapi", Ty::Table(HTTPAPI)),
    opt("httpnotify", Ty::Table(NOTIFY)),
    req("authsecret", Ty::Table(AUTHSECRET)),
    opt("log", Ty::Table(LOG)),
];

/// What the linter needs to know about one xiu config.
#[derive(Debug, Default, PartialEq)]
pub struct XiuConfig {
    /// Reasons xiu 0.14 refuses to load it (it then exits with status 0).
    pub problems: Vec<String>,
    /// `[hls] enabled = true` without `[hls.s3]`: the m3u8.rs:69 panic.
    pub hls_without_s3: bool,
    /// `[rtmp.pull] enabled = true`: an edge.
    pub pulls: bool,
    /// Addresses of enabled `[[rtmp.push]]` entries.
    pub push_addresses: Vec<String>,
    /// Where xiu connects to relay streams: the enabled `[rtmp.pull]` and `[[rtmp.push]]`
    /// entries, as (field path, address, port).
    pub relay_targets: Vec<(String, String, i64)>,
    /// The TCP listeners xiu opens (HTTP API included, always on).
    pub listeners: Vec<Listener>,
    /// RTMP publishing needs a token: `[rtmp.auth] push_enabled = true` and a non-empty secret
    /// for the algorithm (`simple`: push_password, else password; `md5`: key).
    pub publish_needs_token: bool,
}

/// One listener of a xiu config: the table that opens it and its port.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// `rtmp`, `hls`, `httpflv` or `httpapi`: also the conventional container port names
    /// (`api` for `httpapi`).
    pub table: &'static str,
    pub port: i64,
    pub enabled: bool,
}

impl Listener {
    /// The container port name deploy/ (and the seed) give this listener.
    pub fn port_name(&self) -> &'static str {
        match self.table {
            "httpapi" => "api",
            t => t,
        }
    }
}

/// xiu's API port when `[httpapi]` is absent.
const DEFAULT_API_PORT: i64 = 8000;

/// Heuristic: a `.toml` key with one of xiu's protocol tables. Works on
/// broken TOML too, so syntax errors in xiu configs are still reported.
pub fn looks_like_xiu(key: &str, text: &str) -> bool {
    key.ends_with(".toml")
        && text.lines().any(|l| {
            let l = l.trim();
            l.starts_with("[rtmp") || l.starts_with("[httpflv]") || l.starts_with("[hls")
        })
}

pub fn analyze(text: &str) -> XiuConfig {
    let table: Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return XiuConfig {
                problems: vec![format!("TOML syntax error: {}", e.to_string().trim())],
                ..Default::default()
            };
        }
    };
    let mut problems = Vec::new();
    check_table(&table, ROOT, "", &mut problems);
    let get = |path: &[&str]| -> Option<&Value> {
        let mut cur = table.get(path[0])?;
        for p in &path[1..] {
            cur = cur.get(p)?;
        }
        Some(cur)
    };
    let is_true = |path: &[&str]| get(path).and_then(Value::as_bool) == Some(true);
    let push_addresses = get(&["rtmp", "push"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("enabled").and_then(Value::as_bool) == Some(true))
        .filter_map(|p| p.get("address").and_then(Value::as_str).map(String::from))
        .collect();
    let mut relay_targets = Vec::new();
    if is_true(&["rtmp", "pull", "enabled"])
        && let (Some(a), Some(p)) = (
            get(&["rtmp", "pull", "address"]).and_then(Value::as_str),
            get(&["rtmp", "pull", "port"]).and_then(Value::as_integer),
        )
    {
        relay_targets.push(("[rtmp.pull]".to_string(), a.to_string(), p));
    }
    for (i, p) in get(&["rtmp", "push"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if p.get("enabled").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        if let (Some(a), Some(port)) = (
            p.get("address").and_then(Value::as_str),
            p.get("port").and_then(Value::as_integer),
        ) {
            relay_targets.push((format!("[[rtmp.push]] #{}", i + 1), a.to_string(), port));
        }
    }
    let mut listeners = Vec::new();
    for table in ["rtmp", "hls", "httpflv"] {
        if let Some(port) = get(&[table, "port"]).and_then(Value::as_integer) {
            listeners.push(Listener {
                table,
                port,
                enabled: is_true(&[table, "enabled"]),
            });
        }
    }
    listeners.push(Listener {
        table: "httpapi",
        port: get(&["httpapi", "port"])
            .and_then(Value::as_integer)
            .unwrap_or(DEFAULT_API_PORT),
        enabled: true,
    });
    let secret = |k: &str| {
        get(&["authsecret", k])
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let publish_needs_token = is_true(&["rtmp", "auth", "push_enabled"])
        && match get(&["rtmp", "auth", "algorithm"]).and_then(Value::as_str) {
            Some("md5") => secret("key").is_some(),
            _ => secret("push_password")
                .or_else(|| secret("password"))
                .is_some(),
        };
    XiuConfig {
        problems,
        hls_without_s3: is_true(&["hls", "enabled"]) && get(&["hls", "s3"]).is_none(),
        pulls: is_true(&["rtmp", "pull", "enabled"]),
        push_addresses,
        relay_targets,
        listeners,
        publish_needs_token,
    }
}

fn check_table(t: &Table, fields: &[Field], prefix: &str, out: &mut Vec<String>) {
    for f in fields {
        let path = if prefix.is_empty() {
            f.name.to_string()
        } else {
            format!("{prefix}.{}", f.name)
        };
        match t.get(f.name) {
            None if f.required => out.push(missing(prefix, f)),
            None => {}
            Some(v) => check_value(v, f.ty, &path, out),
        }
    }
}

fn missing(prefix: &str, f: &Field) -> String {
    match (prefix, f.ty) {
        ("", Ty::Table(_)) if f.name == "authsecret" => {
            "the [authsecret] table is missing (xiu: \"missing field authsecret\"); add `[authsecret]` with `key = \"\"` and `password = \"\"`".into()
        }
        ("", _) => format!("the [{}] table is missing", f.name),
        _ => format!(
            "[{prefix}] has no `{}` (xiu: \"missing field {}\"); add `{} = {}`",
            f.name,
            f.name,
            f.name,
            example(f.ty)
        ),
    }
}

fn example(ty: Ty) -> &'static str {
    match ty {
        Ty::Bool => "false",
        Ty::UInt | Ty::U16 | Ty::Int => "<integer>",
        Ty::Str => "\"info\"",
        Ty::OneOf(_) => "\"simple\"",
        Ty::Table(_) | Ty::TableArray(_) => "{ ... }",
    }
}

fn check_value(v: &Value, ty: Ty, path: &str, out: &mut Vec<String>) {
    let wrong = |want: &str| format!("`{path}` must be {want}, not {}", v.type_str());
    match ty {
        Ty::Bool if !v.is_bool() => out.push(wrong("a boolean (true/false)")),
        Ty::Int if !v.is_integer() => out.push(wrong("an integer")),
        Ty::UInt if v.as_integer().is_none_or(|n| n < 0) => {
            out.push(wrong("a non-negative integer"))
        }
        Ty::U16 if !v.as_integer().is_some_and(|n| (0..=65535).contains(&n)) => {
            out.push(wrong("an integer 0-65535"))
        }
        Ty::Str if !v.is_str() => out.push(wrong("a string")),
        Ty::OneOf(allowed) if !v.as_str().is_some_and(|s| allowed.contains(&s)) => {
            out.push(wrong(&format!("one of {allowed:?}")))
        }
        Ty::Table(fields) => match v.as_table() {
            Some(t) => check_table(t, fields, path, out),
            None => out.push(wrong("a table")),
        },
        Ty::TableArray(fields) => match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_table() {
                        Some(t) => check_table(t, fields, &format!("{path}[{i}]"), out),
                        None => out.push(wrong("an array of tables ([[...]])")),
                    }
                }
            }
            None => out.push(wrong("an array of tables ([[...]])")),
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const GOOD: &str = r#"
[rtmp]
enabled = true
port = 1935
[rtmp.pull]
enabled = true
address = "xiu-origin"
port = 1935
[hls]
enabled = true
port = 8080
need_record = false
fragment = 2
[hls.s3]
enabled = false
bucket = "unused"
region = "unused"
[httpflv]
enabled = true
port = 8081
[authsecret]
key = ""
password = ""
[log]
level = "info"
"#;

    #[test]
    fn good_config_has_no_problems() {
        let c = analyze(GOOD);
        assert_eq!(c.problems, Vec::<String>::new());
        assert!(c.pulls);
        assert!(!c.hls_without_s3);
    }

    #[test]
    fn seed_config_problems() {
        let seed = "[rtmp]\nenabled = true\nport = 1935\n\n[hls]\nenabled = true\nport = 8080\n\n[httpflv]\nenabled = true\nport = 8081\n\n[log]\n";
        let c = analyze(seed);
        let all = c.problems.join("\n");
        assert!(all.contains("need_record"), "{all}");
        assert!(all.contains("[authsecret]"), "{all}");
        assert!(all.contains("`level`"), "{all}");
        assert_eq!(c.problems.len(), 3, "{all}");
        assert!(c.hls_without_s3);
        assert!(!c.pulls);
    }

    #[test]
    fn log_table_is_optional() {
        let c = analyze(&GOOD.replace("[log]\nlevel = \"info\"\n", ""));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn wrong_types() {
        let bad = GOOD
            .replace("port = 8081", "port = \"8081\"")
            .replace("[hls]\nenabled = true", "[hls]\nenabled = \"yes\"");
        let c = analyze(&bad);
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        assert!(c.problems.iter().any(|p| p.contains("httpflv.port")));
        assert!(c.problems.iter().any(|p| p.contains("hls.enabled")));
    }

    #[test]
    fn syntax_error() {
        let c = analyze("[rtmp\nenabled = true\n");
        assert!(c.problems[0].starts_with("TOML syntax error"));
    }

    #[test]
    fn push_addresses_and_s3() {
        let c = analyze(&format!(
            "{}\n[[rtmp.push]]\nenabled = true\naddress = \"edge-0\"\nport = 1935\n",
            GOOD.replace(
                "[rtmp.pull]\nenabled = true",
                "[rtmp.pull]\nenabled = false"
            )
            .replace(
                "[hls.s3]\nenabled = false\nbucket = \"unused\"\nregion = \"unused\"\n",
                ""
            )
        ));
        // [[rtmp.push]] after other tables still lands under rtmp.
        assert_eq!(c.push_addresses, vec!["edge-0".to_string()]);
        assert!(c.hls_without_s3);
        assert!(!c.pulls);
    }

    #[test]
    fn listeners_relays_and_publish_auth() {
        let c = analyze(GOOD);
        let ports: Vec<(&str, i64, bool)> = c
            .listeners
            .iter()
            .map(|l| (l.port_name(), l.port, l.enabled))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("rtmp", 1935, true),
                ("hls", 8080, true),
                ("httpflv", 8081, true),
                ("api", 8000, true)
            ]
        );
        assert_eq!(
            c.relay_targets,
            vec![("[rtmp.pull]".to_string(), "xiu-origin".to_string(), 1935)]
        );
        assert!(!c.publish_needs_token);
        let auth =
            "[rtmp.auth]\npull_enabled = false\npush_enabled = true\nalgorithm = \"simple\"\n";
        let with_auth = GOOD.replace("[hls]\n", &format!("{auth}[hls]\n"));
        // push auth on, but every secret empty: xiu compares the token with "" - still open.
        assert!(!analyze(&with_auth).publish_needs_token);
        let with_secret = with_auth.replace(
            "password = \"\"\n",
            "password = \"\"\npush_password = \"@XIU_TOKEN@\"\n",
        );
        let c = analyze(&with_secret);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert!(c.publish_needs_token);
    }

    #[test]
    fn detection() {
        assert!(looks_like_xiu("config.toml", "[rtmp]\n"));
        assert!(!looks_like_xiu("config.toml", "[server]\n"));
        assert!(!looks_like_xiu("config.yaml", "[rtmp]\n"));
    }
}

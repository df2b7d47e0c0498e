//! Parses xiu's `GET /api/query_whole_streams` answer: stream keys, publisher ids, viewers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey {
    pub app: String,
    pub stream: String,
}

impl StreamKey {
    pub fn new(app: &str, stream: &str) -> Self {
        StreamKey {
            app: app.into(),
            stream: stream.into(),
        }
    }
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.app, self.stream)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("xiu API error_code {code}: {desp}")]
    Api { code: i64, desp: String },
}

/// Lenient on purpose: unknown fields are ignored, `data` may be `{}` (xiu's
/// answer when there are no streams) or a list, and entries whose identifier
/// is not RTMP-shaped are skipped. `app` filters by app name (empty: all).
pub fn parse_streams(body: &str, app: &str) -> Result<BTreeSet<StreamKey>, ParseError> {
    Ok(parse_publishers(body, app)?.into_keys().collect())
}

/// Like [`parse_streams`], with each stream's publisher id (`publisher.id`,
/// the uuid `POST /api/kick_off_client` takes), when xiu gives one.
pub fn parse_publishers(
    body: &str,
    app: &str,
) -> Result<BTreeMap<StreamKey, Option<String>>, ParseError> {
    Ok(entries(body)?
        .into_iter()
        .filter_map(|e| {
            let key = key_of(e.pointer("/publisher/identifier")?)?;
            let id = e
                .pointer("/publisher/id")
                .and_then(Value::as_str)
                .map(String::from);
            Some((key, id))
        })
        .filter(|(k, _)| app.is_empty() || k.app == app)
        .collect())
}

/// xiu's own subscriber: the HLS remuxer subscribes to every published stream (streamhub's
/// `SubscribeType::RtmpRemux2Hls`), it is no viewer.
const HLS_REMUXER: &str = "RtmpRemux2Hls";

/// The viewers xiu counts on every stream (all apps): each subscriber but the HLS remuxer.
/// HLS viewers are plain HTTP file reads and never appear here. An entry without a `subscribers`
/// map falls back to `subscriber_count` minus the remuxer.
pub fn parse_viewers(body: &str) -> Result<u64, ParseError> {
    Ok(entries(body)?
        .into_iter()
        .map(|e| match e.get("subscribers").and_then(Value::as_object) {
            Some(subs) => subs
                .values()
                .filter(|s| s.get("sub_type").and_then(Value::as_str) != Some(HLS_REMUXER))
                .count() as u64,
            None => e
                .get("subscriber_count")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .saturating_sub(1),
        })
        .sum())
}

/// The stream entries of an answer, after checking its `error_code`.
fn entries(body: &str) -> Result<Vec<Value>, ParseError> {
    let v: Value = serde_json::from_str(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if let Some(code) = v.get("error_code").and_then(Value::as_i64)
        && code != 0
    {
        let desp = v
            .get("desp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        return Err(ParseError::Api { code, desp });
    }
    Ok(match v.get("data") {
        Some(Value::Array(a)) => a.clone(),
        // `{}` when empty; tolerate a map of entries too.
        Some(Value::Object(m)) => m.values().cloned().collect(),
        _ => Vec::new(),
    })
}

/// `identifier` is `{"rtmp": {"app_name", "stream_name"}}` in 0.14; accept
/// the fields directly or under any single variant key.
fn key_of(identifier: &Value) -> Option<StreamKey> {
    let direct = |v: &Value| {
        Some(StreamKey::new(
            v.get("app_name")?.as_str()?,
            v.get("stream_name")?.as_str()?,
        ))
    };
    direct(identifier).or_else(|| identifier.as_object()?.values().find_map(direct))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{"error_code":0,"desp":"succ","data":[{"publisher":{"id":"a1","identifier":{"rtmp":{"app_name":"live","stream_name":"s1"}},"start_time":"2024-01-01T00:00:00Z","remote_address":"127.0.0.1:5000","recv_bitrate(kbits/s)":2100,"video":{"codec":"H264","profile":"High","level":"3.0","width":320,"height":240,"bitrate(kbits/s)":2000,"frame_rate":25,"gop":25},"audio":{"sound_format":"AAC"}},"subscriber_count":1,"subscribers":{"u1":{"send_bitrate(kbits/s)":0}},"total_recv_bytes":1,"total_send_bytes":2,"new_field":true},
      {"publisher":{"identifier":{"rtmp":{"app_name":"other","stream_name":"x"}}}},
      {"publisher":{"identifier":{"webrtc":{"app_name":"live","stream_name":"w"}}}},
      {"publisher":{"identifier":"unknown-shape"}}]}"#;

    #[test]
    fn parses_entries_and_filters_app() {
        let s = parse_streams(ONE, "live").unwrap();
        let want: BTreeSet<_> = [StreamKey::new("live", "s1"), StreamKey::new("live", "w")].into();
        assert_eq!(s, want);
        assert_eq!(parse_streams(ONE, "").unwrap().len(), 3);
    }

    #[test]
    fn publisher_ids() {
        let p = parse_publishers(ONE, "live").unwrap();
        assert_eq!(p[&StreamKey::new("live", "s1")].as_deref(), Some("a1"));
        assert_eq!(p[&StreamKey::new("live", "w")], None);
    }

    #[test]
    fn viewers_leave_out_the_hls_remuxer() {
        let body = r#"{"error_code":0,"data":[
          {"publisher":{"identifier":{"rtmp":{"app_name":"live","stream_name":"a"}}},"subscriber_count":3,
           "subscribers":{"u1":{"sub_type":"RtmpRemux2Hls"},"u2":{"sub_type":"RtmpRemux2HttpFlv"},"u3":{"sub_type":"RtmpPull"}}},
          {"publisher":{"identifier":{"rtmp":{"app_name":"other","stream_name":"b"}}},"subscriber_count":1,
           "subscribers":{"u4":{"sub_type":"RtmpRemux2Hls"}}},
          {"publisher":{"identifier":{"rtmp":{"app_name":"live","stream_name":"c"}}},"subscriber_count":4}]}"#;
        assert_eq!(parse_viewers(body), Ok(5));
        assert_eq!(parse_viewers(r#"{"error_code":0,"data":{}}"#), Ok(0));
        assert!(parse_viewers("nope").is_err());
    }

    #[test]
    fn empty_data_is_an_object() {
        let s = parse_streams(r#"{"error_code":0,"desp":"succ","data":{}}"#, "live").unwrap();
        assert!(s.is_empty());
        assert!(
            parse_streams(r#"{"error_code":0,"data":[]}"#, "")
                .unwrap()
                .is_empty()
        );
        assert!(parse_streams(r#"{"error_code":0}"#, "").unwrap().is_empty());
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse_streams("<html>", ""),
            Err(ParseError::Json(_))
        ));
        assert_eq!(
            parse_streams(r#"{"error_code":-1,"desp":"bad"}"#, ""),
            Err(ParseError::Api {
                code: -1,
                desp: "bad".into()
            })
        );
    }
}

//! The xiu HTTP API as the sidecar reads it: an origin's or the edge's stream list
//! (`/api/query_whole_streams`), parsed by [`super::streams`].

use std::collections::BTreeMap;

use super::readiness::EdgeView;
use super::streams::{ParseError, StreamKey, parse_publishers, parse_streams, parse_viewers};

/// A call of a xiu HTTP API that got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer, or the body broke off.
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
}

/// Why one poll of a xiu's stream list gave nothing to act on.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// It answered, but not with a stream list this sidecar understands.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

pub(super) async fn poll_origin(
    api: &reqwest::Client,
    base: &str,
    app: &str,
) -> Result<BTreeMap<StreamKey, Option<String>>, PollError> {
    let body = get_streams(api, base).await?;
    Ok(parse_publishers(&body, app)?)
}

pub(super) async fn poll_edge(
    api: &reqwest::Client,
    base: &str,
    app: &str,
) -> Result<EdgeView, PollError> {
    let body = get_streams(api, base).await?;
    Ok(EdgeView {
        streams: parse_streams(&body, app)?,
        viewers: parse_viewers(&body)?,
    })
}

/// How many RTMP/FLV viewers the xiu at `base` has.
pub async fn get_viewers(api: &reqwest::Client, base: &str) -> Result<u64, PollError> {
    let body = get_streams(api, base).await?;
    Ok(parse_viewers(&body)?)
}

pub async fn get_streams(api: &reqwest::Client, base: &str) -> Result<String, ApiError> {
    let url = format!(
        "{}/api/query_whole_streams?top=100000",
        base.trim_end_matches('/')
    );
    let transport = |source| ApiError::Transport {
        url: url.clone(),
        source,
    };
    let resp = api.get(&url).send().await.map_err(transport)?;
    if !resp.status().is_success() {
        return Err(ApiError::Status {
            status: resp.status(),
            url,
        });
    }
    resp.text().await.map_err(transport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers one request with `answer` (a whole HTTP/1.1 response).
    async fn answer_once(answer: &'static str) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                head.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer.as_bytes()).await.unwrap();
        });
        base
    }

    #[tokio::test]
    async fn an_error_status_names_the_url_and_the_status() {
        let base =
            answer_once("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let e = get_streams(&reqwest::Client::new(), &format!("{base}/"))
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::Status { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("{base}/api/query_whole_streams?top=100000 answered 503 Service Unavailable")
        );
    }

    #[tokio::test]
    async fn no_answer_names_the_url_and_keeps_the_cause() {
        let base = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let e = get_streams(&reqwest::Client::new(), &base)
            .await
            .unwrap_err();
        let ApiError::Transport { source, .. } = &e else {
            panic!("{e:?}");
        };
        assert!(source.is_connect(), "{source:?}");
        assert_eq!(
            e.to_string(),
            format!("{base}/api/query_whole_streams?top=100000: {source}")
        );
    }

    #[tokio::test]
    async fn an_answer_that_is_no_stream_list_is_a_parse_error() {
        let base = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        let e = get_viewers(&reqwest::Client::new(), &base)
            .await
            .unwrap_err();
        assert!(matches!(e, PollError::Parse(_)), "{e:?}");
    }
}

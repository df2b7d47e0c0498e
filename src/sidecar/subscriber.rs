//! One HTTP-FLV subscription: asks the edge for a stream and discards the
//! bytes, which makes the edge pull the stream from the origin and keep it.

use std::time::{Duration, Instant};

use super::streams::StreamKey;

#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub bytes: u64,
    pub ran_for: Duration,
    /// The edge went silent (read timeout) instead of ending the body.
    pub stalled: bool,
}

pub fn flv_url(edge_flv: &str, key: &StreamKey) -> String {
    format!(
        "{}/{}/{}.flv",
        edge_flv.trim_end_matches('/'),
        key.app,
        key.stream
    )
}

/// Reads until the body ends or fails. An immediately empty body is xiu's
/// answer to the first request for a stream it is only starting to pull;
/// the caller retries after a backoff.
pub async fn subscribe(client: reqwest::Client, url: String) -> Outcome {
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut stalled = false;
    match client.get(&url).send().await {
        Ok(mut resp) => loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => bytes += chunk.len() as u64,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%url, error = %e, "flv read ended");
                    stalled = e.is_timeout();
                    break;
                }
            }
        },
        Err(e) => tracing::debug!(%url, error = %e, "flv request failed"),
    }
    Outcome {
        bytes,
        ran_for: start.elapsed(),
        stalled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url() {
        assert_eq!(
            flv_url("http://127.0.0.1:8081/", &StreamKey::new("live", "s1")),
            "http://127.0.0.1:8081/live/s1.flv"
        );
    }
}

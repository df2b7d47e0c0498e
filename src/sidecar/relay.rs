//! One stream's relay: HTTP-FLV from the origin that holds it, RTMP publish into the local edge.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::streams::StreamKey;
use crate::flv::FlvError;
use crate::flv::demux::{FlvDemuxer, FlvEvent, FlvTag, TagKind};
use crate::rtmp::connection::RtmpConnection;
use crate::rtmp::url::RtmpBase;

/// RTMP connect + publish to the local edge; loopback, so only a wedged xiu takes long.
const EDGE_SETUP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RelaySpec {
    /// `http://origin:8081/<app>/<stream>.flv`
    pub flv_url: String,
    pub edge: RtmpBase,
    pub key: StreamKey,
    pub token: Option<String>,
}

impl RelaySpec {
    pub fn new(origin_flv: &str, edge: RtmpBase, key: StreamKey, token: Option<String>) -> Self {
        RelaySpec {
            flv_url: flv_url(origin_flv, &key),
            edge,
            key,
            token,
        }
    }

    /// The name published on the edge: xiu 0.14 reads the push password from `?token=`.
    pub fn publish_name(&self) -> String {
        match &self.token {
            Some(t) => format!("{}?token={t}", self.key.stream),
            None => self.key.stream.clone(),
        }
    }
}

pub fn flv_url(base: &str, key: &StreamKey) -> String {
    format!(
        "{}/{}/{}.flv",
        base.trim_end_matches('/'),
        key.app,
        key.stream
    )
}

/// Why a relay ended. Every end is retried by the loop (after a backoff) while an origin lists
/// the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// The origin's body ended before any media: xiu's `200` with an empty body for a stream it
    /// does not have (yet, or any more).
    OriginHadNothing,
    /// The origin's body ended after media: the publisher left.
    OriginEnded,
    /// The origin did not answer, answered an error, sent something that is no FLV, or went
    /// silent for the read timeout.
    Origin(String),
    /// The edge refused the connect or the publish (a wrong token, the name still taken by the
    /// previous relay), or the connection broke.
    Edge(String),
}

#[derive(Debug, Clone)]
pub struct RelayOutcome {
    /// Media bytes published into the edge.
    pub bytes: u64,
    pub ran_for: Duration,
    pub end: RelayEnd,
}

/// Relays until the origin's stream ends or something fails; the caller aborts the task to stop
/// it (dropping the RTMP connection unpublishes the stream on the edge).
///
/// `http` must have a read timeout: an origin that keeps the connection open and sends nothing
/// would otherwise hold the relay (and the name on the edge) for ever.
pub async fn relay(http: reqwest::Client, spec: RelaySpec) -> RelayOutcome {
    let started = Instant::now();
    let mut bytes = 0u64;
    let end = run(&http, &spec, &mut bytes).await;
    RelayOutcome {
        bytes,
        ran_for: started.elapsed(),
        end,
    }
}

async fn run(http: &reqwest::Client, spec: &RelaySpec, forwarded: &mut u64) -> RelayEnd {
    let resp = match http.get(&spec.flv_url).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return RelayEnd::Origin(format!("{} answered {}", spec.flv_url, r.status())),
        Err(e) => return RelayEnd::Origin(format!("{}: {e}", spec.flv_url)),
    };
    let mut body = resp.bytes_stream();
    let mut demux = FlvDemuxer::new();
    let mut pending: VecDeque<FlvTag> = VecDeque::new();
    // Publish only once media flows: an empty answer must not leave a publisher without media on
    // the edge (xiu would list the stream and players would wait on it).
    while !pending.iter().any(is_media) {
        match body.next().await {
            Some(Ok(chunk)) => {
                if let Err(e) = demux_into(&mut demux, &chunk, &mut pending) {
                    return RelayEnd::Origin(e.to_string());
                }
            }
            None => return RelayEnd::OriginHadNothing,
            Some(Err(e)) => return RelayEnd::Origin(read_error(&e)),
        }
    }
    let mut conn = match RtmpConnection::open(
        &spec.edge,
        &spec.key.app,
        EDGE_SETUP_TIMEOUT,
        false,
        crate::rtmp::publisher::MAX_SERVER_MESSAGE,
    )
    .await
    {
        Ok((conn, _)) => conn,
        Err(e) => return RelayEnd::Edge(format!("connect: {e}")),
    };
    if let Err(e) = conn.publish(&spec.publish_name(), EDGE_SETUP_TIMEOUT).await {
        return RelayEnd::Edge(format!("publish: {e}"));
    }
    tracing::info!(stream = %spec.key, from = %spec.flv_url, "relaying into the edge");
    loop {
        while let Some(tag) = pending.pop_front() {
            let len = tag.data.len() as u64;
            let sent = match tag.kind {
                TagKind::Video => conn.send_video(tag.data, tag.timestamp_ms).await,
                TagKind::Audio => conn.send_audio(tag.data, tag.timestamp_ms).await,
                // Script data (onMetaData) is not forwarded: xiu's HLS and FLV outputs work from
                // the sequence headers alone.
                _ => continue,
            };
            if let Err(e) = sent {
                return RelayEnd::Edge(e.to_string());
            }
            *forwarded += len;
        }
        tokio::select! {
            chunk = body.next() => match chunk {
                Some(Ok(chunk)) => {
                    if let Err(e) = demux_into(&mut demux, &chunk, &mut pending) {
                        return RelayEnd::Origin(e.to_string());
                    }
                }
                None => return RelayEnd::OriginEnded,
                Some(Err(e)) => return RelayEnd::Origin(read_error(&e)),
            },
            // Answer the edge (acks, pings) while waiting for the origin: a publisher that stops
            // reading can be dropped.
            r = conn.readable() => {
                let r = match r {
                    Ok(()) => conn.drain_input().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    return RelayEnd::Edge(e.to_string());
                }
                conn.take_events().for_each(drop);
            }
        }
    }
}

fn is_media(tag: &FlvTag) -> bool {
    matches!(tag.kind, TagKind::Audio | TagKind::Video)
}

fn demux_into(
    demux: &mut FlvDemuxer,
    chunk: &[u8],
    out: &mut VecDeque<FlvTag>,
) -> Result<(), FlvError> {
    demux.push(chunk);
    while let Some(event) = demux.next_event()? {
        if let FlvEvent::Tag(t) = event {
            out.push_back(t);
        }
    }
    Ok(())
}

fn read_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the origin's FLV body went silent (read timeout)".into()
    } else {
        format!("reading the origin's FLV body: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_publish_names() {
        let edge = RtmpBase {
            host: "127.0.0.1".into(),
            port: 1935,
        };
        let s = RelaySpec::new(
            "http://o:8081/",
            edge.clone(),
            StreamKey::new("live", "s1"),
            Some("t0k".into()),
        );
        assert_eq!(s.flv_url, "http://o:8081/live/s1.flv");
        assert_eq!(s.publish_name(), "s1?token=t0k");
        let s = RelaySpec::new("http://o:8081", edge, StreamKey::new("live", "s1"), None);
        assert_eq!(s.publish_name(), "s1");
    }
}

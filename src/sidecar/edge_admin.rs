//! Repairs the edge through its own xiu API: makes it forget a stream.
//!
//! Why: when the origin goes away, a xiu 0.14 edge keeps the pulled stream
//! (players hang, no re-pull) even after the origin has it again. Kicking
//! the edge-side publisher (the pull relay) unpublishes it, so the next
//! request pulls afresh.

use super::streams::{StreamKey, parse_publishers};

/// Returns whether the edge had the stream (and was asked to drop it).
pub async fn forget_stream(
    http: &reqwest::Client,
    edge_api: &str,
    key: &StreamKey,
) -> Result<bool, String> {
    let base = edge_api.trim_end_matches('/');
    let body = http
        .get(format!("{base}/api/query_whole_streams?top=1000"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let publishers = parse_publishers(&body, &key.app).map_err(|e| e.to_string())?;
    let Some(Some(id)) = publishers.get(key) else {
        return Ok(false);
    };
    http.post(format!("{base}/api/kick_off_client"))
        // Built by hand: reqwest's `json` feature is not among our deps.
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::json!({ "uuid": id }).to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

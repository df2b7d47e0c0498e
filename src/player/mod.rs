//! Players: HTTP-FLV, HLS and RTMP viewers. Each turns what arrives into viewer-experience
//! measurements through one [`viewer::Viewer`], so all protocols are measured alike.

pub mod flv;
pub mod hls;
pub mod http1;
pub mod rtmp;
pub mod viewer;

use crate::metrics::{GroupMetrics, PlayerStats};
use crate::session::SessionEnd;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs a viewer's `watch` until it ends or `cancel` stops it, and counts a failure.
pub(crate) async fn watch_session(
    cancel: &CancellationToken,
    metrics: &GroupMetrics<PlayerStats>,
    watch: impl Future<Output = SessionEnd>,
) -> SessionEnd {
    let end = crate::cancel::until_cancelled(cancel, watch)
        .await
        .unwrap_or(SessionEnd::Cancelled);
    // When the run stops, publishers and players stop together: a player that sees its stream
    // end in that instant was stopped, not failed.
    let end = match end {
        SessionEnd::Failed(_) if cancel.is_cancelled() => SessionEnd::Cancelled,
        end => end,
    };
    if let SessionEnd::Failed(kind) = end {
        metrics.record(|s| s.errors.add(kind));
    }
    end
}

/// What every player session needs to know besides its URL.
#[derive(Debug, Clone)]
pub struct PlayerTiming {
    pub first_frame_timeout: Duration,
    pub read_timeout: Duration,
    pub startup_buffer: Duration,
    /// Planned session length (viewer churn); `None` watches until cancelled.
    pub session_length: Option<Duration>,
}

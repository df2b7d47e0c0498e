//! Players: HTTP-FLV, HLS and RTMP viewers. Each turns what arrives into viewer-experience
//! measurements through one [`viewer::Viewer`], so all protocols are measured alike.

pub mod flv;
pub mod hls;
mod http1;
pub mod rtmp;
pub mod viewer;

use std::time::Duration;

/// What every player session needs to know besides its URL.
#[derive(Debug, Clone)]
pub struct PlayerTiming {
    pub first_frame_timeout: Duration,
    pub read_timeout: Duration,
    pub startup_buffer: Duration,
    /// Planned session length (viewer churn); `None` watches until cancelled.
    pub session_length: Option<Duration>,
}

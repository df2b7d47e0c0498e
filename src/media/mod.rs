//! Synthetic media for load generation: hand-built H.264 and AAC bitstreams
//! that real decoders accept, produced without running an encoder.
//!
//! Everything here is pure: the bitstreams are computed once at construction
//! and per-frame work is limited to stamping and concatenating bytes, so a
//! load generator can drive thousands of publishers from one process.

pub mod aac;
pub mod flv_file;
pub mod h264;
pub mod stamp;

mod bits;

use thiserror::Error;

/// Why synthetic media could not be built from the given parameters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MediaError {
    #[error("invalid video dimensions {width}x{height}: {reason}")]
    InvalidDimensions {
        width: u32,
        height: u32,
        reason: &'static str,
    },
    #[error("invalid frame rate {0}: must be 1..=240")]
    InvalidFrameRate(u32),
    #[error("invalid GOP length {0}: must be at least 1 frame")]
    InvalidGop(u32),
    #[error("invalid bitrate {bitrate_bps} bit/s: {reason}")]
    InvalidBitrate {
        bitrate_bps: u64,
        reason: &'static str,
    },
}

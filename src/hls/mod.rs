//! What an HLS player needs, without I/O: playlist parsing and live-edge
//! tracking, and an MPEG-TS demuxer that recovers H.264 access units.

pub mod playlist;
pub mod ts;

//! RTMP clients over rml_rtmp's sans-I/O sessions: a thin connection driver, a publisher and a
//! player.

pub mod chunk_guard;
pub mod connection;
pub mod publisher;
pub mod url;

pub use connection::{RtmpConnection, RtmpError};

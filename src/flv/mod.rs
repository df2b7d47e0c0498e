//! Pure FLV parsing: an incremental demuxer for HTTP-FLV bodies and
//! parsers for the audio/video tag headers that RTMP payloads share.

pub mod demux;
pub mod tag;

use thiserror::Error;

/// FLV parse failures. `Clone` so the demuxer can keep returning the error
/// that poisoned it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlvError {
    #[error("not an FLV stream: signature {0:02x?}, expected \"FLV\"")]
    BadSignature([u8; 3]),
    #[error("FLV header data offset {0} is invalid (must be 9..=1024)")]
    BadHeaderSize(u32),
    #[error("FLV tag of {size} bytes exceeds the limit of {max} bytes")]
    TagTooLarge { size: usize, max: usize },
    #[error("{what} needs at least {needed} bytes, got {got}")]
    TooShort {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("unknown AVCPacketType {0}")]
    UnknownAvcPacketType(u8),
}

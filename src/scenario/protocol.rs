//! The protocol a player group plays. Its own module, below the model and the thresholds that
//! both name it (a threshold's scope can be a protocol), so neither has to import the other.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Flv,
    Hls,
    Rtmp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Flv, Protocol::Hls, Protocol::Rtmp];

    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Flv => "flv",
            Protocol::Hls => "hls",
            Protocol::Rtmp => "rtmp",
        }
    }
}

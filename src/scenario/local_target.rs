//! `[target.local]`: the xiu topology started on loopback instead of a cluster target. Its own
//! module, below the model that holds it and the `[[fault]]` checks that read it (a local fault
//! must name an origin or edge that exists), so neither has to import the other.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTarget {
    /// Path to the xiu 0.14.0 binary; defaults to `$XIU_BIN`, then the cache used by
    /// `scripts/install-xiu.sh`, then `xiu` on PATH.
    pub xiu_bin: Option<PathBuf>,
    /// HLS segment length configured in the local xiu (`[hls] fragment`, seconds).
    #[serde(default = "default_fragment")]
    pub hls_fragment_secs: u32,
    /// 0: one xiu serves everything. N > 0: the production topology on loopback: an origin that
    /// publishers reach, N edges pulling from it (each with an in-process `xiuload sidecar`), and
    /// players spread over the edges.
    #[serde(default)]
    pub edges: u32,
    /// Origins publishers are spread over, behind a real L4 balancer on loopback (HAProxy, as the
    /// publish LoadBalancer in deploy/); more than one needs edges, whose sidecars find each
    /// stream on whichever origin holds it.
    #[serde(default = "default_origins")]
    pub origins: u32,
}

fn default_origins() -> u32 {
    1
}

fn default_fragment() -> u32 {
    2
}

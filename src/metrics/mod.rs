//! Measurements: histograms, per-group stats, the playback-buffer model, the timeline and the
//! loader's own health.

pub mod buffer;
pub mod histogram;
pub mod live;
pub mod loader;
pub mod sequence;
pub mod stats;
pub mod timeline;

pub use histogram::{LatencyHistogram, Summary};
pub use live::GroupMetrics;
pub use stats::{ErrorKind, PlayerStats, PublisherStats};

//! xiuload: synthetic live-streaming load for xiu clusters, and what viewers experience under it.
//!
//! The binary (`src/main.rs`) is a thin shell around [`run::run`], [`scenario::load`] and the other
//! entry points here, so that tests drive exactly what users run.

pub mod base_url;
pub mod blame;
pub mod cancel;
pub mod cli;
pub mod clock;
pub mod exit;
pub mod flv;
pub mod hls;
pub mod hpa;
pub mod k8s;
pub mod lint;
pub mod local;
pub mod media;
pub mod metrics;
pub mod player;
pub mod report;
pub mod rtmp;
pub mod run;
pub mod scenario;
pub mod session;
pub mod sidecar;
pub mod stdout;
pub mod units;
pub mod verdict;

//! The Kubernetes side of xiuload: watch the cluster during a run, put its events on the run's
//! clock next to the load, correlate, and judge `[[expect]]`.
//!
//! Modules by job: [`config`] (scenario `[kube]`/`[[expect]]`), [`client`] (kubeconfig),
//! [`watch`] (kube-rs watchers), [`record`] (objects → events, pure), [`metrics`] (PodMetrics and
//! xiu stats polling), [`journal`] (`cluster.jsonl`), [`correlate`] (pure analysis),
//! [`expect`] (pure verdicts).

pub mod client;
pub mod config;
pub mod correlate;
pub mod expect;
pub mod journal;
pub mod metrics;
pub mod quantity;
pub mod record;
pub mod session;
pub mod standalone;
pub mod summary;
pub mod timeline;
pub mod watch;

pub use correlate::{ClusterReport, analyse};
pub use expect::{ExpectationResult, judge};
pub use journal::read_journal;
pub use session::{KubeError, KubeSession};
pub use timeline::{ClusterEvent, ClusterTimeline, EventKind};

//! The Kubernetes side of xiuload: watch the cluster during a run, put its events on the run's
//! clock next to the load, correlate, and judge `[[expect]]`. User documentation: docs/kube.md.
//!
//! Modules by job: [`config`] (scenario `[kube]`/`[[expect]]` and their validation), [`client`]
//! (kubeconfig resolution), [`watch`] (kube-rs watchers, gap and permission markers), [`record`]
//! (objects → events, pure), [`metrics`] (PodMetrics and xiu-stats polling), [`quantity`] (pure),
//! [`journal`] (`cluster.jsonl`), [`session`] (wires them), [`correlate`] (pure analysis),
//! [`expect`](self::expect) and [`recovery`] (pure verdicts on the cluster and on the load around
//! faults), [`judgement`] (the verdict type both give), [`summary`] (Markdown), [`standalone`] (`xiuload watch`, rebuild).
//!
//! # Wiring into a run
//!
//! ```text
//! // at run start, with the run's one clock and its output directory:
//! let kube = match &scenario.kube {
//!     Some(section) => Some(KubeSession::start(section, clock, run_dir).await?),  // returns at once
//!     None => None,
//! };
//! // at run end (stops within 500 ms):
//! let cluster: ClusterTimeline = kube.stop().await;
//! let report: ClusterReport = correlate::analyse(&cluster, &timeline_points);   // report.json `cluster`
//! let verdicts: Vec<ExpectationResult> =
//!     expect::judge(&scenario.expect, &report, &timeline_points, &expect::stage_starts(&scenario));
//! let markdown: String = summary::render_markdown(&report, &verdicts);            // summary.md section
//! // exit code 1 when any verdict has pass == false.
//! // `xiuload report <run dir>`: standalone::rebuild(dir, &scenario) reads cluster.jsonl + timeline.jsonl.
//! ```

pub mod client;
/// The `[kube]` and `[[expect]]` configuration: part of the scenario, re-exported here.
pub mod config {
    pub use crate::scenario::cluster::*;
}
pub mod correlate;
pub mod expect;
pub mod faults;
pub mod job;
pub mod journal;
pub mod judgement;
pub mod metrics;
/// Resource quantities: pure, used by the scenario's `[distributed]` too, re-exported here.
pub mod quantity {
    pub use crate::scenario::quantity::*;
}
pub mod record;
pub mod recovery;
pub mod session;
pub mod standalone;
pub mod summary;
pub mod timeline;
pub mod watch;
pub mod workers;

pub use correlate::{ClusterReport, analyse};
pub use expect::judge;
pub use journal::read_journal;
pub use judgement::ExpectationResult;
pub use session::{KubeError, KubeSession};
pub use timeline::{ClusterEvent, ClusterTimeline, EventKind};

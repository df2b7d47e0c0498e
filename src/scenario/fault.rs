//! `[[fault]]`: what the run does to the servers under load, at a moment on the run clock, and
//! the record of what it did ([`FaultEvent`]).
//!
//! Local actions (`kill`, `restart`, `stop`, `cont`) act on a process of the local topology.
//! Cluster actions (`delete_pod`, `rollout_restart`, `scale`) act on the `[kube]` section's edge
//! or origin workload through the API server (the kube module's `faults`); [`validate`] refuses
//! them without a `[kube]` naming that workload rather than let a fault be skipped in silence.

use super::cluster::KubeSection;
use super::local_target::LocalTarget;
use super::problem::Problem;
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// One `[[fault]]`. A flat table (like `[[expect]]`) so every field has a stable path for error
/// messages; [`validate`] says which fields each action takes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// When, on the run clock (0 is the moment the load starts).
    pub at: HumanDuration,
    pub action: FaultAction,
    pub target: FaultTarget,
    /// Which origin or edge (0-based) of the local topology.
    #[serde(default)]
    pub index: u32,
    /// `restart`: how long the process stays down before it is started again.
    pub down: Option<HumanDuration>,
    /// `delete_pod`: one pod of the target workload (default) or all of them.
    pub pods: Option<PodChoice>,
    /// `delete_pod`: a label selector instead of the target workload's pods.
    pub selector: Option<String>,
    /// `scale`: the replica count to set.
    pub replicas: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// SIGKILL: the process is gone until a `restart`.
    Kill,
    /// SIGKILL, then after `down` (default 0s) the same server again on the same ports (a pod
    /// restart).
    Restart,
    /// SIGSTOP: the process hangs with its connections open.
    Stop,
    /// SIGCONT after a `stop`.
    Cont,
    DeletePod,
    RolloutRestart,
    Scale,
}

impl FaultAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::Kill => "kill",
            FaultAction::Restart => "restart",
            FaultAction::Stop => "stop",
            FaultAction::Cont => "cont",
            FaultAction::DeletePod => "delete_pod",
            FaultAction::RolloutRestart => "rollout_restart",
            FaultAction::Scale => "scale",
        }
    }

    /// Acts on a process of the local topology (the others act on a cluster's objects).
    pub fn is_local(self) -> bool {
        matches!(
            self,
            FaultAction::Kill | FaultAction::Restart | FaultAction::Stop | FaultAction::Cont
        )
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    Origin,
    Edge,
}

impl FaultTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultTarget::Origin => "origin",
            FaultTarget::Edge => "edge",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PodChoice {
    One,
    All,
}

impl Fault {
    /// How long the process stays down on `restart`.
    pub fn down_time(&self) -> Duration {
        self.down.map_or(Duration::ZERO, |d| d.0)
    }
}

fn what(action: FaultAction, target: FaultTarget, index: u32) -> String {
    if action.is_local() {
        format!("{} {index}", target.as_str())
    } else {
        target.as_str().to_string()
    }
}

/// How a fault went.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultOutcome {
    /// Done; for `restart`, the server answers on its ports again.
    Done,
    /// The action failed (`error` says why).
    Failed,
    /// The run stopped while the action was still under way (a `restart` still down).
    Unfinished,
}

/// What the run did for one `[[fault]]`, in `report.json` (`faults`) and marked on the timeline.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct FaultEvent {
    /// The `[[fault]]` entry (0-based) this carries out.
    pub fault: usize,
    /// When the action began, seconds on the run clock.
    pub at_s: f64,
    pub action: FaultAction,
    pub target: FaultTarget,
    pub index: u32,
    /// When it was done (`restart`: when the server answered again); absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_s: Option<f64>,
    pub outcome: FaultOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FaultEvent {
    /// "kill origin 0": the label of its marks on charts and the timeline.
    pub fn label(&self) -> String {
        format!(
            "{} {}",
            self.action.as_str(),
            what(self.action, self.target, self.index)
        )
    }
}

impl FaultEvent {
    /// A fault of `[[fault]]` entry 0 done at once at `at_s`, for tests of what reads events.
    #[cfg(test)]
    pub(crate) fn done_at(at_s: f64, action: FaultAction, target: FaultTarget) -> FaultEvent {
        FaultEvent {
            fault: 0,
            at_s,
            action,
            target,
            index: 0,
            done_s: Some(at_s),
            outcome: FaultOutcome::Done,
            error: None,
        }
    }

    /// "done at t=15.4s", "FAILED (origin 0 did not come back: ...)": how it went, in words.
    /// Only an error's first line: a failed start carries the server's log after it.
    pub fn outcome_text(&self) -> String {
        match (self.outcome, self.done_s) {
            (FaultOutcome::Done, Some(done)) if done - self.at_s >= 0.05 => {
                format!("done at t={done:.1}s")
            }
            (FaultOutcome::Done, _) => "done".into(),
            (FaultOutcome::Failed, _) => format!(
                "FAILED ({})",
                self.error
                    .as_deref()
                    .and_then(|e| e.lines().next())
                    .unwrap_or("no reason")
            ),
            (FaultOutcome::Unfinished, _) => "unfinished when the run stopped".into(),
        }
    }
}

impl fmt::Display for FaultEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={:.1}s {}: {}",
            self.at_s,
            self.label(),
            self.outcome_text()
        )
    }
}

/// What the fault expectations are judged on besides the load timeline.
#[derive(Debug, Clone, Copy)]
pub struct FaultRecord<'a> {
    /// What the run did for its `[[fault]]`s.
    pub events: &'a [FaultEvent],
    /// When the load ended (its plan's end, or an earlier stop), seconds on the run clock: the
    /// points from there on show the load stopping, not what a fault did.
    pub load_end: Option<f64>,
}

impl FaultRecord<'_> {
    /// No faults (`xiuload watch`, which judges no load of its own).
    pub const NONE: FaultRecord<'static> = FaultRecord {
        events: &[],
        load_end: None,
    };
}

fn problem(field: impl Into<String>, message: impl Into<String>, hint: Option<&str>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
        hint: hint.map(str::to_string),
    }
}

/// Checks `[[fault]]` entries against the topology (local processes, or the `[kube]` workloads)
/// and the planned length of the run.
pub fn validate(
    faults: &[Fault],
    local: Option<&LocalTarget>,
    kube: Option<&KubeSection>,
    planned: Duration,
) -> Vec<Problem> {
    let mut p = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let at = format!("fault[{i}]");
        let action = f.action.as_str();
        let unused = |field: &str, p: &mut Vec<Problem>| {
            p.push(problem(
                format!("{at}.{field}"),
                format!("`{field}` has no meaning for action {action:?}"),
                None,
            ));
        };
        if f.at.0 >= planned {
            p.push(problem(
                format!("{at}.at"),
                format!(
                    "at {} is not before the end of the run ({}): the fault would never happen",
                    f.at,
                    HumanDuration(planned)
                ),
                Some("faults run on the run clock, 0 being the moment the load starts"),
            ));
        }
        if f.action != FaultAction::Restart && f.down.is_some() {
            unused("down", &mut p);
        }
        if let Some(d) = f.down
            && f.at.0.saturating_add(d.0) >= planned
            && f.at.0 < planned
        {
            p.push(problem(
                format!("{at}.down"),
                format!(
                    "down {d} from {} reaches the end of the run ({}): the restart would never happen",
                    f.at,
                    HumanDuration(planned)
                ),
                Some("use `kill` for a server that stays down, or shorten `down`"),
            ));
        }
        if f.action != FaultAction::DeletePod {
            for (field, set) in [
                ("pods", f.pods.is_some()),
                ("selector", f.selector.is_some()),
            ] {
                if set {
                    unused(field, &mut p);
                }
            }
        }
        if f.action != FaultAction::Scale && f.replicas.is_some() {
            unused("replicas", &mut p);
        }
        if f.action.is_local() {
            check_local(i, f, local, &mut p);
        } else {
            check_cluster(i, f, kube, &mut p);
        }
    }
    check_cont_follows_stop(faults, &mut p);
    p
}

fn check_local(i: usize, f: &Fault, local: Option<&LocalTarget>, p: &mut Vec<Problem>) {
    let at = format!("fault[{i}]");
    let Some(local) = local else {
        p.push(problem(
            format!("{at}.action"),
            format!(
                "{:?} acts on a process of the local topology, and this scenario has no [target.local]",
                f.action.as_str()
            ),
            Some(
                "run it against [target.local]; in a cluster use delete_pod, rollout_restart or scale with [kube]",
            ),
        ));
        return;
    };
    let (count, what) = match f.target {
        FaultTarget::Origin => (local.origins.max(1), "origin(s)"),
        FaultTarget::Edge => (local.edges, "edge(s)"),
    };
    if count == 0 {
        p.push(problem(
            format!("{at}.target"),
            "the local topology has no edges (`edges = 0`): its one xiu is origin 0",
            Some("target = \"origin\", or set [target.local] edges = 2"),
        ));
    } else if f.index >= count {
        p.push(problem(
            format!("{at}.index"),
            format!(
                "{} {} does not exist: the local topology has {count} {what}, counted from 0",
                f.target.as_str(),
                f.index
            ),
            None,
        ));
    }
}

fn check_cluster(i: usize, f: &Fault, kube: Option<&KubeSection>, p: &mut Vec<Problem>) {
    let at = format!("fault[{i}]");
    if f.index != 0 {
        p.push(problem(
            format!("{at}.index"),
            format!(
                "`index` has no meaning for action {:?}: it acts on the target's workload",
                f.action.as_str()
            ),
            None,
        ));
    }
    if f.action == FaultAction::Scale && f.replicas.is_none() {
        p.push(problem(
            format!("{at}.replicas"),
            "scale needs `replicas`",
            None,
        ));
    }
    if let Some(sel) = &f.selector
        && sel.trim().is_empty()
    {
        p.push(problem(
            format!("{at}.selector"),
            "the selector is empty",
            None,
        ));
    }
    // Said plainly rather than run as nothing: a fault the run skips would make its expectations
    // judge an undisturbed run.
    let Some(kube) = kube else {
        p.push(problem(
            format!("{at}.action"),
            format!(
                "{:?} acts on a cluster workload, and this scenario has no [kube] section",
                f.action.as_str()
            ),
            Some(
                "add [kube] with the namespace and the edge/origin workload; without a cluster, faults act on [target.local]: kill, restart, stop, cont",
            ),
        ));
        return;
    };
    let workload = match f.target {
        FaultTarget::Edge => &kube.edge,
        FaultTarget::Origin => &kube.origin,
    };
    if workload.is_none() {
        p.push(problem(
            format!("{at}.target"),
            format!(
                "[kube] names no {} workload for {:?} to act on",
                f.target.as_str(),
                f.action.as_str()
            ),
            Some(&format!(
                "add [kube.{}] with its kind and name",
                f.target.as_str()
            )),
        ));
    }
}

/// A `cont` continues a process an earlier `stop` hung; without one it would do nothing.
fn check_cont_follows_stop(faults: &[Fault], p: &mut Vec<Problem>) {
    for (i, f) in faults.iter().enumerate() {
        if f.action != FaultAction::Cont {
            continue;
        }
        let stopped_before = faults.iter().any(|g| {
            g.action == FaultAction::Stop
                && (g.target, g.index) == (f.target, f.index)
                && g.at.0 < f.at.0
        });
        if !stopped_before {
            p.push(problem(
                format!("fault[{i}].action"),
                format!(
                    "cont of {} {} at {} follows no `stop` of it",
                    f.target.as_str(),
                    f.index,
                    f.at
                ),
                Some("add a fault with action = \"stop\" on the same target and index, earlier"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(origins: u32, edges: u32) -> LocalTarget {
        toml::from_str(&format!("origins = {origins}\nedges = {edges}")).unwrap()
    }

    fn fault(text: &str) -> Fault {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn fields(p: &[Problem]) -> Vec<&str> {
        p.iter().map(|p| p.field.as_str()).collect()
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn local_faults_within_the_topology_are_valid() {
        let faults = [
            fault("at = \"10s\"\naction = \"restart\"\ntarget = \"origin\"\ndown = \"5s\""),
            fault("at = \"20s\"\naction = \"stop\"\ntarget = \"edge\"\nindex = 1"),
            fault("at = \"25s\"\naction = \"cont\"\ntarget = \"edge\"\nindex = 1"),
            fault("at = \"30s\"\naction = \"kill\"\ntarget = \"origin\"\nindex = 1"),
        ];
        assert_eq!(
            validate(&faults, Some(&local(2, 2)), None, MINUTE),
            vec![],
            "{faults:?}"
        );
        assert_eq!(faults[0].down_time(), Duration::from_secs(5));
    }

    #[test]
    fn index_out_of_range_names_the_topology() {
        let p = validate(
            &[fault(
                "at = \"1s\"\naction = \"kill\"\ntarget = \"edge\"\nindex = 2",
            )],
            Some(&local(1, 2)),
            None,
            MINUTE,
        );
        assert_eq!(fields(&p), ["fault[0].index"]);
        assert!(
            p[0].message.contains("edge 2 does not exist") && p[0].message.contains("2 edge(s)"),
            "{}",
            p[0].message
        );
        let p = validate(
            &[fault("at = \"1s\"\naction = \"kill\"\ntarget = \"edge\"")],
            Some(&local(1, 0)),
            None,
            MINUTE,
        );
        assert_eq!(fields(&p), ["fault[0].target"]);
        let p = validate(
            &[fault(
                "at = \"1s\"\naction = \"kill\"\ntarget = \"origin\"\nindex = 1",
            )],
            Some(&local(1, 2)),
            None,
            MINUTE,
        );
        assert!(p[0].message.contains("1 origin(s)"), "{}", p[0].message);
    }

    #[test]
    fn a_fault_at_or_after_the_end_never_happens() {
        let p = validate(
            &[fault(
                "at = \"60s\"\naction = \"kill\"\ntarget = \"origin\"",
            )],
            Some(&local(1, 0)),
            None,
            MINUTE,
        );
        assert_eq!(fields(&p), ["fault[0].at"]);
        assert!(p[0].message.contains("never happen"), "{}", p[0].message);
        let p = validate(
            &[fault(
                "at = \"50s\"\naction = \"restart\"\ntarget = \"origin\"\ndown = \"10s\"",
            )],
            Some(&local(1, 0)),
            None,
            MINUTE,
        );
        assert_eq!(fields(&p), ["fault[0].down"]);
    }

    #[test]
    fn local_faults_need_a_local_target() {
        let p = validate(
            &[fault("at = \"1s\"\naction = \"stop\"\ntarget = \"origin\"")],
            None,
            None,
            MINUTE,
        );
        assert_eq!(fields(&p), ["fault[0].action"]);
        assert!(
            p[0].message.contains("no [target.local]"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn cluster_faults_without_kube_are_checked_and_refused_plainly() {
        let p = validate(
            &[
                fault("at = \"1s\"\naction = \"scale\"\ntarget = \"edge\"\nindex = 1"),
                fault("at = \"2s\"\naction = \"delete_pod\"\ntarget = \"edge\"\npods = \"all\""),
            ],
            None,
            None,
            MINUTE,
        );
        let f = fields(&p);
        for want in [
            "fault[0].index",
            "fault[0].replicas",
            "fault[0].action",
            "fault[1].action",
        ] {
            assert!(f.contains(&want), "{want} missing from {f:?}");
        }
        let refusal = p.iter().find(|p| p.field == "fault[1].action").unwrap();
        assert!(
            refusal.message.contains(
                "\"delete_pod\" acts on a cluster workload, and this scenario has no [kube]"
            ),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn cluster_faults_need_the_kube_workload_they_act_on() {
        let mut kube = KubeSection::new("live");
        kube.edge = Some(super::super::cluster::Workload {
            kind: Default::default(),
            name: "xiu-edge".into(),
        });
        let faults = [
            fault("at = \"1s\"\naction = \"rollout_restart\"\ntarget = \"edge\""),
            fault("at = \"2s\"\naction = \"scale\"\ntarget = \"edge\"\nreplicas = 3"),
            fault(
                "at = \"3s\"\naction = \"delete_pod\"\ntarget = \"edge\"\nselector = \"app=xiu\"",
            ),
        ];
        assert_eq!(validate(&faults, None, Some(&kube), MINUTE), vec![]);
        let p = validate(
            &[fault(
                "at = \"1s\"\naction = \"delete_pod\"\ntarget = \"origin\"",
            )],
            None,
            Some(&kube),
            MINUTE,
        );
        assert_eq!(fields(&p), ["fault[0].target"]);
        assert!(
            p[0].message.contains("no origin workload"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn fields_of_other_actions_are_named() {
        let p = validate(
            &[fault(
                "at = \"1s\"\naction = \"kill\"\ntarget = \"origin\"\ndown = \"1s\"\nreplicas = 2\npods = \"one\"",
            )],
            Some(&local(1, 0)),
            None,
            MINUTE,
        );
        assert_eq!(
            fields(&p),
            ["fault[0].down", "fault[0].pods", "fault[0].replicas"]
        );
    }

    #[test]
    fn cont_needs_an_earlier_stop_of_the_same_process() {
        let faults = [
            fault("at = \"5s\"\naction = \"stop\"\ntarget = \"edge\"\nindex = 0"),
            fault("at = \"9s\"\naction = \"cont\"\ntarget = \"edge\"\nindex = 1"),
        ];
        let p = validate(&faults, Some(&local(1, 2)), None, MINUTE);
        assert_eq!(fields(&p), ["fault[1].action"]);
        assert!(
            p[0].message.contains("follows no `stop`"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn events_read_as_what_happened() {
        let mut e = FaultEvent::done_at(10.02, FaultAction::Restart, FaultTarget::Origin);
        e.done_s = Some(15.4);
        assert_eq!(e.to_string(), "t=10.0s restart origin 0: done at t=15.4s");
        e.outcome = FaultOutcome::Failed;
        e.error = Some("xiu did not answer\nits log:\n...".into());
        assert_eq!(
            e.to_string(),
            "t=10.0s restart origin 0: FAILED (xiu did not answer)"
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["action"], "restart");
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["error"], "xiu did not answer\nits log:\n...");
        let back: FaultEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }
}

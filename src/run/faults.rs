//! The fault driver: carries out the scenario's `[[fault]]` entries on the local topology, or on
//! the `[kube]` cluster's workloads (`crate::k8s::faults`), at their moments on the run clock,
//! and keeps the record of what it did ([`FaultEvent`]s) for the report, the timeline and the
//! fault expectations.
//!
//! While the load runs, the local kubelet ([`crate::local::kubelet`]) holds the topology: it
//! supervises the edges as deploy/'s kubelet would, and the faults act through it. The driver
//! hands the topology back when the run stops, so the run's clean-up stops every process,
//! restarted ones included.

use crate::clock::RunClock;
use crate::k8s::config::KubeSection;
use crate::k8s::faults::{FaultExecError, FaultPlanError};
use crate::local::kubelet::{Action, ActionError, KubeletEvent, KubeletLog, Process};
use crate::local::{Kubelet, LocalTopology};
use crate::metrics::timeline::TimelinePoint;
use crate::scenario::fault::{Fault, FaultAction, FaultEvent, FaultOutcome, FaultTarget};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why a fault failed; its text is the fault event's `error` (report, journal, expectations).
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("the run has no local topology to act on")]
    NoTopology,
    #[error("cluster faults need the [kube] section's cluster, and the run has none")]
    NoCluster,
    /// A cluster step reached the process path: a bug in [`steps`], reported, not panicked on.
    #[error("a cluster fault is not a process's")]
    NotAProcessFault,
    #[error(transparent)]
    Process(#[from] ActionError),
    #[error(transparent)]
    Plan(#[from] FaultPlanError),
    #[error(transparent)]
    Cluster(#[from] FaultExecError),
}

/// One thing the driver does at one moment. A `restart` is two: [`Op::Down`], then the start
/// `down` later, so a fault due while a server is down is not held up by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    at: Duration,
    /// The `[[fault]]` entry (0-based).
    fault: usize,
    op: Op,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Kill,
    /// The first half of a `restart`: kills the process if it runs (a restart of a dead server
    /// just starts it).
    Down,
    /// The second half of a `restart`.
    Start,
    Stop,
    Cont,
    /// A cluster action, through the API server; without `[kube]` (validation refuses that) a
    /// failed event rather than a fault that silently never happened.
    Cluster,
}

/// The steps of `faults` in the order they are due (file order among equal times).
fn steps(faults: &[Fault]) -> Vec<Step> {
    let mut out = Vec::new();
    for (fault, f) in faults.iter().enumerate() {
        let at = f.at.0;
        let mut push = |at, op| out.push(Step { at, fault, op });
        match f.action {
            FaultAction::Kill => push(at, Op::Kill),
            FaultAction::Restart => {
                push(at, Op::Down);
                push(at.saturating_add(f.down_time()), Op::Start);
            }
            FaultAction::Stop => push(at, Op::Stop),
            FaultAction::Cont => push(at, Op::Cont),
            FaultAction::DeletePod | FaultAction::RolloutRestart | FaultAction::Scale => {
                push(at, Op::Cluster)
            }
        }
    }
    out.sort_by_key(|s| (s.at, s.fault));
    out
}

/// The record of what the driver did, shared with the collecting loop (timeline marks); and
/// what the local kubelet did meanwhile.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<FaultEvent>>>, KubeletLog);

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultEvent>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that fault `index` begins now; returns its place in the log.
    ///
    /// The time is read while the log is locked: a collecting tick that has already read its own
    /// time either sees this event at a time within its window or finds it in the next one, so no
    /// mark falls between two points.
    fn begin(&self, clock: &RunClock, index: usize, f: &Fault) -> usize {
        let mut log = self.lock();
        log.push(FaultEvent {
            fault: index,
            at_s: secs(clock.elapsed()),
            action: f.action,
            target: f.target,
            index: f.index,
            done_s: None,
            outcome: FaultOutcome::Unfinished,
            error: None,
        });
        log.len() - 1
    }

    fn end(&self, event: usize, clock: &RunClock, result: Result<(), FaultError>) {
        let done = secs(clock.elapsed());
        if let Some(e) = self.lock().get_mut(event) {
            match result {
                Ok(()) => {
                    e.outcome = FaultOutcome::Done;
                    e.done_s = Some(done);
                }
                Err(why) => {
                    e.outcome = FaultOutcome::Failed;
                    e.error = Some(why.to_string());
                }
            }
        }
    }

    pub fn events(&self) -> Vec<FaultEvent> {
        self.lock().clone()
    }

    /// Labels of the faults that began in the window `(since, until]` (seconds on the run clock).
    pub fn labels(&self, since: Duration, until: Duration) -> Vec<String> {
        labels_between(&self.lock(), secs(since), secs(until))
    }

    pub fn kubelet_events(&self) -> Vec<KubeletEvent> {
        self.1.events()
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn labels_between(events: &[FaultEvent], since: f64, until: f64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.at_s > since && e.at_s <= until)
        .map(FaultEvent::label)
        .collect()
}

/// What one timeline point is marked with: the faults and the kubelet's actions of its second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointMarks {
    pub fault: Vec<String>,
    pub kubelet: Vec<String>,
}

impl PointMarks {
    pub fn is_empty(&self) -> bool {
        self.fault.is_empty() && self.kubelet.is_empty()
    }

    /// `point` carrying these marks.
    pub fn on(&self, point: &TimelinePoint) -> TimelinePoint {
        TimelinePoint {
            fault: self.fault.clone(),
            kubelet: self.kubelet.clone(),
            ..point.clone()
        }
    }
}

/// Which timeline points carry which faults and kubelet actions: the live file's marks,
/// remembered so the points kept in memory (the report's charts, the expectations) carry
/// exactly the same.
#[derive(Default)]
pub struct Marks {
    log: Log,
    marked: Vec<(usize, PointMarks)>,
}

impl Marks {
    pub fn new(log: Log) -> Marks {
        Marks {
            log,
            marked: Vec::new(),
        }
    }

    /// The faults begun, and the kubelet's actions, in the window `(since, until]` of timeline
    /// point `index`.
    pub fn take(&mut self, index: usize, since: Duration, until: Duration) -> PointMarks {
        let marks = PointMarks {
            fault: self.log.labels(since, until),
            kubelet: self.log.1.labels(secs(since), secs(until)),
        };
        if !marks.is_empty() {
            self.marked.push((index, marks.clone()));
        }
        marks
    }

    /// Marks the kept points as the live file was marked.
    pub fn apply(&self, points: &mut [TimelinePoint]) {
        for (index, marks) in &self.marked {
            if let Some(p) = points.get_mut(*index) {
                *p = marks.on(p);
            }
        }
    }

    /// What the local kubelet did during the run.
    pub fn kubelet_events(&self) -> Vec<KubeletEvent> {
        self.log.kubelet_events()
    }
}

/// What cluster faults act through: the run's API client and its `[kube]` section.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub section: KubeSection,
}

/// The running driver.
pub struct Driver {
    stop: CancellationToken,
    task: Option<JoinHandle<Option<Kubelet>>>,
    log: Log,
}

impl Driver {
    /// Starts carrying out `faults` on the run clock: local faults through the local kubelet,
    /// which takes the topology for the rest of the load ([`Driver::stop`] gives it back), and
    /// cluster faults through `cluster`'s API client.
    pub fn start(
        faults: &[Fault],
        local: &mut Option<LocalTopology>,
        cluster: Option<Cluster>,
        clock: RunClock,
    ) -> Driver {
        let kubelet = local.take().map(|t| Kubelet::start(t, clock));
        let log = Log(
            Arc::default(),
            kubelet.as_ref().map(Kubelet::log).unwrap_or_default(),
        );
        let stop = CancellationToken::new();
        let plan = steps(faults);
        let task = (kubelet.is_some() || !plan.is_empty()).then(|| {
            tokio::spawn(drive(
                kubelet,
                cluster,
                faults.to_vec(),
                plan,
                clock,
                log.clone(),
                stop.clone(),
            ))
        });
        Driver { stop, task, log }
    }

    pub fn log(&self) -> Log {
        self.log.clone()
    }

    /// Stops acting (a restart still under way stays unfinished), continues any process left
    /// stopped, puts the topology back and returns what was done.
    pub async fn stop(self, local: &mut Option<LocalTopology>) -> Vec<FaultEvent> {
        self.stop.cancel();
        if let Some(task) = self.task {
            match task.await {
                Ok(Some(kubelet)) => *local = Some(kubelet.stop().await),
                Ok(None) => {}
                // Its processes were killed when the task's topology was dropped.
                Err(e) => eprintln!("warning: the fault driver failed: {e}"),
            }
        }
        self.log.events()
    }
}

/// Carries out the plan; then, with a kubelet, waits for the stop (the kubelet supervises until
/// then) and returns it.
async fn drive(
    mut kubelet: Option<Kubelet>,
    cluster: Option<Cluster>,
    faults: Vec<Fault>,
    plan: Vec<Step>,
    clock: RunClock,
    log: Log,
    stop: CancellationToken,
) -> Option<Kubelet> {
    let zero = tokio::time::Instant::from_std(clock.start_instant());
    // A restart's event, open between its kill and its start.
    let mut open: BTreeMap<usize, usize> = BTreeMap::new();
    // Processes left hung by `stop`, continued at the end so the topology can stop them.
    let mut hung: BTreeSet<(FaultTarget, u32)> = BTreeSet::new();
    let mut interrupted = false;
    for step in plan {
        tokio::select! {
            _ = stop.cancelled() => { interrupted = true; break },
            _ = tokio::time::sleep_until(zero + step.at) => {}
        }
        let f = &faults[step.fault];
        let event = match step.op {
            Op::Start => open.remove(&step.fault),
            _ => Some(log.begin(&clock, step.fault, f)),
        };
        let acting = async {
            if step.op == Op::Cluster {
                act_on_cluster(cluster.as_ref(), f).await
            } else {
                act(kubelet.as_mut(), step.op, f.target, f.index as usize).await
            }
        };
        let result = tokio::select! {
            _ = stop.cancelled() => { interrupted = true; break },
            r = acting => r,
        };
        match step.op {
            Op::Stop if result.is_ok() => {
                hung.insert((f.target, f.index));
            }
            Op::Cont | Op::Kill | Op::Down => {
                hung.remove(&(f.target, f.index));
            }
            _ => {}
        }
        let Some(event) = event else { continue };
        // A restart's event stays open (unfinished) until its start.
        if step.op == Op::Down && result.is_ok() {
            open.insert(step.fault, event);
        } else {
            log.end(event, &clock, result);
        }
    }
    if !interrupted && kubelet.is_some() {
        stop.cancelled().await;
    }
    if let Some(k) = kubelet.as_mut() {
        for (target, index) in hung {
            // A process the kubelet has killed meanwhile needs nothing.
            let _ = k
                .act(
                    process(target, index as usize),
                    Action::Signal(libc::SIGCONT),
                )
                .await;
        }
    }
    kubelet
}

fn process(target: FaultTarget, index: usize) -> Process {
    match target {
        FaultTarget::Origin => Process::Origin(index),
        FaultTarget::Edge => Process::Edge(index),
    }
}

async fn act_on_cluster(cluster: Option<&Cluster>, f: &Fault) -> Result<(), FaultError> {
    let c = cluster.ok_or(FaultError::NoCluster)?;
    let planned = crate::k8s::faults::plan(f, &c.section)?;
    Ok(crate::k8s::faults::execute(&c.client, &planned).await?)
}

async fn act(
    kubelet: Option<&mut Kubelet>,
    op: Op,
    target: FaultTarget,
    index: usize,
) -> Result<(), FaultError> {
    let action = match op {
        Op::Cluster => return Err(FaultError::NotAProcessFault),
        Op::Kill => Action::Kill,
        Op::Down => Action::Down,
        Op::Start => Action::Start,
        Op::Stop => Action::Signal(libc::SIGSTOP),
        Op::Cont => Action::Signal(libc::SIGCONT),
    };
    let k = kubelet.ok_or(FaultError::NoTopology)?;
    Ok(k.act(process(target, index), action).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(text: &str) -> Fault {
        toml::from_str(text).unwrap()
    }

    fn event(at_s: f64, action: FaultAction) -> FaultEvent {
        FaultEvent::done_at(at_s, action, FaultTarget::Origin)
    }

    #[test]
    fn a_restart_is_a_kill_then_a_start_after_its_down_time() {
        let faults = [
            fault("at = \"10s\"\naction = \"restart\"\ntarget = \"origin\"\ndown = \"5s\""),
            fault("at = \"12s\"\naction = \"stop\"\ntarget = \"edge\""),
            fault("at = \"10s\"\naction = \"kill\"\ntarget = \"edge\"\nindex = 1"),
            fault("at = \"1s\"\naction = \"scale\"\ntarget = \"edge\"\nreplicas = 3"),
        ];
        let s = |at, fault, op| Step {
            at: Duration::from_secs(at),
            fault,
            op,
        };
        assert_eq!(
            steps(&faults),
            [
                s(1, 3, Op::Cluster),
                s(10, 0, Op::Down),
                s(10, 2, Op::Kill),
                s(12, 1, Op::Stop),
                s(15, 0, Op::Start),
            ]
        );
    }

    #[test]
    fn each_fault_marks_the_second_it_began_in_once() {
        let events = [
            event(10.0004, FaultAction::Kill),
            event(10.9, FaultAction::Stop),
            event(12.0, FaultAction::Cont),
        ];
        let mut marks = Marks::new(Log(
            Arc::new(Mutex::new(events.to_vec())),
            KubeletLog::default(),
        ));
        // Ticks a little late, as the collecting loop's are; point i ends at tick i.
        let ticks: Vec<Duration> = (9..=13)
            .map(|t| Duration::from_millis(t * 1000 + 3))
            .collect();
        let mut since = Duration::ZERO;
        let mut live = Vec::new();
        for (i, at) in ticks.iter().enumerate() {
            live.push(marks.take(i, since, *at).fault);
            since = *at;
        }
        assert_eq!(
            live,
            [
                vec![],
                vec!["kill origin 0".to_string()],
                vec!["stop origin 0".to_string()],
                vec!["cont origin 0".to_string()],
                vec![],
            ]
        );
        let mut points: Vec<TimelinePoint> = (9..=13)
            .map(|t| TimelinePoint {
                t: t as f64,
                ..Default::default()
            })
            .collect();
        marks.apply(&mut points);
        let kept: Vec<Vec<String>> = points.iter().map(|p| p.fault.clone()).collect();
        assert_eq!(
            kept, live,
            "the report's points carry the live file's marks"
        );
        // In timeline.jsonl the field is there only on a marked point.
        let line = |p: &TimelinePoint| serde_json::to_string(p).unwrap();
        assert!(!line(&points[0]).contains("fault"));
        assert!(
            line(&points[1]).contains(r#""fault":["kill origin 0"]"#),
            "{}",
            line(&points[1])
        );
    }

    #[tokio::test]
    async fn without_a_topology_or_cluster_every_fault_is_recorded_as_failed() {
        let faults = [
            fault("at = \"0s\"\naction = \"kill\"\ntarget = \"origin\""),
            fault("at = \"0s\"\naction = \"rollout_restart\"\ntarget = \"edge\""),
        ];
        let log = Log::default();
        // Both are due at once: the driver returns when its plan is done.
        let left = tokio::time::timeout(
            Duration::from_secs(5),
            drive(
                None,
                None,
                faults.to_vec(),
                steps(&faults),
                RunClock::start_now(),
                log.clone(),
                CancellationToken::new(),
            ),
        )
        .await
        .expect("the driver acted on both faults");
        assert!(left.is_none());
        let events = log.events();
        assert_eq!(events.len(), 2);
        assert!(
            events.iter().all(|e| e.outcome == FaultOutcome::Failed),
            "{events:?}"
        );
        assert_eq!(
            events[0].error.as_deref(),
            Some("the run has no local topology to act on")
        );
        assert_eq!(
            events[1].error.as_deref(),
            Some("cluster faults need the [kube] section's cluster, and the run has none")
        );
    }
}

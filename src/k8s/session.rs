//! A watching session: spawns the watchers and pollers, and one recorder task that stamps what
//! they observe on the run clock, appends it to `cluster.jsonl` and keeps the timeline.

use super::client::{self, ClientError};
use super::config::KubeSection;
use super::journal::{self, Journal, JournalError};
use super::record::{Recorder, Scope};
use super::timeline::{ClusterEvent, ClusterTimeline, EventKind, Stamp};
use super::watch::{self, Observed};
use crate::clock::RunClock;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch as tokio_watch};
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// How long [`KubeSession::stop`] waits for the recorder to hand over the timeline before it
/// reads the journal back instead.
const STOP_WAIT: Duration = Duration::from_millis(400);

pub struct KubeSession {
    tasks: Vec<JoinHandle<()>>,
    recorder: JoinHandle<ClusterTimeline>,
    stop: oneshot::Sender<()>,
    events: broadcast::Sender<ClusterEvent>,
    /// Subscribed before the watchers started, so the first [`KubeSession::subscribe`] sees
    /// every event from the start, however fast the first ones come.
    first_subscriber: std::sync::Mutex<Option<broadcast::Receiver<ClusterEvent>>>,
    journal_path: PathBuf,
}

impl KubeSession {
    /// Connects (kubeconfig resolution only; no request yet), creates `run_dir/cluster.jsonl` and
    /// spawns the watchers. Returns at once: API errors show up in the timeline, not here.
    pub async fn start(
        section: &KubeSection,
        clock: RunClock,
        run_dir: &Path,
    ) -> Result<KubeSession, KubeError> {
        Connected::connect(section).await?.start(clock, run_dir)
    }
}

/// A resolved kubeconfig, not yet watching: resolving can be slow (exec plugins, a slow disk),
/// so a run does it before its clock starts, and starts watching on that clock.
pub struct Connected {
    client: kube::Client,
    /// The API server's URL, named in connection errors.
    server: String,
    section: KubeSection,
}

impl Connected {
    pub async fn connect(section: &KubeSection) -> Result<Connected, KubeError> {
        let config = client::config(section).await?;
        let server = config.cluster_url.to_string();
        Ok(Connected {
            client: kube::Client::try_from(config).map_err(ClientError::Build)?,
            server,
            section: section.clone(),
        })
    }

    /// The resolved client, for what else the run asks of the cluster (its faults).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Creates `run_dir/cluster.jsonl` and spawns the watchers, stamping on `clock`.
    pub fn start(self, clock: RunClock, run_dir: &Path) -> Result<KubeSession, KubeError> {
        let Connected {
            client,
            server,
            section,
        } = self;
        let section = &section;
        let journal_path = run_dir.join(journal::FILE_NAME);
        let journal = Journal::create(&journal_path)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (pods_tx, pods_rx) = tokio_watch::channel(Vec::new());
        let (events, first_subscriber) = broadcast::channel(1024);
        let (stop, stop_rx) = oneshot::channel();
        let mut tasks = watch::spawn_all(&client, section, &server, &tx);
        tasks.push(tokio::spawn(super::metrics::poll_pod_metrics(
            client.clone(),
            section.clone(),
            server.clone(),
            tx.clone(),
        )));
        if section.xiu_stats {
            tasks.push(tokio::spawn(super::metrics::poll_xiu_stats(
                client.clone(),
                section.clone(),
                pods_rx,
                tx.clone(),
            )));
        }
        drop(tx);
        let scope = Scope {
            workloads: section.workload_names(),
            hpas: section.hpas.clone(),
            pods_by_selector: section.pod_selector.is_some(),
            since_unix_ms: clock.start_unix_micros() / 1000,
        };
        let task = RecorderTask {
            recorder: Recorder::new(scope),
            expected: section
                .edge
                .iter()
                .chain(section.origin.iter())
                .map(|w| (w.kind.object_kind().to_string(), w.name.clone()))
                .collect(),
            namespace: section.namespace.clone(),
            clock,
            journal,
            journal_failed: false,
            timeline: ClusterTimeline::default(),
            events: events.clone(),
            pods: pods_tx,
        };
        let header = EventKind::Session {
            namespace: section.namespace.clone(),
            workloads: section.workload_names(),
            start_unix_ms: clock.start_unix_micros() / 1000,
        };
        let recorder = tokio::spawn(task.run(header, rx, stop_rx));
        Ok(KubeSession {
            tasks,
            recorder,
            stop,
            events,
            first_subscriber: std::sync::Mutex::new(Some(first_subscriber)),
            journal_path,
        })
    }
}

impl KubeSession {
    /// Every recorded event as it is recorded (for live status lines and tests).
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.first_subscriber
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| self.events.subscribe())
    }

    /// Stops every watcher and poller and returns what was recorded. Bounded: well under 500 ms.
    pub async fn stop(self) -> ClusterTimeline {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.stop.send(());
        match tokio::time::timeout(STOP_WAIT, self.recorder).await {
            Ok(Ok(timeline)) => timeline,
            // The journal holds every line the recorder wrote: lose nothing if it is stuck.
            _ => journal::read_journal(&self.journal_path).unwrap_or_default(),
        }
    }
}

struct RecorderTask {
    recorder: Recorder,
    /// The configured workloads as (kind, name), to warn about the ones a first list lacks.
    expected: Vec<(String, String)>,
    namespace: String,
    clock: RunClock,
    journal: Journal,
    journal_failed: bool,
    timeline: ClusterTimeline,
    events: broadcast::Sender<ClusterEvent>,
    pods: tokio_watch::Sender<Vec<String>>,
}

impl RecorderTask {
    async fn run(
        mut self,
        header: EventKind,
        mut rx: mpsc::UnboundedReceiver<Observed>,
        mut stop: oneshot::Receiver<()>,
    ) -> ClusterTimeline {
        self.record(vec![header]);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                o = rx.recv() => match o {
                    Some(o) => self.observe(o),
                    None => break,
                },
            }
        }
        // Keep what was already sent before the stop.
        while let Ok(o) = rx.try_recv() {
            self.observe(o);
        }
        self.timeline
    }

    fn observe(&mut self, o: Observed) {
        let r = &mut self.recorder;
        let kinds: Vec<EventKind> =
            match o {
                Observed::Hpa(h) => r.hpa(&h).into_iter().collect(),
                Observed::Deployment(d) => r.deployment(&d).into_iter().collect(),
                Observed::StatefulSet(s) => r.statefulset(&s).into_iter().collect(),
                Observed::Pod(p) => r.pod(&p),
                Observed::PodDeleted(p) => r.pod_deleted(&p).into_iter().collect(),
                Observed::PodRelistStarted => {
                    r.pod_relist_started();
                    Vec::new()
                }
                Observed::PodRelistDone => r.pod_relist_done(),
                Observed::CoreEvent(e, d) => r.core_event(&e, d).into_iter().collect(),
                Observed::EventsV1(e, d) => r.events_v1_event(&e, d).into_iter().collect(),
                Observed::Note(
                    EventKind::PodMetrics { pod, .. } | EventKind::XiuStats { pod, .. },
                ) if !r.owns_pod(&pod) => Vec::new(),
                Observed::Note(k) => vec![k],
                Observed::Listed(source) => match r.unseen_after_list(source, &self.expected) {
                    Some(missing) => {
                        let message = format!(
                            "{missing} in namespace {} after the first list: expectations about it \
                             will be inconclusive unless it appears",
                            self.namespace
                        );
                        eprintln!("warning: cluster watch: {message}");
                        vec![EventKind::Warning {
                            source: source.to_string(),
                            message,
                        }]
                    }
                    None => Vec::new(),
                },
            };
        let pods_changed = kinds.iter().any(|k| {
            matches!(
                k,
                EventKind::PodStatus { .. } | EventKind::PodDeleted { .. }
            )
        });
        self.record(kinds);
        if pods_changed {
            let running = self.recorder.running_pods();
            self.pods.send_if_modified(|p| {
                let changed = *p != running;
                *p = running;
                changed
            });
        }
    }

    fn record(&mut self, kinds: Vec<EventKind>) {
        for kind in kinds {
            let e = ClusterEvent {
                at: Stamp::now(&self.clock),
                kind,
            };
            if let Err(err) = self.journal.append(&e)
                && !std::mem::replace(&mut self.journal_failed, true)
            {
                tracing::error!("cluster journal: {err}; recording in memory only");
            }
            let _ = self.events.send(e.clone());
            self.timeline.push(e);
        }
    }
}

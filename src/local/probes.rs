//! What deploy/ declares for an edge pod's probes, and the kubelet's rules for acting on their
//! results: pure, so the local kubelet ([`super::kubelet`]) is only the I/O around it.
//!
//! The numbers are deploy/base/edge-deployment.yaml's, written out here because the image's build
//! context leaves deploy/ out (`include_str!` would break it); a unit test reads the manifest and
//! fails when the two differ, so they cannot drift.
//!
//! The kubelet's rules kept here (Kubernetes 1.33): a probe runs every `period`, a result is a
//! failure when no answer comes within `timeout`; `failureThreshold` consecutive failures act, one
//! success (the `successThreshold` deploy/ leaves at 1) undoes. Until the startup probe has
//! succeeded, readiness and liveness are not run. Readiness starts false in a new container. A pod
//! is Ready when every container runs and is ready. A container that exits is restarted at once
//! the first time, then after a back-off of 10 s doubling to 5 min, reset once it ran 10 min.

use std::time::{Duration, Instant};

/// Which listener of the edge pod a probe (or hook) reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgePort {
    /// xiu's HTTP API (`api`, 8000 in the pod).
    XiuApi,
    /// xiu's RTMP listener (`rtmp`, 1935).
    XiuRtmp,
    /// The sidecar's probe server (`health`, 9090).
    SidecarHealth,
}

/// What a probe does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Success is an HTTP status from 200 to 399.
    HttpGet { port: EdgePort, path: &'static str },
    /// Success is an accepted TCP connection.
    TcpSocket { port: EdgePort },
}

/// One probe as a manifest declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub check: Check,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Readiness,
        ProbeKind::Liveness,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Liveness => "liveness",
        }
    }
}

/// The two containers of an edge pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Container {
    Xiu,
    Sidecar,
}

impl Container {
    pub const BOTH: [Container; 2] = [Container::Xiu, Container::Sidecar];

    pub fn as_str(self) -> &'static str {
        match self {
            Container::Xiu => "xiu",
            Container::Sidecar => "sidecar",
        }
    }

    pub fn spec(self) -> &'static ContainerSpec {
        match self {
            Container::Xiu => &EDGE_XIU,
            Container::Sidecar => &EDGE_SIDECAR,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// A container's probes and its preStop hook (an HTTP GET, as both of deploy/'s are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerSpec {
    pub startup: Probe,
    pub readiness: Probe,
    pub liveness: Probe,
    pub pre_stop: Check,
}

impl ContainerSpec {
    pub fn probe(&self, kind: ProbeKind) -> &Probe {
        match kind {
            ProbeKind::Startup => &self.startup,
            ProbeKind::Readiness => &self.readiness,
            ProbeKind::Liveness => &self.liveness,
        }
    }
}

const fn probe(check: Check, period: u64, timeout: u64, failure_threshold: u32) -> Probe {
    Probe {
        check,
        period: Duration::from_secs(period),
        timeout: Duration::from_secs(timeout),
        failure_threshold,
    }
}

const XIU_ROOT: Check = Check::HttpGet {
    port: EdgePort::XiuApi,
    path: "/",
};
const DRAIN: Check = Check::HttpGet {
    port: EdgePort::SidecarHealth,
    path: "/drain",
};

/// The `xiu` container of deploy/'s edge Deployment.
pub const EDGE_XIU: ContainerSpec = ContainerSpec {
    startup: probe(XIU_ROOT, 2, 2, 30),
    readiness: probe(
        Check::TcpSocket {
            port: EdgePort::XiuRtmp,
        },
        5,
        2,
        3,
    ),
    liveness: probe(XIU_ROOT, 10, 5, 6),
    pre_stop: DRAIN,
};

/// The `sidecar` container of deploy/'s edge Deployment.
pub const EDGE_SIDECAR: ContainerSpec = ContainerSpec {
    startup: probe(
        Check::HttpGet {
            port: EdgePort::SidecarHealth,
            path: "/startupz",
        },
        2,
        2,
        60,
    ),
    readiness: probe(
        Check::HttpGet {
            port: EdgePort::SidecarHealth,
            path: "/readyz",
        },
        5,
        3,
        3,
    ),
    liveness: probe(
        Check::HttpGet {
            port: EdgePort::SidecarHealth,
            path: "/livez",
        },
        10,
        5,
        6,
    ),
    pre_stop: DRAIN,
};

/// The edge pod's `terminationGracePeriodSeconds`.
pub const EDGE_TERMINATION_GRACE: Duration = Duration::from_secs(150);
/// The sidecar's `--drain-timeout` in the edge pod.
pub const EDGE_DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// The grace a container gets when the local topology's drain is `drain`: deploy/'s grace keeps
/// 30 s beyond its drain for the hook call, xiu's exit and slack; the same slack here.
pub fn termination_grace(drain: Duration) -> Duration {
    drain + EDGE_TERMINATION_GRACE.saturating_sub(EDGE_DRAIN_TIMEOUT)
}

/// What one probe result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The startup probe succeeded: readiness and liveness run from now on.
    Started,
    Ready,
    Unready,
    /// The container is to be killed and started again: `failures` of `probe` in a row.
    Restart {
        probe: ProbeKind,
        failures: u32,
    },
}

/// The kubelet's view of one container's probes since it last started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerProbes {
    pub started: bool,
    pub ready: bool,
    /// Consecutive failures, by [`ProbeKind`].
    failures: [u32; 3],
}

impl ContainerProbes {
    /// A container just (re)started: not started, not ready.
    pub fn fresh() -> Self {
        ContainerProbes {
            started: false,
            ready: false,
            failures: [0; 3],
        }
    }

    /// A container already started and ready (the local topology waits for that before a run).
    pub fn serving() -> Self {
        ContainerProbes {
            started: true,
            ready: true,
            failures: [0; 3],
        }
    }

    /// The startup probe runs until it succeeds; readiness and liveness only after.
    pub fn runs(&self, kind: ProbeKind) -> bool {
        (kind == ProbeKind::Startup) != self.started
    }

    /// Takes one result of `kind` (of a probe that [`ContainerProbes::runs`]).
    pub fn observe(&mut self, spec: &ContainerSpec, kind: ProbeKind, ok: bool) -> Option<Change> {
        let failures = &mut self.failures[kind as usize];
        if ok {
            *failures = 0;
        } else {
            *failures += 1;
        }
        let threshold = spec.probe(kind).failure_threshold;
        let n = *failures;
        match kind {
            ProbeKind::Startup if ok => {
                self.started = true;
                Some(Change::Started)
            }
            ProbeKind::Readiness if ok && !self.ready => {
                self.ready = true;
                Some(Change::Ready)
            }
            ProbeKind::Readiness if !ok && self.ready && n >= threshold => {
                self.ready = false;
                Some(Change::Unready)
            }
            ProbeKind::Startup | ProbeKind::Liveness if !ok && n >= threshold => {
                Some(Change::Restart {
                    probe: kind,
                    failures: n,
                })
            }
            _ => None,
        }
    }
}

/// The kubelet's view of the edge pod: each container's probes, and whether it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodProbes {
    pub containers: [ContainerProbes; 2],
    pub running: [bool; 2],
}

impl PodProbes {
    pub fn serving() -> Self {
        PodProbes {
            containers: [ContainerProbes::serving(); 2],
            running: [true; 2],
        }
    }

    /// Ready: every container runs and is ready (what puts the pod in a Service's endpoints).
    pub fn ready(&self) -> bool {
        self.running.iter().all(|r| *r) && self.containers.iter().all(|c| c.ready)
    }

    pub fn container(&mut self, c: Container) -> &mut ContainerProbes {
        &mut self.containers[c.slot()]
    }

    pub fn is_running(&self, c: Container) -> bool {
        self.running[c.slot()]
    }

    /// The container is gone (exited, or killed to be restarted).
    pub fn exited(&mut self, c: Container) {
        self.running[c.slot()] = false;
        self.containers[c.slot()] = ContainerProbes::fresh();
    }

    /// A new instance of the container runs.
    pub fn started(&mut self, c: Container) {
        self.running[c.slot()] = true;
        self.containers[c.slot()] = ContainerProbes::fresh();
    }
}

/// The kubelet's crash-loop back-off: the first restart at once, then 10 s, doubling to 5 min;
/// after 10 min without a restart it starts over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashBackoff {
    /// The next delay, and when the last restart was planned.
    entry: Option<(Duration, Instant)>,
}

pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl CrashBackoff {
    /// How long after `exited_at` the container is started again; counts this restart.
    pub fn delay(&mut self, exited_at: Instant) -> Duration {
        let (delay, next) = match self.entry {
            Some((current, last))
                if exited_at.saturating_duration_since(last) <= 2 * BACKOFF_MAX =>
            {
                (current, (current * 2).min(BACKOFF_MAX))
            }
            _ => (Duration::ZERO, BACKOFF_INITIAL),
        };
        self.entry = Some((next, exited_at));
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_threshold_failures_to_drop_and_one_success_to_return() {
        let spec = &EDGE_SIDECAR;
        let mut c = ContainerProbes::serving();
        assert_eq!(c.observe(spec, ProbeKind::Readiness, false), None);
        assert_eq!(c.observe(spec, ProbeKind::Readiness, false), None);
        assert_eq!(
            c.observe(spec, ProbeKind::Readiness, false),
            Some(Change::Unready)
        );
        assert!(!c.ready);
        assert_eq!(c.observe(spec, ProbeKind::Readiness, false), None);
        assert_eq!(
            c.observe(spec, ProbeKind::Readiness, true),
            Some(Change::Ready)
        );
        // A success in between starts the count over.
        c.observe(spec, ProbeKind::Readiness, false);
        c.observe(spec, ProbeKind::Readiness, false);
        c.observe(spec, ProbeKind::Readiness, true);
        assert_eq!(c.observe(spec, ProbeKind::Readiness, false), None);
        assert!(c.ready);
    }

    #[test]
    fn liveness_restarts_after_threshold_failures_in_a_row() {
        let spec = &EDGE_XIU;
        let mut c = ContainerProbes::serving();
        for _ in 0..5 {
            assert_eq!(c.observe(spec, ProbeKind::Liveness, false), None);
        }
        assert_eq!(
            c.observe(spec, ProbeKind::Liveness, false),
            Some(Change::Restart {
                probe: ProbeKind::Liveness,
                failures: 6
            })
        );
        // Liveness says nothing about readiness.
        assert!(c.ready);
    }

    #[test]
    fn a_new_container_probes_startup_first_and_is_unready_until_a_readiness_success() {
        let spec = &EDGE_XIU;
        let mut c = ContainerProbes::fresh();
        assert!(c.runs(ProbeKind::Startup));
        assert!(!c.runs(ProbeKind::Readiness) && !c.runs(ProbeKind::Liveness));
        assert_eq!(c.observe(spec, ProbeKind::Startup, false), None);
        assert_eq!(
            c.observe(spec, ProbeKind::Startup, true),
            Some(Change::Started)
        );
        assert!(!c.runs(ProbeKind::Startup) && c.runs(ProbeKind::Readiness));
        assert!(!c.ready);
        assert_eq!(
            c.observe(spec, ProbeKind::Readiness, true),
            Some(Change::Ready)
        );
        // A startup probe that never succeeds restarts the container.
        let mut stuck = ContainerProbes::fresh();
        let last = (0..30)
            .map(|_| stuck.observe(spec, ProbeKind::Startup, false))
            .last()
            .flatten();
        assert_eq!(
            last,
            Some(Change::Restart {
                probe: ProbeKind::Startup,
                failures: 30
            })
        );
    }

    #[test]
    fn the_pod_is_ready_only_with_every_container_running_and_ready() {
        let mut pod = PodProbes::serving();
        assert!(pod.ready());
        pod.exited(Container::Xiu);
        assert!(!pod.ready());
        pod.started(Container::Xiu);
        assert!(!pod.ready(), "a new container is unready until probed");
        pod.container(Container::Xiu)
            .observe(&EDGE_XIU, ProbeKind::Startup, true);
        pod.container(Container::Xiu)
            .observe(&EDGE_XIU, ProbeKind::Readiness, true);
        assert!(pod.ready());
        pod.container(Container::Sidecar).ready = false;
        assert!(!pod.ready());
    }

    #[test]
    fn crash_backoff_is_immediate_then_doubles_to_its_cap_and_resets_after_ten_minutes() {
        let t0 = Instant::now();
        let mut b = CrashBackoff::default();
        let s = Duration::from_secs;
        let delays: Vec<u64> = (0..8).map(|i| b.delay(t0 + s(i)).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.delay(t0 + s(7) + s(601)), Duration::ZERO);
        assert_eq!(b.delay(t0 + s(7) + s(602)), s(10));
    }

    #[test]
    fn local_grace_keeps_deploys_slack_beyond_the_drain() {
        assert_eq!(
            termination_grace(Duration::from_secs(10)),
            Duration::from_secs(40)
        );
    }

    /// The numbers above are deploy/'s: read from the manifest itself.
    #[test]
    fn probes_equal_the_edge_deployment_in_deploy_base() {
        use k8s_openapi::api::core::v1 as core;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/base/edge-deployment.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        // Only the pod spec's fields read here: YAML 1.1 octals elsewhere (`defaultMode: 0440`)
        // do not parse as the typed Deployment.
        let d: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(
            pod["terminationGracePeriodSeconds"].as_u64(),
            Some(EDGE_TERMINATION_GRACE.as_secs())
        );
        let containers: Vec<core::Container> =
            serde_yaml_ng::from_value(pod["containers"].clone()).unwrap();
        let port_name = |p: EdgePort| match p {
            EdgePort::XiuApi => "api",
            EdgePort::XiuRtmp => "rtmp",
            EdgePort::SidecarHealth => "health",
        };
        let port_of = |p: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString| match p {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
            // A numeric port: deploy/ uses 9090 for the sidecar's, from the xiu container.
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9090) => "health".into(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        };
        let check_of_get = |g: &core::HTTPGetAction| Check::HttpGet {
            port: [EdgePort::XiuApi, EdgePort::XiuRtmp, EdgePort::SidecarHealth]
                .into_iter()
                .find(|p| port_name(*p) == port_of(&g.port))
                .unwrap_or_else(|| panic!("unknown port {:?}", g.port)),
            path: Box::leak(g.path.clone().unwrap_or_default().into_boxed_str()),
        };
        let as_probe = |p: &core::Probe| {
            let check = match (&p.http_get, &p.tcp_socket) {
                (Some(g), None) => check_of_get(g),
                (None, Some(t)) => Check::TcpSocket {
                    port: match port_of(&t.port).as_str() {
                        "rtmp" => EdgePort::XiuRtmp,
                        "api" => EdgePort::XiuApi,
                        other => panic!("unknown port {other}"),
                    },
                },
                other => panic!("a probe kind the local kubelet does not run: {other:?}"),
            };
            assert_eq!(p.success_threshold.unwrap_or(1), 1);
            assert_eq!(p.initial_delay_seconds.unwrap_or(0), 0);
            Probe {
                check,
                period: Duration::from_secs(p.period_seconds.unwrap_or(10) as u64),
                timeout: Duration::from_secs(p.timeout_seconds.unwrap_or(1) as u64),
                failure_threshold: p.failure_threshold.unwrap_or(3) as u32,
            }
        };
        for (name, container) in [("xiu", Container::Xiu), ("sidecar", Container::Sidecar)] {
            let c = containers.iter().find(|c| c.name == name).unwrap();
            let declared = ContainerSpec {
                startup: as_probe(c.startup_probe.as_ref().unwrap()),
                readiness: as_probe(c.readiness_probe.as_ref().unwrap()),
                liveness: as_probe(c.liveness_probe.as_ref().unwrap()),
                pre_stop: check_of_get(
                    c.lifecycle
                        .as_ref()
                        .and_then(|l| l.pre_stop.as_ref())
                        .and_then(|h| h.http_get.as_ref())
                        .unwrap(),
                ),
            };
            assert_eq!(&declared, container.spec(), "container {name}");
            if name == "sidecar" {
                let args = c.args.clone().unwrap_or_default();
                let at = args.iter().position(|a| a == "--drain-timeout").unwrap();
                assert_eq!(
                    humantime::parse_duration(&args[at + 1]).unwrap(),
                    EDGE_DRAIN_TIMEOUT
                );
                let health = c.ports.as_ref().unwrap();
                assert!(
                    health
                        .iter()
                        .any(|p| p.name.as_deref() == Some("health") && p.container_port == 9090)
                );
            }
        }
    }
}

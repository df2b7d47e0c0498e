//! The scenario's `[kube]` section and `[[expect]]` entries, and their semantic validation.
//!
//! Types only reject unknown keys; whether a combination makes sense (an expectation without a
//! cluster to judge, a scale-up without a replica count) is checked in [`validate`], which returns
//! field paths the scenario loader turns into file positions.

use super::problem::{Problem, problem};
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Which cluster to watch and what in it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubeSection {
    /// Explicit kubeconfig file; otherwise the standard resolution (`KUBECONFIG`, `~/.kube/config`,
    /// then in-cluster service-account config).
    pub kubeconfig: Option<PathBuf>,
    /// Named kubeconfig context; otherwise the current context.
    pub context: Option<String>,
    pub namespace: String,
    /// The edge workload (usually a Deployment scaled by an HPA).
    pub edge: Option<Workload>,
    /// The origin workload (usually a StatefulSet).
    pub origin: Option<Workload>,
    /// HPA names to watch; when empty, every HPA whose `scaleTargetRef` is a configured workload.
    #[serde(default)]
    pub hpas: Vec<String>,
    /// Label selector for the pods to follow (e.g. `app.kubernetes.io/part-of=xiu`); when absent,
    /// pods whose name starts with a configured workload's name.
    pub pod_selector: Option<String>,
    /// PodMetrics polling interval (metrics-server refreshes every ~15 s; polling faster only
    /// repeats values).
    #[serde(default = "default_metrics_interval")]
    pub metrics_interval: HumanDuration,
    /// Scrape each pod's xiu API through the API server's pod proxy.
    #[serde(default = "default_true")]
    pub xiu_stats: bool,
    /// Port of xiu's HTTP API in the pods (`[httpapi] port`).
    #[serde(default = "default_xiu_api_port")]
    pub xiu_api_port: u16,
    /// xiu refreshes its bitrates every 5 s, so scraping faster adds load without information.
    #[serde(default = "default_xiu_interval")]
    pub xiu_stats_interval: HumanDuration,
}

fn default_metrics_interval() -> HumanDuration {
    HumanDuration::secs(15)
}
fn default_true() -> bool {
    true
}
fn default_xiu_api_port() -> u16 {
    8000
}
fn default_xiu_interval() -> HumanDuration {
    HumanDuration::secs(5)
}

impl KubeSection {
    /// A section with defaults for everything but the namespace (tests and `xiuload watch`).
    pub fn new(namespace: &str) -> Self {
        KubeSection {
            kubeconfig: None,
            context: None,
            namespace: namespace.to_string(),
            edge: None,
            origin: None,
            hpas: Vec::new(),
            pod_selector: None,
            metrics_interval: default_metrics_interval(),
            xiu_stats: true,
            xiu_api_port: default_xiu_api_port(),
            xiu_stats_interval: default_xiu_interval(),
        }
    }

    /// Names of the configured workloads (edge first).
    pub fn workload_names(&self) -> Vec<String> {
        self.edge
            .iter()
            .chain(self.origin.iter())
            .map(|w| w.name.clone())
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default)]
    pub kind: WorkloadKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    /// The object's `kind` as the API server names it.
    pub fn object_kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        }
    }
}

/// One `[[expect]]`: what the cluster should do under the load.
///
/// A flat table (rather than one table shape per kind) so every field has a stable path
/// (`expect[2].within`) for error messages; [`validate`] says which fields each kind needs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub kind: ExpectKind,
    /// Workload whose ready replicas are judged; defaults to `[kube.edge]`.
    pub workload: Option<String>,
    /// `scale_up`: at least this many ready replicas; `scale_down`: at most this many.
    pub replicas: Option<u32>,
    /// Deadline after the reference moment.
    pub within: Option<HumanDuration>,
    /// Reference moment: the start of this load stage (0-based)...
    pub after_stage: Option<usize>,
    /// ...or this long after the run started. `scale_down` defaults to the end of the load.
    pub after: Option<HumanDuration>,
    /// `max_probe_failures`, `max_restarts`, `max_viewers_dropped_per_scale_down`,
    /// `max_viewers_dropped`: the limit.
    pub max: Option<u64>,
    /// `no_flapping`: direction changes closer than this count as flapping (default 5m).
    /// `max_viewers_dropped`: how long after the fault viewers count as dropped by it (default 10s).
    pub window: Option<HumanDuration>,
    /// `max_viewers_dropped`, `recovered_within`: the `[[fault]]` (0-based) judged; default: each.
    pub fault: Option<usize>,
    /// `recovered_within`: the share of the pre-fault service that counts as served again
    /// (default 90).
    pub percent: Option<f64>,
}

impl Expectation {
    /// An expectation of `kind` with every optional field unset.
    pub fn new(kind: ExpectKind) -> Expectation {
        Expectation {
            kind,
            workload: None,
            replicas: None,
            within: None,
            after_stage: None,
            after: None,
            max: None,
            window: None,
            fault: None,
            percent: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExpectKind {
    ScaleUp,
    ScaleDown,
    MaxProbeFailures,
    MaxRestarts,
    NoOomKilled,
    NoFlapping,
    MaxViewersDroppedPerScaleDown,
    /// Viewers dropped around a `[[fault]]`: judged on the load alone, no cluster needed.
    MaxViewersDropped,
    /// Viewers served again within a bound after a `[[fault]]`: judged on the load alone.
    RecoveredWithin,
}

impl ExpectKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ExpectKind::ScaleUp => "scale_up",
            ExpectKind::ScaleDown => "scale_down",
            ExpectKind::MaxProbeFailures => "max_probe_failures",
            ExpectKind::MaxRestarts => "max_restarts",
            ExpectKind::NoOomKilled => "no_oom_killed",
            ExpectKind::NoFlapping => "no_flapping",
            ExpectKind::MaxViewersDroppedPerScaleDown => "max_viewers_dropped_per_scale_down",
            ExpectKind::MaxViewersDropped => "max_viewers_dropped",
            ExpectKind::RecoveredWithin => "recovered_within",
        }
    }

    /// Judged on what a watched cluster did (needs `[kube]`); the others only on the load.
    pub fn needs_cluster(self) -> bool {
        !matches!(
            self,
            ExpectKind::MaxViewersDropped | ExpectKind::RecoveredWithin
        )
    }

    /// Judged around a `[[fault]]`.
    pub fn follows_a_fault(self) -> bool {
        !self.needs_cluster()
    }
}

/// How long after a fault `max_viewers_dropped` counts viewers as dropped by it, by default.
pub const DEFAULT_FAULT_WINDOW: Duration = Duration::from_secs(10);

/// `recovered_within`: the share of the service before a fault that counts as served again.
pub const DEFAULT_RECOVERED_PERCENT: f64 = 90.0;

/// Default flapping window: the HPA's default scale-down stabilisation is 5 minutes, so two
/// direction changes inside it mean the behaviour settings are not doing their job.
pub const DEFAULT_FLAP_WINDOW: Duration = Duration::from_secs(300);

/// Checks `[kube]` and `[[expect]]`; `stage_count` is the number of load stages `after_stage`
/// may refer to (the longest `ramp` in the scenario), `faults` the number of `[[fault]]` entries
/// the fault expectations may follow.
pub fn validate(
    kube: Option<&KubeSection>,
    expect: &[Expectation],
    stage_count: usize,
    faults: usize,
) -> Vec<Problem> {
    let mut p = Vec::new();
    if let Some(k) = kube {
        if !is_dns_label(&k.namespace) {
            p.push(problem(
                "kube.namespace",
                format!("{:?} is not a valid namespace name", k.namespace),
                Some("lowercase letters, digits and '-', at most 63 characters"),
            ));
        }
        for (field, w) in [("kube.edge", &k.edge), ("kube.origin", &k.origin)] {
            if let Some(w) = w
                && !is_dns_subdomain(&w.name)
            {
                p.push(problem(
                    format!("{field}.name"),
                    format!("{:?} is not a valid object name", w.name),
                    None,
                ));
            }
        }
        for (i, h) in k.hpas.iter().enumerate() {
            if !is_dns_subdomain(h) {
                p.push(problem(
                    format!("kube.hpas[{i}]"),
                    format!("{h:?} is not a valid object name"),
                    None,
                ));
            }
        }
        if k.edge.is_none() && k.origin.is_none() && k.pod_selector.is_none() {
            p.push(problem(
                "kube",
                "nothing to watch: give `edge`, `origin` or `pod_selector`",
                Some("edge = { kind = \"deployment\", name = \"xiu-edge\" }"),
            ));
        }
        if let Some(sel) = &k.pod_selector
            && sel.trim().is_empty()
        {
            p.push(problem("kube.pod_selector", "the selector is empty", None));
        }
        if k.metrics_interval.0 < Duration::from_secs(1) {
            p.push(problem(
                "kube.metrics_interval",
                "must be at least 1s",
                None,
            ));
        }
        if k.xiu_stats_interval.0 < Duration::from_secs(1) {
            p.push(problem(
                "kube.xiu_stats_interval",
                "must be at least 1s",
                None,
            ));
        }
        if k.xiu_api_port == 0 {
            p.push(problem(
                "kube.xiu_api_port",
                "must be a port number (1..=65535)",
                None,
            ));
        }
    }
    if kube.is_none()
        && let Some(i) = expect.iter().position(|e| e.kind.needs_cluster())
    {
        p.push(problem(
            format!("expect[{i}]"),
            format!(
                "{} judges what the cluster did, but the scenario has no [kube] section",
                expect[i].kind.as_str()
            ),
            Some("add [kube] with the namespace and workloads to watch, or remove the [[expect]] entries (max_viewers_dropped and recovered_within need no cluster)"),
        ));
    }
    let workloads = kube.map(KubeSection::workload_names).unwrap_or_default();
    for (i, e) in expect.iter().enumerate() {
        check_expectation(i, e, kube, &workloads, stage_count, &mut p);
        check_fault_fields(i, e, faults, &mut p);
    }
    p
}

/// The fields of the fault expectations, and that there is a fault to follow.
fn check_fault_fields(i: usize, e: &Expectation, faults: usize, p: &mut Vec<Problem>) {
    let at = format!("expect[{i}]");
    let kind = e.kind.as_str();
    if !e.kind.follows_a_fault() {
        for (field, set) in [
            ("fault", e.fault.is_some()),
            ("percent", e.percent.is_some()),
        ] {
            if set {
                p.push(problem(
                    format!("{at}.{field}"),
                    format!("`{field}` has no meaning for kind {kind:?}"),
                    None,
                ));
            }
        }
        return;
    }
    if faults == 0 {
        p.push(problem(
            format!("{at}.kind"),
            format!("{kind} judges the viewers around a fault, and the scenario has no [[fault]]"),
            Some("add a [[fault]] (e.g. at = \"10s\", action = \"restart\", target = \"origin\")"),
        ));
    } else if let Some(f) = e.fault
        && f >= faults
    {
        p.push(problem(
            format!("{at}.fault"),
            format!("fault {f} does not exist (the scenario has {faults} [[fault]] entries, counted from 0)"),
            None,
        ));
    }
    if e.kind == ExpectKind::RecoveredWithin {
        if e.within.is_none() {
            p.push(problem(
                format!("{at}.within"),
                "recovered_within needs the bound `within`",
                Some("within = \"20s\""),
            ));
        }
        if let Some(pc) = e.percent
            && !(pc > 0.0 && pc <= 100.0)
        {
            p.push(problem(
                format!("{at}.percent"),
                format!("{pc} must be above 0 and at most 100"),
                None,
            ));
        }
    } else if e.percent.is_some() {
        p.push(problem(
            format!("{at}.percent"),
            format!("`percent` has no meaning for kind {kind:?}"),
            None,
        ));
    }
}

fn check_expectation(
    i: usize,
    e: &Expectation,
    kube: Option<&KubeSection>,
    workloads: &[String],
    stage_count: usize,
    p: &mut Vec<Problem>,
) {
    let at = format!("expect[{i}]");
    let kind = e.kind.as_str();
    let scaling = matches!(e.kind, ExpectKind::ScaleUp | ExpectKind::ScaleDown);
    let needs_max = matches!(
        e.kind,
        ExpectKind::MaxProbeFailures
            | ExpectKind::MaxRestarts
            | ExpectKind::MaxViewersDroppedPerScaleDown
            | ExpectKind::MaxViewersDropped
    );
    let unused = |field: &str, p: &mut Vec<Problem>| {
        p.push(problem(
            format!("{at}.{field}"),
            format!("`{field}` has no meaning for kind {kind:?}"),
            None,
        ));
    };
    if scaling {
        if e.replicas.is_none() {
            p.push(problem(
                format!("{at}.replicas"),
                format!("{kind} needs `replicas`"),
                None,
            ));
        }
        match e.within {
            None => p.push(problem(
                format!("{at}.within"),
                format!("{kind} needs a deadline `within`"),
                Some("within = \"3m\""),
            )),
            Some(w) if w.0.is_zero() => p.push(problem(
                format!("{at}.within"),
                "must be longer than 0s",
                None,
            )),
            _ => {}
        }
        if e.after_stage.is_some() && e.after.is_some() {
            p.push(problem(
                format!("{at}.after"),
                "give `after_stage` or `after`, not both",
                None,
            ));
        }
        if e.kind == ExpectKind::ScaleUp && e.after_stage.is_none() && e.after.is_none() {
            p.push(problem(
                format!("{at}.after_stage"),
                "scale_up needs a reference moment: `after_stage` (0-based) or `after`",
                None,
            ));
        }
        if let Some(s) = e.after_stage
            && s >= stage_count
        {
            p.push(problem(
                format!("{at}.after_stage"),
                format!(
                    "stage {s} does not exist (the load has {stage_count} stage(s), counted from 0)"
                ),
                None,
            ));
        }
        match (&e.workload, kube) {
            (Some(w), Some(_)) if !workloads.contains(w) => p.push(problem(
                format!("{at}.workload"),
                format!("{w:?} is not a workload in [kube]"),
                Some(&format!("workloads: {workloads:?}")),
            )),
            (None, Some(k)) if k.edge.is_none() => p.push(problem(
                format!("{at}.workload"),
                "no `workload` given and [kube] has no `edge` to default to",
                None,
            )),
            _ => {}
        }
    } else {
        for (field, set) in [
            ("replicas", e.replicas.is_some()),
            (
                "within",
                e.within.is_some() && e.kind != ExpectKind::RecoveredWithin,
            ),
            ("after_stage", e.after_stage.is_some()),
            ("after", e.after.is_some()),
            ("workload", e.workload.is_some()),
        ] {
            if set {
                unused(field, p);
            }
        }
    }
    if needs_max && e.max.is_none() {
        p.push(problem(
            format!("{at}.max"),
            format!("{kind} needs `max`"),
            None,
        ));
    }
    if !needs_max && e.max.is_some() {
        unused("max", p);
    }
    let windowed = matches!(
        e.kind,
        ExpectKind::NoFlapping | ExpectKind::MaxViewersDropped
    );
    if !windowed && e.window.is_some() {
        unused("window", p);
    }
    if let Some(w) = e.within
        && e.kind == ExpectKind::RecoveredWithin
        && w.0.is_zero()
    {
        p.push(problem(
            format!("{at}.within"),
            "must be longer than 0s",
            None,
        ));
    }
    if let Some(w) = e.window
        && w.0.is_zero()
    {
        p.push(problem(
            format!("{at}.window"),
            "must be longer than 0s",
            None,
        ));
    }
}

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(super) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> KubeSection {
        let mut k = KubeSection::new("xiu");
        k.edge = Some(Workload {
            kind: WorkloadKind::Deployment,
            name: "xiu-edge".into(),
        });
        k
    }

    fn exp(kind: ExpectKind) -> Expectation {
        Expectation::new(kind)
    }

    fn fields(p: &[Problem]) -> Vec<&str> {
        p.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn valid_section_and_expectations() {
        let up = Expectation {
            replicas: Some(3),
            within: Some(HumanDuration::secs(120)),
            after_stage: Some(1),
            ..exp(ExpectKind::ScaleUp)
        };
        let oom = exp(ExpectKind::NoOomKilled);
        assert_eq!(validate(Some(&section()), &[up, oom], 3, 0), vec![]);
    }

    #[test]
    fn expectations_need_a_kube_section() {
        let p = validate(None, &[exp(ExpectKind::NoOomKilled)], 0, 0);
        assert_eq!(fields(&p), ["expect[0]"]);
        assert!(p[0].message.contains("no [kube] section"));
    }

    #[test]
    fn bad_namespace_and_missing_fields_are_located() {
        let mut k = section();
        k.namespace = "Bad_NS".into();
        let up = Expectation {
            after_stage: Some(5),
            ..exp(ExpectKind::ScaleUp)
        };
        let restarts = Expectation {
            within: Some(HumanDuration::secs(1)),
            ..exp(ExpectKind::MaxRestarts)
        };
        let p = validate(Some(&k), &[up, restarts], 2, 0);
        let f = fields(&p);
        for want in [
            "kube.namespace",
            "expect[0].replicas",
            "expect[0].within",
            "expect[0].after_stage",
            "expect[1].within",
            "expect[1].max",
        ] {
            assert!(f.contains(&want), "{want} missing from {f:?}");
        }
    }

    #[test]
    fn fault_expectations_need_no_cluster_but_a_fault() {
        let dropped = Expectation {
            max: Some(10),
            window: Some(HumanDuration::secs(20)),
            ..exp(ExpectKind::MaxViewersDropped)
        };
        let recovered = Expectation {
            within: Some(HumanDuration::secs(30)),
            percent: Some(80.0),
            fault: Some(1),
            ..exp(ExpectKind::RecoveredWithin)
        };
        assert_eq!(
            validate(None, &[dropped.clone(), recovered.clone()], 0, 2),
            vec![]
        );
        // No [[fault]] to follow, or not that one.
        let p = validate(None, &[dropped.clone(), recovered], 0, 1);
        assert_eq!(fields(&p), ["expect[1].fault"]);
        let p = validate(None, std::slice::from_ref(&dropped), 0, 0);
        assert_eq!(fields(&p), ["expect[0].kind"]);
        assert!(p[0].message.contains("no [[fault]]"), "{}", p[0].message);
        // Missing and misplaced fields.
        let bare = exp(ExpectKind::RecoveredWithin);
        let odd = Expectation {
            percent: Some(150.0),
            replicas: Some(2),
            ..bare.clone()
        };
        let p = validate(None, &[bare, odd, exp(ExpectKind::MaxViewersDropped)], 0, 1);
        let f = fields(&p);
        for want in [
            "expect[0].within",
            "expect[1].percent",
            "expect[1].replicas",
            "expect[2].max",
        ] {
            assert!(f.contains(&want), "{want} missing from {f:?}");
        }
        // A cluster kind among them still needs [kube], and is named.
        let p = validate(None, &[dropped, exp(ExpectKind::NoOomKilled)], 0, 1);
        assert_eq!(fields(&p), ["expect[1]"]);
        assert!(
            p[0].message
                .contains("no_oom_killed judges what the cluster did")
        );
        let with_percent = Expectation {
            percent: Some(50.0),
            ..exp(ExpectKind::NoOomKilled)
        };
        let p = validate(Some(&section()), &[with_percent], 0, 1);
        assert_eq!(fields(&p), ["expect[0].percent"]);
    }

    #[test]
    fn unknown_workload_is_named() {
        let down = Expectation {
            workload: Some("xiu-edgy".into()),
            replicas: Some(1),
            within: Some(HumanDuration::secs(60)),
            ..exp(ExpectKind::ScaleDown)
        };
        let p = validate(Some(&section()), &[down], 0, 0);
        assert_eq!(fields(&p), ["expect[0].workload"]);
    }

    #[test]
    fn staging_example_scenario_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/staging-hpa-step.toml");
        let s = crate::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let k = s.kube.expect("[kube]");
        assert_eq!(k.edge.map(|w| w.name).as_deref(), Some("xiu-edge"));
        assert_eq!(s.expect.len(), 7);
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        let err =
            toml::from_str::<KubeSection>("namespace = \"a\"\nnamespaec = \"b\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let e: Expectation =
            toml::from_str("kind = \"scale_up\"\nreplicas = 3\nwithin = \"2m\"\nafter = \"30s\"")
                .unwrap();
        assert_eq!(e.within, Some(HumanDuration::secs(120)));
    }
}

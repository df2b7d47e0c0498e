//! Replays a run's recorded per-pod metrics through HPA specs: "what would this HPA have done
//! with the load we really had?".
//!
//! Model: the controller reconciles every `sync_period_s` (`--horizontal-pod-autoscaler-sync-
//! period`, 15 s by default) with the latest sample. While the simulated replica count equals the
//! number of live recorded pods (neither being deleted nor Failed), the recorded pods are used as
//! they are: phase, deletion, start time, readiness and missing samples, as the controller groups
//! them. When it differs, the work the live pods did (pods without a sample counted at the
//! average of the others; pods being deleted left out, their load is leaving) is spread evenly
//! over the simulated replicas, all running and ready: the same audience served by more or fewer
//! pods. That assumes usage scales with viewers and ignores per-pod fixed costs and pod start-up
//! time.

use super::algorithm::{
    self, ControllerFlags, HpaState, MetricSample, Phase, PodGroup, PodInfo, PodMetric,
};
use super::spec::{HpaSpec, Resource};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `hpa-input.json` in a run directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplayInput {
    /// Seconds between samples (informative; samples carry their own `t`).
    pub interval_s: f64,
    pub samples: Vec<Sample>,
    /// What the real HPA did: (t, replicas), as a step function.
    #[serde(default)]
    pub actual_replicas: Vec<(f64, u32)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Seconds since the run started (the timeline's time zero).
    pub t: f64,
    pub pods: Vec<PodSample>,
}

/// One pod at one PodMetrics poll. The fields after the requests were added later and are
/// optional, so files written by earlier versions, or by hand, still replay.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodSample {
    pub name: String,
    /// The Ready condition is True.
    pub ready: bool,
    pub cpu_millicores: Option<f64>,
    pub memory_bytes: Option<f64>,
    /// 0 when the pod's containers have no CPU request (nor limit).
    pub cpu_request_millicores: f64,
    pub memory_request_bytes: f64,
    /// `status.phase` (`Pending`, `Running`, `Failed`...); absent: Running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `metadata.deletionTimestamp` was set: the pod is shutting down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminating: bool,
    /// `status.startTime`, seconds on the same clock as `t` (negative: before the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_s: Option<f64>,
    /// `lastTransitionTime` of the Ready condition, seconds on the same clock as `t`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since_s: Option<f64>,
}

impl PodSample {
    fn info(&self) -> PodInfo {
        PodInfo {
            phase: Phase::parse(self.phase.as_deref()),
            deleting: self.terminating,
            ready: self.ready,
            started_s: self.started_s,
            ready_since_s: self.ready_since_s,
        }
    }

    /// Neither being deleted nor Failed: a pod the controller counts.
    fn live(&self) -> bool {
        let info = self.info();
        !info.deleting && info.phase != Phase::Failed
    }

    /// (usage, request) of one resource, as recorded (millicores or bytes).
    fn resource(&self, resource: Resource) -> (Option<f64>, f64) {
        match resource {
            Resource::Cpu => (self.cpu_millicores, self.cpu_request_millicores),
            Resource::Memory => (self.memory_bytes, self.memory_request_bytes),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(
        "cannot read {path}: {source} (hpa-replay needs the per-pod metrics of a cluster run; see README \"xiuload hpa-replay\")"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid replay input: {message}")]
    Parse { path: PathBuf, message: String },
}

pub const INPUT_FILE: &str = "hpa-input.json";

pub fn load_input(run_dir: &Path) -> Result<ReplayInput, InputError> {
    let path = run_dir.join(INPUT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| InputError::Read {
        path: path.clone(),
        source,
    })?;
    let input: ReplayInput = serde_json::from_str(&text).map_err(|e| InputError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if input.samples.is_empty() {
        return Err(InputError::Parse {
            path,
            message: "no samples".into(),
        });
    }
    Ok(input)
}

/// The averaging window metrics-server reports with each sample is not recorded; its default
/// resolution is 15 s. The controller only uses it for CPU, while a pod is initialising.
pub const ASSUMED_METRIC_WINDOW_S: f64 = 15.0;

/// The controller's flags and reconcile period for a replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayOptions {
    pub sync_period_s: f64,
    pub flags: ControllerFlags,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            sync_period_s: 15.0,
            flags: ControllerFlags::default(),
        }
    }
}

/// The replicas one spec would have had.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SpecReplay {
    pub name: String,
    /// (t, replicas) at each reconcile.
    pub replicas: Vec<(f64, u32)>,
}

/// The controller settings a replay used, so `hpa-replay.json` says what it assumed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ControllerSettings {
    pub tolerance: f64,
    pub downscale_stabilization_s: f64,
    pub cpu_initialization_period_s: f64,
    pub initial_readiness_delay_s: f64,
    pub assumed_metric_window_s: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplayResult {
    pub sync_period_s: f64,
    pub controller: ControllerSettings,
    pub actual: Vec<(f64, u32)>,
    pub specs: Vec<SpecReplay>,
}

/// A step function's value at `t` (the last point at or before it).
pub fn step_at(points: &[(f64, u32)], t: f64) -> Option<u32> {
    points
        .iter()
        .take_while(|p| p.0 <= t + 1e-9)
        .last()
        .map(|p| p.1)
}

/// Recorded usage (millicores or bytes) → the controller's integer milli-units. `MilliValue()`
/// rounds up; the tiny offset keeps a float that is an integer a hair too high from gaining 1.
fn milli(resource: Resource, v: f64) -> i64 {
    let m = match resource {
        Resource::Cpu => v,
        Resource::Memory => v * 1000.0,
    };
    (m - 1e-6).ceil() as i64
}

/// A recorded request; 0 means "none", which fails a utilization metric as in the controller.
fn request_milli(resource: Resource, v: f64) -> Option<i64> {
    (v > 0.0).then(|| milli(resource, v))
}

/// The pods the controller would see for one metric at reconcile time `now`, with the simulated
/// HPA at `replicas`.
fn pod_metrics(
    sample: &Sample,
    replicas: u32,
    resource: Resource,
    now: f64,
    flags: &ControllerFlags,
) -> Vec<PodMetric> {
    let cpu = resource == Resource::Cpu;
    let live: Vec<&PodSample> = sample.pods.iter().filter(|p| p.live()).collect();
    if replicas as usize == live.len() {
        return sample
            .pods
            .iter()
            .map(|p| {
                let (usage, request) = p.resource(resource);
                let usage = usage.map(|u| milli(resource, u));
                let metric = usage.map(|value| MetricSample {
                    value,
                    timestamp_s: sample.t,
                    window_s: ASSUMED_METRIC_WINDOW_S,
                });
                PodMetric {
                    group: algorithm::group_pod(&p.info(), metric.as_ref(), cpu, now, flags),
                    usage,
                    request: request_milli(resource, request),
                }
            })
            .collect();
    }
    // The work the live pods did: every live pod with a sample counts (a pod not yet ready may
    // serve a little), running ones without a sample are assumed to have done the average, and
    // Pending ones nothing. Pods being deleted are left out: their viewers are leaving or moving
    // to the others, who are recorded.
    let serving: Vec<&&PodSample> = live
        .iter()
        .filter(|p| p.info().phase != Phase::Pending || p.resource(resource).0.is_some())
        .collect();
    let measured: Vec<f64> = serving
        .iter()
        .filter_map(|p| p.resource(resource).0)
        .collect();
    let requests: Vec<f64> = live
        .iter()
        .map(|p| p.resource(resource).1)
        .filter(|r| *r > 0.0)
        .collect();
    if replicas == 0 {
        return Vec::new();
    }
    let usage = (!measured.is_empty()).then(|| {
        let total = measured.iter().sum::<f64>() * serving.len() as f64 / measured.len() as f64;
        milli(resource, total / replicas as f64)
    });
    // A pod without a request among them would fail the metric in the controller too.
    let request = (!requests.is_empty() && requests.len() == live.len()).then(|| {
        milli(
            resource,
            requests.iter().sum::<f64>() / requests.len() as f64,
        )
    });
    vec![
        PodMetric {
            group: if usage.is_some() {
                PodGroup::Ready
            } else {
                PodGroup::Missing
            },
            usage,
            request,
        };
        replicas as usize
    ]
}

/// Replays one spec. Starts from the real replica count at the first sample (or the number of
/// live recorded pods), as a controller that starts watching then would find it.
pub fn replay_spec(input: &ReplayInput, spec: &HpaSpec, opts: &ReplayOptions) -> SpecReplay {
    // The CLI refuses periods under a second; a zero period would never reach the end.
    assert!(
        opts.sync_period_s > 0.0,
        "sync period must be positive, got {}",
        opts.sync_period_s
    );
    let first = &input.samples[0];
    let end = input.samples.last().map(|s| s.t).unwrap_or(first.t);
    let mut current = step_at(&input.actual_replicas, first.t)
        .or_else(|| input.actual_replicas.first().map(|p| p.1))
        .unwrap_or_else(|| first.pods.iter().filter(|p| p.live()).count() as u32);
    let tolerances = spec.limits.tolerances(&opts.flags);
    let mut state = HpaState::default();
    let mut out = Vec::new();
    let mut tick = 0u32;
    loop {
        // Ticks as multiples of the period, not a running sum, so a long replay does not drift.
        let t = first.t + f64::from(tick) * opts.sync_period_s;
        if t > end + 1e-9 {
            break;
        }
        tick += 1;
        let sample = input
            .samples
            .iter()
            .take_while(|s| s.t <= t + 1e-9)
            .last()
            .unwrap_or(first);
        let proposals: Vec<_> = spec
            .metrics
            .iter()
            .map(|m| {
                let pods = pod_metrics(sample, current, m.resource, t, &opts.flags);
                algorithm::replicas_for_metric(current, &pods, m.target, tolerances)
            })
            .collect();
        let proposal = algorithm::combine_metrics(current, &proposals);
        current = algorithm::reconcile(&spec.limits, &opts.flags, &mut state, t, current, proposal);
        out.push((t, current));
    }
    SpecReplay {
        name: spec.name.clone(),
        replicas: out,
    }
}

pub fn replay(input: &ReplayInput, specs: &[HpaSpec], opts: &ReplayOptions) -> ReplayResult {
    ReplayResult {
        sync_period_s: opts.sync_period_s,
        controller: ControllerSettings {
            tolerance: opts.flags.tolerance,
            downscale_stabilization_s: opts.flags.downscale_stabilization_s,
            cpu_initialization_period_s: opts.flags.cpu_initialization_period_s,
            initial_readiness_delay_s: opts.flags.initial_readiness_delay_s,
            assumed_metric_window_s: ASSUMED_METRIC_WINDOW_S,
        },
        actual: input.actual_replicas.clone(),
        specs: specs.iter().map(|s| replay_spec(input, s, opts)).collect(),
    }
}

/// The terminal table: one row per reconcile.
pub fn table(r: &ReplayResult) -> String {
    use std::fmt::Write;
    let mut out = String::from("| t (s) | actual |");
    for s in &r.specs {
        let _ = write!(out, " {} |", s.name);
    }
    out.push_str("\n|---:|---:|");
    for _ in &r.specs {
        out.push_str("---:|");
    }
    out.push('\n');
    let Some(first) = r.specs.first() else {
        return out;
    };
    for (i, (t, _)) in first.replicas.iter().enumerate() {
        let actual = step_at(&r.actual, *t)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "–".into());
        let _ = write!(out, "| {t:.0} | {actual} |");
        for s in &r.specs {
            let _ = write!(out, " {} |", s.replicas[i].1);
        }
        out.push('\n');
    }
    out
}

/// `hpa-replay.html`: the replicas chart and the table.
pub fn html(r: &ReplayResult, input: &ReplayInput) -> String {
    use crate::report::svg::{self, LineChart, Series, escape};
    // The real count holds after its last change: extend the step to the end of the replay.
    let end = input.samples.last().map(|s| s.t).unwrap_or(0.0);
    let mut actual: Vec<(f64, f64)> = r.actual.iter().map(|p| (p.0, p.1 as f64)).collect();
    if let Some(&(t, v)) = actual.last()
        && t < end
    {
        actual.push((end, v));
    }
    let mut series = vec![Series::new("actual", actual).step().color("#333")];
    for (i, s) in r.specs.iter().enumerate() {
        series.push(
            Series::new(
                s.name.clone(),
                s.replicas.iter().map(|p| (p.0, p.1 as f64)).collect(),
            )
            .step()
            .dashed()
            .color(svg::PALETTE[i % svg::PALETTE.len()]),
        );
    }
    let replicas = svg::line_chart(&LineChart {
        title: "Replicas: actual vs. replayed HPA specs".into(),
        y_label: "pods".into(),
        x_label: "time since start".into(),
        series,
        ..Default::default()
    });
    let cpu = svg::line_chart(&LineChart {
        title: "Recorded CPU, total over ready pods".into(),
        y_label: "millicores".into(),
        x_label: "time since start".into(),
        series: vec![Series::new(
            "CPU used",
            input
                .samples
                .iter()
                .map(|s| {
                    (
                        s.t,
                        s.pods
                            .iter()
                            .filter(|p| p.ready)
                            .filter_map(|p| p.cpu_millicores)
                            .sum(),
                    )
                })
                .collect(),
        )],
        ..Default::default()
    });
    let mut table_html = String::from("<table><tr><th>t (s)</th><th>actual</th>");
    for s in &r.specs {
        table_html.push_str(&format!("<th>{}</th>", escape(&s.name)));
    }
    table_html.push_str("</tr>");
    if let Some(first) = r.specs.first() {
        for (i, (t, _)) in first.replicas.iter().enumerate() {
            let actual = step_at(&r.actual, *t)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "–".into());
            table_html.push_str(&format!("<tr><td>{t:.0}</td><td>{actual}</td>"));
            for s in &r.specs {
                table_html.push_str(&format!("<td>{}</td>", s.replicas[i].1));
            }
            table_html.push_str("</tr>");
        }
    }
    table_html.push_str("</table>");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>xiuload HPA replay</title><style>body{{font-family:system-ui,sans-serif;max-width:1180px;margin:0 auto;padding:16px 24px}}table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:3px 10px;text-align:right}}</style></head><body><h1>HPA what-if replay</h1><p>The run's recorded per-pod metrics replayed through each HPA spec every {:.0} s as kube-controller-manager's HPA controller would (tolerance {}, downscale stabilization {:.0} s, CPU initialization period {:.0} s, initial readiness delay {:.0} s). Where a spec's replica count differs from the real one, the recorded load of the live pods is spread evenly over its pods, all ready: start-up time, what the real HPA remembered before the recording and metrics-server's averaging are not known to the replay.</p>{replicas}{cpu}<details><summary>Table</summary>{table_html}</details></body></html>\n",
        r.sync_period_s,
        r.controller.tolerance,
        r.controller.downscale_stabilization_s,
        r.controller.cpu_initialization_period_s,
        r.controller.initial_readiness_delay_s,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpa::spec::parse;

    fn pod(i: usize, cpu: Option<f64>) -> PodSample {
        PodSample {
            name: format!("p{i}"),
            ready: true,
            cpu_millicores: cpu,
            memory_bytes: Some(1e8),
            cpu_request_millicores: 1000.0,
            memory_request_bytes: 1e9,
            phase: Some("Running".into()),
            terminating: false,
            started_s: Some(-3600.0),
            ready_since_s: Some(-3500.0),
        }
    }

    fn sample(t: f64, n: usize, cpu: f64) -> Sample {
        Sample {
            t,
            pods: (0..n).map(|i| pod(i, Some(cpu))).collect(),
        }
    }

    fn input(samples: Vec<Sample>, replicas: u32) -> ReplayInput {
        ReplayInput {
            interval_s: 15.0,
            samples,
            actual_replicas: vec![(0.0, replicas)],
        }
    }

    fn spec_yaml(min: u32, max: u32, target: u32, extra: &str) -> HpaSpec {
        parse(
            Path::new("t.yaml"),
            &format!("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: t{target}}}\nspec:\n  scaleTargetRef: {{kind: Deployment, name: x}}\n  minReplicas: {min}\n  maxReplicas: {max}\n  metrics:\n  - type: Resource\n    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: {target}}}}}\n{extra}"),
        )
        .unwrap()
    }

    fn spec(min: u32, max: u32, target: u32) -> HpaSpec {
        spec_yaml(min, max, target, "")
    }

    fn counts(r: &SpecReplay) -> Vec<u32> {
        r.replicas.iter().map(|p| p.1).collect()
    }

    #[test]
    fn load_is_conserved_when_the_replayed_count_differs() {
        // 2 real pods at 90 % of 1000m for two minutes: 1800m of work.
        let input = input(
            (0..9).map(|i| sample(i as f64 * 15.0, 2, 900.0)).collect(),
            2,
        );
        let r = replay(
            &input,
            &[spec(1, 10, 60), spec(1, 10, 90)],
            &ReplayOptions::default(),
        );
        // Target 60 %: 1800m needs ceil(1800 / 600) = 3 pods, then stays (3 × 60 % = exactly).
        let a = counts(&r.specs[0]);
        assert!(a.iter().all(|&n| n == 3), "{a:?}");
        // Target 90 %: already there.
        assert!(counts(&r.specs[1]).iter().all(|&n| n == 2));
        let t = table(&r);
        assert!(t.contains("| 0 | 2 | 3 | 2 |"), "{t}");
        assert!(html(&r, &input).contains("<svg"));
    }

    // Issue 12 item 7: one pod using its whole request against a 10 % target. Without a
    // behavior block the controller ramps 1 → 4 → 8 → 10 (max(2 × current, 4) per sync); with
    // one (defaults) 1 → 5 → 10.
    #[test]
    fn spike_ramps_as_the_controller_does_with_and_without_behavior() {
        let input = input(
            (0..4).map(|i| sample(i as f64 * 15.0, 1, 1000.0)).collect(),
            1,
        );
        let opts = ReplayOptions::default();
        let plain = replay_spec(&input, &spec(1, 20, 10), &opts);
        assert_eq!(counts(&plain), [4, 8, 10, 10]);
        let with_behavior = replay_spec(&input, &spec_yaml(1, 20, 10, "  behavior: {}\n"), &opts);
        assert_eq!(counts(&with_behavior), [5, 10, 10, 10]);
    }

    // Issue 12 item 8: the first reconcile seeds the window with the count found, so 10 idle
    // pods hold for the whole 5 min window (not 10 → 2 at once), then drop.
    #[test]
    fn idle_pods_hold_for_the_downscale_window() {
        let short = input(
            (0..9).map(|i| sample(i as f64 * 15.0, 10, 10.0)).collect(),
            10,
        );
        let opts = ReplayOptions::default();
        let r = replay_spec(&short, &spec(2, 20, 50), &opts);
        assert!(counts(&r).iter().all(|&n| n == 10), "{:?}", counts(&r));
        let long = input(
            (0..25).map(|i| sample(i as f64 * 15.0, 10, 10.0)).collect(),
            10,
        );
        let r = replay_spec(&long, &spec(2, 20, 50), &opts);
        assert_eq!(r.replicas[19], (285.0, 10));
        assert_eq!(r.replicas[20], (300.0, 2));
        // --downscale-stabilization shortens it.
        let quick = ReplayOptions {
            flags: ControllerFlags {
                downscale_stabilization_s: 60.0,
                ..ControllerFlags::default()
            },
            ..opts
        };
        let r = replay_spec(&long, &spec(2, 20, 50), &quick);
        assert_eq!((r.replicas[3].1, r.replicas[4].1), (10, 2));
    }

    // Issue 12 item 9: a pod being deleted is ignored, and its load is not spread over the
    // others. 2 live pods at 60 % and one draining at 60 %, target 60 %: the HPA holds at 2
    // (spreading 1800m over 2 pods made it 90 % → 3).
    #[test]
    fn a_draining_pod_neither_counts_nor_spreads_its_load() {
        let mut s = sample(0.0, 3, 600.0);
        s.pods[2].terminating = true;
        let input = input(vec![s], 2);
        let r = replay_spec(&input, &spec(1, 10, 60), &ReplayOptions::default());
        assert_eq!(counts(&r), [2]);
        // When the replayed count differs, the draining pod's load stays out of the total too:
        // 1200m over 3 replayed pods = 40 % against 60 %.
        let pods = pod_metrics(
            &input.samples[0],
            3,
            Resource::Cpu,
            0.0,
            &ControllerFlags::default(),
        );
        assert_eq!(pods.len(), 3);
        assert!(
            pods.iter()
                .all(|p| p.usage == Some(400) && p.group == PodGroup::Ready)
        );
    }

    // Issue 12 item 9: a Pending pod (just created by a scale-up) counts as unready (0 % on a
    // scale-up), a Failed one not at all.
    #[test]
    fn pending_pods_are_unready_and_failed_pods_ignored() {
        let mut s = sample(0.0, 4, 900.0);
        s.pods[2] = PodSample {
            phase: Some("Pending".into()),
            ready: false,
            cpu_millicores: None,
            ..pod(2, None)
        };
        s.pods[3].phase = Some("Failed".into());
        let pods = pod_metrics(&s, 3, Resource::Cpu, 0.0, &ControllerFlags::default());
        let groups: Vec<PodGroup> = pods.iter().map(|p| p.group).collect();
        use PodGroup::*;
        assert_eq!(groups, [Ready, Ready, Unready, Ignored]);
        // 2 pods at 90 % + the Pending one at 0 % → 60 % against 50 % → ratio 1.2 → ceil(3.6).
        let proposal = algorithm::replicas_for_metric(
            3,
            &pods,
            algorithm::Target::Utilization(50),
            algorithm::Tolerances::both(0.1),
        );
        assert_eq!(proposal, Ok(4));
    }

    // Issue 12 item 8: an invalid metric (memory utilization on pods without a memory request)
    // blocks the scale-down the CPU metric asks for.
    #[test]
    fn an_invalid_metric_blocks_scale_down() {
        let mut samples: Vec<Sample> = (0..30).map(|i| sample(i as f64 * 15.0, 4, 50.0)).collect();
        for s in &mut samples {
            for p in &mut s.pods {
                p.memory_request_bytes = 0.0;
            }
        }
        let input = input(samples, 4);
        let memory = "  - type: Resource\n    resource: {name: memory, target: {type: Utilization, averageUtilization: 80}}\n";
        let both = spec_yaml(1, 10, 50, memory);
        let r = replay_spec(&input, &both, &ReplayOptions::default());
        assert!(counts(&r).iter().all(|&n| n == 4), "{:?}", counts(&r));
        let cpu_only = replay_spec(&input, &spec(1, 10, 50), &ReplayOptions::default());
        assert_eq!(cpu_only.replicas.last().unwrap().1, 1);
    }

    // Issue 12 item 10: the per-HPA tolerance applies to its direction only.
    #[test]
    fn per_hpa_tolerance_is_used() {
        // 10 pods at 53 % against 50 %: ratio 1.06, inside the default 0.1, outside 0.05.
        let input = input(vec![sample(0.0, 10, 530.0)], 10);
        let opts = ReplayOptions::default();
        assert_eq!(counts(&replay_spec(&input, &spec(1, 20, 50), &opts)), [10]);
        let tight = spec_yaml(
            1,
            20,
            50,
            "  behavior:\n    scaleUp: {tolerance: \"0.05\"}\n",
        );
        assert_eq!(counts(&replay_spec(&input, &tight, &opts)), [11]);
        let loose_flag = ReplayOptions {
            flags: ControllerFlags {
                tolerance: 0.05,
                ..ControllerFlags::default()
            },
            ..opts
        };
        assert_eq!(
            counts(&replay_spec(&input, &spec(1, 20, 50), &loose_flag)),
            [11]
        );
    }

    // Files written by earlier versions (and by hand) have none of the newer pod fields.
    #[test]
    fn older_input_files_still_parse_and_replay() {
        let json = r#"{"interval_s": 15, "samples": [{"t": 0.0, "pods": [
            {"name": "a", "ready": true, "cpu_millicores": 900.0, "memory_bytes": null,
             "cpu_request_millicores": 1000, "memory_request_bytes": 0}]}],
            "actual_replicas": [[0.0, 1]]}"#;
        let input: ReplayInput = serde_json::from_str(json).unwrap();
        assert_eq!(input.samples[0].pods[0].phase, None);
        let r = replay_spec(&input, &spec(1, 10, 50), &ReplayOptions::default());
        assert_eq!(counts(&r), [2]);
        // Written back, the absent fields stay absent.
        let out = serde_json::to_string(&input).unwrap();
        assert!(
            !out.contains("phase") && !out.contains("terminating"),
            "{out}"
        );
    }

    #[test]
    fn step_function_lookup() {
        let pts = [(0.0, 1), (10.0, 3)];
        assert_eq!(step_at(&pts, -1.0), None);
        assert_eq!(step_at(&pts, 9.9), Some(1));
        assert_eq!(step_at(&pts, 10.0), Some(3));
    }
}

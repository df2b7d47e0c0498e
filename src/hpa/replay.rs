//! Replays a run's recorded per-pod metrics through HPA specs: "what would this HPA have done
//! with the load we really had?".
//!
//! Model: the HPA controller reconciles every `sync_period_s` (kube-controller-manager's
//! `--horizontal-pod-autoscaler-sync-period`, 15 s by default) using the latest sample. While the
//! simulated replica count equals the real one, the recorded pods are used as they are (readiness
//! and missing metrics included). When it differs, the recorded total usage of all pods (pods
//! without a sample counted at the average of the others) is spread evenly over the simulated
//! replicas, all ready: the same audience served by more or fewer pods.
//! That assumes usage scales with viewers and ignores per-pod fixed costs and pod start-up time.

use super::algorithm::{self, HpaState, PodMetric, Tolerances};
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodSample {
    pub name: String,
    pub ready: bool,
    pub cpu_millicores: Option<f64>,
    pub memory_bytes: Option<f64>,
    pub cpu_request_millicores: f64,
    pub memory_request_bytes: f64,
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

/// The replicas one spec would have had.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SpecReplay {
    pub name: String,
    /// (t, replicas) at each reconcile.
    pub replicas: Vec<(f64, u32)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplayResult {
    pub sync_period_s: f64,
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

fn pod_metrics(sample: &Sample, replicas: u32, resource: Resource) -> Vec<PodMetric> {
    let get = |p: &PodSample| match resource {
        Resource::Cpu => (p.cpu_millicores, p.cpu_request_millicores),
        Resource::Memory => (p.memory_bytes, p.memory_request_bytes),
    };
    // Only CPU looks at readiness in the controller.
    let ready = |p: &PodSample| resource == Resource::Memory || p.ready;
    if replicas as usize == sample.pods.len() {
        return sample
            .pods
            .iter()
            .map(|p| {
                let (usage, request) = get(p);
                PodMetric {
                    ready: ready(p),
                    usage,
                    request,
                }
            })
            .collect();
    }
    // The work the real pods did: every pod with a sample counts (a pod not yet ready may still
    // serve a little), and pods without a sample are assumed to have done the average.
    let measured: Vec<(f64, f64)> = sample
        .pods
        .iter()
        .filter_map(|p| {
            let (u, r) = get(p);
            u.map(|u| (u, r))
        })
        .collect();
    if measured.is_empty() || replicas == 0 {
        return Vec::new();
    }
    let total: f64 = measured.iter().map(|m| m.0).sum::<f64>() * sample.pods.len() as f64
        / measured.len() as f64;
    let request = measured.iter().map(|m| m.1).sum::<f64>() / measured.len() as f64;
    vec![
        PodMetric {
            ready: true,
            usage: Some(total / replicas as f64),
            request,
        };
        replicas as usize
    ]
}

/// Replays one spec. Starts from the real replica count at the first sample (or the number of
/// recorded pods), as the HPA would have inherited it.
pub fn replay_spec(input: &ReplayInput, spec: &HpaSpec, sync_period_s: f64) -> SpecReplay {
    let first = &input.samples[0];
    let end = input.samples.last().map(|s| s.t).unwrap_or(first.t);
    let mut current = step_at(&input.actual_replicas, first.t)
        .or_else(|| input.actual_replicas.first().map(|p| p.1))
        .unwrap_or(first.pods.len() as u32);
    let mut state = HpaState::default();
    let mut out = Vec::new();
    let mut t = first.t;
    while t <= end + 1e-9 {
        let sample = input
            .samples
            .iter()
            .take_while(|s| s.t <= t + 1e-9)
            .last()
            .unwrap_or(first);
        let proposals: Vec<Option<u32>> = spec
            .metrics
            .iter()
            .map(|m| {
                let pods = pod_metrics(sample, current, m.resource);
                // Each direction has its own tolerance; the ratio decides which applies.
                let tol = Tolerances {
                    scale_up: spec.limits.scale_up.tolerance,
                    scale_down: spec.limits.scale_down.tolerance,
                };
                algorithm::replicas_for_metric(current, &pods, m.target, tol)
            })
            .collect();
        let proposal = algorithm::combine_metrics(&proposals);
        current = algorithm::reconcile(&spec.limits, &mut state, t, current, proposal);
        out.push((t, current));
        t += sync_period_s;
    }
    SpecReplay {
        name: spec.name.clone(),
        replicas: out,
    }
}

pub fn replay(input: &ReplayInput, specs: &[HpaSpec], sync_period_s: f64) -> ReplayResult {
    ReplayResult {
        sync_period_s,
        actual: input.actual_replicas.clone(),
        specs: specs
            .iter()
            .map(|s| replay_spec(input, s, sync_period_s))
            .collect(),
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
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>xiuload HPA replay</title><style>body{{font-family:system-ui,sans-serif;max-width:1180px;margin:0 auto;padding:16px 24px}}table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:3px 10px;text-align:right}}</style></head><body><h1>HPA what-if replay</h1><p>The run's recorded per-pod metrics replayed through each HPA spec every {:.0} s (the Kubernetes HPA algorithm: <a href=\"https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/\">docs</a>). Where a spec's replica count differs from the real one, the recorded load is spread evenly over its pods.</p>{replicas}{cpu}<details><summary>Table</summary>{table_html}</details></body></html>\n",
        r.sync_period_s
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpa::spec::parse;

    fn sample(t: f64, n: usize, cpu: f64) -> Sample {
        Sample {
            t,
            pods: (0..n)
                .map(|i| PodSample {
                    name: format!("p{i}"),
                    ready: true,
                    cpu_millicores: Some(cpu),
                    memory_bytes: Some(1e8),
                    cpu_request_millicores: 1000.0,
                    memory_request_bytes: 1e9,
                })
                .collect(),
        }
    }

    fn spec(min: u32, max: u32, target: u32) -> HpaSpec {
        parse(
            Path::new("t.yaml"),
            &format!("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: t{target}}}\nspec:\n  scaleTargetRef: {{kind: Deployment, name: x}}\n  minReplicas: {min}\n  maxReplicas: {max}\n  metrics:\n  - type: Resource\n    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: {target}}}}}\n"),
        )
        .unwrap()
    }

    #[test]
    fn load_is_conserved_when_the_replayed_count_differs() {
        // 2 real pods at 90 % of 1000m for two minutes: 1800m of work.
        let input = ReplayInput {
            interval_s: 15.0,
            samples: (0..9).map(|i| sample(i as f64 * 15.0, 2, 900.0)).collect(),
            actual_replicas: vec![(0.0, 2)],
        };
        let r = replay(&input, &[spec(1, 10, 60), spec(1, 10, 90)], 15.0);
        // Target 60 %: 1800m needs ceil(1800 / 600) = 3 pods, then stays (3 × 60 % = exactly).
        let a: Vec<u32> = r.specs[0].replicas.iter().map(|p| p.1).collect();
        assert_eq!(a[0], 3);
        assert!(a.iter().all(|&n| n == 3), "{a:?}");
        // Target 90 %: already there.
        assert!(r.specs[1].replicas.iter().all(|p| p.1 == 2));
        let t = table(&r);
        assert!(t.contains("| 0 | 2 | 3 | 2 |"), "{t}");
        assert!(html(&r, &input).contains("<svg"));
    }

    #[test]
    fn step_function_lookup() {
        let pts = [(0.0, 1), (10.0, 3)];
        assert_eq!(step_at(&pts, -1.0), None);
        assert_eq!(step_at(&pts, 9.9), Some(1));
        assert_eq!(step_at(&pts, 10.0), Some(3));
    }
}

//! autoscaling/v2 HorizontalPodAutoscaler YAML → the replay's parameters, with the API server's
//! defaults filled in as it fills them (`SetDefaults_HorizontalPodAutoscaler`): minReplicas 1,
//! CPU at 80 % when no metric is given, and, only when a `behavior` block exists, the default
//! rules for whatever it leaves out. An HPA without `behavior` keeps none: the controller then
//! takes its older path (see [`super::algorithm`]).

use super::algorithm::{Behavior, Limits, Policy, PolicyKind, Rules, SelectPolicy, Target};
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscaler, MetricSpec};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read HPA spec {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an autoscaling/v2 HorizontalPodAutoscaler: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Unsupported { path: PathBuf, message: String },
}

/// Which recorded resource a metric reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricRule {
    pub resource: Resource,
    /// Utilization in percent, or an average value in milli-units (millicores for CPU,
    /// milli-bytes for memory), as the controller compares them.
    pub target: Target,
}

/// One HPA spec ready to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    /// `metadata.name`, else the file name.
    pub name: String,
    pub limits: Limits,
    pub metrics: Vec<MetricRule>,
}

/// Parses a Kubernetes quantity ("500m", "1.5", "512Mi", "2G") into a plain number.
pub fn parse_quantity(q: &str) -> Option<f64> {
    crate::k8s::quantity::parse(q)
}

fn rules(given: Option<&HPAScalingRules>, default: Rules, path: &Path) -> Result<Rules, SpecError> {
    let Some(g) = given else {
        return Ok(default);
    };
    let unsupported = |message: String| SpecError::Unsupported {
        path: path.to_path_buf(),
        message,
    };
    let select = match g.select_policy.as_deref() {
        None | Some("Max") => SelectPolicy::Max,
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        Some(other) => return Err(unsupported(format!("unknown selectPolicy {other:?}"))),
    };
    let policies = match &g.policies {
        None => default.policies.clone(),
        // The API server rejects an empty list ("must specify at least one Policy").
        Some(ps) if ps.is_empty() => {
            return Err(unsupported(
                "behavior policies: at least one policy is required".into(),
            ));
        }
        Some(ps) => ps
            .iter()
            .map(|p| {
                let kind = match p.type_.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    other => return Err(unsupported(format!("unknown policy type {other:?}"))),
                };
                Ok(Policy {
                    kind,
                    value: p.value.max(0) as u32,
                    period_s: p.period_seconds.max(1) as f64,
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let tolerance = match &g.tolerance {
        None => default.tolerance,
        Some(q) => Some(
            parse_quantity(&q.0)
                .filter(|t| *t >= 0.0)
                .ok_or_else(|| unsupported(format!("bad tolerance {:?}", q.0)))?,
        ),
    };
    Ok(Rules {
        stabilization_window_s: g
            .stabilization_window_seconds
            .map(|s| s.max(0) as f64)
            .or(default.stabilization_window_s),
        policies,
        select,
        tolerance,
    })
}

fn metric(m: &MetricSpec, path: &Path) -> Result<MetricRule, SpecError> {
    let unsupported = |message: String| SpecError::Unsupported {
        path: path.to_path_buf(),
        message,
    };
    // ContainerResource is read like Resource: xiu pods run one container that matters.
    let (name, target) = match (m.type_.as_str(), &m.resource, &m.container_resource) {
        ("Resource", Some(r), _) => (r.name.as_str(), &r.target),
        ("ContainerResource", _, Some(r)) => (r.name.as_str(), &r.target),
        (other, _, _) => {
            return Err(unsupported(format!(
                "metric type {other:?} cannot be replayed: only Resource/ContainerResource cpu and memory were recorded"
            )));
        }
    };
    let resource = match name {
        "cpu" => Resource::Cpu,
        "memory" => Resource::Memory,
        other => return Err(unsupported(format!("resource {other:?} was not recorded"))),
    };
    let target = match (
        target.type_.as_str(),
        target.average_utilization,
        &target.average_value,
    ) {
        ("Utilization", Some(u), _) if u > 0 => Target::Utilization(u),
        ("AverageValue", _, Some(q)) => {
            let v = parse_quantity(&q.0)
                .filter(|v| *v > 0.0)
                .ok_or_else(|| unsupported(format!("bad quantity {:?}", q.0)))?;
            // The controller compares `MilliValue()`s, which round up.
            Target::AverageValue((v * 1000.0 - 1e-6).ceil() as i64)
        }
        (t, _, _) => {
            return Err(unsupported(format!(
                "target type {t:?} without its value cannot be replayed"
            )));
        }
    };
    Ok(MetricRule { resource, target })
}

/// Parses one HPA YAML file. Errors name the file.
pub fn load(path: &Path) -> Result<HpaSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<HpaSpec, SpecError> {
    let hpa: HorizontalPodAutoscaler =
        serde_yaml_ng::from_str(text).map_err(|e| SpecError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let spec = hpa.spec.ok_or_else(|| SpecError::Parse {
        path: path.to_path_buf(),
        message: "no spec".into(),
    })?;
    let behavior = match &spec.behavior {
        None => None,
        Some(b) => Some(Behavior {
            scale_up: rules(b.scale_up.as_ref(), Rules::default_scale_up(), path)?,
            scale_down: rules(b.scale_down.as_ref(), Rules::default_scale_down(), path)?,
        }),
    };
    let limits = Limits {
        min_replicas: spec.min_replicas.unwrap_or(1).max(0) as u32,
        max_replicas: spec.max_replicas.max(0) as u32,
        behavior,
    };
    let metrics = match &spec.metrics {
        // The API server's default: CPU at 80 % utilization.
        None => vec![MetricRule {
            resource: Resource::Cpu,
            target: Target::Utilization(80),
        }],
        Some(ms) if ms.is_empty() => vec![MetricRule {
            resource: Resource::Cpu,
            target: Target::Utilization(80),
        }],
        Some(ms) => ms
            .iter()
            .map(|m| metric(m, path))
            .collect::<Result<_, _>>()?,
    };
    let name = hpa.metadata.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "hpa".into())
    });
    Ok(HpaSpec {
        name,
        limits,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("512Mi"), Some(512.0 * 1048576.0));
        assert_eq!(parse_quantity("1.5G"), Some(1.5e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("12x"), None);
    }

    #[test]
    fn full_spec_parses_with_defaults_for_what_is_left_out() {
        let yaml = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: edge-fast}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: xiu-edge}
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 256Mi}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 60
      selectPolicy: Min
      policies:
      - {type: Pods, value: 1, periodSeconds: 30}
"#;
        let s = parse(Path::new("edge.yaml"), yaml).unwrap();
        assert_eq!(s.name, "edge-fast");
        assert_eq!((s.limits.min_replicas, s.limits.max_replicas), (2, 10));
        let b = s.limits.behavior.as_ref().expect("behavior given");
        assert_eq!(b.scale_up, Rules::default_scale_up());
        assert_eq!(b.scale_down.stabilization_window_s, Some(60.0));
        assert_eq!(b.scale_down.select, SelectPolicy::Min);
        assert_eq!(b.scale_down.policies.len(), 1);
        assert_eq!(s.metrics[0].target, Target::Utilization(60));
        assert_eq!(
            s.metrics[1].target,
            Target::AverageValue(256 * 1048576 * 1000)
        );
    }

    #[test]
    fn minimal_spec_gets_cpu_80_and_default_behavior() {
        let yaml = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {}\nspec:\n  scaleTargetRef: {kind: Deployment, name: x}\n  maxReplicas: 5\n";
        let s = parse(Path::new("/x/minimal.yaml"), yaml).unwrap();
        assert_eq!(s.name, "minimal");
        assert_eq!(s.limits.min_replicas, 1);
        // No behavior block: none is invented (the controller's older path applies).
        assert_eq!(s.limits.behavior, None);
        assert_eq!(
            s.metrics,
            [MetricRule {
                resource: Resource::Cpu,
                target: Target::Utilization(80)
            }]
        );
    }

    // Item 10: the per-HPA tolerance (autoscaling/v2, Kubernetes 1.33+) is read per direction;
    // a behavior block with only scaleUp gets the scale-down defaults with no window, so the
    // controller's --downscale-stabilization applies.
    #[test]
    fn behavior_defaults_and_per_direction_tolerance() {
        let yaml = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: t}
spec:
  scaleTargetRef: {kind: Deployment, name: x}
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: AverageValue, averageValue: 250m}}
  behavior:
    scaleUp:
      tolerance: "0.05"
"#;
        let s = parse(Path::new("t.yaml"), yaml).unwrap();
        let b = s.limits.behavior.as_ref().unwrap();
        assert_eq!(b.scale_up.tolerance, Some(0.05));
        assert_eq!(b.scale_up.stabilization_window_s, Some(0.0));
        assert_eq!(b.scale_down, Rules::default_scale_down());
        assert_eq!(b.scale_down.stabilization_window_s, None);
        assert_eq!(s.metrics[0].target, Target::AverageValue(250));
        let empty = yaml.replace("tolerance: \"0.05\"", "policies: []");
        let e = parse(Path::new("t.yaml"), &empty).unwrap_err();
        assert!(e.to_string().contains("at least one policy"), "{e}");
    }

    #[test]
    fn errors_name_the_file() {
        let e = parse(Path::new("bad.yaml"), "spec: [").unwrap_err();
        assert!(e.to_string().contains("bad.yaml"), "{e}");
        let yaml = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {}\nspec:\n  scaleTargetRef: {kind: Deployment, name: x}\n  maxReplicas: 5\n  metrics:\n  - type: External\n    external: {metric: {name: q}, target: {type: Value, value: '1'}}\n";
        let e = parse(Path::new("ext.yaml"), yaml).unwrap_err();
        assert!(e.to_string().contains("ext.yaml") && e.to_string().contains("External"));
    }
}

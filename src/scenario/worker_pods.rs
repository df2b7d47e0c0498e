//! The scenario's `[distributed]` section: the worker pods of the Kubernetes Indexed Job a run is
//! split over (README "Running bigger than one machine"), with their defaults.
//!
//! Types only, below the model that holds them; what the section must satisfy against the rest
//! of the scenario is checked in `scenario::distributed`, which reads the whole scenario.

use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The registry and name deploy/ gives the xiuload image (deploy/base/kustomization.yaml); the
/// tag is this build's version, so a coordinator starts workers of its own version.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/example/xiuload";

/// Where the workers listen, as `xiuload worker --listen` does by default.
pub const DEFAULT_PORT: u16 = 9470;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DistributedSection {
    /// How many worker pods share the run (`xiuload run --workers N` overrides it).
    pub workers: u32,
    /// Where the Job goes; default: the kubeconfig context's namespace.
    pub namespace: Option<String>,
    /// The worker image; default: the xiuload image this version was built for.
    #[serde(default = "default_image")]
    pub image: String,
    /// Requests and limits of each worker's container.
    #[serde(default = "default_resources")]
    pub resources: Resources,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// How workers are spread over nodes (default: evenly over hosts, as a preference).
    #[serde(default)]
    pub spread: Spread,
    /// The workers' service account; they call no API, so the namespace's default is enough.
    pub service_account: Option<String>,
    /// How long every worker may take to be scheduled, started and ready.
    #[serde(default = "default_schedule_timeout")]
    pub schedule_timeout: HumanDuration,
    /// The port workers listen on, reached through the API server's pod proxy.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Where the workers' pods find the publish token `[target].publish_token_env` names
    /// (default: deploy/'s Secret `xiu-publish-token`, key `token`).
    pub publish_token_secret: Option<SecretKey>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Toleration {
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    #[serde(default = "default_operator")]
    pub operator: String,
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; none: every effect.
    pub effect: Option<String>,
    pub toleration_seconds: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// `false`: no spread constraint at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_topology_key")]
    pub topology_key: String,
    #[serde(default = "default_max_skew")]
    pub max_skew: i32,
    /// `schedule_anyway` (default: spread where possible, never leave a worker Pending for it)
    /// or `do_not_schedule`.
    #[serde(default)]
    pub when_unsatisfiable: WhenUnsatisfiable,
}

impl Default for Spread {
    fn default() -> Self {
        Spread {
            enabled: true,
            topology_key: default_topology_key(),
            max_skew: default_max_skew(),
            when_unsatisfiable: WhenUnsatisfiable::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenUnsatisfiable {
    #[default]
    ScheduleAnyway,
    DoNotSchedule,
}

impl WhenUnsatisfiable {
    /// The Kubernetes spelling.
    pub fn as_kubernetes(&self) -> &'static str {
        match self {
            WhenUnsatisfiable::ScheduleAnyway => "ScheduleAnyway",
            WhenUnsatisfiable::DoNotSchedule => "DoNotSchedule",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretKey {
    pub name: String,
    pub key: String,
}

impl DistributedSection {
    /// A section with defaults for everything but the worker count (`xiuload run --workers N`
    /// on a scenario without `[distributed]`).
    pub fn with_workers(workers: u32) -> DistributedSection {
        DistributedSection {
            workers,
            namespace: None,
            image: default_image(),
            resources: default_resources(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            spread: Spread::default(),
            service_account: None,
            schedule_timeout: default_schedule_timeout(),
            port: default_port(),
            publish_token_secret: None,
        }
    }

    /// The Secret the workers take the publish token from.
    pub fn publish_token_secret(&self) -> SecretKey {
        self.publish_token_secret.clone().unwrap_or(SecretKey {
            name: "xiu-publish-token".into(),
            key: "token".into(),
        })
    }
}

pub fn default_image() -> String {
    format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// One core and 1 GiB holds a few hundred HTTP-FLV viewers (README "Sizing"); the memory limit
/// keeps a runaway worker from taking its node down with it. No CPU limit: throttling a load
/// generator makes it measure itself.
fn default_resources() -> Resources {
    Resources {
        requests: BTreeMap::from([
            ("cpu".to_string(), "1".to_string()),
            ("memory".to_string(), "1Gi".to_string()),
        ]),
        limits: BTreeMap::from([("memory".to_string(), "2Gi".to_string())]),
    }
}

fn default_operator() -> String {
    "Equal".to_string()
}
fn default_true() -> bool {
    true
}
fn default_topology_key() -> String {
    "kubernetes.io/hostname".to_string()
}
fn default_max_skew() -> i32 {
    1
}
fn default_schedule_timeout() -> HumanDuration {
    HumanDuration::secs(300)
}
fn default_port() -> u16 {
    DEFAULT_PORT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_everything_but_the_worker_count() {
        let d: DistributedSection = toml::from_str("workers = 4").unwrap();
        assert_eq!(d.workers, 4);
        assert_eq!(d.namespace, None);
        assert_eq!(
            d.image,
            format!("ghcr.io/example/xiuload:{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(d.port, 9470);
        assert_eq!(d.schedule_timeout.0.as_secs(), 300);
        assert!(d.spread.enabled);
        assert_eq!(d.spread.topology_key, "kubernetes.io/hostname");
        assert_eq!(
            d.spread.when_unsatisfiable.as_kubernetes(),
            "ScheduleAnyway"
        );
        assert_eq!(d.resources.requests["cpu"], "1");
        assert_eq!(d.publish_token_secret().name, "xiu-publish-token");
    }

    #[test]
    fn the_workers_flag_section_has_the_file_defaults() {
        // `--workers N` on a scenario without `[distributed]` must start the same pods as a
        // file saying only `workers = N`.
        let from_file: DistributedSection = toml::from_str("workers = 3").unwrap();
        assert_eq!(DistributedSection::with_workers(3), from_file);
    }
}

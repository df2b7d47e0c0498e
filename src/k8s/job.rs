//! The Kubernetes objects of a distributed run, built as k8s-openapi types. Pure: `xiuload render`
//! prints them, the coordinator creates them (see [`super::workers`]).
//!
//! - a ConfigMap holding the scenario file (and the CA file its `[target.tls]` names), mounted
//!   read-only in every worker;
//! - an `Indexed` Job of N workers: pod `i` gets `JOB_COMPLETION_INDEX=i` and runs shard `i` of N.
//!   A worker that fails is not replaced (`backoffLimitPerIndex: 0`): a new one would start with
//!   no time zero, and the run already counts the old one as lost. A worker that refuses its
//!   input (exit 2) fails the whole Job at once. `activeDeadlineSeconds` and
//!   `ttlSecondsAfterFinished` clean up after a coordinator that died.
//!
//! Every object carries `xiuload.io/run-id`, so one run's objects are found (and deleted) by it.
//! The pod runs under Pod Security `restricted`.

use crate::scenario::worker_pods::DistributedSection;
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, Toleration,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The label every object of a run carries, with the run's id.
pub const RUN_ID_LABEL: &str = "xiuload.io/run-id";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const WORKER_NAME: &str = "xiuload-worker";
/// The annotation (and, since Kubernetes 1.28, label) an Indexed Job puts on each pod.
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// How `xiuload lint` is told a referenced Secret is created outside the manifests.
const EXTERNAL_SECRETS_ANNOTATION: &str = "xiuload.dev/external-secrets";
/// The worker container's name (pod failure policy, logs).
pub const CONTAINER: &str = "worker";
/// Where the ConfigMap is mounted, and the scenario in it.
pub const SCENARIO_DIR: &str = "/scenario";
pub const SCENARIO_KEY: &str = "scenario.toml";
const CA_KEY: &str = "ca.pem";
/// The image's user (deploy/image/Dockerfile.xiuload).
const IMAGE_UID: i64 = 10001;
/// Workers exit 2 on input they refuse (a scenario their version cannot read): no other worker
/// of the Job would do better, so the Job fails at once.
const BAD_INPUT_EXIT: i32 = 2;
/// A worker needs this long after its planned length: preparing, the last windows, its linger
/// for a coordinator that was away (`run::worker::LINGER`), and slack.
const DEADLINE_MARGIN: Duration = Duration::from_secs(600);
/// Finished Jobs stay this long (for `--keep` and a coordinator that died: logs to read).
const TTL_AFTER_FINISHED: Duration = Duration::from_secs(3600);
/// A worker given no start within the scheduling time (plus this) exits by itself.
const START_GRACE: Duration = Duration::from_secs(120);
/// Job names become pod name prefixes (`<job>-<index>-<5 random>`): kept well under 63.
const MAX_NAME: usize = 52;

/// What a distributed run's objects are made from.
#[derive(Debug, Clone)]
pub struct JobInput<'a> {
    pub run_id: &'a str,
    /// Resolved by the coordinator; `None` leaves it to `kubectl apply -n` (render).
    pub namespace: Option<&'a str>,
    pub section: &'a DistributedSection,
    /// The scenario file's text, byte for byte: the workers' errors then name its real lines.
    pub scenario_text: &'a str,
    /// The scenario's planned length.
    pub planned: Duration,
    /// `[target].publish_token_env`: the variable the workers' publishers read.
    pub publish_token_env: Option<&'a str>,
    /// `[target.tls].ca_file` as the scenario names it, and its content.
    pub ca_file: Option<(&'a Path, &'a str)>,
}

/// The run id as a label value and the objects' name: lowercase letters, digits and `-`.
pub fn label_value(run_id: &str) -> String {
    let cleaned: String = run_id
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    let cut: String = cleaned.chars().take(MAX_NAME - "xiuload-".len()).collect();
    cut.trim_end_matches('-').to_string()
}

/// The ConfigMap's and the Job's name.
pub fn object_name(run_id: &str) -> String {
    format!("xiuload-{}", label_value(run_id))
}

/// `xiuload.io/run-id=<id>`: selects the run's pods.
pub fn run_selector(run_id: &str) -> String {
    format!("{RUN_ID_LABEL}={}", label_value(run_id))
}

fn labels(run_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), WORKER_NAME.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "xiuload".to_string(),
        ),
        (RUN_ID_LABEL.to_string(), label_value(run_id)),
    ])
}

fn meta(input: &JobInput<'_>) -> ObjectMeta {
    ObjectMeta {
        name: Some(object_name(input.run_id)),
        namespace: input.namespace.map(str::to_string),
        labels: Some(labels(input.run_id)),
        ..Default::default()
    }
}

/// Where the CA file is mounted in the worker: the path the scenario names (the container's
/// working directory is `/`), so the scenario needs no change.
fn ca_mount_path(path: &Path) -> PathBuf {
    Path::new("/").join(path)
}

pub fn config_map(input: &JobInput<'_>) -> ConfigMap {
    let mut data = BTreeMap::from([(SCENARIO_KEY.to_string(), input.scenario_text.to_string())]);
    if let Some((_, pem)) = input.ca_file {
        data.insert(CA_KEY.to_string(), pem.to_string());
    }
    ConfigMap {
        metadata: meta(input),
        data: Some(data),
        ..Default::default()
    }
}

/// `activeDeadlineSeconds`: scheduling, the plan and the margin; nothing runs past it.
pub fn active_deadline(input: &JobInput<'_>) -> Duration {
    input.section.schedule_timeout.0 + START_GRACE + input.planned + DEADLINE_MARGIN
}

pub fn job(input: &JobInput<'_>) -> Job {
    let d = input.section;
    let workers = d.workers as i32;
    let mut template_labels = labels(input.run_id);
    template_labels.insert(
        "app.kubernetes.io/component".into(),
        "load-generator".into(),
    );
    let mut metadata = meta(input);
    if input.publish_token_env.is_some() {
        // The token Secret is the operator's (deploy/README.md "Secrets"), never in a render:
        // `xiuload lint` reads this as "created elsewhere, on purpose".
        metadata.annotations = Some(BTreeMap::from([(
            EXTERNAL_SECRETS_ANNOTATION.to_string(),
            format!(
                "{}: the operator creates it (deploy/README.md, Secrets)",
                d.publish_token_secret().name
            ),
        )]));
    }
    Job {
        metadata,
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(workers),
            parallelism: Some(workers),
            backoff_limit_per_index: Some(0),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: Some(CONTAINER.into()),
                        operator: "In".into(),
                        values: vec![BAD_INPUT_EXIT],
                    }),
                    on_pod_conditions: None,
                }],
            }),
            active_deadline_seconds: Some(active_deadline(input).as_secs() as i64),
            ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED.as_secs() as i32),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(template_labels),
                    ..Default::default()
                }),
                spec: Some(pod_spec(input)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A volume of one key of the run's ConfigMap.
fn run_config_map_volume(name: &str, run_id: &str, key: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: object_name(run_id),
            items: Some(vec![KeyToPath {
                key: key.into(),
                path: key.into(),
                mode: None,
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_spec(input: &JobInput<'_>) -> PodSpec {
    let d = input.section;
    let mut volumes = vec![
        run_config_map_volume("scenario", input.run_id, SCENARIO_KEY),
        // The root filesystem is read-only; anything that wants a scratch file gets /tmp.
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("64Mi".into())),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if input.ca_file.is_some() {
        volumes.push(run_config_map_volume("ca", input.run_id, CA_KEY));
    }
    PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: d.service_account.clone(),
        // Workers call no API: no token in their pods.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        node_selector: (!d.node_selector.is_empty()).then(|| d.node_selector.clone()),
        tolerations: (!d.tolerations.is_empty()).then(|| {
            d.tolerations
                .iter()
                .map(|t| Toleration {
                    key: t.key.clone(),
                    operator: Some(t.operator.clone()),
                    value: t.value.clone(),
                    effect: t.effect.clone(),
                    toleration_seconds: t.toleration_seconds,
                })
                .collect()
        }),
        topology_spread_constraints: d.spread.enabled.then(|| {
            vec![TopologySpreadConstraint {
                max_skew: d.spread.max_skew,
                topology_key: d.spread.topology_key.clone(),
                when_unsatisfiable: d.spread.when_unsatisfiable.as_kubernetes().into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        RUN_ID_LABEL.to_string(),
                        label_value(input.run_id),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(IMAGE_UID),
            run_as_group: Some(IMAGE_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        containers: vec![container(input)],
        volumes: Some(volumes),
        ..Default::default()
    }
}

fn container(input: &JobInput<'_>) -> Container {
    let d = input.section;
    let start_timeout = d.schedule_timeout.0 + START_GRACE;
    let mut env = vec![EnvVar {
        name: "XIULOAD_WORKERS".into(),
        value: Some(d.workers.to_string()),
        value_from: None,
    }];
    if let Some(name) = input.publish_token_env {
        let secret = d.publish_token_secret();
        env.push(EnvVar {
            name: name.to_string(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name,
                    key: secret.key,
                    optional: Some(false),
                }),
                ..Default::default()
            }),
        });
    }
    let mut mounts = vec![
        VolumeMount {
            name: "scenario".into(),
            mount_path: SCENARIO_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    ];
    if let Some((path, _)) = input.ca_file {
        mounts.push(VolumeMount {
            name: "ca".into(),
            mount_path: ca_mount_path(path).display().to_string(),
            sub_path: Some(CA_KEY.into()),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let quantities = |m: &BTreeMap<String, String>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect()
        })
    };
    Container {
        name: CONTAINER.into(),
        image: Some(d.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        // A relative `ca_file` is mounted below `/` (see `ca_mount_path`): resolve it there
        // whatever the image's WORKDIR.
        working_dir: Some("/".into()),
        args: Some(vec![
            "worker".into(),
            format!("{SCENARIO_DIR}/{SCENARIO_KEY}"),
            "--listen".into(),
            format!("0.0.0.0:{}", d.port),
            "--start-timeout".into(),
            format!("{}s", start_timeout.as_secs()),
        ]),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(d.port),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/readyz".into()),
                port: IntOrString::Int(i32::from(d.port)),
                ..Default::default()
            }),
            period_seconds: Some(2),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: quantities(&d.resources.requests),
            limits: quantities(&d.resources.limits),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// Both objects as one YAML stream (`---` between), with `apiVersion` and `kind` set.
pub fn to_yaml(config_map: &ConfigMap, job: &Job) -> Result<String, serde_yaml_ng::Error> {
    Ok(format!(
        "---\n{}---\n{}",
        serde_yaml_ng::to_string(config_map)?,
        serde_yaml_ng::to_string(job)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::worker_pods::{DistributedSection, SecretKey};

    fn section(workers: u32) -> DistributedSection {
        let mut d = DistributedSection::with_workers(workers);
        d.namespace = Some("load".into());
        d
    }

    fn input<'a>(d: &'a DistributedSection) -> JobInput<'a> {
        JobInput {
            run_id: "Staging Distributed-20261206-100000",
            namespace: Some("load"),
            section: d,
            scenario_text: "[run]\nduration = \"60s\"\n",
            planned: Duration::from_secs(60),
            publish_token_env: None,
            ca_file: None,
        }
    }

    fn value<T: serde::Serialize>(object: &T) -> serde_json::Value {
        serde_json::to_value(object).unwrap()
    }

    #[test]
    fn names_and_labels_are_kubernetes_safe_and_tie_every_object_to_the_run() {
        assert_eq!(
            label_value("Staging Distributed-20261206-100000"),
            "staging-distributed-20261206-100000"
        );
        let long = label_value(&"a".repeat(200));
        assert_eq!(object_name(&"a".repeat(200)).len(), MAX_NAME);
        assert!(long.len() <= 63);
        assert_eq!(label_value("--x__y--"), "x--y");
        let d = section(3);
        let i = input(&d);
        for object in [value(&config_map(&i)), value(&job(&i))] {
            assert_eq!(
                object["metadata"]["labels"][RUN_ID_LABEL],
                "staging-distributed-20261206-100000"
            );
            assert_eq!(object["metadata"]["labels"][NAME_LABEL], WORKER_NAME);
            assert_eq!(
                object["metadata"]["name"],
                "xiuload-staging-distributed-20261206-100000"
            );
            assert_eq!(object["metadata"]["namespace"], "load");
        }
        let j = value(&job(&i));
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"][RUN_ID_LABEL],
            "staging-distributed-20261206-100000"
        );
        assert_eq!(
            run_selector("Staging Distributed-20261206-100000"),
            "xiuload.io/run-id=staging-distributed-20261206-100000"
        );
    }

    #[test]
    fn the_job_is_indexed_one_pod_per_worker_none_replaced_and_bounded_in_time() {
        let d = section(5);
        let j = value(&job(&input(&d)));
        let spec = &j["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(spec["completions"], 5);
        assert_eq!(spec["parallelism"], 5);
        assert_eq!(spec["backoffLimitPerIndex"], 0);
        assert_eq!(spec["podFailurePolicy"]["rules"][0]["action"], "FailJob");
        assert_eq!(
            spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"],
            serde_json::json!([2])
        );
        // 5 min scheduling + 2 min start grace + 60 s plan + 10 min margin.
        assert_eq!(spec["activeDeadlineSeconds"], 300 + 120 + 60 + 600);
        assert_eq!(spec["ttlSecondsAfterFinished"], 3600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let c = &pod["containers"][0];
        assert_eq!(
            c["args"],
            serde_json::json!([
                "worker",
                "/scenario/scenario.toml",
                "--listen",
                "0.0.0.0:9470",
                "--start-timeout",
                "420s"
            ])
        );
        assert_eq!(c["env"][0]["name"], "XIULOAD_WORKERS");
        assert_eq!(c["env"][0]["value"], "5");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], 9470);
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert_eq!(c["resources"]["limits"]["memory"], "2Gi");
        assert!(c["resources"]["limits"].get("cpu").is_none());
    }

    #[test]
    fn the_pod_meets_pod_security_restricted() {
        let d = section(2);
        let j = value(&job(&input(&d)));
        let pod = &j["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        let sc = &pod["containers"][0]["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["runAsNonRoot"], true);
        assert!(pod.get("hostNetwork").is_none());
    }

    #[test]
    fn the_scenario_travels_in_the_config_map_mounted_read_only() {
        let d = section(2);
        let i = input(&d);
        let cm = value(&config_map(&i));
        assert_eq!(cm["data"]["scenario.toml"], "[run]\nduration = \"60s\"\n");
        let pod = value(&job(&i))["spec"]["template"]["spec"].clone();
        assert_eq!(
            pod["volumes"][0]["configMap"]["name"],
            "xiuload-staging-distributed-20261206-100000"
        );
        assert_eq!(
            pod["containers"][0]["volumeMounts"][0]["mountPath"],
            "/scenario"
        );
        assert_eq!(pod["containers"][0]["volumeMounts"][0]["readOnly"], true);
    }

    #[test]
    fn scheduling_settings_reach_the_pod() {
        let text = r#"workers = 4
node_selector = { pool = "load" }
tolerations = [{ key = "dedicated", value = "load", effect = "NoSchedule" }]
spread = { topology_key = "topology.kubernetes.io/zone", when_unsatisfiable = "do_not_schedule", max_skew = 2 }
service_account = "xiuload-worker"
port = 9555
"#;
        let d: DistributedSection = toml::from_str(text).unwrap();
        let pod = value(&job(&input(&d)))["spec"]["template"]["spec"].clone();
        assert_eq!(pod["nodeSelector"]["pool"], "load");
        assert_eq!(pod["tolerations"][0]["key"], "dedicated");
        assert_eq!(pod["tolerations"][0]["operator"], "Equal");
        assert_eq!(pod["tolerations"][0]["effect"], "NoSchedule");
        let spread = &pod["topologySpreadConstraints"][0];
        assert_eq!(spread["topologyKey"], "topology.kubernetes.io/zone");
        assert_eq!(spread["whenUnsatisfiable"], "DoNotSchedule");
        assert_eq!(spread["maxSkew"], 2);
        assert_eq!(
            spread["labelSelector"]["matchLabels"][RUN_ID_LABEL],
            "staging-distributed-20261206-100000"
        );
        assert_eq!(pod["serviceAccountName"], "xiuload-worker");
        assert_eq!(pod["containers"][0]["ports"][0]["containerPort"], 9555);
        let off: DistributedSection =
            toml::from_str("workers = 2\nspread = { enabled = false }\n").unwrap();
        let pod = value(&job(&input(&off)))["spec"]["template"]["spec"].clone();
        assert!(pod.get("topologySpreadConstraints").is_none());
    }

    #[test]
    fn the_publish_token_and_the_ca_file_follow_the_scenario_into_the_pod() {
        let mut d = section(2);
        d.publish_token_secret = Some(SecretKey {
            name: "tokens".into(),
            key: "publish".into(),
        });
        let mut i = input(&d);
        i.publish_token_env = Some("XIU_PUBLISH_TOKEN");
        i.ca_file = Some((
            Path::new("certs/staging-ca.pem"),
            "-----BEGIN CERTIFICATE-----",
        ));
        let cm = value(&config_map(&i));
        assert_eq!(cm["data"]["ca.pem"], "-----BEGIN CERTIFICATE-----");
        let c = value(&job(&i))["spec"]["template"]["spec"]["containers"][0].clone();
        let annotations = value(&job(&i))["metadata"]["annotations"].clone();
        assert_eq!(
            annotations["xiuload.dev/external-secrets"],
            "tokens: the operator creates it (deploy/README.md, Secrets)"
        );
        let token = &c["env"][1];
        assert_eq!(token["name"], "XIU_PUBLISH_TOKEN");
        assert_eq!(token["valueFrom"]["secretKeyRef"]["name"], "tokens");
        assert_eq!(token["valueFrom"]["secretKeyRef"]["key"], "publish");
        let ca = &c["volumeMounts"][2];
        assert_eq!(ca["mountPath"], "/certs/staging-ca.pem");
        assert_eq!(ca["subPath"], "ca.pem");
    }

    #[test]
    fn yaml_holds_both_objects_with_their_kinds() {
        let d = section(2);
        let i = input(&d);
        let text = to_yaml(&config_map(&i), &job(&i)).unwrap();
        let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect();
        assert_eq!(docs.len(), 2, "{text}");
        assert_eq!(docs[0]["kind"], "ConfigMap");
        assert_eq!(docs[0]["apiVersion"], "v1");
        assert_eq!(docs[1]["kind"], "Job");
        assert_eq!(docs[1]["apiVersion"], "batch/v1");
    }
}

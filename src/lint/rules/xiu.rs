//! xiu-specific rules: configs xiu 0.14 will not load, the HLS/S3 panic, and
//! replicated xiu pods that do not relay streams between each other.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{ObjectSet, Workload, labels_match};
use crate::lint::roles::{Target, resolve, url_host_port, xiu_configs, xiu_pods};

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let configs = xiu_configs(set);
    let mut out = Vec::new();
    for f in &configs {
        for p in &f.config.problems {
            out.push(f.cm.finding(
                "xiu-config-invalid",
                Severity::Error,
                format!(
                    "data.{}: {p}. xiu 0.14 will not load this config: it prints the error and exits with status 0, so the container restarts in a loop that looks like success",
                    f.key
                ),
            ));
        }
        if f.config.hls_without_s3 {
            out.push(f.cm.finding(
                "xiu-config-hls-no-s3",
                Severity::Error,
                format!(
                    "data.{}: [hls] is enabled without an [hls.s3] table; xiu 0.14 panics at hls m3u8.rs:69 on the first publish and every .m3u8 is a 404; add `[hls.s3]` with `enabled = false`, `bucket = \"unused\"`, `region = \"unused\"`",
                    f.key
                ),
            ));
        }
    }
    let push_addresses: Vec<&str> = configs
        .iter()
        .flat_map(|f| f.config.push_addresses.iter().map(String::as_str))
        .collect();
    let pods = xiu_pods(set, &configs);
    let relayed_by_sidecar: Vec<String> = pods
        .iter()
        .filter(|p| p.sidecar.is_some())
        .map(|p| p.w.obj.id())
        .collect();
    // Workloads the sidecars pull from (--origin-flv): origins, each relayed to every edge.
    let relay_sources: Vec<String> = pods
        .iter()
        .filter_map(|p| p.sidecar.as_ref().map(|s| (p, s)))
        .flat_map(|(p, s)| {
            s.values("origin-flv")
                .into_iter()
                .filter_map(url_host_port)
                .filter_map(|(host, port)| match resolve(set, &p.w.obj, &host, port) {
                    Target::StatefulSetPod(sts, _) => Some(sts.id()),
                    Target::Service(svc) => pods
                        .iter()
                        .find(|o| {
                            svc.at("/spec/selector")
                                .and_then(Value::as_object)
                                .is_some_and(|sel| labels_match(sel, o.w.labels))
                        })
                        .map(|o| o.w.obj.id()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for w in set.workloads() {
        if !matches!(w.obj.kind, "Deployment" | "StatefulSet" | "ReplicaSet") {
            continue;
        }
        let hpa = !set.hpas_targeting(&w).is_empty();
        if w.replicas() <= 1 && !hpa {
            continue;
        }
        // The xiuload sidecar relays every origin stream into its edge: that is the relay.
        if relayed_by_sidecar.contains(&w.obj.id()) || relay_sources.contains(&w.obj.id()) {
            continue;
        }
        for name in w.mounted_configmaps() {
            for f in configs
                .iter()
                .filter(|f| f.cm.name == name && f.cm.same_namespace(&w.obj))
            {
                if f.config.pulls || is_push_target(set, &w, &push_addresses) {
                    continue;
                }
                let why = if hpa {
                    "is scaled by an HPA".to_string()
                } else {
                    format!("runs {} replicas", w.replicas())
                };
                out.push(w.obj.finding(
                    "xiu-edge-no-relay",
                    Severity::Error,
                    format!(
                        "it {why} and runs xiu with ConfigMap {}/{name} data.{}, which neither pulls ([rtmp.pull] enabled = true) nor is pushed to, no `xiuload sidecar` container relays streams into it and no sidecar pulls from it (--origin-flv): each replica only has the streams published to it, so viewers balanced to another replica get nothing; run origins that publishers reach and edges whose xiuload sidecar relays every origin stream (deploy/base/edge-deployment.yaml)",
                        f.cm.namespace.unwrap_or("-"),
                        f.key
                    ),
                ));
            }
        }
    }
    out
}

/// A push address names this workload if it is (a DNS form of) a Service
/// selecting it, the workload's own name, or a StatefulSet pod's name.
fn is_push_target(set: &ObjectSet<'_>, w: &Workload<'_>, addresses: &[&str]) -> bool {
    let refers = |addr: &str, name: &str| {
        addr == name
            || addr.strip_prefix(name).is_some_and(|rest| {
                rest.starts_with('.')
                    || rest.strip_prefix('-').is_some_and(|r| {
                        r.split('.')
                            .next()
                            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    })
            })
    };
    let services: Vec<&str> = set
        .of_kind("Service")
        .filter(|s| s.same_namespace(&w.obj))
        .filter(|s| {
            s.at("/spec/selector")
                .and_then(Value::as_object)
                .is_some_and(|sel| !sel.is_empty() && labels_match(sel, w.labels))
        })
        .map(|s| s.name)
        .collect();
    addresses
        .iter()
        .any(|a| refers(a, w.obj.name) || services.iter().any(|s| refers(a, s)))
}

#[cfg(test)]
mod tests {
    use crate::lint::test_support::*;

    const CONFIG: &str = "[rtmp]\n    enabled = true\n    port = 1935\n    [hls]\n    enabled = false\n    port = 8080\n    need_record = false\n    [authsecret]\n    key = \"\"\n    password = \"\"\n";

    fn set(config: &str, replicas: i64) -> String {
        format!(
            "
kind: ConfigMap
metadata: {{name: cfg}}
data:
  xiu.toml: |
    {config}
---
kind: Deployment
metadata: {{name: edge}}
spec:
  replicas: {replicas}
  template:
    metadata: {{labels: {{app: edge}}}}
    spec:
      containers: [{{name: xiu}}]
      volumes: [{{name: c, configMap: {{name: cfg}}}}]
"
        )
    }

    #[test]
    fn valid_single_replica() {
        assert!(lint_yaml(&set(CONFIG, 1)).is_empty());
    }

    #[test]
    fn invalid_config() {
        let f = lint_yaml(&set(&CONFIG.replace("need_record = false", ""), 1));
        assert_eq!(rules_of(&f), vec!["xiu-config-invalid"]);
        assert!(f[0].message.contains("status 0"));
    }

    #[test]
    fn hls_without_s3() {
        let y = set(
            &CONFIG.replace("[hls]\n    enabled = false", "[hls]\n    enabled = true"),
            1,
        );
        assert_eq!(rules_of(&lint_yaml(&y)), vec!["xiu-config-hls-no-s3"]);
        let with_s3 = CONFIG.replace("[hls]\n    enabled = false", "[hls]\n    enabled = true")
            + "    [hls.s3]\n    enabled = false\n    bucket = \"unused\"\n    region = \"unused\"\n";
        assert!(lint_yaml(&set(&with_s3, 1)).is_empty());
    }

    #[test]
    fn not_a_xiu_config() {
        let y = set("[server]\n    port = \"x\"\n", 3);
        assert!(lint_yaml(&y).is_empty());
    }

    #[test]
    fn replicated_without_relay() {
        assert_eq!(
            rules_of(&lint_yaml(&set(CONFIG, 3))),
            vec!["xiu-edge-no-relay"]
        );
    }

    #[test]
    fn hpa_target_without_relay() {
        let y = format!(
            "{}---\nkind: HorizontalPodAutoscaler\nmetadata: {{name: h}}\nspec: {{scaleTargetRef: {{kind: Deployment, name: edge}}, minReplicas: 2, maxReplicas: 4}}\n",
            set(CONFIG, 1)
        );
        assert!(has(&y, "xiu-edge-no-relay"));
    }

    #[test]
    fn pulling_edge_is_fine() {
        let edge = format!(
            "{CONFIG}    [rtmp.pull]\n    enabled = true\n    address = \"origin\"\n    port = 1935\n"
        );
        assert!(lint_yaml(&set(&edge, 3)).is_empty());
    }

    #[test]
    fn push_target_is_fine() {
        let origin = format!(
            "
---
kind: ConfigMap
metadata: {{name: origin-cfg}}
data:
  origin.toml: |
    {CONFIG}    [[rtmp.push]]
    enabled = true
    address = \"edge.default.svc.cluster.local\"
    port = 1935
---
kind: Service
metadata: {{name: edge}}
spec: {{selector: {{app: edge}}, ports: [{{port: 1935}}]}}
"
        );
        let y = format!("{}{origin}", set(CONFIG, 3));
        assert!(!has(&y, "xiu-edge-no-relay"), "{:?}", lint_yaml(&y));
    }
}

//! ConfigMaps and Secrets a pod references must exist (with the referenced keys), or the pod
//! never starts: the kubelet waits for the volume (ContainerCreating) or fails the container
//! (CreateContainerConfigError). A Secret deliberately created outside the manifests (a token the
//! operator sets) is declared on the workload with
//! `xiuload.dev/external-secrets: "<name>: <who creates it>[; ...]"`.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{ObjectSet, Workload, array};

pub const EXTERNAL_SECRETS: &str = "xiuload.dev/external-secrets";

/// Created by Kubernetes in every namespace (the API server's CA for service account tokens).
const BUILTIN_CONFIGMAPS: &[&str] = &["kube-root-ca.crt"];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    ConfigMap,
    Secret,
}

struct Ref<'a> {
    kind: Kind,
    name: &'a str,
    keys: Vec<&'a str>,
    optional: bool,
    /// Where in the pod spec, for the message.
    at: String,
}

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in set.workloads() {
        let external = external_secrets(&w);
        for r in refs(&w) {
            if r.optional {
                continue;
            }
            let (kind_name, data_fields): (&str, &[&str]) = match r.kind {
                Kind::ConfigMap => ("ConfigMap", &["data", "binaryData"]),
                Kind::Secret => ("Secret", &["data", "stringData"]),
            };
            if r.kind == Kind::ConfigMap && BUILTIN_CONFIGMAPS.contains(&r.name) {
                continue;
            }
            let Some(obj) = set.find(kind_name, &w.obj, r.name) else {
                if r.kind == Kind::Secret && external.contains(&r.name) {
                    continue;
                }
                let fix = match r.kind {
                    Kind::ConfigMap => {
                        "add it (e.g. a configMapGenerator) or fix the name".to_string()
                    }
                    Kind::Secret => format!(
                        "add it, fix the name, or - if the operator creates it outside these manifests - declare it on the workload with the annotation {EXTERNAL_SECRETS}: \"{}: <who creates it>\"",
                        r.name
                    ),
                };
                out.push(w.obj.finding(
                    "config-ref-missing",
                    Severity::Error,
                    format!(
                        "{} references {kind_name} \"{}\", which is not in this render (same namespace): the pod never starts (volume never mounts / CreateContainerConfigError); {fix}",
                        r.at, r.name
                    ),
                ));
                continue;
            };
            let has_key = |k: &str| {
                data_fields
                    .iter()
                    .any(|f| obj.at(&format!("/{f}")).and_then(|d| d.get(k)).is_some())
            };
            for k in r.keys.iter().filter(|k| !has_key(k)) {
                out.push(w.obj.finding(
                    "config-ref-missing",
                    Severity::Error,
                    format!(
                        "{} references key \"{k}\" of {kind_name} \"{}\", which has no such key: the pod never starts; use one of its keys or add it",
                        r.at, r.name
                    ),
                ));
            }
        }
    }
    out
}

fn external_secrets<'a>(w: &Workload<'a>) -> Vec<&'a str> {
    w.obj
        .at("/metadata/annotations")
        .and_then(|a| a.get(EXTERNAL_SECRETS))
        .and_then(Value::as_str)
        .into_iter()
        .flat_map(|text| text.split(';'))
        .filter_map(|entry| entry.split_once(':'))
        // An entry without a reason does not count: nobody could tell who creates the Secret.
        .filter(|(_, reason)| !reason.trim().is_empty())
        .map(|(name, _)| name.trim())
        .collect()
}

fn item_keys(v: &Value) -> Vec<&str> {
    array(v.get("items"))
        .filter_map(|i| i.get("key").and_then(Value::as_str))
        .collect()
}

fn optional(v: &Value) -> bool {
    v.get("optional").and_then(Value::as_bool) == Some(true)
}

fn refs<'a>(w: &Workload<'a>) -> Vec<Ref<'a>> {
    let mut out = Vec::new();
    for vol in array(w.pod_spec.get("volumes")) {
        let vname = vol.get("name").and_then(Value::as_str).unwrap_or("?");
        if let Some(cm) = vol.get("configMap")
            && let Some(name) = cm.get("name").and_then(Value::as_str)
        {
            out.push(Ref {
                kind: Kind::ConfigMap,
                name,
                keys: item_keys(cm),
                optional: optional(cm),
                at: format!("volume \"{vname}\""),
            });
        }
        if let Some(sec) = vol.get("secret")
            && let Some(name) = sec.get("secretName").and_then(Value::as_str)
        {
            out.push(Ref {
                kind: Kind::Secret,
                name,
                keys: item_keys(sec),
                optional: optional(sec),
                at: format!("volume \"{vname}\""),
            });
        }
        for src in array(vol.pointer("/projected/sources")) {
            for (field, kind) in [("configMap", Kind::ConfigMap), ("secret", Kind::Secret)] {
                if let Some(r) = src.get(field)
                    && let Some(name) = r.get("name").and_then(Value::as_str)
                {
                    out.push(Ref {
                        kind,
                        name,
                        keys: item_keys(r),
                        optional: optional(r),
                        at: format!("projected volume \"{vname}\""),
                    });
                }
            }
        }
    }
    let containers =
        array(w.pod_spec.get("containers")).chain(array(w.pod_spec.get("initContainers")));
    for c in containers {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
        for env in array(c.get("env")) {
            let ename = env.get("name").and_then(Value::as_str).unwrap_or("?");
            for (field, kind) in [
                ("configMapKeyRef", Kind::ConfigMap),
                ("secretKeyRef", Kind::Secret),
            ] {
                if let Some(r) = env.pointer(&format!("/valueFrom/{field}"))
                    && let Some(name) = r.get("name").and_then(Value::as_str)
                {
                    out.push(Ref {
                        kind,
                        name,
                        keys: r.get("key").and_then(Value::as_str).into_iter().collect(),
                        optional: optional(r),
                        at: format!("container \"{cname}\" env {ename}"),
                    });
                }
            }
        }
        for from in array(c.get("envFrom")) {
            for (field, kind) in [
                ("configMapRef", Kind::ConfigMap),
                ("secretRef", Kind::Secret),
            ] {
                if let Some(r) = from.get(field)
                    && let Some(name) = r.get("name").and_then(Value::as_str)
                {
                    out.push(Ref {
                        kind,
                        name,
                        keys: Vec::new(),
                        optional: optional(r),
                        at: format!("container \"{cname}\" envFrom"),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::lint::test_support::*;

    fn set(pod_extra: &str, annotations: &str) -> String {
        format!(
            "
kind: ConfigMap
metadata: {{name: cfg}}
data: {{a.toml: x}}
---
kind: Deployment
metadata: {{name: d, annotations: {annotations}}}
spec:
  template:
    metadata: {{labels: {{app: d}}}}
    spec:
      containers:
      - name: c
        env:
        - {{name: T, valueFrom: {{secretKeyRef: {{name: tok, key: token}}}}}}
{pod_extra}
"
        )
    }

    const VOL: &str =
        "      volumes: [{name: v, configMap: {name: CM, items: [{key: KEY, path: p}]}}]";

    #[test]
    fn external_secret_needs_a_declaration_with_a_reason() {
        let vol = VOL.replace("CM", "cfg").replace("KEY", "a.toml");
        assert_eq!(
            rules_of(&lint_yaml(&set(&vol, "{}"))),
            vec!["config-ref-missing"]
        );
        let declared = set(
            &vol,
            "{xiuload.dev/external-secrets: 'tok: the operator creates it'}",
        );
        assert!(
            lint_yaml(&declared).is_empty(),
            "{:?}",
            lint_yaml(&declared)
        );
        let no_reason = set(&vol, "{xiuload.dev/external-secrets: 'tok'}");
        assert!(has(&no_reason, "config-ref-missing"));
    }

    #[test]
    fn configmap_and_key_must_exist() {
        let ann = "{xiuload.dev/external-secrets: 'tok: operator'}";
        let missing_cm = set(&VOL.replace("CM", "nope").replace("KEY", "a.toml"), ann);
        let f = lint_yaml(&missing_cm);
        assert_eq!(rules_of(&f), vec!["config-ref-missing"]);
        assert!(
            f[0].message.contains("ConfigMap \"nope\""),
            "{}",
            f[0].message
        );
        let missing_key = set(&VOL.replace("CM", "cfg").replace("KEY", "b.toml"), ann);
        let f = lint_yaml(&missing_key);
        assert_eq!(rules_of(&f), vec!["config-ref-missing"]);
        assert!(f[0].message.contains("key \"b.toml\""), "{}", f[0].message);
        let root_ca = set(
            &VOL.replace("CM", "kube-root-ca.crt")
                .replace("KEY", "ca.crt"),
            ann,
        );
        assert!(lint_yaml(&root_ca).is_empty());
    }
}

//! An indexed view over the parsed documents, and the small helpers every
//! rule needs (pod templates, label selectors, ports).

use std::path::Path;

use serde_json::{Map, Value};

use super::SourcedDoc;
use super::finding::{Finding, Severity};

/// One Kubernetes object from the input set.
#[derive(Debug, Clone, Copy)]
pub struct Obj<'a> {
    pub file: &'a Path,
    pub kind: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub v: &'a Value,
}

impl<'a> Obj<'a> {
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind,
            self.namespace.unwrap_or("-"),
            self.name
        )
    }

    /// Manifests often leave the namespace to `kubectl -n`; an object without
    /// one is taken to live in whatever namespace it is compared with.
    pub fn same_namespace(&self, other: &Obj<'_>) -> bool {
        match (self.namespace, other.namespace) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }

    pub fn at(&self, pointer: &str) -> Option<&'a Value> {
        self.v.pointer(pointer)
    }

    pub fn finding(&self, rule: &'static str, severity: Severity, message: String) -> Finding {
        Finding {
            rule,
            severity,
            object: self.id(),
            file: self.file.to_path_buf(),
            message,
        }
    }
}

/// A controller that stamps out pods from a template.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub obj: Obj<'a>,
    pub pod_spec: &'a Value,
    pub labels: Option<&'a Map<String, Value>>,
}

impl<'a> Workload<'a> {
    /// `spec.replicas`, defaulting to 1 as the API server does.
    pub fn replicas(&self) -> i64 {
        self.obj
            .at("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
    }

    /// Regular containers: the ones readiness and HPA requests apply to.
    pub fn containers(&self) -> impl Iterator<Item = &'a Value> {
        array(self.pod_spec.get("containers"))
    }

    /// Containers whose ports can serve traffic: regular ones plus native
    /// sidecars (init containers with `restartPolicy: Always`).
    pub fn serving_containers(&self) -> impl Iterator<Item = &'a Value> {
        let sidecars = array(self.pod_spec.get("initContainers"))
            .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"));
        self.containers().chain(sidecars)
    }

    /// Names of the ConfigMaps mounted as volumes (plain or projected).
    pub fn mounted_configmaps(&self) -> Vec<&'a str> {
        let mut out = Vec::new();
        for vol in array(self.pod_spec.get("volumes")) {
            if let Some(n) = vol.pointer("/configMap/name").and_then(Value::as_str) {
                out.push(n);
            }
            for src in array(vol.pointer("/projected/sources")) {
                if let Some(n) = src.pointer("/configMap/name").and_then(Value::as_str) {
                    out.push(n);
                }
            }
        }
        out
    }
}

pub fn array(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

/// A port reference as Kubernetes' IntOrString.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Number(i64),
    Name(String),
}

impl PortRef {
    /// Digit-only strings are read as numbers: a named port must contain a
    /// letter, so `"8080"` can only mean the number.
    pub fn from_value(v: &Value) -> Option<PortRef> {
        match v {
            Value::Number(n) => n.as_i64().map(PortRef::Number),
            Value::String(s) => match s.parse::<i64>() {
                Ok(n) => Some(PortRef::Number(n)),
                Err(_) => Some(PortRef::Name(s.clone())),
            },
            _ => None,
        }
    }
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(s) => write!(f, "\"{s}\""),
        }
    }
}

/// Does the container declare this port (by name or containerPort)?
pub fn container_declares(container: &Value, port: &PortRef) -> bool {
    array(container.get("ports")).any(|p| match port {
        PortRef::Number(n) => p.get("containerPort").and_then(Value::as_i64) == Some(*n),
        PortRef::Name(s) => p.get("name").and_then(Value::as_str) == Some(s.as_str()),
    })
}

/// Equality selector (Service `spec.selector`, `matchLabels`).
pub fn labels_match(selector: &Map<String, Value>, labels: Option<&Map<String, Value>>) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// A full `LabelSelector` (`matchLabels` + `matchExpressions`). An empty
/// selector matches everything, as it does for a policy/v1 PDB.
pub fn label_selector_matches(sel: &Value, labels: Option<&Map<String, Value>>) -> bool {
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object)
        && !labels_match(ml, labels)
    {
        return false;
    }
    array(sel.get("matchExpressions")).all(|expr| {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let have = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        let mut values = array(expr.get("values")).filter_map(Value::as_str);
        match expr.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => have.is_some_and(|h| values.any(|v| v == h)),
            "NotIn" => have.is_none_or(|h| !values.any(|v| v == h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => true, // unknown operators: schema validation's job, not ours
        }
    })
}

pub fn format_labels(m: Option<&Map<String, Value>>) -> String {
    let inner: Vec<String> = m
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(&v.to_string())))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// All objects of the input, `kind: List` expanded.
pub struct ObjectSet<'a> {
    pub objects: Vec<Obj<'a>>,
}

const WORKLOAD_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "ReplicaSet",
    "CronJob",
];

impl<'a> ObjectSet<'a> {
    pub fn new(docs: &'a [SourcedDoc]) -> Self {
        let mut objects = Vec::new();
        for d in docs {
            push_object(&d.file, &d.value, &mut objects);
        }
        ObjectSet { objects }
    }

    pub fn of_kind<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = Obj<'a>> + 's {
        self.objects.iter().copied().filter(move |o| o.kind == kind)
    }

    /// Same-namespace lookup by kind and name.
    pub fn find(&self, kind: &str, near: &Obj<'_>, name: &str) -> Option<Obj<'a>> {
        self.of_kind(kind)
            .find(|o| o.name == name && o.same_namespace(near))
    }

    pub fn workloads(&self) -> impl Iterator<Item = Workload<'a>> + '_ {
        self.objects.iter().filter_map(|o| as_workload(*o))
    }

    pub fn workload(&self, kind: &str, near: &Obj<'_>, name: &str) -> Option<Workload<'a>> {
        self.find(kind, near, name).and_then(as_workload)
    }

    /// Workloads in `near`'s namespace whose pod labels the selector accepts.
    pub fn selected_by(
        &self,
        near: &Obj<'_>,
        matches: impl Fn(Option<&Map<String, Value>>) -> bool,
    ) -> Vec<Workload<'a>> {
        self.workloads()
            .filter(|w| w.obj.same_namespace(near) && matches(w.labels))
            .collect()
    }

    /// HPAs in the set whose `scaleTargetRef` points at this workload.
    pub fn hpas_targeting(&self, w: &Workload<'_>) -> Vec<Obj<'a>> {
        self.of_kind("HorizontalPodAutoscaler")
            .filter(|h| {
                h.same_namespace(&w.obj)
                    && h.at("/spec/scaleTargetRef/kind").and_then(Value::as_str) == Some(w.obj.kind)
                    && h.at("/spec/scaleTargetRef/name").and_then(Value::as_str) == Some(w.obj.name)
            })
            .collect()
    }
}

fn as_workload(o: Obj<'_>) -> Option<Workload<'_>> {
    if !WORKLOAD_KINDS.contains(&o.kind) {
        return None;
    }
    let template = if o.kind == "CronJob" {
        o.at("/spec/jobTemplate/spec/template")
    } else {
        o.at("/spec/template")
    }?;
    Some(Workload {
        obj: o,
        pod_spec: template.get("spec")?,
        labels: template
            .pointer("/metadata/labels")
            .and_then(Value::as_object),
    })
}

fn push_object<'a>(file: &'a Path, v: &'a Value, out: &mut Vec<Obj<'a>>) {
    let Some(kind) = v.get("kind").and_then(Value::as_str) else {
        return;
    };
    if kind == "List" || kind.ends_with("List") && v.get("items").is_some() {
        for item in array(v.get("items")) {
            push_object(file, item, out);
        }
        return;
    }
    let Some(name) = v.pointer("/metadata/name").and_then(Value::as_str) else {
        return;
    };
    out.push(Obj {
        file,
        kind,
        namespace: v.pointer("/metadata/namespace").and_then(Value::as_str),
        name,
        v,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_items_are_expanded() {
        let docs = vec![SourcedDoc {
            file: "l.yaml".into(),
            value: json!({"kind":"List","items":[
                {"kind":"Service","metadata":{"name":"a"}},
                {"kind":"ConfigMap","metadata":{"name":"b","namespace":"n"}}]}),
        }];
        let set = ObjectSet::new(&docs);
        let ids: Vec<String> = set.objects.iter().map(Obj::id).collect();
        assert_eq!(ids, vec!["Service/-/a", "ConfigMap/n/b"]);
    }

    #[test]
    fn label_selector_expressions() {
        let labels = json!({"app":"xiu","tier":"edge"});
        let l = labels.as_object();
        assert!(label_selector_matches(&json!({}), l));
        assert!(label_selector_matches(
            &json!({"matchExpressions":[{"key":"tier","operator":"In","values":["edge","x"]}]}),
            l
        ));
        assert!(!label_selector_matches(
            &json!({"matchExpressions":[{"key":"tier","operator":"NotIn","values":["edge"]}]}),
            l
        ));
        assert!(!label_selector_matches(
            &json!({"matchExpressions":[{"key":"zone","operator":"Exists"}]}),
            l
        ));
        assert!(!label_selector_matches(
            &json!({"matchLabels":{"app":"other"}}),
            l
        ));
    }

    #[test]
    fn port_refs() {
        assert_eq!(PortRef::from_value(&json!(80)), Some(PortRef::Number(80)));
        assert_eq!(PortRef::from_value(&json!("80")), Some(PortRef::Number(80)));
        assert_eq!(
            PortRef::from_value(&json!("http")),
            Some(PortRef::Name("http".into()))
        );
    }
}

//! What the xiu-aware rules share: which ConfigMaps hold xiu configs, which workloads run xiu and
//! in which role (origin: publishers push to it; edge: viewers play from it, fed by a relay), the
//! xiuload sidecar's flags, and how an in-cluster address resolves to a Service or a StatefulSet
//! pod of the same render.

use serde_json::Value;

use super::objects::{Obj, ObjectSet, Workload, array, labels_match};
use super::xiu_config::{XiuConfig, analyze, looks_like_xiu};

/// One xiu config found in a ConfigMap.
pub struct Found<'a> {
    pub cm: Obj<'a>,
    pub key: &'a str,
    pub config: XiuConfig,
}

pub fn xiu_configs<'a>(set: &ObjectSet<'a>) -> Vec<Found<'a>> {
    let mut v = Vec::new();
    for cm in set.of_kind("ConfigMap") {
        let Some(data) = cm.at("/data").and_then(Value::as_object) else {
            continue;
        };
        for (key, text) in data {
            let Some(text) = text.as_str() else { continue };
            if looks_like_xiu(key, text) {
                v.push(Found {
                    cm,
                    key,
                    config: analyze(text),
                });
            }
        }
    }
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishers push here.
    Origin,
    /// Viewers play here; streams arrive by a relay (xiu's `[rtmp.pull]` or the xiuload sidecar).
    Edge,
}

/// A workload whose pods run xiu.
pub struct XiuPod<'a> {
    pub w: Workload<'a>,
    pub role: Role,
    /// Indexes into the `xiu_configs` list: the configs this pod mounts (directly, or as the
    /// template an init container renders).
    pub configs: Vec<usize>,
    /// The regular containers that run xiu itself.
    pub xiu_containers: Vec<&'a Value>,
    pub sidecar: Option<Sidecar>,
}

/// The `--flag value` pairs of a pod's `xiuload sidecar` container, in order.
pub struct Sidecar {
    pub flags: Vec<(String, String)>,
}

impl Sidecar {
    pub fn values(&self, flag: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn command_line(c: &Value) -> Vec<&str> {
    array(c.get("command"))
        .chain(array(c.get("args")))
        .filter_map(Value::as_str)
        .collect()
}

/// Does any word of the container's command line run a program with this file name?
pub fn runs_program(c: &Value, name: &str) -> bool {
    command_line(c)
        .iter()
        .any(|w| w.rsplit('/').next() == Some(name))
}

fn sidecar_of(c: &Value) -> Option<Sidecar> {
    let words = command_line(c);
    let at = words
        .iter()
        .position(|w| w.rsplit('/').next() == Some("xiuload"))?;
    if words.get(at + 1) != Some(&"sidecar") {
        return None;
    }
    let mut flags = Vec::new();
    let mut rest = words[at + 2..].iter();
    while let Some(w) = rest.next() {
        let Some(flag) = w.strip_prefix("--") else {
            continue;
        };
        match flag.split_once('=') {
            Some((f, v)) => flags.push((f.to_string(), v.to_string())),
            None => {
                if let Some(v) = rest.next() {
                    flags.push((flag.to_string(), v.to_string()));
                }
            }
        }
    }
    Some(Sidecar { flags })
}

/// Workloads that run xiu: a container starts the `xiu` binary, or mounts a volume that carries a
/// xiu config.
pub fn xiu_pods<'a>(set: &ObjectSet<'a>, configs: &[Found<'a>]) -> Vec<XiuPod<'a>> {
    let mut out = Vec::new();
    for w in set.workloads() {
        let cfg_idx: Vec<usize> = configs
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.cm.same_namespace(&w.obj) && w.mounted_configmaps().contains(&f.cm.name)
            })
            .map(|(i, _)| i)
            .collect();
        let config_volumes: Vec<&str> = array(w.pod_spec.get("volumes"))
            .filter(|v| {
                v.pointer("/configMap/name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| cfg_idx.iter().any(|&i| configs[i].cm.name == n))
            })
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .collect();
        let xiu_containers: Vec<&Value> = w
            .containers()
            .filter(|c| {
                runs_program(c, "xiu")
                    || array(c.get("volumeMounts"))
                        .filter_map(|m| m.get("name").and_then(Value::as_str))
                        .any(|n| config_volumes.contains(&n))
            })
            .collect();
        if xiu_containers.is_empty() {
            continue;
        }
        let sidecar = w.serving_containers().find_map(sidecar_of);
        let pulls = cfg_idx.iter().any(|&i| configs[i].config.pulls);
        let role = if pulls || sidecar.is_some() {
            Role::Edge
        } else {
            Role::Origin
        };
        out.push(XiuPod {
            w,
            role,
            configs: cfg_idx,
            xiu_containers,
            sidecar,
        });
    }
    out
}

/// `http://host:port/path` -> (host, port); port 80/443 by scheme when absent.
pub fn url_host_port(url: &str) -> Option<(String, i64)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((
            authority.to_string(),
            if scheme == "https" { 443 } else { 80 },
        )),
    }
}

/// What an in-cluster host name points at.
#[derive(Debug)]
pub enum Target<'a> {
    /// Loopback or an IP literal: not the render's business.
    Outside,
    /// A Service of the render that has the port.
    Service(Obj<'a>),
    /// Pod `ordinal` of a StatefulSet, through its governing Service.
    StatefulSetPod(Obj<'a>, i64),
    /// Nothing in the render answers there; the text says why.
    Unknown(String),
}

/// Resolves `host:port` as cluster DNS would for a pod in `near`'s namespace: `<svc>[.<ns>[.svc
/// [.cluster.local]]]` or `<statefulset>-<i>.<governing svc>[.<ns>...]`.
pub fn resolve<'a>(set: &ObjectSet<'a>, near: &Obj<'_>, host: &str, port: i64) -> Target<'a> {
    if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() {
        return Target::Outside;
    }
    let short = host
        .trim_end_matches('.')
        .trim_end_matches(".cluster.local")
        .trim_end_matches(".svc");
    let parts: Vec<&str> = short.split('.').collect();
    let in_ns = |o: &Obj<'_>, ns: Option<&str>| match (ns, o.namespace) {
        (Some(want), Some(have)) => want == have,
        (Some(_), None) => true,
        (None, _) => o.same_namespace(near),
    };
    let service = |name: &str, ns: Option<&str>| {
        set.of_kind("Service")
            .find(|s| s.name == name && in_ns(s, ns))
    };
    let service_ports = |s: &Obj<'_>| -> Vec<i64> {
        array(s.at("/spec/ports"))
            .filter_map(|p| p.get("port").and_then(Value::as_i64))
            .collect()
    };
    // <svc>[.<ns>]
    if parts.len() <= 2
        && let Some(svc) = service(parts[0], parts.get(1).copied())
    {
        let ports = service_ports(&svc);
        if ports.contains(&port) {
            return Target::Service(svc);
        }
        return Target::Unknown(format!(
            "Service {} has no port {port} (its ports: {ports:?})",
            svc.id()
        ));
    }
    // <sts>-<i>.<svc>[.<ns>]
    if parts.len() >= 2 && parts.len() <= 3 {
        let ns = parts.get(2).copied();
        let Some(svc) = service(parts[1], ns) else {
            return Target::Unknown(format!(
                "no Service \"{}\" in this render (a StatefulSet pod is <statefulset>-<ordinal>.<its serviceName>)",
                parts[1]
            ));
        };
        let Some((sts_name, ordinal)) = parts[0]
            .rsplit_once('-')
            .and_then(|(n, i)| Some((n, i.parse::<i64>().ok()?)))
        else {
            return Target::Unknown(format!("\"{}\" is not <statefulset>-<ordinal>", parts[0]));
        };
        let Some(sts) = set
            .workloads()
            .find(|w| w.obj.kind == "StatefulSet" && w.obj.name == sts_name && in_ns(&w.obj, ns))
        else {
            return Target::Unknown(format!("no StatefulSet \"{sts_name}\" in this render"));
        };
        if sts.obj.at("/spec/serviceName").and_then(Value::as_str) != Some(svc.name) {
            return Target::Unknown(format!(
                "StatefulSet {} is not governed by Service \"{}\" (spec.serviceName), so {host} has no DNS record",
                sts.obj.id(),
                svc.name
            ));
        }
        let selects = svc
            .at("/spec/selector")
            .and_then(Value::as_object)
            .is_some_and(|sel| labels_match(sel, sts.labels));
        if !selects {
            return Target::Unknown(format!(
                "Service {} does not select the pods of {}",
                svc.id(),
                sts.obj.id()
            ));
        }
        if ordinal >= sts.replicas() {
            return Target::Unknown(format!(
                "{} runs {} replicas (ordinals 0..{}), so pod {} does not exist",
                sts.obj.id(),
                sts.replicas(),
                sts.replicas() - 1,
                parts[0]
            ));
        }
        let declared = sts.serving_containers().any(|c| {
            array(c.get("ports"))
                .any(|p| p.get("containerPort").and_then(Value::as_i64) == Some(port))
        });
        if !declared && !service_ports(&svc).contains(&port) {
            return Target::Unknown(format!(
                "the pods of {} declare no container port {port}",
                sts.obj.id()
            ));
        }
        return Target::StatefulSetPod(sts.obj, ordinal);
    }
    Target::Unknown(format!("no Service \"{}\" in this render", parts[0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::load::parse_yaml;

    const SET: &str = "
kind: StatefulSet
metadata: {name: origin, namespace: ns}
spec:
  replicas: 2
  serviceName: origin-h
  template:
    metadata: {labels: {app: origin}}
    spec: {containers: [{name: xiu, ports: [{containerPort: 8000}, {containerPort: 8081}]}]}
---
kind: Service
metadata: {name: origin-h, namespace: ns}
spec: {clusterIP: None, selector: {app: origin}, ports: [{port: 8000}]}
---
kind: Service
metadata: {name: other, namespace: ns}
spec: {selector: {app: nothing}, ports: [{port: 1935}]}
";

    fn target(host: &str, port: i64) -> String {
        let docs = parse_yaml(std::path::Path::new("t.yaml"), SET).unwrap();
        let set = ObjectSet::new(&docs);
        let near = set.objects[0];
        match resolve(&set, &near, host, port) {
            Target::Outside => "outside".into(),
            Target::Service(s) => format!("service {}", s.name),
            Target::StatefulSetPod(s, i) => format!("pod {}-{i}", s.name),
            Target::Unknown(why) => format!("unknown: {why}"),
        }
    }

    #[test]
    fn resolves_like_cluster_dns() {
        assert_eq!(target("127.0.0.1", 1935), "outside");
        assert_eq!(target("other", 1935), "service other");
        assert_eq!(target("other.ns.svc.cluster.local", 1935), "service other");
        assert!(target("other", 8080).contains("has no port 8080"));
        assert_eq!(target("origin-1.origin-h", 8081), "pod origin-1");
        assert_eq!(target("origin-0.origin-h.ns.svc", 8000), "pod origin-0");
        assert!(target("origin-2.origin-h", 8000).contains("runs 2 replicas"));
        assert!(target("origin-0.other", 8000).contains("not governed"));
        assert!(target("origin-0.origin-h", 9999).contains("no container port 9999"));
        assert!(target("nope", 80).contains("no Service \"nope\""));
    }

    #[test]
    fn urls() {
        assert_eq!(
            url_host_port("http://xiu-origin-0.h:8000/api"),
            Some(("xiu-origin-0.h".to_string(), 8000))
        );
        assert_eq!(
            url_host_port("https://a.example"),
            Some(("a.example".to_string(), 443))
        );
        assert_eq!(url_host_port("xiu-origin:8000"), None);
    }
}

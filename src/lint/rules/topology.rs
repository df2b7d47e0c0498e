//! The shape of an origin/edge xiu cluster: who may publish where, how RTMP leaves the cluster,
//! whether every relay address resolves, whether the sidecar reaches every origin, and whether
//! xiu listens where its containers say.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{Obj, ObjectSet, PortRef, array, labels_match};
use crate::lint::roles::{
    Found, Role, Target, XiuPod, resolve, url_host_port, xiu_configs, xiu_pods,
};

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let configs = xiu_configs(set);
    let pods = xiu_pods(set, &configs);
    let mut out = Vec::new();
    services(set, &pods, &configs, &mut out);
    publish_auth(&pods, &configs, &mut out);
    relay_targets(set, &pods, &configs, &mut out);
    sidecar_origins(set, &pods, &mut out);
    listener_ports(&pods, &configs, &mut out);
    out
}

fn selected<'p, 'a>(svc: &Obj<'_>, pods: &'p [XiuPod<'a>]) -> Vec<&'p XiuPod<'a>> {
    let Some(sel) = svc.at("/spec/selector").and_then(Value::as_object) else {
        return Vec::new();
    };
    if sel.is_empty() {
        return Vec::new();
    }
    pods.iter()
        .filter(|p| p.w.obj.same_namespace(svc) && labels_match(sel, p.w.labels))
        .collect()
}

fn rtmp_ports(pod: &XiuPod<'_>, configs: &[Found<'_>]) -> Vec<i64> {
    let mut v: Vec<i64> = pod
        .configs
        .iter()
        .flat_map(|&i| configs[i].config.listeners.iter())
        .filter(|l| l.table == "rtmp" && l.enabled)
        .map(|l| l.port)
        .collect();
    if v.is_empty() {
        v.push(1935);
    }
    v
}

/// Does this Service port carry RTMP to these pods?
fn is_rtmp_port(port: &Value, pods: &[&XiuPod<'_>], configs: &[Found<'_>]) -> bool {
    let named_rtmp = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("rtmp"))
    };
    if named_rtmp(port.get("name")) || named_rtmp(port.get("targetPort")) {
        return true;
    }
    let target = port
        .get("targetPort")
        .or_else(|| port.get("port"))
        .and_then(PortRef::from_value);
    match target {
        Some(PortRef::Number(n)) => {
            n == 1935 || pods.iter().any(|p| rtmp_ports(p, configs).contains(&n))
        }
        _ => false,
    }
}

fn services(
    set: &ObjectSet<'_>,
    pods: &[XiuPod<'_>],
    configs: &[Found<'_>],
    out: &mut Vec<Finding>,
) {
    let mut exposed = [(Role::Origin, false), (Role::Edge, false)];
    for svc in set.of_kind("Service") {
        let ty = svc
            .at("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        let lb_fields: Vec<&str> = [
            "loadBalancerSourceRanges",
            "externalTrafficPolicy",
            "loadBalancerClass",
        ]
        .into_iter()
        .filter(|f| svc.at(&format!("/spec/{f}")).is_some())
        .collect();
        if ty == "ClusterIP" && !lb_fields.is_empty() {
            out.push(svc.finding(
                "loadbalancer-type-changed",
                Severity::Error,
                format!(
                    "type is ClusterIP but the Service sets {} - fields of a LoadBalancer: an overlay turned a LoadBalancer into a ClusterIP, so nothing outside the cluster reaches it; restore `type: LoadBalancer` (or drop the LoadBalancer fields if in-cluster is meant)",
                    lb_fields.join(", ")
                ),
            ));
        }
        let sel = selected(&svc, pods);
        let carries_rtmp = array(svc.at("/spec/ports")).any(|p| is_rtmp_port(p, &sel, configs));
        if !carries_rtmp || sel.is_empty() {
            continue;
        }
        let external = matches!(ty, "LoadBalancer" | "NodePort");
        for (role, seen) in exposed.iter_mut() {
            if external && sel.iter().any(|p| p.role == *role) {
                *seen = true;
            }
        }
        if ty != "LoadBalancer" {
            continue;
        }
        let edges: Vec<String> = sel
            .iter()
            .filter(|p| p.role == Role::Edge)
            .map(|p| p.w.obj.id())
            .collect();
        let origins = sel.iter().any(|p| p.role == Role::Origin);
        let lower = svc.name.to_ascii_lowercase();
        let named_for_publishing = lower.contains("publish") || lower.contains("ingest");
        if !edges.is_empty() && (origins || named_for_publishing) {
            out.push(svc.finding(
                "publish-lb-selects-edges",
                Severity::Error,
                format!(
                    "this RTMP LoadBalancer is for publishing but selects edge pods ({}): a publisher landing on an edge is refused (or, without edge auth, publishes a stream no other edge and no origin sees); select origins only (e.g. component: origin)",
                    edges.join(", ")
                ),
            ));
        }
        if origins || named_for_publishing {
            let ranges: Vec<&str> = array(svc.at("/spec/loadBalancerSourceRanges"))
                .filter_map(Value::as_str)
                .collect();
            if ranges.is_empty() || ranges.iter().any(|r| r.ends_with("/0")) {
                out.push(svc.finding(
                    "publish-lb-open",
                    Severity::Error,
                    format!(
                        "the publish LoadBalancer accepts RTMP from anywhere (loadBalancerSourceRanges {ranges:?}): every stranger's connection reaches the origins' RTMP handshake, and each stream they get in costs origin egress once per edge; set spec.loadBalancerSourceRanges to your publishers' networks"
                    ),
                ));
            }
        }
    }
    for (role, seen) in exposed {
        if seen || !pods.iter().any(|p| p.role == role) {
            continue;
        }
        let (who, which) = match role {
            Role::Origin => ("publishers", "origin"),
            Role::Edge => ("RTMP players", "edge"),
        };
        let first = pods.iter().find(|p| p.role == role).map(|p| p.w.obj);
        if let Some(w) = first {
            out.push(w.finding(
                "rtmp-not-exposed",
                Severity::Error,
                format!(
                    "no Service of type LoadBalancer (or NodePort) carries RTMP to the {which} pods, so {who} outside the cluster cannot reach them (RTMP cannot pass an HTTP Ingress); give the {which}s an RTMP Service of type LoadBalancer"
                ),
            ));
        }
    }
}

fn publish_auth(pods: &[XiuPod<'_>], configs: &[Found<'_>], out: &mut Vec<Finding>) {
    for p in pods {
        for &i in &p.configs {
            let f = &configs[i];
            if f.config.publish_needs_token {
                continue;
            }
            let why = match p.role {
                Role::Origin => {
                    "anyone who reaches the origin's RTMP port publishes (and every edge relays it)"
                }
                Role::Edge => {
                    "anyone who reaches the edge's RTMP port (the play LoadBalancer) publishes into it, under a real stream's name too"
                }
            };
            out.push(f.cm.finding(
                "xiu-publish-without-auth",
                Severity::Error,
                format!(
                    "data.{} (mounted by {}, an {}): RTMP publishing needs no token, so {why}; add `[rtmp.auth] pull_enabled = false, push_enabled = true, algorithm = \"simple\"` and a non-empty `[authsecret] push_password` (rendered from a Secret, never written into the ConfigMap)",
                    f.key,
                    p.w.obj.id(),
                    if p.role == Role::Origin { "origin" } else { "edge" },
                ),
            ));
        }
    }
}

fn relay_targets(
    set: &ObjectSet<'_>,
    pods: &[XiuPod<'_>],
    configs: &[Found<'_>],
    out: &mut Vec<Finding>,
) {
    for p in pods {
        for &i in &p.configs {
            let f = &configs[i];
            for (field, addr, port) in &f.config.relay_targets {
                if let Target::Unknown(why) = resolve(set, &p.w.obj, addr, *port) {
                    out.push(f.cm.finding(
                        "relay-target-unknown",
                        Severity::Error,
                        format!(
                            "data.{} {field} relays to {addr}:{port}, which nothing in this render serves: {why}; point it at a Service (and port) of the render",
                            f.key
                        ),
                    ));
                }
            }
        }
        let Some(sc) = &p.sidecar else { continue };
        for flag in ["origin-api", "origin-flv"] {
            for url in sc.values(flag) {
                let Some((host, port)) = url_host_port(url) else {
                    out.push(p.w.obj.finding(
                        "relay-target-unknown",
                        Severity::Error,
                        format!("sidecar --{flag} {url:?} is not an http://host:port URL; write it as http://<origin>:<port>"),
                    ));
                    continue;
                };
                if let Target::Unknown(why) = resolve(set, &p.w.obj, &host, port) {
                    out.push(p.w.obj.finding(
                        "relay-target-unknown",
                        Severity::Error,
                        format!(
                            "sidecar --{flag} {url} points at {host}:{port}, which nothing in this render serves: {why}; use http://<statefulset>-<i>.<its headless Service>:<port> of an origin"
                        ),
                    ));
                }
            }
        }
    }
}

/// Every origin pod must be listed, once per flag, api and flv paired in the same order: a
/// stream published to an origin the sidecar does not list never reaches this edge.
fn sidecar_origins(set: &ObjectSet<'_>, pods: &[XiuPod<'_>], out: &mut Vec<Finding>) {
    for p in pods {
        let Some(sc) = &p.sidecar else { continue };
        let hosts = |flag: &str| -> Vec<(String, Option<(String, i64)>)> {
            sc.values(flag)
                .into_iter()
                .filter_map(url_host_port)
                .map(|(host, port)| {
                    let pod = match resolve(set, &p.w.obj, &host, port) {
                        Target::StatefulSetPod(sts, i) => Some((sts.id(), i)),
                        _ => None,
                    };
                    (host, pod)
                })
                .collect()
        };
        let api = hosts("origin-api");
        let flv = hosts("origin-flv");
        let api_hosts: Vec<&str> = api.iter().map(|(h, _)| h.as_str()).collect();
        let flv_hosts: Vec<&str> = flv.iter().map(|(h, _)| h.as_str()).collect();
        if api_hosts != flv_hosts {
            out.push(p.w.obj.finding(
                "sidecar-origins-incomplete",
                Severity::Error,
                format!(
                    "the sidecar pairs --origin-api and --origin-flv by position, but their hosts differ ({api_hosts:?} vs {flv_hosts:?}): streams listed on one origin would be pulled from another; give one pair per origin, same host, same order"
                ),
            ));
        }
        // Which StatefulSets are origins here, and which of their ordinals the flags name.
        let mut origin_sets: Vec<(String, i64)> = Vec::new();
        for (_, pod) in api.iter().chain(flv.iter()) {
            if let Some((id, _)) = pod
                && !origin_sets.iter().any(|(s, _)| s == id)
                && let Some(o) = pods.iter().find(|o| &o.w.obj.id() == id)
            {
                origin_sets.push((id.clone(), o.w.replicas()));
            }
        }
        // Origins nobody names at all: every xiu origin StatefulSet in the namespace.
        for o in pods.iter().filter(|o| {
            o.role == Role::Origin
                && o.w.obj.kind == "StatefulSet"
                && o.w.obj.same_namespace(&p.w.obj)
        }) {
            if !origin_sets.iter().any(|(s, _)| *s == o.w.obj.id()) {
                origin_sets.push((o.w.obj.id(), o.w.replicas()));
            }
        }
        for (sts, replicas) in origin_sets {
            for (flag, list) in [("origin-api", &api), ("origin-flv", &flv)] {
                let named: Vec<i64> = list
                    .iter()
                    .filter_map(|(_, pod)| pod.as_ref())
                    .filter(|(id, _)| *id == sts)
                    .map(|(_, i)| *i)
                    .collect();
                let missing: Vec<i64> = (0..replicas).filter(|i| !named.contains(i)).collect();
                if !missing.is_empty() {
                    out.push(p.w.obj.finding(
                        "sidecar-origins-incomplete",
                        Severity::Error,
                        format!(
                            "{sts} runs {replicas} origins but the sidecar's --{flag} flags name no ordinal {missing:?}: streams published to those origins never reach this edge; add one --origin-api/--origin-flv pair per origin (ordinals 0..{})",
                            replicas - 1
                        ),
                    ));
                }
            }
        }
    }
}

/// A container port named like a xiu listener must be the port that listener opens, and the
/// listener must be on: Services, probes and NetworkPolicies all go by the container port.
fn listener_ports(pods: &[XiuPod<'_>], configs: &[Found<'_>], out: &mut Vec<Finding>) {
    for p in pods {
        for &i in &p.configs {
            let f = &configs[i];
            for c in &p.xiu_containers {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
                for port in array(c.get("ports")) {
                    let (Some(pname), Some(num)) = (
                        port.get("name").and_then(Value::as_str),
                        port.get("containerPort").and_then(Value::as_i64),
                    ) else {
                        continue;
                    };
                    let Some(l) = f.config.listeners.iter().find(|l| l.port_name() == pname) else {
                        continue;
                    };
                    let problem = if !l.enabled {
                        format!("[{}] is disabled, so nothing listens there", l.table)
                    } else if l.port != num {
                        format!("xiu listens on {} ([{}] port)", l.port, l.table)
                    } else {
                        continue;
                    };
                    out.push(p.w.obj.finding(
                        "xiu-port-mismatch",
                        Severity::Error,
                        format!(
                            "container \"{cname}\" declares port {pname}={num}, but its xiu config {}/{} data.{}: {problem}; Services, probes and NetworkPolicies using {pname} reach a closed port: make containerPort equal the config's port (or drop the port)",
                            f.cm.namespace.unwrap_or("-"),
                            f.cm.name,
                            f.key
                        ),
                    ));
                }
            }
        }
    }
}

//! NetworkPolicies against what the render needs to flow: every Service port, every relay
//! connection from an edge to an origin, and xiuload's watcher reading xiu's API through
//! `pods/proxy` (a connection from the API server, which is no pod). Plus CIDRs that are
//! placeholders or so wide they cover the pod network.
//!
//! Kubelet probes are not checked: traffic from a pod's own node is always allowed by
//! NetworkPolicy (Kubernetes documents it), so no policy can block a probe.

use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{
    Obj, ObjectSet, PortRef, Workload, array, label_selector_matches, labels_match,
};
use crate::lint::roles::{Target, resolve, url_host_port, xiu_configs, xiu_pods};

/// RFC 5737 documentation ranges: what deploy/ writes where the operator must set a CIDR.
const PLACEHOLDERS: &[(&str, [u8; 4], u32)] = &[
    ("192.0.2.0/24", [192, 0, 2, 0], 24),
    ("198.51.100.0/24", [198, 51, 100, 0], 24),
    ("203.0.113.0/24", [203, 0, 113, 0], 24),
];
/// An ipBlock wider than this (and not 0.0.0.0/0, which says "anyone" on purpose) almost surely
/// covers the cluster's pod network too (10.0.0.0/8 does on most clouds).
const NARROWEST_BROAD_PREFIX: u32 = 16;

#[derive(Clone, Copy)]
enum Dir {
    Ingress,
    Egress,
}

impl Dir {
    fn field(self) -> &'static str {
        match self {
            Dir::Ingress => "ingress",
            Dir::Egress => "egress",
        }
    }
    fn peers(self) -> &'static str {
        match self {
            Dir::Ingress => "from",
            Dir::Egress => "to",
        }
    }
    fn type_name(self) -> &'static str {
        match self {
            Dir::Ingress => "Ingress",
            Dir::Egress => "Egress",
        }
    }
}

/// Who is on the other end of a connection.
enum Peer<'a> {
    /// A pod of the render (labels, namespace).
    Pod(Option<&'a Map<String, Value>>, Option<&'a str>),
    /// Something outside the pod network (a load balancer's clients, the API server).
    External,
}

fn policies<'a>(set: &ObjectSet<'a>, w: &Workload<'_>, dir: Dir) -> Vec<Obj<'a>> {
    set.of_kind("NetworkPolicy")
        .filter(|p| p.same_namespace(&w.obj))
        .filter(|p| {
            let sel = p.at("/spec/podSelector").cloned().unwrap_or(Value::Null);
            sel.is_object() && label_selector_matches(&sel, w.labels)
        })
        .filter(|p| {
            let types: Vec<&str> = array(p.at("/spec/policyTypes"))
                .filter_map(Value::as_str)
                .collect();
            if types.is_empty() {
                // Default: Ingress always, Egress when egress rules are given.
                matches!(dir, Dir::Ingress) || p.at("/spec/egress").is_some()
            } else {
                types.contains(&dir.type_name())
            }
        })
        .collect()
}

/// Does a rule's `ports` cover this container port (number, and its name if any)?
fn ports_cover(rule: &Value, number: i64, name: Option<&str>) -> bool {
    let Some(ports) = rule.get("ports").and_then(Value::as_array) else {
        return true;
    };
    ports.is_empty()
        || ports.iter().any(|p| {
            if p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") != "TCP" {
                return false;
            }
            match p.get("port").and_then(PortRef::from_value) {
                None => true,
                Some(PortRef::Number(n)) => {
                    let end = p.get("endPort").and_then(Value::as_i64).unwrap_or(n);
                    (n..=end).contains(&number)
                }
                Some(PortRef::Name(s)) => name == Some(s.as_str()),
            }
        })
}

fn peer_matches(entry: &Value, peer: &Peer<'_>, policy_ns: Option<&str>) -> bool {
    if let Some(block) = entry.get("ipBlock") {
        let open = block.get("cidr").and_then(Value::as_str) == Some("0.0.0.0/0")
            && array(block.get("except")).next().is_none();
        return match peer {
            Peer::External => true,
            // Pod addresses fall in an ipBlock only by accident of the cluster's CIDRs; only
            // 0.0.0.0/0 is sure to contain them.
            Peer::Pod(..) => open,
        };
    }
    let Peer::Pod(labels, ns) = peer else {
        return false;
    };
    let pod_ok = entry
        .get("podSelector")
        .is_none_or(|sel| label_selector_matches(sel, *labels));
    let ns_ok = match entry.get("namespaceSelector") {
        None => match (policy_ns, ns) {
            (Some(a), Some(b)) => a == *b,
            _ => true,
        },
        Some(sel) => {
            let mut ns_labels = Map::new();
            if let Some(n) = ns.or(policy_ns) {
                ns_labels.insert(
                    "kubernetes.io/metadata.name".to_string(),
                    Value::String(n.to_string()),
                );
            }
            label_selector_matches(sel, Some(&ns_labels))
        }
    };
    pod_ok && ns_ok
}

/// `None`: not isolated in that direction (everything allowed). `Some(true/false)`: the policies
/// selecting the pod allow / do not allow this port to/from this peer.
fn allowed(
    set: &ObjectSet<'_>,
    w: &Workload<'_>,
    dir: Dir,
    number: i64,
    name: Option<&str>,
    peer: &Peer<'_>,
) -> Option<bool> {
    let pols = policies(set, w, dir);
    if pols.is_empty() {
        return None;
    }
    Some(pols.iter().any(|p| {
        array(p.at(&format!("/spec/{}", dir.field()))).any(|rule| {
            ports_cover(rule, number, name)
                && match rule.get(dir.peers()).and_then(Value::as_array) {
                    None => true,
                    Some(peers) if peers.is_empty() => true,
                    Some(peers) => peers.iter().any(|e| peer_matches(e, peer, p.namespace)),
                }
        })
    }))
}

/// The container port a Service/target port means on this workload: (number, name).
fn container_port<'a>(w: &Workload<'a>, target: &PortRef) -> Option<(i64, Option<&'a str>)> {
    for c in w.serving_containers() {
        for p in array(c.get("ports")) {
            let num = p.get("containerPort").and_then(Value::as_i64);
            let pname = p.get("name").and_then(Value::as_str);
            let hit = match target {
                PortRef::Number(n) => num == Some(*n),
                PortRef::Name(s) => pname == Some(s.as_str()),
            };
            if hit {
                return num.map(|n| (n, pname));
            }
        }
    }
    match target {
        PortRef::Number(n) => Some((*n, None)),
        PortRef::Name(_) => None,
    }
}

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    service_ports(set, &mut out);
    relays(set, &mut out);
    watcher(set, &mut out);
    cidrs(set, &mut out);
    out
}

fn service_ports(set: &ObjectSet<'_>, out: &mut Vec<Finding>) {
    for svc in set.of_kind("Service") {
        let Some(sel) = svc.at("/spec/selector").and_then(Value::as_object) else {
            continue;
        };
        if sel.is_empty() {
            continue;
        }
        let external = matches!(
            svc.at("/spec/type").and_then(Value::as_str),
            Some("LoadBalancer" | "NodePort")
        );
        for w in set.selected_by(&svc, |l| labels_match(sel, l)) {
            for port in array(svc.at("/spec/ports")) {
                let Some(target) = port
                    .get("targetPort")
                    .or_else(|| port.get("port"))
                    .and_then(PortRef::from_value)
                else {
                    continue;
                };
                let Some((number, name)) = container_port(&w, &target) else {
                    continue; // an unknown named port is service-target-port-unknown's finding
                };
                let from_anyone = policies(set, &w, Dir::Ingress)
                    .iter()
                    .any(|p| array(p.at("/spec/ingress")).any(|r| ports_cover(r, number, name)));
                let from_outside = allowed(set, &w, Dir::Ingress, number, name, &Peer::External);
                let blocked = if external {
                    from_outside == Some(false)
                } else {
                    from_outside.is_some() && !from_anyone
                };
                if blocked {
                    let who = if external {
                        "from outside the pod network (its LoadBalancer/NodePort clients)"
                    } else {
                        "from anywhere"
                    };
                    out.push(svc.finding(
                        "networkpolicy-blocks-port",
                        Severity::Error,
                        format!(
                            "port {} (container port {number} of {}) is allowed {who} by no ingress rule of the NetworkPolicies selecting those pods, so the Service's traffic is dropped; add an ingress rule for port {number}{}",
                            port.get("name").and_then(Value::as_str).unwrap_or("?"),
                            w.obj.id(),
                            if external { " with an ipBlock of the clients' networks" } else { "" }
                        ),
                    ));
                }
            }
        }
    }
}

/// Every relay connection (sidecar --origin-api/--origin-flv, xiu [rtmp.pull]/[[rtmp.push]]) must
/// pass the source pod's egress and the target pod's ingress policies.
fn relays(set: &ObjectSet<'_>, out: &mut Vec<Finding>) {
    let configs = xiu_configs(set);
    let pods = xiu_pods(set, &configs);
    for p in &pods {
        let mut targets: Vec<(String, String, i64)> = Vec::new();
        if let Some(sc) = &p.sidecar {
            for flag in ["origin-api", "origin-flv"] {
                for (host, port) in sc.values(flag).into_iter().filter_map(url_host_port) {
                    targets.push((format!("sidecar --{flag}"), host, port));
                }
            }
        }
        for &i in &p.configs {
            for (field, host, port) in &configs[i].config.relay_targets {
                targets.push((field.clone(), host.clone(), *port));
            }
        }
        for (what, host, port) in targets {
            let (dest, number) = match resolve(set, &p.w.obj, &host, port) {
                Target::StatefulSetPod(sts, _) => {
                    match set.workload("StatefulSet", &p.w.obj, sts.name) {
                        Some(w) => (w, port),
                        None => continue,
                    }
                }
                Target::Service(svc) => {
                    let Some(sel) = svc.at("/spec/selector").and_then(Value::as_object) else {
                        continue;
                    };
                    let Some(w) = set
                        .selected_by(&svc, |l| labels_match(sel, l))
                        .into_iter()
                        .next()
                    else {
                        continue;
                    };
                    let target = array(svc.at("/spec/ports"))
                        .find(|sp| sp.get("port").and_then(Value::as_i64) == Some(port))
                        .and_then(|sp| sp.get("targetPort").or_else(|| sp.get("port")))
                        .and_then(PortRef::from_value);
                    match target.and_then(|t| container_port(&w, &t)) {
                        Some((n, _)) => (w, n),
                        None => continue,
                    }
                }
                _ => continue, // relay-target-unknown reports it
            };
            let name = container_port(&dest, &PortRef::Number(number)).and_then(|(_, n)| n);
            let to_dest = Peer::Pod(dest.labels, dest.obj.namespace);
            let from_src = Peer::Pod(p.w.labels, p.w.obj.namespace);
            if allowed(set, &p.w, Dir::Egress, number, name, &to_dest) == Some(false) {
                out.push(p.w.obj.finding(
                    "networkpolicy-blocks-port",
                    Severity::Error,
                    format!(
                        "{what} connects to {host}:{number} ({}), but no egress rule of the NetworkPolicies selecting these pods allows port {number} to those pods: the relay never connects and this edge serves nothing from there; add an egress rule to {} on {number}",
                        dest.obj.id(),
                        dest.obj.id()
                    ),
                ));
            }
            if allowed(set, &dest, Dir::Ingress, number, name, &from_src) == Some(false) {
                out.push(dest.obj.finding(
                    "networkpolicy-blocks-port",
                    Severity::Error,
                    format!(
                        "{} reaches these pods on port {number} ({what} {host}), but no ingress rule of the NetworkPolicies selecting them allows it from those pods: the relay never connects; add an ingress rule from {} on {number}",
                        p.w.obj.id(),
                        p.w.obj.id()
                    ),
                ));
            }
        }
    }
}

/// xiuload's watcher reads xiu's API through `pods/proxy`: the API server opens that connection.
fn watcher(set: &ObjectSet<'_>, out: &mut Vec<Finding>) {
    let proxy_roles: Vec<Obj<'_>> = set
        .of_kind("Role")
        .filter(|r| {
            array(r.at("/rules")).any(|rule| {
                array(rule.get("resources")).any(|x| x.as_str() == Some("pods/proxy"))
                    && array(rule.get("verbs"))
                        .any(|v| matches!(v.as_str(), Some("get") | Some("*")))
            })
        })
        .collect();
    if proxy_roles.is_empty() {
        return;
    }
    let configs = xiu_configs(set);
    for p in xiu_pods(set, &configs) {
        let Some(role) = proxy_roles.iter().find(|r| r.same_namespace(&p.w.obj)) else {
            continue;
        };
        let api: Vec<i64> = p
            .configs
            .iter()
            .flat_map(|&i| configs[i].config.listeners.iter())
            .filter(|l| l.table == "httpapi")
            .map(|l| l.port)
            .collect();
        for port in if api.is_empty() { vec![8000] } else { api } {
            let name = container_port(&p.w, &PortRef::Number(port)).and_then(|(_, n)| n);
            if allowed(set, &p.w, Dir::Ingress, port, name, &Peer::External) == Some(false) {
                out.push(p.w.obj.finding(
                    "networkpolicy-blocks-port",
                    Severity::Error,
                    format!(
                        "{} lets xiuload's watcher read xiu's API (port {port}) through pods/proxy, but no ingress rule of the NetworkPolicies selecting these pods admits port {port} from outside the pod network - and that connection comes from the API server, not from a pod; add an ingress rule on {port} from the control plane's CIDR (ipBlock)",
                        role.id()
                    ),
                ));
            }
        }
    }
}

fn parse_cidr(text: &str) -> Option<(u32, u32)> {
    let (ip, prefix) = text.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    (prefix <= 32).then_some((u32::from(ip), prefix))
}

fn mask(prefix: u32) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

/// The placeholder range this CIDR lies in, if any.
fn placeholder(cidr: &str) -> Option<&'static str> {
    let (ip, prefix) = parse_cidr(cidr)?;
    PLACEHOLDERS
        .iter()
        .find(|(_, net, p)| prefix >= *p && ip & mask(*p) == u32::from(Ipv4Addr::from(*net)))
        .map(|(name, _, _)| *name)
}

fn cidrs(set: &ObjectSet<'_>, out: &mut Vec<Finding>) {
    for np in set.of_kind("NetworkPolicy") {
        for dir in [Dir::Ingress, Dir::Egress] {
            for rule in array(np.at(&format!("/spec/{}", dir.field()))) {
                for peer in array(rule.get(dir.peers())) {
                    let Some(cidr) = peer.pointer("/ipBlock/cidr").and_then(Value::as_str) else {
                        continue;
                    };
                    if let Some(range) = placeholder(cidr) {
                        out.push(np.finding(
                            "cidr-placeholder",
                            Severity::Error,
                            format!(
                                "{} ipBlock {cidr} is a placeholder (documentation range {range}): it matches no real address, so this rule admits nobody; set the CIDR it stands for (see the comment above it and deploy/README.md, \"What to set\")",
                                dir.field()
                            ),
                        ));
                    } else if let Some((_, prefix)) = parse_cidr(cidr)
                        && prefix > 0
                        && prefix < NARROWEST_BROAD_PREFIX
                    {
                        out.push(np.finding(
                            "networkpolicy-cidr-too-broad",
                            Severity::Error,
                            format!(
                                "{} ipBlock {cidr} is a /{prefix}: it almost surely covers the cluster's pod (and node) addresses too, so every pod may use this rule; narrow it to the subnets meant (e.g. the load balancer's and the nodes' /24s), or use 0.0.0.0/0 if anyone is meant",
                                dir.field()
                            ),
                        ));
                    }
                }
            }
        }
    }
    for svc in set.of_kind("Service") {
        for cidr in array(svc.at("/spec/loadBalancerSourceRanges")).filter_map(Value::as_str) {
            if let Some(range) = placeholder(cidr) {
                out.push(svc.finding(
                    "cidr-placeholder",
                    Severity::Error,
                    format!(
                        "loadBalancerSourceRanges {cidr} is a placeholder (documentation range {range}): the load balancer admits nobody real; set the networks your clients (publishers) connect from"
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::placeholder;
    use crate::lint::test_support::*;

    #[test]
    fn placeholders() {
        assert_eq!(placeholder("192.0.2.0/24"), Some("192.0.2.0/24"));
        assert_eq!(placeholder("203.0.113.7/32"), Some("203.0.113.0/24"));
        assert_eq!(placeholder("10.20.0.0/24"), None);
        assert_eq!(placeholder("192.0.0.0/16"), None);
    }

    const PODS: &str = "
kind: Deployment
metadata: {name: web, namespace: ns}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: http}}
---
kind: Service
metadata: {name: web, namespace: ns}
spec: {type: TYPE, selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
---
kind: NetworkPolicy
metadata: {name: deny, namespace: ns}
spec: {podSelector: {}, policyTypes: [Ingress]}
";

    fn with_rule(ty: &str, rule: &str) -> String {
        format!(
            "{}---\nkind: NetworkPolicy\nmetadata: {{name: allow, namespace: ns}}\nspec: {{podSelector: {{matchLabels: {{app: web}}}}, ingress: [{rule}]}}\n",
            PODS.replace("TYPE", ty)
        )
    }

    #[test]
    fn service_port_blocked_or_allowed() {
        assert!(has(
            &PODS.replace("TYPE", "ClusterIP"),
            "networkpolicy-blocks-port"
        ));
        let pod_peer =
            "{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8080}]}";
        assert!(lint_yaml(&with_rule("ClusterIP", pod_peer)).is_empty());
        // a LoadBalancer's clients are not pods: a pod-only rule does not let them in
        assert!(has(
            &with_rule("LoadBalancer", pod_peer),
            "networkpolicy-blocks-port"
        ));
        let ip_peer = "{from: [{ipBlock: {cidr: 10.1.0.0/24}}], ports: [{port: http}]}";
        assert!(lint_yaml(&with_rule("LoadBalancer", ip_peer)).is_empty());
        let wrong_port = "{from: [{ipBlock: {cidr: 10.1.0.0/24}}], ports: [{port: 9090}]}";
        assert!(has(
            &with_rule("LoadBalancer", wrong_port),
            "networkpolicy-blocks-port"
        ));
    }

    #[test]
    fn cidr_rules() {
        let placeholder = "{from: [{ipBlock: {cidr: 203.0.113.0/24}}], ports: [{port: 8080}]}";
        assert_eq!(
            rules_of(&lint_yaml(&with_rule("ClusterIP", placeholder))),
            vec!["cidr-placeholder"]
        );
        let broad = "{from: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 8080}]}";
        assert_eq!(
            rules_of(&lint_yaml(&with_rule("ClusterIP", broad))),
            vec!["networkpolicy-cidr-too-broad"]
        );
        let anyone = "{from: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 8080}]}";
        assert!(lint_yaml(&with_rule("ClusterIP", anyone)).is_empty());
    }
}

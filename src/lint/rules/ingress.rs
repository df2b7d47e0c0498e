//! Ingress backends must resolve to a real Service port; TLS hosts need a
//! rule; RTMP cannot go through an HTTP Ingress.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{Obj, ObjectSet, PortRef, array};

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for ing in set.of_kind("Ingress") {
        for backend in backends(&ing) {
            check_backend(set, &ing, backend, &mut out);
        }
        check_tls(&ing, &mut out);
    }
    out
}

fn backends<'a>(ing: &Obj<'a>) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = ing.at("/spec/defaultBackend/service").into_iter().collect();
    for rule in array(ing.at("/spec/rules")) {
        for path in array(rule.pointer("/http/paths")) {
            v.extend(path.pointer("/backend/service"));
        }
    }
    v
}

fn check_backend(set: &ObjectSet<'_>, ing: &Obj<'_>, backend: &Value, out: &mut Vec<Finding>) {
    let name = backend.get("name").and_then(Value::as_str).unwrap_or("");
    let port = backend
        .pointer("/port/number")
        .or_else(|| backend.pointer("/port/name"))
        .and_then(PortRef::from_value);
    let Some(port) = port else { return };
    let is_rtmp = |p: &PortRef| match p {
        PortRef::Number(n) => *n == 1935,
        PortRef::Name(s) => s.eq_ignore_ascii_case("rtmp"),
    };

    let Some(svc) = set.find("Service", ing, name) else {
        out.push(ing.finding(
            "ingress-backend-port-unknown",
            Severity::Error,
            format!("backend Service \"{name}\" is not in this set; create it or fix backend.service.name"),
        ));
        if is_rtmp(&port) {
            out.push(rtmp_finding(ing, name, &port));
        }
        return;
    };
    let svc_port = array(svc.at("/spec/ports")).find(|p| match &port {
        PortRef::Number(n) => p.get("port").and_then(Value::as_i64) == Some(*n),
        PortRef::Name(s) => p.get("name").and_then(Value::as_str) == Some(s.as_str()),
    });
    match svc_port {
        None => {
            out.push(ing.finding(
                "ingress-backend-port-unknown",
                Severity::Error,
                format!(
                    "backend port {port} is not a port of Service \"{name}\"; use one of its ports' names or numbers"
                ),
            ));
            if is_rtmp(&port) {
                out.push(rtmp_finding(ing, name, &port));
            }
        }
        Some(p) => {
            let number = p.get("port").and_then(Value::as_i64).map(PortRef::Number);
            let pname = p
                .get("name")
                .and_then(Value::as_str)
                .map(|s| PortRef::Name(s.into()));
            if [number, pname].iter().flatten().any(is_rtmp) {
                out.push(rtmp_finding(ing, name, &port));
            }
        }
    }
}

fn rtmp_finding(ing: &Obj<'_>, svc: &str, port: &PortRef) -> Finding {
    ing.finding(
        "rtmp-through-http-ingress",
        Severity::Error,
        format!(
            "backend {svc}:{port} is RTMP, which is not HTTP and cannot pass an HTTP Ingress; expose RTMP with a Service of type LoadBalancer (or a TCP proxy) instead"
        ),
    )
}

fn check_tls(ing: &Obj<'_>, out: &mut Vec<Finding>) {
    let rule_hosts: Vec<&str> = array(ing.at("/spec/rules"))
        .filter_map(|r| r.get("host").and_then(Value::as_str))
        .collect();
    for tls in array(ing.at("/spec/tls")) {
        for host in array(tls.get("hosts")).filter_map(Value::as_str) {
            if !rule_hosts.iter().any(|r| host_matches(host, r)) {
                out.push(ing.finding(
                    "ingress-tls-host-without-rule",
                    Severity::Warning,
                    format!(
                        "TLS host \"{host}\" has no rule in spec.rules, so nothing routes it; add a rule for it or drop it from spec.tls"
                    ),
                ));
            }
        }
    }
}

/// Exact match, or a `*.domain` wildcard on either side covering one label.
fn host_matches(a: &str, b: &str) -> bool {
    let wild = |w: &str, h: &str| {
        w.strip_prefix("*.")
            .and_then(|suffix| h.split_once('.').map(|(_, rest)| rest == suffix))
            .unwrap_or(false)
    };
    a == b || wild(a, b) || wild(b, a)
}

#[cfg(test)]
mod tests {
    use super::host_matches;
    use crate::lint::test_support::*;

    const SVC: &str = "
kind: Service
metadata: {name: s}
spec:
  ports:
  - {name: hls, port: 8080}
  - {name: rtmp, port: 1935}
  - {name: media, port: 1935}
";

    fn ing(port: &str, svc: &str) -> String {
        format!(
            "{SVC}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: i}}
spec:
  tls: [{{hosts: [a.example.com], secretName: t}}]
  rules:
  - host: a.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: {svc}, port: {port}}}}}
"
        )
    }

    #[test]
    fn backend_ok() {
        assert!(lint_yaml(&ing("{name: hls}", "s")).is_empty());
        assert!(lint_yaml(&ing("{number: 8080}", "s")).is_empty());
    }

    #[test]
    fn backend_unknown_port_or_service() {
        assert_eq!(
            rules_of(&lint_yaml(&ing("{name: http}", "s"))),
            vec!["ingress-backend-port-unknown"]
        );
        assert_eq!(
            rules_of(&lint_yaml(&ing("{number: 80}", "s"))),
            vec!["ingress-backend-port-unknown"]
        );
        assert_eq!(
            rules_of(&lint_yaml(&ing("{name: hls}", "nosuch"))),
            vec!["ingress-backend-port-unknown"]
        );
    }

    #[test]
    fn rtmp_backend() {
        assert!(has(&ing("{name: rtmp}", "s"), "rtmp-through-http-ingress"));
        // Named differently but the Service port is 1935.
        assert!(has(&ing("{name: media}", "s"), "rtmp-through-http-ingress"));
        assert!(!has(&ing("{name: hls}", "s"), "rtmp-through-http-ingress"));
    }

    #[test]
    fn tls_host_without_rule() {
        let y = ing("{name: hls}", "s").replace("hosts: [a.example.com]", "hosts: [b.example.com]");
        assert_eq!(
            rules_of(&lint_yaml(&y)),
            vec!["ingress-tls-host-without-rule"]
        );
    }

    #[test]
    fn wildcards() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("a.example.com", "*.example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("a.example.com", "b.example.com"));
    }
}

//! Ingress backends must resolve to a real Service port; TLS hosts need a
//! rule; RTMP cannot go through an HTTP Ingress.

use serde_json::Value;

use crate::lint::finding::{Finding, Severity};
use crate::lint::objects::{Obj, ObjectSet, PortRef, array};

/// An HTTP-FLV viewer is one request that lasts as long as the viewer watches: a proxy limit on a
/// whole request shorter than this cuts viewers mid-session.
pub const VIEWER_SESSION_SECONDS: u64 = 4 * 3600;
/// A limit between two reads/writes only has to outlast a pause of the stream (a publisher
/// reconnecting to another origin, a relay re-pulling): nginx's own default.
const STALL_SECONDS: u64 = 60;
const ALB_REQUEST_TIMEOUT: &str = "ingress.alb.yc.io/request-timeout";
/// The Yandex ALB's request timeout when the annotation is absent.
const ALB_DEFAULT_REQUEST_TIMEOUT: u64 = 60;
const NGINX: &str = "nginx.ingress.kubernetes.io/";

pub fn check(set: &ObjectSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for ing in set.of_kind("Ingress") {
        for backend in backends(&ing) {
            check_backend(set, &ing, backend, &mut out);
        }
        check_tls(&ing, &mut out);
        if backends(&ing).iter().any(|b| is_flv_backend(set, &ing, b)) {
            check_flv(&ing, &mut out);
        }
        if backends(&ing)
            .iter()
            .any(|b| is_hls_backend(set, &ing, b) && several_pods(set, &ing, b))
        {
            check_hls_affinity(&ing, &mut out);
        }
    }
    out
}

/// A backend is HTTP-FLV when its Service port (or the port it names) is called *flv*.
fn is_flv_backend(set: &ObjectSet<'_>, ing: &Obj<'_>, backend: &Value) -> bool {
    let flv = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|s| s.to_ascii_lowercase().contains("flv"))
    };
    if flv(backend.pointer("/port/name")) {
        return true;
    }
    let name = backend.get("name").and_then(Value::as_str).unwrap_or("");
    let number = backend.pointer("/port/number").and_then(Value::as_i64);
    set.find("Service", ing, name).is_some_and(|svc| {
        array(svc.at("/spec/ports")).any(|p| {
            p.get("port").and_then(Value::as_i64) == number
                && number.is_some()
                && (flv(p.get("name")) || flv(p.get("targetPort")))
        })
    })
}

/// A backend is HLS when its Service port (or the port it names) is called *hls*.
fn is_hls_backend(set: &ObjectSet<'_>, ing: &Obj<'_>, backend: &Value) -> bool {
    let hls = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|s| s.to_ascii_lowercase().contains("hls"))
    };
    if hls(backend.pointer("/port/name")) {
        return true;
    }
    let name = backend.get("name").and_then(Value::as_str).unwrap_or("");
    let Some(number) = backend.pointer("/port/number").and_then(Value::as_i64) else {
        return false;
    };
    set.find("Service", ing, name).is_some_and(|svc| {
        array(svc.at("/spec/ports")).any(|p| {
            p.get("port").and_then(Value::as_i64) == Some(number)
                && (hls(p.get("name")) || hls(p.get("targetPort")))
        })
    })
}

/// Does the backend Service select a workload that runs more than one pod (replicas or an HPA)?
fn several_pods(set: &ObjectSet<'_>, ing: &Obj<'_>, backend: &Value) -> bool {
    let name = backend.get("name").and_then(Value::as_str).unwrap_or("");
    let Some(svc) = set.find("Service", ing, name) else {
        return false;
    };
    let Some(sel) = svc.at("/spec/selector").and_then(Value::as_object) else {
        return false;
    };
    !sel.is_empty()
        && set
            .selected_by(&svc, |l| crate::lint::objects::labels_match(sel, l))
            .iter()
            .any(|w| w.replicas() > 1 || !set.hpas_targeting(w).is_empty())
}

/// Each edge cuts its own HLS segments (own numbering and boundaries): a viewer whose requests
/// land on two edges gets two unrelated playlists. Only a per-viewer affinity keeps it on one.
fn check_hls_affinity(ing: &Obj<'_>, out: &mut Vec<Finding>) {
    let cookie_nginx = annotation(ing, &format!("{NGINX}affinity")) == Some("cookie");
    let alb_affinity = ing
        .at("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| {
            a.keys()
                .any(|k| k.starts_with("ingress.alb.yc.io/session-affinity"))
        });
    if cookie_nginx || alb_affinity {
        return;
    }
    let hash = annotation(ing, &format!("{NGINX}upstream-hash-by"));
    let why = match hash {
        Some(h) if h.contains("remote_addr") => format!(
            "upstream-hash-by {h:?} hashes the client address, which behind externalTrafficPolicy: Cluster is a node's address and behind a NAT is shared by many viewers"
        ),
        Some(_) => return, // hashing a viewer-specific value is the operator's choice
        None => "nothing keeps one viewer on one edge".to_string(),
    };
    out.push(ing.finding(
        "hls-without-affinity",
        Severity::Error,
        format!(
            "HLS backend without per-viewer affinity: {why}; each edge cuts its own segments, so a viewer moved between edges gets unrelated playlists; use cookie affinity ({NGINX}affinity: cookie, or ingress.alb.yc.io/session-affinity-cookie on the Yandex ALB)"
        ),
    ));
}

fn annotation<'a>(ing: &Obj<'a>, key: &str) -> Option<&'a str> {
    ing.at("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn is_nginx(ing: &Obj<'_>) -> bool {
    let class = ing
        .at("/spec/ingressClassName")
        .and_then(Value::as_str)
        .or_else(|| annotation(ing, "kubernetes.io/ingress.class"))
        .unwrap_or("");
    class.contains("nginx")
        || ing
            .at("/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.keys().any(|k| k.starts_with(NGINX)))
}

/// "3600", "3600s", "60m", "24h" -> seconds.
fn seconds(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last()? {
        's' => (&t[..t.len() - 1], 1),
        'm' => (&t[..t.len() - 1], 60),
        'h' => (&t[..t.len() - 1], 3600),
        _ => (t, 1),
    };
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}

fn check_flv(ing: &Obj<'_>, out: &mut Vec<Finding>) {
    if is_nginx(ing) {
        let buffering = annotation(ing, &format!("{NGINX}proxy-buffering"));
        if buffering.is_some_and(|v| !v.eq_ignore_ascii_case("off")) {
            out.push(ing.finding(
                "flv-proxy-buffering",
                Severity::Error,
                format!(
                    "{NGINX}proxy-buffering is {:?} on an HTTP-FLV backend: nginx holds the stream in its buffers instead of passing each frame on, so viewers stall and the proxy holds megabytes per viewer; set it to \"off\"",
                    buffering.unwrap_or_default()
                ),
            ));
        }
        for key in ["proxy-read-timeout", "proxy-send-timeout"] {
            if let Some(v) = annotation(ing, &format!("{NGINX}{key}"))
                && let Some(secs) = seconds(v)
                && secs < STALL_SECONDS
            {
                out.push(ing.finding(
                    "ingress-timeout-too-short",
                    Severity::Error,
                    format!(
                        "{NGINX}{key} is {secs} s on an HTTP-FLV backend: a viewer whose stream pauses that long (publisher reconnecting to another origin, relay re-pulling) is cut; use at least {STALL_SECONDS} s (deploy/ uses 3600)"
                    ),
                ));
            }
        }
    }
    let alb = ing
        .at("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.keys().any(|k| k.starts_with("ingress.alb.yc.io/")));
    if alb {
        let set_to = annotation(ing, ALB_REQUEST_TIMEOUT);
        let secs = set_to
            .and_then(seconds)
            .unwrap_or(ALB_DEFAULT_REQUEST_TIMEOUT);
        if secs < VIEWER_SESSION_SECONDS {
            out.push(ing.finding(
                "ingress-timeout-too-short",
                Severity::Error,
                format!(
                    "{ALB_REQUEST_TIMEOUT} is {} on an HTTP-FLV backend: the ALB limits a WHOLE request to that, and an FLV viewer's request lasts the whole session, so every viewer is cut after {secs} s; set it to at least {} s (deploy/ uses 86400s)",
                    set_to.map_or_else(|| format!("unset (default {ALB_DEFAULT_REQUEST_TIMEOUT} s)"), |v| format!("{v:?}")),
                    VIEWER_SESSION_SECONDS
                ),
            ));
        }
    }
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
    let tls_hosts: Vec<&str> = array(ing.at("/spec/tls"))
        .flat_map(|t| array(t.get("hosts")))
        .filter_map(Value::as_str)
        .collect();
    for host in &rule_hosts {
        if !tls_hosts.iter().any(|t| host_matches(t, host)) {
            out.push(ing.finding(
                "ingress-tls-missing",
                Severity::Error,
                format!(
                    "host \"{host}\" has a rule but no spec.tls entry: it is served over plain HTTP only, and a player on an HTTPS page may not load it (mixed content); add it to spec.tls with a secretName"
                ),
            ));
        }
    }
    for (i, tls) in array(ing.at("/spec/tls")).enumerate() {
        let secret = tls.get("secretName").and_then(Value::as_str).unwrap_or("");
        if secret.is_empty() {
            out.push(ing.finding(
                "ingress-tls-missing",
                Severity::Error,
                format!(
                    "spec.tls[{i}] has no secretName: the controller serves its default (self-signed) certificate and players reject it; name the certificate Secret (cert-manager creates it from the issuer annotation; Yandex ALB: yc-certmgr-cert-id-<id>)"
                ),
            ));
        }
    }
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

    fn flv_ing(annotations: &str) -> String {
        format!(
            "{SVC}  - {{name: httpflv, port: 8081}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: f, annotations: {annotations}}}
spec:
  tls: [{{hosts: [a.example.com], secretName: t}}]
  rules:
  - host: a.example.com
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: s, port: {{name: httpflv}}}}}}}}]}}
"
        )
    }

    #[test]
    fn flv_buffering_and_timeouts() {
        let nginx = "{nginx.ingress.kubernetes.io/proxy-buffering: 'off', nginx.ingress.kubernetes.io/proxy-read-timeout: '3600'}";
        assert!(
            lint_yaml(&flv_ing(nginx)).is_empty(),
            "{:?}",
            lint_yaml(&flv_ing(nginx))
        );
        assert_eq!(
            rules_of(&lint_yaml(&flv_ing(&nginx.replace("'off'", "'on'")))),
            vec!["flv-proxy-buffering"]
        );
        assert_eq!(
            rules_of(&lint_yaml(&flv_ing(&nginx.replace("'3600'", "'30'")))),
            vec!["ingress-timeout-too-short"]
        );
        let alb = "{ingress.alb.yc.io/group-name: g, ingress.alb.yc.io/request-timeout: 86400s}";
        assert!(lint_yaml(&flv_ing(alb)).is_empty());
        let f = lint_yaml(&flv_ing(&alb.replace("86400s", "3600s")));
        assert_eq!(rules_of(&f), vec!["ingress-timeout-too-short"]);
        assert!(f[0].message.contains("3600 s"), "{}", f[0].message);
        // unset: the ALB's 60 s default
        assert!(has(
            &flv_ing("{ingress.alb.yc.io/group-name: g}"),
            "ingress-timeout-too-short"
        ));
        // the same limits on an HLS backend are fine (short requests)
        assert!(
            lint_yaml(&ing("{name: hls}", "s").replace(
                "metadata: {name: i}",
                "metadata: {name: i, annotations: {ingress.alb.yc.io/request-timeout: 30s}}"
            ))
            .is_empty()
        );
    }

    #[test]
    fn hls_affinity() {
        // A Service selecting two edge pods; the HLS Ingress in front of it.
        let edges = "
kind: Deployment
metadata: {name: edge}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: edge}}
    spec: {containers: [{name: c, ports: [{name: hls, containerPort: 8080}], readinessProbe: {tcpSocket: {port: hls}}}]}
---
kind: Service
metadata: {name: e}
spec: {selector: {app: edge}, ports: [{name: hls, port: 8080, targetPort: hls}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i, annotations: ANN}
spec:
  tls: [{hosts: [a.example.com], secretName: t}]
  rules:
  - host: a.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: e, port: {name: hls}}}}]}
";
        let with = |ann: &str| edges.replace("ANN", ann);
        assert!(lint_yaml(&with("{nginx.ingress.kubernetes.io/affinity: cookie}")).is_empty());
        assert!(
            lint_yaml(&with(
                "{ingress.alb.yc.io/session-affinity-cookie: 'name=x'}"
            ))
            .is_empty()
        );
        let f = lint_yaml(&with(
            "{nginx.ingress.kubernetes.io/upstream-hash-by: $binary_remote_addr}",
        ));
        assert_eq!(rules_of(&f), vec!["hls-without-affinity"]);
        assert!(f[0].message.contains("node's address"), "{}", f[0].message);
        assert!(has(&with("{a: b}"), "hls-without-affinity"));
        // one pod: nothing to stick to
        assert!(lint_yaml(&with("{a: b}").replace("replicas: 2", "replicas: 1")).is_empty());
    }

    #[test]
    fn host_without_tls_or_tls_without_secret() {
        let y = ing("{name: hls}", "s").replace("secretName: t", "secretName: ''");
        assert_eq!(rules_of(&lint_yaml(&y)), vec!["ingress-tls-missing"]);
        let y = ing("{name: hls}", "s")
            .replace("  tls: [{hosts: [a.example.com], secretName: t}]\n", "");
        assert_eq!(rules_of(&lint_yaml(&y)), vec!["ingress-tls-missing"]);
    }

    #[test]
    fn tls_host_without_rule() {
        let y = ing("{name: hls}", "s").replace("hosts: [a.example.com]", "hosts: [b.example.com]");
        // a.example.com is now also a host without TLS
        assert_eq!(
            rules_of(&lint_yaml(&y)),
            vec!["ingress-tls-host-without-rule", "ingress-tls-missing"]
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

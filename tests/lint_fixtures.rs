//! Lints the user's original (seed) manifests, and mutation-tests the linter on the rendered
//! overlays: `tests/fixtures/clean/{prod,yandex-alb}.yaml` are `kubectl kustomize
//! deploy/overlays/<name>` with the placeholder CIDRs set (`.ci/deploy-checks.sh fixtures` keeps
//! them equal to the current render). Each test injects ONE defect of issue 13/15 into a clean
//! render and expects the rule that catches it, on the object it names; the clean renders have no
//! finding at all.

use std::path::PathBuf;

use serde_json::{Value, json};
use xiuload::lint::{Finding, LintError, SourcedDoc, lint_documents, lint_paths, load_paths};

fn fixtures(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

fn find<'a>(findings: &'a [Finding], rule: &str, needle: &str) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| f.rule == rule && f.message.contains(needle))
        .collect()
}

#[test]
fn seed_reports_each_defect() {
    let findings = lint_paths(&[fixtures("seed")]).expect("seed parses");
    for f in &findings {
        eprintln!("{f}");
    }
    let one = |rule: &str, object: &str, needle: &str| {
        let hits = find(&findings, rule, needle);
        assert_eq!(
            hits.len(),
            1,
            "expected one {rule} containing {needle:?}, got {hits:?}"
        );
        assert_eq!(hits[0].object, object);
    };
    one(
        "service-selector-no-match",
        "Service/xiu-prod-namespace/xiu-prod-service",
        "app=xiu-prod-pod",
    );
    one(
        "rollout-can-take-all-down",
        "Deployment/xiu-prod-namespace/xiu-prod-deployment",
        "maxUnavailable 1",
    );
    one(
        "hpa-target-too-low",
        "HorizontalPodAutoscaler/xiu-prod-namespace/xiu-prod-autoscaling",
        "1 %",
    );
    let cm = "ConfigMap/xiu-prod-namespace/xiu-node-configmap";
    one("xiu-config-invalid", cm, "need_record");
    one("xiu-config-invalid", cm, "[authsecret]");
    one("xiu-config-invalid", cm, "`level`");
    one("xiu-config-hls-no-s3", cm, "m3u8.rs:69");
    one(
        "xiu-edge-no-relay",
        "Deployment/xiu-prod-namespace/xiu-prod-deployment",
        "HPA",
    );
    // Anyone can publish, and the only Service carrying RTMP is a ClusterIP behind an Ingress.
    one("xiu-publish-without-auth", cm, "needs no token");
    one(
        "rtmp-not-exposed",
        "Deployment/xiu-prod-namespace/xiu-prod-deployment",
        "publishers",
    );
    // The ALB's default 60 s request timeout cuts every HTTP-FLV viewer after a minute.
    one(
        "ingress-timeout-too-short",
        "Ingress/xiu-prod-namespace/xiu-prod-ingress",
        "default 60 s",
    );
    one(
        "xiu-sigterm-ignored",
        "Deployment/xiu-prod-namespace/xiu-prod-deployment",
        "SIGINT",
    );
    assert!(
        findings
            .iter()
            .all(|f| f.file.starts_with(fixtures("seed")))
    );
    // Exactly those twelve: in particular
    // - hpa-resource-without-request does NOT fire: the container sets
    //   limits.memory only, and Kubernetes defaults requests to limits;
    // - service-target-port-unknown cannot be judged (the Service selects no
    //   pods); the numeric targetPorts are declared containerPorts anyway;
    // - the readinessProbe (tcpSocket 8080) is present and its port declared;
    // - the Ingress backends (hls, httpflv) are ports of the Service and every
    //   TLS host has a rule;
    // - no NetworkPolicy, no Pod Security label: nothing for those rules to judge.
    assert_eq!(findings.len(), 12, "{findings:#?}");
}

#[test]
fn yaml_syntax_error_is_lint_error() {
    let err = lint_paths(&[fixtures("bad")]).unwrap_err();
    assert!(matches!(err, LintError::Yaml { .. }), "{err}");
    assert!(err.to_string().contains("broken.yaml:"), "{err}");
}

// ------------------------------------------------------------------------------------------
// mutations of the rendered overlays
// ------------------------------------------------------------------------------------------

const NS: &str = "xiu-prod-namespace";

fn render(overlay: &str) -> Vec<SourcedDoc> {
    load_paths(&[fixtures("clean").join(format!("{overlay}.yaml"))]).expect("fixture parses")
}

/// The object of that kind whose name is `name` or, for generated ConfigMaps, `name-<hash>`.
fn obj<'a>(docs: &'a mut [SourcedDoc], kind: &str, name: &str) -> &'a mut Value {
    docs.iter_mut()
        .map(|d| &mut d.value)
        .find(|v| {
            let n = v["metadata"]["name"].as_str().unwrap_or("");
            v["kind"] == kind
                && (n == name
                    || n.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('-') && kind == "ConfigMap"))
        })
        .unwrap_or_else(|| panic!("no {kind} {name} in the fixture"))
}

fn id(docs: &[SourcedDoc], kind: &str, name: &str) -> String {
    let mut copy = docs.to_vec();
    let v = obj(&mut copy, kind, name);
    format!("{kind}/{NS}/{}", v["metadata"]["name"].as_str().unwrap())
}

fn container<'a>(workload: &'a mut Value, name: &str) -> &'a mut Value {
    let spec = &mut workload["spec"]["template"]["spec"];
    for list in ["containers", "initContainers"] {
        if let Some(i) = spec[list]
            .as_array()
            .and_then(|a| a.iter().position(|c| c["name"] == name))
        {
            return &mut spec[list][i];
        }
    }
    panic!("no container {name}")
}

fn edit_toml(docs: &mut [SourcedDoc], cm: &str, key: &str, from: &str, to: &str) {
    let v = obj(docs, "ConfigMap", cm);
    let text = v["data"][key].as_str().unwrap().to_string();
    assert!(text.contains(from), "{cm} {key} has no {from:?}");
    v["data"][key] = Value::String(text.replacen(from, to, 1));
}

fn edit_args(docs: &mut [SourcedDoc], from: &str, to: &str) {
    let d = obj(docs, "Deployment", "xiu-edge");
    let args = &mut container(d, "sidecar")["args"];
    let mut hit = false;
    for a in args.as_array_mut().unwrap() {
        if let Some(s) = a.as_str()
            && s.contains(from)
        {
            *a = Value::String(s.replacen(from, to, 1));
            hit = true;
        }
    }
    assert!(hit, "no sidecar arg contains {from:?}");
}

/// Lints `docs` and returns the findings of `rule` on `object`; fails (listing every finding)
/// when there is none. Each must say what to do (a fix after the diagnosis).
fn expect(docs: Vec<SourcedDoc>, rule: &str, object: &str) -> Vec<Finding> {
    let all = lint_documents(docs);
    let hits: Vec<Finding> = all
        .iter()
        .filter(|f| f.rule == rule && f.object == object)
        .cloned()
        .collect();
    assert!(
        !hits.is_empty(),
        "expected {rule} on {object}, got:\n{}",
        all.iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for f in &hits {
        let fix = f.message.split_once("; ").map(|(_, fix)| fix).unwrap_or("");
        assert!(!fix.trim().is_empty(), "finding without a fix: {f}");
    }
    hits
}

#[test]
fn clean_renders_have_no_finding() {
    for overlay in ["prod", "yandex-alb"] {
        let findings = lint_documents(render(overlay));
        assert!(findings.is_empty(), "{overlay}: {findings:#?}");
    }
}

// --- defect 2: publishing -----------------------------------------------------------------

#[test]
fn publish_lb_selecting_edges() {
    let mut d = render("prod");
    obj(&mut d, "Service", "xiu-origin-publish")["spec"]["selector"]["component"] = json!("edge");
    expect(
        d,
        "publish-lb-selects-edges",
        &format!("Service/{NS}/xiu-origin-publish"),
    );
}

#[test]
fn publish_lb_open_to_everyone() {
    let mut d = render("prod");
    obj(&mut d, "Service", "xiu-origin-publish")["spec"]
        .as_object_mut()
        .unwrap()
        .remove("loadBalancerSourceRanges");
    expect(
        d,
        "publish-lb-open",
        &format!("Service/{NS}/xiu-origin-publish"),
    );
}

#[test]
fn edge_or_origin_accepting_publishers_without_token() {
    let mut d = render("prod");
    let cm = id(&d, "ConfigMap", "xiu-edge-configmap");
    edit_toml(
        &mut d,
        "xiu-edge-configmap",
        "edge.toml",
        "push_enabled = true",
        "push_enabled = false",
    );
    let f = expect(d, "xiu-publish-without-auth", &cm);
    assert!(f[0].message.contains("an edge"), "{}", f[0].message);

    let mut d = render("prod");
    let cm = id(&d, "ConfigMap", "xiu-origin-configmap");
    edit_toml(
        &mut d,
        "xiu-origin-configmap",
        "origin.toml",
        "push_password = \"@XIU_TOKEN@\"\n",
        "",
    );
    expect(d, "xiu-publish-without-auth", &cm);
}

#[test]
fn cidr_placeholder_left_in_place() {
    let mut d = render("prod");
    obj(&mut d, "Service", "xiu-origin-publish")["spec"]["loadBalancerSourceRanges"] =
        json!(["192.0.2.0/24"]);
    expect(
        d,
        "cidr-placeholder",
        &format!("Service/{NS}/xiu-origin-publish"),
    );
}

// --- defect 3: HLS per viewer ---------------------------------------------------------------

#[test]
fn hls_without_cookie_affinity_on_both_overlays() {
    let mut d = render("prod");
    let ann = obj(&mut d, "Ingress", "xiu-hls")["metadata"]["annotations"]
        .as_object_mut()
        .unwrap();
    ann.retain(|k, _| !k.contains("affinity") && !k.contains("session-cookie"));
    ann.insert(
        "nginx.ingress.kubernetes.io/upstream-hash-by".into(),
        json!("$binary_remote_addr"),
    );
    expect(d, "hls-without-affinity", &format!("Ingress/{NS}/xiu-hls"));

    let mut d = render("yandex-alb");
    obj(&mut d, "Ingress", "xiu-hls")["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("ingress.alb.yc.io/session-affinity-cookie");
    expect(d, "hls-without-affinity", &format!("Ingress/{NS}/xiu-hls"));
}

// --- defect 4: drain ------------------------------------------------------------------------

#[test]
fn grace_period_shorter_than_the_drain() {
    let mut d = render("prod");
    obj(&mut d, "Deployment", "xiu-edge")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] =
        json!(60);
    let f = expect(
        d,
        "grace-shorter-than-drain",
        &format!("Deployment/{NS}/xiu-edge"),
    );
    assert!(f[0].message.contains("--drain-timeout"), "{}", f[0].message);
}

// --- defect 6 and issue 15 item 5: NetworkPolicies ----------------------------------------------

fn drop_port(policy: &mut Value, dir: &str, port: i64) {
    for rule in policy["spec"][dir].as_array_mut().unwrap() {
        if let Some(ports) = rule["ports"].as_array_mut() {
            ports.retain(|p| p["port"] != port);
        }
    }
}

#[test]
fn networkpolicy_blocks_a_service_port() {
    let mut d = render("prod");
    drop_port(
        obj(&mut d, "NetworkPolicy", "allow-ingress-controller-to-edges"),
        "ingress",
        8081,
    );
    let f = expect(
        d,
        "networkpolicy-blocks-port",
        &format!("Service/{NS}/xiu-edge"),
    );
    assert!(f[0].message.contains("8081"), "{}", f[0].message);
}

#[test]
fn networkpolicy_blocks_the_relay_from_edges_to_origins() {
    // the edges' egress to the origins' HTTP-FLV (what the relay pulls)
    let mut d = render("prod");
    drop_port(
        obj(&mut d, "NetworkPolicy", "xiu-edge-egress"),
        "egress",
        8081,
    );
    expect(
        d,
        "networkpolicy-blocks-port",
        &format!("Deployment/{NS}/xiu-edge"),
    );
    // the origins' ingress from the edges on the API (what the relay lists)
    let mut d = render("prod");
    drop_port(
        obj(&mut d, "NetworkPolicy", "xiu-origin-ingress"),
        "ingress",
        8000,
    );
    let f = expect(
        d,
        "networkpolicy-blocks-port",
        &format!("StatefulSet/{NS}/xiu-origin"),
    );
    assert!(f[0].message.contains("--origin-api"), "{}", f[0].message);
}

#[test]
fn networkpolicy_blocks_the_watcher() {
    let mut d = render("prod");
    d.retain(|doc| doc.value["metadata"]["name"] != "allow-apiserver-to-xiu-api");
    let f = expect(
        d.clone(),
        "networkpolicy-blocks-port",
        &format!("StatefulSet/{NS}/xiu-origin"),
    );
    assert!(f[0].message.contains("pods/proxy"), "{}", f[0].message);
    expect(
        d,
        "networkpolicy-blocks-port",
        &format!("Deployment/{NS}/xiu-edge"),
    );
}

#[test]
fn networkpolicy_cidr_covering_the_pod_network() {
    let mut d = render("yandex-alb");
    obj(&mut d, "NetworkPolicy", "allow-ingress-controller-to-edges")["spec"]["ingress"][0]["from"]
        [0]["ipBlock"]["cidr"] = json!("10.0.0.0/8");
    expect(
        d,
        "networkpolicy-cidr-too-broad",
        &format!("NetworkPolicy/{NS}/allow-ingress-controller-to-edges"),
    );
}

// --- issue 15: N origins, every edge relays from every origin -----------------------------------

#[test]
fn more_origins_than_the_sidecar_lists() {
    let mut d = render("prod");
    obj(&mut d, "StatefulSet", "xiu-origin")["spec"]["replicas"] = json!(3);
    let f = expect(
        d,
        "sidecar-origins-incomplete",
        &format!("Deployment/{NS}/xiu-edge"),
    );
    assert!(f[0].message.contains("[2]"), "{}", f[0].message);
}

#[test]
fn relay_address_that_nothing_serves() {
    let mut d = render("prod");
    // the governing Service's name mistyped in one origin's pair
    edit_args(
        &mut d,
        "xiu-origin-1.xiu-origin-headless:8000",
        "xiu-origin-1.xiu-origin:8000",
    );
    edit_args(
        &mut d,
        "xiu-origin-1.xiu-origin-headless:8081",
        "xiu-origin-1.xiu-origin:8081",
    );
    expect(
        d,
        "relay-target-unknown",
        &format!("Deployment/{NS}/xiu-edge"),
    );
    // a port the origins do not serve
    let mut d = render("prod");
    edit_args(
        &mut d,
        "xiu-origin-0.xiu-origin-headless:8081",
        "xiu-origin-0.xiu-origin-headless:8080",
    );
    let f = expect(
        d,
        "relay-target-unknown",
        &format!("Deployment/{NS}/xiu-edge"),
    );
    assert!(f[0].message.contains("8080"), "{}", f[0].message);
}

// --- smaller classes of issue 13 ------------------------------------------------------------

#[test]
fn hpa_names_a_container_that_does_not_exist() {
    let mut d = render("prod");
    obj(&mut d, "HorizontalPodAutoscaler", "xiu-edge")["spec"]["metrics"][0]["containerResource"]
        ["container"] = json!("xiu-server");
    expect(
        d,
        "hpa-container-unknown",
        &format!("HorizontalPodAutoscaler/{NS}/xiu-edge"),
    );
}

#[test]
fn xiu_listener_port_differs_from_the_container_port() {
    let mut d = render("prod");
    edit_toml(
        &mut d,
        "xiu-edge-configmap",
        "edge.toml",
        "port = 8080",
        "port = 8088",
    );
    let f = expect(d, "xiu-port-mismatch", &format!("Deployment/{NS}/xiu-edge"));
    assert!(f[0].message.contains("8088"), "{}", f[0].message);
}

#[test]
fn configmap_or_secret_reference_that_does_not_exist() {
    let mut d = render("prod");
    let edge = obj(&mut d, "Deployment", "xiu-edge");
    edge["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("xiuload.dev/external-secrets");
    let f = expect(
        d,
        "config-ref-missing",
        &format!("Deployment/{NS}/xiu-edge"),
    );
    assert!(f[0].message.contains("xiu-relay-token"), "{}", f[0].message);

    let mut d = render("prod");
    let vols = obj(&mut d, "StatefulSet", "xiu-origin")["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .unwrap();
    let tpl = vols
        .iter_mut()
        .find(|v| v["name"] == "config-template")
        .unwrap();
    tpl["configMap"]["name"] = json!("xiu-origin-config");
    expect(
        d,
        "config-ref-missing",
        &format!("StatefulSet/{NS}/xiu-origin"),
    );
}

#[test]
fn ingress_host_without_tls_or_secret() {
    let mut d = render("prod");
    obj(&mut d, "Ingress", "xiu-hls")["spec"]["tls"][0]
        .as_object_mut()
        .unwrap()
        .remove("secretName");
    expect(d, "ingress-tls-missing", &format!("Ingress/{NS}/xiu-hls"));
    let mut d = render("yandex-alb");
    obj(&mut d, "Ingress", "xiu-httpflv")["spec"]
        .as_object_mut()
        .unwrap()
        .remove("tls");
    expect(
        d,
        "ingress-tls-missing",
        &format!("Ingress/{NS}/xiu-httpflv"),
    );
}

#[test]
fn proxy_buffering_on_for_flv() {
    let mut d = render("prod");
    obj(&mut d, "Ingress", "xiu-httpflv")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] =
        json!("on");
    expect(
        d,
        "flv-proxy-buffering",
        &format!("Ingress/{NS}/xiu-httpflv"),
    );
}

#[test]
fn alb_request_timeout_shorter_than_a_viewer_session() {
    let mut d = render("yandex-alb");
    obj(&mut d, "Ingress", "xiu-httpflv")["metadata"]["annotations"]["ingress.alb.yc.io/request-timeout"] =
        json!("3600s");
    expect(
        d,
        "ingress-timeout-too-short",
        &format!("Ingress/{NS}/xiu-httpflv"),
    );
}

#[test]
fn loadbalancer_turned_into_clusterip() {
    let mut d = render("prod");
    obj(&mut d, "Service", "xiu-edge-play")["spec"]["type"] = json!("ClusterIP");
    expect(
        d,
        "loadbalancer-type-changed",
        &format!("Service/{NS}/xiu-edge-play"),
    );
    // type and LB fields both gone: nothing carries RTMP out to the publishers any more
    let mut d = render("prod");
    let spec = obj(&mut d, "Service", "xiu-origin-publish")["spec"]
        .as_object_mut()
        .unwrap();
    spec.insert("type".into(), json!("ClusterIP"));
    spec.remove("loadBalancerSourceRanges");
    spec.remove("externalTrafficPolicy");
    let f = expect(
        d,
        "rtmp-not-exposed",
        &format!("StatefulSet/{NS}/xiu-origin"),
    );
    assert!(f[0].message.contains("publishers"), "{}", f[0].message);
}

#[test]
fn pod_security_restricted_field_missing() {
    let mut d = render("prod");
    let sidecar = container(obj(&mut d, "Deployment", "xiu-edge"), "sidecar");
    sidecar["securityContext"]
        .as_object_mut()
        .unwrap()
        .remove("allowPrivilegeEscalation");
    let f = expect(
        d,
        "pod-security-restricted",
        &format!("Deployment/{NS}/xiu-edge"),
    );
    assert!(
        f[0].message.contains("allowPrivilegeEscalation"),
        "{}",
        f[0].message
    );
}

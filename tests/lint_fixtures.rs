//! Lints the user's original (seed) manifests and a clean origin/edge set.

use std::path::PathBuf;

use xiuload::lint::{Finding, LintError, lint_paths};

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
    assert!(
        findings
            .iter()
            .all(|f| f.file.starts_with(fixtures("seed")))
    );
    // Exactly those nine: in particular
    // - hpa-resource-without-request does NOT fire: the container sets
    //   limits.memory only, and Kubernetes defaults requests to limits;
    // - service-target-port-unknown cannot be judged (the Service selects no
    //   pods); the numeric targetPorts are declared containerPorts anyway;
    // - the readinessProbe (tcpSocket 8080) is present and its port declared;
    // - the Ingress backends (hls, httpflv) are ports of the Service and every
    //   TLS host has a rule.
    assert_eq!(findings.len(), 9, "{findings:#?}");
}

#[test]
fn clean_set_reports_nothing() {
    let findings = lint_paths(&[fixtures("clean")]).expect("clean parses");
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn yaml_syntax_error_is_lint_error() {
    let err = lint_paths(&[fixtures("bad")]).unwrap_err();
    assert!(matches!(err, LintError::Yaml { .. }), "{err}");
    assert!(err.to_string().contains("broken.yaml:"), "{err}");
}

//! `report.html` checked as a person would see it: rendered by headless Chromium, screenshotted,
//! and its DOM inspected for the charts and for script errors.
//!
//! The fixture in tests/fixtures/report/ is a real `scenarios/local-smoke.toml` run; the cluster
//! data is synthetic (the cluster watcher's output), to exercise the cluster section.

use std::path::{Path, PathBuf};
use std::process::Command;
use xiuload::k8s::correlate::{Incident, PodUsage, ReplicaPoint};
use xiuload::k8s::{ClusterReport, ExpectationResult};
use xiuload::metrics::timeline::read_timeline;
use xiuload::report::Report;
use xiuload::verdict::Verdict;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
}

fn load_fixture() -> (Report, Vec<xiuload::metrics::timeline::TimelinePoint>) {
    let dir = fixture_dir();
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let report: Report = serde_json::from_str(&text).unwrap();
    let timeline = read_timeline(&dir.join("timeline.jsonl")).unwrap();
    assert!(!timeline.is_empty());
    (report, timeline)
}

/// What the cluster watcher would have recorded over the fixture's 40 s: a scale-out at 12 s,
/// a failed probe and a restart, pod usage, and two expectations (one failed).
fn cluster() -> (ClusterReport, Vec<ExpectationResult>) {
    let mut c = ClusterReport::default();
    for t in 0..40 {
        let t = t as f64;
        let desired = if t < 12.0 { 2 } else { 4 };
        let ready = if t < 20.0 { 2 } else { 4 };
        c.replicas.push(ReplicaPoint {
            t,
            workload: "xiu-edge".into(),
            desired: Some(desired),
            current: Some(desired),
            ready: Some(ready),
            load: None,
        });
        for p in 0..ready {
            c.pod_usage.push(PodUsage {
                t,
                pod: format!("xiu-edge-{p}"),
                cpu_millicores: 150.0 + 40.0 * t / (p as f64 + 1.0),
                memory_bytes: ((60.0 + t) * 1_048_576.0) as u64,
            });
        }
    }
    let incident = |t: f64, kind: &str, message: &str| Incident {
        t,
        kind: kind.into(),
        object: "pod/xiu-edge-1".into(),
        probe: None,
        count: 1,
        message: message.into(),
        load: None,
        pod_cpu_millicores: None,
        pod_memory_bytes: None,
    };
    c.incidents = vec![
        incident(15.5, "ProbeFailed", "Readiness probe failed: /readyz 503"),
        incident(27.0, "Restart", "xiu-edge-1 restarted"),
    ];
    let expectation = |description: &str, status: Verdict, evidence: &str| ExpectationResult {
        kind: "scale_up".into(),
        description: description.into(),
        status,
        pass: status == Verdict::Pass,
        evidence: evidence.into(),
        inconclusive: None,
    };
    let expectations = vec![
        expectation(
            "scales out within 60 s",
            Verdict::Pass,
            "desired 2 → 4 at 12 s",
        ),
        expectation(
            "no viewer errors during scale-out",
            Verdict::Fail,
            "3 errors",
        ),
    ];
    (c, expectations)
}

/// Titles of the charts, in page order (from `data-title`).
fn chart_titles(dom: &str) -> Vec<String> {
    dom.split("<svg")
        .skip(1)
        .filter_map(|s| {
            let start = s.find("data-title=\"")? + "data-title=\"".len();
            Some(s[start..start + s[start..].find('"')?].to_string())
        })
        .collect()
}

const BASE_CHARTS: [&str; 8] = [
    "Connected clients",
    "Media throughput",
    "Load generator health",
    "Startup time p99 (to first keyframe)",
    "End-to-end latency",
    "Stalls and errors per second",
    "Startup time distribution",
    "End-to-end latency distribution",
];

#[test]
fn html_without_cluster_has_the_base_charts_and_no_network_references() {
    let (report, timeline) = load_fixture();
    let html = xiuload::report::html::render(&report, &timeline, None);
    assert_eq!(chart_titles(&html), BASE_CHARTS);
    // Self-contained: nothing fetched from anywhere.
    for needle in ["http://", "https://", "src=\"", "href=\"http"] {
        let hits: Vec<_> = html
            .match_indices(needle)
            .filter(|(i, _)| !html[..*i].ends_with("xmlns=\""))
            .collect();
        assert!(hits.is_empty(), "{needle} appears in the report");
    }
}

#[test]
fn notes_show_under_the_header_escaped() {
    let (mut report, timeline) = load_fixture();
    assert!(!xiuload::report::html::render(&report, &timeline, None).contains("data-note"));
    report.notes = vec!["players group \"fans\": expect about 18 viewers <eof>".into()];
    let html = xiuload::report::html::render(&report, &timeline, None);
    assert!(
        html.contains(
            "<b>Note</b>: players group &quot;fans&quot;: expect about 18 viewers &lt;eof&gt;"
        ),
        "{html}"
    );
}

fn chromium() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    })
}

fn run_chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> std::process::Output {
    // `timeout` guards against a hung browser; a fresh profile keeps runs independent.
    let out = Command::new("timeout")
        .arg("120")
        .arg(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        println!("SKIPPED: chromium is not installed (scripts/install-deps.sh installs it)");
        return;
    };
    let watched = cluster();
    let (report, timeline) = load_fixture();
    let html = xiuload::report::html::render(
        &report,
        &timeline,
        Some(&xiuload::report::html::ClusterView::from_cluster(
            &watched.0, &watched.1,
        )),
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());

    let png = match std::env::var_os("XIULOAD_SCREENSHOT") {
        // Keep the screenshot for a person to look at.
        Some(p) => PathBuf::from(p),
        None => dir.path().join("report.png"),
    };
    let profile = tempfile::tempdir().unwrap();
    run_chromium(
        &bin,
        profile.path(),
        &[format!("--screenshot={}", png.display())],
        &url,
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert_eq!(&bytes[1..4], b"PNG");
    // A blank 1280×2400 page compresses to a few KB; charts, tables and text make it far larger.
    assert!(
        bytes.len() > 60_000,
        "screenshot looks blank: {} bytes",
        bytes.len()
    );

    let profile = tempfile::tempdir().unwrap();
    let out = run_chromium(&bin, profile.path(), &["--dump-dom".to_string()], &url);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("data-ready=\"1\""), "page did not finish");
    assert!(
        !dom.contains("data-script-errors"),
        "script errors: {}",
        dom.split("data-script-errors=\"")
            .nth(1)
            .unwrap_or("")
            .split('"')
            .next()
            .unwrap_or("")
    );
    let mut expected: Vec<&str> = BASE_CHARTS[..6].to_vec();
    expected.extend(["Replicas", "CPU per pod", "Memory per pod"]);
    expected.extend(&BASE_CHARTS[6..]);
    assert_eq!(chart_titles(&dom), expected);
    assert!(dom.contains("scales out within 60 s"));
    assert!(dom.contains("ProbeFailed"));
}

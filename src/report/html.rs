//! `report.html`: the report a person opens. One self-contained file (styles and charts inline, no
//! network), so it can be attached to a ticket or opened from an artifact store years later.
//! Charts are inline SVG from [`super::svg`]; the only script records errors and readiness for the
//! headless-browser test, and nothing depends on it.

use super::model::{PlayerSummary, Report, StopReason, Verdict};
use super::svg::{self, LineChart, Marker, MarkerKind, Series, escape};
use super::text::{errors, ms, pcts};
use crate::metrics::LatencyHistogram;
use crate::metrics::timeline::TimelinePoint;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#222}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
header.verdict{padding:18px 24px;border-radius:8px;color:#fff;margin:12px 0}
header.pass{background:#2e7d32} header.fail{background:#c62828} header.inconclusive{background:#8d6e00}
header h1{margin:0 0 6px;font-size:26px} header p{margin:2px 0;opacity:.95}
.warn{background:#fff3cd;border:1px solid #e0b400;border-radius:6px;padding:10px 14px;margin:10px 0}
.note{background:#eef4fb;border:1px solid #9bb8d8;border-radius:6px;padding:10px 14px;margin:10px 0}
section{background:#fff;border-radius:8px;padding:12px 18px;margin:14px 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{margin:4px 0 8px;font-size:19px} p.hint{color:#555;margin:2px 0 8px;font-size:14px}
.tiles{display:flex;flex-wrap:wrap;gap:10px} .tile{background:#f7f8fa;border-radius:6px;padding:8px 14px;min-width:130px}
.tile b{display:block;font-size:22px} .tile span{color:#555;font-size:13px}
svg.chart{display:block;margin:6px 0 10px;max-width:100%;height:auto}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:8px}
table{border-collapse:collapse;width:100%;font-size:14px;margin:6px 0 10px}
th,td{border-bottom:1px solid #e3e3e3;padding:5px 8px;text-align:left} th{background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2e7d32;font-weight:600} .bad{color:#c62828;font-weight:600} .unknown{color:#8d6e00;font-weight:600}
pre{background:#f7f8fa;padding:10px;overflow:auto;font-size:12px} details summary{cursor:pointer;font-weight:600}
"#;

/// What the HTML report draws of the cluster: built from the report's typed cluster analysis, or,
/// for runs whose report has none, from the watcher's `cluster-report.json` (`xiuload watch --out
/// <run dir>` beside a run without `[kube]`).
#[derive(Debug, Default)]
pub struct ClusterView {
    replicas: Vec<ReplicaPoint>,
    events: Vec<ClusterEvent>,
    pods: Vec<PodPoint>,
    expectations: Vec<Expectation>,
}

#[derive(Debug, Default, Deserialize)]
struct ReplicaPoint {
    t: f64,
    desired: Option<f64>,
    current: Option<f64>,
    ready: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct ClusterEvent {
    t: f64,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Default, Deserialize)]
struct PodPoint {
    t: f64,
    #[serde(default)]
    pod: String,
    cpu_millicores: Option<f64>,
    memory_bytes: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Expectation {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub pass: bool,
    /// Absent in files written before verdicts had three values: then `pass` decides.
    #[serde(default)]
    pub status: Option<Verdict>,
    #[serde(default)]
    pub evidence: serde_json::Value,
}

impl ClusterView {
    /// From the cluster analysis embedded in the report.
    pub fn from_report(report: &Report) -> Option<ClusterView> {
        let c = report.cluster.as_ref()?;
        Some(ClusterView::from_cluster(c, &report.expectations))
    }

    /// From a cluster analysis and its expectations (the report's, or those of the watcher's
    /// `cluster-report.json`): scale decisions and incidents as events, in time order.
    pub fn from_cluster(
        c: &crate::k8s::ClusterReport,
        expectations: &[crate::k8s::ExpectationResult],
    ) -> ClusterView {
        let mut events: Vec<ClusterEvent> = c
            .scale_decisions
            .iter()
            .map(|d| ClusterEvent {
                t: d.t,
                kind: "scale".into(),
                message: format!("{} {}→{}", d.workload, d.from, d.to),
            })
            .chain(c.incidents.iter().map(|i| ClusterEvent {
                t: i.t,
                kind: i.kind.clone(),
                message: format!("{}: {}", i.object, i.message),
            }))
            .collect();
        events.sort_by(|a, b| a.t.total_cmp(&b.t));
        ClusterView {
            replicas: c
                .replicas
                .iter()
                .map(|r| ReplicaPoint {
                    t: r.t,
                    desired: r.desired.map(f64::from),
                    current: r.current.map(f64::from),
                    ready: r.ready.map(f64::from),
                })
                .collect(),
            events,
            pods: c
                .pod_usage
                .iter()
                .map(|p| PodPoint {
                    t: p.t,
                    pod: p.pod.clone(),
                    cpu_millicores: Some(p.cpu_millicores),
                    memory_bytes: Some(p.memory_bytes as f64),
                })
                .collect(),
            expectations: expectations
                .iter()
                .map(|e| Expectation {
                    name: e.description.clone(),
                    pass: e.pass,
                    status: Some(e.status),
                    evidence: serde_json::Value::String(e.evidence.clone()),
                })
                .collect(),
        }
    }
}

fn opt(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

/// Event colours by kind: what a reader scans for first (failures red, scaling blue).
/// The local kubelet's actions: restarts orange like a cluster's, rotation changes purple.
fn kubelet_color(action: crate::local::kubelet::KubeletAction) -> &'static str {
    match action {
        crate::local::kubelet::KubeletAction::Restart => "#e65100",
        _ => "#6a1b9a",
    }
}

fn event_color(kind: &str) -> &'static str {
    let k = kind.to_ascii_lowercase();
    if k.contains("fail") || k.contains("unhealthy") || k.contains("kill") || k.contains("oom") {
        "#c62828"
    } else if k.contains("restart") || k.contains("backoff") {
        "#e65100"
    } else if k.contains("scal") {
        "#1565c0"
    } else {
        "#6d4c41"
    }
}

/// Renders the whole report. `cluster` is the cluster watcher's JSON, when the run had one.
pub fn render(
    report: &Report,
    timeline: &[TimelinePoint],
    cluster: Option<&ClusterView>,
) -> String {
    let mut h = String::new();
    let title = format!("xiuload · {}", report.run.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style>",
        escape(&title)
    );
    // Errors go to a data attribute (not the console) so a headless test can read them from the DOM.
    h.push_str("<script>window.onerror=function(m){var b=document.body;if(b){b.dataset.scriptErrors=(b.dataset.scriptErrors||'')+m+';';}};</script></head><body><main>");
    verdict_header(&mut h, report);
    let x_range = time_range(report, timeline);
    let warmup = Marker {
        t: report.run.warmup_s,
        label: "end of warm-up".into(),
        color: "#888".into(),
        kind: MarkerKind::Note,
    };
    let mut markers: Vec<Marker> = if report.run.warmup_s > 0.0 {
        vec![warmup]
    } else {
        Vec::new()
    };
    // The last point is the stop itself (sessions closing): mark it so its spike is not read as
    // a server problem.
    if report.run.planned_duration_s > 0.0 {
        markers.push(Marker {
            t: report.run.planned_duration_s.min(report.run.duration_s),
            label: "load stops".into(),
            color: "#888".into(),
            kind: MarkerKind::Note,
        });
    }
    markers.extend(report.faults.iter().map(|f| Marker {
        t: f.at_s,
        label: format!("fault: {}", f.label()),
        color: "#b71c1c".into(),
        kind: MarkerKind::Fault,
    }));
    markers.extend(report.kubelet.iter().map(|k| Marker {
        t: k.at_s,
        label: format!("kubelet: {}", k.label()),
        color: kubelet_color(k.action).into(),
        kind: MarkerKind::Note,
    }));
    load_section(&mut h, timeline, x_range, &markers);
    experience_section(&mut h, timeline, x_range, &markers);
    faults_section(&mut h, report);
    if let Some(c) = cluster {
        cluster_section(&mut h, c, x_range, &markers);
    }
    distributions_section(&mut h, report);
    thresholds_section(&mut h, report);
    groups_section(&mut h, report);
    config_section(&mut h, report);
    h.push_str("</main><script>document.body.dataset.ready=\"1\";</script></body></html>\n");
    h
}

fn time_range(report: &Report, timeline: &[TimelinePoint]) -> Option<(f64, f64)> {
    let last = timeline
        .iter()
        .map(|p| p.t)
        .fold(report.run.duration_s, f64::max);
    (last > 0.0).then_some((0.0, last))
}

fn verdict_header(h: &mut String, r: &Report) {
    let (class, word) = (r.verdict.as_str(), r.verdict.shout());
    let failed = r.thresholds.iter().filter(|t| !t.pass).count();
    let _ = write!(
        h,
        "<header class=\"verdict {class}\" data-verdict=\"{class}\"><h1>{word} · {}</h1><p>{} of {} thresholds passed. Run <code>{}</code> against {} from {}, {:.0} s",
        escape(&r.run.name),
        r.thresholds.len() - failed,
        r.thresholds.len(),
        escape(&r.run.id),
        escape(&r.run.target),
        escape(&r.run.started_at),
        r.run.duration_s,
    );
    if r.run.stopped_by == StopReason::Interrupted {
        let _ = write!(
            h,
            " — <b>interrupted</b> of {:.0} s planned: partial results",
            r.run.planned_duration_s
        );
    }
    let _ = write!(
        h,
        ".</p><p>Measured after a {:.0} s warm-up. Percentiles are p50 / p95 / p99 in milliseconds.</p>",
        r.run.warmup_s
    );
    if !r.verdict_reasons.is_empty() {
        h.push_str("<ul data-verdict-reasons=\"1\">");
        for reason in &r.verdict_reasons {
            let _ = write!(h, "<li>{}</li>", escape(reason));
        }
        h.push_str("</ul>");
    }
    h.push_str("</header>");
    if r.loader.saturated {
        let _ = write!(
            h,
            "<div class=\"warn\" data-loader-saturated=\"1\"><b>The load generator was saturated</b>: {}. These results describe xiuload, not the server; use more or bigger load-generator pods.</div>",
            escape(&r.loader.reasons.join("; "))
        );
    }
    for note in &r.notes {
        let _ = write!(
            h,
            "<div class=\"note\" data-note=\"1\"><b>Note</b>: {}</div>",
            escape(note)
        );
    }
    let a = &r.all_players;
    let tiles = [
        (
            format!("{} / {}", a.sessions_with_media, a.sessions),
            "viewer sessions served",
        ),
        (ms(a.startup_ms.p99_ms), "startup p99 (ms)"),
        (ms(a.latency_ms.p95_ms), "latency p95 (ms)"),
        (format!("{:.2} %", a.stall_ratio * 100.0), "time stalled"),
        (format!("{:.2} %", a.error_rate * 100.0), "error rate"),
        (format!("{:.1}", a.mbps), "Mbit/s to viewers"),
        (
            format!("{:.0} %", r.loader.cpu_percent_max),
            "loader CPU max (1 core)",
        ),
    ];
    h.push_str("<section><div class=\"tiles\">");
    for (v, label) in tiles {
        let _ = write!(
            h,
            "<div class=\"tile\"><b>{}</b><span>{label}</span></div>",
            escape(&v)
        );
    }
    h.push_str("</div></section>");
}

fn series_of(name: &str, timeline: &[TimelinePoint], f: impl Fn(&TimelinePoint) -> f64) -> Series {
    Series::new(name, timeline.iter().map(|p| (p.t, f(p))).collect())
}

/// One colour per protocol on every chart, so a reader learns it once.
fn proto_color(proto: &str) -> &'static str {
    match proto {
        "flv" => "#f28e2b",
        "hls" => "#59a14f",
        "rtmp" => "#b07aa1",
        _ => "#9c755f",
    }
}

fn protocols(timeline: &[TimelinePoint]) -> Vec<String> {
    let mut set: Vec<String> = timeline
        .iter()
        .flat_map(|p| p.players.keys().cloned())
        .collect();
    set.sort();
    set.dedup();
    set
}

fn chart(
    h: &mut String,
    title: &str,
    y_label: &str,
    series: Vec<Series>,
    x_range: Option<(f64, f64)>,
    markers: &[Marker],
) {
    h.push_str(&svg::line_chart(&LineChart {
        title: title.into(),
        y_label: y_label.into(),
        x_label: "time since start".into(),
        series,
        markers: markers.to_vec(),
        x_range,
    }));
}

fn load_section(h: &mut String, t: &[TimelinePoint], x: Option<(f64, f64)>, markers: &[Marker]) {
    h.push_str("<section><h2>Load over time</h2><p class=\"hint\">What xiuload offered: connected publishers and viewers, and the media rate in each direction. Results before the warm-up marker are not judged.</p>");
    let mut clients = vec![series_of("publishers", t, |p| p.publishers as f64).color("#4e79a7")];
    for proto in protocols(t) {
        let c = proto_color(&proto);
        clients.push(
            series_of(&format!("{proto} viewers"), t, |p| {
                p.players
                    .get(&proto)
                    .map(|x| x.active as f64)
                    .unwrap_or(0.0)
            })
            .color(c),
        );
    }
    chart(h, "Connected clients", "clients", clients, x, markers);
    let rates = vec![
        series_of("Mbit/s to viewers (in)", t, |p| p.mbps_in),
        series_of("Mbit/s from publishers (out)", t, |p| p.mbps_out).dashed(),
    ];
    chart(h, "Media throughput", "Mbit/s", rates, x, markers);
    let loader = vec![
        series_of("loader CPU % of one core", t, |p| opt(p.loader_cpu_percent)),
        series_of("event-loop lag max (ms)", t, |p| opt(p.loader_lag_ms_max)).dashed(),
    ];
    chart(h, "Load generator health", "% / ms", loader, x, markers);
    h.push_str("</section>");
}

fn experience_section(
    h: &mut String,
    t: &[TimelinePoint],
    x: Option<(f64, f64)>,
    markers: &[Marker],
) {
    h.push_str("<section><h2>Viewer experience over time</h2><p class=\"hint\">Per second: how long new viewers waited for the first picture, how far behind live they were, and how often playback stalled or failed. Gaps mean nothing was measured in that second.</p>");
    let protos = protocols(t);
    let mut startup = vec![series_of("all p99", t, |p| opt(p.startup_p99_ms)).color("#333")];
    for proto in &protos {
        startup.push(
            series_of(&format!("{proto} p99"), t, |p| {
                opt(p.players.get(proto).and_then(|x| x.startup_p99_ms))
            })
            .color(proto_color(proto)),
        );
    }
    chart(
        h,
        "Startup time p99 (to first keyframe)",
        "ms",
        startup,
        x,
        markers,
    );
    let mut latency = vec![
        series_of("all p50", t, |p| opt(p.latency_p50_ms))
            .color("#333")
            .dashed(),
        series_of("all p99", t, |p| opt(p.latency_p99_ms)).color("#333"),
    ];
    for proto in &protos {
        latency.push(
            series_of(&format!("{proto} p99"), t, |p| {
                opt(p.players.get(proto).and_then(|x| x.latency_p99_ms))
            })
            .color(proto_color(proto)),
        );
    }
    chart(h, "End-to-end latency", "ms", latency, x, markers);
    let trouble = vec![
        series_of("stalls / s", t, |p| p.stalls as f64).color("#f28e2b"),
        series_of("errors / s", t, |p| p.errors as f64).color("#c62828"),
    ];
    chart(
        h,
        "Stalls and errors per second",
        "per second",
        trouble,
        x,
        markers,
    );
    h.push_str("</section>");
}

fn cluster_section(h: &mut String, c: &ClusterView, x: Option<(f64, f64)>, base: &[Marker]) {
    h.push_str("<section><h2>Cluster</h2><p class=\"hint\">What the cluster did meanwhile: replicas of the edge deployment, with scale events (blue), probe failures (red) and restarts (orange) marked; and each pod's CPU and memory.</p>");
    let mut markers = base.to_vec();
    markers.extend(c.events.iter().map(|e| Marker {
        t: e.t,
        label: if e.message.is_empty() {
            e.kind.clone()
        } else {
            format!("{}: {}", e.kind, truncate(&e.message, 40))
        },
        color: event_color(&e.kind).into(),
        kind: MarkerKind::Note,
    }));
    let r = &c.replicas;
    let replicas = vec![
        Series::new("desired", r.iter().map(|p| (p.t, opt(p.desired))).collect())
            .step()
            .dashed(),
        Series::new("current", r.iter().map(|p| (p.t, opt(p.current))).collect()).step(),
        Series::new("ready", r.iter().map(|p| (p.t, opt(p.ready))).collect()).step(),
    ];
    chart(h, "Replicas", "pods", replicas, x, &markers);
    let mut by_pod: BTreeMap<&str, Vec<&PodPoint>> = BTreeMap::new();
    for p in &c.pods {
        by_pod.entry(p.pod.as_str()).or_default().push(p);
    }
    let cpu = by_pod
        .iter()
        .map(|(pod, pts)| {
            Series::new(
                *pod,
                pts.iter().map(|p| (p.t, opt(p.cpu_millicores))).collect(),
            )
        })
        .collect();
    chart(h, "CPU per pod", "millicores", cpu, x, base);
    let mem = by_pod
        .iter()
        .map(|(pod, pts)| {
            Series::new(
                *pod,
                pts.iter()
                    .map(|p| (p.t, opt(p.memory_bytes) / 1_048_576.0))
                    .collect(),
            )
        })
        .collect();
    chart(h, "Memory per pod", "MiB", mem, x, base);
    expectations_table(
        h,
        c.expectations.iter().map(|e| {
            let evidence = match &e.evidence {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                v => v.to_string(),
            };
            (
                e.status.unwrap_or(Verdict::from_pass(e.pass)),
                e.name.as_str(),
                evidence,
            )
        }),
    );
    if !c.events.is_empty() {
        h.push_str("<details><summary>Cluster events</summary><table><tr><th>t (s)</th><th>kind</th><th>message</th></tr>");
        for e in &c.events {
            let _ = write!(
                h,
                "<tr><td class=\"num\">{:.1}</td><td>{}</td><td>{}</td></tr>",
                e.t,
                escape(&e.kind),
                escape(&e.message)
            );
        }
        h.push_str("</table></details>");
    }
    h.push_str("</section>");
}

/// The `[[expect]]` verdicts: (verdict, expectation, evidence) rows; nothing when there are none.
fn expectations_table<'a>(h: &mut String, rows: impl Iterator<Item = (Verdict, &'a str, String)>) {
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return;
    }
    h.push_str(
        "<h3>Expectations</h3><table><tr><th></th><th>expectation</th><th>evidence</th></tr>",
    );
    for (verdict, name, evidence) in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            verdict_cell(verdict),
            escape(name),
            escape(&evidence)
        );
    }
    h.push_str("</table>");
}

/// What the run did to the servers, and (without a cluster section to hold them) the
/// expectations judged on it.
fn faults_section(h: &mut String, r: &Report) {
    let show_expectations = r.cluster.is_none() && !r.expectations.is_empty();
    if r.faults.is_empty() && r.kubelet.is_empty() && !show_expectations {
        return;
    }
    h.push_str("<section data-faults=\"1\"><h2>Faults</h2><p class=\"hint\">What the run did to the servers under load (solid red lines on the charts above), what the local kubelet did about it (dashed: restarts orange, rotation changes purple), and what the viewers went through.</p>");
    if !r.faults.is_empty() {
        h.push_str("<table><tr><th>t (s)</th><th>fault</th><th>outcome</th></tr>");
        for f in &r.faults {
            let _ = write!(
                h,
                "<tr data-fault=\"{}\"><td class=\"num\">{:.1}</td><td>{}</td><td>{}</td></tr>",
                escape(&f.label()),
                f.at_s,
                escape(&f.label()),
                escape(&f.outcome_text())
            );
        }
        h.push_str("</table>");
    }
    if !r.kubelet.is_empty() {
        h.push_str("<table><tr><th>t (s)</th><th>kubelet</th><th>why, and how it went</th></tr>");
        for k in &r.kubelet {
            let full = k.to_string();
            let detail = full.split_once(": ").map_or("", |(_, rest)| rest);
            let _ = write!(
                h,
                "<tr data-kubelet=\"{}\"><td class=\"num\">{:.1}</td><td>{}</td><td>{}</td></tr>",
                escape(&k.label()),
                k.at_s,
                escape(&k.label()),
                escape(detail)
            );
        }
        h.push_str("</table>");
    }
    if show_expectations {
        expectations_table(
            h,
            r.expectations
                .iter()
                .map(|e| (e.status, e.description.as_str(), e.evidence.clone())),
        );
    }
    h.push_str("</section>");
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn verdict_cell(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "<span class=\"ok\">✔ pass</span>",
        Verdict::Fail => "<span class=\"bad\">✘ FAIL</span>",
        Verdict::Inconclusive => "<span class=\"unknown\">? inconclusive</span>",
    }
}

/// Merges the raw per-group histograms by protocol: percentiles do not average, so the
/// distribution of a protocol must come from its merged histogram.
fn merged_by_protocol(
    r: &Report,
    pick: impl Fn(&crate::metrics::PlayerStats) -> &LatencyHistogram,
) -> BTreeMap<String, LatencyHistogram> {
    let mut out: BTreeMap<String, LatencyHistogram> = BTreeMap::new();
    for g in &r.players {
        if let Some(stats) = r.raw.players.get(&g.name) {
            out.entry(g.protocol.clone())
                .or_default()
                .merge(pick(stats));
        }
    }
    out
}

fn distributions_section(h: &mut String, r: &Report) {
    h.push_str("<section><h2>Latency distributions</h2><p class=\"hint\">Whole-run percentiles per protocol after warm-up, from the merged histograms. The x axis stretches the tail: 90 %, 99 %, 99.9 % are equally spaced, so the worst viewers' experience is visible.</p>");
    type Pick = fn(&crate::metrics::PlayerStats) -> &LatencyHistogram;
    let charts: [(&str, Pick); 2] = [
        ("Startup time distribution", |s| &s.startup),
        ("End-to-end latency distribution", |s| &s.latency),
    ];
    for (title, pick) in charts {
        let series: Vec<Series> = merged_by_protocol(r, pick)
            .into_iter()
            .map(|(proto, hist)| {
                let c = proto_color(&proto);
                Series::new(proto, hist.percentile_curve()).color(c)
            })
            .collect();
        h.push_str(&svg::percentile_chart(title, "ms", &series));
    }
    h.push_str("</section>");
}

fn thresholds_section(h: &mut String, r: &Report) {
    h.push_str("<section><h2>Thresholds</h2>");
    if r.thresholds.is_empty() {
        h.push_str("<p class=\"hint\">The scenario has no thresholds: the run passes by definition.</p></section>");
        return;
    }
    h.push_str(
        "<table><tr><th></th><th>metric</th><th>scope</th><th>limit</th><th>measured</th></tr>",
    );
    for t in &r.thresholds {
        let limit = t.limit_text();
        let value = t
            .value
            .map(|v| format!("{v}"))
            .unwrap_or_else(|| t.note.clone().unwrap_or_else(|| "not measured".into()));
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            verdict_cell(Verdict::from_pass(t.pass)),
            escape(&t.metric),
            escape(&t.scope),
            escape(&limit),
            escape(&value)
        );
    }
    h.push_str("</table></section>");
}

fn player_row(h: &mut String, name: &str, protocol: &str, p: &PlayerSummary) {
    let _ = write!(
        h,
        "<tr><td>{}</td><td>{}</td><td class=\"num\">{} / {}</td><td class=\"num\">{} / {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2} %</td><td>{}</td><td class=\"num\">{:.1}</td></tr>",
        escape(name),
        escape(protocol),
        p.sessions_with_media,
        p.sessions,
        p.whole_run.sessions_with_media,
        p.whole_run.sessions,
        pcts(&p.startup_ms),
        pcts(&p.latency_ms),
        p.stalls,
        p.stall_ratio * 100.0,
        escape(&errors(&p.errors)),
        p.mbps
    );
}

fn groups_section(h: &mut String, r: &Report) {
    h.push_str("<section><h2>Groups</h2>");
    if !r.players.is_empty() {
        h.push_str("<h3>Players</h3><table><tr><th>group</th><th>protocol</th><th>served / sessions</th><th>whole run: served / sessions</th><th>startup ms</th><th>latency ms</th><th>stalls</th><th>stall time</th><th>errors</th><th>Mbit/s</th></tr>");
        for g in &r.players {
            player_row(h, &g.name, &g.protocol, &g.summary);
        }
        if r.players.len() > 1 {
            player_row(h, "all", "", &r.all_players);
        }
        h.push_str("</table>");
    }
    if !r.publishers.is_empty() {
        h.push_str("<h3>Publishers</h3><table><tr><th>group</th><th>streams</th><th>sessions</th><th>connect ms</th><th>whole run: sessions, connect ms</th><th>send lateness ms</th><th>frames</th><th>errors</th><th>Mbit/s</th></tr>");
        for p in &r.publishers {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}, {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{:.1}</td></tr>",
                escape(&p.name),
                p.streams.len(),
                p.sessions,
                pcts(&p.connect_ms),
                p.whole_run.sessions,
                pcts(&p.whole_run.connect_ms),
                pcts(&p.lateness_ms),
                p.frames,
                escape(&errors(&p.errors)),
                p.mbps
            );
        }
        h.push_str("</table>");
    }
    let l = &r.loader;
    let _ = write!(
        h,
        "<p class=\"hint\">Load generator: {} cores, CPU mean {:.0} % / max {:.0} % of one core, event-loop lag p99 {} ms / max {} ms{}.</p></section>",
        l.cores,
        l.cpu_percent_mean,
        l.cpu_percent_max,
        ms(l.lag_ms_p99),
        ms(l.lag_ms_max),
        if l.saturated { " — saturated" } else { "" }
    );
    if !l.workers.is_empty() {
        h.push_str("<section><h2>Workers</h2><ul data-workers=\"1\">");
        for w in &l.workers {
            let _ = write!(
                h,
                "<li>{}</li>",
                escape(&super::markdown::worker_line(w).replace("**", ""))
            );
        }
        h.push_str("</ul></section>");
    }
}

fn config_section(h: &mut String, r: &Report) {
    let scenario = serde_json::to_string_pretty(&r.scenario).unwrap_or_default();
    let _ = write!(
        h,
        "<section><h2>Configuration</h2><p class=\"hint\">Scenario file <code>{}</code>, xiuload {} (schema {}).</p><details><summary>Scenario as run (defaults filled in)</summary><pre>{}</pre></details></section>",
        escape(&r.run.scenario_file),
        escape(&r.tool.version),
        r.schema_version,
        escape(&scenario)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_marked_on_every_chart_and_listed_with_their_expectations() {
        use crate::scenario::fault::{FaultAction, FaultEvent, FaultTarget};
        let mut r: Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report/report.json")).unwrap();
        r.faults.push(FaultEvent::done_at(
            5.0,
            FaultAction::Kill,
            FaultTarget::Edge,
        ));
        r.kubelet.push(crate::local::KubeletEvent {
            at_s: 5.01,
            edge: 0,
            action: crate::local::kubelet::KubeletAction::OutOfRotation,
            container: None,
            restarts: None,
            reason: "xiu killed by a fault (SIGKILL)".into(),
            done_s: None,
            error: None,
        });
        r.expectations.push(crate::k8s::ExpectationResult {
            kind: "recovered_within".into(),
            description: "viewers served again within 10s".into(),
            status: Verdict::Pass,
            pass: true,
            evidence: "back at t=9.0s".into(),
            inconclusive: None,
        });
        let timeline: Vec<TimelinePoint> = (1..=10)
            .map(|t| TimelinePoint {
                t: t as f64,
                mbps_in: 1.0,
                latency_p50_ms: Some(20.0),
                startup_p99_ms: Some(300.0),
                loader_cpu_percent: Some(5.0),
                ..Default::default()
            })
            .collect();
        let html = render(&r, &timeline, None);
        let charts = html.matches(r#"data-chart="line""#).count();
        let empty = html.matches(">no data</text>").count();
        assert!(charts - empty >= 5, "{charts} charts, {empty} empty");
        assert_eq!(
            html.matches(r#"<g class="marker fault">"#).count(),
            charts - empty,
            "one fault line on every chart that has data"
        );
        let section = &html[html.find("data-faults=\"1\"").expect("a faults section")..];
        assert!(
            section.contains(r#"<tr data-fault="kill edge 0">"#),
            "{section}"
        );
        assert!(section.contains("viewers served again within 10s"));
        assert!(
            section.contains(r#"<tr data-kubelet="edge 0 out of rotation">"#)
                && section.contains("xiu killed by a fault (SIGKILL)"),
            "{section}"
        );
        assert!(
            html.matches("kubelet: edge 0 out of rotation</text>")
                .count()
                >= charts - empty,
            "the kubelet's action is marked on every chart"
        );
    }

    #[test]
    fn event_colours_flag_failures() {
        assert_eq!(event_color("ProbeFailed"), "#c62828");
        assert_eq!(event_color("Unhealthy"), "#c62828");
        assert_eq!(event_color("restart"), "#e65100");
        assert_eq!(event_color("SuccessfulRescale"), "#1565c0");
    }
}

//! `xiuload compare A B`: two runs side by side, for "did this change help?". The diff is pure
//! (two reports in, rows out); loading and printing live in [`compare_dirs`].

use super::model::{PlayerSummary, Report, Verdict};
use super::rebuild::{RunDirError, load_report};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

/// Whether a bigger value is better, worse, or neither (for the arrow in the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    Neutral,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub scope: String,
    pub metric: &'static str,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub better: Better,
}

impl MetricRow {
    pub fn delta(&self) -> Option<f64> {
        Some(self.b? - self.a?)
    }
    /// "better" / "worse" / "" for unchanged or not comparable.
    pub fn judgement(&self) -> &'static str {
        match (self.delta(), self.better) {
            (Some(d), Better::Lower) if d < 0.0 => "better",
            (Some(d), Better::Lower) if d > 0.0 => "worse",
            (Some(d), Better::Higher) if d > 0.0 => "better",
            (Some(d), Better::Higher) if d < 0.0 => "worse",
            _ => "",
        }
    }
}

/// A pass/fail check present in either run.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictRow {
    pub kind: &'static str,
    pub name: String,
    pub a: Option<bool>,
    pub b: Option<bool>,
}

impl VerdictRow {
    pub fn changed(&self) -> bool {
        self.a != self.b
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub a_name: String,
    pub b_name: String,
    pub a_verdict: Verdict,
    pub b_verdict: Verdict,
    pub metrics: Vec<MetricRow>,
    pub verdicts: Vec<VerdictRow>,
}

fn player_rows(
    scope: &str,
    a: Option<&PlayerSummary>,
    b: Option<&PlayerSummary>,
) -> Vec<MetricRow> {
    type Get = fn(&PlayerSummary) -> Option<f64>;
    let metrics: [(&'static str, Get, Better); 9] = [
        ("startup p50 ms", |p| p.startup_ms.p50_ms, Better::Lower),
        ("startup p99 ms", |p| p.startup_ms.p99_ms, Better::Lower),
        ("latency p50 ms", |p| p.latency_ms.p50_ms, Better::Lower),
        ("latency p95 ms", |p| p.latency_ms.p95_ms, Better::Lower),
        ("latency p99 ms", |p| p.latency_ms.p99_ms, Better::Lower),
        ("stall ratio", |p| Some(p.stall_ratio), Better::Lower),
        ("error rate", |p| Some(p.error_rate), Better::Lower),
        ("Mbit/s", |p| Some(p.mbps), Better::Neutral),
        ("sessions", |p| Some(p.sessions as f64), Better::Neutral),
    ];
    metrics
        .iter()
        .map(|(metric, get, better)| MetricRow {
            scope: scope.to_string(),
            metric,
            a: a.and_then(get),
            b: b.and_then(get),
            better: *better,
        })
        .collect()
}

/// Pass/fail of each expectation in a report JSON's `expectations` (written by cluster runs).
pub fn expectations(v: &serde_json::Value) -> BTreeMap<String, bool> {
    v.get("expectations")
        .and_then(|e| e.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    // report.json writes `description`; hand-made or older files may say `name`.
                    let name = e.get("description").or_else(|| e.get("name"))?;
                    Some((name.as_str()?.to_string(), e.get("pass")?.as_bool()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn verdict_rows(
    kind: &'static str,
    a: &BTreeMap<String, bool>,
    b: &BTreeMap<String, bool>,
) -> Vec<VerdictRow> {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .map(|n| VerdictRow {
            kind,
            name: n.clone(),
            a: a.get(n).copied(),
            b: b.get(n).copied(),
        })
        .collect()
}

fn thresholds(r: &Report) -> BTreeMap<String, bool> {
    r.thresholds
        .iter()
        .map(|t| (format!("{} ({})", t.metric, t.scope), t.pass))
        .collect()
}

/// Compares two reports; `a_json`/`b_json` are the raw JSON (for fields outside [`Report`],
/// like `expectations`).
pub fn compare(
    a: &Report,
    b: &Report,
    a_json: &serde_json::Value,
    b_json: &serde_json::Value,
) -> Comparison {
    let mut metrics = player_rows("all", Some(&a.all_players), Some(&b.all_players));
    let protos: BTreeSet<&String> = a.protocols.keys().chain(b.protocols.keys()).collect();
    for p in protos {
        metrics.extend(player_rows(p, a.protocols.get(p), b.protocols.get(p)));
    }
    let flag = |v: bool| if v { 1.0 } else { 0.0 };
    metrics.push(MetricRow {
        scope: "loader".into(),
        metric: "saturated (1 = yes)",
        a: Some(flag(a.loader.saturated)),
        b: Some(flag(b.loader.saturated)),
        better: Better::Lower,
    });
    metrics.push(MetricRow {
        scope: "loader".into(),
        metric: "CPU max % of a core",
        a: Some(a.loader.cpu_percent_max),
        b: Some(b.loader.cpu_percent_max),
        better: Better::Neutral,
    });
    let mut verdicts = verdict_rows("threshold", &thresholds(a), &thresholds(b));
    verdicts.extend(verdict_rows(
        "expectation",
        &expectations(a_json),
        &expectations(b_json),
    ));
    Comparison {
        a_name: format!("{} ({})", a.run.name, a.run.id),
        b_name: format!("{} ({})", b.run.name, b.run.id),
        a_verdict: a.verdict,
        b_verdict: b.verdict,
        metrics,
        verdicts,
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn pass(v: Option<bool>) -> &'static str {
    match v {
        None => "–",
        Some(true) => "pass",
        Some(false) => "FAIL",
    }
}

fn verdict(v: Verdict) -> &'static str {
    v.shout()
}

pub fn markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# xiuload compare\n");
    let _ = writeln!(out, "- A: {} — {}", c.a_name, verdict(c.a_verdict));
    let _ = writeln!(out, "- B: {} — {}", c.b_name, verdict(c.b_verdict));
    let changed: Vec<&VerdictRow> = c.verdicts.iter().filter(|v| v.changed()).collect();
    let _ = writeln!(out, "\n## Verdict changes\n");
    if changed.is_empty() {
        let _ = writeln!(out, "No threshold or expectation changed verdict.");
    } else {
        let _ = writeln!(out, "| | check | A | B |\n|---|---|---|---|");
        for v in changed {
            let what = match (v.a, v.b) {
                (Some(false), Some(true)) => "fixed",
                (Some(true), Some(false)) => "**broke**",
                (None, _) => "new",
                (_, None) => "gone",
                _ => "",
            };
            let _ = writeln!(
                out,
                "| {what} | {} `{}` | {} | {} |",
                v.kind,
                v.name,
                pass(v.a),
                pass(v.b)
            );
        }
    }
    let _ = writeln!(
        out,
        "\n## Key metrics\n\n| scope | metric | A | B | Δ (B − A) | Δ % | |\n|---|---|---:|---:|---:|---:|---|"
    );
    for m in &c.metrics {
        let pct = match (m.a, m.delta()) {
            (_, Some(0.0)) => "".into(),
            (Some(a), Some(d)) if a != 0.0 => format!("{:+.0} %", d / a * 100.0),
            _ => "".into(),
        };
        let delta = m
            .delta()
            .map(|d| {
                if d == 0.0 {
                    return "0".into();
                }
                let s = num(Some(d));
                if d > 0.0 { format!("+{s}") } else { s }
            })
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {delta} | {pct} | {} |",
            m.scope,
            m.metric,
            num(m.a),
            num(m.b),
            m.judgement()
        );
    }
    out
}

/// Loads two run directories and compares them.
pub fn compare_dirs(a: &Path, b: &Path) -> Result<Comparison, RunDirError> {
    let (ra, ja) = load_report(a)?;
    let (rb, jb) = load_report(b)?;
    Ok(compare(
        &ra,
        &rb,
        &with_cluster_expectations(ja, a),
        &with_cluster_expectations(jb, b),
    ))
}

/// Expectations may live in `report.json` or only in a watcher's `cluster-report.json` beside it:
/// take the report's when it has them, else the watcher's.
fn with_cluster_expectations(mut report: serde_json::Value, dir: &Path) -> serde_json::Value {
    if !expectations(&report).is_empty() {
        return report;
    }
    let watched = crate::k8s::standalone::WatchReport::read(dir)
        .ok()
        .flatten();
    let expectations = watched.and_then(|w| serde_json::to_value(w.expectations).ok());
    if let (Some(e), Some(obj)) = (expectations, report.as_object_mut()) {
        obj.insert("expectations".into(), e);
    }
    report
}

pub const COMPARE_MD: &str = "compare.md";

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> (Report, serde_json::Value) {
        let text = include_str!("../../tests/fixtures/report/report.json");
        (
            serde_json::from_str(text).unwrap(),
            serde_json::from_str(text).unwrap(),
        )
    }

    #[test]
    fn identical_runs_have_zero_deltas_and_no_verdict_changes() {
        let (r, j) = report();
        let c = compare(&r, &r, &j, &j);
        assert!(c.verdicts.iter().all(|v| !v.changed()));
        assert!(c.metrics.iter().all(|m| m.delta().unwrap_or(0.0) == 0.0));
        assert!(markdown(&c).contains("No threshold or expectation changed verdict."));
    }

    #[test]
    fn changed_verdicts_and_directions_are_reported() {
        let (a, ja) = report();
        let (mut b, mut jb) = report();
        // B fixed the failing error_rate threshold, got slower to start, and broke an expectation.
        for t in &mut b.thresholds {
            if t.metric == "error_rate" {
                t.pass = true;
            }
        }
        b.all_players.startup_ms.p99_ms = a.all_players.startup_ms.p99_ms.map(|v| v * 2.0);
        let mut ja = ja;
        ja["expectations"] = serde_json::json!([{"name": "scales out", "pass": true}]);
        jb["expectations"] = serde_json::json!([{"name": "scales out", "pass": false}]);
        let c = compare(&a, &b, &ja, &jb);
        let changed: Vec<_> = c.verdicts.iter().filter(|v| v.changed()).collect();
        assert_eq!(changed.len(), 2, "{changed:?}");
        let row = c
            .metrics
            .iter()
            .find(|m| m.scope == "all" && m.metric == "startup p99 ms")
            .unwrap();
        assert_eq!(row.judgement(), "worse");
        let md = markdown(&c);
        assert!(
            md.contains("| fixed | threshold `error_rate (all)` | FAIL | pass |"),
            "{md}"
        );
        assert!(
            md.contains("| **broke** | expectation `scales out` | pass | FAIL |"),
            "{md}"
        );
        assert!(md.contains("+100 %"), "{md}");
    }

    #[test]
    fn expectations_fall_back_to_the_watchers_report() {
        let dir = tempfile::tempdir().unwrap();
        let watched = crate::k8s::standalone::WatchReport {
            cluster: Default::default(),
            expectations: vec![crate::k8s::ExpectationResult {
                kind: "ready_within".into(),
                description: "ready within 30 s".into(),
                status: crate::verdict::Verdict::Fail,
                pass: false,
                evidence: "never ready".into(),
                inconclusive: None,
            }],
        };
        std::fs::write(
            dir.path()
                .join(crate::k8s::standalone::WatchReport::FILE_NAME),
            serde_json::to_vec(&watched).unwrap(),
        )
        .unwrap();
        let v = with_cluster_expectations(serde_json::json!({}), dir.path());
        assert!(!expectations(&v)["ready within 30 s"]);
        // The report's own expectations win.
        let own = serde_json::json!({"expectations": [{"name": "x", "pass": true}]});
        let v = with_cluster_expectations(own, dir.path());
        assert_eq!(expectations(&v).len(), 1);
        assert!(expectations(&v)["x"]);
    }

    #[test]
    fn rows_cover_every_protocol_of_either_run() {
        let (a, ja) = report();
        let (mut b, jb) = report();
        b.protocols.remove("hls");
        let c = compare(&a, &b, &ja, &jb);
        let hls: Vec<_> = c.metrics.iter().filter(|m| m.scope == "hls").collect();
        assert!(!hls.is_empty());
        assert!(hls.iter().all(|m| m.b.is_none() && m.delta().is_none()));
    }
}

//! `xiuload compare A B`: two runs side by side, for "did this change help?". The diff is pure
//! (two reports in, rows out); loading and printing live in [`compare_dirs`].

use super::model::{PlayerSummary, Report, Verdict};
use super::rebuild::{RunDirError, load_report, read_watch_report};
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

/// Pass/fail of each `[[expect]]` verdict in a report, by its description.
pub fn expectations(r: &Report) -> BTreeMap<String, bool> {
    r.expectations
        .iter()
        .map(|e| (e.description.clone(), e.pass))
        .collect()
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

/// Compares two reports.
pub fn compare(a: &Report, b: &Report) -> Comparison {
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
        &expectations(a),
        &expectations(b),
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
    let a = with_cluster_expectations(load_report(a)?, a)?;
    let b = with_cluster_expectations(load_report(b)?, b)?;
    Ok(compare(&a, &b))
}

/// Expectations may live in `report.json` or only in a watcher's `cluster-report.json` beside it:
/// take the report's when it has them, else the watcher's. A watcher's report that is there but
/// cannot be read is an error: comparing without its verdicts would show them as gone.
fn with_cluster_expectations(mut report: Report, dir: &Path) -> Result<Report, RunDirError> {
    if !report.expectations.is_empty() {
        return Ok(report);
    }
    if let Some(watched) = read_watch_report(dir)? {
        report.expectations = watched.expectations;
    }
    Ok(report)
}

pub const COMPARE_MD: &str = "compare.md";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::ExpectationResult;
    use crate::k8s::standalone::WatchReport;
    use crate::report::OutputDir;
    use std::path::PathBuf;

    fn fixture_dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn report() -> Report {
        serde_json::from_str(include_str!("../../tests/fixtures/report/report.json")).unwrap()
    }

    fn expectation(description: &str, pass: bool) -> ExpectationResult {
        ExpectationResult {
            kind: "ready_within".into(),
            description: description.into(),
            status: crate::verdict::Verdict::from_pass(pass),
            pass,
            evidence: "seen".into(),
            inconclusive: None,
        }
    }

    fn write_watch_report(dir: &Path, expectations: Vec<ExpectationResult>) {
        let watched = WatchReport {
            cluster: Default::default(),
            expectations,
        };
        std::fs::write(
            dir.join(WatchReport::FILE_NAME),
            serde_json::to_vec(&watched).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn identical_runs_have_zero_deltas_and_no_verdict_changes() {
        let r = report();
        let c = compare(&r, &r);
        assert!(c.verdicts.iter().all(|v| !v.changed()));
        assert!(c.metrics.iter().all(|m| m.delta().unwrap_or(0.0) == 0.0));
        assert!(markdown(&c).contains("No threshold or expectation changed verdict."));
    }

    #[test]
    fn changed_verdicts_and_directions_are_reported() {
        let mut a = report();
        let mut b = report();
        // B fixed the failing error_rate threshold, got slower to start, and broke an expectation.
        for t in &mut b.thresholds {
            if t.metric == "error_rate" {
                t.pass = true;
            }
        }
        b.all_players.startup_ms.p99_ms = a.all_players.startup_ms.p99_ms.map(|v| v * 2.0);
        a.expectations = vec![expectation("scales out", true)];
        b.expectations = vec![expectation("scales out", false)];
        let c = compare(&a, &b);
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
        write_watch_report(dir.path(), vec![expectation("ready within 30 s", false)]);
        let r = with_cluster_expectations(report(), dir.path()).unwrap();
        assert_eq!(
            expectations(&r),
            BTreeMap::from([("ready within 30 s".to_string(), false)])
        );
        // The report's own expectations win.
        let mut own = report();
        own.expectations = vec![expectation("x", true)];
        let r = with_cluster_expectations(own, dir.path()).unwrap();
        assert_eq!(expectations(&r), BTreeMap::from([("x".to_string(), true)]));
        // No watcher's report: no expectations, and no error.
        let empty = tempfile::tempdir().unwrap();
        let r = with_cluster_expectations(report(), empty.path()).unwrap();
        assert!(expectations(&r).is_empty());
    }

    #[test]
    fn a_watchers_report_that_cannot_be_read_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(WatchReport::FILE_NAME), "{\"cluster\": 3}").unwrap();
        let e = with_cluster_expectations(report(), dir.path()).unwrap_err();
        assert!(
            e.to_string()
                .contains(&dir.path().join("cluster-report.json").display().to_string()),
            "{e}"
        );
        assert_eq!(e.blame(), crate::blame::Blame::Input);
    }

    #[test]
    fn rows_cover_every_protocol_of_either_run() {
        let a = report();
        let mut b = report();
        b.protocols.remove("hls");
        let c = compare(&a, &b);
        let hls: Vec<_> = c.metrics.iter().filter(|m| m.scope == "hls").collect();
        assert!(!hls.is_empty());
        assert!(hls.iter().all(|m| m.b.is_none() && m.delta().is_none()));
    }

    /// The fixtures were written by an earlier xiuload (no `verdict_reasons`, an expectation
    /// without `status`): they still load, and their expectation is compared.
    #[test]
    fn earlier_reports_load_and_compare() {
        let c = compare_dirs(&fixture_dir("report"), &fixture_dir("report-b")).unwrap();
        let changed: Vec<(&str, &str, Option<bool>, Option<bool>)> = c
            .verdicts
            .iter()
            .filter(|v| v.changed())
            .map(|v| (v.kind, v.name.as_str(), v.a, v.b))
            .collect();
        assert_eq!(
            changed,
            [
                ("threshold", "error_rate (all)", Some(false), Some(true)),
                ("expectation", "scales out within 60 s", None, Some(true)),
            ]
        );
    }

    /// What this version writes (`OutputDir::write_report`) loads again, to the same values.
    #[test]
    fn reports_written_by_this_version_load_to_the_same_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = report();
        written.expectations = vec![expectation("scales out", true)];
        written.verdict_reasons = vec!["error_rate (all) 0.2143 > 0.01".into()];
        let out = OutputDir::prepare(dir.path()).unwrap();
        out.write_report(&written, &[]).unwrap();
        let read = load_report(dir.path()).unwrap();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::to_value(&written).unwrap()
        );
        let c = compare_dirs(dir.path(), dir.path()).unwrap();
        assert!(c.verdicts.iter().any(|v| v.name == "scales out"));
        assert!(c.verdicts.iter().all(|v| !v.changed()));
        assert!(c.metrics.iter().all(|m| m.delta().unwrap_or(0.0) == 0.0));
    }

    #[test]
    fn a_malformed_or_unknown_report_is_an_error_naming_its_file() {
        let cases = [
            ("{\"schema_version\": 1, \"tool\"", "EOF while parsing"),
            ("[1, 2]", "invalid type: sequence, expected a map"),
            ("{\"schema_version\": 1, \"hello\": 2}", "missing field"),
            ("{\"schema_version\": 2, \"tool\": {}}", "schema_version 2"),
            (
                "{\"schema_version\": 1, \"status\": \"paused\"}",
                "unknown variant `paused`",
            ),
            (
                "{\"schema_version\": 1, \"status\": \"running\"}",
                "not finished",
            ),
            (
                "{\"schema_version\": 1, \"status\": \"error\", \"error\": \"xiu did not start\"}",
                "no report to rebuild (error): xiu did not start",
            ),
        ];
        for (text, why) in cases {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(OutputDir::REPORT_JSON), text).unwrap();
            let file = dir
                .path()
                .join(OutputDir::REPORT_JSON)
                .display()
                .to_string();
            // Whichever side it is on.
            for e in [
                compare_dirs(dir.path(), &fixture_dir("report")).unwrap_err(),
                compare_dirs(&fixture_dir("report"), dir.path()).unwrap_err(),
            ] {
                let e = e.to_string();
                assert!(e.contains(&file) && e.contains(why), "{text}: {e}");
            }
        }
    }
}

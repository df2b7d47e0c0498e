//! `xiuload merge DIR... --out DIR`: joins runs of one scenario that were started by hand on
//! several machines with one `--start-at`, into one report, exactly. Each run's `windows.jsonl`
//! holds its per-second windows with raw histograms; they are joined second by second as a
//! coordinator joins its workers' ([`super::assembler`]) and fed to one collector.

use super::assembler::{Assembler, WindowRecord};
use super::collector::{Collector, PlayerGroupInfo};
use super::{RunOptions, assemble};
use crate::clock::RunClock;
use crate::metrics::timeline::TimelineWriter;
use crate::report::OutputDir;
use crate::report::model::{Report, StopReason};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error(
        "{a} and {b} are not runs of one scenario ({what}): only runs of the same scenario file, \
         started with the same --start-at, can be merged"
    )]
    Mismatch {
        a: PathBuf,
        b: PathBuf,
        what: String,
    },
    #[error(transparent)]
    Output(#[from] crate::report::OutputError),
}

/// One hand-run load generator's run, as read back.
struct Part {
    dir: PathBuf,
    report: Report,
    records: Vec<WindowRecord>,
}

/// Why `--start-at` cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StartAtError {
    #[error("{text:?}: {source} (use RFC 3339, e.g. 2026-12-06T10:00:00Z, or Unix milliseconds)")]
    NotATime {
        text: String,
        source: humantime::TimestampError,
    },
    #[error("{0:?} is before 1970")]
    BeforeEpoch(String),
}

/// `--start-at`: RFC 3339 (`2026-12-06T10:00:00Z`) or Unix milliseconds; returns Unix µs.
pub fn parse_start_at(text: &str) -> Result<u64, StartAtError> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms * 1000);
    }
    let t = humantime::parse_rfc3339_weak(text).map_err(|source| StartAtError::NotATime {
        text: text.to_string(),
        source,
    })?;
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .map_err(|_| StartAtError::BeforeEpoch(text.to_string()))
}

fn read_part(dir: &Path) -> Result<Part, MergeError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| MergeError::Read {
            path: path.clone(),
            message: e.to_string(),
        })
    };
    let report_path = dir.join(OutputDir::REPORT_JSON);
    let report: Report =
        serde_json::from_str(&read(OutputDir::REPORT_JSON)?).map_err(|e| MergeError::Read {
            path: report_path,
            message: format!("not a finished run's report: {e}"),
        })?;
    let windows_path = dir.join(OutputDir::WINDOWS);
    let text = read(OutputDir::WINDOWS)?;
    let total = text.lines().count();
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        match serde_json::from_str::<WindowRecord>(line) {
            Ok(r) => records.push(r),
            // A torn last line (a killed run) is what the run could write: the rest stands.
            Err(_) if n + 1 == total => {}
            Err(e) => {
                return Err(MergeError::Read {
                    path: windows_path,
                    message: format!("line {}: {e}", n + 1),
                });
            }
        }
    }
    Ok(Part {
        dir: dir.to_path_buf(),
        report,
        records,
    })
}

/// Refuses parts that are not one run split by hand.
fn check_compatible(parts: &[Part]) -> Result<(), MergeError> {
    let first = &parts[0];
    let scenario = serde_json::to_value(&first.report.scenario).expect("a scenario serialises");
    for p in &parts[1..] {
        let mismatch = |what: String| MergeError::Mismatch {
            a: first.dir.clone(),
            b: p.dir.clone(),
            what,
        };
        if serde_json::to_value(&p.report.scenario).expect("a scenario serialises") != scenario {
            return Err(mismatch("their scenarios differ".into()));
        }
        if let Some(shard) = p.report.run.shard
            && p.report.run.shard == first.report.run.shard
        {
            return Err(mismatch(format!("both ran part {shard} of the plan")));
        }
        if p.report.run.start_unix_ms != first.report.run.start_unix_ms {
            return Err(mismatch(format!(
                "time zeros {} and {} differ",
                first.report.run.started_at, p.report.run.started_at
            )));
        }
    }
    Ok(())
}

/// Merges the runs in `dirs` into `out`; returns the merged report.
pub fn merge_dirs(dirs: &[PathBuf], out: &Path) -> Result<Report, MergeError> {
    let parts = dirs
        .iter()
        .map(|d| read_part(d))
        .collect::<Result<Vec<_>, _>>()?;
    check_compatible(&parts)?;
    let first = &parts[0].report;
    let scenario = first.scenario.clone();
    let clock = RunClock::at_unix_micros(first.run.start_unix_ms * 1000);
    let groups: Vec<PlayerGroupInfo> = scenario
        .players
        .iter()
        .map(|g| PlayerGroupInfo {
            name: g.name.clone(),
            protocol: g.protocol,
        })
        .collect();
    let mut collector = Collector::new(
        clock,
        scenario.run.warmup.0,
        first.loader.cores,
        &scenario
            .publishers
            .iter()
            .map(|g| g.name.clone())
            .collect::<Vec<_>>(),
        &groups,
        scenario.thresholds.clone(),
        scenario.knee.clone(),
    );
    let mut assembler = Assembler::new(parts.len() as u32);
    for (i, p) in parts.iter().enumerate() {
        let finished = p.records.iter().any(|r| r.last);
        for r in &p.records {
            assembler.offer(i as u32, r.clone());
        }
        if !finished {
            assembler.mark_lost(i as u32);
        }
    }
    let out_dir = OutputDir::prepare(out)?;
    let create = |name: &str| {
        TimelineWriter::create(&out_dir.path(name)).map_err(|e| crate::report::OutputError::Write {
            path: out_dir.path(name),
            source: e,
        })
    };
    let mut windows = create(OutputDir::WINDOWS)?;
    let mut timeline = create(OutputDir::TIMELINE)?;
    let mut ended = Duration::ZERO;
    let merged = assembler.ready(u64::MAX);
    let count = merged.len();
    for (i, window) in merged.into_iter().enumerate() {
        ended = ended.max(window.at);
        let record = WindowRecord {
            seq: i as u64 + 1,
            last: i + 1 == count,
            window,
        };
        let _ = windows.append_line(&record, record.window.at.as_secs_f64());
        collector.add(record.window);
        if let Some(point) = collector.last_point() {
            let _ = timeline.append(point);
        }
    }
    let stopped_by = if parts
        .iter()
        .any(|p| p.report.run.stopped_by == StopReason::Interrupted)
    {
        StopReason::Interrupted
    } else {
        StopReason::Completed
    };
    let knee = collector
        .finish_knee(stopped_by == StopReason::Completed)
        .map(|(section, steps)| {
            let knee = first.knee.as_ref();
            crate::report::knee::summarise(
                &section,
                knee.map(|k| k.clients).unwrap_or_default(),
                steps,
                knee.map_or(1, |k| k.servers),
            )
        });
    let options = RunOptions {
        scenario_file: PathBuf::from(&first.run.scenario_file),
        local_workers: Some(parts.len() as u32),
        ..Default::default()
    };
    let id = format!("{}-merged", first.run.id);
    // Faults act on a local topology, which only one of the parts can have run: its record
    // stands for the merged run, and fault expectations are judged on the merged load.
    // The same for the local kubelet's record.
    fn the_record<T: Clone>(parts: &[Part], of: impl Fn(&Report) -> &Vec<T>) -> Vec<T> {
        parts
            .iter()
            .map(|p| of(&p.report))
            .find(|v| !v.is_empty())
            .cloned()
            .unwrap_or_default()
    }
    let faults = the_record(&parts, |r| &r.faults);
    let kubelet = the_record(&parts, |r| &r.kubelet);
    let plan = crate::scenario::plan::Plan::of(&scenario);
    let expectations = crate::k8s::judge(
        &scenario.expect,
        None,
        collector.points(),
        &crate::k8s::expect::stage_starts(&scenario),
        crate::scenario::fault::FaultRecord {
            events: &faults,
            load_end: Some(plan.length.min(ended).as_secs_f64()),
        },
    );
    let mut report = assemble::build_report(assemble::Inputs {
        scenario: &scenario,
        plan: &plan,
        options: &options,
        run_id: &id,
        name: &first.run.name,
        target: &first.run.target,
        clock: &clock,
        ended,
        stopped_by,
        collector: &collector,
        knee,
        cluster: None,
        expectations,
        faults: &faults,
        kubelet: &kubelet,
    });
    report.notes.push(format!(
        "merged from {} runs: {}",
        parts.len(),
        parts
            .iter()
            .map(|p| p.dir.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for (i, p) in parts.iter().enumerate() {
        if !p.records.iter().any(|r| r.last) {
            report.notes.push(format!(
                "{} (part {i}) has no last window: it was cut short, and the merge carries what it wrote",
                p.dir.display()
            ));
        }
    }
    let verdict = crate::report::verdict::judge(&report);
    report.verdict = verdict.verdict;
    report.verdict_reasons = verdict.reasons;
    out_dir.write_report(&report, collector.points())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_at_takes_rfc3339_or_unix_ms() {
        assert_eq!(parse_start_at("1765015200000"), Ok(1_765_015_200_000_000));
        assert_eq!(
            parse_start_at("2025-12-06T10:00:00Z"),
            Ok(1_765_015_200_000_000)
        );
        let err = parse_start_at("tomorrow").unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}

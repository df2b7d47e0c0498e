//! Command line (clap derive). `main.rs` only dispatches.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "xiuload",
    version,
    about = "Load tests for xiu live-media clusters: synthetic RTMP publishers and HTTP-FLV, HLS and RTMP viewers, with viewer-experience metrics and reports.",
    after_help = "Exit codes: 0 pass, 1 a threshold failed (or lint found problems), 2 bad input or usage, 3 runtime failure, 130 interrupted (partial report written)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: generate the load, measure, write report.json, summary.md and timeline.jsonl.
    Run {
        /// Scenario file (TOML); see README.md "Scenario reference".
        scenario: PathBuf,
        /// Output directory [default: reports/<run-id>].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Do not print the live status line.
        #[arg(long)]
        quiet: bool,
    },
    /// Check scenario files without running them.
    Validate {
        /// One or more scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Watch the cluster of a scenario's [kube] section (while another tool makes the load):
    /// writes cluster.jsonl, cluster-report.json and cluster-summary.md.
    Watch {
        /// Scenario file with a [kube] section: a whole scenario, or just [kube] and [[expect]].
        #[arg(long)]
        scenario: PathBuf,
        /// Output directory [default: reports/watch-<unix time>].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Stop after this long (e.g. "10m"); otherwise at Ctrl-C.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
    },
}

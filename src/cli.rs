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
        /// Serve live counters and gauges in the Prometheus text format at http://ADDR/metrics
        /// while the run lasts (e.g. 0.0.0.0:9464).
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Split the run over N `xiuload worker` processes on this machine, merged into one
        /// report (README "Running bigger than one machine").
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
        local_workers: Option<u32>,
        /// The run's time zero, as RFC 3339 (2026-12-06T10:00:00Z) or Unix milliseconds: runs
        /// started by hand on several machines with the same --start-at can be joined by
        /// `xiuload merge`.
        #[arg(long, value_name = "TIME", value_parser = crate::run::merge::parse_start_at)]
        start_at: Option<u64>,
        /// Run only part I of N of the plan (0-based), for a run split by hand over N machines:
        /// each machine runs its part with the same --start-at, then `xiuload merge`.
        #[arg(long, value_name = "I/N", value_parser = crate::scenario::shard::Shard::parse, conflicts_with = "local_workers")]
        shard: Option<crate::scenario::shard::Shard>,
        /// Split the run over N worker pods of a Kubernetes Indexed Job (overrides
        /// `[distributed].workers`; a scenario without `[distributed]` gets its defaults).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256), conflicts_with_all = ["local_workers", "shard"])]
        workers: Option<u32>,
        /// Leave the worker Job and its ConfigMap in the cluster after the run (to read the
        /// workers' logs); they are deleted by default. The Job's TTL removes them later.
        #[arg(long)]
        keep: bool,
    },
    /// Print the Kubernetes objects a distributed run creates (the ConfigMap holding the
    /// scenario and the Indexed Job of workers) as YAML, for GitOps or review.
    Render {
        /// Scenario file (TOML) with a `[distributed]` section (or --workers).
        scenario: PathBuf,
        /// How many workers (overrides `[distributed].workers`).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
        workers: Option<u32>,
        /// The run id the objects are labelled with [default: <run name>-<UTC time>].
        #[arg(long, value_name = "ID")]
        run_id: Option<String>,
    },
    /// One shard of a distributed run, driven by a coordinator over HTTP (`xiuload run
    /// --local-workers`, or a Kubernetes Indexed Job's pod).
    Worker {
        /// Scenario file (TOML), the coordinator's.
        scenario: PathBuf,
        /// This worker's index (an Indexed Job sets JOB_COMPLETION_INDEX).
        #[arg(long, env = "JOB_COMPLETION_INDEX")]
        index: u32,
        /// How many workers share the run.
        #[arg(long, env = "XIULOAD_WORKERS")]
        workers: u32,
        /// Where the coordinator reaches this worker.
        #[arg(long, default_value = "0.0.0.0:9470")]
        listen: std::net::SocketAddr,
        /// Endpoints resolved by the coordinator (JSON); default: the scenario's [target].
        #[arg(long, value_name = "FILE")]
        endpoints: Option<PathBuf>,
        /// Exit when no start comes within this long.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        start_timeout: std::time::Duration,
        /// Also write every window to this file (JSON lines, as a run's windows.jsonl).
        #[arg(long, value_name = "FILE")]
        windows_log: Option<PathBuf>,
    },
    /// Merge runs made by hand on several machines (each `xiuload run --start-at T` of one
    /// scenario) into one report, exactly: counters and histograms add.
    Merge {
        /// Run directories (each with report.json and windows.jsonl).
        #[arg(required = true)]
        run_dirs: Vec<PathBuf>,
        /// Where the merged report goes.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Semantic checks of Kubernetes manifests for a xiu deployment (files or directories of YAML).
    ///
    /// Exit 0 when clean, 1 when something was found, 2 when input cannot be read.
    Lint {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run beside a xiu edge: relay every stream live on the origins into it (HTTP-FLV from the
    /// origin that holds it, RTMP publish into the edge, retried forever), and serve on `--listen`:
    /// /livez, /readyz (the edge serves every origin stream), /startupz, /drain (for preStop).
    Sidecar(Box<SidecarArgs>),
    /// Rebuild report.html and summary.md of a run directory from its report.json and
    /// timeline.jsonl (and a watcher's cluster-report.json, when present).
    Report { run_dir: PathBuf },
    /// Replay a run's recorded per-pod metrics (hpa-input.json) through alternative HPA specs:
    /// the replicas each would have had beside the real ones. Writes hpa-replay.html/.json.
    HpaReplay {
        run_dir: PathBuf,
        /// autoscaling/v2 HorizontalPodAutoscaler YAML; repeat for several specs.
        #[arg(long = "hpa", value_name = "FILE", required = true)]
        hpa: Vec<PathBuf>,
        /// How often the controller reconciles (kube-controller-manager's
        /// --horizontal-pod-autoscaler-sync-period).
        #[arg(long, default_value = "15s", value_parser = crate::hpa::parse_sync_period)]
        sync_period: std::time::Duration,
        /// Ratio band around 1.0 without scaling (--horizontal-pod-autoscaler-tolerance); an
        /// HPA's own behavior.scaleUp/scaleDown.tolerance overrides it.
        #[arg(long, default_value = "0.1", value_parser = crate::hpa::parse_tolerance)]
        tolerance: f64,
        /// --horizontal-pod-autoscaler-downscale-stabilization: the window of HPAs without
        /// behavior, and of behavior.scaleDown without stabilizationWindowSeconds.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        downscale_stabilization: std::time::Duration,
        /// --horizontal-pod-autoscaler-cpu-initialization-period.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        cpu_initialization_period: std::time::Duration,
        /// --horizontal-pod-autoscaler-initial-readiness-delay.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        initial_readiness_delay: std::time::Duration,
    },
    /// Compare two runs: key metrics with deltas, and which thresholds/expectations changed
    /// verdict. Prints Markdown and writes compare.md.
    Compare {
        run_a: PathBuf,
        run_b: PathBuf,
        /// Directory for compare.md [default: the current directory].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
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

#[derive(Debug, clap::Args)]
pub struct SidecarArgs {
    /// An origin's xiu HTTP API (its stream list). Repeat for several origins.
    #[arg(long, value_name = "URL", default_value = "http://xiu-origin:8000")]
    pub origin_api: Vec<String>,
    /// An origin's HTTP-FLV base, what is relayed; one per --origin-api, in the same order.
    /// Default: each API's host on port 8081.
    #[arg(long, value_name = "URL")]
    pub origin_flv: Vec<String>,
    /// The edge's RTMP push password, appended as `?token=` to every relay publish.
    #[arg(long, env = "XIU_RELAY_TOKEN", hide_env_values = true)]
    pub relay_token: Option<String>,
    /// This edge's HTTP-FLV base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub edge_flv: String,
    /// This edge's RTMP listener: the relay publishes here (and the probe handshakes).
    #[arg(long, default_value = "127.0.0.1:1935")]
    pub edge_rtmp: std::net::SocketAddr,
    /// This edge's xiu HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub edge_api: String,
    /// This edge's HLS base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub edge_hls: String,
    /// Only relay streams of this RTMP application ("" = every app).
    #[arg(long, default_value = "live")]
    pub app: String,
    /// Where the probe server listens.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub listen: std::net::SocketAddr,
    /// How often the origins' stream lists (and the edge's) are read.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub poll_interval: std::time::Duration,
    /// How long GET /drain waits for the edge's viewers to leave.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub drain_timeout: std::time::Duration,
    /// A stream an origin lists for less than this is not yet required by /readyz.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub new_stream_grace: std::time::Duration,
    /// This Pod's name and namespace (downward API): with both, the sidecar keeps the Pod's
    /// controller.kubernetes.io/pod-deletion-cost equal to the edge's viewer count.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
}

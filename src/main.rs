use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use xiuload::blame::Blame;
use xiuload::cli::{Cli, Command};
use xiuload::exit;
use xiuload::run::render::RenderError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::BAD_INPUT as u8
            } else {
                0
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUNTIME_FAILURE as u8);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    // Do not wait for stray tasks (a hung socket) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code as u8)
}

async fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Validate { scenarios } => validate(&scenarios),
        Command::Run {
            scenario,
            out,
            quiet,
            metrics_addr,
            local_workers,
            start_at,
            shard,
            workers,
            keep,
        } => {
            let options = xiuload::run::RunOptions {
                scenario_file: scenario,
                out_dir: out,
                status_line: !quiet,
                metrics_addr,
                start_at_unix_micros: start_at,
                local_workers,
                shard,
                workers,
                keep,
            };
            run(options).await
        }
        Command::Worker {
            scenario,
            index,
            workers,
            listen,
            endpoints,
            start_timeout,
            windows_log,
        } => {
            let options = xiuload::run::worker::WorkerOptions {
                shard: match xiuload::scenario::shard::Shard::new(index, workers) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: --index/--workers: {e}");
                        return exit::BAD_INPUT;
                    }
                },
                listen,
                endpoints_file: endpoints,
                start_timeout,
                windows_log,
            };
            worker(scenario, options).await
        }
        Command::Merge { run_dirs, out } => merge(&run_dirs, &out),
        Command::Render {
            scenario,
            workers,
            run_id,
        } => render(&scenario, workers, run_id),
        Command::Lint { paths } => lint(&paths),
        Command::Sidecar(args) => sidecar(*args).await,
        Command::Watch {
            scenario,
            out,
            duration,
        } => watch(&scenario, out, duration).await,
        Command::Report { run_dir } => rebuild(&run_dir),
        Command::HpaReplay {
            run_dir,
            hpa,
            sync_period,
            tolerance,
            downscale_stabilization,
            cpu_initialization_period,
            initial_readiness_delay,
        } => {
            let opts = xiuload::hpa::replay::ReplayOptions {
                sync_period_s: sync_period.as_secs_f64(),
                flags: xiuload::hpa::algorithm::ControllerFlags {
                    tolerance,
                    downscale_stabilization_s: downscale_stabilization.as_secs_f64(),
                    cpu_initialization_period_s: cpu_initialization_period.as_secs_f64(),
                    initial_readiness_delay_s: initial_readiness_delay.as_secs_f64(),
                },
            };
            hpa_replay(&run_dir, &hpa, &opts)
        }
        Command::Compare { run_a, run_b, out } => compare(&run_a, &run_b, out.as_deref()),
    }
}

/// Prints a command's error; its exit code says whose side the failure is on.
fn failed(e: &dyn std::fmt::Display, blame: Blame) -> i32 {
    eprintln!("error: {e}");
    exit::of_blame(blame)
}

fn render(path: &Path, workers: Option<u32>, run_id: Option<String>) -> i32 {
    match xiuload::run::render::render(path, workers, run_id) {
        Ok(yaml) => {
            xiuload::outln!("{}", yaml.trim_end());
            exit::OK
        }
        // A scenario's errors are already located (file:line: field ...).
        Err(RenderError::Scenario(e)) => {
            eprintln!("{e}");
            exit::BAD_INPUT
        }
        Err(e) => failed(&e, e.blame()),
    }
}

async fn watch(path: &Path, out: Option<PathBuf>, duration: Option<std::time::Duration>) -> i32 {
    use xiuload::k8s::standalone::{WatchError, watch_command};
    match watch_command(path, out, duration, shutdown_signal()).await {
        Ok(w) if w.interrupted => exit::INTERRUPTED,
        Ok(w) => exit::of_verdict(w.verdict),
        Err(WatchError::Scenario(e)) => {
            eprintln!("{e}");
            exit::BAD_INPUT
        }
        Err(e) => failed(&e, e.blame()),
    }
}

fn rebuild(dir: &Path) -> i32 {
    match xiuload::report::rebuild::rebuild(dir) {
        Ok(html) => {
            let summary = dir.join(xiuload::report::OutputDir::SUMMARY_MD);
            xiuload::outln!("Rebuilt {} and {}", html.display(), summary.display());
            exit::OK
        }
        Err(e) => failed(&e, e.blame()),
    }
}

fn hpa_replay(
    run_dir: &Path,
    specs: &[PathBuf],
    opts: &xiuload::hpa::replay::ReplayOptions,
) -> i32 {
    use xiuload::hpa::{REPLAY_HTML, REPLAY_JSON, replay_run_dir};
    match replay_run_dir(run_dir, specs, opts) {
        Ok(table) => {
            xiuload::outln!("{table}");
            let dir = run_dir.display();
            xiuload::outln!("Wrote {REPLAY_HTML} and {REPLAY_JSON} in {dir}");
            exit::OK
        }
        Err(e) => failed(&e, e.blame()),
    }
}

/// Prints the comparison and writes `compare.md` into `out` (default: the current directory).
fn compare(a: &Path, b: &Path, out: Option<&Path>) -> i32 {
    use xiuload::report::compare::{COMPARE_MD, compare_dirs, markdown};
    let c = match compare_dirs(a, b) {
        Ok(c) => c,
        Err(e) => return failed(&e, e.blame()),
    };
    let md = markdown(&c);
    xiuload::outln!("{md}");
    let dir = out.unwrap_or(Path::new("."));
    let path = dir.join(COMPARE_MD);
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, &md)) {
        let why = format!("cannot write {}: {e}", path.display());
        return failed(&why, Blame::Runtime);
    }
    eprintln!("Wrote {}", path.display());
    exit::OK
}

fn lint(paths: &[std::path::PathBuf]) -> i32 {
    match xiuload::lint::lint_paths(paths) {
        Err(e) => {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        }
        Ok(findings) if findings.is_empty() => {
            xiuload::outln!("xiuload lint: no findings");
            exit::OK
        }
        Ok(findings) => {
            for f in &findings {
                xiuload::outln!("{f}");
            }
            xiuload::outln!("xiuload lint: {} finding(s)", findings.len());
            exit::CHECK_FAILED
        }
    }
}

async fn sidecar(args: xiuload::cli::SidecarArgs) -> i32 {
    init_logging();
    let origins = match xiuload::sidecar::pair_origins(&args.origin_api, &args.origin_flv) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let pod = match (args.pod_name, args.pod_namespace) {
        (Some(name), Some(namespace)) => Some(xiuload::sidecar::PodRef {
            name,
            namespace,
            kube: None,
        }),
        _ => None,
    };
    let config = xiuload::sidecar::SidecarConfig {
        origins,
        edge_flv: args.edge_flv,
        edge_rtmp: args.edge_rtmp,
        edge_api: args.edge_api,
        edge_hls: args.edge_hls,
        app: args.app,
        listen: args.listen,
        poll_interval: args.poll_interval,
        relay_token: args.relay_token.filter(|t| !t.is_empty()),
        drain_timeout: args.drain_timeout,
        new_stream_grace: args.new_stream_grace,
        pod,
    };
    match xiuload::sidecar::run(config, shutdown_signal()).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::RUNTIME_FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): the sidecar runs in a pod, where
/// stderr is the log.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn validate(paths: &[std::path::PathBuf]) -> i32 {
    let mut code = exit::OK;
    for path in paths {
        match xiuload::scenario::load(path) {
            Ok(scenario) => {
                xiuload::outln!("{}: ok", path.display());
                print_notes(path, &scenario, &mut std::io::stdout());
            }
            Err(e) => {
                eprintln!("{e}");
                code = exit::BAD_INPUT;
            }
        }
    }
    code
}

/// What a valid scenario will run into on xiu 0.14 (see `scenario::advice`).
fn print_notes(
    path: &std::path::Path,
    scenario: &xiuload::scenario::Scenario,
    out: &mut impl std::io::Write,
) {
    for note in xiuload::scenario::advice::name_collisions(scenario) {
        let _ = writeln!(out, "{}: note: {note}", path.display());
    }
}

async fn run(options: xiuload::run::RunOptions) -> i32 {
    let path = &options.scenario_file;
    let mut scenario = match xiuload::scenario::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return exit::BAD_INPUT;
        }
    };
    if let Some(n) = options.workers
        && let Err(e) = xiuload::scenario::distributed::apply_workers_flag(&mut scenario, n)
    {
        eprintln!("error: {e}");
        return exit::BAD_INPUT;
    }
    print_notes(path, &scenario, &mut std::io::stderr());
    let outcome = match xiuload::run::run(scenario, options, shutdown_signal()).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                xiuload::run::RunError::Output(_) => exit::BAD_INPUT,
                xiuload::run::RunError::InterruptedBeforeStart => exit::INTERRUPTED,
                _ => exit::RUNTIME_FAILURE,
            };
        }
    };
    xiuload::outln!("{}", xiuload::report::markdown::render(&outcome.report));
    if let Some(e) = &outcome.write_error {
        eprintln!("error: the summary above is the run's result; {e}");
        return exit::RUNTIME_FAILURE;
    }
    xiuload::outln!("Reports in {}", outcome.out.dir.display());
    match outcome.report.run.stopped_by {
        xiuload::report::model::StopReason::Interrupted => exit::INTERRUPTED,
        _ => exit::of_verdict(outcome.report.verdict),
    }
}

async fn worker(path: std::path::PathBuf, options: xiuload::run::worker::WorkerOptions) -> i32 {
    let scenario = match xiuload::scenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return exit::BAD_INPUT;
        }
    };
    match xiuload::run::worker::serve(scenario, options, shutdown_signal()).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::RUNTIME_FAILURE
        }
    }
}

fn merge(dirs: &[std::path::PathBuf], out: &std::path::Path) -> i32 {
    match xiuload::run::merge::merge_dirs(dirs, out) {
        Ok(report) => {
            xiuload::outln!("{}", xiuload::report::markdown::render(&report));
            xiuload::outln!("Merged report in {}", out.display());
            exit::of_verdict(report.verdict)
        }
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                xiuload::run::merge::MergeError::Output(_) => exit::RUNTIME_FAILURE,
                _ => exit::BAD_INPUT,
            }
        }
    }
}

/// Resolves on the first Ctrl-C or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    wait_for_signal(&mut term).await;
    eprintln!(
        "\nstopping: writing the report with what was measured (press Ctrl-C again to quit at once)"
    );
    tokio::spawn(async move {
        wait_for_signal(&mut term).await;
        // process::exit skips destructors: stop the local xius and remove their directories here.
        xiuload::local::kill_all_now();
        std::process::exit(exit::INTERRUPTED);
    });
}

async fn wait_for_signal(term: &mut Option<tokio::signal::unix::Signal>) {
    match term.as_mut() {
        Some(t) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = t.recv() => {},
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

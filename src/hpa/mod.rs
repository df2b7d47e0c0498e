//! HPA what-if replay: the Kubernetes HorizontalPodAutoscaler algorithm as pure functions
//! ([`algorithm`]), HPA YAML parsing ([`spec`]), and replaying a run's recorded per-pod metrics
//! through alternative specs ([`replay`]). Used by `xiuload hpa-replay`.

pub mod algorithm;
pub mod replay;
pub mod spec;

use crate::report::{OutputDir, OutputError};
use std::path::{Path, PathBuf};

pub const REPLAY_HTML: &str = "hpa-replay.html";
pub const REPLAY_JSON: &str = "hpa-replay.json";

#[derive(Debug, thiserror::Error)]
pub enum HpaReplayError {
    #[error(transparent)]
    Input(#[from] replay::InputError),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl HpaReplayError {
    pub fn exit_code(&self) -> i32 {
        match self {
            HpaReplayError::Output(_) => crate::exit::RUNTIME_FAILURE,
            _ => crate::exit::BAD_INPUT,
        }
    }
}

/// Replays `hpa-input.json` of `run_dir` through each spec file; writes `hpa-replay.json` and
/// `hpa-replay.html` there and returns the terminal table.
pub fn replay_run_dir(
    run_dir: &Path,
    spec_files: &[PathBuf],
    sync_period_s: f64,
) -> Result<String, HpaReplayError> {
    if !run_dir.is_dir() {
        return Err(replay::InputError::Read {
            path: run_dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        }
        .into());
    }
    let specs = spec_files
        .iter()
        .map(|f| spec::load(f))
        .collect::<Result<Vec<_>, _>>()?;
    let input = replay::load_input(run_dir)?;
    let result = replay::replay(&input, &specs, sync_period_s);
    let out = OutputDir {
        dir: run_dir.to_path_buf(),
    };
    let json = serde_json::to_vec_pretty(&result).expect("replay result serialises");
    out.write(REPLAY_JSON, &json)?;
    out.write(REPLAY_HTML, replay::html(&result, &input).as_bytes())?;
    Ok(replay::table(&result))
}

/// `xiuload hpa-replay`: prints the table, returns the exit code.
pub fn command(run_dir: &Path, spec_files: &[PathBuf], sync_period_s: f64) -> i32 {
    match replay_run_dir(run_dir, spec_files, sync_period_s) {
        Ok(table) => {
            println!("{table}");
            println!(
                "Wrote {} and {} in {}",
                REPLAY_HTML,
                REPLAY_JSON,
                run_dir.display()
            );
            crate::exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

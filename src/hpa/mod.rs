//! HPA what-if replay: the Kubernetes HorizontalPodAutoscaler controller as pure functions
//! ([`algorithm`]), HPA YAML parsing ([`spec`]), and replaying a run's recorded per-pod metrics
//! through alternative specs ([`replay`]). Used by `xiuload hpa-replay`.

pub mod algorithm;
pub mod input;
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
    /// The input's fault unless writing failed.
    pub fn blame(&self) -> crate::blame::Blame {
        match self {
            HpaReplayError::Output(_) => crate::blame::Blame::Runtime,
            _ => crate::blame::Blame::Input,
        }
    }
}

/// `--sync-period`: at least a second, so a replay's rows stay countable (the controller's own
/// default is 15 s).
pub fn parse_sync_period(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(1) {
        return Err(format!("{s:?} is shorter than 1s"));
    }
    Ok(d)
}

/// `--tolerance`: a non-negative ratio, e.g. 0.1.
pub fn parse_tolerance(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!("{s:?} is not a non-negative number such as 0.1")),
    }
}

/// Replays `hpa-input.json` of `run_dir` through each spec file; writes `hpa-replay.json` and
/// `hpa-replay.html` there and returns the terminal table.
pub fn replay_run_dir(
    run_dir: &Path,
    spec_files: &[PathBuf],
    opts: &replay::ReplayOptions,
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
    let result = replay::replay(&input, &specs, opts);
    let out = OutputDir {
        dir: run_dir.to_path_buf(),
    };
    let json = serde_json::to_vec_pretty(&result).expect("replay result serialises");
    out.write(REPLAY_JSON, &json)?;
    out.write(REPLAY_HTML, replay::html(&result, &input).as_bytes())?;
    Ok(replay::table(&result))
}

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
pub fn parse_sync_period(s: &str) -> Result<std::time::Duration, HpaArgError> {
    let d = humantime::parse_duration(s).map_err(HpaArgError::Duration)?;
    if d < std::time::Duration::from_secs(1) {
        return Err(HpaArgError::SyncPeriodTooShort(s.to_string()));
    }
    Ok(d)
}

/// `--tolerance`: a non-negative ratio, e.g. 0.1.
pub fn parse_tolerance(s: &str) -> Result<f64, HpaArgError> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(HpaArgError::Tolerance(s.to_string())),
    }
}

/// Why an `hpa-replay` option's value was refused (clap prints it after the option's name).
#[derive(Debug, thiserror::Error)]
pub enum HpaArgError {
    #[error("{0}")]
    Duration(humantime::DurationError),
    #[error("{0:?} is shorter than 1s")]
    SyncPeriodTooShort(String),
    #[error("{0:?} is not a non-negative number such as 0.1")]
    Tolerance(String),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values_are_checked_with_the_value_in_the_message() {
        assert_eq!(
            parse_sync_period("30s").unwrap(),
            std::time::Duration::from_secs(30)
        );
        let short = parse_sync_period("500ms").unwrap_err();
        assert_eq!(short.to_string(), "\"500ms\" is shorter than 1s");
        assert!(matches!(
            parse_sync_period("soon"),
            Err(HpaArgError::Duration(_))
        ));
        assert_eq!(parse_tolerance("0.1").unwrap(), 0.1);
        for bad in ["-0.1", "NaN", "inf", "ten"] {
            let e = parse_tolerance(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{bad:?} is not a non-negative number such as 0.1")
            );
        }
    }
}

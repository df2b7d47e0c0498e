//! What a rule reports, and how the CLI prints it.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The manifests will not do what they say (no traffic, crash, outage).
    Error,
    /// Probably wrong, or wrong under conditions the linter cannot see.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// `Kind/namespace/name`; a missing namespace prints as `-`.
    pub object: String,
    pub file: PathBuf,
    /// Says what is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}[{}] {}: {}",
            self.file.display(),
            self.severity,
            self.rule,
            self.object,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_format() {
        let f = Finding {
            rule: "hpa-min-gt-max",
            severity: Severity::Error,
            object: "HorizontalPodAutoscaler/ns/x".into(),
            file: PathBuf::from("a.yaml"),
            message: "fix it".into(),
        };
        assert_eq!(
            f.to_string(),
            "a.yaml: error[hpa-min-gt-max] HorizontalPodAutoscaler/ns/x: fix it"
        );
    }
}

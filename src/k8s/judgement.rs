//! What judging one `[[expect]]` entry gives: its [`ExpectationResult`] (as `report.json` holds
//! it, read back from earlier versions too) and the constructors every judge uses. Below both
//! judges, the cluster's (`expect`) and the load timeline's (`recovery`), which share it.

use super::config::Expectation;
use crate::verdict::{Judged, Verdict};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "ExpectationRecord")]
pub struct ExpectationResult {
    pub kind: String,
    /// The expectation in words, e.g. "xiu-edge scales up to >= 3 ready replicas within 2m after stage 1 starts".
    pub description: String,
    /// `pass`, `fail`, or `inconclusive` when the data it needs was not there.
    pub status: Verdict,
    /// `status == pass`, kept for readers of earlier reports.
    pub pass: bool,
    pub evidence: String,
    /// Why it could not be judged (`inconclusive` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<String>,
}

impl ExpectationResult {
    pub fn judged(&self) -> Judged {
        let why = || match &self.inconclusive {
            Some(reason) => format!("{}: {reason}", self.description),
            None => format!("{}: {}", self.description, self.evidence),
        };
        match self.status {
            Verdict::Pass => Judged::pass(),
            Verdict::Fail => Judged::fail(why()),
            Verdict::Inconclusive => Judged::inconclusive(why()),
        }
    }
}

/// `report.json` as earlier versions wrote it (no `status`), or as this one does.
#[derive(Deserialize)]
struct ExpectationRecord {
    kind: String,
    description: String,
    #[serde(default)]
    status: Option<Verdict>,
    pass: bool,
    evidence: String,
    #[serde(default)]
    inconclusive: Option<String>,
}

impl From<ExpectationRecord> for ExpectationResult {
    fn from(r: ExpectationRecord) -> Self {
        let status = r.status.unwrap_or(Verdict::from_pass(r.pass));
        ExpectationResult {
            kind: r.kind,
            description: r.description,
            pass: status == Verdict::Pass,
            status,
            evidence: r.evidence,
            inconclusive: r.inconclusive,
        }
    }
}

pub(super) fn result(
    e: &Expectation,
    description: String,
    pass: bool,
    evidence: String,
) -> ExpectationResult {
    ExpectationResult {
        kind: e.kind.as_str().to_string(),
        description,
        status: Verdict::from_pass(pass),
        pass,
        evidence,
        inconclusive: None,
    }
}

pub(super) fn inconclusive(
    e: &Expectation,
    description: String,
    evidence: String,
    why: String,
) -> ExpectationResult {
    ExpectationResult {
        kind: e.kind.as_str().to_string(),
        description,
        status: Verdict::Inconclusive,
        pass: false,
        evidence,
        inconclusive: Some(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::cluster::ExpectKind;

    #[test]
    fn an_earlier_report_without_status_reads_its_verdict_from_pass() {
        let old =
            r#"{"kind":"max_restarts","description":"d","pass":false,"evidence":"2 restarts"}"#;
        let r: ExpectationResult = serde_json::from_str(old).unwrap();
        assert_eq!((r.status, r.pass), (Verdict::Fail, false));
        let passed = old.replace("\"pass\":false", "\"pass\":true");
        let r: ExpectationResult = serde_json::from_str(&passed).unwrap();
        assert_eq!((r.status, r.pass), (Verdict::Pass, true));
    }

    #[test]
    fn a_written_result_reads_back_the_same() {
        let e = Expectation::new(ExpectKind::NoFlapping);
        let r = inconclusive(&e, "d".into(), "e".into(), "no HPA events".into());
        let back: ExpectationResult =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.kind, "no_flapping");
    }

    #[test]
    fn judged_gives_the_reason_it_did_not_pass() {
        let e = Expectation::new(ExpectKind::MaxRestarts);
        let failed = result(&e, "at most 0 restarts".into(), false, "2 restarts".into());
        assert_eq!(
            failed.judged(),
            Judged::fail("at most 0 restarts: 2 restarts")
        );
        let unknown = inconclusive(&e, "d".into(), "e".into(), "pods refused (403)".into());
        assert_eq!(
            unknown.judged(),
            Judged::inconclusive("d: pods refused (403)")
        );
        assert_eq!(
            result(&e, "d".into(), true, "e".into()).judged(),
            Judged::pass()
        );
    }
}

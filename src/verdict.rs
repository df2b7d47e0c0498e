//! Pass, fail or inconclusive: the one place that turns judged items (thresholds, `[[expect]]`,
//! the knee, the health of the clients themselves) into a run's verdict.
//!
//! Three values, because a verifier must not pass what it could not see: an expectation with
//! nothing to judge (the API server never answered, the workload never appeared, no scale-down
//! happened) is `inconclusive`, never `pass`. Pure: writers and `main.rs` read the result.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Nothing failed, but something could not be judged: not a pass.
    Inconclusive,
    Fail,
}

impl Verdict {
    pub fn from_pass(pass: bool) -> Verdict {
        if pass { Verdict::Pass } else { Verdict::Fail }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Fail => "fail",
        }
    }

    /// How the verdict is shown in a summary line: `PASS`, `FAIL`, `INCONCLUSIVE`.
    pub fn shout(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Fail => "FAIL",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One judged item: what it was, and why it did not pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub verdict: Verdict,
    /// For anything but a pass: the reason, as the summary shows it.
    pub why: String,
}

impl Judged {
    pub fn pass() -> Judged {
        Judged {
            verdict: Verdict::Pass,
            why: String::new(),
        }
    }
    pub fn fail(why: impl Into<String>) -> Judged {
        Judged {
            verdict: Verdict::Fail,
            why: why.into(),
        }
    }
    pub fn inconclusive(why: impl Into<String>) -> Judged {
        Judged {
            verdict: Verdict::Inconclusive,
            why: why.into(),
        }
    }
}

/// The verdict of a whole run and the reasons behind it (empty for a pass).
#[derive(Debug, Clone, PartialEq)]
pub struct Overall {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

/// Any failure fails the run; else anything inconclusive makes it inconclusive; else it passes.
/// The reasons list failures first, then what could not be judged.
pub fn overall(items: impl IntoIterator<Item = Judged>) -> Overall {
    let mut items: Vec<Judged> = items
        .into_iter()
        .filter(|j| j.verdict != Verdict::Pass)
        .collect();
    items.sort_by_key(|j| std::cmp::Reverse(j.verdict));
    Overall {
        verdict: items.first().map_or(Verdict::Pass, |j| j.verdict),
        reasons: items.into_iter().map(|j| j.why).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_judge_passes_and_one_failure_wins() {
        assert_eq!(overall([]).verdict, Verdict::Pass);
        let o = overall([
            Judged::pass(),
            Judged::inconclusive("no scale-down happened"),
            Judged::fail("p95 latency 900 ms > 500 ms"),
        ]);
        assert_eq!(o.verdict, Verdict::Fail);
        assert_eq!(
            o.reasons,
            ["p95 latency 900 ms > 500 ms", "no scale-down happened"]
        );
    }

    #[test]
    fn inconclusive_is_not_a_pass() {
        let o = overall([
            Judged::pass(),
            Judged::inconclusive("API server unreachable"),
        ]);
        assert_eq!(o.verdict, Verdict::Inconclusive);
        assert_ne!(o.verdict, Verdict::Pass);
        assert_eq!(o.reasons, ["API server unreachable"]);
    }

    #[test]
    fn serialised_as_snake_case_words() {
        assert_eq!(
            serde_json::to_string(&Verdict::Inconclusive).unwrap(),
            "\"inconclusive\""
        );
        assert_eq!(
            serde_json::from_str::<Verdict>("\"fail\"").unwrap(),
            Verdict::Fail
        );
    }
}

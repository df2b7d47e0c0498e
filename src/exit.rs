//! Process exit codes, documented in README.md ("Exit codes").

/// The run finished and every threshold and expectation passed.
pub const OK: i32 = 0;
/// A threshold or expectation failed (or `lint` found something).
pub const CHECK_FAILED: i32 = 1;
/// Bad input or usage: invalid scenario, missing file, bad flag.
pub const BAD_INPUT: i32 = 2;
/// A runtime failure outside the measurement: the local xiu could not start, the output directory
/// could not be written, ...
pub const RUNTIME_FAILURE: i32 = 3;
/// Nothing failed, but something could not be judged (an expectation with no data behind it, a
/// run in which no client ran): not a pass. Reasons are in the summary and `report.json`.
pub const INCONCLUSIVE: i32 = 4;
/// The run was stopped by Ctrl-C or SIGTERM; the partial report was written.
pub const INTERRUPTED: i32 = 130;

/// The exit code of a failed command, from whose side the failure is on.
pub fn of_blame(blame: crate::blame::Blame) -> i32 {
    match blame {
        crate::blame::Blame::Input => BAD_INPUT,
        crate::blame::Blame::Runtime => RUNTIME_FAILURE,
    }
}

/// The exit code of a finished run or watch from its verdict.
pub fn of_verdict(v: crate::verdict::Verdict) -> i32 {
    match v {
        crate::verdict::Verdict::Pass => OK,
        crate::verdict::Verdict::Fail => CHECK_FAILED,
        crate::verdict::Verdict::Inconclusive => INCONCLUSIVE,
    }
}

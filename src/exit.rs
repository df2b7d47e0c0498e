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
/// The run was stopped by Ctrl-C or SIGTERM; the partial report was written.
pub const INTERRUPTED: i32 = 130;

//! The capacity knee as the run sees it: the plan's steps (`scenario::plan`) and the results
//! (`report::knee`), re-exported where the run's code and older callers look for them.

pub use crate::report::knee::*;
pub use crate::scenario::plan::{stages, step_at, step_targets};

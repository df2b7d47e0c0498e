//! How a client session ended; the slot loop decides on reconnects from it.

use crate::metrics::ErrorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The run (or a ramp-down) stopped it.
    Cancelled,
    /// It lasted its planned session length (viewer churn) or the stream ended normally.
    Completed,
    /// It failed; the kind was already counted.
    Failed(ErrorKind),
}
